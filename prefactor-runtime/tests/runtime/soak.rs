//! Delivery soaks over real sockets: seeded agent runs through the server's fault injection
//! (20 % of requests answered 503, 500 or 429 + `Retry-After`, delayed past the client's
//! timeout, or losing the connection before or after being applied), and through a server
//! killed and restarted on the same port and database. The figures are read from the SQLite
//! file itself: every span stored once with the right parent and status, every instance
//! finished, and a close report that says nothing was lost.
//!
//! Sizes and outage length come from `PREFACTOR_SOAK_*` variables so that `bench/delivery/soak.sh`
//! runs the larger soak with the same code; the defaults keep CI short.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use prefactor_runtime::{Client, CloseReport, Config, CreateInstance, Delivery, FinishStatus, InstanceId};
use prefactor_server::faults::Reset;
use prefactor_server::{DbLocation, FaultRule, LocalServer, ServerConfig};

const TOKEN: &str = "soak-token";

/// A size from the environment, or `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// What the agent made: every instance, and every span with its parent.
#[derive(Default)]
struct Made {
    instances: Vec<InstanceId>,
    spans: HashMap<String, Option<String>>,
}

/// A server on a SQLite file in `dir`, listening on `listen` (port 0: any).
fn start_server(dir: &Path, listen: SocketAddr) -> LocalServer {
    LocalServer::start(ServerConfig {
        listen,
        db: DbLocation::Path(dir.join("soak.db")),
        tokens: vec![TOKEN.to_owned()],
        // The soak reads the database, not the request log.
        record_capacity: 0,
        ..ServerConfig::default()
    })
    .expect("the server starts")
}

fn address(server: &LocalServer) -> SocketAddr {
    server.base_url().trim_start_matches("http://").parse().expect("base_url is http://ADDR")
}

/// Short backoff so a soak takes seconds; a `max_retry_delay` above the faults' 1 s
/// `Retry-After` so that it is honoured, and a request timeout below the delay fault.
fn client(url: &str, delivery: Delivery) -> Client {
    let config = Config::builder()
        .api_url(url)
        .api_token(TOKEN)
        .delivery(delivery)
        .initial_retry_delay(Duration::from_millis(20))
        .max_retry_delay(Duration::from_millis(1_500))
        .request_timeout(Duration::from_millis(800))
        .connect_timeout(Duration::from_millis(300))
        .close_timeout(Duration::from_secs(120))
        .build()
        .expect("valid config");
    let client = Client::new(config).expect("client");
    client.initialize_blocking().expect("initialize");
    client
}

/// 20 % of every POST faulted, one sixth of that by each kind.
fn add_faults(server: &LocalServer, seed: u64) {
    server.seed_faults(seed);
    let share = 0.2 / 6.0;
    let path = "/api/v1/";
    server.add_fault(FaultRule::status(path, 503).method("POST").probability(share));
    server.add_fault(FaultRule::status(path, 500).method("POST").probability(share));
    server.add_fault(FaultRule::status(path, 429).retry_after(1).method("POST").probability(share));
    server.add_fault(FaultRule::delay(path, 1_200).method("POST").probability(share));
    server.add_fault(FaultRule::reset(path, Reset::Before).method("POST").probability(share));
    server.add_fault(FaultRule::reset(path, Reset::After).method("POST").probability(share));
}

/// `instances` agent runs of 26 spans each (a root, 5 children, 4 grandchildren per child),
/// some spans held open across a pause so their create and finish travel apart; `pause`
/// between runs spreads them over time.
fn run_agents(client: &Client, instances: u64, pause: Duration, made: &mut Made) {
    for run in 0..instances {
        let instance = client.create_agent_instance(CreateInstance::default()).expect("register queued");
        instance.start();
        let root = instance.span("soak:root").start();
        made.spans.insert(root.id().to_string(), None);
        for child_index in 0..5 {
            let child = instance.span("soak:child").parent(root.id()).start();
            made.spans.insert(child.id().to_string(), Some(root.id().to_string()));
            for _ in 0..4 {
                let grandchild = instance.span("soak:leaf").parent(child.id()).start();
                made.spans.insert(grandchild.id().to_string(), Some(child.id().to_string()));
                grandchild.complete();
            }
            if (run + child_index) % 4 == 0 {
                // Longer than the 2 ms linger: this create goes `active`, its finish later.
                std::thread::sleep(Duration::from_millis(3));
            }
            child.complete();
        }
        root.complete();
        instance.finish(FinishStatus::Complete);
        made.instances.push(instance.id());
        std::thread::sleep(pause);
    }
}

/// What the database holds against what was made.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Spans made but not stored.
    lost: usize,
    /// Spans stored but not made (a second copy of one would be here: ids are the client's).
    unexpected: usize,
    /// Stored spans with another parent or status than made.
    wrong: usize,
    /// Instances not `complete`.
    unfinished: usize,
}

fn tally(db: &Path, made: &Made) -> Tally {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the database opens");
    let mut stored: HashMap<String, (Option<String>, String)> = HashMap::new();
    let mut query = conn.prepare("SELECT id, parent_span_id, status FROM agent_spans").expect("query");
    let rows = query
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?, row.get(2)?)))
        .expect("rows");
    for row in rows {
        let (id, parent, status) = row.expect("a span row");
        stored.insert(id, (parent, status));
    }
    let mut tally =
        Tally { unexpected: stored.keys().filter(|id| !made.spans.contains_key(*id)).count(), ..Tally::default() };
    for (id, parent) in &made.spans {
        match stored.get(id) {
            None => tally.lost += 1,
            Some((stored_parent, status)) if stored_parent != parent || status != "complete" => tally.wrong += 1,
            Some(_) => {}
        }
    }
    for instance in &made.instances {
        let status: Option<String> = conn
            .query_row("SELECT status FROM agent_instances WHERE id = ?1", [instance.to_string()], |row| row.get(0))
            .ok();
        if status.as_deref() != Some("complete") {
            tally.unfinished += 1;
        }
    }
    tally
}

/// The figures of one soak, printed for the bench script.
fn report(label: &str, made: &Made, tally: &Tally, close: &CloseReport, took: Duration) {
    println!(
        "{label}: spans {} lost {} unexpected {} wrong {} instances {} unfinished {} | delivered {} confirmed_after_unknown {} retried {} failed {} dropped {} undelivered {} unknown {} | {:.1} s",
        made.spans.len(),
        tally.lost,
        tally.unexpected,
        tally.wrong,
        made.instances.len(),
        tally.unfinished,
        close.delivered,
        close.confirmed_after_unknown,
        close.stats.retried,
        close.failed,
        close.dropped,
        close.undelivered,
        close.unknown,
        took.as_secs_f64(),
    );
}

fn assert_exact(label: &str, made: &Made, tally: &Tally, close: &CloseReport) {
    assert_eq!(*tally, Tally::default(), "{label}: the database differs from what the agent made");
    assert!(close.is_clean(), "{label}: {close}");
    assert_eq!(close.delivered, close.stats.enqueued, "{label}: {close:?}");
    // Per instance: register, start, finish; per span: a create and a finish.
    let operations = 3 * made.instances.len() as u64 + 2 * made.spans.len() as u64;
    assert_eq!(close.stats.enqueued, operations, "{label}");
}

fn soak_with_faults(delivery: Delivery, seed: u64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
    let client = client(server.base_url(), delivery);
    add_faults(&server, seed);
    let started = Instant::now();
    let mut made = Made::default();
    run_agents(&client, setting("PREFACTOR_SOAK_INSTANCES", 60), Duration::ZERO, &mut made);
    let close = client.close_blocking().unwrap_or_else(|err| panic!("{delivery} seed {seed}: {err}"));
    let took = started.elapsed();
    server.clear_faults();
    let tally = tally(&dir.path().join("soak.db"), &made);
    let label = format!("faults {delivery} seed {seed}");
    report(&label, &made, &tally, &close, took);
    assert_exact(&label, &made, &tally, &close);
    assert!(close.stats.retried > 0, "{label}: the faults were injected");
}

fn seeds() -> Vec<u64> {
    (0..setting("PREFACTOR_SOAK_RUNS", 1)).map(|run| 0x5eed + run).collect()
}

#[test]
fn twenty_percent_faults_of_every_kind_lose_and_duplicate_nothing_per_request() {
    for seed in seeds() {
        soak_with_faults(Delivery::PerRequest, seed);
    }
}

#[test]
fn twenty_percent_faults_of_every_kind_lose_and_duplicate_nothing_in_bulk() {
    for seed in seeds() {
        soak_with_faults(Delivery::Bulk, seed);
    }
}

/// The server is stopped while the agent runs and started again `outage` later on the same
/// port and database.
fn soak_with_restart(delivery: Delivery, outage: Duration) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(dir.path(), SocketAddr::from(([127, 0, 0, 1], 0)));
    let listen = address(&server);
    let client = client(server.base_url(), delivery);
    let agent_client = client.clone();
    let instances = setting("PREFACTOR_SOAK_RESTART_INSTANCES", 40);
    let started = Instant::now();
    let agent = std::thread::spawn(move || {
        let mut made = Made::default();
        run_agents(&agent_client, instances, Duration::from_millis(50), &mut made);
        made
    });
    std::thread::sleep(Duration::from_millis(500));
    server.shutdown();
    std::thread::sleep(outage);
    let server = start_server(dir.path(), listen);
    let made = agent.join().expect("the agent thread");
    let close = client.close_blocking().unwrap_or_else(|err| panic!("restart {delivery}: {err}"));
    let took = started.elapsed();
    let tally = tally(&dir.path().join("soak.db"), &made);
    drop(server);
    let label = format!("restart {delivery} outage {outage:?}");
    report(&label, &made, &tally, &close, took);
    assert_exact(&label, &made, &tally, &close);
}

fn outage() -> Duration {
    Duration::from_secs(setting("PREFACTOR_SOAK_OUTAGE_SECS", 3))
}

#[test]
fn a_server_killed_and_restarted_mid_run_loses_nothing_per_request() {
    soak_with_restart(Delivery::PerRequest, outage());
}

#[test]
fn a_server_killed_and_restarted_mid_run_loses_nothing_in_bulk() {
    soak_with_restart(Delivery::Bulk, outage());
}
