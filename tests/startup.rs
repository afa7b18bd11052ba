//! An agent started while the Prefactor API is down (issue "an agent starts at once"): `init`
//! returns before the API exists at all, the agent runs normally, and once the API comes up
//! (8 s later, on the same address) every run made meanwhile is stored and `close()` reports
//! nothing lost. Default retry settings, as a user would have them.

mod common;

use std::time::{Duration, Instant};

use common::{down_address, get_json_from as get_json};
use prefactor::{Config, Error, InstanceId};
use prefactor_server::{LocalServer, ServerConfig};

const TOKEN: &str = "startup-token";
const OUTAGE: Duration = Duration::from_secs(8);
const RUNS: usize = 20;

#[prefactor::span(schema = "startup:lookup")]
async fn lookup(n: usize) -> usize {
    n * 2
}

#[prefactor::span(schema = "startup:step")]
async fn step(n: usize) -> usize {
    lookup(n).await + 1
}

#[prefactor::agent(name = "startup")]
async fn run(n: usize) -> (InstanceId, usize) {
    let id = prefactor::current_instance().expect("inside the agent").id();
    (id, step(n).await)
}

#[test]
fn an_agent_started_while_the_api_is_down_records_every_run_once_it_is_back() {
    let (down, address) = down_address();
    let config = Config::builder().api_url(format!("http://{address}")).api_token(TOKEN).build().expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (runs, report) = runtime.block_on(async {
        let outage_started = Instant::now();
        // The README's pattern, with `?`: it cannot fail because the API is down.
        let guard = prefactor::init(config).await.expect("init returns with the API down");
        assert!(
            matches!(guard.client().check_connection(Duration::ZERO).await, Err(Error::ApiUnreachable { .. })),
            "init did not wait for the API"
        );
        let mut runs = Vec::new();
        for n in 0..RUNS {
            let (id, output) = run(n).await;
            assert_eq!(output, n * 2 + 1, "the agent runs normally");
            runs.push(id);
            tokio::time::sleep(OUTAGE / (RUNS as u32 * 2)).await;
        }
        assert_eq!(guard.client().stats().sent, 0, "nothing could be delivered yet");
        tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
        drop(down);
        let server = LocalServer::start(ServerConfig::default().with_token(TOKEN).with_listen(address))
            .expect("the API comes up on the address that was down");
        let report = guard.close().await;
        (runs, (server, report))
    });
    let (server, report) = report;
    let report = report.expect("close reports nothing lost");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.delivered, RUNS as u64 * 7, "register, start, 2 spans × create and finish, finish");
    for id in runs {
        let details = &get_json(&server, &format!("/agent_instance/{id}"))["details"];
        assert_eq!(details["status"], "complete", "{details:#}");
        let spans = get_json(&server, &format!("/agent_spans?agent_instance_id={id}&pagination[page_size]=10"));
        let spans = spans["summaries"].as_array().expect("span list");
        let of = |schema: &str| spans.iter().find(|s| s["schema_name"] == schema).expect("stored").clone();
        assert_eq!(spans.len(), 2);
        assert_eq!(of("startup:lookup")["parent_span_id"], of("startup:step")["id"]);
        assert!(spans.iter().all(|s| s["status"] == "complete"), "{spans:#?}");
    }
}
