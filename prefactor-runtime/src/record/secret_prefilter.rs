//! `SecretPrefilter`: whether a payload's JSON text may hold something the `Scrubber` would
//! replace, decided from the text without parsing it. Most payloads hold no secret; for them
//! this is all the scrubbing costs, so it is built from scans that skip ahead with SIMD
//! (`memchr`, and the literal prefixes of the key patterns) instead of one automaton over every
//! byte (a `RegexSet` of every rule ran at 8–17 instructions per byte: see
//! `docs/benchmarks-journal.md`).
//!
//! It may say yes when nothing matches (the walk then finds nothing), never no when something
//! would: every rule of the walk is covered by one check below, each a widening of the rule to
//! JSON text (a newline inside a string is `\n` there, a word boundary may be an escape), and
//! text the checks cannot see through (`\u` and `\/` escapes, the two non-ASCII letters that
//! case-insensitive rules match as ASCII ones) is always walked.

use aho_corasick::AhoCorasick;
use memchr::{memchr_iter, memchr2_iter};
use regex::{Regex, RegexSet};

use crate::record::scrub::{AUTH_HEADER, PREFIXED_PATTERNS, SECRET_KEY_SUFFIXES, URL_CREDENTIALS};

/// Compiled text checks of one client's scrubbing rules.
#[derive(Clone, Debug)]
pub(crate) struct SecretPrefilter {
    /// The built-in rules (`None` when they are off).
    builtin: Option<Builtin>,
    /// The user's patterns as written, over the whole text (any escape is walked: they may
    /// match across what JSON escapes).
    custom: Option<RegexSet>,
}

#[derive(Clone, Debug)]
struct Builtin {
    /// The case-sensitive patterns (API key prefixes, JWTs, PEM headers) in one regex, which
    /// finds their literal prefixes with SIMD before running its automaton.
    prefixed: Regex,
    /// Credentials in URLs, from their `://` (the scheme is not checked: a widening).
    url: Regex,
    /// `bearer` and `basic` in any ASCII case, where an authorization header may start.
    auth_words: AhoCorasick,
    /// The authorization header rule, anchored where a word was found.
    auth_header: Regex,
}

impl SecretPrefilter {
    /// The checks for the built-in rules when `defaults`, plus `custom` patterns (already
    /// validated by the caller).
    pub(crate) fn new(defaults: bool, custom: &[String]) -> Result<SecretPrefilter, regex::Error> {
        let builtin = if defaults { Some(Builtin::new()?) } else { None };
        let custom = if custom.is_empty() { None } else { Some(RegexSet::new(custom)?) };
        Ok(SecretPrefilter { builtin, custom })
    }

    /// Whether the JSON text `json` may hold something to scrub.
    pub(crate) fn may_match(&self, json: &str) -> bool {
        let escapes = if self.custom.is_some() { has_any_escape(json) } else { has_opaque_escape(json) };
        escapes
            || self.builtin.as_ref().is_some_and(|builtin| builtin.may_match(json))
            || self.custom.as_ref().is_some_and(|custom| custom.is_match(json))
    }
}

impl Builtin {
    fn new() -> Result<Builtin, regex::Error> {
        let prefixed = PREFIXED_PATTERNS.iter().map(|p| format!("(?:{})", as_in_json_text(p))).collect::<Vec<_>>();
        let url = URL_CREDENTIALS.split_once("://").map_or(URL_CREDENTIALS, |(_, tail)| tail);
        Ok(Builtin {
            prefixed: Regex::new(&prefixed.join("|"))?,
            url: Regex::new(&format!("://{}", as_in_json_text(url)))?,
            auth_words: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(["bearer", "basic"])
                .map_err(|err| regex::Error::Syntax(err.to_string()))?,
            auth_header: Regex::new(&format!("^(?:{})", as_in_json_text(AUTH_HEADER)))?,
        })
    }

    fn may_match(&self, json: &str) -> bool {
        self.prefixed.is_match(json)
            || self.url.is_match(json)
            || has_named_secret(json)
            || self.has_auth_header(json)
            || has_folded_letter(json)
    }

    /// A `Bearer …` or `Basic …` header value: each `bearer`/`basic` found is checked where it
    /// starts (the rule begins with the word; its leading word boundary is dropped).
    fn has_auth_header(&self, json: &str) -> bool {
        self.auth_words.find_iter(json).any(|word| self.auth_header.is_match(&json[word.start()..]))
    }
}

/// A key or a `key=value` / `key: value` whose name ends like a secret's (`scrub::KEY_VALUE`
/// and the secret key rule): for every `:` and `=`, the name before it (past whitespace,
/// JSON's whitespace escapes and a closing quote) is compared with the suffixes. A name of
/// another shape (`my.password`) passes too: the walk decides.
fn has_named_secret(json: &str) -> bool {
    memchr2_iter(b':', b'=', json.as_bytes()).any(|at| name_ends_like_a_secret(json, at))
}

fn name_ends_like_a_secret(json: &str, separator: usize) -> bool {
    let bytes = json.as_bytes();
    let mut end = before_whitespace(json, separator);
    if end > 0 && bytes[end - 1] == b'"' {
        end -= 1;
    }
    let name = &bytes[..end];
    // Most names end otherwise: three bytes rule them out before the suffixes are compared.
    let Some(last) = name.last_chunk::<3>() else { return false };
    let last = last.map(|byte| byte.to_ascii_lowercase());
    SUFFIX_ENDINGS.contains(&last)
        && SECRET_KEY_SUFFIXES.iter().any(|suffix| {
            name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        })
}

/// The last three bytes of each of [`SECRET_KEY_SUFFIXES`].
const SUFFIX_ENDINGS: [[u8; 3]; 11] =
    [*b"ord", *b"swd", *b"ase", *b"ret", *b"key", *b"ken", *b"pwd", *b"ion", *b"kie", *b"ial", *b"als"];

/// Where the whitespace before `at` starts: Unicode whitespace (what `\s` matches) and the JSON
/// escapes of whitespace (`\n`, `\r`, `\t`, `\f`), read backwards.
fn before_whitespace(json: &str, at: usize) -> usize {
    let bytes = json.as_bytes();
    let mut end = at;
    while end > 0 {
        let escape = end >= 2 && bytes[end - 2] == b'\\' && matches!(bytes[end - 1], b'n' | b'r' | b't' | b'f');
        if escape {
            end -= 2;
            continue;
        }
        match json[..end].chars().next_back() {
            Some(c) if c.is_whitespace() => end -= c.len_utf8(),
            _ => break,
        }
    }
    end
}

/// `ſ` (U+017F) or `K` (U+212A): case-insensitive rules match them as `s` and `k`, which the
/// ASCII checks here would not see. Found by their first UTF-8 byte (one SIMD pass).
fn has_folded_letter(json: &str) -> bool {
    let bytes = json.as_bytes();
    memchr2_iter(0xc5, 0xe2, bytes).any(|at| matches!(&bytes[at..], [0xc5, 0xbf, ..] | [0xe2, 0x84, 0xaa, ..]))
}

/// A `\u` escape (any character, a pattern's letters included, may be written so) or `\/`
/// (a `/` some JSON writers escape, which would cut a token the rules read as one).
fn has_opaque_escape(json: &str) -> bool {
    let bytes = json.as_bytes();
    memchr_iter(b'\\', bytes).any(|at| matches!(bytes.get(at + 1), Some(b'u' | b'/')))
}

fn has_any_escape(json: &str) -> bool {
    memchr::memchr(b'\\', json.as_bytes()).is_some()
}

/// A built-in pattern widened to match wherever it would match a string once the JSON text is
/// decoded: JSON writes a newline as `\n`, so before `sk-…` there is no word boundary in the
/// text, and whitespace between `Bearer` and its token may be an escape.
pub(crate) fn as_in_json_text(pattern: &str) -> String {
    pattern.replace(r"\b", "").replace(r"\s+", r"(?:\s|\\[nrtfb])+").replace(r"\s*", r"(?:\s|\\[nrtfb])*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_non_ascii_letters_fold_to_ascii_ones() {
        // The checks compare names and words in ASCII case only; the rules are case
        // insensitive in Unicode. Text with a letter that folds to an ASCII one is walked.
        let ascii_letter = Regex::new("(?i)^[a-z]$").unwrap();
        let folding: Vec<char> = (0x80..=0x10ffff_u32)
            .filter_map(char::from_u32)
            .filter(|c| ascii_letter.is_match(c.encode_utf8(&mut [0; 4])))
            .collect();
        assert_eq!(folding, ['\u{17f}', '\u{212a}']);
        let checks = SecretPrefilter::new(true, &[]).unwrap();
        assert!(checks.may_match("{\"a\":\"pa\u{17f}sword=1234\"}"));
        assert!(checks.may_match("{\"a\":\"to\u{212a}en\"}"));
        assert!(!checks.may_match("{\"a\":\"\u{e9}t\u{e9} \u{2014} \u{2003}\"}"));
    }

    #[test]
    fn the_endings_are_those_of_the_suffixes() {
        let mut endings: Vec<[u8; 3]> =
            SECRET_KEY_SUFFIXES.iter().map(|suffix| *suffix.as_bytes().last_chunk::<3>().unwrap()).collect();
        endings.sort();
        endings.dedup();
        let mut listed = SUFFIX_ENDINGS.to_vec();
        listed.sort();
        assert_eq!(endings, listed);
    }

    #[test]
    fn names_are_read_back_past_whitespace_escapes_and_quotes() {
        for text in [r#"{"password":1}"#, "a token = x", r#""x":"API_KEY\n: y""#, "db_pwd\u{a0}=", r#""Set-Cookie" :"#]
        {
            let at = text.rfind([':', '=']).unwrap();
            assert!(name_ends_like_a_secret(text, at), "{text}");
        }
        for text in [r#"{"max_tokens":1}"#, r#"{"tokenizer":1}"#, "pass=", r#""password\":"#] {
            let at = text.rfind([':', '=']).unwrap();
            assert!(!name_ends_like_a_secret(text, at), "{text}");
        }
    }

    #[test]
    fn escapes_that_could_hide_a_secret_are_walked() {
        let checks = SecretPrefilter::new(true, &[]).unwrap();
        assert!(checks.may_match(r#"{"a":"\u0073k-proj-abcdefghijklmnopqrstuvwx"}"#));
        assert!(checks.may_match(r#"{"a":"Bearer abcdefgh\/ijklmnopq"}"#));
        assert!(!checks.may_match(r#"{"a":"line\nnext \"quoted\" \\ back"}"#));
        let custom = SecretPrefilter::new(false, &["x".to_owned()]).unwrap();
        assert!(custom.may_match(r#"{"a":"line\nnext"}"#));
    }
}
