//! The real thing: the official OpenTelemetry Python SDK with its OTLP/HTTP exporter (gzip,
//! protobuf) sends a small agent trace (an `invoke_agent` root, a `chat` child with the GenAI
//! attributes, a failing `execute_tool` child) to the local server, and the trace is read
//! back through the API with its tree intact.
//!
//! The SDK is installed into a venv under the target directory by `tests/otel_python/setup.sh`
//! (pinned versions from PyPI; reused when present). Without Python or the network the test
//! is skipped with the reason, unless `PREFACTOR_REQUIRE_PYTHON=1` (set by `.ci/run`) makes
//! that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Api;
use serde_json::Value;

/// Longest the Python exporter may take to deliver the trace (it retries on its own).
const PYTHON_DEADLINE: Duration = Duration::from_secs(90);

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otel_python")
}

/// The venv's python, made by the setup script; Err with the reason when it cannot be made.
fn python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("otel-python-venv");
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(script_dir().join("setup.sh"))
        .arg(&venv)
        .output()
        .map_err(|error| format!("cannot run bash: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "tests/otel_python/setup.sh failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    eprintln!("otel python venv ready in {:.1} s", started.elapsed().as_secs_f64());
    Ok(venv.join("bin/python"))
}

/// Runs the sender (bounded by [`PYTHON_DEADLINE`]); returns the trace id it printed.
fn send_trace(python: &Path, api: &Api) -> String {
    let mut child = Command::new(python)
        .arg(script_dir().join("send_trace.py"))
        .env("PREFACTOR_OTLP_ENDPOINT", api.url("/v1/traces"))
        .env("PREFACTOR_TOKEN", api.server.token())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let started = Instant::now();
    while child.try_wait().expect("child status").is_none() {
        if started.elapsed() > PYTHON_DEADLINE {
            let _ = child.kill();
            panic!("the Python exporter did not finish within {PYTHON_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "send_trace.py failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let line: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("one JSON line: {stdout}"));
    line["trace_id"].as_str().expect("trace_id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_from_the_opentelemetry_python_sdk_lands_with_its_tree_intact() {
    let python = match tokio::task::spawn_blocking(python).await.unwrap() {
        Ok(python) => python,
        Err(why) if std::env::var_os("PREFACTOR_REQUIRE_PYTHON").is_some() => {
            panic!("PREFACTOR_REQUIRE_PYTHON is set but the OpenTelemetry Python SDK could not be installed: {why}")
        }
        Err(why) => {
            eprintln!("skipping the OpenTelemetry Python SDK test: {why}");
            return;
        }
    };
    let api = Api::start();
    let trace_id = {
        let python = python.clone();
        let api_ref = &api;
        tokio::task::block_in_place(|| send_trace(&python, api_ref))
    };

    let (status, list) = api.get("/api/v1/agent_instance").await;
    assert_eq!(status, 200, "{list}");
    let runs = list["summaries"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one trace, one run: {list}");
    let run = &runs[0];
    assert_eq!(run["external_identifier"], format!("otel:{trace_id}"));
    assert_eq!(run["status"], "complete", "{run}");
    let (_, agent) = api.get(&format!("/api/v1/agent/{}", run["agent_id"].as_str().unwrap())).await;
    assert_eq!(agent["details"]["name"], "python-otel-agent");

    let (status, spans) =
        api.get(&format!("/api/v1/agent_spans?agent_instance_id={}", run["id"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{spans}");
    let spans = spans["summaries"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "{spans:?}");
    let named =
        |name: &str| spans.iter().find(|span| span["payload"]["name"] == name).unwrap_or_else(|| panic!("{name}"));
    let root = named("invoke_agent weather-agent");
    let chat = named("chat gpt-4o-mini");
    let tool = named("execute_tool get_weather");
    assert_eq!(root["schema_name"], "agent:agent");
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(root["payload"]["input"], "What is the weather in Paris?");
    assert_eq!(root["result_payload"]["output"], "I could not reach the weather service.");
    assert_eq!(chat["schema_name"], "agent:llm");
    assert_eq!(chat["parent_span_id"], root["id"]);
    assert_eq!(chat["payload"]["model"], "gpt-4o-mini");
    assert_eq!(chat["payload"]["provider"], "openai");
    assert_eq!(chat["payload"]["kind"], "client");
    assert_eq!(chat["payload"]["messages"][0]["parts"][0]["content"], "What is the weather in Paris?");
    assert_eq!(chat["result_payload"]["messages"][0]["parts"][0]["name"], "get_weather");
    assert_eq!(chat["result_payload"]["usage"]["input_tokens"], 42);
    assert_eq!(chat["result_payload"]["usage"]["output_tokens"], 7);
    assert_eq!(chat["result_payload"]["finish_reasons"][0], "tool_call");
    assert_eq!(tool["schema_name"], "agent:tool");
    assert_eq!(tool["parent_span_id"], root["id"]);
    assert_eq!(tool["status"], "failed");
    assert_eq!(tool["result_payload"]["error"], "weather service unreachable");
    assert_eq!(tool["payload"]["arguments"]["city"], "Paris");
    for span in spans {
        assert!(span["started_at"].as_str().unwrap() <= span["finished_at"].as_str().unwrap(), "{span}");
    }
}
