//! A client whose queue is read by a [`Recorder`] instead of a worker: what
//! [`Capture`](crate::testing::Capture) runs code under. No thread, no network.

use std::sync::Arc;

use super::Client;
use super::enqueue::{Drain, WorkerLink};
use super::lifecycle::Lifecycle;
use crate::config::ConfigBuilder;
use crate::delivery::recorder::Recorder;
use crate::lock::lock;
use crate::queue::op_queue::OpQueue;
use crate::report::error::Error;
use crate::schema::registry::SchemaRegistry;

/// The largest queue a configuration allows: a capture is read when the test asks, so it
/// holds every operation of the code under test until then.
const CAPTURE_CAPACITY: usize = 1 << 28;

impl Client {
    /// A ready client that records instead of sending, with the settings of `config` that
    /// shape what is recorded (sampling, scrubbing, size limit, schemas). Its schemas are
    /// merged as [`initialize`](Client::initialize) merges them, so conflicting declarations
    /// fail here as they would there.
    pub(crate) fn new_capturing(config: ConfigBuilder) -> Result<(Client, Arc<Recorder>), Error> {
        // Never contacted: the address only satisfies the configuration's checks.
        let config =
            config.api_url("http://127.0.0.1:9").api_token("capture").queue_capacity(CAPTURE_CAPACITY).build()?;
        let client = Client::new(config)?;
        let mut registry = client.config().schema_registry().cloned().unwrap_or_default();
        registry.merge(&SchemaRegistry::from_static()?)?;
        let ops = Arc::new(OpQueue::default());
        let recorder = Arc::new(Recorder::new(ops.clone(), client.inner.shared.clone()));
        let _ = client.inner.registry.set(registry);
        let _ = client.inner.link.set(WorkerLink { ops, drain: Drain::Recorder(recorder.clone()) });
        *lock(&client.inner.lifecycle) = Lifecycle::Ready;
        Ok((client, recorder))
    }

    /// Whether this client records for a [`Capture`](crate::testing::Capture).
    pub(crate) fn is_capturing(&self) -> bool {
        matches!(self.inner.link.get().map(|link| &link.drain), Some(Drain::Recorder(_)))
    }
}
