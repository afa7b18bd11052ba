//! Reads at size: fills an in-process server (temporary SQLite file) with `PF_READ_SPANS`
//! spans (default 1,000,000) through `POST /api/v1/bulk` — runs of `PF_READ_RUN_SPANS` spans
//! (default 1,000), nine runs in ten for agent `bench-main`, one in ten for `bench-side` —
//! then times every list page a reader asks for (the open dashboard's calls with its query
//! strings, the trace UI's pages) and the run view of one 1,000-span run: median, p95 and
//! max of `PF_READ_REPEATS` (default 15) requests each, over real HTTP. It prints the
//! database's bytes per span and `EXPLAIN QUERY PLAN` of the list queries.
//!
//! Run: `cargo bench -p prefactor-server --bench read_at_scale`
//! (without `--bench`, e.g. `cargo test --benches`, it does a 20,000-span smoke run).

use std::time::{Duration, Instant};

use prefactor_protocol::Pfid;
use prefactor_server::{LocalServer, ServerConfig};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: u64 = 500;
const FILLERS: usize = 4;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let spans = if quick { 20_000 } else { env_or("PF_READ_SPANS", 1_000_000) };
    let run_spans = env_or("PF_READ_RUN_SPANS", 1_000).max(2);
    let repeats = if quick { 3 } else { env_or("PF_READ_REPEATS", 15).max(1) };
    let server = LocalServer::start(ServerConfig::default().with_record_capacity(0)).expect("server starts");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let bench = Bench::new(&server).await;
        let started = Instant::now();
        let runs = bench.fill(spans, run_spans).await;
        let fill = started.elapsed();
        println!(
            "filled {spans} spans in {} runs through /api/v1/bulk in {:.1} s ({:.0} spans/s)",
            runs.len(),
            fill.as_secs_f64(),
            spans as f64 / fill.as_secs_f64()
        );
        bench.report_size(&server, spans);
        bench.time_reads(&runs, repeats).await;
    });
    print_query_plans(&server);
}

struct Bench {
    http: reqwest::Client,
    base: String,
    token: String,
    cookie: String,
}

/// A filled run: its id and its agent's id.
#[derive(Clone)]
struct Run {
    id: String,
    agent_id: String,
}

impl Bench {
    async fn new(server: &LocalServer) -> Bench {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().expect("client");
        let login = http
            .post(format!("{}/ui/api/login", server.base_url()))
            .json(&json!({"token": server.token()}))
            .send()
            .await
            .expect("login");
        let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        Bench { http, base: server.base_url().to_string(), token: server.token().to_string(), cookie }
    }

    async fn post(&self, path: &str, body: String) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("prefer", "return=minimal")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    async fn register(&self, agent_name: &str) -> Run {
        let body = json!({"agent_version": {"name": agent_name, "external_identifier": "v1"},
            "agent_schema_version": {"external_identifier": "s1", "span_type_schemas": [
                {"name": "agent:llm", "title": "LLM call", "params_schema": {"type": "object"}, "template": "{{ model }}"},
                {"name": "agent:tool", "title": "Tool call", "params_schema": {"type": "object"}, "template": "{{ tool }}"}]}});
        let answer = self.post("/api/v1/agent_instance/register", body.to_string()).await;
        let details = &answer["details"];
        Run {
            id: details["id"].as_str().unwrap().to_string(),
            agent_id: details["agent_id"].as_str().unwrap().to_string(),
        }
    }

    /// Registers the runs, then sends their spans in bulk requests from a few tasks at once.
    async fn fill(&self, spans: u64, run_spans: u64) -> Vec<Run> {
        let run_count = spans.div_ceil(run_spans);
        let mut runs = Vec::new();
        for index in 0..run_count {
            runs.push(self.register(if index % 10 == 9 { "bench-side" } else { "bench-main" }).await);
        }
        let mut work: Vec<(String, u64, u64)> = Vec::new();
        for (index, run) in runs.iter().enumerate() {
            let count = run_spans.min(spans - index as u64 * run_spans);
            let mut first = 0;
            while first < count {
                let last = (first + BATCH).min(count);
                work.push((run.id.clone(), first, last));
                first = last;
            }
        }
        let work = std::sync::Arc::new(std::sync::Mutex::new(work));
        let mut tasks = Vec::new();
        for _ in 0..FILLERS {
            let work = work.clone();
            let bench = Bench {
                http: self.http.clone(),
                base: self.base.clone(),
                token: self.token.clone(),
                cookie: String::new(),
            };
            tasks.push(tokio::spawn(async move {
                loop {
                    let next = work.lock().unwrap().pop();
                    let Some((run, first, last)) = next else { break };
                    bench.post("/api/v1/bulk", bulk_body(&run, first, last)).await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("filler");
        }
        runs
    }

    fn report_size(&self, server: &LocalServer, spans: u64) {
        let path = server.db_path().expect("a file database");
        let conn = rusqlite::Connection::open(path).expect("open the database");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0)).unwrap();
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!(
            "database: {bytes} bytes on disk ({pages} pages of {page_size}), {:.0} bytes per span",
            bytes as f64 / spans as f64
        );
    }

    async fn get(&self, path: &str, ui: bool) -> (Duration, usize) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        request = if ui { request.header("cookie", &self.cookie) } else { request.bearer_auth(&self.token) };
        let started = Instant::now();
        let response = request.send().await.expect("GET");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        let took = started.elapsed();
        assert!(status.is_success(), "{path}: {status} {}", String::from_utf8_lossy(&body));
        (took, body.len())
    }

    async fn time(&self, name: &str, path: &str, ui: bool, repeats: u64) {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..repeats {
            let (took, bytes) = self.get(path, ui).await;
            times.push(took);
            size = bytes;
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<58} median {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms  ({size} bytes)",
            ms(at(0.5)),
            ms(at(0.95)),
            ms(*times.last().unwrap())
        );
    }

    async fn time_reads(&self, runs: &[Run], repeats: u64) {
        // Runs 9, 19, 29, .. belong to the side agent (see `fill`).
        let main = &runs[0];
        let side = runs.get(9).unwrap_or(main);
        let run = &runs[runs.len() / 2];
        let paging = |offset: u64| {
            format!("pagination[page_size]=100&pagination[offset]={offset}&sorting[field]=id&sorting[direction]=desc")
        };
        let reads: Vec<(String, String, bool)> = vec![
            ("dashboard: account".into(), "/api/v1/account".into(), false),
            ("dashboard: agents".into(), format!("/api/v1/agent?{}", paging(0)), false),
            (
                "dashboard: runs of the main agent, page 1".into(),
                format!("/api/v1/agent_instance?agent_id={}&{}", main.agent_id, paging(0)),
                false,
            ),
            (
                "dashboard: runs of the main agent, page 9".into(),
                format!("/api/v1/agent_instance?agent_id={}&{}", main.agent_id, paging(800)),
                false,
            ),
            (
                "dashboard: spans of the main agent, page 1".into(),
                format!("/api/v1/agent_spans?agent_id={}&include_risk_level=true&{}", main.agent_id, paging(0)),
                false,
            ),
            (
                "dashboard: spans of the main agent, page 11".into(),
                format!("/api/v1/agent_spans?agent_id={}&include_risk_level=true&{}", main.agent_id, paging(1000)),
                false,
            ),
            (
                "dashboard: spans of the main agent, page 5,001".into(),
                format!("/api/v1/agent_spans?agent_id={}&include_risk_level=true&{}", main.agent_id, paging(500_000)),
                false,
            ),
            (
                "dashboard: spans of the side agent (10 %), page 1".into(),
                format!("/api/v1/agent_spans?agent_id={}&include_risk_level=true&{}", side.agent_id, paging(0)),
                false,
            ),
            ("dashboard: run detail".into(), format!("/api/v1/agent_instance/{}", run.id), false),
            (
                "API: spans of a 1,000-span run, page 1".into(),
                format!("/api/v1/agent_spans?agent_instance_id={}&include_summaries=true", run.id),
                false,
            ),
            (
                "API: spans of a 1,000-span run, page 10".into(),
                format!(
                    "/api/v1/agent_spans?agent_instance_id={}&include_summaries=true&pagination[offset]=900",
                    run.id
                ),
                false,
            ),
            ("UI: agents".into(), "/ui/api/agents".into(), true),
            ("UI: runs of the main agent, page 1".into(), format!("/ui/api/runs?agent_id={}", main.agent_id), true),
            (
                "UI: runs of the main agent, failed only".into(),
                format!("/ui/api/runs?agent_id={}&status=failed", main.agent_id),
                true,
            ),
            ("UI: run view of a 1,000-span run".into(), format!("/ui/api/runs/{}", run.id), true),
            ("UI: page + script".into(), "/".into(), true),
        ];
        for (name, path, ui) in reads {
            self.time(&name, &path, ui, repeats).await;
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A bulk body of spans `first..last` of `run`: alternating LLM and tool calls, one
/// millisecond apart.
fn bulk_body(run: &str, first: u64, last: u64) -> String {
    let partition = Pfid::random_partition();
    let mut body = String::with_capacity(((last - first) * 520) as usize);
    body.push_str(r#"{"items":["#);
    for index in first..last {
        let id = Pfid::generate(partition).encode().as_str().to_string();
        let (schema, payload, result) = if index % 2 == 0 {
            (
                "agent:llm",
                r#"{"model":"small-model","prompt":"summarise the step"}"#,
                r#"{"response":"ok","usage":{"input_tokens":120,"output_tokens":30}}"#,
            )
        } else {
            ("agent:tool", r#"{"tool":"search","query":"rust sqlite"}"#, r#"{"output":"3 results"}"#)
        };
        let started_ms = index;
        let (seconds, millis) = (started_ms / 1000, started_ms % 1000);
        if index > first {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"_type":"agent_spans/create","details":{{"id":"{id}","agent_instance_id":"{run}","schema_name":"{schema}","status":"complete","payload":{payload},"result_payload":{result},"started_at":"2026-11-26T12:{:02}:{:02}.{millis:03}000Z","finished_at":"2026-11-26T12:{:02}:{:02}.{millis:03}900Z"}},"idempotency_key":"create-{id}"}}"#,
            seconds / 60 % 60,
            seconds % 60,
            seconds / 60 % 60,
            seconds % 60
        ));
    }
    body.push_str("]}");
    body
}

fn print_query_plans(server: &LocalServer) {
    let conn = rusqlite::Connection::open(server.db_path().expect("file")).expect("open");
    let queries = [
        (
            "spans of an agent, id desc, up to 20,000 spans",
            "SELECT s.id FROM agent_spans s JOIN agent_instances i ON i.id = s.agent_instance_id WHERE i.agent_id = 'x' ORDER BY s.id DESC LIMIT 100 OFFSET 0",
        ),
        (
            "spans of an agent, id desc, more than 20,000 spans",
            "SELECT s.id FROM agent_spans s CROSS JOIN agent_instances i ON i.id = s.agent_instance_id WHERE i.agent_id = 'x' ORDER BY s.id DESC LIMIT 100 OFFSET 0",
        ),
        (
            "span counts of a run by status",
            "SELECT status, COUNT(*) FROM agent_spans WHERE agent_instance_id = 'x' GROUP BY status",
        ),
        (
            "count of an agent's spans",
            "SELECT COUNT(*) FROM agent_spans s JOIN agent_instances i ON i.id = s.agent_instance_id WHERE i.agent_id = 'x'",
        ),
        (
            "spans of a run, started_at asc",
            "SELECT s.id FROM agent_spans s JOIN agent_instances i ON i.id = s.agent_instance_id WHERE s.agent_instance_id = 'x' ORDER BY s.started_at ASC, s.id ASC LIMIT 100",
        ),
        ("runs of an agent, id desc", "SELECT id FROM agent_instances WHERE agent_id = 'x' ORDER BY id DESC LIMIT 100"),
        (
            "UI: a run's failed spans",
            "SELECT COUNT(*) FROM agent_spans s WHERE s.agent_instance_id = 'x' AND s.status = 'failed'",
        ),
    ];
    for (name, sql) in queries {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("plan");
        let steps: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        println!("plan, {name}: {}", steps.join(" / "));
    }
}
