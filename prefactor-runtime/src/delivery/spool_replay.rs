//! Sending the spool again: its records in order, with their original idempotency keys, in
//! bulk requests when the client delivers in bulk (one request per record otherwise).
//!
//! Every record is settled before the next one counts: delivered (or already done), failed
//! for good (the server's answer to that request alone), or the replay stops at an auth
//! failure. A bulk request settles its leading items the server ran; the first item it did not
//! run successfully goes alone, and that answer decides it, so a bulk form the server reads
//! differently can delay a replay but never fail a record. Transient failures wait with
//! backoff, without a count.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

use crate::delivery::bulk_batch::{MAX_BULK_BYTES, body_of_requests, header_of_path};
use crate::delivery::bulk_outcome::{BulkAnswer, ItemResult};
use crate::delivery::retry::retry_delay;
use crate::delivery::shared::Shared;
use crate::delivery::spool::SpoolRecord;
use crate::delivery::transport::{Attempt, BulkReply, Transport};
use crate::report::error::Error;

/// Failed attempts of one request after which a closing client stops waiting for the replay
/// (the records stay in the spool for the next client).
const FAILURES_BEFORE_GIVING_UP_AT_CLOSE: u32 = 3;

/// What a replay of the spool did.
pub(crate) struct Replayed {
    /// Offset just past the last record settled.
    pub(crate) end: u64,
    pub(crate) delivered: u64,
    /// Permanent failures of spooled records.
    pub(crate) failed: Vec<Error>,
    /// The token was rejected: the replay stopped, the rest stays in the spool.
    pub(crate) auth: Option<Error>,
}

/// A replay's way of sending: how many records a bulk request may carry (1: one request each).
pub(crate) struct ReplayPlan {
    pub(crate) bulk_items: usize,
}

/// Sends `records` (each with the spool offset just past it) in order, starting at `start`;
/// `stuck` is set while the current request keeps failing.
pub(crate) async fn replay(
    transport: &Transport,
    shared: &Shared,
    stuck: &AtomicBool,
    records: Vec<(u64, SpoolRecord)>,
    start: u64,
    plan: ReplayPlan,
) -> Replayed {
    let mut replayed = Replayed { end: start, delivered: 0, failed: Vec::new(), auth: None };
    let mut bulk_items = plan.bulk_items;
    // Records up to this index go one request each (their bulk request was refused).
    let mut alone_until = 0;
    let mut next = 0;
    while next < records.len() {
        if bulk_items > 1 && next >= alone_until {
            let batch = batch_from(&records[next..], bulk_items);
            if batch.len() > 1 {
                match send_batch(transport, shared, stuck, &batch).await {
                    Batch::Ran(ran) => {
                        next += ran;
                        replayed.delivered += ran as u64;
                        if ran > 0 {
                            replayed.end = records[next - 1].0;
                        }
                        if ran == batch.len() {
                            continue;
                        }
                        // The first record it did not run successfully goes alone below.
                    }
                    Batch::Unsupported => bulk_items = 1,
                    Batch::Refused => alone_until = next + batch.len(),
                    Batch::Auth(error) => {
                        replayed.auth = Some(error);
                        return replayed;
                    }
                }
            }
        }
        let (end, record) = &records[next];
        match send_alone(transport, shared, stuck, record).await {
            Alone::Delivered => replayed.delivered += 1,
            Alone::Failed(error) => replayed.failed.push(error),
            Alone::Auth(error) => {
                replayed.auth = Some(error);
                return replayed;
            }
        }
        replayed.end = *end;
        next += 1;
    }
    replayed
}

/// A spooled record ready for a bulk request.
struct Item<'a> {
    header: String,
    key: String,
    body: &'a [u8],
}

/// The longest prefix of `records` that makes one bulk request: at most `max_items` items and
/// [`MAX_BULK_BYTES`], unique keys, and only records with a known path and key.
fn batch_from(records: &[(u64, SpoolRecord)], max_items: usize) -> Vec<Item<'_>> {
    let mut batch: Vec<Item<'_>> = Vec::new();
    let mut bytes = 0;
    for (_, record) in records.iter().take(max_items) {
        let (Some(header), Some(key)) = (header_of_path(&record.path), key_of(&record.body)) else { break };
        bytes += header.len() + record.body.len() + 1;
        if (!batch.is_empty() && bytes > MAX_BULK_BYTES) || batch.iter().any(|item| item.key == key) {
            break;
        }
        batch.push(Item { header, key, body: &record.body });
    }
    batch
}

/// The top-level `idempotency_key` of a single request's body (every body this SDK spools has
/// one).
fn key_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Keyed {
        idempotency_key: String,
    }
    serde_json::from_slice::<Keyed>(body).ok().map(|keyed| keyed.idempotency_key)
}

enum Batch {
    /// The server answered; this many leading items ran successfully.
    Ran(usize),
    /// No bulk endpoint (404/405): one request per record from now on.
    Unsupported,
    /// The request was refused as a whole, or its answer is not a bulk answer: its records go
    /// one request each.
    Refused,
    Auth(Error),
}

/// Sends one bulk request until the server answers it (transient failures wait with backoff).
async fn send_batch(transport: &Transport, shared: &Shared, stuck: &AtomicBool, batch: &[Item<'_>]) -> Batch {
    let body = body_of_requests(batch.iter().map(|item| (item.header.as_str(), item.body)));
    let mut attempt = 0;
    loop {
        let (retry_after, error) = match transport.post_bulk(body.clone()).await {
            BulkReply::Answered(answer) => {
                stuck.store(false, Ordering::Release);
                return match BulkAnswer::parse(&answer) {
                    Some(answer) => Batch::Ran(leading_successes(&answer, batch)),
                    None => Batch::Refused,
                };
            }
            BulkReply::Unsupported(_) => return Batch::Unsupported,
            BulkReply::Failed(Attempt::Auth(error)) => return Batch::Auth(error),
            BulkReply::Failed(Attempt::Permanent(error)) => {
                tracing::debug!(error = %error, "prefactor: a spool bulk request was refused; sending its records one by one");
                return Batch::Refused;
            }
            BulkReply::Failed(Attempt::Done(_) | Attempt::AlreadyDone) => return Batch::Refused,
            BulkReply::Failed(Attempt::Transient { retry_after, error }) => (retry_after, error),
            BulkReply::Failed(Attempt::Unseen(error)) => (None, error),
        };
        wait_to_retry(shared, stuck, attempt, retry_after, &error).await;
        attempt = attempt.saturating_add(1);
    }
}

/// How many items, from the first, the server ran successfully.
fn leading_successes(answer: &BulkAnswer<'_>, batch: &[Item<'_>]) -> usize {
    batch
        .iter()
        .take_while(|item| {
            let output = answer.output(&item.key);
            output.is_some_and(|output| matches!(output.result("spooled operation", true), ItemResult::Done(_)))
        })
        .count()
}

enum Alone {
    Delivered,
    Failed(Error),
    Auth(Error),
}

/// Sends one record as its own request until it is settled.
async fn send_alone(transport: &Transport, shared: &Shared, stuck: &AtomicBool, record: &SpoolRecord) -> Alone {
    let mut attempt = 0;
    let settled = loop {
        let (retry_after, error) =
            match transport.post("spooled operation", &record.path, record.body.clone(), true).await {
                Attempt::Done(_) | Attempt::AlreadyDone => break Alone::Delivered,
                Attempt::Permanent(error) => break Alone::Failed(error),
                Attempt::Auth(error) => break Alone::Auth(error),
                Attempt::Transient { retry_after, error } => (retry_after, error),
                Attempt::Unseen(error) => (None, error),
            };
        wait_to_retry(shared, stuck, attempt, retry_after, &error).await;
        attempt = attempt.saturating_add(1);
    };
    stuck.store(false, Ordering::Release);
    settled
}

async fn wait_to_retry(
    shared: &Shared,
    stuck: &AtomicBool,
    attempt: u32,
    retry_after: Option<std::time::Duration>,
    error: &Error,
) {
    stuck.store(attempt + 1 >= FAILURES_BEFORE_GIVING_UP_AT_CLOSE, Ordering::Release);
    tracing::debug!(error = %error, attempt, "prefactor: the spool replay waits for the API");
    tokio::time::sleep(retry_delay(&shared.config, attempt, retry_after)).await;
}
