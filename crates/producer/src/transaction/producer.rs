//! [`TransactionProducer`]: a producer with a [`TransactionListener`] (Java's
//! `TransactionMQProducer`), and the transaction flow of one message (Java's
//! `sendMessageInTransaction`), over any transport.

use std::sync::{Arc, Mutex, PoisonError};

use rmq_common::{property, Message};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::check::{QueuedBytes, Registration};
use super::end::{self, EXECUTE_REMARK};
use super::guard::{guarded, Verdict};
use super::worker::{self, Worker, CHECK_END_TIMEOUT};
use super::{TransactionConfig, TransactionListener, TransactionSendResult, TransactionState};
use crate::checks::check_message;
use crate::error::{ErrorKind, SendError, Unsent};
use crate::kernel::prepare_single;
use crate::options::SendOptions;
use crate::retry::{Core, Mode};
use crate::send::{expect_result_kind, run_sync};
use crate::send_result::SendStatus;
use crate::transport::any::AnyTransport;
use crate::transport::{EndTarget, Transport};
use crate::Producer;

/// A producer of transactional messages: [`send_in_transaction`](Self::send_in_transaction)
/// sends a half message, runs the listener's [`execute`](TransactionListener::execute) and
/// commits or rolls back; the broker's check-backs for the producer group are answered by the
/// listener's [`check`](TransactionListener::check). Cheap to clone.
///
/// Ordinary sends go through [`producer`](Self::producer) (Java's `TransactionMQProducer` is
/// a `DefaultMQProducer`). Call [`shutdown`](Self::shutdown) for a clean stop.
///
/// ```no_run
/// use rmq_common::{stored::MessageExt, Message};
/// use rmq_producer::{ListenerError, Producer, TransactionListener, TransactionState};
///
/// struct AlwaysCommit;
///
/// impl TransactionListener for AlwaysCommit {
///     type Arg = ();
///     async fn execute(&self, _: &Message, _: ()) -> Result<TransactionState, ListenerError> {
///         Ok(TransactionState::Commit)
///     }
///     async fn check(&self, _: &MessageExt) -> Result<TransactionState, ListenerError> {
///         Ok(TransactionState::Commit)
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let producer = Producer::builder("tx_group")
///     .name_server("127.0.0.1:9876")
///     .start_transactional(AlwaysCommit)
///     .await?;
/// let result = producer.send_in_transaction(Message::new("TopicTest", "order 42"), ()).await?;
/// println!("{result}");
/// producer.shutdown().await;
/// # Ok(()) }
/// ```
pub struct TransactionProducer<L: TransactionListener> {
    producer: Producer,
    shared: Arc<Shared<L>>,
}

impl<L: TransactionListener> Clone for TransactionProducer<L> {
    fn clone(&self) -> Self {
        Self {
            producer: self.producer.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<L: TransactionListener> std::fmt::Debug for TransactionProducer<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionProducer")
            .field("producer", &self.producer)
            .field("cfg", &self.shared.worker.cfg)
            .finish_non_exhaustive()
    }
}

/// What the handles share: the listener, the check worker and its registration.
struct Shared<L: TransactionListener> {
    worker: Arc<Worker<L, AnyTransport>>,
    /// Set when shutdown begins: no new transactions (checks are still answered meanwhile).
    closing: std::sync::atomic::AtomicBool,
    registration: Mutex<Option<Registration>>,
    stop: CancellationToken,
    checks: TaskTracker,
}

impl<L: TransactionListener> Drop for Shared<L> {
    fn drop(&mut self) {
        // The last handle is gone: no more checks for this producer.
        self.stop.cancel();
    }
}

impl<L: TransactionListener> TransactionProducer<L> {
    /// Starts the check worker of `producer` and routes its group's checks to it.
    pub(crate) fn start(producer: Producer, listener: L, cfg: TransactionConfig) -> Self {
        let inner = producer.inner();
        let worker = Arc::new(Worker {
            listener: Arc::new(listener),
            core: Arc::clone(&inner.core),
            cfg,
        });
        let (queue, intake) = mpsc::channel(worker.cfg.check_queue);
        let bytes = QueuedBytes::new(worker.cfg.check_queue_bytes);
        let registration =
            inner
                .instance()
                .checks
                .register(&inner.cfg().group, queue, Arc::clone(&bytes));
        let stop = CancellationToken::new();
        let checks = TaskTracker::new();
        drop(tokio::spawn(worker::run(
            Arc::clone(&worker),
            intake,
            bytes,
            stop.clone(),
            checks.clone(),
        )));
        // A proxy relays its brokers' check-backs itself (no broker connection to open).
        if inner.cfg().proxy.is_none() {
            drop(tokio::spawn(discover_brokers(
                Arc::clone(inner.instance()),
                inner.cfg().name_server.default_topic.clone(),
                inner.cfg().send_timeout,
            )));
        }
        tracing::info!(group = %inner.cfg().group, "transactional producer started");
        Self {
            producer,
            shared: Arc::new(Shared {
                worker,
                closing: std::sync::atomic::AtomicBool::new(false),
                registration: Mutex::new(Some(registration)),
                stop,
                checks,
            }),
        }
    }

    /// The producer for ordinary sends (same group, connections and settings).
    #[must_use]
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The listener.
    #[must_use]
    pub fn listener(&self) -> &L {
        &self.shared.worker.listener
    }

    /// Sends `msg` as a half message, runs the listener's
    /// [`execute`](TransactionListener::execute) with `arg`, and ends the transaction with its
    /// decision. The same as [`send_in_transaction_with`](Self::send_in_transaction_with) with
    /// the default options.
    ///
    /// # Errors
    /// As [`Producer::send`]: the half message was not stored (or may have been: see
    /// [`SendError::maybe_stored`]; then the broker will check back and
    /// [`check`](TransactionListener::check) decides), and the listener did not run. The
    /// message handed back ([`SendError::into_message`]) has no transaction properties.
    pub async fn send_in_transaction(
        &self,
        msg: Message,
        arg: L::Arg,
    ) -> Result<TransactionSendResult, SendError> {
        self.send_in_transaction_with(msg, arg, SendOptions::new())
            .await
    }

    /// [`send_in_transaction`](Self::send_in_transaction) with `options` (deadline of the half
    /// message's send, target queue or selector). Batches cannot be transactional.
    ///
    /// # Errors
    /// As [`send_in_transaction`](Self::send_in_transaction).
    pub async fn send_in_transaction_with(
        &self,
        msg: Message,
        arg: L::Arg,
        options: SendOptions,
    ) -> Result<TransactionSendResult, SendError> {
        let inner = self.producer.inner();
        let Some(_token) = inner.begin() else {
            return Err(SendError::new(ErrorKind::NotRunning, Unsent::one(msg)));
        };
        if self
            .shared
            .closing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(SendError::new(ErrorKind::NotRunning, Unsent::one(msg)));
        }
        let worker = &self.shared.worker;
        in_transaction(
            &inner.core,
            &*worker.listener,
            &worker.cfg,
            msg,
            arg,
            options,
        )
        .await
        .map_err(|(kind, msg)| SendError::new(kind, Unsent::one(msg)))
    }

    /// Refuses new transactions, waits for those in flight (as [`Producer::shutdown`] waits
    /// for sends), stops answering checks (those running finish, within their timeout), then
    /// shuts the producer down ([`Producer::shutdown`]). Idempotent.
    pub async fn shutdown(&self) {
        self.shared
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let sends = &self.producer.inner().sends;
        let cfg = self.producer.config();
        // Transactions in flight end (and their unknowns stay answerable) before the checks
        // stop; the producer's own shutdown bounds and cancels what is left.
        let _ = tokio::time::timeout(cfg.shutdown_timeout, async {
            while !sends.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        let registration = self
            .shared
            .registration
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(registration);
        self.shared.stop.cancel();
        self.shared.checks.close();
        let bound = (self.shared.worker.cfg.check_timeout + CHECK_END_TIMEOUT)
            .min(self.producer.config().shutdown_timeout);
        if tokio::time::timeout(bound, self.shared.checks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.shared.checks.len(),
                "transactional producer: checks still running at shutdown; not waiting longer"
            );
        }
        self.producer.shutdown().await;
    }
}

/// Java's `sendMessageInTransaction` for one message: the half message (sync send, retried as
/// any), the local transaction, `END_TRANSACTION`. On a failed send, the error and the message
/// (its transaction properties removed).
pub(crate) async fn in_transaction<L, T>(
    core: &Arc<Core<T>>,
    listener: &L,
    cfg: &TransactionConfig,
    mut msg: Message,
    arg: L::Arg,
    options: SendOptions,
) -> Result<TransactionSendResult, (ErrorKind, Message)>
where
    L: TransactionListener,
    T: Transport,
{
    let group = core.cfg.group.clone();
    let delay = mark_half(&mut msg, &group);
    if let Err(source) = check_message(&msg, &core.cfg) {
        return Err((ErrorKind::InvalidMessage(source), unmark_half(msg, delay)));
    }
    let out = prepare_single(&mut msg, &core.cfg, &mut crate::kernel::ProcessIds);
    let sent = match run_sync(core, out, &msg, options, Mode::Reply, core.cfg.retries)
        .await
        .and_then(expect_result_kind)
    {
        Ok(sent) => sent,
        Err(kind) => return Err((kind, unmark_half(msg, delay))),
    };
    let span = tracing::info_span!("transaction", group = %group, msg_id = %sent.msg_id, state = tracing::field::Empty);
    async {
        let (verdict, ran) = match sent.status {
            SendStatus::SendOk => {
                if let Some(id) = &sent.transaction_id {
                    msg.properties_mut().insert(property::TRANSACTION_ID, id.clone());
                }
                // The call inside the guard: a listener that panics before returning its
                // future counts as unknown too.
                let run = async { listener.execute(&msg, arg).await };
                (guarded("execute", cfg.execute_timeout, run).await, true)
            }
            status => (
                Verdict {
                    state: TransactionState::Rollback,
                    note: Some(format!("half message stored with {status}: rolled back")),
                },
                false,
            ),
        };
        tracing::Span::current().record("state", verdict.state.as_str());
        let remark = if ran {
            end::remark(EXECUTE_REMARK, verdict.note.as_deref())
        } else {
            None
        };
        if let Some(trace) = &core.trace {
            trace_end(core, trace, &msg, &sent, verdict.state);
        }
        // A proxy ends by ids: no offset message id to decode.
        let header = if core.transport.ends_by_id() {
            Ok(crate::transport::grpc::end_header(
                msg.topic(),
                &group,
                &sent,
                verdict.state,
            ))
        } else {
            end::after_send(msg.topic(), &group, &sent, verdict.state)
        };
        let end_written = match header {
            Ok(header) => match core
                .transport
                .end_transaction(
                    EndTarget::Broker(&sent.queue.broker_name),
                    header,
                    remark,
                    core.cfg.send_timeout,
                )
                .await
            {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "END_TRANSACTION not written; the broker will check back");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, offset_msg_id = %sent.offset_msg_id, "END_TRANSACTION not sent: unreadable offset message id; the broker will check back");
                false
            }
        };
        tracing::debug!(state = %verdict.state, end_written, "transaction ended");
        Ok(TransactionSendResult {
            send: sent,
            state: verdict.state,
            note: verdict.note,
            end_written,
        })
    }
    .instrument(span)
    .await
}

/// The trace hook of a transaction ended after its send (Java's `endTransaction` runs the end
/// hooks with the broker of the half message).
fn trace_end<T: Transport>(
    core: &Core<T>,
    trace: &crate::trace::dispatcher::Tracer,
    msg: &Message,
    sent: &crate::SendResult,
    state: TransactionState,
) {
    let wire_topic = rmq_common::namespace::wrap(crate::namespace::of(&core.cfg), msg.topic());
    let route = core
        .transport
        .cached_route(&wire_topic, tokio::time::Instant::now());
    trace.ended(&crate::trace::record::EndTx {
        group: trace.group(),
        topic: msg.topic(),
        props: msg.properties(),
        msg_id: &sent.msg_id,
        transaction_id: msg.property(property::UNIQ_KEY),
        store_host: route
            .as_deref()
            .and_then(|r| r.info().master_addr(&sent.queue.broker_name)),
        state,
        from_check: false,
    });
}

/// Heartbeats the brokers of the default topic (`TBW102`) from the start, as Java's producer
/// does (its publish table holds that topic from `start`): a transactional producer that
/// replaces one that stopped is then found by the brokers' check-backs for the half messages
/// its predecessor left, before it sends anything. Brokers found later through sends are
/// heartbeated as usual. A requester does the same before its first request (the broker a
/// replier sends the reply to must know the requester's connection).
pub(crate) async fn discover_brokers(
    instance: Arc<crate::ClientInstance>,
    topic: String,
    timeout: std::time::Duration,
) {
    match instance.routes.client().topic_route(&topic, timeout).await {
        Ok(route) => {
            for broker in &route.broker_datas {
                if let Some(addr) = broker.master_addr() {
                    instance.note_broker(addr);
                }
            }
        }
        Err(e) => {
            tracing::debug!(topic, error = %e, "no route of the default topic: brokers are heartbeated once sends find them");
        }
    }
}

/// Makes `msg` a half message of `group` (Java: `DELAY` removed, `TRAN_MSG=true`, `PGROUP`);
/// returns the `DELAY` it had.
fn mark_half(msg: &mut Message, group: &str) -> Option<String> {
    let props = msg.properties_mut();
    let delay = props.remove(property::DELAY);
    props.insert(property::TRAN_MSG, "true");
    props.insert(property::PGROUP, group);
    delay
}

/// Gives a message handed back its properties as the user set them (no transaction
/// properties, its `DELAY` back), so that sending it again with [`Producer::send`] sends what
/// the user built, not a half message.
fn unmark_half(mut msg: Message, delay: Option<String>) -> Message {
    let props = msg.properties_mut();
    props.remove(property::TRAN_MSG);
    props.remove(property::PGROUP);
    if let Some(delay) = delay {
        props.insert(property::DELAY, delay);
    }
    msg
}

#[cfg(test)]
#[path = "producer_tests.rs"]
mod tests;
