//! The send loop (Java's `sendDefaultImpl`, with its known flaws fixed).
//!
//! - One deadline per send covers the route lookup and every attempt.
//! - Attempts = 1 + retries for sync **and** async sends (oneway: one attempt).
//! - While another broker can still be tried, an attempt is capped (by default at the time left
//!   divided by the brokers not yet tried), so one hung broker cannot eat the whole budget; with a
//!   single broker, or on the last attempt, an attempt gets all the time left (as in Java).
//! - Retry only when safe: transport errors (connect, timeout, connection lost) and the
//!   configured broker codes; a short pause after `SYSTEM_BUSY`; a retry avoids the broker that
//!   just failed.
//! - Sends pinned to a queue (selector, `send_to_queue`) are never moved to another queue; they
//!   are retried on the same queue only when the message was certainly not stored.
//! - The fault table is updated after every attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmq_common::{MessageQueue, ResponseCode};
use rmq_nameserver_client::{NameServerError, TopicPublishInfo};
use rmq_remoting::RemotingError;
use tracing::Span;

use crate::error::{ProducerError, Unsent};
use crate::kernel::{build_request, process_response, Outgoing};
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

impl Job {
    fn deadline(&self) -> Instant {
        self.started + self.timeout
    }
}

/// Everything the loop learned, for the final error.
#[derive(Debug, Default)]
struct Tally {
    attempts: u32,
    brokers: Vec<String>,
    maybe_stored: bool,
    kept: Option<SendResult>,
}

/// Looks the route up within the deadline.
pub(crate) async fn publish_info(
    inner: &Inner,
    topic: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Arc<TopicPublishInfo>, ProducerError> {
    let left = (started + timeout).saturating_duration_since(Instant::now());
    let lookup = inner.routes.publish_info(topic, true, left);
    let info = match tokio::time::timeout(left, lookup).await {
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

/// Runs the attempts of `job` against the queues of `info`. `Ok(None)` for a oneway send.
///
/// The returned error carries no message; the caller hands it the message with
/// [`ProducerError::with_unsent`], which keeps it only when certainly not stored.
pub(crate) async fn run(
    inner: &Inner,
    job: &Job,
    info: &TopicPublishInfo,
) -> Result<Option<SendResult>, ProducerError> {
    let cfg = &inner.cfg;
    let total = match job.mode {
        Mode::Oneway => 1,
        Mode::Reply => job.retries.saturating_add(1),
    };
    let counter = inner.counters.get(&job.out.topic);
    let mut tally = Tally::default();
    let mut last_broker: Option<String> = None;
    let mut last_err: Option<ProducerError> = None;
    let span = Span::current();
    while tally.attempts < total {
        let now = Instant::now();
        let left = job.deadline().saturating_duration_since(now);
        if left.is_zero() {
            return finish_timeout(job, tally, last_err);
        }
        let mq = match &job.target {
            Target::Queue(q) => q.clone(),
            Target::Any => {
                let faults = cfg.latency_fault_tolerance.then_some((&inner.faults, now));
                match select_queue(&info.queues, &counter, last_broker.as_deref(), faults) {
                    Some(q) => q.clone(),
                    None => break,
                }
            }
        };
        tally.attempts += 1;
        tally.brokers.push(mq.broker_name.clone());
        span.record("attempts", tally.attempts);
        span.record("broker", mq.broker_name.as_str());
        span.record("queue", mq.queue_id);
        let attempts_left = total - tally.attempts + 1;
        let untried = match job.target {
            Target::Queue(_) => 1,
            Target::Any => untried_brokers(&info.queues, &tally.brokers[..tally.brokers.len() - 1]),
        };
        let budget = attempt_budget(left, attempts_left, untried, cfg.attempt_timeout);
        let t0 = Instant::now();
        let outcome = attempt(inner, job, info, &mq, budget).await;
        let latency = t0.elapsed();
        record_fault(inner, &mq.broker_name, latency, &outcome);
        match outcome {
            Ok(Some(result))
                if !result.status.is_ok()
                    && cfg.retry_another_broker_when_not_store_ok
                    && matches!(job.target, Target::Any)
                    && tally.attempts < total =>
            {
                tracing::debug!(status = %result.status, broker = %mq.broker_name, "stored but not OK: retrying on another broker");
                tally.maybe_stored = true;
                tally.kept = Some(result);
                last_broker = Some(mq.broker_name);
            }
            Ok(result) => return Ok(result),
            Err(err) => {
                tally.maybe_stored |= err.maybe_stored();
                let pinned = matches!(job.target, Target::Queue(_));
                let retry = is_retryable(inner, &err) && !(pinned && err.maybe_stored());
                tracing::debug!(error = %err, broker = %mq.broker_name, attempt = tally.attempts, retry, "send attempt failed");
                if !retry {
                    return finish_error(tally, err);
                }
                if err.response_code() == Some(ResponseCode::SYSTEM_BUSY) && tally.attempts < total
                {
                    let left = job.deadline().saturating_duration_since(Instant::now());
                    let pause = cfg.busy_backoff.min(left / 4);
                    tokio::select! {
                        biased;
                        () = inner.abort.cancelled() => return Err(cancelled(&tally)),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                last_broker = Some(mq.broker_name);
                last_err = Some(err);
            }
        }
    }
    match last_err {
        Some(err) => finish_error(tally, err),
        None => match tally.kept.take() {
            Some(kept) => Ok(Some(kept)),
            None => Err(ProducerError::NoRoute {
                topic: job.out.topic.clone(),
                source: None,
                unsent: Unsent::none(),
            }),
        },
    }
}

/// The time one attempt may take. Splitting the time only helps when another broker can be
/// tried, so the divisor is the number of brokers not yet tried (this one included), at most the
/// attempts left; a divisor of 1 (single broker, last attempt) gives all the time left. A
/// configured cap replaces the split while another attempt is possible.
pub(crate) fn attempt_budget(
    left: Duration,
    attempts_left: u32,
    untried_brokers: u32,
    cap: Option<Duration>,
) -> Duration {
    if attempts_left <= 1 {
        return left;
    }
    match cap {
        Some(cap) => cap.min(left),
        None => left / attempts_left.min(untried_brokers).max(1),
    }
}

/// Distinct brokers of `queues` (grouped by broker, as routes are) not in `tried`.
fn untried_brokers(queues: &[MessageQueue], tried: &[String]) -> u32 {
    let mut count = 0u32;
    let mut last: Option<&str> = None;
    for q in queues {
        let name = q.broker_name.as_str();
        if last != Some(name) {
            last = Some(name);
            if !tried.iter().any(|t| t == name) {
                count = count.saturating_add(1);
            }
        }
    }
    count
}

/// One attempt: resolve the broker, send, read the answer.
async fn attempt(
    inner: &Inner,
    job: &Job,
    info: &TopicPublishInfo,
    mq: &MessageQueue,
    budget: Duration,
) -> Result<Option<SendResult>, ProducerError> {
    let Some(addr) = inner.broker_addr(info, &mq.broker_name) else {
        inner.routes.refresh_now(&job.out.topic);
        return Err(ProducerError::BrokerNotFound {
            broker: mq.broker_name.clone(),
            unsent: Unsent::none(),
        });
    };
    inner.note_broker(&addr);
    let req = build_request(&job.out, &inner.cfg, mq, now_ms());
    let remoting_err = |source: RemotingError| ProducerError::Remoting {
        broker: mq.broker_name.clone(),
        source,
        unsent: Unsent::none(),
    };
    match job.mode {
        Mode::Oneway => {
            let sent = tokio::select! {
                biased;
                () = inner.abort.cancelled() => return Err(ProducerError::Cancelled { maybe_stored: true, unsent: Unsent::none() }),
                r = inner.remoting.invoke_oneway(&addr, req, budget) => r,
            };
            sent.map(|()| None).map_err(remoting_err)
        }
        Mode::Reply => {
            let resp = tokio::select! {
                biased;
                () = inner.abort.cancelled() => return Err(ProducerError::Cancelled { maybe_stored: true, unsent: Unsent::none() }),
                r = inner.remoting.invoke_sync(&addr, req, budget) => r,
            };
            let resp = resp.map_err(remoting_err)?;
            process_response(&resp, &job.out, mq, &addr).map(Some)
        }
    }
}

/// Java's fault bookkeeping (5.1.4+, no detector): success `(latency, false, true)`, broker
/// refusal `(latency, true, false)`, transport failure `(latency, true, true)`. Local conditions
/// (overload, shutdown, cancellation, unknown broker) isolate nothing.
fn record_fault(
    inner: &Inner,
    broker: &str,
    latency: Duration,
    outcome: &Result<Option<SendResult>, ProducerError>,
) {
    if !inner.cfg.latency_fault_tolerance {
        return;
    }
    let (isolation, reachable) = match outcome {
        Ok(_) | Err(ProducerError::InvalidResponse { .. }) => (false, true),
        Err(ProducerError::Broker { .. }) => (true, false),
        Err(ProducerError::Remoting { source, .. }) if is_transport_failure(source) => (true, true),
        Err(_) => return,
    };
    inner
        .faults
        .record(broker, latency, isolation, reachable, Instant::now());
}

/// Connect, timeout, connection lost, undecodable frame: the broker or the path to it failed.
fn is_transport_failure(err: &RemotingError) -> bool {
    err.is_timeout()
        || err.is_connection()
        || matches!(
            err,
            RemotingError::Connect { .. }
                | RemotingError::ConnectTimeout { .. }
                | RemotingError::Decode(_)
        )
}

/// Whether another attempt may follow `err`.
fn is_retryable(inner: &Inner, err: &ProducerError) -> bool {
    match err {
        ProducerError::Broker { code, .. } => inner.cfg.is_retryable_code(*code),
        ProducerError::Remoting { source, .. } => {
            is_transport_failure(source) || matches!(source, RemotingError::Overloaded { .. })
        }
        ProducerError::BrokerNotFound { .. } => true,
        _ => false,
    }
}

/// The error after the loop: the error itself when it was the only attempt, else
/// [`ProducerError::RetriesExhausted`] carrying what every attempt risked. A non-OK result kept
/// by `retry_another_broker_when_not_store_ok` wins over a later failure (Java).
fn finish_error(mut tally: Tally, err: ProducerError) -> Result<Option<SendResult>, ProducerError> {
    if let Some(kept) = tally.kept.take() {
        return Ok(Some(kept));
    }
    if let ProducerError::Cancelled { maybe_stored, .. } = err {
        return Err(ProducerError::Cancelled {
            maybe_stored: maybe_stored || tally.maybe_stored,
            unsent: Unsent::none(),
        });
    }
    if tally.attempts <= 1 {
        return Err(err);
    }
    Err(ProducerError::RetriesExhausted {
        attempts: tally.attempts,
        brokers: tally.brokers,
        last: Box::new(err),
        maybe_stored: tally.maybe_stored,
        unsent: Unsent::none(),
    })
}

fn finish_timeout(
    job: &Job,
    mut tally: Tally,
    last: Option<ProducerError>,
) -> Result<Option<SendResult>, ProducerError> {
    if let Some(kept) = tally.kept.take() {
        return Ok(Some(kept));
    }
    Err(timeout_error(job.timeout, &tally, last))
}

fn timeout_error(after: Duration, tally: &Tally, last: Option<ProducerError>) -> ProducerError {
    ProducerError::Timeout {
        after,
        attempts: tally.attempts,
        maybe_stored: tally.maybe_stored,
        last: last.map(Box::new),
        unsent: Unsent::none(),
    }
}

fn cancelled(tally: &Tally) -> ProducerError {
    ProducerError::Cancelled {
        maybe_stored: tally.maybe_stored,
        unsent: Unsent::none(),
    }
}

/// Milliseconds since the Unix epoch (`bornTimestamp`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_splits_over_untried_brokers_until_the_last_attempt() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // (left, attempts left, untried brokers, cap) -> budget
        let cases = [
            (s(3), 3, 2, None, ms(1500)),
            (s(3), 3, 3, None, s(1)),
            (s(3), 3, 5, None, s(1)),
            (s(3), 3, 1, None, s(3)),
            (s(3), 3, 0, None, s(3)),
            (ms(1500), 2, 1, None, ms(1500)),
            (s(2), 1, 2, None, s(2)),
            (s(3), 3, 2, Some(ms(500)), ms(500)),
            (ms(200), 3, 2, Some(s(1)), ms(200)),
            (s(3), 1, 2, Some(s(1)), s(3)),
        ];
        for (left, attempts, untried, cap, want) in cases {
            assert_eq!(
                attempt_budget(left, attempts, untried, cap),
                want,
                "{left:?} {attempts} {untried} {cap:?}"
            );
        }
    }

    #[test]
    fn untried_counts_distinct_brokers() {
        let qs: Vec<MessageQueue> = [("a", 0), ("a", 1), ("b", 0), ("c", 0), ("c", 1)]
            .iter()
            .map(|(b, i)| MessageQueue::new("T", *b, *i))
            .collect();
        assert_eq!(untried_brokers(&qs, &[]), 3);
        assert_eq!(untried_brokers(&qs, &["a".to_owned()]), 2);
        assert_eq!(
            untried_brokers(&qs, &["a".to_owned(), "c".to_owned(), "b".to_owned()]),
            0
        );
        assert_eq!(untried_brokers(&[], &[]), 0);
    }
}
