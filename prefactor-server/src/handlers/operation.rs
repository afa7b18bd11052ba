//! A checked write, ready for the writer: what a request becomes once it has been parsed and
//! validated outside the database. The single endpoints run one [`Operation`] per request; the
//! bulk endpoint runs several in one writer job, in order.

use rusqlite::Connection;

use crate::db::idempotency::{StoredAnswer, run_once};
use crate::error::ApiError;
use crate::idempotency::IdempotencyScope;
use crate::state::AppState;

/// The database part of a request: runs on the writer connection, inside a transaction.
pub type Work = Box<dyn FnOnce(&Connection) -> Result<StoredAnswer, ApiError> + Send>;

/// A request's idempotency scope (if it carries a key) and its database work.
pub struct Operation {
    /// Replay/reuse detection for the request's key.
    pub scope: Option<IdempotencyScope>,
    /// The state change and the answer it produces.
    pub work: Work,
    /// False when `work` makes all its checks before its first write, so that a 4xx leaves no
    /// writes behind and no savepoint is needed (see [`crate::db::writer`]).
    pub guarded: bool,
}

impl Operation {
    /// An operation of `work` under `scope`, run inside a savepoint.
    pub fn new<F>(scope: Option<IdempotencyScope>, work: F) -> Operation
    where
        F: FnOnce(&Connection) -> Result<StoredAnswer, ApiError> + Send + 'static,
    {
        Operation { scope, work: Box::new(work), guarded: true }
    }

    /// An operation whose `work` fails with a 4xx only before its first write, run without a
    /// savepoint (a 5xx after writing rolls back the whole group commit instead).
    pub fn checked_before_writing<F>(scope: Option<IdempotencyScope>, work: F) -> Operation
    where
        F: FnOnce(&Connection) -> Result<StoredAnswer, ApiError> + Send + 'static,
    {
        Operation { scope, work: Box::new(work), guarded: false }
    }

    /// Runs the operation on `conn` at most once per key (see [`crate::idempotency`]); the
    /// caller provides the transaction.
    pub fn run_on(self, conn: &Connection) -> Result<StoredAnswer, ApiError> {
        let Operation { scope, work, .. } = self;
        run_once(conn, scope.as_ref(), || work(conn))
    }

    /// Runs the operation as its own job on the group-committing writer; resolves after the
    /// commit.
    pub async fn run(self, state: &AppState) -> Result<StoredAnswer, ApiError> {
        if self.guarded {
            state.db.write(move |conn| self.run_on(conn)).await
        } else {
            state.db.write_unguarded(move |conn| self.run_on(conn)).await
        }
    }
}
