//! Retry delays: exponential backoff with jitter, honouring `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::config::Config;

/// Delay before retry number `attempt` (0 = first retry): `initial · multiplier^attempt`,
/// capped at `max_retry_delay`, then scaled by a random factor in [0.5, 1.0] so that many
/// clients do not retry in lockstep. A server's `Retry-After` replaces the computed delay
/// (still capped at `max_retry_delay`, so a hostile value cannot stall the client).
pub(crate) fn retry_delay(config: &Config, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let cap = config.max_retry_delay();
    if let Some(after) = retry_after {
        return after.min(cap);
    }
    let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
    let base = config.initial_retry_delay().as_secs_f64() * config.retry_multiplier().powi(exponent);
    let capped = base.min(cap.as_secs_f64());
    let jittered = capped * (0.5 + fastrand::f64() * 0.5);
    Duration::try_from_secs_f64(jittered).unwrap_or(cap)
}

/// Parses `Retry-After`: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::builder()
            .api_url("http://127.0.0.1:1")
            .api_token("t")
            .initial_retry_delay(Duration::from_millis(100))
            .max_retry_delay(Duration::from_millis(1000))
            .build()
            .unwrap()
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let c = config();
        for _ in 0..100 {
            let d0 = retry_delay(&c, 0, None);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100), "{d0:?}");
            let d2 = retry_delay(&c, 2, None);
            assert!(d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400), "{d2:?}");
            let d9 = retry_delay(&c, 9, None);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000), "{d9:?}");
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let c = config();
        assert_eq!(retry_delay(&c, 0, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(retry_delay(&c, 0, Some(Duration::from_secs(120))), Duration::from_millis(1000));
    }

    #[test]
    fn parses_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
