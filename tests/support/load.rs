//! The load of the broker-stopped interop tests (remoting and through a proxy): sends whose
//! outcomes are logged, so a test can check afterwards that every send resolved and every
//! acknowledged message was stored.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_common::Message;
use rmq_producer::{Producer, SendResult};
use tokio::time::timeout;

/// One send of the load and what became of it.
#[derive(Debug)]
pub struct Outcome {
    pub started: Instant,
    pub ended: Instant,
    pub uniq: String,
    pub body: Bytes,
    /// The result, or the error (text with its causes) and whether it may have been stored.
    pub result: Result<SendResult, (String, bool)>,
}

impl Outcome {
    /// The broker of the queue the result names.
    pub fn broker(&self) -> Option<&str> {
        self.result
            .as_ref()
            .ok()
            .map(|r| r.queue.broker_name.as_str())
    }
}

/// The outcomes of a load, shared by its tasks.
pub type Log = Arc<Mutex<Vec<Outcome>>>;

/// The log, also after a task panicked while holding it.
pub fn locked(log: &Log) -> MutexGuard<'_, Vec<Outcome>> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends one message of the load (body and key `label`) and records the outcome; `false` when
/// it did not resolve within `within`.
pub async fn send_logged(
    p: &Producer,
    log: &Log,
    topic: &str,
    label: String,
    within: Duration,
) -> bool {
    let mut msg = Message::new(topic, label.clone()).with_keys([label]);
    let uniq = p.assign_msg_id(&mut msg);
    let body = msg.body().clone();
    let started = Instant::now();
    let Ok(outcome) = timeout(within, p.send(msg)).await else {
        return false;
    };
    let result = outcome.map_err(|e| (rmq_testkit::error_line(&e), e.maybe_stored()));
    locked(log).push(Outcome {
        started,
        ended: Instant::now(),
        uniq,
        body,
        result,
    });
    true
}
