//! Keeping secrets out of telemetry: `#[span(redact(...))]`, `Secret`, `Sensitive`, the default
//! scrubbing of secret-looking values, and the size limit that keeps a span whose payload is
//! too large. Synchronous code throughout (the same holds for async functions).
//!
//! ```sh
//! cargo run --example redaction
//! ```
//!
//! The agent below passes an API key, a customer's message, a password and a 600 KB document
//! to instrumented functions. What reaches the API: the key and the message as `"[REDACTED]"`
//! (asked for with `redact`), the password as `"[REDACTED]"` (a `Secret`), a key pasted into a
//! tool query scrubbed by default, the customer's e-mail in Prefactor's sensitive-value
//! encoding, and the document cut to the size limit with a marker saying what was cut. With
//! the local server, the example then searches its SQLite files for each secret.
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API; otherwise it
//! starts the local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use prefactor::{CloseReport, InstanceId, Payload, Secret, Sensitive};
use serde::Serialize;

const API_KEY: &str = "sk-proj-Xx9ExampleKeyNeverSentAbcdefgh";
const CUSTOMER_MESSAGE: &str = "My card 4111-1111-1111-1111 was charged twice";
const PASSWORD: &str = "hunter2-example-password";

/// One chat message.
#[derive(Debug, Clone, Serialize, prefactor::Payload)]
struct Message {
    role: String,
    content: String,
}

/// Credentials of the ticketing system: the password never serializes.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Login {
    user: String,
    password: Secret<String>,
}

/// The model call: the key and every message's text are redacted (the roles are kept).
#[prefactor::span(schema = "agent:llm", title = "LLM call", redact(api_key, "messages[*].content"))]
fn answer(messages: &[Message], api_key: &str, temperature: f32) -> String {
    let _ = (api_key, temperature);
    format!("Sorry about the double charge ({} messages read); a refund is on its way.", messages.len())
}

/// A search tool: nothing asked for, but the key pasted into the query is scrubbed by default.
#[prefactor::span(schema = "agent:tool", title = "Search")]
fn search(query: &str) -> Vec<String> {
    vec![format!("{} results", query.len())]
}

/// Opens a ticket: the password is a `Secret`, the e-mail goes as a sensitive value.
#[prefactor::span(schema = "agent:ticket", title = "Open ticket")]
fn open_ticket(login: &Login, customer: &Sensitive<String>, attachment: &str) -> u32 {
    let _ = (login.password.expose(), customer.value());
    u32::try_from(attachment.len() % 10_000).unwrap_or(0)
}

/// The agent: one support conversation.
#[prefactor::agent(name = "support-redaction", version = "1.0.0")]
fn support(customer_email: &str) -> Option<InstanceId> {
    let messages = [
        Message { role: "system".into(), content: "You are a support agent.".into() },
        Message { role: "user".into(), content: CUSTOMER_MESSAGE.into() },
    ];
    let _ = search(&format!("refund policy --key {API_KEY}"));
    let _ = answer(&messages, API_KEY, 0.2);
    let login = Login { user: "agent-7".into(), password: Secret::new(PASSWORD.into()) };
    let customer = Sensitive::new("email", customer_email.to_owned()).label("pii");
    let _ = open_ticket(&login, &customer, &"scanned receipt ".repeat(40_000));
    // The explicit API follows the same rules (a span of a type `#[span]` declared above).
    if let Some(run) = prefactor::current_instance() {
        let payload = Payload::from_serialize(&serde_json::json!({"query": format!("login password={PASSWORD}")}));
        run.span("agent:tool").payload(payload.unwrap_or_else(|_| Payload::empty())).start().complete();
    }
    prefactor::current_instance().map(|run| run.id())
}

/// What one run produced, read back from the API.
struct Outcome {
    report: CloseReport,
    run: recorded_run::RecordedRun,
    backend: backend::Backend,
}

fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-redaction.db")?;
    // Scrubbing is on by default; `.scrub_pattern(..)` adds patterns, `.scrub_secrets(false)`
    // turns the built-in ones off; `.max_payload_bytes(..)` sets the size limit (256 KiB).
    let config = backend.config()?.scrub_pattern(r"\b\d{4}-\d{4}-\d{4}-\d{4}\b").max_payload_bytes(64 * 1024);
    let guard = prefactor::init_blocking(config.build()?)?;
    let run_id = support("ana@example.com").ok_or("the agent did not run")?;
    let report = guard.client().close_blocking()?;
    drop(guard);
    let run = backend.fetch_run(&run_id).map_err(|error| error.to_string())?;
    Ok(Outcome { report, run, backend })
}

/// The secrets found in the embedded server's database files (`None` with a remote API).
fn secrets_on_disk(backend: &backend::Backend) -> Option<Vec<&'static str>> {
    let db = backend.db_path.as_ref()?;
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        bytes.extend(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    let found = |secret: &str| bytes.windows(secret.len()).any(|window| window == secret.as_bytes());
    Some([API_KEY, CUSTOMER_MESSAGE, PASSWORD].into_iter().filter(|secret| found(secret)).collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { report, run, backend } = run()?;
    let stats = report.stats;
    println!("client closed: {} operations delivered, nothing lost", report.delivered);
    println!(
        "secret-looking values scrubbed: {}; payloads cut to the size limit: {}\n",
        stats.scrubbed, stats.truncated
    );
    for span in &run.spans {
        let mut payload = span.payload.to_string();
        if payload.len() > 300 {
            let mut end = 300;
            while !payload.is_char_boundary(end) {
                end -= 1;
            }
            payload = format!("{}… ({} bytes)", &payload[..end], payload.len());
        }
        println!("{:<13} {payload}", span.schema_name);
    }
    if let Some(found) = secrets_on_disk(&backend) {
        println!(
            "\nsecrets in the server's database files: {}",
            if found.is_empty() { "none".into() } else { found.join(", ") }
        );
    }
    println!("{}", backend.location(&run.instance.id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::field;
    use serde_json::json;

    #[test]
    fn no_secret_reaches_the_api_and_the_large_span_is_kept() {
        let outcome = super::run().expect("the example runs");
        let run = &outcome.run;
        assert!(outcome.report.is_clean(), "{}", outcome.report);
        assert_eq!(run.spans.len(), 4, "{}", run.render());
        let llm = run.only("agent:llm").expect("the LLM span");
        assert_eq!(field(llm, "api_key"), Some(&json!("[REDACTED]")));
        assert_eq!(
            field(llm, "messages"),
            Some(&json!([{"role": "system", "content": "[REDACTED]"}, {"role": "user", "content": "[REDACTED]"}]))
        );
        let queries: Vec<_> = run.named("agent:tool").into_iter().filter_map(|tool| field(tool, "query")).collect();
        assert_eq!(queries, [&json!("refund policy --key [REDACTED]"), &json!("login password=[REDACTED]")]);
        let ticket = run.only("agent:ticket").expect("the ticket span");
        assert_eq!(field(ticket, "login"), Some(&json!({"user": "agent-7", "password": "[REDACTED]"})));
        assert_eq!(
            field(ticket, "customer"),
            Some(&json!({"$sensitive": "email", "value": "ana@example.com", "labels": ["pii"]}))
        );
        let marker = field(ticket, "$truncated").expect("the 640 KB attachment was cut down");
        assert_eq!(marker["paths"], json!(["attachment"]));
        assert_eq!(outcome.report.stats.truncated, 1);
        assert!(outcome.report.stats.scrubbed >= 2, "{:?}", outcome.report.stats);
        if let Some(found) = super::secrets_on_disk(&outcome.backend) {
            assert!(found.is_empty(), "secrets in the server's database files: {found:?}");
        }
    }
}
