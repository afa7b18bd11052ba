//! Connection-level abuse over real sockets: a slowloris client (headers a byte at a time, or
//! connections that never send anything) cannot exhaust the server. Connections beyond the
//! limit wait and are served once others close; slow headers are cut off by the header
//! timeout; `/ping` and writes from a fresh client work again as soon as a slot frees.

mod common;

use std::time::{Duration, Instant};

use common::Api;
use prefactor_server::ServerConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from `stream` until it closes, an error, or `wait` passes; returns what arrived and
/// whether the peer closed.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (answer, true),
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => return (answer, false),
        }
    }
}

/// Sends a ping on `stream` and reads its status line within `wait` (0 when none arrived).
async fn ping_on(stream: &mut TcpStream, api: &Api, wait: Duration) -> u16 {
    let request = format!(
        "GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        api.server.token()
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let (answer, _) = read_until_closed(stream, wait).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

async fn ping_and_write(api: &Api) {
    let (status, body) = api.get("/api/v1/ping").await;
    assert_eq!(status, 200, "{body}");
    let instance = api.register_id().await;
    let (status, body) = api.create_span(&instance, "t:after", "active", json!({"ok": true})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_a_byte_at_a_time_are_cut_off_by_the_header_timeout() {
    let api = Api::start_with(ServerConfig::default().with_header_read_timeout(Duration::from_secs(1)));
    let mut stream = TcpStream::connect(api.server.local_addr()).await.expect("connects");
    let head = format!("GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n", api.server.token());
    let mut trickle = head.into_bytes();
    trickle.extend(std::iter::repeat_n(b'X', 400));
    // 100 ms a byte: 40 s to finish the head, if the server let it.
    let started = Instant::now();
    let mut cut_off = false;
    for byte in trickle {
        if stream.write_all(&[byte]).await.is_err() {
            cut_off = true;
            break;
        }
        let mut probe = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            // An error answer (hyper's 408) followed by the close is fine too.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still open after 15 s of trickled headers");
    }
    assert!(cut_off, "the server read a whole trickled head");
    ping_and_write(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_and_are_served_once_others_close() {
    let api = Api::start_with(ServerConfig::default().with_max_connections(4));
    let address = api.server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(address).await.expect("connects"));
    }
    // The fifth connection is queued in the backlog: its ping gets no answer while the four
    // idle connections hold every slot.
    let mut waiting = TcpStream::connect(address).await.expect("the kernel queues it");
    assert_eq!(ping_on(&mut waiting, &api, Duration::from_secs(1)).await, 0, "served beyond the limit");
    // One idle connection closes: the queued one is accepted and answered.
    drop(idle.pop());
    let (answer, _) = read_until_closed(&mut waiting, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "the queued ping is answered once a slot frees: {text:.200}");
    // And a fresh client can ping and write while the three others still idle.
    ping_and_write(&api).await;
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_holding_every_slot_are_closed_by_the_header_timeout() {
    let config = ServerConfig::default().with_max_connections(4).with_header_read_timeout(Duration::from_secs(1));
    let api = Api::start_with(config);
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(api.server.local_addr()).await.expect("connects"));
    }
    // Nobody closes them: the server does, after a second each, and the fresh client gets in.
    ping_and_write(&api).await;
    for stream in &mut idle {
        let (_, closed) = read_until_closed(stream, Duration::from_secs(10)).await;
        assert!(closed, "an idle connection was left open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_serves_requests_one_after_another_within_the_limit() {
    let api = Api::start_with(ServerConfig::default().with_max_connections(1));
    // reqwest keeps one connection alive across these requests; the limit of one does not
    // get in its way.
    for _ in 0..20 {
        let (status, body) = api.get("/api/v1/ping").await;
        assert_eq!(status, 200, "{body}");
    }
}
