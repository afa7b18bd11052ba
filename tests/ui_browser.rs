//! The trace UI in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/install-chromium` when missing) driven over WebDriver (`chromedriver` + fantoccini).
//!
//! Agents made with `#[prefactor::agent]` / `#[prefactor::span]` write to the local server;
//! the test logs in, opens their runs, checks the waterfall, expands a payload, reveals a
//! `{"$sensitive": ..}` value only on request, checks that stored `<script>` /
//! `<img onerror>` payloads show as text and never run, watches a live run
//! grow without a reload, presses terminate and sees the agent stop.
//!
//! Without a browser the test is skipped with a loud message, unless
//! `PREFACTOR_REQUIRE_BROWSER=1` (set by `.ci/run`), which makes a missing browser a failure.
//! A failing step saves a screenshot under `target/ui-screenshots/`. With
//! `PREFACTOR_UI_SCREENSHOT=docs/ui-run-view.png` it also saves the README's run-view picture.

mod common;

use std::fmt::Display;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{current_instance_id, flush, harness};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use prefactor::{InstanceId, Payload, Terminated};
use serde::Serialize;
use serde_json::{Value, json};

const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1360,1240",
];
const HOSTILE_NAME: &str = "<img src=x onerror=\"window.__pwned='img'\">";
const HOSTILE_SCRIPT: &str = "<script>window.__pwned='script'</script>";
const STOP_REASON: &str = "stopped from the browser test";
/// Personal data the agent chose to send marked `$sensitive` (not a credential: the client
/// scrubs those before they leave the process, so they never reach the UI at all).
const PRIVATE_PHONE: &str = "+351 912 345 678";

// ---- the agents ----------------------------------------------------------------------------

#[derive(Serialize, Payload)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize, Payload)]
struct Reply {
    text: String,
    usage: Usage,
}

#[derive(Debug)]
struct ToolError(String);

impl Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[prefactor::span(schema = "ui:llm", title = "LLM call", template = "{{ model }}")]
async fn complete(model: &str, prompt: &str) -> Reply {
    tokio::time::sleep(Duration::from_millis(30)).await;
    Reply { text: format!("A plan for: {prompt}"), usage: Usage { input_tokens: 1200, output_tokens: 340 } }
}

#[prefactor::span(schema = "ui:tool", title = "Tool call", template = "{{ name }}")]
async fn call_tool(name: &str, input: &str) -> Result<String, ToolError> {
    tokio::time::sleep(Duration::from_millis(15)).await;
    if name == "weather" {
        Err(ToolError("weather service timed out after 250 ms".into()))
    } else {
        Ok(input.to_owned())
    }
}

#[prefactor::span(schema = "ui:auth", title = "Sign in")]
async fn sign_in(profile: &Value) -> bool {
    profile.is_object()
}

#[prefactor::agent(name = "ui-trip-planner", version = "1.0.0", description = "plans a day out")]
async fn plan_trip(ids: mpsc::Sender<InstanceId>) -> Result<String, ToolError> {
    ids.send(current_instance_id()).expect("receiver alive");
    sign_in(&json!({"user": "ana", "phone": {"$sensitive": "pii", "value": PRIVATE_PHONE, "labels": ["contact"]}}))
        .await;
    let reply = complete("sim-planner-1", "a sunny day in Lisbon").await;
    let _ = call_tool("weather", "Lisbon").await;
    call_tool(HOSTILE_NAME, HOSTILE_SCRIPT).await?;
    Ok(reply.text)
}

#[prefactor::span(schema = "ui:step", title = "Step", template = "step {{ number }}")]
async fn step(number: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(10)).await;
    number * 2
}

/// Works until terminated (bounded: at most 600 steps, about 100 s).
#[prefactor::agent(name = "ui-live-worker", version = "1.0.0")]
async fn work_until_stopped(ids: mpsc::Sender<InstanceId>) -> Result<u32, Terminated> {
    ids.send(current_instance_id()).expect("receiver alive");
    for number in 0..600 {
        prefactor::check_terminated()?;
        step(number).await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(150)) => {}
            reason = prefactor::terminated() => return Err(Terminated { reason }),
        }
    }
    Ok(600)
}

// ---- browser plumbing ----------------------------------------------------------------------

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from("/usr/lib/chromium"));
    names.iter().flat_map(|name| dirs.iter().map(move |dir| dir.join(name))).find(|candidate| candidate.is_file())
}

/// chromedriver and chromium, installed with the project's script when missing.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let find = || Some((find_program(&["chromedriver"])?, find_program(&["chromium", "chromium-browser"])?));
    if let Some(found) = find() {
        return Ok(found);
    }
    let script = repo_root().join(".ci/install-chromium");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()));
    }
    find().ok_or_else(|| "chromium / chromedriver still missing after the install script".to_string())
}

struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn start_driver(chromedriver: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let profile = std::env::temp_dir().join(format!("prefactor-ui-chromium-{}-{port}", std::process::id()));
    let driver = Driver { child, url, profile };
    let deadline = Instant::now() + Duration::from_secs(20);
    let http = reqwest::blocking::Client::new();
    while http.get(format!("{}/status", driver.url)).timeout(Duration::from_secs(2)).send().is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not answer within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

async fn open_browser(driver: &Driver, chromium: &Path) -> Client {
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| (*flag).to_string()).collect();
    args.push(format!("--user-data-dir={}", driver.profile.display()));
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args}
    });
    let Value::Object(capabilities) = capabilities else { unreachable!("an object literal") };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in headless Chromium")
}

type Step<T> = Result<T, String>;

fn fail<E: Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |error| format!("{what}: {error}")
}

async fn save_screenshot(client: &Client, path: &Path) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match client.screenshot().await {
        Ok(png) => match std::fs::write(path, png) {
            Ok(()) => eprintln!("screenshot saved: {}", path.display()),
            Err(error) => eprintln!("cannot save {}: {error}", path.display()),
        },
        Err(error) => eprintln!("cannot take a screenshot: {error}"),
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Step<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Step<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn script(client: &Client, source: &str) -> Step<Value> {
    client.execute(source, vec![]).await.map_err(fail("script"))
}

async fn row_count(client: &Client) -> Step<usize> {
    Ok(client.find_all(Locator::Css(".span-row")).await.map_err(fail("span rows"))?.len())
}

async fn assert_nothing_ran(client: &Client) -> Step<()> {
    let pwned = script(client, "return window.__pwned === undefined ? null : String(window.__pwned);").await?;
    if pwned.is_null() { Ok(()) } else { Err(format!("a stored payload ran in the page: {pwned}")) }
}

// ---- the test ------------------------------------------------------------------------------

#[test]
fn the_trace_ui_in_headless_chromium() {
    let (chromedriver, chromium) = match browser() {
        Ok(found) => found,
        Err(why) if std::env::var_os("PREFACTOR_REQUIRE_BROWSER").is_some() => {
            panic!("PREFACTOR_REQUIRE_BROWSER is set but no browser: {why}")
        }
        Err(why) => {
            eprintln!("\n{}\nSKIPPED the_trace_ui_in_headless_chromium: {why}\n{}\n", "!".repeat(72), "!".repeat(72));
            return;
        }
    };
    let server = &harness().server;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let driver = start_driver(&chromedriver);
    runtime.block_on(async {
        let client = open_browser(&driver, &chromium).await;
        let outcome = drive(&client, server.base_url(), server.token()).await;
        if let Err(problem) = &outcome {
            let path = repo_root().join("target/ui-screenshots/the_trace_ui_in_headless_chromium.png");
            save_screenshot(&client, &path).await;
            eprintln!("page text at failure: {:?}", script(&client, "return document.body.innerText").await);
            let _ = client.close().await;
            panic!("{problem}");
        }
        let _ = client.close().await;
    });
}

async fn drive(client: &Client, base: &str, token: &str) -> Step<()> {
    let (ids, id_rx) = mpsc::channel();
    plan_trip(ids.clone()).await.map_err(fail("the finished agent failed"))?;
    let finished = id_rx.recv().map_err(fail("finished run id"))?;
    flush();

    log_in(client, base, token).await?;
    open_finished_run(client, finished).await?;
    reveal_a_sensitive_value_only_when_asked(client).await?;
    expand_payload_and_check_hostile_data(client).await?;

    let worker = tokio::spawn(work_until_stopped(ids));
    let live = id_rx.recv_timeout(Duration::from_secs(10)).map_err(fail("live run id"))?;
    watch_live_run(client, live).await?;
    terminate_and_see_the_agent_stop(client, worker).await
}

async fn log_in(client: &Client, base: &str, token: &str) -> Step<()> {
    client.goto(&format!("{base}/")).await.map_err(fail("open the UI"))?;
    let field = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("login-token"))
        .await
        .map_err(fail("login form"))?;
    let guarded = script(client, "return fetch('/ui/api/agents').then(r => r.status)").await?;
    if guarded != json!(401) {
        return Err(format!("data readable before login: {guarded}"));
    }
    field.send_keys("not-the-token").await.map_err(fail("type"))?;
    client.find(Locator::Id("login-submit")).await.map_err(fail("submit"))?.click().await.map_err(fail("click"))?;
    eventually("the wrong-token message", Duration::from_secs(5), || async {
        let text = client
            .find(Locator::Id("login-error"))
            .await
            .map_err(fail("error line"))?
            .text()
            .await
            .map_err(fail("text"))?;
        Ok((!text.is_empty()).then_some(()))
    })
    .await?;
    field.clear().await.map_err(fail("clear"))?;
    field.send_keys(token).await.map_err(fail("type token"))?;
    client.find(Locator::Id("login-submit")).await.map_err(fail("submit"))?.click().await.map_err(fail("click"))?;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("agents"))
        .await
        .map_err(fail("agents page"))?;
    let cookie_visible = script(client, "return document.cookie.includes('pf_session')").await?;
    if cookie_visible != json!(false) {
        return Err("the session cookie is readable from script".into());
    }
    Ok(())
}

async fn open_finished_run(client: &Client, run: InstanceId) -> Step<()> {
    let agent = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::LinkText("ui-trip-planner"))
        .await
        .map_err(fail("agent link"))?;
    agent.click().await.map_err(fail("open agent"))?;
    let row = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("tr[data-run-id='{run}']")))
        .await
        .map_err(fail("the run in the runs table"))?;
    let row_text = row.text().await.map_err(fail("run row"))?;
    if !row_text.contains("weather service timed out") || !row_text.contains("failed") {
        return Err(format!("the runs table should show the status and the error: {row_text}"));
    }
    row.click().await.map_err(fail("open run"))?;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("waterfall"))
        .await
        .map_err(fail("waterfall"))?;
    let rows = row_count(client).await?;
    if rows != 4 {
        return Err(format!("expected the run's 4 spans in the waterfall, found {rows}"));
    }
    let failed = client.find(Locator::Css(".span-row.failed")).await.map_err(fail("the failed span's row"))?;
    let failed_text = failed.text().await.map_err(fail("failed row text"))?;
    if !failed_text.contains("weather service timed out after 250 ms") {
        return Err(format!("the failed span shows its error: {failed_text}"));
    }
    let usage = client
        .find(Locator::Id("usage"))
        .await
        .map_err(fail("usage totals"))?
        .text()
        .await
        .map_err(fail("usage text"))?;
    if !usage.contains("1,200") || !usage.contains("1,540") {
        return Err(format!("token totals: {usage}"));
    }
    Ok(())
}

async fn page_text(client: &Client) -> Step<String> {
    Ok(script(client, "return document.body.innerText").await?.as_str().unwrap_or_default().to_string())
}

async fn reveal_a_sensitive_value_only_when_asked(client: &Client) -> Step<()> {
    let row = client
        .find(Locator::XPath("//div[contains(@class,'span-row')][.//span[text()='Sign in']]"))
        .await
        .map_err(fail("the sign-in span's row"))?;
    row.click().await.map_err(fail("expand the sign-in span"))?;
    client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(".detail .reveal"))
        .await
        .map_err(fail("the hidden value"))?;
    let text = page_text(client).await?;
    if text.contains(PRIVATE_PHONE) || !text.contains("[sensitive pii contact]") {
        return Err(format!("a $sensitive value shows only its kind until asked: {text}"));
    }
    client
        .find(Locator::Css(".detail .reveal"))
        .await
        .map_err(fail("show button"))?
        .click()
        .await
        .map_err(fail("show"))?;
    eventually("the value after pressing show", Duration::from_secs(5), || async {
        Ok(page_text(client).await?.contains(PRIVATE_PHONE).then_some(()))
    })
    .await?;
    // Collapse it again so the rest of the test starts from the plain waterfall.
    client
        .find(Locator::XPath("//div[contains(@class,'span-row')][.//span[text()='Sign in']]"))
        .await
        .map_err(fail("the sign-in span's row"))?
        .click()
        .await
        .map_err(fail("collapse the sign-in span"))
}

async fn expand_payload_and_check_hostile_data(client: &Client) -> Step<()> {
    let llm = client
        .find(Locator::XPath("//div[contains(@class,'span-row')][.//span[text()='LLM call']]"))
        .await
        .map_err(fail("the LLM span's row"))?;
    llm.click().await.map_err(fail("expand the LLM span"))?;
    let detail = client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(".detail .json"))
        .await
        .map_err(fail("payload JSON"))?;
    let text = detail.text().await.map_err(fail("payload text"))?;
    if !text.contains("a sunny day in Lisbon") {
        return Err(format!("the payload shows its prompt: {text}"));
    }
    // Collapse and expand the result's `usage` object.
    let usage = client
        .find(Locator::XPath(
            "//div[contains(@class,'detail')]//details[summary/span[@class='key' and text()='\"usage\": ']]",
        ))
        .await
        .map_err(fail("the usage object in the result"))?;
    let summary = usage.find(Locator::Css("summary")).await.map_err(fail("usage summary"))?;
    summary.click().await.map_err(fail("collapse usage"))?;
    if usage.attr("open").await.map_err(fail("open attribute"))?.is_some() {
        return Err("clicking the summary collapses the object".into());
    }
    summary.click().await.map_err(fail("expand usage"))?;
    if usage.attr("open").await.map_err(fail("open attribute"))?.is_none() {
        return Err("clicking again expands it".into());
    }
    if let Some(path) = std::env::var_os("PREFACTOR_UI_SCREENSHOT") {
        script(client, "window.scrollTo(0, 0); return null;").await?;
        save_screenshot(client, &repo_root().join(path)).await;
    }
    let hostile = client
        .find(Locator::XPath(
            "//div[contains(@class,'span-row')][.//span[@class='summary' and starts-with(text(), '<img')]]",
        ))
        .await
        .map_err(fail("the hostile span's row, its template summary shown as text"))?;
    hostile.click().await.map_err(fail("expand the hostile span"))?;
    eventually("the hostile payload shown as text", Duration::from_secs(5), || async {
        let body = script(client, "return document.body.innerText").await?;
        let shown = body.as_str().unwrap_or_default();
        Ok((shown.contains("<script>window.__pwned='script'</script>") && shown.contains("onerror=")).then_some(()))
    })
    .await?;
    let injected = script(client, "return document.querySelectorAll('main img, main script').length").await?;
    if injected != json!(0) {
        return Err(format!("payload markup became elements: {injected}"));
    }
    assert_nothing_ran(client).await
}

async fn watch_live_run(client: &Client, run: InstanceId) -> Step<()> {
    client.goto(&format!("{}/#/runs/{run}", harness().server.base_url())).await.map_err(fail("open the live run"))?;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("live"))
        .await
        .map_err(fail("live marker"))?;
    script(client, "window.__samePage = 'yes'; return null;").await?;
    let first = eventually("the live run's first span", Duration::from_secs(10), || async {
        let rows = row_count(client).await?;
        Ok((rows >= 1).then_some(rows))
    })
    .await?;
    eventually("new spans to appear without a reload", Duration::from_secs(15), || async {
        Ok((row_count(client).await? >= first + 2).then_some(()))
    })
    .await?;
    let same = script(client, "return window.__samePage || null").await?;
    if same != json!("yes") {
        return Err("the page reloaded instead of updating".into());
    }
    Ok(())
}

async fn terminate_and_see_the_agent_stop(
    client: &Client,
    worker: tokio::task::JoinHandle<Result<u32, Terminated>>,
) -> Step<()> {
    let reason = client.find(Locator::Id("terminate-reason")).await.map_err(fail("reason field"))?;
    let button = client.find(Locator::Id("terminate-button")).await.map_err(fail("terminate button"))?;
    if button.attr("disabled").await.map_err(fail("disabled"))?.is_none() {
        return Err("terminate needs a reason first".into());
    }
    reason.send_keys(STOP_REASON).await.map_err(fail("type reason"))?;
    // The live view may re-render between finding and clicking; find the button again.
    let button = client.find(Locator::Id("terminate-button")).await.map_err(fail("terminate button"))?;
    button.click().await.map_err(fail("press terminate"))?;
    eventually("the run to show terminated", Duration::from_secs(10), || async {
        // Read by script: the live view may replace the element between a find and a read.
        let status = script(client, "return document.getElementById('run-status')?.textContent ?? null").await?;
        Ok((status == json!("terminated")).then_some(()))
    })
    .await?;
    let ended = tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .map_err(fail("the agent did not stop within 15 s"))?
        .map_err(fail("agent task"))?;
    match ended {
        Err(Terminated { reason }) if reason.as_deref() == Some(STOP_REASON) => Ok(()),
        other => Err(format!("the agent should stop with the typed reason, ended with {other:?}")),
    }
}
