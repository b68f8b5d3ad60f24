//! What follows an attempt of the send loop: [`SendState::settle`] records it (fault table,
//! trace, the attempt's span, metrics) and decides between the end of the send and another
//! attempt; the `finish_*` helpers build the send's final outcome (the kept non-OK result, the
//! error carrying every attempt's risk, the timeout).

use std::time::Duration;

use rmq_common::ResponseCode;
use tokio::time::Instant;
use tracing::Span;

use super::{cancelled, time_left, Outcome, Queue, SendState, Target};
use crate::error::ErrorKind;
use crate::policy::{fault_verdict, is_retryable, untried_brokers};
use crate::send_result::SendResult;
use crate::transport::Transport;

/// Everything the loop learned, for the final error.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) attempts: u32,
    pub(super) maybe_stored: bool,
    /// What the attempts that did not end the send left (made at the first such attempt, and
    /// boxed: a send that succeeds at once never makes it, and every send's state, moved a few
    /// times per send, stays small).
    retried: Option<Box<Retried>>,
}

/// What the attempts that failed (or stored but not OK) leave for the next ones and for the
/// send's final outcome.
#[derive(Debug, Default)]
struct Retried {
    /// The brokers of those attempts, in order.
    brokers: Vec<String>,
    /// A stored-but-not-OK result kept while another broker is tried.
    kept: Option<SendResult>,
    /// The broker of the last such attempt (the next queue avoids it).
    last_broker: Option<String>,
    /// The last attempt's error.
    last_err: Option<Box<ErrorKind>>,
}

impl Tally {
    /// The brokers of the attempts that did not end the send, in order.
    pub(super) fn brokers(&self) -> &[String] {
        self.retried
            .as_deref()
            .map_or(&[], |r| r.brokers.as_slice())
    }

    /// The broker of the last attempt that did not end the send.
    pub(super) fn last_broker(&self) -> Option<&str> {
        self.retried
            .as_deref()
            .and_then(|r| r.last_broker.as_deref())
    }

    fn retried(&mut self) -> &mut Retried {
        self.retried.get_or_insert_with(Box::default)
    }

    fn take_kept(&mut self) -> Option<SendResult> {
        self.retried.as_deref_mut().and_then(|r| r.kept.take())
    }

    fn take_last_err(&mut self) -> Option<Box<ErrorKind>> {
        self.retried.as_deref_mut().and_then(|r| r.last_err.take())
    }

    fn take_brokers(&mut self) -> Vec<String> {
        self.retried
            .as_deref_mut()
            .map(|r| std::mem::take(&mut r.brokers))
            .unwrap_or_default()
    }
}

/// What follows an attempt.
#[derive(Debug)]
pub(crate) enum Settled {
    /// The send is over.
    Done(Outcome),
    /// Another attempt follows, after this pause (zero but after `SYSTEM_BUSY`).
    Again(Duration),
}

impl<T: Transport> SendState<T> {
    /// A single message's result whose id the transport left empty (the remoting transport's
    /// answers) gets the message's id from the prepared request: moved when the send ends with
    /// it stored OK (the request is not sent again), copied when it may be retried. A batch's
    /// result is left as the transport read it (the broker's id of an inner batch, even empty,
    /// as Java's `processSendResponse`).
    fn fill_msg_id(&mut self, result: &mut SendResult) {
        let out = &mut self.job.out;
        if !result.msg_id.is_empty() || out.is_batch() {
            return;
        }
        result.msg_id = if result.status.is_ok() {
            std::mem::take(&mut out.msg_id)
        } else {
            out.msg_id.clone()
        };
    }

    /// Records an attempt to `queue` that started at `t0` and decides what follows: the end of
    /// the send, or another attempt (after a pause when the broker answered `SYSTEM_BUSY`).
    pub(crate) fn settle(&mut self, queue: &Queue, t0: Instant, mut outcome: Outcome) -> Settled {
        if let Ok(Some(result)) = &mut outcome {
            self.fill_msg_id(result);
        }
        // One clock read serves the latency and the fault table.
        let now = Instant::now();
        let latency = now.saturating_duration_since(t0);
        // Borrowed from their fields (no reference count touched per send), while the
        // attempt's span and the tally change.
        let info = self.info.info();
        let mq = match queue {
            Queue::Route(i) => &info.queues[*i],
            Queue::Own(mq) => mq,
        };
        let core = &*self.core;
        let cfg = &core.cfg;
        if let (true, Some((isolation, reachable))) =
            (cfg.latency_fault_tolerance, fault_verdict(&outcome))
        {
            core.faults
                .record(&mq.broker_name, latency, isolation, reachable, now);
            if core.metrics.is_on() && isolates(isolation, latency) {
                core.metrics.isolated(&mq.broker_name);
            }
        }
        if let (Some(trace), Ok(Some(result))) = (&core.trace, &outcome) {
            // The address the transport resolved, the route's or else the instance's.
            let host = core.transport.store_addr(info, &mq.broker_name);
            trace.sent(&self.job.out, host.as_deref(), t0, result);
        }
        // The attempt's span ends here, with its outcome.
        let attempt_span = std::mem::replace(&mut self.attempt_span, Span::none());
        if !attempt_span.is_disabled() {
            attempt_span.record("outcome", crate::send::outcome_label(&outcome));
            attempt_span.record(
                "latency_ms",
                u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            );
        }
        drop(attempt_span);
        let more = self.tally.attempts < self.total;
        match outcome {
            Ok(Some(result))
                if !result.status.is_ok()
                    && cfg.retry_another_broker_when_not_store_ok
                    && matches!(self.job.target, Target::Any)
                    && more =>
            {
                tracing::debug!(status = %result.status, broker = %mq.broker_name, "stored but not OK: retrying on another broker");
                self.tally.maybe_stored = true;
                let retried = self.tally.retried();
                retried.brokers.push(mq.broker_name.clone());
                retried.kept = Some(result);
                retried.last_broker = Some(mq.broker_name.clone());
                if core.metrics.is_on() {
                    core.metrics.retry(&rmq_common::namespace::unwrap(
                        crate::namespace::of(cfg),
                        &mq.topic,
                    ));
                }
                Settled::Again(Duration::ZERO)
            }
            Ok(result) => Settled::Done(Ok(result)),
            Err(err) => {
                self.tally.retried().brokers.push(mq.broker_name.clone());
                self.tally.maybe_stored |= err.maybe_stored();
                if core.is_aborted() {
                    // Shutdown gave up waiting and closed the connections under this attempt.
                    return Settled::Done(Err(cancelled(self.tally.maybe_stored)));
                }
                let pinned = matches!(self.job.target, Target::Queue(_));
                let retry = is_retryable(cfg, &err) && !(pinned && err.maybe_stored());
                tracing::debug!(error = %err, broker = %mq.broker_name, attempt = self.tally.attempts, retry, "send attempt failed");
                if !retry {
                    return Settled::Done(self.finish_error(err));
                }
                let left = time_left(self.job.started, self.job.timeout);
                let pause = if !more {
                    Duration::ZERO
                } else if err.response_code() == Some(ResponseCode::SYSTEM_BUSY) {
                    let live = core.transport.live_limits().busy_backoff;
                    live.unwrap_or(cfg.busy_backoff).min(left / 4)
                } else if let Some(retry_in) = backoff_window(&err) {
                    // The transport will not connect there before `retry_in`: when no other
                    // broker can take the retry, wait the window out (if the deadline allows)
                    // instead of spending every attempt on fast refusals.
                    let elsewhere = match self.job.target {
                        Target::Queue(_) => 0,
                        Target::Any => untried_brokers(
                            &self.info.info().queues,
                            &self.info.info().static_endpoints,
                            self.tally.brokers(),
                        ),
                    };
                    if elsewhere == 0 && retry_in < left {
                        retry_in
                    } else {
                        Duration::ZERO
                    }
                } else {
                    Duration::ZERO
                };
                let retried = self.tally.retried();
                retried.last_broker = Some(mq.broker_name.clone());
                retried.last_err = Some(Box::new(err));
                if more && core.metrics.is_on() {
                    core.metrics.retry(&rmq_common::namespace::unwrap(
                        crate::namespace::of(cfg),
                        &mq.topic,
                    ));
                }
                Settled::Again(pause)
            }
        }
    }

    /// The end after the last attempt (or with no queue at all).
    pub(super) fn finish_exhausted(&mut self) -> Outcome {
        match self.tally.take_last_err() {
            Some(err) => self.finish_error(*err),
            None => match self.tally.take_kept() {
                Some(kept) => Ok(Some(kept)),
                None => Err(ErrorKind::NoRoute {
                    topic: self.job.out.topic().to_owned(),
                    source: None,
                }),
            },
        }
    }

    /// The error after the loop: the error itself when it was the only attempt, else
    /// [`ErrorKind::RetriesExhausted`] carrying what every attempt risked. A non-OK result
    /// kept by `retry_another_broker_when_not_store_ok` wins over a later failure (Java).
    fn finish_error(&mut self, err: ErrorKind) -> Outcome {
        if let Some(kept) = self.tally.take_kept() {
            return Ok(Some(kept));
        }
        if let ErrorKind::Cancelled { maybe_stored } = err {
            return Err(cancelled(maybe_stored || self.tally.maybe_stored));
        }
        if self.tally.attempts <= 1 {
            return Err(err);
        }
        Err(ErrorKind::RetriesExhausted {
            attempts: self.tally.attempts,
            brokers: self.tally.take_brokers(),
            last: Box::new(err),
            maybe_stored: self.tally.maybe_stored,
        })
    }

    pub(super) fn finish_timeout(&mut self) -> Outcome {
        if let Some(kept) = self.tally.take_kept() {
            return Ok(Some(kept));
        }
        let last = self.tally.take_last_err();
        Err(timeout_error(self.job.timeout, &self.tally, last))
    }
}

pub(super) fn timeout_error(
    after: Duration,
    tally: &Tally,
    last: Option<Box<ErrorKind>>,
) -> ErrorKind {
    ErrorKind::Timeout {
        after,
        attempts: tally.attempts,
        maybe_stored: tally.maybe_stored,
        last,
    }
}

/// Whether an attempt recorded so in the fault table isolates its broker (a non-zero window).
fn isolates(isolation: bool, latency: Duration) -> bool {
    let latency = if isolation {
        crate::fault::ISOLATION_LATENCY
    } else {
        latency
    };
    !crate::fault::not_available_duration(latency).is_zero()
}

/// How long the transport refuses to reconnect to the broker of `err`, when that is why the
/// attempt failed.
fn backoff_window(err: &ErrorKind) -> Option<Duration> {
    match err {
        ErrorKind::Transport {
            source: rmq_remoting::RemotingError::Backoff { retry_in, .. },
            ..
        } => Some(*retry_in),
        _ => None,
    }
}
