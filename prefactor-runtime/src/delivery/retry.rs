//! Retry delays: exponential backoff with jitter, honouring `Retry-After`, and the queue of
//! shipments waiting for their delay to pass.
//!
//! There is no retry count: an operation whose failure is transient waits, in order, until it
//! is delivered, until `close()`'s deadline, or until the queue's capacity makes the client
//! drop newer operations (counted). This is how the OpenTelemetry OTLP exporters retry (capped,
//! jittered exponential backoff; honour `Retry-After`) without the budget after which they drop
//! a batch (Java: 5 attempts; Go: one minute): a budget turns any outage longer than it into
//! lost spans (a count of 3 lost spans across a 5 s server restart), while the queue's capacity
//! already bounds memory and `close()`'s deadline bounds shutdown.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

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

/// Items waiting until a due time, taken in due order (ties in arrival order).
pub(crate) struct RetryQueue<T> {
    waiting: BTreeMap<(Instant, u64), Waiting<T>>,
    next_seq: u64,
}

struct Waiting<T> {
    item: T,
    /// The server asked for this delay (`Retry-After`): never cut short.
    server_asked: bool,
}

impl<T> Default for RetryQueue<T> {
    fn default() -> Self {
        RetryQueue { waiting: BTreeMap::new(), next_seq: 0 }
    }
}

impl<T> RetryQueue<T> {
    /// Holds `item` until `due`; `server_asked` when the delay is the server's `Retry-After`.
    pub(crate) fn push(&mut self, due: Instant, item: T, server_asked: bool) {
        self.waiting.insert((due, self.next_seq), Waiting { item, server_asked });
        self.next_seq += 1;
    }

    /// The first item due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        let entry = self.waiting.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove().item)
    }

    /// The item due first, whatever its due time.
    pub(crate) fn pop_first(&mut self) -> Option<T> {
        self.waiting.pop_first().map(|(_, waiting)| waiting.item)
    }

    /// When the first item is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.waiting.first_key_value().map(|((due, _), _)| *due)
    }

    /// Makes every item due `now`, except those waiting for the server's `Retry-After`: the
    /// server answers again after an outage, so what backed off during it goes out at once
    /// instead of after up to `max_retry_delay`.
    pub(crate) fn wake(&mut self, now: Instant) {
        let keys: Vec<(Instant, u64)> = self
            .waiting
            .iter()
            .filter(|((due, _), waiting)| *due > now && !waiting.server_asked)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            if let Some(waiting) = self.waiting.remove(&key) {
                self.waiting.insert((now, key.1), waiting);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Every waiting item, in due order.
    pub(crate) fn items(&self) -> impl Iterator<Item = &T> {
        self.waiting.values().map(|waiting| &waiting.item)
    }

    /// Removes and returns every waiting item, in due order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> {
        std::mem::take(&mut self.waiting).into_values().map(|waiting| waiting.item)
    }
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
    fn the_queue_hands_out_due_items_in_order_and_wakes_all_but_server_asked_delays() {
        let now = Instant::now();
        let mut queue = RetryQueue::default();
        queue.push(now + Duration::from_secs(5), "late", false);
        queue.push(now + Duration::from_secs(1), "early", false);
        queue.push(now + Duration::from_secs(3), "retry-after", true);
        assert_eq!(queue.next_due(), Some(now + Duration::from_secs(1)));
        assert_eq!(queue.pop_due(now), None);
        assert_eq!(queue.pop_due(now + Duration::from_secs(1)), Some("early"));
        queue.wake(now);
        assert_eq!(queue.pop_due(now), Some("late"), "woken");
        assert_eq!(queue.pop_due(now), None, "the server's Retry-After still holds");
        assert_eq!(queue.items().count(), 1);
        assert_eq!(queue.drain().collect::<Vec<_>>(), ["retry-after"]);
        assert!(queue.is_empty());
    }

    #[test]
    fn parses_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        let in_a_minute = time::OffsetDateTime::now_utc() + time::Duration::seconds(60);
        let date = in_a_minute.format(&time::format_description::well_known::Rfc2822).unwrap();
        let parsed = parse_retry_after(&date).unwrap();
        assert!(parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(60), "{date}: {parsed:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
