//! What the worker does to every payload before it is scheduled, spooled or sent: explicit
//! redactions (`Payload::with_redaction`, `#[span(redact(...))]`), the scrubbing of
//! secret-looking values, and the size limit. On the worker thread, so the agent's threads pay
//! nothing for them; before the spool and the network, so no secret reaches disk or the API.

use serde_json::{Map, Value};

use crate::config::Config;
use crate::queue::operation::Op;
use crate::record::payload::Payload;
use crate::record::scrub::Scrubber;
use crate::record::truncate::{MARKER_KEY, truncate};
use crate::report::stats::Counters;

/// Counts of what one operation's payloads went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) scrubbed: u64,
    pub(crate) truncated: u64,
}

impl Applied {
    pub(crate) fn count_into(self, counters: &Counters) {
        if self.scrubbed > 0 {
            Counters::add(&counters.scrubbed, self.scrubbed);
        }
        if self.truncated > 0 {
            Counters::add(&counters.truncated, self.truncated);
        }
    }
}

/// Applies the redactions, scrubbing and size limit to every payload of `op`.
pub(crate) fn apply(config: &Config, op: &mut Op) -> Applied {
    let mut applied = Applied::default();
    let mut each = |payload: &mut Option<Payload>| {
        if let Some(payload) = payload {
            apply_to(config.scrubber(), config.max_payload_bytes(), payload, &mut applied);
        }
    };
    match op {
        Op::CreateSpan(create) => {
            each(&mut create.payload);
            if let Some(end) = &mut create.end {
                each(&mut end.result);
            }
        }
        Op::FinishSpan(finish) => each(&mut finish.end.result),
        Op::Quality { payload, .. } => each(payload),
        Op::Register { .. } | Op::Start { .. } | Op::Finish { .. } => {}
    }
    applied
}

/// What the worker does to one payload under `config` (for benchmarks: `benches/redaction.rs`
/// measures the worker's cost per payload with it); the counts of values scrubbed and of
/// payloads truncated.
pub fn apply_to_payload(config: &Config, payload: &mut Payload) -> (u64, u64) {
    let mut applied = Applied::default();
    apply_to(config.scrubber(), config.max_payload_bytes(), payload, &mut applied);
    (applied.scrubbed, applied.truncated)
}

fn apply_to(scrubber: Option<&Scrubber>, max_bytes: usize, payload: &mut Payload, applied: &mut Applied) {
    let redaction = payload.redaction();
    let text = payload.as_json();
    let scrubber = scrubber.filter(|scrubber| scrubber.may_match(text));
    let over = text.len() > max_bytes;
    if redaction.is_none() && scrubber.is_none() && !over {
        return;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(text) else {
        // Deeper than serde_json parses (128 levels), or not JSON: it cannot be checked, so
        // nothing of it is sent.
        *payload = unreadable(text.len());
        applied.truncated += u64::from(over);
        return;
    };
    let mut changed = false;
    if let Some(redaction) = redaction {
        changed |= redaction.apply(&mut value) > 0;
    }
    if let Some(scrubber) = scrubber {
        let scrubbed = scrubber.scrub(&mut value);
        applied.scrubbed += scrubbed;
        changed |= scrubbed > 0;
    }
    if !changed && !over {
        // Nothing matched after all: the text goes as it is.
        return;
    }
    let mut replaced = Payload::replaced_by(&value);
    if replaced.as_json().len() > max_bytes {
        truncate(&mut value, replaced.as_json().len(), max_bytes);
        replaced = Payload::replaced_by(&value);
        applied.truncated += 1;
    }
    *payload = replaced;
}

/// What replaces a payload that cannot be parsed to be checked.
fn unreadable(len: usize) -> Payload {
    let mut map = Map::new();
    map.insert(
        MARKER_KEY.to_owned(),
        serde_json::json!({"original_bytes": len, "replaced": true, "reason": "not parseable JSON (nested deeper than 128 levels?)"}),
    );
    Payload::replaced_by(&Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::redaction::Redaction;
    use serde_json::json;
    use std::sync::LazyLock;

    fn config(build: impl FnOnce(crate::config::ConfigBuilder) -> crate::config::ConfigBuilder) -> Config {
        build(Config::builder().api_url("http://127.0.0.1:9").api_token("t")).build().unwrap()
    }

    fn applied(config: &Config, payload: Payload) -> (Value, Applied) {
        let mut payload = Some(payload);
        let mut applied = Applied::default();
        apply_to(config.scrubber(), config.max_payload_bytes(), payload.as_mut().unwrap(), &mut applied);
        (payload.unwrap().to_value(), applied)
    }

    static PATHS: LazyLock<Redaction> = LazyLock::new(|| Redaction::new(["messages[*].content"]).unwrap());

    #[test]
    fn redaction_scrubbing_and_limits_combine() {
        let config = config(|b| b.max_payload_bytes(4096));
        let payload = Payload::from(json!({
            "messages": [{"role": "user", "content": "private"}],
            "key": "sk-proj-abcdefghijklmnopqrstuvwxyz", "notes": "n".repeat(10_000)
        }))
        .with_redaction(&PATHS);
        let (value, applied) = applied(&config, payload);
        assert_eq!(value["messages"][0]["content"], "[REDACTED]");
        assert_eq!(value["key"], "[REDACTED]");
        assert!(value["notes"].as_str().unwrap().ends_with(" bytes]"));
        assert_eq!(applied, Applied { scrubbed: 1, truncated: 1 });
    }

    #[test]
    fn scrubbing_can_be_turned_off_and_redactions_still_apply() {
        let config = config(|b| b.scrub_secrets(false));
        let payload =
            Payload::from(json!({"messages": [{"content": "x"}], "password": "hunter2"})).with_redaction(&PATHS);
        let (value, applied) = applied(&config, payload);
        assert_eq!(value, json!({"messages": [{"content": "[REDACTED]"}], "password": "hunter2"}));
        assert_eq!(applied, Applied::default());
    }

    #[test]
    fn a_payload_too_deep_to_check_is_not_sent() {
        let deep = format!("{{\"password\":\"hunter2\",\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let payload = Payload::from_raw(serde_json::value::RawValue::from_string(deep).unwrap()).unwrap();
        let (value, _) = applied(&config(|b| b), payload);
        assert!(!value.to_string().contains("hunter2"));
        assert_eq!(value[MARKER_KEY]["replaced"], true);
    }
}
