//! Propagation across processes: an agent calls a tool service over HTTP, and the tool
//! service's spans join the agent's run, under the agent's span for that call. Two processes:
//! this program starts itself again as the tool service (an axum server with
//! `PropagationLayer`), each with its own client, both sending to the same API.
//!
//! ```sh
//! cargo run --example distributed_tool --features propagation-reqwest,propagation-tower
//! ```
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set, both processes send to that API;
//! otherwise the local server runs in the agent's process on a SQLite file, and the tool
//! service is pointed at it. Nothing here calls the outside network: the weather station and
//! the "LLM" are deterministic stand-ins.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::extract::Path;
use prefactor::propagation::{PropagationLayer, RequestBuilderExt};
use serde::Serialize;

/// The argument that makes this program the tool service.
const TOOL_SERVICE: &str = "tool-service";

/// A reading of the (stand-in) weather station.
#[derive(Debug, Serialize, serde::Deserialize, prefactor::Payload)]
struct Reading {
    city: String,
    celsius: i32,
    sky: String,
}

// ---- The tool service (its own process) ----

/// The station read by the tool service: a child of `lookup`.
#[prefactor::span(schema = "weather:station", template = "{{ city }}")]
fn read_station(city: &str) -> Reading {
    let celsius = i32::try_from(city.len()).unwrap_or(0) * 3 + 4;
    Reading { city: city.to_owned(), celsius, sky: "clear".to_owned() }
}

/// The tool service's handler span: in the agent's run, a child of the agent's `forecast` span.
#[prefactor::span(schema = "weather:lookup", template = "{{ city }}")]
async fn lookup(city: String) -> Reading {
    tokio::time::sleep(Duration::from_millis(5)).await; // the run is kept across `.await`
    read_station(&city)
}

/// Serves the weather tool until stdin closes; prints `TOOL_URL=<url>` once listening.
fn serve_tool_process() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Its own client, configured like any agent's (the parent passes the API in the environment).
    let guard = prefactor::init_blocking(prefactor::Config::from_env()?.build()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route(
            "/forecast/{city}",
            axum::routing::get(|Path(city): Path<String>| async { axum::Json(lookup(city).await) }),
        )
        .layer(PropagationLayer::new());
    runtime.spawn(async move { axum::serve(listener, app).await });
    println!("TOOL_URL={url}");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|read| read > 0) {
        line.clear();
    }
    guard.client().flush_blocking(Duration::from_secs(20))?;
    Ok(())
}

// ---- The agent ----

/// The agent's span for the call: the tool service's spans become its children.
#[prefactor::span(schema = "agent:tool", template = "forecast({{ city }})", skip(http, base))]
async fn forecast(http: &reqwest::Client, base: &str, city: &str) -> Result<Reading, String> {
    let response = http
        .get(format!("{base}/forecast/{city}"))
        .with_prefactor_context() // `prefactor-context` + `traceparent` of this run and span
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

#[prefactor::span(schema = "agent:llm", template = "{{ model }}")]
fn summarize(model: &str, reading: &Reading) -> String {
    let _ = model;
    format!("{}: {} °C, {} sky. Pack light.", reading.city, reading.celsius, reading.sky)
}

#[prefactor::agent(name = "trip-planner")]
async fn plan(http: &reqwest::Client, base: &str, city: &str) -> Result<(String, String), String> {
    let run = prefactor::current_instance().map(|i| i.id().to_string()).unwrap_or_default();
    let reading = forecast(http, base, city).await?;
    Ok((run, summarize("sim-gpt", &reading)))
}

/// The tool service's process: this program again, with `tool-service` (or, when this
/// program is the example's test binary, its `tool_service_process` test).
struct ToolService {
    child: Child,
    url: String,
}

impl ToolService {
    fn start(backend: &backend::Backend) -> Result<ToolService, Box<dyn std::error::Error + Send + Sync>> {
        let mut command = Command::new(std::env::current_exe()?);
        if cfg!(test) {
            command.args(["tests::tool_service_process", "--exact", "--ignored", "--nocapture"]);
            command.env("PREFACTOR_EXAMPLE_TOOL_SERVICE", "1");
        } else {
            command.arg(TOOL_SERVICE);
        }
        command
            .env("PREFACTOR_API_URL", &backend.api_url)
            .env("PREFACTOR_API_TOKEN", &backend.api_token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Its output is read to the end (a test harness prints after the URL, and a closed
        // pipe would make it fail); the URL line is handed over.
        let (sender, urls) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once("TOOL_URL=") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let url = urls.recv_timeout(Duration::from_secs(60)).map_err(|_| "the tool service did not start")?;
        Ok(ToolService { child, url })
    }

    /// Closes its stdin: it flushes its spans and exits.
    fn stop(mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        if status.success() { Ok(()) } else { Err(format!("the tool service exited with {status}").into()) }
    }
}

impl Drop for ToolService {
    fn drop(&mut self) {
        // Only when `stop` was not reached (an error on the way): never leave it running.
        if self.child.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one run of the example produced.
struct Outcome {
    answer: String,
    run: recorded_run::RecordedRun,
    backend: backend::Backend,
}

fn run() -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-distributed-tool.db").map_err(|e| e.to_string())?;
    let tool = ToolService::start(&backend)?;
    let guard = prefactor::init_blocking(backend.config()?.build()?)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let http = reqwest::Client::new();
    let (run_id, answer) = runtime.block_on(plan(&http, &tool.url, "Lisbon"))?;
    guard.client().flush_blocking(Duration::from_secs(20))?;
    tool.stop()?;
    drop(guard);
    let run = backend.fetch_run(&run_id)?;
    Ok(Outcome { answer, run, backend })
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if std::env::args().nth(1).as_deref() == Some(TOOL_SERVICE) {
        return serve_tool_process();
    }
    let Outcome { answer, run, backend } = run()?;
    println!("{answer}\n");
    println!("The run, with the tool service's spans under the agent's call:");
    backend.print_trace(&run);
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The tool service when the example runs as a test (started by the test below).
    #[test]
    #[ignore = "the tool service process of the example's test, which starts it"]
    fn tool_service_process() {
        if std::env::var_os("PREFACTOR_EXAMPLE_TOOL_SERVICE").is_some() {
            super::serve_tool_process().expect("the tool service serves");
        }
    }

    #[test]
    fn the_tool_services_spans_join_the_agents_run() {
        let outcome = super::run().expect("the example runs");
        assert_eq!(outcome.answer, "Lisbon: 22 °C, clear sky. Pack light.");
        let run = &outcome.run;
        assert_eq!(run.spans.len(), 4, "{}", run.render());
        let call = run.only("agent:tool").unwrap();
        let lookup = run.only("weather:lookup").unwrap();
        let station = run.only("weather:station").unwrap();
        assert_eq!(run.parent_of(lookup).map(|p| p.id.as_str()), Some(call.id.as_str()), "{}", run.render());
        assert_eq!(run.parent_of(station).map(|p| p.id.as_str()), Some(lookup.id.as_str()));
        assert_eq!(run.status(), "complete");
        assert!(run.spans.iter().all(|span| span.status.as_str() == "complete"), "{}", run.render());
    }
}
