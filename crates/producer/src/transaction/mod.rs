//! Transactional messages (Java's `TransactionMQProducer`): a half message is stored but kept
//! from consumers, the producer runs its local transaction, then commits or rolls the message
//! back; when the answer is "unknown" (or never reaches the broker), the broker later asks the
//! producer group (`CHECK_TRANSACTION_STATE`) until it gets a decision.
//!
//! - [`TransactionListener`]: the user's two async callbacks, [`execute`] (the local
//!   transaction, run in the sending task after the half message is stored) and [`check`] (the
//!   answer to a broker's check-back, run on a bounded pool of tasks).
//! - [`TransactionProducer`]: started with
//!   [`ProducerBuilder::start_transactional`](crate::ProducerBuilder::start_transactional);
//!   [`TransactionProducer::send_in_transaction`] sends the half message, runs `execute` and
//!   ends the transaction (`END_TRANSACTION`, oneway, as Java).
//! - [`TransactionConfig`]: the listener's time budgets and the check pool's bounds.
//!
//! A listener that returns an error, panics or outlives its budget counts as
//! [`TransactionState::Unknown`]: it is logged, and the broker asks again later. It never
//! breaks a connection or another transaction.
//!
//! [`execute`]: TransactionListener::execute
//! [`check`]: TransactionListener::check

use std::fmt;
use std::future::Future;
use std::time::Duration;

use rmq_common::stored::MessageExt;
use rmq_common::{sysflag, Message};

use crate::send_result::SendResult;

pub(crate) mod check;
mod end;
mod guard;
mod producer;
pub(crate) use producer::discover_brokers;
mod worker;

pub(crate) use check::{CheckProcessor, CheckRouter, CHECK_QUEUE_DEFAULT};
pub(crate) use end::request as end_request;
pub use producer::TransactionProducer;

/// What a listener decided about a local transaction (Java's `LocalTransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// Make the half message visible to consumers (`COMMIT_MESSAGE`).
    Commit,
    /// Discard the half message (`ROLLBACK_MESSAGE`).
    Rollback,
    /// Not decided yet: the broker asks again later (`UNKNOW`).
    Unknown,
}

impl TransactionState {
    /// The `commitOrRollback` value of `END_TRANSACTION`: 8, 12, or 0 for unknown.
    ///
    /// ```
    /// use rmq_producer::TransactionState;
    /// assert_eq!(TransactionState::Commit.wire_value(), 8);
    /// assert_eq!(TransactionState::Rollback.wire_value(), 12);
    /// assert_eq!(TransactionState::Unknown.wire_value(), 0);
    /// ```
    #[must_use]
    pub fn wire_value(self) -> i32 {
        match self {
            Self::Commit => sysflag::TRANSACTION_COMMIT_TYPE,
            Self::Rollback => sysflag::TRANSACTION_ROLLBACK_TYPE,
            Self::Unknown => sysflag::TRANSACTION_NOT_TYPE,
        }
    }

    /// Java's enum constant name (`COMMIT_MESSAGE`, `ROLLBACK_MESSAGE`, `UNKNOW`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commit => "COMMIT_MESSAGE",
            Self::Rollback => "ROLLBACK_MESSAGE",
            Self::Unknown => "UNKNOW",
        }
    }
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a listener may return; it counts as [`TransactionState::Unknown`] and its text
/// goes to the broker in the request's remark, as Java sends the exception's.
pub type ListenerError = Box<dyn std::error::Error + Send + Sync>;

/// The user's side of a transaction: the local transaction and the answer to check-backs.
///
/// Both methods are async and run on tokio tasks, never on a connection's I/O task; a slow
/// `check` holds one of the check pool's slots ([`TransactionConfig::check_concurrency`]), up
/// to [`TransactionConfig::check_timeout`]. Implement them with `async fn`:
///
/// ```
/// use rmq_common::{stored::MessageExt, Message};
/// use rmq_producer::{ListenerError, TransactionListener, TransactionState};
///
/// struct Orders;
///
/// impl TransactionListener for Orders {
///     /// What `send_in_transaction` passes to `execute`: here, an order number.
///     type Arg = u64;
///
///     async fn execute(&self, msg: &Message, order: u64) -> Result<TransactionState, ListenerError> {
///         // Write the order and the message id (`msg.property("UNIQ_KEY")`) in one local
///         // database transaction; an error here means "unknown": the broker asks later.
///         let _ = (msg, order);
///         Ok(TransactionState::Commit)
///     }
///
///     async fn check(&self, msg: &MessageExt) -> Result<TransactionState, ListenerError> {
///         // Look the message id up in the local database.
///         let _ = msg.uniq_key();
///         Ok(TransactionState::Commit)
///     }
/// }
/// ```
pub trait TransactionListener: Send + Sync + 'static {
    /// What [`TransactionProducer::send_in_transaction`] hands to [`execute`](Self::execute)
    /// (Java's `Object arg`); `()` when nothing is needed.
    type Arg: Send;

    /// Runs the local transaction of a half message the broker stored. `msg` is the message as
    /// sent: its `UNIQ_KEY` property is the message id and the transaction id, also set as the
    /// `__transactionId__` user property (as Java does).
    fn execute(
        &self,
        msg: &Message,
        arg: Self::Arg,
    ) -> impl Future<Output = Result<TransactionState, ListenerError>> + Send;

    /// Answers a broker's check-back for a half message still undecided: `msg` is the stored
    /// half message as the broker sent it (its topic the real topic, its `UNIQ_KEY` the id
    /// `execute` saw).
    fn check(
        &self,
        msg: &MessageExt,
    ) -> impl Future<Output = Result<TransactionState, ListenerError>> + Send;
}

/// The most checks that may run at once.
const MAX_CHECK_CONCURRENCY: usize = 65_536;

/// The longest check queue.
const MAX_CHECK_QUEUE: usize = 1_000_000;

/// The settings of a transactional producer ([`ProducerBuilder::transaction`]).
///
/// ```
/// use std::time::Duration;
/// use rmq_producer::TransactionConfig;
///
/// let cfg = TransactionConfig::default().with_check_timeout(Duration::from_secs(2));
/// assert_eq!(cfg.execute_timeout, Duration::from_secs(60));
/// assert_eq!(cfg.check_queue, 2000);
/// ```
///
/// [`ProducerBuilder::transaction`]: crate::ProducerBuilder::transaction
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionConfig {
    /// The longest [`TransactionListener::execute`] may run; past it the transaction is ended
    /// as unknown and the broker asks later (default 60 s; Java has no bound).
    pub execute_timeout: Duration,
    /// The longest [`TransactionListener::check`] may run; past it the check is answered
    /// unknown (default 10 s).
    pub check_timeout: Duration,
    /// Checks run at once (default 4; Java runs one thread).
    pub check_concurrency: usize,
    /// Checks waiting for a slot; a check arriving when the queue is full is logged and dropped,
    /// and the broker asks again at its next check round (default 2000, Java's
    /// `checkRequestHoldMax`).
    pub check_queue: usize,
    /// Bytes of the checks waiting (their stored messages, as received): a check that would go
    /// over is dropped as when the queue is full (default 64 MiB).
    pub check_queue_bytes: usize,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        Self {
            execute_timeout: Duration::from_secs(60),
            check_timeout: Duration::from_secs(10),
            check_concurrency: 4,
            check_queue: CHECK_QUEUE_DEFAULT,
            check_queue_bytes: 64 * 1024 * 1024,
        }
    }
}

impl TransactionConfig {
    /// Sets [`execute_timeout`](Self::execute_timeout).
    #[must_use]
    pub fn with_execute_timeout(mut self, timeout: Duration) -> Self {
        self.execute_timeout = timeout;
        self
    }

    /// Sets [`check_timeout`](Self::check_timeout).
    #[must_use]
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Sets [`check_concurrency`](Self::check_concurrency) and [`check_queue`](Self::check_queue)
    /// (checks waiting; their bytes stay bounded by [`check_queue_bytes`](Self::check_queue_bytes)).
    #[must_use]
    pub fn with_check_limits(mut self, concurrency: usize, queue: usize) -> Self {
        self.check_concurrency = concurrency;
        self.check_queue = queue;
        self
    }

    /// The first setting out of range, if any.
    pub(crate) fn invalid(&self, max: Duration) -> Option<&'static str> {
        [
            (
                self.execute_timeout.is_zero() || self.execute_timeout > max,
                "transaction execute_timeout must be positive and at most a day",
            ),
            (
                self.check_timeout.is_zero() || self.check_timeout > max,
                "transaction check_timeout must be positive and at most a day",
            ),
            (
                self.check_concurrency == 0 || self.check_concurrency > MAX_CHECK_CONCURRENCY,
                "transaction check_concurrency must be 1..=65536",
            ),
            (
                self.check_queue == 0 || self.check_queue > MAX_CHECK_QUEUE,
                "transaction check_queue must be 1..=1000000",
            ),
            (
                self.check_queue_bytes == 0,
                "transaction check_queue_bytes must be positive",
            ),
        ]
        .into_iter()
        .find_map(|(bad, reason)| bad.then_some(reason))
    }
}

/// The outcome of [`TransactionProducer::send_in_transaction`] (Java's `TransactionSendResult`):
/// the half message's send result, the local transaction's state, and whether its
/// `END_TRANSACTION` was written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionSendResult {
    /// How the half message was stored.
    pub send: SendResult,
    /// What was reported to the broker: the listener's decision, [`TransactionState::Unknown`]
    /// when it failed, panicked or ran out of time, [`TransactionState::Rollback`] when the
    /// half message was stored without its flush or replication guarantee (as Java).
    pub state: TransactionState,
    /// Why the listener's decision is not what was reported (its error, a panic, the budget),
    /// or why the listener did not run (the half message's status).
    pub note: Option<String>,
    /// Whether `END_TRANSACTION` was handed to the broker's connection (queued for writing: it
    /// is oneway, and as in Java a write failing after that is only logged). When false (no
    /// connection, no room in time), the broker asks the producer group later and
    /// [`TransactionListener::check`] answers.
    pub end_written: bool,
}

impl TransactionSendResult {
    /// Whether the transaction was committed (as far as the producer knows: the end request is
    /// oneway).
    #[must_use]
    pub fn is_committed(&self) -> bool {
        self.state == TransactionState::Commit && self.end_written
    }
}

impl fmt::Display for TransactionSendResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} localTransactionState={}{}",
            self.send,
            self.state,
            if self.end_written {
                ""
            } else {
                " (END_TRANSACTION not written; the broker will check back)"
            }
        )
    }
}
