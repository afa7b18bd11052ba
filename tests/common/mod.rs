//! Shared harness of the macro runtime tests: one local server and one installed global client
//! per test binary (the global client is process-wide), and read-back over the server's API.
#![allow(dead_code)]

use prefactor::{Config, InitGuard, InstanceId};
use prefactor_server::{LocalServer, ServerConfig};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

pub struct Harness {
    pub server: LocalServer,
    pub guard: InitGuard,
}

/// The server and the installed client (started on first use, in a sync context).
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let server = LocalServer::start(ServerConfig::default()).expect("the local server starts");
        let config = Config::builder()
            .api_url(server.base_url())
            .api_token(server.token())
            .termination_poll_interval(Duration::from_millis(50))
            .build()
            .expect("valid config");
        let guard = prefactor::init_blocking(config).expect("client initializes against the local server");
        Harness { server, guard }
    })
}

/// Waits until every queued operation reached the server.
pub fn flush() {
    harness().guard.client().flush_blocking(Duration::from_secs(20)).expect("flush within 20 s");
}

pub fn get_json(path_and_query: &str) -> Value {
    get_json_from(&harness().server, path_and_query)
}

/// `GET /api/v1{path_and_query}` of `server` (a server of the test's own), as JSON.
pub fn get_json_from(server: &LocalServer, path_and_query: &str) -> Value {
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1{path_and_query}", server.base_url()))
        .bearer_auth(server.token())
        .timeout(Duration::from_secs(10))
        .send()
        .expect("GET reaches the server");
    assert!(response.status().is_success(), "GET {path_and_query}: {}", response.status());
    response.json().expect("JSON body")
}

/// A 127.0.0.1 address that refuses connections (bound, not listening: an API that is down)
/// until the socket drops; then a server can start there (`ServerConfig::with_listen`).
pub fn down_address() -> (socket2::Socket, std::net::SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind 127.0.0.1:0");
    let address = socket.local_addr().expect("bound").as_socket().expect("an IP address");
    (socket, address)
}

/// The instance as stored by the server.
pub fn instance(id: InstanceId) -> Value {
    get_json(&format!("/agent_instance/{id}"))["details"].clone()
}

/// Every span of an instance, in start order.
pub fn spans_of(id: InstanceId) -> Vec<Value> {
    let body = get_json(&format!("/agent_spans?agent_instance_id={id}&pagination[page_size]=100"));
    body["summaries"].as_array().cloned().unwrap_or_default()
}

/// The spans of an instance, read once after a flush: `flush` waits for every operation
/// queued before it (by epoch, whatever else other tests queue meanwhile), so all `expected`
/// spans must be stored and finished by then. No polling: a regression of `flush` fails here.
pub fn finished_spans_of(id: InstanceId, expected: usize) -> Vec<Value> {
    flush();
    let spans = spans_of(id);
    let active = spans.iter().any(|span| span["status"] == "active" || span["status"] == "pending");
    assert!(
        spans.len() == expected && !active,
        "expected {expected} finished spans after a flush, the server has {spans:#?}"
    );
    spans
}

/// The only span of `schema` in `spans`.
pub fn span<'a>(spans: &'a [Value], schema: &str) -> &'a Value {
    let mut matching = spans.iter().filter(|span| span["schema_name"] == schema);
    let found = matching.next().unwrap_or_else(|| panic!("no `{schema}` span in {spans:#?}"));
    assert!(matching.next().is_none(), "several `{schema}` spans in {spans:#?}");
    found
}

/// The id of the running agent instance (call inside an `#[agent]` function).
pub fn current_instance_id() -> InstanceId {
    prefactor::current_instance().expect("inside an agent function").id()
}

/// Requests the server answered with a 4xx/5xx status (none expected in these tests).
pub fn rejected_requests() -> Vec<String> {
    harness()
        .server
        .requests()
        .into_iter()
        .filter(|request| request.status >= 400)
        .map(|request| format!("{} {} -> {} {:?}", request.method, request.path, request.status, request.body))
        .collect()
}
