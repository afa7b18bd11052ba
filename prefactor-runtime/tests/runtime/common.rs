//! Shared helpers: a fresh server per test, a client configured for fast retries, and
//! read-back of the server's state over its HTTP API.

use std::time::Duration;

use prefactor_runtime::{Client, Config, ConfigBuilder, Delivery, InstanceId};
use prefactor_server::{LocalServer, RecordedRequest, ServerConfig};
use serde_json::Value;

pub fn server() -> LocalServer {
    LocalServer::start(ServerConfig::default()).expect("the local server starts")
}

/// Short retry delays keep the retry tests fast. One request per operation: most tests here
/// assert the wire shape of each endpoint; `bulk.rs` and the tests run `in_both_modes` cover
/// bulk delivery.
pub fn config(server: &LocalServer) -> ConfigBuilder {
    config_for(server, Delivery::PerRequest)
}

/// The test configuration with `delivery`.
pub fn config_for(server: &LocalServer, delivery: Delivery) -> ConfigBuilder {
    Config::builder()
        .delivery(delivery)
        .api_url(server.base_url())
        .api_token(server.token())
        .initial_retry_delay(Duration::from_millis(10))
        .max_retry_delay(Duration::from_millis(100))
        .request_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(20))
}

pub async fn client(server: &LocalServer) -> Client {
    client_for(server, Delivery::PerRequest).await
}

/// An initialized client delivering with `delivery`.
pub async fn client_for(server: &LocalServer, delivery: Delivery) -> Client {
    let client = Client::new(config_for(server, delivery).build().expect("valid config")).expect("client");
    client.initialize().await.expect("initialize");
    client
}

/// Both delivery modes, for tests whose assertions hold in each.
pub const BOTH_MODES: [Delivery; 2] = [Delivery::PerRequest, Delivery::Bulk];

pub async fn flush(client: &Client) {
    client.flush(Duration::from_secs(20)).await.expect("flush within 20 s");
}

pub async fn get_json(server: &LocalServer, path_and_query: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1{path_and_query}", server.base_url()))
        .bearer_auth(server.token())
        .send()
        .await
        .expect("GET reaches the server");
    assert!(response.status().is_success(), "GET {path_and_query}: {}", response.status());
    response.json().await.expect("JSON body")
}

pub async fn instance_details(server: &LocalServer, id: InstanceId) -> Value {
    get_json(server, &format!("/agent_instance/{id}")).await["details"].clone()
}

/// Every span of an instance (all pages).
pub async fn spans_of(server: &LocalServer, id: InstanceId) -> Vec<Value> {
    let mut spans = Vec::new();
    for page in 0..10_000 {
        let path =
            format!("/agent_spans?agent_instance_id={id}&pagination[page_size]=100&pagination[offset]={}", page * 100);
        let body = get_json(server, &path).await;
        let rows = body["summaries"].as_array().cloned().unwrap_or_default();
        let done = rows.len() < 100;
        spans.extend(rows);
        if done {
            break;
        }
    }
    spans
}

pub fn span_by_id<'a>(spans: &'a [Value], id: &str) -> &'a Value {
    spans.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("span {id} not on the server"))
}

/// Recorded requests whose method matches and whose path starts with `prefix`.
pub fn requests(server: &LocalServer, method: &str, prefix: &str) -> Vec<RecordedRequest> {
    server.requests().into_iter().filter(|r| r.method == method && r.path.starts_with(prefix)).collect()
}

/// A 127.0.0.1 address where nothing answers yet: the port is bound but not listening, so
/// connections are refused (as with an API that is down) and no other program can take it.
/// Drop the socket, then start a server on the address (`ServerConfig::with_listen`).
pub fn down_address() -> (socket2::Socket, std::net::SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind 127.0.0.1:0");
    let address = socket.local_addr().expect("bound").as_socket().expect("an IP address");
    (socket, address)
}
