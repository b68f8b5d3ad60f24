//! Check-back intake (Java's `ClientRemotingProcessor.checkTransactionState`): the client
//! instance's processor of `CHECK_TRANSACTION_STATE` (39) decodes the check, finds the
//! transactional producer of the half message's group (`PGROUP`) and queues the check for it.
//!
//! Each transactional producer registers a bounded queue ([`CheckRouter::register`]); its worker
//! ([`super::worker`]) runs the listener. A check for a group with no transactional producer
//! here, an undecodable one, or one that finds the queue full is logged and dropped: the broker
//! asks again at its next round. Nothing here blocks: the processor answers nothing (the check
//! is oneway) and returns at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rmq_common::header::transaction::CheckTransactionStateRequestHeader;
use rmq_common::property;
use rmq_common::stored::{decode_stored_message_raw, MessageExt};
use rmq_remoting::{BoxFuture, RemotingCommand, RequestContext, RequestProcessor};
use tokio::sync::mpsc;

/// Java's `checkRequestHoldMax`: checks a producer holds before dropping new ones.
pub(crate) const CHECK_QUEUE_DEFAULT: usize = 2000;

/// Bytes of checks queued for one producer, against its bound.
#[derive(Debug)]
pub(crate) struct QueuedBytes {
    used: AtomicUsize,
    max: usize,
}

impl QueuedBytes {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Takes `n` bytes if they fit.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    /// Gives back the bytes of a job taken off the queue.
    pub(crate) fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One check for the worker of its group: header and stored message decoded, the body still
/// as the broker sent it (compressed or not; the worker inflates it).
#[derive(Debug)]
pub(crate) struct CheckJob {
    /// The address of the connection the check came on, as the client dialed it; the answer
    /// goes there.
    pub(crate) addr: String,
    pub(crate) header: CheckTransactionStateRequestHeader,
    pub(crate) msg: MessageExt,
    pub(crate) group: String,
}

impl CheckJob {
    /// What the job holds in memory, roughly: the frame's body.
    pub(crate) fn size(&self) -> usize {
        self.msg.message.body().len() + self.msg.message.properties().encoded_len()
    }
}

/// What became of a check (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routed {
    Queued,
    NoProducer,
    QueueFull,
}

/// A producer's queue: its registration id, the sender, its byte bound.
#[derive(Debug)]
struct Registered {
    id: u64,
    tx: mpsc::Sender<CheckJob>,
    bytes: Arc<QueuedBytes>,
}

/// The check queues of one group.
type Queues = Vec<Registered>;

/// Group → the check queues of the transactional producers of that group on one instance.
#[derive(Debug, Default)]
pub(crate) struct CheckRouter {
    next_id: AtomicU64,
    groups: Mutex<HashMap<String, Queues>>,
}

/// A producer's place in the router; leaving it unregisters the queue.
#[derive(Debug)]
pub(crate) struct Registration {
    router: Arc<CheckRouter>,
    group: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut groups = self.router.lock();
        if let Some(queues) = groups.get_mut(&self.group) {
            queues.retain(|q| q.id != self.id);
            if queues.is_empty() {
                groups.remove(&self.group);
            }
        }
        tracing::debug!(group = %self.group, "transaction checks: producer unregistered");
    }
}

impl CheckRouter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queues>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routes the checks of `group` to `queue` until the registration is dropped. With several
    /// transactional producers of one group on the instance, the first registered live one
    /// gets the checks.
    pub(crate) fn register(
        self: &Arc<Self>,
        group: &str,
        tx: mpsc::Sender<CheckJob>,
        bytes: Arc<QueuedBytes>,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(group.to_owned())
            .or_default()
            .push(Registered { id, tx, bytes });
        tracing::debug!(group, "transaction checks: producer registered");
        Registration {
            router: Arc::clone(self),
            group: group.to_owned(),
            id,
        }
    }

    /// Hands `job` to its group's producer without waiting.
    pub(crate) fn route(&self, job: CheckJob) -> Routed {
        let queue = {
            let groups = self.lock();
            groups
                .get(&job.group)
                .and_then(|qs| qs.iter().find(|q| !q.tx.is_closed()))
                .map(|q| (q.tx.clone(), Arc::clone(&q.bytes)))
        };
        let Some((queue, bytes)) = queue else {
            tracing::info!(group = %job.group, msg_id = ?job.header.msg_id, "transaction check for a group with no transactional producer here; ignored");
            return Routed::NoProducer;
        };
        let size = job.size();
        if !bytes.take(size) {
            tracing::warn!(group = %job.group, msg_id = ?job.header.msg_id, size, "transaction check queue over its byte bound; check dropped (the broker asks again)");
            return Routed::QueueFull;
        }
        match queue.try_send(job) {
            Ok(()) => Routed::Queued,
            Err(mpsc::error::TrySendError::Full(job)) => {
                bytes.release(size);
                tracing::warn!(group = %job.group, msg_id = ?job.header.msg_id, "transaction check queue full; check dropped (the broker asks again)");
                Routed::QueueFull
            }
            Err(mpsc::error::TrySendError::Closed(job)) => {
                bytes.release(size);
                tracing::info!(group = %job.group, "transaction check for a producer shutting down; ignored");
                Routed::NoProducer
            }
        }
    }
}

/// Decodes a `CHECK_TRANSACTION_STATE` request from `addr`: header, stored message (not
/// inflated: that is the worker's job, off the connection's task), group.
pub(crate) fn decode(addr: String, req: &RemotingCommand) -> Result<CheckJob, String> {
    let header = req
        .decode_header::<CheckTransactionStateRequestHeader>()
        .map_err(|e| format!("bad header: {e}"))?;
    let mut body = req.body.clone();
    let msg = decode_stored_message_raw(&mut body).map_err(|e| format!("bad body: {e}"))?;
    let group = msg
        .message
        .property(property::PGROUP)
        .filter(|g| !g.is_empty())
        .ok_or("the stored message has no PGROUP property")?
        .to_owned();
    Ok(CheckJob {
        addr,
        header,
        msg,
        group,
    })
}

/// The instance's processor of `CHECK_TRANSACTION_STATE`.
#[derive(Debug)]
pub(crate) struct CheckProcessor {
    pub(crate) router: Arc<CheckRouter>,
}

impl RequestProcessor for CheckProcessor {
    fn process(
        &self,
        ctx: RequestContext,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        // The address the instance dialed (its pool key): the answer reuses this connection,
        // with its TLS server name and the request hook (Java answers the channel's address).
        let addr = ctx.connection().addr().to_owned();
        match decode(addr, &req) {
            Ok(job) => {
                tracing::debug!(group = %job.group, addr = %job.addr, msg_id = ?job.header.msg_id, "transaction check received");
                self.router.route(job);
            }
            Err(reason) => {
                tracing::warn!(addr = %ctx.peer_addr(), reason, "undecodable transaction check; ignored");
            }
        }
        // The check is oneway: nothing to answer.
        Box::pin(std::future::ready(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_common::stored::encode_stored_message;
    use rmq_common::{CommandHeader, Message, RequestCode};

    fn job(group: &str) -> CheckJob {
        CheckJob {
            addr: "127.0.0.1:10911".into(),
            header: CheckTransactionStateRequestHeader::default(),
            msg: MessageExt::default(),
            group: group.into(),
        }
    }

    #[test]
    fn checks_go_to_their_group_and_overflow_is_dropped() {
        let router = Arc::new(CheckRouter::default());
        assert_eq!(router.route(job("g")), Routed::NoProducer);
        let (tx, mut rx) = mpsc::channel(1);
        let reg = router.register("g", tx, QueuedBytes::new(usize::MAX));
        assert_eq!(router.route(job("other")), Routed::NoProducer);
        assert_eq!(router.route(job("g")), Routed::Queued);
        assert_eq!(router.route(job("g")), Routed::QueueFull);
        assert_eq!(rx.try_recv().map(|j| j.group).ok().as_deref(), Some("g"));
        drop(reg);
        assert_eq!(router.route(job("g")), Routed::NoProducer);
        assert!(router.lock().is_empty());
    }

    #[test]
    fn the_byte_bound_holds_whatever_the_count() {
        let router = Arc::new(CheckRouter::default());
        let (tx, mut rx) = mpsc::channel(100);
        let bytes = QueuedBytes::new(100);
        let _reg = router.register("g", tx, Arc::clone(&bytes));
        let mut big = job("g");
        big.msg.message.set_body(vec![0u8; 60]);
        assert_eq!(router.route(big), Routed::Queued);
        let mut big = job("g");
        big.msg.message.set_body(vec![0u8; 60]);
        assert_eq!(router.route(big), Routed::QueueFull, "60 + 60 > 100");
        let taken = rx.try_recv().expect("queued");
        bytes.release(taken.size());
        let mut big = job("g");
        big.msg.message.set_body(vec![0u8; 60]);
        assert_eq!(router.route(big), Routed::Queued, "room again");
    }

    #[test]
    fn decode_reads_header_body_and_group() {
        let mut msg = Message::new("TxTopic", "body");
        msg.properties_mut().insert(property::PGROUP, "TxGroup");
        msg.properties_mut().insert(property::UNIQ_KEY, "ABC");
        let ext = MessageExt {
            message: msg,
            commit_log_offset: 99,
            ..MessageExt::default()
        };
        let header = CheckTransactionStateRequestHeader {
            topic: Some("TxTopic".into()),
            tran_state_table_offset: 3,
            commit_log_offset: 99,
            msg_id: Some("ABC".into()),
            ..Default::default()
        };
        let req =
            RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE, header.to_ext_fields())
                .with_body(encode_stored_message(&ext));
        let job = decode("1.2.3.4:5".into(), &req).expect("decodes");
        assert_eq!(
            (job.group.as_str(), job.addr.as_str()),
            ("TxGroup", "1.2.3.4:5")
        );
        assert_eq!(job.header, header);
        assert_eq!(job.msg, ext);

        let mut no_group = ext.clone();
        no_group.message.properties_mut().remove(property::PGROUP);
        let req = req.clone().with_body(encode_stored_message(&no_group));
        assert!(decode(String::new(), &req).unwrap_err().contains("PGROUP"));
        let req = req.with_body(bytes::Bytes::from_static(b"\0\0"));
        assert!(decode(String::new(), &req)
            .unwrap_err()
            .starts_with("bad body"));
    }
}
