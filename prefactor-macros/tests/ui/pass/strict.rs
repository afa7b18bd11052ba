//! Every supported function shape compiles without a single warning.
#![deny(warnings)]

use serde::Serialize;

/// A documented payload type.
#[derive(Serialize, prefactor::Payload)]
#[payload(title = "Question")]
pub struct Question {
    /// The text.
    pub text: String,
    #[serde(rename = "max_tokens")]
    pub limit: u32,
}

#[prefactor::span(schema = "agent:llm", title = "LLM", description = "One call", template = "{{ prompt }}", kind = "chat")]
fn sync_value(prompt: &str, question: &Question) -> String {
    format!("{prompt}{}", question.text)
}

/// The lookup tool reads data and talks to no one.
fn lookup_risk() -> prefactor::DataRisk {
    let mut risk = prefactor::DataRisk::default();
    risk.action_profile.read_data = prefactor::Permission::Allowed;
    risk.action_profile.external_communication = prefactor::Permission::Disallowed;
    risk
}

#[prefactor::span(schema = "agent:tool", err(Debug), fields(kind = "lookup", size = key.len()), data_risk = lookup_risk, kind = "execute_tool")]
fn sync_result(key: &str) -> Result<u32, std::io::Error> {
    key.parse::<u32>().map_err(std::io::Error::other)
}

#[prefactor::span(schema = "agent:generic", skip(label))]
fn generic<T: Serialize + Clone>(value: T, label: impl std::fmt::Display) -> Vec<T> {
    let _ = label.to_string();
    vec![value.clone(), value]
}

#[prefactor::span(schema = "agent:pattern")]
fn destructured((a, b): (u8, u8), _unused: bool) -> u16 {
    u16::from(a) + u16::from(b)
}

#[prefactor::span(schema = "agent:iter", skip_ret)]
fn returns_impl_trait(n: u8) -> impl Iterator<Item = u8> {
    0..n
}

struct Bot {
    name: String,
    scores: Vec<u8>,
}

impl Bot {
    #[prefactor::span(schema = "agent:method", name = "bot.name")]
    fn name(&self, suffix: &str) -> &str {
        let _ = suffix;
        &self.name
    }

    #[prefactor::span(schema = "agent:method_mut", skip_ret)]
    fn first(&mut self) -> &mut u8 {
        &mut self.scores[0]
    }

    #[prefactor::span(schema = "agent:async_method")]
    async fn ask(&self, n: u64) -> Result<u64, String> {
        if n == 0 {
            return Err("zero".into());
        }
        let extra: u64 = "1".parse().map_err(|_| "parse")?;
        Ok(n + extra + self.scores.len() as u64)
    }

    #[prefactor::span(schema = "agent:boxed")]
    fn boxed(&self, n: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async move { n + self.scores.len() as u64 })
    }
}

trait Tool {
    fn run(&self, input: String) -> String;
}

impl Tool for Bot {
    #[prefactor::span(schema = "agent:trait_impl")]
    fn run(&self, input: String) -> String {
        format!("{}{input}", self.name)
    }
}

#[derive(Debug)]
struct Stop(prefactor::Terminated);

impl From<prefactor::Terminated> for Stop {
    fn from(terminated: prefactor::Terminated) -> Self {
        Stop(terminated)
    }
}

#[prefactor::agent(id = "agent-1", name = "bot", version = "1.0.0", description = "d", purpose = "eval")]
fn agent_sync(n: u32) -> Result<u32, std::io::Error> {
    let mut bot = Bot { name: "b".into(), scores: vec![1] };
    *bot.first() += 1;
    let _ = bot.name("!");
    let _ = bot.run("x".into());
    let _ = generic(1_u8, "label");
    let _ = destructured((1, 2), true);
    let _ = returns_impl_trait(3).count();
    let _ = sync_value("p", &Question { text: "t".into(), limit: 1 });
    sync_result(&n.to_string())
}

#[prefactor::agent(stop_on_terminate)]
async fn agent_async(n: u64) -> Result<u64, Stop> {
    let bot = Bot { name: "b".into(), scores: vec![1] };
    let boxed = bot.boxed(n).await;
    Ok(bot.ask(n).await.unwrap_or(boxed))
}

/// A job from a queue: its id names the run in Prefactor too.
pub struct Job {
    pub id: String,
    pub ticket: Option<u64>,
}

#[prefactor::agent(external_id = job.id)]
fn agent_for_job(job: Job) -> String {
    // The id was read by reference: the body still owns the whole job.
    job.id
}

#[prefactor::agent(external_id = job.ticket)]
async fn agent_for_ticket(job: &Job) -> Option<u64> {
    job.ticket
}

#[prefactor::agent(external_id = "nightly-report")]
fn agent_with_a_fixed_id() {}

fn main() {
    let _ = agent_sync(1);
    let _ = agent_async(1);
    let _ = agent_for_job(Job { id: "job-1".into(), ticket: None });
    let _ = agent_for_ticket(&Job { id: "job-2".into(), ticket: Some(7) });
    agent_with_a_fixed_id();
}
