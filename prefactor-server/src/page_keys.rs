//! Keyset pagination behind `pagination[offset]`: the sort key of the last row of recent pages,
//! remembered per commit generation ([`crate::db::Db::commit_generation`]).
//!
//! The API pages by offset, and SQLite answers `OFFSET n` by walking the n rows before the
//! page (216–456 ms at offset 500,000). A reader pages forward: when page `[offset, offset +
//! size)` has been answered, its last row's sort key is remembered as the start of the page at
//! `offset + size`, so that next page is read with `key < last` (or `>`) from its index, as
//! cheap as the first page. A key is used only while no commit has happened since it was read,
//! so a page read through it is exactly the page `OFFSET` would give.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most keys remembered; when full, keys of older generations go first, then all.
pub const MAX_KEYS: usize = 4_096;

/// (list, offset) -> (commit generation, sort key of the row just before `offset`).
#[derive(Debug, Default)]
pub struct PageKeys {
    keys: Mutex<HashMap<(String, u64), (u64, String)>>,
}

impl PageKeys {
    /// The sort key of the row before `offset` in `list`, if remembered at `generation`.
    ///
    /// ```
    /// use prefactor_server::page_keys::PageKeys;
    /// let keys = PageKeys::default();
    /// keys.store("instances of agent a, id desc", 100, 7, "id-100".to_string());
    /// assert_eq!(keys.get("instances of agent a, id desc", 100, 7).as_deref(), Some("id-100"));
    /// assert_eq!(keys.get("instances of agent a, id desc", 100, 8), None, "a commit since: walk");
    /// assert_eq!(keys.get("instances of agent a, id desc", 200, 7), None);
    /// ```
    pub fn get(&self, list: &str, offset: u64, generation: u64) -> Option<String> {
        let keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.get(&(list.to_string(), offset)).filter(|(at, _)| *at == generation).map(|(_, key)| key.clone())
    }

    /// Remembers `key` as the sort key of the row before `offset` in `list`, read at
    /// `generation`.
    pub fn store(&self, list: &str, offset: u64, generation: u64, key: String) {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, (at, _)| *at == generation);
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert((list.to_string(), offset), (generation, key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_stays_bounded_and_current_keys_survive_a_purge() {
        let keys = PageKeys::default();
        for offset in 0..(MAX_KEYS as u64 - 1) {
            keys.store("old", offset, 1, format!("k{offset}"));
        }
        keys.store("current", 0, 2, "kept".to_string());
        keys.store("current", 100, 2, "new".to_string());
        assert_eq!(keys.get("current", 0, 2).as_deref(), Some("kept"));
        assert_eq!(keys.get("old", 0, 1), None, "older generations went first");
        assert!(keys.keys.lock().unwrap().len() <= MAX_KEYS);
    }
}
