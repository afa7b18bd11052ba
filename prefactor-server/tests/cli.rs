//! The `prefactor-server` binary: flags, the stdout contract, and clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(args: &[&str], token_env: Option<&str>) -> (Child, Vec<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prefactor-server"));
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    match token_env {
        Some(token) => command.env("PREFACTOR_SERVER_TOKEN", token),
        None => command.env_remove("PREFACTOR_SERVER_TOKEN"),
    };
    let mut child = command.spawn().expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines.iter().any(|l: &String| l.starts_with("listening on ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no 'listening on' line within 20 s; got {lines:?}");
            }
        }
    }
    (child, lines)
}

fn base_url(lines: &[String]) -> String {
    lines.iter().find_map(|l| l.strip_prefix("listening on ")).unwrap().to_string()
}

async fn ping(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/api/v1/ping"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn terminate_and_wait(mut child: Child) -> std::process::ExitStatus {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn explicit_token_prints_only_the_listening_line_and_exits_cleanly_on_sigterm() {
    let (child, lines) = spawn(&["--listen", "127.0.0.1:0", "--db", ":memory:", "--token", "cli-token"], None);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let url = base_url(&lines);
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    assert_eq!(ping(&url, "cli-token").await, 200);
    assert_eq!(ping(&url, "other").await, 401);
    let exit = terminate_and_wait(child);
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn without_token_one_is_generated_and_printed_first() {
    let (child, lines) = spawn(&["--listen", "127.0.0.1:0", "--db", ":memory:"], None);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let token = lines[0].strip_prefix("generated token: ").expect("token line first");
    assert_eq!(ping(&base_url(&lines), token).await, 200);
    assert!(terminate_and_wait(child).success());
}

#[tokio::test]
async fn token_from_environment_and_file_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let db_arg = db.to_str().unwrap();
    let (child, lines) = spawn(&["--listen", "127.0.0.1:0", "--db", db_arg, "--strict-agents"], Some("env-token"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(ping(&base_url(&lines), "env-token").await, 200);
    assert!(terminate_and_wait(child).success());
    assert!(db.exists());
}

#[test]
fn bad_listen_address_fails_with_nonzero_exit() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_prefactor-server")).args(["--listen", "not-an-address"]).output().unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}
