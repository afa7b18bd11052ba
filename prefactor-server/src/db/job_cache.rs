//! Reads remembered for the length of ONE bulk job on the writer thread.
//!
//! Why: the items of a bulk request mostly belong to one instance, and each span create reads
//! the same instance row (its agent, schema version and status) and looks up its parent span,
//! which was often created a few items earlier. Those reads are b-tree searches on the only
//! writer thread. While a bulk job runs, the answers are remembered here.
//!
//! Why it stays correct: the cache exists only inside [`with_job_cache`] on the thread that
//! runs the job (readers on other threads never see it); instance answers are forgotten
//! before any item that may change an instance (every action other than span create/finish,
//! see [`forget_instances`]); a span's instance never changes, and spans are only remembered
//! once their insert succeeded, which is their last fallible step. A job that fails after
//! writing is rolled back as a whole and its cache goes with it.

use std::cell::RefCell;
// foldhash: three lookups per span on the writer thread; SipHash cost more than the lookup.
use foldhash::HashMap;

use crate::db::instances::SpanOwner;

#[derive(Default)]
struct Cache {
    owners: HashMap<String, SpanOwner>,
    span_instances: HashMap<String, String>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// Drops the cache when the job ends, also when it panics.
struct Enabled;

impl Drop for Enabled {
    fn drop(&mut self) {
        CACHE.with(|cache| *cache.borrow_mut() = None);
    }
}

/// Runs `work` with the cache enabled on this thread.
///
/// ```
/// use prefactor_server::db::job_cache::{remember_span, span_instance, with_job_cache};
/// with_job_cache(|| {
///     remember_span("s1", "i1");
///     assert_eq!(span_instance("s1").as_deref(), Some("i1"));
/// });
/// assert_eq!(span_instance("s1"), None, "gone with the job");
/// ```
pub fn with_job_cache<R>(work: impl FnOnce() -> R) -> R {
    CACHE.with(|cache| *cache.borrow_mut() = Some(Cache::default()));
    let _enabled = Enabled;
    work()
}

/// Forgets the instance answers (before an item that may change an instance).
pub fn forget_instances() {
    CACHE.with(|cache| {
        if let Some(cache) = cache.borrow_mut().as_mut() {
            cache.owners.clear();
        }
    });
}

/// The remembered [`SpanOwner`] of instance `id`.
pub fn owner(id: &str) -> Option<SpanOwner> {
    CACHE.with(|cache| cache.borrow().as_ref().and_then(|cache| cache.owners.get(id).cloned()))
}

/// Remembers the [`SpanOwner`] of instance `id` (no-op outside a bulk job).
pub fn remember_owner(id: &str, owner: &SpanOwner) {
    CACHE.with(|cache| {
        if let Some(cache) = cache.borrow_mut().as_mut() {
            cache.owners.insert(id.to_string(), owner.clone());
        }
    });
}

/// The remembered instance of span `id`.
pub fn span_instance(id: &str) -> Option<String> {
    CACHE.with(|cache| cache.borrow().as_ref().and_then(|cache| cache.span_instances.get(id).cloned()))
}

/// Remembers that span `id` belongs to `instance_id` (no-op outside a bulk job).
pub fn remember_span(id: &str, instance_id: &str) {
    CACHE.with(|cache| {
        if let Some(cache) = cache.borrow_mut().as_mut() {
            cache.span_instances.insert(id.to_string(), instance_id.to_string());
        }
    });
}
