//! Sampling end to end against the local server, read back from its SQLite file: head sampling
//! sends a run whole or not at all (nested, spawned, deferred and explicitly created spans
//! alike), the tail rule keeps failed and slow runs whatever the rate, the hold budget's
//! overflow is counted, and nothing sampled out is ever reported as lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use prefactor_runtime::{
    Client, ConfigBuilder, CreateInstance, Delivery, FinishSpan, FinishStatus, FutureExt, HoldBudget, InstanceId,
    SampleDecision, SampleOverflow, current_instance,
};
use prefactor_server::{DbLocation, LocalServer, ServerConfig};

use crate::common::{BOTH_MODES, config_for};

/// Spans each run of [`one_run`] opens.
const SPANS_PER_RUN: usize = 5;

fn server_with_file(dir: &Path) -> LocalServer {
    LocalServer::start(ServerConfig { db: DbLocation::Path(dir.join("api.db")), ..ServerConfig::default() })
        .expect("the local server starts")
}

async fn client_with(
    server: &LocalServer,
    delivery: Delivery,
    sampling: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Client {
    let client = Client::new(sampling(config_for(server, delivery)).build().expect("valid config")).expect("client");
    client.initialize().await.expect("initialize");
    client
}

/// One agent run with a span of every kind: a root span, a child in its context, a child in a
/// task spawned with its context, a deferred child, and one made with `create`/`finish_span`.
/// A failing run fails its spawned child and ends `failed`.
async fn one_run(client: &Client, fail: bool) -> (InstanceId, SampleDecision) {
    let instance = client.create_agent_instance(CreateInstance::default()).expect("an instance");
    instance.start();
    let root = instance.span("agent:step").start();
    async {
        let run = current_instance().expect("the run is current, sampled or not");
        run.span("agent:llm").start().complete();
        let spawned = prefactor_runtime::spawn(async move {
            let span = current_instance().expect("carried into the task").span("agent:tool").start();
            if fail { span.fail() } else { span.complete() }
        });
        spawned.await.expect("the task ran");
        drop(run.span("agent:retrieval").deferred());
        let created = run.span("agent:tool").create().expect("created");
        run.finish_span(created, FinishSpan::complete()).expect("finished");
    }
    .in_context(root.context())
    .await;
    root.complete();
    assert!(!instance.is_terminated());
    instance.finish(if fail { FinishStatus::Failed } else { FinishStatus::Complete });
    (instance.id(), instance.sampling())
}

/// What the server's database holds: spans by instance, the instances, and spans whose parent
/// is not in the database.
struct Stored {
    instances: BTreeMap<String, String>,
    spans_by_instance: BTreeMap<String, usize>,
    orphans: usize,
}

fn stored(dir: &Path) -> Stored {
    let conn = rusqlite::Connection::open_with_flags(dir.join("api.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the server's database");
    let instances = conn
        .prepare("SELECT id, status FROM agent_instances")
        .and_then(|mut statement| {
            statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<BTreeMap<_, _>, _>>()
        })
        .expect("instances");
    let spans_by_instance = conn
        .prepare("SELECT agent_instance_id, COUNT(*) FROM agent_spans GROUP BY agent_instance_id")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as usize)))?
                .collect::<Result<BTreeMap<_, _>, _>>()
        })
        .expect("spans");
    let orphans: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM agent_spans s WHERE s.parent_span_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM agent_spans p WHERE p.id = s.parent_span_id)",
            [],
            |row| row.get(0),
        )
        .expect("orphans");
    Stored { instances, spans_by_instance, orphans: orphans as usize }
}

/// Every run in `sent` is stored whole with its status; nothing else is stored.
fn assert_whole_or_absent(dir: &Path, sent: &BTreeMap<InstanceId, &str>) {
    let stored = stored(dir);
    let expected: BTreeMap<String, String> =
        sent.iter().map(|(id, status)| (id.to_string(), status.to_string())).collect();
    assert_eq!(stored.instances, expected, "exactly the sent runs are stored, with their status");
    let whole: BTreeMap<String, usize> = expected.keys().map(|id| (id.clone(), SPANS_PER_RUN)).collect();
    assert_eq!(stored.spans_by_instance, whole, "every stored run has all its spans; no span of another run");
    assert_eq!(stored.orphans, 0, "no span without its parent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_rule_keeps_every_failed_run_at_a_one_percent_rate() {
    for delivery in BOTH_MODES {
        let dir = tempfile::tempdir().expect("a temp dir");
        let server = server_with_file(dir.path());
        let client = client_with(&server, delivery, |b| b.sample_rate(0.01)).await;
        let mut sent = BTreeMap::new();
        let (mut unsampled_complete, mut unsampled_failed) = (0, 0);
        for n in 0..120 {
            let fail = n % 10 == 3;
            let (id, decision) = one_run(&client, fail).await;
            match (decision, fail) {
                (SampleDecision::Sampled, _) => {
                    sent.insert(id, if fail { "failed" } else { "complete" });
                }
                (SampleDecision::Held, true) => {
                    unsampled_failed += 1;
                    sent.insert(id, "failed");
                }
                (SampleDecision::Held, false) => unsampled_complete += 1,
                (other, _) => panic!("{other:?}: the failure rule is on, so an unsampled run is held"),
            }
        }
        let report = client.close().await.expect("nothing lost: sampling is not loss");
        assert_whole_or_absent(dir.path(), &sent);
        assert!(unsampled_failed >= 10, "at 1 % nearly every failed run was unsampled, and kept: {unsampled_failed}");
        let stats = report.stats;
        assert_eq!(stats.kept_by_tail_rule, unsampled_failed, "{delivery:?}");
        assert_eq!(stats.sampled_out_runs, unsampled_complete);
        assert_eq!(stats.sampled_out_spans, unsampled_complete * SPANS_PER_RUN as u64);
        assert_eq!((report.lost, stats.dropped, stats.failed), (0, 0, 0));
        assert_eq!(stats.sent + stats.sampled_out, stats.enqueued, "every queued operation sent or sampled out");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_sampling_at_rates_0_1_and_one_half_sends_whole_runs_or_nothing() {
    const RUNS: usize = 160;
    for rate in [0.0, 1.0, 0.5] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let server = server_with_file(dir.path());
        let client = client_with(&server, Delivery::Bulk, |b| b.sample_rate(rate).keep_failed_runs(false)).await;
        let mut sent = BTreeMap::new();
        for n in 0..RUNS {
            let fail = n % 4 == 0;
            let (id, decision) = one_run(&client, fail).await;
            match decision {
                SampleDecision::Sampled => {
                    sent.insert(id, if fail { "failed" } else { "complete" });
                }
                SampleDecision::Unsampled => {}
                other => panic!("no tail rule, yet {other:?}"),
            }
        }
        let report = client.close().await.expect("nothing lost");
        assert_whole_or_absent(dir.path(), &sent);
        let unsampled = (RUNS - sent.len()) as u64;
        let stats = report.stats;
        assert_eq!((stats.sampled_out_runs, stats.sampled_out_spans), (unsampled, unsampled * SPANS_PER_RUN as u64));
        assert_eq!(stats.sampled_out, 0, "no tail rule: nothing of an unsampled run is even queued");
        assert_eq!(stats.sent, stats.enqueued);
        match rate {
            0.0 => assert!(sent.is_empty() && stats.enqueued == 0, "rate 0: nothing queued at all"),
            1.0 => assert_eq!(sent.len(), RUNS),
            // 160 draws at 1/2: five standard deviations are ±32 runs.
            _ => assert!((48..=112).contains(&sent.len()), "rate 0.5 sent {} of {RUNS}", sent.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_agent_rate_overrides_the_default_and_the_same_id_decides_the_same_way() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = server_with_file(dir.path());
    let config = |b: ConfigBuilder| b.sample_rate(0.0).keep_failed_runs(false).sample_rate_for("billing", 1.0);
    let client = client_with(&server, Delivery::Bulk, config).await;
    let named = |name: &str| {
        CreateInstance::default()
            .agent_version(prefactor_runtime::AgentVersion { name: Some(name.into()), ..Default::default() })
    };
    let billing = client.create_agent_instance(named("billing")).expect("an instance");
    let triage = client.create_agent_instance(named("triage")).expect("an instance");
    assert_eq!((billing.sampling(), triage.sampling()), (SampleDecision::Sampled, SampleDecision::Unsampled));
    // A handle made from an id this client did not create is always sent.
    assert_eq!(client.instance(InstanceId::generate(client.partition())).sampling(), SampleDecision::Sampled);
    for run in [&billing, &triage] {
        run.start();
        run.span("agent:step").start().complete();
        run.finish(FinishStatus::Complete);
    }
    let report = client.close().await.expect("nothing lost");
    let stored = stored(dir.path());
    assert_eq!(stored.instances.keys().cloned().collect::<Vec<_>>(), [billing.id().to_string()]);
    assert_eq!((report.stats.sampled_out_runs, report.stats.sampled_out_spans), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_rule_keeps_a_run_longer_than_its_threshold() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = server_with_file(dir.path());
    let rule = |b: ConfigBuilder| b.sample_rate(0.0).keep_failed_runs(false).keep_slow_runs(Duration::from_millis(150));
    let client = client_with(&server, Delivery::Bulk, rule).await;
    let (quick, _) = one_run(&client, true).await;
    let slow = client.create_agent_instance(CreateInstance::default()).expect("an instance");
    assert_eq!(slow.sampling(), SampleDecision::Held);
    slow.start();
    let step = slow.span("agent:step").start();
    tokio::time::sleep(Duration::from_millis(250)).await;
    step.complete();
    slow.finish(FinishStatus::Complete);
    let report = client.close().await.expect("nothing lost");
    let stored = stored(dir.path());
    assert_eq!(
        stored.instances.keys().cloned().collect::<Vec<_>>(),
        [slow.id().to_string()],
        "{quick} failed but quick"
    );
    assert_eq!(stored.spans_by_instance.get(&slow.id().to_string()), Some(&1));
    assert_eq!((report.stats.kept_by_tail_rule, report.stats.sampled_out_runs), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_run_over_its_budget_is_kept_or_dropped_as_configured_and_counted() {
    for overflow in [SampleOverflow::Keep, SampleOverflow::Drop] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let server = server_with_file(dir.path());
        let budget = HoldBudget::default().per_run(8, 1 << 20);
        let config = |b: ConfigBuilder| b.sample_rate(0.0).sample_hold_budget(budget).sample_overflow(overflow);
        let client = client_with(&server, Delivery::Bulk, config).await;
        let big = client.create_agent_instance(CreateInstance::default()).expect("an instance");
        big.start();
        for _ in 0..20 {
            big.span("agent:step").start().complete();
        }
        big.finish(FinishStatus::Complete);
        let report = client.close().await.expect("an overflow is counted, never lost");
        let stored = stored(dir.path());
        let stats = report.stats;
        assert_eq!(stats.hold_overflows, 1, "{overflow:?}");
        match overflow {
            SampleOverflow::Keep => {
                assert_eq!(stored.spans_by_instance.get(&big.id().to_string()), Some(&20), "sent whole");
                assert_eq!(stats.sampled_out_runs, 0);
            }
            _ => {
                assert!(stored.instances.is_empty() && stored.spans_by_instance.is_empty(), "nothing of it sent");
                assert_eq!((stats.sampled_out_runs, stats.sampled_out_spans), (1, 20));
                assert_eq!(stats.sampled_out, stats.enqueued, "its late operations were discarded too");
            }
        }
        assert_eq!(report.lost, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_does_not_wait_for_an_open_held_run_and_close_decides_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = server_with_file(dir.path());
    let client = client_with(&server, Delivery::Bulk, |b| b.sample_rate(0.0)).await;
    let open = client.create_agent_instance(CreateInstance::default()).expect("an instance");
    open.start();
    let span = open.span("agent:step").start();
    let (failed, _) = one_run(&client, true).await;
    client
        .flush(Duration::from_secs(10))
        .await
        .expect("the failed run is delivered; the open one does not hold the flush");
    assert!(stored(dir.path()).instances.contains_key(&failed.to_string()), "a failed run is sent at its end");
    let report = client.close().await.expect("nothing lost");
    drop(span);
    let stored = stored(dir.path());
    assert!(
        !stored.instances.contains_key(&open.id().to_string()),
        "open at close, neither failed nor slow: sampled out"
    );
    assert_eq!((report.stats.sampled_out_runs, report.stats.kept_by_tail_rule), (1, 1));
    assert!(report.is_clean());
}

/// During an outage (the API down from the start, a spool on) the failed runs the tail rule
/// keeps go to the spool and are delivered once the API is back; the runs sampled out never
/// touch the disk, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_runs_go_through_the_spool_in_an_outage_and_sampled_out_ones_never_do() {
    const TOKEN: &str = "sampling-outage";
    /// Register, start, two span creates and finishes, finish.
    const OPS_PER_RUN: u64 = 7;
    let spool = tempfile::tempdir().expect("a temp dir");
    let db = tempfile::tempdir().expect("a temp dir");
    let (down, address) = crate::common::down_address();
    let config = prefactor_runtime::Config::builder()
        .api_url(format!("http://{address}"))
        .api_token(TOKEN)
        .initial_retry_delay(Duration::from_millis(20))
        .max_retry_delay(Duration::from_millis(200))
        .close_timeout(Duration::from_secs(20))
        .spool_dir(spool.path())
        .sample_rate(0.0);
    let client = Client::new(config.build().expect("valid config")).expect("client");
    client.initialize().await.expect("initialize returns with the API down");
    let mut failed = BTreeMap::new();
    for n in 0..10 {
        let run = client.create_agent_instance(CreateInstance::default()).expect("the client works");
        run.start();
        let step = run.span("t:step").start();
        run.span("t:child").parent(step.id()).start().complete();
        let fail = n % 2 == 1;
        if fail {
            step.fail()
        } else {
            step.complete()
        }
        run.finish(if fail { FinishStatus::Failed } else { FinishStatus::Complete });
        if fail {
            failed.insert(run.id(), "failed");
        }
    }
    // Bounded wait until the kept runs reached the spool (the token check keeps failing).
    for _ in 0..1_000 {
        if client.stats().spooled == 5 * OPS_PER_RUN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = client.stats();
    assert_eq!((during.spooled, during.sampled_out, during.sent), (5 * OPS_PER_RUN, 5 * OPS_PER_RUN, 0), "{during:?}");
    assert_eq!((during.kept_by_tail_rule, during.sampled_out_runs), (5, 5));
    drop(down);
    let server = LocalServer::start(
        ServerConfig { db: DbLocation::Path(db.path().join("api.db")), ..ServerConfig::default() }
            .with_token(TOKEN)
            .with_listen(address),
    )
    .expect("the server starts on the address that was down");
    // The spool's replay catches up by itself (bounded wait), then the client closes.
    for _ in 0..2_000 {
        if client.stats().replayed > 0 && stored(db.path()).instances.len() == failed.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = client.close().await.expect("nothing lost once the API is back");
    assert_eq!(report.left_in_spool, 0, "{report:?}");
    drop(server);
    let stored = stored(db.path());
    let expected: BTreeMap<String, String> = failed.keys().map(|id| (id.to_string(), "failed".to_owned())).collect();
    assert_eq!(stored.instances, expected, "exactly the failed runs, each whole");
    assert!(stored.spans_by_instance.values().all(|spans| *spans == 2) && stored.orphans == 0);
}

/// Only the process that holds a run can keep it: a handle for another process's held run
/// counts its spans as left out, instead of sending them at once for a run that may never be
/// registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_for_another_process_held_run_leaves_its_spans_out() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = server_with_file(dir.path());
    let client = client_with(&server, Delivery::Bulk, |config| config).await;
    let elsewhere = InstanceId::generate(0);
    let run = client.instance_with_sampling(elsewhere, SampleDecision::Held);
    assert_eq!(run.sampling(), SampleDecision::Unsampled);
    run.span("agent:tool").start().complete();
    let report = client.close().await.expect("nothing lost");
    assert_eq!((report.stats.enqueued, report.stats.sampled_out_spans), (0, 1), "{report:?}");
    drop(server);
    assert!(stored(dir.path()).spans_by_instance.is_empty());
}
