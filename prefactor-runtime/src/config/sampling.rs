//! Sampling settings: the head rate (default and per agent), the tail rule (failed and slow
//! runs kept whatever the rate), and the budget of what the worker may hold meanwhile. The
//! decision itself ([`Sampling::decide`]) is made once per run, when it is created.

use std::time::Duration;

use prefactor_protocol::Pfid;

use crate::record::sample_decision::SampleDecision;
use crate::report::error::Error;

/// How much the client's worker may hold of runs waiting for their end (the tail rule), per
/// run and in total. A run over either bound is decided at once by [`SampleOverflow`] and
/// counted in [`Stats::hold_overflows`](crate::Stats::hold_overflows).
///
/// Defaults: 4,096 operations and 8 MiB per run; 16,384 operations and 64 MiB in total (the
/// total number of operations is also capped at half the `queue_capacity`, since held
/// operations count against it).
///
/// ```
/// use prefactor_runtime::HoldBudget;
///
/// let budget = HoldBudget::default().per_run(1_000, 1 << 20).total(8_000, 16 << 20);
/// assert_eq!((budget.run_ops(), budget.total_bytes()), (1_000, 16 << 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldBudget {
    run_ops: u64,
    run_bytes: u64,
    total_ops: u64,
    total_bytes: u64,
}

impl Default for HoldBudget {
    fn default() -> Self {
        HoldBudget { run_ops: 4_096, run_bytes: 8 << 20, total_ops: 16_384, total_bytes: 64 << 20 }
    }
}

impl HoldBudget {
    /// The most operations and bytes (payloads included) held for one run.
    pub fn per_run(mut self, ops: u64, bytes: u64) -> Self {
        self.run_ops = ops;
        self.run_bytes = bytes;
        self
    }

    /// The most operations and bytes held for all runs together.
    pub fn total(mut self, ops: u64, bytes: u64) -> Self {
        self.total_ops = ops;
        self.total_bytes = bytes;
        self
    }

    /// Operations held for one run at most.
    pub fn run_ops(&self) -> u64 {
        self.run_ops
    }

    /// Bytes held for one run at most.
    pub fn run_bytes(&self) -> u64 {
        self.run_bytes
    }

    /// Operations held in total at most.
    pub fn total_ops(&self) -> u64 {
        self.total_ops
    }

    /// Bytes held in total at most.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    fn validate(&self) -> Result<(), Error> {
        let fields = [self.run_ops, self.run_bytes, self.total_ops, self.total_bytes];
        if fields.contains(&0) {
            return Err(invalid("sample_hold_budget", "every bound must be greater than zero".into()));
        }
        if self.run_ops > self.total_ops || self.run_bytes > self.total_bytes {
            return Err(invalid("sample_hold_budget", "a run's bound must not exceed the total".into()));
        }
        Ok(())
    }
}

/// What happens to a held run that goes over the [`HoldBudget`] before it ends.
///
/// ```
/// use prefactor_runtime::SampleOverflow;
///
/// assert_eq!(SampleOverflow::default(), SampleOverflow::Keep);
/// assert_eq!("drop".parse::<SampleOverflow>(), Ok(SampleOverflow::Drop));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SampleOverflow {
    /// Sent as if it had been sampled (the default): the tail rule promises that failed and
    /// slow runs are kept, and the long runs that outgrow the budget are the likeliest to be
    /// either, so the client keeps them rather than guess.
    #[default]
    Keep,
    /// Discarded, with what it sends later, and counted as sampled out: memory and volume stay
    /// strictly bounded, at the price of failed runs that were too big to hold.
    Drop,
}

impl std::str::FromStr for SampleOverflow {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "keep" => Ok(SampleOverflow::Keep),
            "drop" => Ok(SampleOverflow::Drop),
            _ => Err(format!("`{text}` is neither `keep` nor `drop`")),
        }
    }
}

/// The sampling settings of a [`Config`](crate::Config).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sampling {
    pub(crate) rate: f64,
    /// Per-agent rates, by agent name or agent id (first match wins).
    pub(crate) rates: Vec<(String, f64)>,
    pub(crate) keep_failed: bool,
    pub(crate) keep_slower_than: Option<Duration>,
    pub(crate) budget: HoldBudget,
    pub(crate) overflow: SampleOverflow,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            rate: 1.0,
            rates: Vec::new(),
            keep_failed: true,
            keep_slower_than: None,
            budget: HoldBudget::default(),
            overflow: SampleOverflow::Keep,
        }
    }
}

impl Sampling {
    /// The rate of the agent named `name` (or with id `agent_id`).
    pub(crate) fn rate_of(&self, name: Option<&str>, agent_id: Option<&str>) -> f64 {
        let named = |key: &str| self.rates.iter().find(|(agent, _)| agent == key).map(|(_, rate)| *rate);
        name.and_then(named).or_else(|| agent_id.and_then(named)).unwrap_or(self.rate)
    }

    /// Whether a tail rule can keep an unsampled run.
    pub(crate) fn has_tail_rule(&self) -> bool {
        self.keep_failed || self.keep_slower_than.is_some()
    }

    /// The decision for the run `instance` of the agent `name` / `agent_id`.
    pub(crate) fn decide(&self, instance: Pfid, name: Option<&str>, agent_id: Option<&str>) -> SampleDecision {
        if sampled_by_hash(instance, self.rate_of(name, agent_id)) {
            SampleDecision::Sampled
        } else if self.has_tail_rule() {
            SampleDecision::Held
        } else {
            SampleDecision::Unsampled
        }
    }

    /// The total operations the worker may hold: the budget's, at most half the queue.
    pub(crate) fn total_ops_held(&self, queue_capacity: usize) -> u64 {
        self.budget.total_ops.min((queue_capacity as u64 / 2).max(1))
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        check_rate("sample_rate", self.rate)?;
        for (agent, rate) in &self.rates {
            if agent.trim().is_empty() {
                return Err(invalid("sample_rate_for", "the agent name must not be empty".into()));
            }
            check_rate("sample_rate_for", *rate)?;
        }
        if self.keep_slower_than.is_some_and(|threshold| threshold.is_zero()) {
            return Err(invalid("keep_slow_runs", "must be greater than zero".into()));
        }
        self.budget.validate()
    }
}

/// Per-agent rates as written in `PREFACTOR_SAMPLE_RATES`: `name=rate` pairs separated by
/// commas (`triage=0.05,billing=1`).
pub(crate) fn parse_rates(text: &str) -> Result<Vec<(String, f64)>, Error> {
    let mut rates = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let parsed = pair.rsplit_once('=').and_then(|(agent, rate)| Some((agent.trim(), rate.trim().parse().ok()?)));
        match parsed {
            Some((agent, rate)) if !agent.is_empty() => rates.push((agent.to_owned(), rate)),
            _ => return Err(invalid("sample_rate_for", format!("`{pair}` is not `agent=rate`"))),
        }
    }
    Ok(rates)
}

/// Whether the run `instance` is in the sampled fraction `rate`: a hash of its id, so the
/// decision is reproducible (the same id and rate decide the same way in every process and
/// every run of a test) while client-generated ids spread evenly.
pub(crate) fn sampled_by_hash(instance: Pfid, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    // `rate * 2^64` saturates at u64::MAX, which only a rate of 1 reaches (returned above).
    let threshold = (rate * 18_446_744_073_709_551_616.0) as u64;
    hash_of(instance) < threshold
}

/// 64 well-mixed bits of a PFID (SplitMix64's finalizer over its 20 bytes): the timestamp and
/// partition bits of client-made ids barely change between runs, so they are mixed with the
/// random ones rather than trusted alone.
fn hash_of(pfid: Pfid) -> u64 {
    let bytes = pfid.to_bytes();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        state = mix(state ^ u64::from_le_bytes(word));
    }
    state
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn check_rate(field: &'static str, rate: f64) -> Result<(), Error> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be between 0 and 1, got {rate}")))
    }
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidConfig { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> impl Iterator<Item = Pfid> {
        (0..n).map(|_| Pfid::generate(7))
    }

    #[test]
    fn the_sampled_fraction_follows_the_rate() {
        for rate in [0.01, 0.1, 0.5, 0.9] {
            let sampled = ids(20_000).filter(|id| sampled_by_hash(*id, rate)).count() as f64 / 20_000.0;
            // 20,000 draws: five standard deviations at most 0.018.
            assert!((sampled - rate).abs() < 0.018, "rate {rate}: sampled {sampled}");
        }
        assert!(ids(1_000).all(|id| sampled_by_hash(id, 1.0)));
        assert!(ids(1_000).all(|id| !sampled_by_hash(id, 0.0)));
    }

    #[test]
    fn the_decision_is_the_same_for_the_same_id_and_nested_across_rates() {
        for id in ids(1_000) {
            assert_eq!(sampled_by_hash(id, 0.3), sampled_by_hash(id, 0.3));
            // A run sampled at a lower rate is sampled at every higher one.
            assert!(!sampled_by_hash(id, 0.1) || sampled_by_hash(id, 0.3));
        }
    }

    #[test]
    fn per_agent_rates_match_the_name_then_the_id_and_parse_from_text() {
        let sampling =
            Sampling { rates: parse_rates(" triage = 0.05, agent-id-1=0.5 ,").unwrap(), ..Sampling::default() };
        assert_eq!(sampling.rate_of(Some("triage"), Some("agent-id-1")), 0.05);
        assert_eq!(sampling.rate_of(Some("other"), Some("agent-id-1")), 0.5);
        assert_eq!(sampling.rate_of(None, None), 1.0);
        assert!(parse_rates("triage").is_err());
        assert!(parse_rates("=0.5").is_err());
        assert!(parse_rates("triage=often").is_err());
    }

    #[test]
    fn the_environment_sets_every_sampling_setting_and_bad_values_name_their_field() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |key: &str| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
        };
        let builder = crate::config::Config::builder().api_url("http://127.0.0.1:9").api_token("t");
        let config = builder
            .clone()
            .from_env_with(env(&[
                ("PREFACTOR_SAMPLE_RATE", "0.25"),
                ("PREFACTOR_SAMPLE_RATES", "triage=0.05,billing=1"),
                ("PREFACTOR_KEEP_FAILED_RUNS", "false"),
                ("PREFACTOR_KEEP_SLOW_RUNS", "2.5"),
                ("PREFACTOR_SAMPLE_OVERFLOW", "drop"),
            ]))
            .and_then(crate::config::ConfigBuilder::build)
            .expect("valid settings");
        assert_eq!(
            (config.sample_rate(), config.sample_rate_of("triage"), config.sample_rate_of("billing")),
            (0.25, 0.05, 1.0)
        );
        assert!(!config.keep_failed_runs());
        assert_eq!(config.keep_slow_runs(), Some(Duration::from_millis(2500)));
        assert_eq!(config.sample_overflow(), SampleOverflow::Drop);
        for (vars, field) in [
            (&[("PREFACTOR_SAMPLE_RATE", "1.5")][..], "sample_rate"),
            (&[("PREFACTOR_SAMPLE_RATE", "NaN")][..], "sample_rate"),
            (&[("PREFACTOR_SAMPLE_RATES", "triage")][..], "sample_rate_for"),
            (&[("PREFACTOR_KEEP_FAILED_RUNS", "maybe")][..], "keep_failed_runs"),
            (&[("PREFACTOR_KEEP_SLOW_RUNS", "0")][..], "keep_slow_runs"),
            (&[("PREFACTOR_SAMPLE_OVERFLOW", "spill")][..], "sample_overflow"),
        ] {
            let err = builder.clone().from_env_with(env(vars)).and_then(crate::config::ConfigBuilder::build);
            assert!(matches!(err, Err(Error::InvalidConfig { field: f, .. }) if f == field), "{vars:?}: {err:?}");
        }
    }

    #[test]
    fn the_decision_holds_an_unsampled_run_only_under_a_tail_rule() {
        let id = Pfid::generate(1);
        let none = Sampling { rate: 0.0, ..Sampling::default() };
        assert_eq!(none.decide(id, None, None), SampleDecision::Held, "keep_failed is on by default");
        let no_tail = Sampling { keep_failed: false, ..none.clone() };
        assert_eq!(no_tail.decide(id, None, None), SampleDecision::Unsampled);
        let slow = Sampling { keep_slower_than: Some(Duration::from_secs(1)), ..no_tail };
        assert_eq!(slow.decide(id, None, None), SampleDecision::Held);
        assert_eq!(Sampling::default().decide(id, None, None), SampleDecision::Sampled);
    }
}
