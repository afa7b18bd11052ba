//! The disk spool over real processes and sockets: an agent process killed (SIGKILL) while the
//! API is down loses nothing once the next client starts with the same spool; a client whose
//! API comes back sends its spool itself; one process at a time per spool.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prefactor_runtime::{Client, Config, CreateInstance, Delivery, FinishStatus};
use prefactor_server::{DbLocation, FaultRule, LocalServer, ServerConfig};

const TOKEN: &str = "spool-token";
const CHILD_ENV: &str = "PREFACTOR_SPOOL_TEST_CHILD";
const SPOOLED: &str = "SPOOLED";
const READY: &str = "READY";

/// Agent runs the killed process makes: `PREFACTOR_SOAK_SPOOL_INSTANCES` (so that
/// `bench/delivery/soak.sh` runs a larger one with the same code), 20 by default.
fn killed_runs() -> usize {
    std::env::var("PREFACTOR_SOAK_SPOOL_INSTANCES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(20)
}

/// Waits (bounded) until nothing listens at `address` any more: the API is down.
fn wait_until_down(address: SocketAddr) {
    let started = Instant::now();
    while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server at {address} never went down");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn client(url: &str, spool: &Path, delivery: Delivery) -> Client {
    let config = Config::builder()
        .api_url(url)
        .api_token(TOKEN)
        .delivery(delivery)
        .spool_dir(spool)
        .initial_retry_delay(Duration::from_millis(10))
        .max_retry_delay(Duration::from_millis(100))
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(200))
        .close_timeout(Duration::from_secs(60))
        .build()
        .expect("valid config");
    Client::new(config).expect("client")
}

fn start_server(dir: &Path, listen: SocketAddr) -> LocalServer {
    LocalServer::start(ServerConfig {
        listen,
        db: DbLocation::Path(dir.join("api.db")),
        tokens: vec![TOKEN.to_owned()],
        ..ServerConfig::default()
    })
    .expect("the server starts")
}

/// `runs` agent runs of a root span with 3 children each; returns `(instances, spans)` ids as
/// lines `i ID` and `s ID PARENT|-`.
fn run_agents(client: &Client, runs: usize) -> Vec<String> {
    let mut made = Vec::new();
    for _ in 0..runs {
        let instance = client.create_agent_instance(CreateInstance::default()).expect("queued");
        instance.start();
        let root = instance.span("spool:root").start();
        made.push(format!("s {} -", root.id()));
        for _ in 0..3 {
            let child = instance.span("spool:child").parent(root.id()).start();
            made.push(format!("s {} {}", child.id(), root.id()));
            child.complete();
        }
        root.complete();
        instance.finish(FinishStatus::Complete);
        made.push(format!("i {}", instance.id()));
    }
    made
}

/// The child: an agent with a spool that starts while the API is up, then (once the parent
/// stopped it) makes its runs; prints what it made, waits until all of it is spooled, says so,
/// and waits to be killed.
fn child(spool: &Path, url: &str, delivery: Delivery) {
    let client = client(url, spool, delivery);
    client.initialize_blocking().expect("initialize while the API is up");
    println!("{READY}");
    wait_until_down(url.trim_start_matches("http://").parse().expect("an address"));
    let made = run_agents(&client, killed_runs());
    for line in &made {
        println!("{line}");
    }
    let started = Instant::now();
    while client.stats().spooled < client.stats().enqueued && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = client.stats();
    assert_eq!(stats.spooled, stats.enqueued, "everything reached the spool: {stats:?}");
    println!("{SPOOLED} {}", stats.spooled);
    std::thread::sleep(Duration::from_secs(120));
}

/// Counts what the database lacks of `made`: (spans missing or wrong, instances unfinished).
fn missing(db: &Path, made: &[String]) -> (usize, usize) {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    let (mut spans, mut instances) = (0, 0);
    for line in made {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["s", id, parent] => {
                let row: Option<(Option<String>, String)> = conn
                    .query_row("SELECT parent_span_id, status FROM agent_spans WHERE id = ?1", [id], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .ok();
                let parent = (*parent != "-").then(|| parent.to_string());
                if row != Some((parent, "complete".to_owned())) {
                    spans += 1;
                }
            }
            ["i", id] => {
                let status: Option<String> =
                    conn.query_row("SELECT status FROM agent_instances WHERE id = ?1", [id], |row| row.get(0)).ok();
                if status.as_deref() != Some("complete") {
                    instances += 1;
                }
            }
            _ => panic!("unexpected line {line}"),
        }
    }
    (spans, instances)
}

fn killed_during_an_outage_then_restarted(delivery: Delivery, test_name: &str) {
    if let Ok(spool) = std::env::var(CHILD_ENV) {
        let url = std::env::var("PREFACTOR_SPOOL_TEST_URL").expect("the URL");
        return child(Path::new(&spool), &url, delivery);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spool = dir.path().join("spool");
    let server = start_server(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
    let url = server.base_url().to_owned();
    let address: SocketAddr = url.trim_start_matches("http://").parse().expect("an address");
    let mut server = Some(server);
    let mut agent = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &spool)
        .env("PREFACTOR_SPOOL_TEST_URL", &url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the agent process starts");
    let mut made = Vec::new();
    let mut spooled = None;
    for line in BufReader::new(agent.stdout.take().expect("stdout")).lines() {
        let line = line.expect("a line");
        if line.ends_with(READY) {
            // The API goes down before the agent's runs.
            if let Some(server) = server.take() {
                server.shutdown();
            }
        }
        if let Some((_, count)) = line.split_once(&format!("{SPOOLED} ")) {
            spooled = count.parse::<u64>().ok();
            break;
        }
        if line.starts_with("s ") || line.starts_with("i ") {
            made.push(line);
        }
    }
    agent.kill().expect("SIGKILL");
    agent.wait().expect("reaped");
    let runs = killed_runs();
    let spooled = spooled.expect("the agent reported everything spooled");
    assert_eq!(made.len(), runs * 5);
    // Per run: register, start, finish, and a create and a finish per span.
    assert_eq!(spooled, runs as u64 * 11, "every operation reached the spool");

    // The API comes back; the next agent process starts with the same spool.
    let server = start_server(dir.path(), address);
    let started = Instant::now();
    let next = client(&url, &spool, delivery);
    next.initialize_blocking().expect("initialize");
    let report = next.close_blocking().expect("nothing lost");
    let took = started.elapsed();
    // One record per instance operation and per span (or two, create and finish, when a
    // span outlived the linger).
    assert!((runs as u64 * 7..=runs as u64 * 11).contains(&report.stats.replayed), "{report:?}");
    assert_eq!((report.left_in_spool, report.failed, report.unknown), (0, 0, 0), "{report:?}");
    drop(server);
    let (lost, unfinished) = missing(&dir.path().join("api.db"), &made);
    println!(
        "killed {delivery}: spans {} lost {lost} instances {runs} unfinished {unfinished} | spooled {spooled} replayed {} left_in_spool {} failed {} | replay {:.1} s",
        runs * 4,
        report.stats.replayed,
        report.left_in_spool,
        report.failed,
        took.as_secs_f64()
    );
    assert_eq!((lost, unfinished), (0, 0), "{delivery}");
}

#[test]
fn an_agent_killed_during_an_outage_loses_nothing_with_the_spool_per_request() {
    killed_during_an_outage_then_restarted(
        Delivery::PerRequest,
        "spool::an_agent_killed_during_an_outage_loses_nothing_with_the_spool_per_request",
    );
}

#[test]
fn an_agent_killed_during_an_outage_loses_nothing_with_the_spool_in_bulk() {
    killed_during_an_outage_then_restarted(
        Delivery::Bulk,
        "spool::an_agent_killed_during_an_outage_loses_nothing_with_the_spool_in_bulk",
    );
}

#[test]
fn a_client_sends_its_own_spool_when_the_api_comes_back() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spool = dir.path().join("spool");
    let server = start_server(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
    let url = server.base_url().to_owned();
    let address: SocketAddr = url.trim_start_matches("http://").parse().expect("an address");
    let agent = client(&url, &spool, Delivery::Bulk);
    agent.initialize_blocking().expect("initialize");
    server.shutdown();
    wait_until_down(address);
    let made = run_agents(&agent, 10);
    let started = Instant::now();
    while agent.stats().spooled < agent.stats().enqueued && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(agent.stats().spooled, agent.stats().enqueued, "{:?}", agent.stats());
    let server = start_server(dir.path(), address);
    let report = agent.close_blocking().expect("nothing lost");
    assert!(report.stats.replayed >= 10 * 7, "{report:?}");
    assert_eq!(report.left_in_spool, 0);
    drop(server);
    assert_eq!(missing(&dir.path().join("api.db"), &made), (0, 0));
}

/// A slow API fills the queue: with the spool on, what waits goes to disk before the queue's
/// capacity would drop anything, and is sent from there once the API keeps up again.
#[test]
fn a_nearly_full_queue_spills_to_the_spool_instead_of_dropping() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
    let config = Config::builder()
        .api_url(server.base_url())
        .api_token(TOKEN)
        .spool_dir(dir.path().join("spool"))
        .queue_capacity(128)
        .concurrency(1)
        .bulk_max_items(8)
        .close_timeout(Duration::from_secs(60))
        .build()
        .expect("valid config");
    let agent = Client::new(config).expect("client");
    agent.initialize_blocking().expect("initialize");
    // Every write takes 300 ms: 8 operations per 300 ms at most, far below what the runs make
    // (paced, so that the worker sees the queue fill: a burst faster than it wakes up is
    // dropped at the capacity whatever it does).
    server.add_fault(FaultRule::delay("/api/v1", 300).method("POST"));
    let mut made = Vec::new();
    for _ in 0..30 {
        // A run (11 operations at once) fits in the eighth of the queue kept free.
        made.extend(run_agents(&agent, 1));
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = agent.stats();
    assert_eq!(stats.dropped, 0, "nothing dropped for capacity: {stats:?}");
    server.clear_faults();
    let report = agent.close_blocking().expect("nothing lost");
    // `replayed` counts requests (a create carrying its finish is one), `spooled` operations.
    assert!(report.stats.spooled > 0 && report.stats.replayed > 0, "{report:?}");
    assert_eq!(report.stats.spooled + report.stats.sent, report.stats.enqueued, "{report:?}");
    assert_eq!((report.left_in_spool, report.dropped, report.unknown), (0, 0, 0), "{report:?}");
    drop(server);
    assert_eq!(missing(&dir.path().join("api.db"), &made), (0, 0));
}

/// Requests still in flight at `close()`'s deadline go to the spool (they are not reported
/// `unknown`), and the next client with that spool delivers them, each stored once.
#[test]
fn requests_in_flight_at_the_close_deadline_go_to_the_spool() {
    for delivery in [Delivery::Bulk, Delivery::PerRequest] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let spool = dir.path().join("spool");
        let server = start_server(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
        let config = Config::builder()
            .api_url(server.base_url())
            .api_token(TOKEN)
            .delivery(delivery)
            .spool_dir(&spool)
            .close_timeout(Duration::from_millis(500))
            .build()
            .expect("valid config");
        let agent = Client::new(config).expect("client");
        agent.initialize_blocking().expect("initialize");
        // Answers only after 1.5 s.
        server.add_fault(FaultRule::delay("/api/v1", 1_500).method("POST"));
        let made = run_agents(&agent, 5);
        let report = agent.close_blocking().expect("nothing lost: what was in flight is spooled");
        assert!(report.timed_out, "{report:?}");
        assert_eq!(report.unknown, 0, "{delivery}: {report:?}");
        assert!(report.left_in_spool > 0 && report.stats.spooled > 0, "{delivery}: {report:?}");
        assert_eq!(report.stats.spooled + report.stats.sent, report.stats.enqueued, "{delivery}: {report:?}");
        server.clear_faults();
        // At once: the server may still be holding the requests the first client gave up on
        // (the replay's answers and theirs are the same key's, applied once), and `close` has
        // released the spool (it used to answer first, so a client started right after it could
        // find the spool locked, run without it and send nothing).
        let next = client(server.base_url(), &spool, delivery);
        next.initialize_blocking().expect("initialize");
        let report = next.close_blocking().expect("nothing lost");
        assert!(report.stats.replayed > 0, "the next client had the spool: {report:?}");
        assert_eq!(report.left_in_spool, 0, "{report:?}");
        drop(server);
        assert_eq!(missing(&dir.path().join("api.db"), &made), (0, 0), "{delivery}: {report:?}");
    }
}
