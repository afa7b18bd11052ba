//! Startup: how long `Client::new` + `initialize` take with the API down (a 127.0.0.1 port that
//! refuses connections) and with it up. Neither waits for the network: the token check runs in
//! the background, so both are the cost of building the HTTP client and starting the worker
//! thread. Each iteration's client is shut down untimed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use prefactor_runtime::{Client, Config};
use prefactor_server::{LocalServer, ServerConfig};

fn config(api_url: &str, token: &str) -> Config {
    Config::builder().api_url(api_url).api_token(token).build().expect("valid config")
}

/// Times `iterations` startups of a fresh client; shutdowns are not timed.
fn startups(config: &Config, iterations: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let started = Instant::now();
        let client = Client::new(config.clone()).expect("client");
        client.initialize_blocking().expect("initialize never waits for the network");
        total += started.elapsed();
        let _ = client.shutdown_blocking(Duration::ZERO);
    }
    total
}

fn startup(c: &mut Criterion) {
    // Bound, not listening: connections are refused for as long as the socket lives.
    let down = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    down.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    let down_url = format!("http://{}", down.local_addr().expect("bound").as_socket().expect("ip"));
    let server = LocalServer::start(ServerConfig::default()).expect("local server");

    let mut group = c.benchmark_group("initialize");
    group.sample_size(30).measurement_time(Duration::from_secs(5));
    let api_down = config(&down_url, "token");
    group.bench_function("api_down", |b| b.iter_custom(|n| startups(&api_down, n)));
    let api_up = config(server.base_url(), server.token());
    group.bench_function("api_up", |b| b.iter_custom(|n| startups(&api_up, n)));
    group.finish();
}

criterion_group!(benches, startup);
criterion_main!(benches);
