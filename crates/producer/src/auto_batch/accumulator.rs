//! [`Accumulator`]: the open batches of a producer, one per [`Key`], and the bound on the bytes
//! held.
//!
//! A message joins the open batch of its key (creating it, and the task that will send it, if
//! there is none). A batch closes when its hold time is over (its task takes it out), when it
//! reaches `max_batch_bytes` or when the next message would push it past the largest request
//! (the message that joins hands it to its task at once), with `send_when_idle` when no batch of
//! its key is in flight, or at shutdown ([`Accumulator::flush_all`]). A closed batch is out of
//! the map, so the next message of its key opens a new one; each batch is sent by its own task,
//! so batches of one key may be in flight together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmq_common::{Message, MessageQueue};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::rules::{self, Alone};
use super::{flush, AutoBatchConfig};
use crate::deliver::{Leftovers, SendOutcome};
use crate::error::{ErrorKind, SendError, Unsent};
use crate::retry::Core;
use crate::transport::Transport;

/// Where a member's outcome goes (the type a [`SendFuture`](crate::SendFuture) reads).
pub(crate) type Reply = oneshot::Sender<(SendOutcome, Leftovers)>;

/// What the caller of a held send awaits.
pub(crate) type Receipt = oneshot::Receiver<(SendOutcome, Leftovers)>;

/// How the callers of a batch wait: synchronous and asynchronous sends are held apart (as
/// Java's two accumulators), since their retries differ and only a synchronous send is
/// withdrawn when its caller gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Sync,
    Async,
}

/// What the messages of one batch share (Java's `AggregateKey` without the tag: each record
/// keeps its own tags, so messages of different tags go together).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) topic: String,
    /// The queue of sends with a queue target or a selector; `None`: any queue.
    pub(crate) queue: Option<MessageQueue>,
    /// The `WAIT` property (a batch carries one).
    pub(crate) wait: bool,
    pub(crate) kind: Kind,
}

/// Why a batch closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    HoldTime,
    Size,
    /// The next message would have pushed it past the largest request.
    Full,
    /// No batch of its key was in flight ([`AutoBatchConfig::send_when_idle`]).
    Idle,
    Shutdown,
}

impl Trigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::HoldTime => "hold time",
            Self::Size => "size",
            Self::Full => "full",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
        }
    }
}

/// One held message and what its send holds until it resolves.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) msg: Message,
    pub(crate) ticket: Ticket,
}

/// A member's registrations: where its outcome goes, its deadline, its room and its token.
#[derive(Debug)]
pub(crate) struct Ticket {
    reply: Reply,
    /// A synchronous send whose caller went away before the batch was sent is withdrawn.
    withdraw: bool,
    pub(crate) deadline: Instant,
    /// The send's timeout (what a timeout error reports).
    pub(crate) timeout: Duration,
    room: OwnedSemaphorePermit,
    token: TaskTrackerToken,
}

impl Ticket {
    /// Whether the caller gave up on a send that is withdrawn then.
    pub(crate) fn withdrawn(&self) -> bool {
        self.withdraw && self.reply.is_closed()
    }

    /// Delivers the outcome, exactly once: the room is freed first, so a caller that sends
    /// again on its result finds it; the token (what shutdown waits for) last.
    pub(crate) fn resolve(self, outcome: SendOutcome) {
        let Self {
            reply, room, token, ..
        } = self;
        drop(room);
        // The caller may be gone: the outcome is discarded.
        let _ = reply.send((outcome, Leftovers::default()));
        drop(token);
    }
}

/// A closed batch, handed to its task.
#[derive(Debug)]
pub(crate) struct Release {
    pub(crate) members: Vec<Member>,
    pub(crate) trigger: Trigger,
    pub(crate) bytes: usize,
}

/// The batches of one key: the open one, and how many are being sent (closed, not answered).
#[derive(Debug, Default)]
struct Lane {
    open: Option<Open>,
    in_flight: usize,
}

impl Lane {
    /// Closes the open batch: it goes to its task, and counts as in flight until its task ends.
    fn close(&mut self, trigger: Trigger) {
        if let Some(open) = self.open.take() {
            self.in_flight += 1;
            open.release(trigger);
        }
    }

    fn is_unused(&self) -> bool {
        self.open.is_none() && self.in_flight == 0
    }
}

/// An open batch.
#[derive(Debug)]
struct Open {
    id: u64,
    members: Vec<Member>,
    bytes: usize,
    /// Its task, waiting for the hold time or for this.
    wake: oneshot::Sender<Release>,
}

impl Open {
    fn release(self, trigger: Trigger) {
        let release = Release {
            members: self.members,
            trigger,
            bytes: self.bytes,
        };
        // The task only ends after receiving (or taking) its batch; should the runtime have
        // dropped it, the members are dropped and their callers learn it (`Cancelled`).
        let _ = self.wake.send(release);
    }
}

/// A send asking to be held: its message (valid, its id set, not to be sent alone), the bytes
/// it takes in a batch, its queue (sends with a queue target or a selector), how its caller
/// waits, its deadline, and its registration with the producer.
#[derive(Debug)]
pub(crate) struct Entrant {
    pub(crate) msg: Message,
    pub(crate) record: usize,
    pub(crate) queue: Option<MessageQueue>,
    pub(crate) kind: Kind,
    pub(crate) started: Instant,
    pub(crate) timeout: Duration,
    pub(crate) token: TaskTrackerToken,
}

/// The outcome of [`Accumulator::join`].
#[derive(Debug)]
pub(crate) enum Joined {
    /// Held: the outcome comes through this.
    Held(Receipt),
    /// Not held: send it the usual way.
    Direct(Message, Alone),
    /// Failed before it was held (no room in time, shutdown).
    Failed(SendError),
}

/// The open batches of one producer.
#[derive(Debug)]
pub(crate) struct Accumulator {
    cfg: AutoBatchConfig,
    /// The largest request body (`max_message_size`).
    max_request: usize,
    /// Room for held and in-flight batched bytes.
    room: Arc<Semaphore>,
    lanes: Mutex<HashMap<Key, Lane>>,
    ids: AtomicU64,
}

impl Accumulator {
    pub(crate) fn new(cfg: AutoBatchConfig, max_request: usize) -> Self {
        let total = cfg.max_total_bytes.min(Semaphore::MAX_PERMITS);
        Self {
            cfg,
            max_request,
            room: Arc::new(Semaphore::new(total)),
            lanes: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(0),
        }
    }

    pub(crate) fn config(&self) -> &AutoBatchConfig {
        &self.cfg
    }

    /// Bytes held or in flight now.
    pub(crate) fn bytes_held(&self) -> usize {
        self.cfg
            .max_total_bytes
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.room.available_permits())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Lane>> {
        // Nothing panics while the map is held; a poisoned map is still consistent.
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the entrant's message in the open batch of its key, once there is room for it
    /// within the send's deadline.
    pub(crate) async fn join<T: Transport>(
        self: &Arc<Self>,
        core: &Arc<Core<T>>,
        entrant: Entrant,
    ) -> Joined {
        let Entrant {
            msg,
            record,
            queue,
            kind,
            started,
            timeout,
            token,
        } = entrant;
        let deadline = started + timeout;
        let weight = u32::try_from(record).unwrap_or(u32::MAX);
        let room = match Arc::clone(&self.room).try_acquire_many_owned(weight) {
            Ok(room) => room,
            Err(_) => {
                tracing::debug!(
                    held = self.bytes_held(),
                    "auto-batch: no room, waiting within the deadline"
                );
                let got = tokio::select! {
                    biased;
                    () = core.abort.cancelled() => None,
                    r = tokio::time::timeout_at(deadline, Arc::clone(&self.room).acquire_many_owned(weight)) => Some(r),
                };
                match got {
                    Some(Ok(Ok(room))) => room,
                    None | Some(Ok(Err(_))) => {
                        return Joined::Failed(SendError::new(
                            ErrorKind::NotRunning,
                            Unsent::one(msg),
                        ))
                    }
                    Some(Err(_)) => {
                        let kind = ErrorKind::Timeout {
                            after: timeout,
                            attempts: 0,
                            maybe_stored: false,
                            last: None,
                        };
                        return Joined::Failed(SendError::new(kind, Unsent::one(msg)));
                    }
                }
            }
        };
        if !rules::deadline_allows(
            deadline.saturating_duration_since(Instant::now()),
            &self.cfg,
        ) {
            return Joined::Direct(msg, Alone::ShortDeadline);
        }
        let key = Key {
            topic: msg.topic().to_owned(),
            queue,
            wait: msg.wait_store_msg_ok(),
            kind,
        };
        let (reply, receipt) = oneshot::channel();
        let member = Member {
            msg,
            ticket: Ticket {
                reply,
                withdraw: kind == Kind::Sync,
                deadline,
                timeout,
                room,
                token,
            },
        };
        self.add(core, key, member, record);
        Joined::Held(receipt)
    }

    /// Adds a member to the open batch of `key`, opening one (and its task) if needed, and
    /// closes the batch when it is full, or at once when no batch of its key is in flight and
    /// [`AutoBatchConfig::send_when_idle`] is on.
    fn add<T: Transport>(
        self: &Arc<Self>,
        core: &Arc<Core<T>>,
        key: Key,
        member: Member,
        record: usize,
    ) {
        let mut lanes = self.lock();
        let lane = lanes.entry(key.clone()).or_default();
        if lane
            .open
            .as_ref()
            .is_some_and(|o| o.bytes.saturating_add(record) > self.max_request)
        {
            lane.close(Trigger::Full);
        }
        if lane.open.is_none() {
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            let (wake, woken) = oneshot::channel();
            let until = Instant::now() + self.cfg.hold_time;
            // Spawned while the map is locked: the task takes its batch out only under this
            // lock, so it cannot look before the batch is in.
            drop(tokio::spawn(flush::run(
                Arc::clone(self),
                Arc::clone(core),
                key,
                id,
                woken,
                until,
            )));
            lane.open = Some(Open {
                id,
                members: Vec::new(),
                bytes: 0,
                wake,
            });
        }
        let Some(batch) = lane.open.as_mut() else {
            return;
        };
        batch.members.push(member);
        batch.bytes += record;
        if batch.bytes >= self.cfg.max_batch_bytes {
            lane.close(Trigger::Size);
        } else if self.cfg.send_when_idle && lane.in_flight == 0 {
            lane.close(Trigger::Idle);
        }
    }

    /// Takes the open batch `id` of `key` out, if it is still open (its hold time is over).
    pub(crate) fn take(&self, key: &Key, id: u64, trigger: Trigger) -> Option<Release> {
        let mut lanes = self.lock();
        let lane = lanes.get_mut(key)?;
        if lane.open.as_ref().is_none_or(|o| o.id != id) {
            return None;
        }
        let open = lane.open.take()?;
        lane.in_flight += 1;
        Some(Release {
            members: open.members,
            trigger,
            bytes: open.bytes,
        })
    }

    /// A batch of `key` was answered (or its task ended without sending): with
    /// [`AutoBatchConfig::send_when_idle`], the open batch goes when none is left in flight.
    pub(crate) fn sent(&self, key: &Key) {
        let mut lanes = self.lock();
        let Some(lane) = lanes.get_mut(key) else {
            return;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        if self.cfg.send_when_idle && lane.in_flight == 0 {
            lane.close(Trigger::Idle);
        }
        if lane.is_unused() {
            lanes.remove(key);
        }
    }

    /// Closes every open batch now (shutdown): each goes to its task at once.
    pub(crate) fn flush_all(&self) {
        let mut lanes = self.lock();
        let mut closed = 0usize;
        for lane in lanes.values_mut() {
            if lane.open.is_some() {
                closed += 1;
                lane.close(Trigger::Shutdown);
            }
        }
        if closed > 0 {
            tracing::debug!(batches = closed, "auto-batch: flushing held batches");
        }
    }
}
