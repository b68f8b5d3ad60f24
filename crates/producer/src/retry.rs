//! The send loop (Java's `sendDefaultImpl`, with its known flaws fixed), as a small state
//! machine shared by synchronous and asynchronous sends:
//!
//! - One deadline per send covers the route lookup and every attempt.
//! - Attempts = 1 + retries for sync **and** async sends (oneway: one attempt).
//! - While another broker can still be tried, an attempt is capped (by default at the time left
//!   divided by the brokers not yet tried), so one hung broker cannot eat the whole budget; with a
//!   single broker, or on the last attempt, an attempt gets all the time left (as in Java).
//! - Retry only when safe (see [`policy`](crate::policy)): transport errors and the configured
//!   broker codes; a short pause after `SYSTEM_BUSY`; a retry avoids the broker that just failed.
//! - Sends pinned to a queue (selector, `send_to_queue`) are never moved to another queue; they
//!   are retried on the same queue only when the message was certainly not stored.
//! - The fault table is updated after every attempt.
//!
//! The first attempt of an asynchronous send has two phases: [`SendState::launch`] resolves the
//! broker and hands the request to the transport in the caller's task (so sends from one task
//! are written in order and pipelined), [`SendState::finish`] awaits the answer on the send's
//! task. Every other attempt runs in one call (`invoke_sync`).

use std::borrow::Cow;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmq_common::{MessageQueue, ResponseCode};
use rmq_nameserver_client::{NameServerError, TopicPublishInfo};
use rmq_remoting::{RemotingCommand, RemotingError, ResponseFuture};
use tracing::Span;

use crate::error::{ProducerError, Unsent};
use crate::kernel::{build_request, process_response, Outgoing};
use crate::policy::{attempt_budget, fault_verdict, is_retryable, untried_brokers};
use crate::producer::Inner;
use crate::select::select_queue;
use crate::send_result::SendResult;

/// Where a send may go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Any queue of the topic (round-robin with fault avoidance).
    Any,
    /// This queue only.
    Queue(MessageQueue),
}

/// How the broker is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Wait for the broker's answer (sync and async sends).
    Reply,
    /// Oneway: resolves once written, one attempt.
    Oneway,
}

/// One send, ready to run.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) out: Outgoing,
    pub(crate) target: Target,
    pub(crate) mode: Mode,
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// When the send started (its deadline is `started + timeout`).
    pub(crate) started: Instant,
    pub(crate) timeout: Duration,
}

/// The outcome of a send: a result (`None` for oneway) or an error without the message (the
/// caller hands it the message with [`ProducerError::with_unsent`]).
pub(crate) type Outcome = Result<Option<SendResult>, ProducerError>;

/// The queue of an attempt: one of the route's queues, by position (no copy per send), or a
/// queue of its own (pinned sends, static topics).
#[derive(Debug, Clone)]
pub(crate) enum Queue {
    Route(usize),
    Own(MessageQueue),
}

/// What comes next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Make an attempt to this queue within this budget.
    Attempt(Queue, Duration),
    /// The send is over.
    Done(Outcome),
}

/// What follows an attempt.
#[derive(Debug)]
pub(crate) enum Settled {
    /// The send is over.
    Done(Outcome),
    /// Another attempt follows, after this pause (zero but after `SYSTEM_BUSY`).
    Again(Duration),
}

/// An attempt handed to the transport, or one that already ended.
#[derive(Debug)]
pub(crate) enum Launched {
    /// Written (or queued for writing); the answer is awaited by [`SendState::finish`]. The
    /// address is kept only when it did not come from the send's route (which cannot change).
    Waiting {
        fut: ResponseFuture,
        addr: Option<String>,
    },
    /// Already over (oneway written, or failed before being written).
    Over(Outcome),
}

/// Looks the route up within the send's deadline.
pub(crate) async fn publish_info(
    inner: &Inner,
    topic: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Arc<TopicPublishInfo>, ProducerError> {
    // The common case: a cached route, without a timer or a future.
    if let Some(info) = inner.routes.cached_publish_info(topic) {
        return Ok(info);
    }
    Box::pin(load_publish_info(inner, topic, started, timeout)).await
}

/// [`publish_info`] when the route is not cached: loads it within the send's deadline.
async fn load_publish_info(
    inner: &Inner,
    topic: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Arc<TopicPublishInfo>, ProducerError> {
    let left = time_left(started, timeout);
    let lookup = inner.routes.publish_info(topic, true, left);
    // Shutdown's deadline also ends a lookup (the name servers may be unreachable).
    let looked_up = tokio::select! {
        biased;
        () = inner.abort.cancelled() => return Err(cancelled(false)),
        r = tokio::time::timeout(left, lookup) => r,
    };
    let info = match looked_up {
        Err(_) => return Err(timeout_error(timeout, &Tally::default(), None)),
        Ok(Err(
            source @ (NameServerError::TopicNotExist { .. }
            | NameServerError::NoWritableMaster { .. }),
        )) => {
            return Err(ProducerError::NoRoute {
                topic: topic.to_owned(),
                source: Some(source),
                unsent: Unsent::none(),
            })
        }
        Ok(Err(source)) => {
            return Err(ProducerError::NameServer {
                source,
                unsent: Unsent::none(),
            })
        }
        Ok(Ok(info)) => info,
    };
    if info.is_ok() {
        Ok(info)
    } else {
        Err(ProducerError::NoRoute {
            topic: topic.to_owned(),
            source: None,
            unsent: Unsent::none(),
        })
    }
}

/// Everything the loop learned, for the final error.
#[derive(Debug, Default)]
struct Tally {
    attempts: u32,
    brokers: Vec<String>,
    maybe_stored: bool,
    /// A stored-but-not-OK result kept while another broker is tried (boxed: rare, and it keeps
    /// the state of every send small).
    kept: Option<Box<SendResult>>,
}

/// The state of one send across its attempts. Owns what it needs, so an asynchronous send can
/// move it to its task after the first launch.
#[derive(Debug)]
pub(crate) struct SendState {
    inner: Arc<Inner>,
    job: Job,
    info: Arc<TopicPublishInfo>,
    counter: Arc<AtomicU32>,
    total: u32,
    tally: Tally,
    last_broker: Option<String>,
    last_err: Option<Box<ProducerError>>,
    span: Span,
}

impl SendState {
    /// A send of `job` over the queues of `info`, recording into `span`.
    pub(crate) fn new(
        inner: Arc<Inner>,
        job: Job,
        info: Arc<TopicPublishInfo>,
        span: Span,
    ) -> Self {
        let total = match job.mode {
            Mode::Oneway => 1,
            Mode::Reply => job.retries.saturating_add(1),
        };
        let counter = inner.counters.get(job.out.topic());
        Self {
            inner,
            job,
            info,
            counter,
            total,
            tally: Tally::default(),
            last_broker: None,
            last_err: None,
            span,
        }
    }

    /// The next attempt's queue and budget, or the end of the send.
    pub(crate) fn next(&mut self) -> Next {
        if self.inner.is_aborted() {
            return Next::Done(Err(cancelled(self.tally.maybe_stored)));
        }
        if self.tally.attempts >= self.total {
            return Next::Done(self.finish_exhausted());
        }
        let now = Instant::now();
        let left = time_left(self.job.started, self.job.timeout);
        if left.is_zero() {
            return Next::Done(self.finish_timeout());
        }
        let queue = match &self.job.target {
            Target::Queue(q) => Queue::Own(q.clone()),
            Target::Any => {
                let faults = self
                    .inner
                    .cfg
                    .latency_fault_tolerance
                    .then_some((&self.inner.faults, now));
                let queues = &self.info.queues;
                let picked = select_queue(
                    queues,
                    &self.info.static_endpoints,
                    &self.counter,
                    self.last_broker.as_deref(),
                    faults,
                )
                .and_then(|q| queues.iter().position(|c| std::ptr::eq(c, q)));
                match picked {
                    Some(i) => Queue::Route(i),
                    None => return Next::Done(self.finish_exhausted()),
                }
            }
        };
        let untried = match self.job.target {
            Target::Queue(_) => 1,
            Target::Any => untried_brokers(
                &self.info.queues,
                &self.info.static_endpoints,
                &self.tally.brokers,
            ),
        };
        // A static topic's logical queue goes to its real broker, under its logical id (Java's
        // `sendKernelImpl` with `getBrokerNameFromMessageQueue`): from here on the queue names
        // the real broker (address, request `bname`, fault table, errors, result).
        let queue = if self.info.is_static() {
            let mq = self.queue(&queue);
            let real = self.info.broker_name_of(mq).to_owned();
            Queue::Own(MessageQueue::new(mq.topic.clone(), real, mq.queue_id))
        } else {
            queue
        };
        let attempts_left = self.total - self.tally.attempts;
        let budget = attempt_budget(left, attempts_left, untried, self.inner.cfg.attempt_timeout);
        self.tally.attempts += 1;
        let mq = self.queue(&queue);
        self.span.record("attempts", self.tally.attempts);
        self.span.record("broker", mq.broker_name.as_str());
        self.span.record("queue", mq.queue_id);
        Next::Attempt(queue, budget)
    }

    /// The send's prepared message, the rest of the state dropped (route, producer handle, span).
    pub(crate) fn into_outgoing(self) -> Outgoing {
        self.job.out
    }

    /// The message queue `queue` stands for.
    pub(crate) fn queue<'a>(&'a self, queue: &'a Queue) -> &'a MessageQueue {
        match queue {
            Queue::Route(i) => &self.info.queues[*i],
            Queue::Own(mq) => mq,
        }
    }

    /// The broker address and the request of an attempt to `mq`.
    fn request(&self, mq: &MessageQueue) -> Result<(Cow<'_, str>, RemotingCommand), ProducerError> {
        let inner = &self.inner;
        let Some(addr) = inner.broker_addr(&self.info, &mq.broker_name) else {
            inner.routes.refresh_now(self.job.out.topic());
            return Err(ProducerError::BrokerNotFound {
                broker: mq.broker_name.clone(),
                unsent: Unsent::none(),
            });
        };
        inner.note_broker(&addr);
        let req = build_request(&self.job.out, &inner.wire, mq, now_ms());
        Ok((addr, req))
    }

    /// Phase 1: resolves the broker address and hands the request to the transport.
    pub(crate) async fn launch(&self, queue: &Queue, budget: Duration) -> Launched {
        let mq = self.queue(queue);
        let (addr, req) = match self.request(mq) {
            Ok(r) => r,
            Err(e) => return Launched::Over(Err(e)),
        };
        let inner = &self.inner;
        let launch = async {
            match self.job.mode {
                Mode::Oneway => Launched::Over(self.oneway(mq, &addr, req, budget).await),
                Mode::Reply => match inner.remoting.invoke_async(&addr, req, budget).await {
                    Ok(fut) => Launched::Waiting {
                        fut,
                        addr: match addr {
                            Cow::Borrowed(_) => None,
                            Cow::Owned(owned) => Some(owned),
                        },
                    },
                    Err(e) => Launched::Over(Err(remoting_error(mq, e))),
                },
            }
        };
        tokio::select! {
            biased;
            launched = launch => launched,
            () = inner.abort.cancelled() => Launched::Over(Err(cancelled(true))),
        }
    }

    /// A whole attempt in one call (the synchronous path: `invoke_sync`).
    async fn attempt(&self, queue: &Queue, budget: Duration) -> Outcome {
        let mq = self.queue(queue);
        let (addr, req) = self.request(mq)?;
        let inner = &self.inner;
        match self.job.mode {
            Mode::Oneway => self.oneway(mq, &addr, req, budget).await,
            Mode::Reply => {
                let resp = inner.remoting.invoke_sync(&addr, req, budget).await;
                let resp = resp.map_err(|e| remoting_error(mq, e))?;
                process_response(&resp, &self.job.out, mq, &addr).map(Some)
            }
        }
    }

    async fn oneway(
        &self,
        mq: &MessageQueue,
        addr: &str,
        req: RemotingCommand,
        budget: Duration,
    ) -> Outcome {
        let written = self.inner.remoting.invoke_oneway(addr, req, budget).await;
        written.map(|()| None).map_err(|e| remoting_error(mq, e))
    }

    /// Phase 2: awaits the answer of a launched attempt to `mq` (borrowing it, so that an
    /// asynchronous send's completion stays one small allocation).
    pub(crate) async fn finish(&self, queue: &Queue, launched: &mut Launched) -> Outcome {
        let mq = self.queue(queue);
        match launched {
            Launched::Over(outcome) => std::mem::replace(outcome, Err(cancelled(false))),
            Launched::Waiting { fut, addr } => {
                let answer = tokio::select! {
                    biased;
                    answer = fut => answer,
                    () = self.inner.abort.cancelled() => return Err(cancelled(true)),
                };
                match answer {
                    Ok(resp) => {
                        // The address the request went to: from the route unless kept.
                        let addr = addr
                            .as_deref()
                            .or_else(|| self.info.master_addr(&mq.broker_name))
                            .unwrap_or_default();
                        process_response(&resp, &self.job.out, mq, addr).map(Some)
                    }
                    Err(source) => Err(remoting_error(mq, source)),
                }
            }
        }
    }

    /// Records an attempt to `mq` that took `latency` and decides what follows: the end of the
    /// send, or another attempt (after a pause when the broker answered `SYSTEM_BUSY`).
    pub(crate) fn settle(&mut self, queue: &Queue, latency: Duration, outcome: Outcome) -> Settled {
        // The route stays alive through this clone while `self` changes.
        let info = Arc::clone(&self.info);
        let mq = match queue {
            Queue::Route(i) => &info.queues[*i],
            Queue::Own(mq) => mq,
        };
        if let (true, Some((isolation, reachable))) = (
            self.inner.cfg.latency_fault_tolerance,
            fault_verdict(&outcome),
        ) {
            self.inner.faults.record(
                &mq.broker_name,
                latency,
                isolation,
                reachable,
                Instant::now(),
            );
        }
        let more = self.tally.attempts < self.total;
        match outcome {
            Ok(Some(result))
                if !result.status.is_ok()
                    && self.inner.cfg.retry_another_broker_when_not_store_ok
                    && matches!(self.job.target, Target::Any)
                    && more =>
            {
                self.tally.brokers.push(mq.broker_name.clone());
                tracing::debug!(status = %result.status, broker = %mq.broker_name, "stored but not OK: retrying on another broker");
                self.tally.maybe_stored = true;
                self.tally.kept = Some(Box::new(result));
                self.last_broker = Some(mq.broker_name.clone());
                Settled::Again(Duration::ZERO)
            }
            Ok(result) => Settled::Done(Ok(result)),
            Err(err) => {
                self.tally.brokers.push(mq.broker_name.clone());
                self.tally.maybe_stored |= err.maybe_stored();
                if self.inner.is_aborted() {
                    // Shutdown gave up waiting and closed the connections under this attempt.
                    return Settled::Done(Err(cancelled(self.tally.maybe_stored)));
                }
                let pinned = matches!(self.job.target, Target::Queue(_));
                let retry = is_retryable(&self.inner.cfg, &err) && !(pinned && err.maybe_stored());
                tracing::debug!(error = %err, broker = %mq.broker_name, attempt = self.tally.attempts, retry, "send attempt failed");
                if !retry {
                    return Settled::Done(self.finish_error(err));
                }
                let pause = if more && err.response_code() == Some(ResponseCode::SYSTEM_BUSY) {
                    let left = time_left(self.job.started, self.job.timeout);
                    self.inner.cfg.busy_backoff.min(left / 4)
                } else {
                    Duration::ZERO
                };
                self.last_broker = Some(mq.broker_name.clone());
                self.last_err = Some(Box::new(err));
                Settled::Again(pause)
            }
        }
    }

    /// Runs the remaining attempts to the end, after `pause` (see [`Settled::Again`]).
    pub(crate) async fn resume(self, pause: Duration) -> Outcome {
        if !pause.is_zero() {
            tokio::select! {
                biased;
                () = self.inner.abort.cancelled() => return Err(cancelled(self.tally.maybe_stored)),
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.run().await
    }

    /// Runs the remaining attempts to the end.
    pub(crate) async fn run(mut self) -> Outcome {
        loop {
            let (queue, budget) = match self.next() {
                Next::Done(outcome) => return outcome,
                Next::Attempt(queue, budget) => (queue, budget),
            };
            let t0 = Instant::now();
            // Shutdown's deadline ends an attempt wherever it is (connecting, writing, waiting);
            // the request may have been written by then.
            let outcome = tokio::select! {
                biased;
                outcome = self.attempt(&queue, budget) => outcome,
                () = self.inner.abort.cancelled() => Err(cancelled(true)),
            };
            match self.settle(&queue, t0.elapsed(), outcome) {
                Settled::Done(outcome) => return outcome,
                Settled::Again(pause) if !pause.is_zero() => {
                    tokio::select! {
                        biased;
                        () = self.inner.abort.cancelled() => return Err(cancelled(self.tally.maybe_stored)),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                Settled::Again(_) => {}
            }
        }
    }

    /// The end after the last attempt (or with no queue at all).
    fn finish_exhausted(&mut self) -> Outcome {
        match self.last_err.take() {
            Some(err) => self.finish_error(*err),
            None => match self.tally.kept.take() {
                Some(kept) => Ok(Some(*kept)),
                None => Err(ProducerError::NoRoute {
                    topic: self.job.out.topic().to_owned(),
                    source: None,
                    unsent: Unsent::none(),
                }),
            },
        }
    }

    /// The error after the loop: the error itself when it was the only attempt, else
    /// [`ProducerError::RetriesExhausted`] carrying what every attempt risked. A non-OK result
    /// kept by `retry_another_broker_when_not_store_ok` wins over a later failure (Java).
    fn finish_error(&mut self, err: ProducerError) -> Outcome {
        if let Some(kept) = self.tally.kept.take() {
            return Ok(Some(*kept));
        }
        if let ProducerError::Cancelled { maybe_stored, .. } = err {
            return Err(cancelled(maybe_stored || self.tally.maybe_stored));
        }
        if self.tally.attempts <= 1 {
            return Err(err);
        }
        Err(ProducerError::RetriesExhausted {
            attempts: self.tally.attempts,
            brokers: std::mem::take(&mut self.tally.brokers),
            last: Box::new(err),
            maybe_stored: self.tally.maybe_stored,
            unsent: Unsent::none(),
        })
    }

    fn finish_timeout(&mut self) -> Outcome {
        if let Some(kept) = self.tally.kept.take() {
            return Ok(Some(*kept));
        }
        Err(timeout_error(
            self.job.timeout,
            &self.tally,
            self.last_err.take(),
        ))
    }
}

fn timeout_error(
    after: Duration,
    tally: &Tally,
    last: Option<Box<ProducerError>>,
) -> ProducerError {
    ProducerError::Timeout {
        after,
        attempts: tally.attempts,
        maybe_stored: tally.maybe_stored,
        last,
        unsent: Unsent::none(),
    }
}

fn remoting_error(mq: &MessageQueue, source: RemotingError) -> ProducerError {
    ProducerError::Remoting {
        broker: mq.broker_name.clone(),
        source,
        unsent: Unsent::none(),
    }
}

fn cancelled(maybe_stored: bool) -> ProducerError {
    ProducerError::Cancelled {
        maybe_stored,
        unsent: Unsent::none(),
    }
}

/// What is left of `timeout` since `started`, without adding to an `Instant` (which panics on
/// overflow for huge timeouts).
pub(crate) fn time_left(started: Instant, timeout: Duration) -> Duration {
    timeout.saturating_sub(started.elapsed())
}

/// Milliseconds since the Unix epoch (`bornTimestamp`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
