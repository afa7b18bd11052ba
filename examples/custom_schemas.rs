//! Typed payloads: schemas derived from Rust types, rendered summaries, quality schemas.
//!
//! ```sh
//! cargo run --example custom_schemas
//! ```
//!
//! `#[derive(prefactor::Payload)]` turns a type into a JSON schema the API validates against:
//! the first paragraph of its doc comment becomes the `title`, the rest the `description`, and
//! serde's renames and enum tagging are described exactly as serde writes the data. Span
//! templates (Liquid) render each span's summary on the server; a quality schema, registered
//! with `SchemaRegistry::register_quality_schema` and filled with `record_quality`, scores the
//! whole run. The example prints the schema version document the client registered (as an
//! outline; `-- --json` prints the JSON itself), then the run with its rendered summaries.
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API; otherwise it
//! starts the local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;
#[path = "support/schema_outline.rs"]
mod schema_outline;

use prefactor::{AgentSchemaVersion, InstanceId, Payload, QualityType, SchemaRegistry};
use recorded_run::RecordedRun;
use serde::Serialize;
use serde_json::Value;

/// A support ticket
///
/// One message from a customer, as the help desk received it.
#[derive(Debug, Clone, Serialize, prefactor::Payload)]
#[serde(rename_all = "camelCase")]
struct Ticket {
    /// The help desk's number for the ticket.
    ticket_id: u32,
    /// Who wrote in.
    #[serde(rename = "from")]
    customer: String,
    subject: String,
    priority: Priority,
}

/// How urgent a ticket is
///
/// Chosen by the customer when writing in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, prefactor::Payload)]
#[serde(rename_all = "snake_case")]
enum Priority {
    Low,
    Normal,
    Urgent,
}

/// The agent's decision
///
/// Tagged by `action`: a reply goes out at once, an escalation goes to a team's queue.
#[derive(Debug, Serialize, prefactor::Payload)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Decision {
    /// Answer the customer directly.
    Reply { text: String, confidence: f32 },
    /// Hand the ticket to people.
    Escalate { team: String, reason: String },
}

/// Customer satisfaction
///
/// The survey answer the customer gave after the run: a 1 to 5 score and whether the first
/// answer solved the problem.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Satisfaction {
    /// 1 (angry) to 5 (delighted).
    score: u8,
    #[serde(rename = "firstContactResolution")]
    resolved_first_time: bool,
}

/// Decides what to do with a ticket (a deterministic stand-in for an LLM call).
#[prefactor::span(
    schema = "support:triage",
    title = "Triage",
    template = "#{{ ticket.ticketId }} {{ ticket.subject }} ({{ ticket.priority }}) from {{ ticket.from }}"
)]
fn triage(ticket: &Ticket) -> Decision {
    if ticket.priority == Priority::Urgent || ticket.subject.contains("refund") {
        Decision::Escalate { team: "billing".to_owned(), reason: format!("{:?} ticket about money", ticket.priority) }
    } else {
        Decision::Reply {
            text: format!("Hi {}, here is how to {}.", ticket.customer, ticket.subject),
            confidence: 0.82,
        }
    }
}

/// Sends the reply or files the escalation; the template branches on the decision's tag.
#[prefactor::span(
    schema = "support:act",
    title = "Act on decision",
    template = "{% if decision.action == 'reply' %}replied ({{ decision.confidence }}){% else %}escalated to {{ decision.team }}{% endif %}"
)]
fn act(ticket_id: u32, decision: &Decision) -> String {
    match decision {
        Decision::Reply { .. } => format!("email for #{ticket_id}"),
        Decision::Escalate { team, .. } => format!("{team} queue"),
    }
}

/// The agent: handles a batch of tickets, then records how satisfied the customers were.
#[prefactor::agent(name = "support-desk", version = "1.0.0", description = "Answers or escalates support tickets")]
fn support_desk(tickets: &[Ticket]) -> Option<InstanceId> {
    let mut replied = 0;
    for ticket in tickets {
        let decision = triage(ticket);
        replied += u8::from(matches!(decision, Decision::Reply { .. }));
        act(ticket.ticket_id, &decision);
    }
    let run = prefactor::current_instance()?;
    let survey = Satisfaction { score: 3 + replied.min(2), resolved_first_time: replied > 0 };
    if let Ok(payload) = Payload::from_serialize(&survey) {
        run.record_quality("csat", payload);
    }
    Some(run.id())
}

/// The quality schema, described by the same derive as the span payloads: its title and
/// description come from `Satisfaction`'s doc comment.
fn schemas() -> Result<SchemaRegistry, prefactor::Error> {
    let schema = prefactor::schema_for::<Satisfaction>();
    let text = |key: &str| schema.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut quality = QualityType::new("csat", schema.clone())
        .template("{{ score }}/5{% if firstContactResolution %}, solved at first contact{% endif %}");
    if let Some(title) = text("title") {
        quality = quality.title(title);
    }
    if let Some(description) = text("description") {
        quality = quality.description(description);
    }
    let mut registry = SchemaRegistry::new();
    registry.register_quality_schema(quality)?;
    Ok(registry)
}

fn tickets() -> Vec<Ticket> {
    let ticket = |ticket_id, customer: &str, subject: &str, priority| Ticket {
        ticket_id,
        customer: customer.to_owned(),
        subject: subject.to_owned(),
        priority,
    };
    vec![
        ticket(101, "ana@example.com", "reset a password", Priority::Normal),
        ticket(102, "bo@example.com", "refund a double charge", Priority::Low),
        ticket(103, "cy@example.com", "restore a deleted project", Priority::Urgent),
    ]
}

/// What the run produced, read back from the API.
struct Outcome {
    /// The schema version document the client registered with the instance.
    document: AgentSchemaVersion,
    /// The same document as the server received it (embedded server only).
    received: Option<Value>,
    run: RecordedRun,
    /// Kept alive (with its embedded server) until the outcome is printed.
    backend: backend::Backend,
}

/// Runs the agent once and reads back the schema document and the run.
fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-custom-schemas.db")?;
    let guard = prefactor::init_blocking(backend.config()?.schema_registry(schemas()?).build()?)?;
    // The merged registry: the explicit quality schema plus every `#[span]` of this program.
    let document = guard.client().schema_registry().to_agent_schema_version(None);

    let instance = support_desk(&tickets()).ok_or("the agent did not run")?;

    guard.client().close_blocking()?;
    drop(guard);
    let received = backend.server.as_ref().and_then(|server| {
        // The register body went alone, or as an item of a bulk request (the default delivery).
        let bodies = server.requests().into_iter().filter_map(|request| match request.path.as_str() {
            "/api/v1/agent_instance/register" => request.body,
            "/api/v1/bulk" => request.body?["items"]
                .as_array()?
                .iter()
                .find(|item| item["_type"] == "agent_instances/register")
                .cloned(),
            _ => None,
        });
        bodies.into_iter().next()?.get("agent_schema_version").cloned()
    });
    let run = backend.fetch_run(&instance).map_err(|error| error.to_string())?;
    Ok(Outcome { document, received, run, backend })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { document, received, run, backend } = run()?;
    println!("The schema version document the client registered:\n");
    if std::env::args().any(|arg| arg == "--json") {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        println!("{}", schema_outline::outline_document(&document));
    }
    if received.is_some_and(|received| received == serde_json::to_value(&document).unwrap_or_default()) {
        println!("(the local server received exactly this document with the register request)\n");
    }
    print!("{}", run.render());
    for (name, summary) in run.instance.quality_summaries.iter().flatten() {
        println!("quality: {name} = {summary}");
    }
    println!();
    println!("{}", backend.location(&run.instance.id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::result_field;
    use serde_json::{Value, json};

    /// The params schema of span type `name`.
    fn params_schema(document: &Value, name: &str) -> Value {
        let span_types = document["span_type_schemas"].as_array().expect("span types");
        let span_type = span_types.iter().find(|t| t["name"] == name);
        span_type.unwrap_or_else(|| panic!("span type {name} is registered"))["params_schema"].clone()
    }

    fn resolve(root: &Value, schema: &Value) -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                resolve(root, root.pointer(pointer).unwrap_or_else(|| panic!("{reference} resolves")))
            }
            None => schema.clone(),
        }
    }

    #[test]
    fn derived_schemas_templates_and_quality_reach_the_api() {
        let outcome = super::run().expect("the example runs");
        let document = serde_json::to_value(&outcome.document).expect("the document serializes");
        if outcome.backend.server.is_some() {
            assert_eq!(outcome.received.as_ref(), Some(&document), "the server received the registry's document");
        }

        // Doc comments → title/description; serde renames → the names on the wire.
        let triage = params_schema(&document, "support:triage");
        let ticket = resolve(&triage, &triage["properties"]["ticket"]);
        assert_eq!(ticket["title"], "A support ticket");
        assert_eq!(ticket["description"], "One message from a customer, as the help desk received it.");
        let mut fields: Vec<&str> =
            ticket["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["from", "priority", "subject", "ticketId"]);
        let priority = resolve(&triage, &ticket["properties"]["priority"]);
        assert_eq!(priority["enum"], json!(["low", "normal", "urgent"]));

        // The internally tagged enum: one alternative per variant, told apart by `action`.
        let act = params_schema(&document, "support:act");
        let decision = resolve(&act, &act["properties"]["decision"]);
        let tags: Vec<&Value> = decision["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .map(|variant| &variant["properties"]["action"]["const"])
            .collect();
        assert_eq!(tags, [&json!("reply"), &json!("escalate")]);

        // The run: summaries rendered by the server from the templates.
        let run = &outcome.run;
        assert_eq!(run.status(), "complete", "{}", run.render());
        let summaries: Vec<&str> = run.named("support:triage").iter().filter_map(|s| s.summary.as_deref()).collect();
        assert_eq!(
            summaries,
            [
                "#101 reset a password (normal) from ana@example.com",
                "#102 refund a double charge (low) from bo@example.com",
                "#103 restore a deleted project (urgent) from cy@example.com",
            ]
        );
        let acts: Vec<&str> = run.named("support:act").iter().filter_map(|s| s.summary.as_deref()).collect();
        assert_eq!(acts, ["replied (0.82)", "escalated to billing", "escalated to billing"]);
        let escalation = run.named("support:triage")[1];
        assert_eq!(result_field(escalation, "action"), Some(&json!("escalate")));
        assert_eq!(result_field(escalation, "team"), Some(&json!("billing")));

        // The quality schema: its title from the doc comment, its payload and rendered summary.
        let quality = &document["quality_schemas"][0];
        assert_eq!((&quality["name"], &quality["title"]), (&json!("csat"), &json!("Customer satisfaction")));
        let payloads = run.instance.quality_payloads.as_ref().expect("quality payloads");
        assert_eq!(payloads["csat"], json!({ "score": 4, "firstContactResolution": true }));
        let summary = run.instance.quality_summaries.as_ref().and_then(|q| q.get("csat"));
        assert_eq!(summary.map(String::as_str), Some("4/5, solved at first contact"));
    }
}
