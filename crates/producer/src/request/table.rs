//! The requests of a client instance awaiting their reply, by correlation id (Java's
//! `RequestFutureHolder.requestFutureTable`).
//!
//! A request takes a [`Waiting`] entry before it is sent; the reply processor completes it by
//! correlation id. The entry leaves the table when the reply arrives or when the [`Waiting`] is
//! dropped, whatever ends the request (reply, timeout, send failure, cancellation by dropping
//! the request's future), so nothing needs sweeping (Java scans the table every second).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rmq_common::stored::MessageExt;
use rmq_common::CompressionError;
use tokio::sync::oneshot;

/// What a reply delivers: the message, or why its body cannot be read.
pub(crate) type ReplyOutcome = Result<MessageExt, CompressionError>;

/// Process-wide sequence of correlation ids: unique within the process by construction.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A fresh correlation id, shaped as a version-4 UUID (Java's `CorrelationIdUtil` uses
/// `UUID.randomUUID()`): 60 random bits, then 62 bits of a process-wide sequence, so two
/// requests of one process never share an id and two processes almost never do.
///
/// ```text
/// xxxxxxxx-xxxx-4xxx-Nsss-ssssssssssss   (x random, s sequence, N in 8..=b)
/// ```
pub(crate) fn correlation_id() -> String {
    let hi = (fastrand::u64(..) & !0xF000) | 0x4000;
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0x3FFF_FFFF_FFFF_FFFF;
    let lo = seq | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Correlation id → the channel of the request awaiting that reply.
#[derive(Debug, Default)]
pub(crate) struct ReplyTable {
    waiting: Mutex<HashMap<String, oneshot::Sender<ReplyOutcome>>>,
}

/// What became of a reply handed to [`ReplyTable::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completed {
    /// A request was waiting for it.
    Delivered,
    /// No request waits for this id (unknown, timed out, or cancelled).
    Unknown,
}

/// A request's place in the table: removed when dropped.
#[derive(Debug)]
pub(crate) struct Waiting {
    table: Arc<ReplyTable>,
    id: String,
    rx: oneshot::Receiver<ReplyOutcome>,
}

impl ReplyTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<ReplyOutcome>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a request under a fresh correlation id.
    pub(crate) fn register(self: &Arc<Self>) -> Waiting {
        // Ids are unique by construction; the loop only guards that rule (bounded: a second
        // id comes from the next sequence number).
        let mut id = correlation_id();
        for _ in 0..3 {
            match self.register_id(id) {
                Ok(waiting) => return waiting,
                Err(taken) => {
                    tracing::warn!(correlation_id = %taken, "correlation id already waiting; taking another");
                    id = correlation_id();
                }
            }
        }
        self.register_id(id)
            .unwrap_or_else(|taken| unreachable!("correlation id {taken} taken four times"))
    }

    /// Registers a request under `id`; `Err(id)` when a request already waits under it.
    pub(crate) fn register_id(self: &Arc<Self>, id: String) -> Result<Waiting, String> {
        let (tx, rx) = oneshot::channel();
        match self.lock().entry(id.clone()) {
            Entry::Occupied(_) => return Err(id),
            Entry::Vacant(slot) => {
                slot.insert(tx);
            }
        }
        Ok(Waiting {
            table: Arc::clone(self),
            id,
            rx,
        })
    }

    /// Hands a reply to the request waiting under `id`, which leaves the table.
    pub(crate) fn complete(&self, id: &str, outcome: ReplyOutcome) -> Completed {
        let Some(tx) = self.lock().remove(id) else {
            return Completed::Unknown;
        };
        // The request may be ending right now (its Waiting dropping): then nobody reads it.
        match tx.send(outcome) {
            Ok(()) => Completed::Delivered,
            Err(_) => Completed::Unknown,
        }
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Waiting {
    /// The correlation id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The reply, once it arrives (`None` only if the table dropped the entry, which it does
    /// only when completing it).
    pub(crate) async fn reply(&mut self) -> Option<ReplyOutcome> {
        (&mut self.rx).await.ok()
    }

    /// The reply if it has already arrived.
    #[cfg(test)]
    pub(crate) fn try_reply(&mut self) -> Option<ReplyOutcome> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.table.lock().remove(&self.id).is_some() {
            tracing::trace!(correlation_id = %self.id, "request left the reply table unanswered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_common::Message;

    fn reply(body: &'static str) -> ReplyOutcome {
        Ok(MessageExt {
            message: Message::new("C_REPLY_TOPIC", body),
            ..MessageExt::default()
        })
    }

    fn body(outcome: Option<ReplyOutcome>) -> Option<String> {
        outcome
            .and_then(Result::ok)
            .map(|m| String::from_utf8_lossy(m.message.body()).into_owned())
    }

    #[test]
    fn correlation_ids_are_uuid_shaped_and_distinct() {
        let ids: Vec<String> = (0..1000).map(|_| correlation_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        for id in &ids {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(
                id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "{id}"
            );
            assert_eq!(&id[14..15], "4", "version nibble: {id}");
            assert!(
                matches!(&id[19..20], "8" | "9" | "a" | "b"),
                "variant: {id}"
            );
        }
    }

    #[tokio::test]
    async fn replies_reach_their_request_and_entries_never_leak() {
        let table = Arc::new(ReplyTable::default());
        let mut a = table.register();
        let mut b = table.register();
        assert_ne!(a.id(), b.id());
        assert_eq!(table.len(), 2);
        // Out of order, and an unknown id in between.
        assert_eq!(table.complete(b.id(), reply("for b")), Completed::Delivered);
        assert_eq!(table.complete("nobody", reply("lost")), Completed::Unknown);
        assert_eq!(table.complete(a.id(), reply("for a")), Completed::Delivered);
        assert_eq!(table.len(), 0, "a delivered reply removes its entry");
        assert_eq!(body(a.reply().await).as_deref(), Some("for a"));
        assert_eq!(body(b.try_reply()).as_deref(), Some("for b"));
        // A second reply for the same id finds nobody.
        assert_eq!(table.complete(a.id(), reply("again")), Completed::Unknown);

        // Dropped unanswered (timeout, send failure, cancelled future): the entry goes.
        let c = table.register();
        let id = c.id().to_owned();
        assert_eq!(table.len(), 1);
        drop(c);
        assert_eq!(table.len(), 0);
        assert_eq!(table.complete(&id, reply("late")), Completed::Unknown);

        // An id in use cannot be taken twice.
        let d = table.register();
        assert_eq!(
            table.register_id(d.id().to_owned()).err().as_deref(),
            Some(d.id())
        );
        assert_eq!(table.len(), 1);
    }
}
