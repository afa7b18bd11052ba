//! prefactor-server at scale (not in CI; run through `bench/scale/run.sh`): the release server
//! binary as its own process on a database file, filled through `POST /api/v1/bulk` the way
//! the SDK delivers (runs of `PF_SCALE_RUN_SPANS` spans, default 10: register, start, the span
//! creates, finish, every item with its idempotency key; nine runs in ten for agent `main`,
//! one in ten for `side`) in steps up to `PF_SCALE_STEPS` spans (default `1000000`; the issue's
//! `1000000,3000000,10000000`). After each step it records the step's ingest rate, the server's
//! CPU per span (user + system time from `/proc`), bytes per span on disk (database file after
//! a WAL checkpoint), the server's RSS, and p50 / p99 / max of `PF_SCALE_REPEATS` (default 20)
//! requests of every read the trace UI (`ui/app.js`) and Prefactor's open dashboard make.
//!
//! `PF_SCALE_RUN_SPANS=1000` times the run view and the last page of 1,000-span runs.
//!
//! Environment: `PF_SERVER_BIN` (default `target/release/prefactor-server`), `PF_SCALE_DB`
//! (default a file in the system temp directory, deleted at the end unless
//! `PF_SCALE_KEEP=1`), `PF_SCALE_OUT` (a markdown file the table is appended to).
//!
//! Without `--bench` (e.g. `cargo test --benches`) it does nothing but check that it builds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prefactor_protocol::Pfid;

const TOKEN: &str = "scale-bench-token";
/// Runs per bulk request (with 10-span runs: 650 items, 500 spans).
const RUNS_PER_REQUEST: u64 = 50;
/// Bulk requests in flight at once (the SDK sends one at a time per client: four clients).
const FILLERS: usize = 4;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let steps: Vec<u64> = env_or("PF_SCALE_STEPS", "1000000")
        .split(',')
        .map(|step| step.trim().parse().expect("PF_SCALE_STEPS: comma-separated span counts"))
        .collect();
    let run_spans: u64 = env_or("PF_SCALE_RUN_SPANS", "10").parse().expect("PF_SCALE_RUN_SPANS");
    let repeats: usize = env_or("PF_SCALE_REPEATS", "20").parse().expect("PF_SCALE_REPEATS");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::var("PF_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../target/release/prefactor-server"));
    let db = std::env::var("PF_SCALE_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("prefactor-scale-{}.db", std::process::id())));
    let server = Server::start(&binary, &db);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut report = String::new();
    runtime.block_on(async {
        let bench = Bench::new(&server.base).await;
        let mut filled = 0u64;
        let mut fill = Fill::default();
        for step in steps {
            let cpu_before = server.cpu_seconds();
            let started = Instant::now();
            bench.fill(&mut fill, filled, step, run_spans).await;
            let took = started.elapsed().as_secs_f64();
            let cpu = server.cpu_seconds() - cpu_before;
            let added = step - filled;
            filled = step;
            let bytes = checkpointed_size(&db);
            let rss_filled = server.rss_kb();
            let mut section = format!(
                "\n### {filled} spans ({} runs of {run_spans})\n\nStep: {added} spans in {took:.1} s = **{:.0} spans/s**; \
                 server CPU **{:.1} µs/span**; database {bytes} bytes = **{:.0} bytes/span**; server RSS after the \
                 fill **{} MiB**",
                fill.runs.len(),
                added as f64 / took,
                cpu * 1e6 / added as f64,
                bytes as f64 / filled as f64,
                rss_filled / 1024,
            );
            section.push_str(&bench.time_reads(&fill, repeats, filled, run_spans).await);
            section.push_str(&format!(
                "\nServer RSS after the reads: **{} MiB** (peak {} MiB).\n",
                server.rss_kb() / 1024,
                server.peak_rss_kb() / 1024
            ));
            print!("{section}");
            report.push_str(&section);
        }
    });
    drop(server);
    if std::env::var("PF_SCALE_KEEP").as_deref() != Ok("1") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    if let Ok(out) = std::env::var("PF_SCALE_OUT") {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out).expect("PF_SCALE_OUT");
        file.write_all(report.as_bytes()).expect("write the report");
    }
}

/// The server process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(binary: &Path, db: &Path) -> Server {
        let port = free_port();
        let child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--db"])
            .arg(db)
            .args(["--token", TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error} (build it: cargo build --release)", binary.display()));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, base }
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap_or_default()
    }

    /// User plus system CPU time of the server process.
    fn cpu_seconds(&self) -> f64 {
        let stat = self.proc_file("stat");
        // Fields after the command name (which is in parentheses): utime is the 14th field.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
        (ticks(11) + ticks(12)) / 100.0
    }

    fn status_kb(&self, key: &str) -> u64 {
        self.proc_file("status")
            .lines()
            .find(|line| line.starts_with(key))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    }

    fn rss_kb(&self) -> u64 {
        self.status_kb("VmRSS:")
    }

    fn peak_rss_kb(&self) -> u64 {
        self.status_kb("VmHWM:")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// The database file's size after its WAL is checkpointed into it.
fn checkpointed_size(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
    std::fs::metadata(db).map(|meta| meta.len()).unwrap_or(0)
}

/// What has been filled: the runs, and the agents' ids.
#[derive(Default)]
struct Fill {
    runs: Vec<String>,
    main_agent: String,
    side_agent: String,
}

struct Bench {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Bench {
    async fn new(base: &str) -> Bench {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().expect("client");
        let login = http
            .post(format!("{base}/ui/api/login"))
            .json(&serde_json::json!({"token": TOKEN}))
            .send()
            .await
            .expect("login");
        let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        Bench { http, base: base.to_string(), cookie }
    }

    /// Adds runs until `target` spans are stored. Each bulk body is built just before it is
    /// sent, so ids and times are taken at the ingest rate (as an SDK names a span when it
    /// starts) and the bodies of a step are never all in memory at once.
    async fn fill(&self, fill: &mut Fill, filled: u64, target: u64, run_spans: u64) {
        if fill.main_agent.is_empty() {
            fill.main_agent = new_id();
            fill.side_agent = new_id();
        }
        let first = fill.runs.len() as u64;
        let end = first + (target - filled) / run_spans;
        // Taken oldest first, as an SDK delivers: span ids (time-ordered) arrive roughly in order.
        let next = Arc::new(AtomicU64::new(first));
        let made = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..FILLERS {
            let (next, made) = (next.clone(), made.clone());
            let (main, side) = (fill.main_agent.clone(), fill.side_agent.clone());
            let http = self.http.clone();
            let url = format!("{}/api/v1/bulk", self.base);
            tasks.push(tokio::spawn(async move {
                loop {
                    let from = next.fetch_add(RUNS_PER_REQUEST, Ordering::Relaxed);
                    if from >= end {
                        break;
                    }
                    let mut items = Vec::new();
                    for index in from..(from + RUNS_PER_REQUEST).min(end) {
                        let agent = if index % 10 == 9 { &side } else { &main };
                        let (run, run_items) = run_items(agent, index, run_spans);
                        made.lock().unwrap().push((index, run));
                        items.extend(run_items);
                    }
                    let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
                    let response = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .header("prefer", "return=minimal")
                        .body(body)
                        .send()
                        .await
                        .expect("bulk");
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    assert!(status.is_success(), "bulk: {status} {text}");
                    assert!(!text.contains("\"error\""), "a bulk item failed: {}", &text[..text.len().min(500)]);
                }
            }));
        }
        for task in tasks {
            task.await.expect("filler");
        }
        let mut made = std::mem::take(&mut *made.lock().unwrap());
        made.sort_unstable();
        fill.runs.extend(made.into_iter().map(|(_, run)| run));
    }

    /// A GET of `path` with the UI's session or the API's token.
    fn request(&self, path: &str, ui: bool) -> reqwest::RequestBuilder {
        let request = self.http.get(format!("{}{path}", self.base));
        if ui { request.header("cookie", &self.cookie) } else { request.bearer_auth(TOKEN) }
    }

    /// The JSON answer of `path` (untimed: a key or time the timed reads need).
    async fn json(&self, path: &str, ui: bool) -> serde_json::Value {
        self.request(path, ui).send().await.expect("GET").json().await.expect("a JSON answer")
    }

    async fn get(&self, path: &str, ui: bool) -> (Duration, usize) {
        let request = self.request(path, ui);
        let started = Instant::now();
        let response = request.send().await.expect("GET");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        let took = started.elapsed();
        assert!(status.is_success(), "{path}: {status} {}", String::from_utf8_lossy(&body));
        (took, body.len())
    }

    /// Times `path` `repeats` times; with `before`, each timed request follows an untimed one
    /// of `before` (the previous page), as a reader paging forward sends them.
    async fn time(&self, path: &str, before: Option<&str>, ui: bool, repeats: usize) -> (Vec<Duration>, usize) {
        let mut times = Vec::with_capacity(repeats);
        let mut size = 0;
        for _ in 0..repeats {
            if let Some(before) = before {
                self.get(before, ui).await;
            }
            let (took, bytes) = self.get(path, ui).await;
            times.push(took);
            size = bytes;
        }
        times.sort_unstable();
        (times, size)
    }

    async fn time_reads(&self, fill: &Fill, repeats: usize, spans: u64, run_spans: u64) -> String {
        let run = &fill.runs[fill.runs.len() / 2];
        let main = &fill.main_agent;
        let side = &fill.side_agent;
        let main_runs = fill.runs.len() as u64 * 9 / 10;
        let page = |offset: u64| {
            format!("pagination[page_size]=100&pagination[offset]={offset}&sorting[field]=id&sorting[direction]=desc")
        };
        let deep_runs = (main_runs / 2) / 100 * 100;
        let deep_spans = (spans * 9 / 10 / 2) / 100 * 100;
        let runs_of_main = |offset: u64| format!("/api/v1/agent_instance?agent_id={main}&{}", page(offset));
        let spans_of = |agent: &str, offset: u64| {
            format!("/api/v1/agent_spans?agent_id={agent}&include_risk_level=true&{}", page(offset))
        };
        let mut reads: Vec<(String, String, Option<String>, bool)> = vec![
            ("dashboard: account".into(), "/api/v1/account".into(), None, false),
            ("dashboard: agents".into(), format!("/api/v1/agent?{}", page(0)), None, false),
            ("dashboard: one agent with its instance counts".into(), format!("/api/v1/agent/{main}"), None, false),
            ("dashboard: runs of `main`, page 1".into(), runs_of_main(0), None, false),
            ("dashboard: runs of `main`, page 2 after page 1".into(), runs_of_main(100), Some(runs_of_main(0)), false),
            (format!("dashboard: runs of `main`, offset {deep_runs} (cold)"), runs_of_main(deep_runs), None, false),
            (
                format!("dashboard: runs of `main`, offset {} after the page before", deep_runs + 100),
                runs_of_main(deep_runs + 100),
                Some(runs_of_main(deep_runs)),
                false,
            ),
            ("dashboard: every run, page 1".into(), format!("/api/v1/agent_instance?{}", page(0)), None, false),
            ("dashboard: spans of `main`, page 1".into(), spans_of(main, 0), None, false),
            (
                "dashboard: spans of `main`, page 2 after page 1".into(),
                spans_of(main, 100),
                Some(spans_of(main, 0)),
                false,
            ),
            (
                format!("dashboard: spans of `main`, offset {deep_spans} (cold)"),
                spans_of(main, deep_spans),
                None,
                false,
            ),
            (
                format!("dashboard: spans of `main`, offset {} after the page before", deep_spans + 100),
                spans_of(main, deep_spans + 100),
                Some(spans_of(main, deep_spans)),
                false,
            ),
            ("dashboard: spans of `side` (10 %), page 1".into(), spans_of(side, 0), None, false),
            (
                format!("dashboard: every run, offset {} (cold)", deep_runs * 10 / 9 / 100 * 100),
                format!("/api/v1/agent_instance?{}", page(deep_runs * 10 / 9 / 100 * 100)),
                None,
                false,
            ),
            ("dashboard: one run".into(), format!("/api/v1/agent_instance/{run}"), None, false),
            (
                "API: spans of one run with summaries".into(),
                format!("/api/v1/agent_spans?agent_instance_id={run}&include_summaries=true"),
                None,
                false,
            ),
        ];
        reads.extend(self.ui_reads(fill).await);
        reads.push(("UI: run view".into(), format!("/ui/api/runs/{run}"), None, true));
        reads.push(("UI: the page".into(), "/".into(), None, true));
        if run_spans > 100 {
            let last = (run_spans - 1) / 100 * 100;
            let path =
                format!("/api/v1/agent_spans?agent_instance_id={run}&include_summaries=true&pagination[offset]={last}");
            reads.push((format!("API: spans of one run, offset {last}"), path, None, false));
        }
        let mut table = String::from("\n\n| read | p50 | p99 | max | bytes |\n| --- | ---: | ---: | ---: | ---: |\n");
        for (name, path, before, ui) in reads {
            let (times, size) = self.time(&path, before.as_deref(), ui, repeats).await;
            let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
            table.push_str(&format!(
                "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {size} |\n",
                ms(at(0.5)),
                ms(at(0.99)),
                ms(*times.last().expect("timed")),
            ));
        }
        table
    }
}

impl Bench {
    /// The runs page's reads (`ui/app.js`): its pages as the Newer / Older buttons link them
    /// (by the key of the neighbouring row), a deep page by offset alone, each filter shape,
    /// and a text search that finds its page at once, one that reads its whole span budget
    /// without a match, and that search continued.
    async fn ui_reads(&self, fill: &Fill) -> Vec<(String, String, Option<String>, bool)> {
        let main = &fill.main_agent;
        let runs = |query: &str| format!("/ui/api/runs?agent_id={main}{query}");
        let first = self.json(&runs(""), true).await;
        let key = |page: &serde_json::Value, name: &str| page[name].as_str().unwrap_or_default().to_string();
        // A run of `main` half-way down the list, and its registration time.
        // Run indexes ending in 0 are `main`'s (see `run_items`).
        let middle = &fill.runs[fill.runs.len() / 2 / 10 * 10];
        let middle_offset = fill.runs.len() as u64 * 9 / 10 / 2;
        let middle_run = self.json(&format!("/api/v1/agent_instance/{middle}"), false).await;
        let middle_at = middle_run["details"]["inserted_at"].as_str().expect("inserted_at").to_string();
        let middle_key = format!("{middle_at}~{middle}");
        let middle_page = self.json(&runs(&format!("&offset={middle_offset}&after={middle_key}")), true).await;
        let window = |seconds: i64| {
            let rfc3339_format = &time::format_description::well_known::Rfc3339;
            let at = time::OffsetDateTime::parse(&middle_at, rfc3339_format).expect("a stored time");
            prefactor_server::timestamps::format_utc(at + time::Duration::seconds(seconds))
        };
        let (from, to) = (window(-30), window(30));
        let absent = runs("&q=no-such-text");
        let stopped = self.json(&absent, true).await;
        let last_minute = rfc3339(SystemTime::now() - Duration::from_secs(60));
        let ui = |name: &str, path: String| (name.to_string(), path, None, true);
        vec![
            ui("UI: agents", "/ui/api/agents".into()),
            ui("UI: runs of `main`, page 1", runs("")),
            ui("UI: runs of `main`, page 2 (Older)", runs(&format!("&offset=50&after={}", key(&first, "older")))),
            ui(
                "UI: runs of `main`, Older from the middle",
                runs(&format!("&offset={middle_offset}&after={middle_key}")),
            ),
            ui(
                "UI: runs of `main`, Newer from the middle",
                runs(&format!("&offset={}&before={}", middle_offset.saturating_sub(50), key(&middle_page, "newer"))),
            ),
            ui("UI: runs of `main`, offset 10,000 without a key", runs("&offset=10000")),
            ui("UI: runs of `main`, failed only", runs("&status=failed")),
            ui("UI: runs of `main` registered in the last minute", runs(&format!("&since={last_minute}"))),
            ui("UI: runs of `main` in a minute half-way back", runs(&format!("&since={from}&until={to}"))),
            ui(
                "UI: failed runs of `main` in a minute half-way back",
                runs(&format!("&status=failed&since={from}&until={to}")),
            ),
            ui("UI: runs of `main` registered before the middle (until)", runs(&format!("&until={middle_at}"))),
            ui("UI: runs of `main` with text 'search' (found at once)", runs("&q=search")),
            ui("UI: runs of `main` with text 'no-such-text' (reads its budget)", absent.clone()),
            ui(
                "UI: that search continued (Search older runs)",
                runs(&format!("&q=no-such-text&after={}", key(&stopped, "older"))),
            ),
        ]
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn new_id() -> String {
    Pfid::generate(7).encode().as_str().to_string()
}

fn rfc3339(at: SystemTime) -> String {
    prefactor_server::timestamps::format_utc(at.into())
}

/// The bulk items of one run with `spans` spans, as the SDK sends them: register, start, the
/// spans (created finished: an LLM call and tool calls), finish.
fn run_items(agent: &str, index: u64, spans: u64) -> (String, Vec<String>) {
    let run = new_id();
    let now = SystemTime::now();
    let at = |offset_ms: u64| rfc3339(now + Duration::from_millis(offset_ms));
    let mut items = vec![
        format!(
            r#"{{"_type":"agent_instances/register","id":"{run}","agent_id":"{agent}","agent_version":{{"name":"scale","external_identifier":"v1"}},"agent_schema_version":{{"external_identifier":"s1","span_type_schemas":[{{"name":"agent:llm","title":"LLM call","params_schema":{{"type":"object"}},"template":"{{{{ model }}}}"}},{{"name":"agent:tool","title":"Tool call","params_schema":{{"type":"object"}},"template":"{{{{ tool }}}}"}}]}},"idempotency_key":"register-{run}"}}"#
        ),
        format!(
            r#"{{"_type":"agent_instances/start","agent_instance_id":"{run}","timestamp":"{}","idempotency_key":"start-{run}"}}"#,
            at(0)
        ),
    ];
    // One run in 20 fails, all of them runs of `main` (index % 10 == 9 is `side`).
    let failed = index % 20 == 18;
    for span in 0..spans {
        let id = new_id();
        let (schema, payload, result) = if span % 2 == 0 {
            (
                "agent:llm",
                r#"{"model":"small-model","prompt":"summarise the step"}"#,
                r#"{"response":"ok","usage":{"input_tokens":120,"output_tokens":30}}"#,
            )
        } else {
            ("agent:tool", r#"{"tool":"search","query":"rust sqlite"}"#, r#"{"output":"3 results"}"#)
        };
        let status = if failed && span == spans - 1 { "failed" } else { "complete" };
        items.push(format!(
            r#"{{"_type":"agent_spans/create","details":{{"id":"{id}","agent_instance_id":"{run}","schema_name":"{schema}","status":"{status}","payload":{payload},"result_payload":{result},"started_at":"{}","finished_at":"{}"}},"idempotency_key":"span-{id}"}}"#,
            at(span * 10),
            at(span * 10 + 8)
        ));
    }
    let status = if failed { "failed" } else { "complete" };
    items.push(format!(
        r#"{{"_type":"agent_instances/finish","agent_instance_id":"{run}","status":"{status}","timestamp":"{}","idempotency_key":"finish-{run}"}}"#,
        at(spans * 10)
    ));
    (run, items)
}
