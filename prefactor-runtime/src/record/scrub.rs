//! `Scrubber`: finds secret-looking values in payloads (API keys, bearer tokens, passwords
//! under password-like keys, private keys, …) and replaces them by `"[REDACTED]"`. Run by the
//! worker thread, never the agent's.
//!
//! Cost: a payload's JSON text is first checked by `SecretPrefilter` (SIMD scans for what each
//! rule must contain); only when something may match is it parsed, walked and written again.
//! Typical payloads hold no secret and pay only the checks (see `BENCHMARKS.md`).

use regex::{Regex, RegexSet};
use serde_json::Value;

use crate::record::secret::REDACTED;
use crate::record::secret_prefilter::SecretPrefilter;

/// Built-in value patterns: what a secret looks like wherever it appears in a string. A
/// pattern with a group named `secret` replaces only that group (keeping `Bearer `, a URL's
/// user and host), others the whole match. These start with a case-sensitive literal (which
/// `SecretPrefilter` finds with SIMD); the three case-insensitive ones follow.
pub(crate) const PREFIXED_PATTERNS: &[&str] = &[
    // OpenAI (`sk-`, `sk-proj-`), Anthropic (`sk-ant-`), DeepSeek and most `sk-` keys.
    r"\bsk-[A-Za-z0-9_\-]{20,}",
    // Stripe secret and restricted keys.
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
    // AWS access key ids.
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    // GitHub tokens.
    r"\bgh[pousr]_[A-Za-z0-9]{36,}",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    // Google API keys.
    r"\bAIza[0-9A-Za-z_\-]{35}",
    // Slack tokens.
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    // Hugging Face tokens.
    r"\bhf_[A-Za-z0-9]{30,}",
    // Prefactor ingestion keys.
    r"\bpf_[A-Za-z0-9_\-]{24,}",
    // JSON Web Tokens (Prefactor session tokens among them).
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    // PEM private keys, to their end line (or the end of the string).
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
];

/// `Authorization: Bearer …` / `Basic …`.
pub(crate) const AUTH_HEADER: &str = r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9._~+/=\-]{16,})";

/// Credentials in URLs: `scheme://user:password@host`.
pub(crate) const URL_CREDENTIALS: &str = r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/:@]+:(?P<secret>[^\s/@]+)@";

/// `password=…`, `api_key: …`, `token=…` in free text (logs, query strings, config dumps), to
/// the next space or quote: a password may hold `&`, `,` or `;`, so what follows a secret in a
/// query string is redacted with it rather than risking a partial leak. Every name it reads
/// ends with one of [`SECRET_KEY_SUFFIXES`].
pub(crate) const KEY_VALUE: &str = r"(?i)(?:\b[a-z0-9_\-]*(?:password|passwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token)|\btoken|\bpwd)\s*[=:]\s*(?P<secret>[^\s'\x22]{4,})";

/// Every built-in value pattern.
fn builtin_patterns() -> impl Iterator<Item = &'static str> {
    PREFIXED_PATTERNS.iter().copied().chain([AUTH_HEADER, URL_CREDENTIALS, KEY_VALUE])
}

/// Keys whose values are secrets whatever they look like (matched on the whole key, case
/// insensitive): `password`, `db_password`, `apiKey`, `client_secret`, `Authorization`, …
/// Not `tokens`, `max_tokens` or `input_tokens`, which count LLM usage.
const SECRET_KEYS: &str = r"(?i:[a-z0-9_\-]*(?:password|passwd|passphrase|secret|api[_\-]?key|access[_\-]?token|refresh[_\-]?token|auth[_\-]?token|id[_\-]?token|session[_\-]?token|bearer[_\-]?token|private[_\-]?key|client[_\-]?secret)|token|pwd|authorization|proxy[_\-]authorization|cookie|set[_\-]cookie|credentials?)";

/// How every name [`SECRET_KEYS`] and [`KEY_VALUE`] match ends (ASCII case insensitive): what
/// `SecretPrefilter` looks for before each `:` and `=` of a payload's text.
pub(crate) const SECRET_KEY_SUFFIXES: [&str; 16] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "token",
    "privatekey",
    "private_key",
    "private-key",
    "pwd",
    "authorization",
    "cookie",
    "credential",
    "credentials",
];

/// Compiled scrubbing rules of one client: the built-in patterns (unless turned off) and the
/// user's own.
#[derive(Clone, Debug)]
pub(crate) struct Scrubber {
    /// Whether a payload's JSON text may hold anything to scrub, without parsing it.
    prefilter: SecretPrefilter,
    /// Built-in and custom value patterns, matched per string.
    set: RegexSet,
    /// The same patterns one by one, to replace what matched.
    patterns: Vec<Regex>,
    /// Keys whose values are redacted (`None` when the built-in rules are off).
    keys: Option<Regex>,
}

impl Scrubber {
    /// The rules: the built-in ones when `defaults`, plus `custom` patterns (regex syntax);
    /// the first invalid custom pattern is returned with the compiler's message.
    pub(crate) fn new(defaults: bool, custom: &[String]) -> Result<Option<Scrubber>, (String, String)> {
        for pattern in custom {
            Regex::new(pattern).map_err(|err| (pattern.clone(), err.to_string()))?;
        }
        if !defaults && custom.is_empty() {
            return Ok(None);
        }
        let mut all: Vec<&str> = if defaults { builtin_patterns().collect() } else { Vec::new() };
        all.extend(custom.iter().map(String::as_str));
        let compile_error = |err: regex::Error| (all.join(" | "), err.to_string());
        let set = RegexSet::new(&all).map_err(compile_error)?;
        let prefilter = SecretPrefilter::new(defaults, custom).map_err(compile_error)?;
        let patterns = all.iter().map(|p| Regex::new(p)).collect::<Result<Vec<_>, _>>().map_err(compile_error)?;
        let keys = if defaults { Some(Regex::new(&format!("^{SECRET_KEYS}$")).map_err(compile_error)?) } else { None };
        Ok(Some(Scrubber { prefilter, set, patterns, keys }))
    }

    /// Whether the JSON text `json` may hold something to scrub (no false negatives: see
    /// `SecretPrefilter`).
    pub(crate) fn may_match(&self, json: &str) -> bool {
        self.prefilter.may_match(json)
    }

    /// Scrubs `value` in place; the number of values replaced.
    pub(crate) fn scrub(&self, value: &mut Value) -> u64 {
        match value {
            Value::String(text) => self.scrub_string(text),
            Value::Array(items) => items.iter_mut().map(|item| self.scrub(item)).sum(),
            Value::Object(map) => {
                let mut count = 0;
                for (key, inner) in map.iter_mut() {
                    let secret_key = self.keys.as_ref().is_some_and(|keys| keys.is_match(key));
                    count += if secret_key && is_redactable(inner) {
                        *inner = Value::String(REDACTED.to_owned());
                        1
                    } else {
                        self.scrub(inner)
                    };
                }
                count
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
    }

    fn scrub_string(&self, text: &mut String) -> u64 {
        let matched = self.set.matches(text);
        if !matched.matched_any() {
            return 0;
        }
        let mut count = 0;
        for index in matched.iter() {
            let pattern = &self.patterns[index];
            let group = pattern.capture_names().position(|name| name == Some("secret"));
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            for captures in pattern.captures_iter(text) {
                let Some(whole) = captures.get(0) else { continue };
                let cut = group.and_then(|g| captures.get(g)).unwrap_or(whole);
                out.push_str(&text[last..cut.start()]);
                out.push_str(REDACTED);
                last = cut.end();
                count += 1;
            }
            out.push_str(&text[last..]);
            *text = out;
        }
        count
    }
}

/// Values under a secret-looking key that are replaced: everything but `null`, booleans and
/// empty strings (a `"password": ""` or `"is_secret": true` reveals nothing).
fn is_redactable(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) => false,
        Value::String(text) => !text.is_empty() && text != REDACTED,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Scrubber {
        Scrubber::new(true, &[]).unwrap().unwrap()
    }

    fn scrubbed(mut value: Value) -> (Value, u64) {
        let scrubber = defaults();
        assert!(scrubber.may_match(&value.to_string()), "the first pass must see {value}");
        let count = scrubber.scrub(&mut value);
        (value, count)
    }

    #[test]
    fn secret_looking_values_are_replaced_where_they_appear() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nafter";
        let (value, count) = scrubbed(json!({
            "prompt": "use key sk-proj-abcdefghijklmnopqrstuvwx please",
            "headers": ["Authorization: Bearer abcdefghijklmnop.qrs"],
            "db": "postgres://app:hunter2@db.internal:5432/x",
            "pem": pem,
            "aws": "AKIAABCDEFGHIJKLMNOP",
            "jwt": "eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl",
            "gh": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "log": "login user=ana password=hunter22 ok; api_key: k-123456&x=1 client_secret=abcd",
            "usage": "max_tokens: 100, tokens=5",
        }));
        assert_eq!(count, 10);
        assert_eq!(value["log"], "login user=ana password=[REDACTED] ok; api_key: [REDACTED] client_secret=[REDACTED]");
        assert_eq!(value["usage"], "max_tokens: 100, tokens=5");
        assert_eq!(value["prompt"], "use key [REDACTED] please");
        assert_eq!(value["headers"][0], "Authorization: Bearer [REDACTED]");
        assert_eq!(value["db"], "postgres://app:[REDACTED]@db.internal:5432/x");
        assert_eq!(value["pem"], "[REDACTED]\nafter");
        assert_eq!(value["aws"], "[REDACTED]");
        assert_eq!(value["jwt"], "[REDACTED]");
        assert_eq!(value["gh"], "[REDACTED]");
    }

    #[test]
    fn values_under_password_like_keys_are_replaced_but_usage_counts_are_not() {
        let (value, count) = scrubbed(json!({
            "user": "ana", "password": "hunter2", "DB_PASSWORD": 1234, "apiKey": "k", "client_secret": {"a": 1},
            "Authorization": "Basic x", "token": "t", "is_secret": true, "pwd": null,
            "usage": {"input_tokens": 10, "max_tokens": 100, "tokens": 3}, "tokenizer": "bpe",
        }));
        assert_eq!(count, 6);
        for key in ["password", "DB_PASSWORD", "apiKey", "client_secret", "Authorization", "token"] {
            assert_eq!(value[key], "[REDACTED]", "{key}");
        }
        assert_eq!(value["user"], "ana");
        assert_eq!(value["is_secret"], true);
        assert_eq!(value["pwd"], Value::Null);
        assert_eq!(value["usage"], json!({"input_tokens": 10, "max_tokens": 100, "tokens": 3}));
        assert_eq!(value["tokenizer"], "bpe");
    }

    #[test]
    fn ordinary_payloads_are_not_walked() {
        let scrubber = defaults();
        let text = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Summarise:\nskiing is fun"}],
                          "usage": {"input_tokens": 3}, "sk": "sk-short"})
        .to_string();
        assert!(!scrubber.may_match(&text), "{text}");
        // `\u` escapes could hide a pattern from the first pass: walked.
        assert!(scrubber.may_match(r#"{"a":"\u0073k-proj-abcdefghijklmnopqrstuvwx"}"#));
        // No word boundary before `sk-` in the text `\nsk-…`, nor whitespace after `Bearer`.
        assert!(scrubber.may_match(r#"{"a":"line\nsk-proj-abcdefghijklmnopqrstuvwx"}"#));
        assert!(scrubber.may_match(r#"{"a":"Bearer\tabcdefghijklmnopqrstuvwx"}"#));
        let mut escaped: Value = serde_json::from_str(r#"{"a":"\u0073k-proj-abcdefghijklmnopqrstuvwx"}"#).unwrap();
        assert_eq!(scrubber.scrub(&mut escaped), 1);
    }

    #[test]
    fn the_first_pass_sees_every_secret_the_walk_finds() {
        // Random strings of fragments (secrets, names, separators, escapes, whitespace, letters
        // that fold to ASCII ones), as keys and values, in serde_json's text and in a writer's
        // that escapes `/`: whenever the walk replaces something, the first pass said so.
        const FRAGMENTS: &[&str] = &[
            "sk-",
            "proj",
            "abcdefghij",
            "ABCDEFGHIJKLMNOP",
            "0123456789",
            "AKIA",
            "ASIA",
            "ghp_",
            "github_pat_",
            "AIza",
            "xoxb-",
            "hf_",
            "pf_",
            "eyJ",
            ".",
            "Bearer",
            "basic",
            "BASIC",
            " ",
            "\n",
            "\t",
            "\u{a0}",
            "\u{2003}",
            "password",
            "PassWord",
            "pa\u{17f}sword",
            "to\u{212a}en",
            "token",
            "tokens",
            "max_",
            "pwd",
            "secret",
            "api_key",
            "apiKey",
            "Authorization",
            "cookie",
            "credentials",
            "=",
            ":",
            "\"",
            "\\",
            "/",
            "@",
            "://",
            "user",
            "https",
            "-----BEGIN ",
            "RSA ",
            "PRIVATE KEY-----",
            "x",
            "_",
            "-",
            "\u{e9}",
            "'",
        ];
        let scrubber = defaults();
        let with_custom = Scrubber::new(true, &[r"(?i)acme-\d{4}".to_owned()]).unwrap().unwrap();
        let mut rng = fastrand::Rng::with_seed(17);
        let text = |rng: &mut fastrand::Rng| {
            let len = rng.usize(1..10);
            (0..len).map(|_| FRAGMENTS[rng.usize(..FRAGMENTS.len())]).collect::<String>()
        };
        let mut walked = 0;
        for _ in 0..20_000 {
            let value = json!({ text(&mut rng): text(&mut rng), "k": [text(&mut rng)] });
            for scrubber in [&scrubber, &with_custom] {
                let mut copy = value.clone();
                if scrubber.scrub(&mut copy) == 0 {
                    continue;
                }
                walked += 1;
                let json = value.to_string();
                assert!(scrubber.may_match(&json), "missed: {json}");
                let slashes = json.replace('/', "\\/");
                assert!(scrubber.may_match(&slashes), "missed: {slashes}");
            }
        }
        assert!(walked > 1_000, "the fragments make secrets often enough to test the pass: {walked}");
    }

    #[test]
    fn escaped_whitespace_around_a_separator_and_escaped_slashes_are_seen() {
        let scrubber = defaults();
        // A newline before `=` is `\n` in the text; a `/` in a token may be written `\/`.
        let mut value = json!({"log": "password\n= hunter22", "h": "Bearer abcdefgh/ijklmnopq"});
        assert!(scrubber.may_match(&value.to_string()));
        assert!(scrubber.may_match(r#"{"h":"Bearer abcdefgh\/ijklmnopq"}"#));
        assert_eq!(scrubber.scrub(&mut value), 2);
        assert_eq!(value, json!({"log": "password\n= [REDACTED]", "h": "Bearer [REDACTED]"}));
    }

    #[test]
    fn custom_patterns_add_to_or_replace_the_defaults() {
        let custom = vec![r"\bACME-[0-9]{6}\b".to_owned(), r"card=(?P<secret>\d{4})".to_owned()];
        let only_custom = Scrubber::new(false, &custom).unwrap().unwrap();
        let mut value =
            json!({"note": "id ACME-123456, card=4242", "password": "kept", "k": "sk-proj-abcdefghijklmnopqrstuvwx"});
        assert_eq!(only_custom.scrub(&mut value), 2);
        assert_eq!(value["note"], "id [REDACTED], card=[REDACTED]");
        assert_eq!(value["password"], "kept", "the built-in key rule is off");
        assert!(only_custom.may_match(r#"{"a":"line\nnext"}"#), "escapes are walked with custom patterns");
        assert!(Scrubber::new(false, &[]).unwrap().is_none());
        let (pattern, _) = Scrubber::new(true, &["(unclosed".to_owned()]).unwrap_err();
        assert_eq!(pattern, "(unclosed");
    }
}
