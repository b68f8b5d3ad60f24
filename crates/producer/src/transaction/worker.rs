//! A transactional producer's check worker (Java's `checkExecutor`): takes the checks the
//! router queued for its group, runs [`TransactionListener::check`] on at most
//! `check_concurrency` tasks at once, and answers each with `END_TRANSACTION`
//! (`fromTransactionCheck=true`, oneway, 3 s) to the address the check came from.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use rmq_common::stored::DEFAULT_INFLATE_LIMIT;

use super::check::{CheckJob, QueuedBytes};
use super::end::{self, CHECK_REMARK};
use super::guard::guarded;
use super::{TransactionConfig, TransactionListener};
use crate::retry::Core;
use crate::transport::{EndTarget, Transport};

/// Java's timeout of the `END_TRANSACTION` answering a check.
pub(crate) const CHECK_END_TIMEOUT: Duration = Duration::from_secs(3);

/// What a worker needs; shared by its tasks.
pub(crate) struct Worker<L, T> {
    pub(crate) listener: Arc<L>,
    /// The producer's send loop state: its transport and group.
    pub(crate) core: Arc<Core<T>>,
    pub(crate) cfg: TransactionConfig,
}

impl<L, T> Worker<L, T> {
    fn group(&self) -> &str {
        &self.core.cfg.group
    }
}

/// Runs until `stop` or until the queue's senders are gone; checks already started finish on
/// `tasks` (bounded by the check timeout).
pub(crate) async fn run<L, T>(
    worker: Arc<Worker<L, T>>,
    mut queue: mpsc::Receiver<CheckJob>,
    bytes: Arc<QueuedBytes>,
    stop: CancellationToken,
    tasks: TaskTracker,
) where
    L: TransactionListener,
    T: Transport,
{
    let slots = Arc::new(Semaphore::new(worker.cfg.check_concurrency));
    loop {
        let job = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            job = queue.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        // Off the queue: its bytes are the running checks' now (bounded by the slots).
        bytes.release(job.size());
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let worker = Arc::clone(&worker);
        let span = tracing::info_span!(
            "transaction_check",
            group = %worker.group(),
            msg_id = ?job.header.msg_id,
            broker = %job.addr,
        );
        tasks.spawn(
            async move {
                answer(&worker, job).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    tracing::debug!(group = %worker.group(), "transaction check worker stopped");
}

/// Runs the listener on one check and sends its answer.
pub(crate) async fn answer<L, T>(worker: &Worker<L, T>, job: CheckJob)
where
    L: TransactionListener,
    T: Transport,
{
    // Inflated here, off the connection's task (Java decodes it in full on arrival).
    let mut msg = match job.msg.inflate(DEFAULT_INFLATE_LIMIT) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::warn!(error = %e, "transaction check: the stored message cannot be inflated; ignored");
            return;
        }
    };
    // The listener sees the topic out of the namespace (Java `checkTransactionState`); the
    // answer names it as stored.
    let stored_topic = msg.message.topic().to_owned();
    let ns = crate::namespace::of(&worker.core.cfg);
    if let std::borrow::Cow::Owned(topic) = rmq_common::namespace::unwrap(ns, &stored_topic) {
        msg.message.set_topic(topic);
    }
    // The call itself inside the guard: a listener that panics before returning its future
    // counts as unknown too.
    let verdict = guarded("check", worker.cfg.check_timeout, async {
        worker.listener.check(&msg).await
    })
    .await;
    msg.message.set_topic(stored_topic);
    let header = end::after_check(&job.header, &msg, worker.group(), verdict.state);
    if let Some(trace) = &worker.core.trace {
        trace.ended(&crate::trace::record::EndTx {
            group: worker.group(),
            topic: msg.message.topic(),
            props: msg.message.properties(),
            msg_id: &header.msg_id,
            transaction_id: msg.uniq_key().or(job.header.transaction_id.as_deref()),
            store_host: Some(&job.addr),
            state: verdict.state,
            from_check: true,
        });
    }
    let remark = end::remark(CHECK_REMARK, verdict.note.as_deref());
    match worker
        .core
        .transport
        .end_transaction(
            EndTarget::Addr(&job.addr),
            header,
            remark,
            CHECK_END_TIMEOUT,
        )
        .await
    {
        Ok(()) => tracing::debug!(state = %verdict.state, "transaction check answered"),
        Err(e) => {
            tracing::warn!(state = %verdict.state, error = %e, "transaction check: END_TRANSACTION not written (the broker asks again)");
        }
    }
}
