//! Span counts of agents, kept per commit generation ([`crate::db::Db::commit_generation`]):
//! counting an agent's spans scans all its entries of the instance index (about 100 ms for
//! 900,000 spans), and the open dashboard pages through an agent's spans asking the same count
//! on every page. A count is reused only while no commit has happened since it was read, so
//! it is never stale; any write makes the next list count again.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most agents remembered; beyond, the cache starts over.
pub const MAX_AGENTS: usize = 1_024;

/// Agent id -> (commit generation, span count).
#[derive(Debug, Default)]
pub struct CountCache {
    counts: Mutex<HashMap<String, (u64, u64)>>,
}

impl CountCache {
    /// The count of `agent_id` read at `generation`, if any.
    ///
    /// ```
    /// use prefactor_server::count_cache::CountCache;
    /// let cache = CountCache::default();
    /// cache.store("agent", 7, 900_000);
    /// assert_eq!(cache.get("agent", 7), Some(900_000));
    /// assert_eq!(cache.get("agent", 8), None, "a commit since: count again");
    /// ```
    pub fn get(&self, agent_id: &str, generation: u64) -> Option<u64> {
        let counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.get(agent_id).filter(|(at, _)| *at == generation).map(|(_, count)| *count)
    }

    /// Remembers `count` for `agent_id` as read at `generation`.
    pub fn store(&self, agent_id: &str, generation: u64, count: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() >= MAX_AGENTS && !counts.contains_key(agent_id) {
            counts.clear();
        }
        counts.insert(agent_id.to_string(), (generation, count));
    }
}
