//! `SchemaName`: span type names without a per-span allocation.
//!
//! Programs use a handful of span types, so names are interned once and then shared as
//! `&'static str`: opening a span costs a short string comparison against the calling
//! thread's recent names, with no allocation and no shared reference count (the worker thread
//! drops operations, and a shared count would bounce between threads). The interner is
//! bounded; past it, names fall back to a reference-counted string.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use crate::lock::lock;

/// Distinct names interned at most (each leaks its text once).
const MAX_INTERNED: usize = 4096;
/// Recent names remembered per thread.
const RECENT: usize = 8;

static INTERNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

thread_local! {
    static RECENT_NAMES: RefCell<([&'static str; RECENT], usize)> = const { RefCell::new(([""; RECENT], 0)) };
}

#[derive(Clone)]
pub(crate) enum SchemaName {
    Interned(&'static str),
    Shared(Arc<str>),
}

impl SchemaName {
    /// A name that lives as long as the program (a `#[span]`'s literal): nothing to intern,
    /// so nothing to compare.
    pub(crate) const fn from_static(name: &'static str) -> SchemaName {
        SchemaName::Interned(name)
    }

    pub(crate) fn new(name: &str) -> SchemaName {
        if let Some(hit) = recent(name) {
            return SchemaName::Interned(hit);
        }
        match intern(name) {
            Some(interned) => {
                remember(interned);
                SchemaName::Interned(interned)
            }
            None => SchemaName::Shared(Arc::from(name)),
        }
    }
}

fn recent(name: &str) -> Option<&'static str> {
    RECENT_NAMES
        .try_with(|cell| cell.try_borrow().ok().and_then(|recent| recent.0.iter().copied().find(|n| *n == name)))
        .ok()
        .flatten()
        .filter(|n| !n.is_empty() || name.is_empty())
}

fn remember(name: &'static str) {
    let _ = RECENT_NAMES.try_with(|cell| {
        if let Ok(mut recent) = cell.try_borrow_mut() {
            let slot = recent.1 % RECENT;
            recent.0[slot] = name;
            recent.1 = recent.1.wrapping_add(1);
        }
    });
}

fn intern(name: &str) -> Option<&'static str> {
    let mut interned = lock(&INTERNED);
    let set = interned.get_or_insert_with(HashSet::new);
    if let Some(existing) = set.get(name) {
        return Some(existing);
    }
    if set.len() >= MAX_INTERNED {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    Some(leaked)
}

impl Deref for SchemaName {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            SchemaName::Interned(name) => name,
            SchemaName::Shared(name) => name,
        }
    }
}

impl fmt::Debug for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_once() {
        let a = SchemaName::new("agent:llm");
        let b = SchemaName::new(&String::from("agent:llm"));
        match (&a, &b) {
            (SchemaName::Interned(x), SchemaName::Interned(y)) => assert!(std::ptr::eq(*x, *y)),
            other => panic!("expected interned names, got {other:?}"),
        }
        assert_eq!(&*SchemaName::new(""), "");
    }
}
