//! The rules of the retry loop, as pure functions: how long an attempt may take, which failures
//! are retried, and what a failure does to the fault table.

use std::collections::BTreeMap;
use std::time::Duration;

use rmq_common::{MessageQueue, ResponseCode};
use rmq_remoting::RemotingError;

use crate::config::ProducerConfig;
use crate::error::ErrorKind;
use crate::select::real_broker;
use crate::send_result::SendResult;

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

/// Distinct real brokers of `queues` (see [`real_broker`]) not in `tried`.
pub(crate) fn untried_brokers(
    queues: &[MessageQueue],
    endpoints: &BTreeMap<MessageQueue, String>,
    tried: &[String],
) -> u32 {
    // Without allocating (this runs on every attempt): a name counts at its first position.
    if endpoints.is_empty() {
        count_distinct(queues, tried, |q| q.broker_name.as_str())
    } else {
        count_distinct(queues, tried, |q| real_broker(endpoints, q))
    }
}

/// Distinct `name`s of `queues` not in `tried`. Queues come grouped by broker, so most are
/// settled by comparing with the one before.
fn count_distinct<'q>(
    queues: &'q [MessageQueue],
    tried: &[String],
    name: impl Fn(&'q MessageQueue) -> &'q str,
) -> u32 {
    let mut count = 0u32;
    for (i, q) in queues.iter().enumerate() {
        let n = name(q);
        let earlier = &queues[..i];
        if earlier.last().is_some_and(|p| name(p) == n)
            || earlier.iter().any(|p| name(p) == n)
            || tried.iter().any(|t| t == n)
        {
            continue;
        }
        count = count.saturating_add(1);
    }
    count
}

/// Connect, timeout, connection lost, undecodable frame: the broker or the path to it failed.
pub(crate) fn is_transport_failure(err: &RemotingError) -> bool {
    err.is_timeout()
        || err.is_connection()
        || matches!(
            err,
            RemotingError::Connect { .. }
                | RemotingError::ConnectTimeout { .. }
                | RemotingError::Decode(_)
        )
}

/// Whether another attempt may follow `err`: transport failures, local transport overload, an
/// unknown broker address, and the configured broker codes.
pub(crate) fn is_retryable(cfg: &ProducerConfig, err: &ErrorKind) -> bool {
    match err {
        ErrorKind::Broker { code, .. } => cfg.is_retryable_code(*code),
        ErrorKind::Transport { source, .. } => {
            is_transport_failure(source) || matches!(source, RemotingError::Overloaded { .. })
        }
        ErrorKind::BrokerNotFound { .. } => true,
        _ => false,
    }
}

/// Response codes that say the broker itself is unhealthy (overloaded, failing, going away),
/// whatever the topic or message: only these isolate a broker.
pub(crate) const BROKER_HEALTH_CODES: [ResponseCode; 5] = [
    ResponseCode::SYSTEM_BUSY,
    ResponseCode::SYSTEM_ERROR,
    ResponseCode::SERVICE_NOT_AVAILABLE,
    ResponseCode::GO_AWAY,
    ResponseCode::FLOW_CONTROL,
];

/// Fault bookkeeping as `(isolation, reachable)`: success `(false, true)`, transport failure
/// `(true, true)`, a refusal with a broker-health code ([`BROKER_HEALTH_CODES`]) `(true, false)`.
/// Local conditions (overload, shutdown, cancellation, unknown broker) record nothing.
///
/// Unlike Java 5.1.4+ (which isolates the broker after any `MQBrokerException`), a refusal that
/// concerns the topic or the message (`NO_PERMISSION`, `TOPIC_NOT_EXIST`, `MESSAGE_ILLEGAL`,
/// `INVALID_PARAMETER`, ...) counts as an answer of a healthy broker `(false, true)`: it still
/// follows the retry rules ([`is_retryable`], and the retry avoids that broker), but it does not
/// take the broker away from the sends of every other topic for 10 s. Its latency is recorded as
/// for a success, so a slow refusal still isolates by the latency table.
pub(crate) fn fault_verdict(
    outcome: &Result<Option<SendResult>, ErrorKind>,
) -> Option<(bool, bool)> {
    match outcome {
        Ok(_) | Err(ErrorKind::InvalidResponse { .. }) => Some((false, true)),
        Err(ErrorKind::Broker { code, .. }) if BROKER_HEALTH_CODES.contains(code) => {
            Some((true, false))
        }
        Err(ErrorKind::Broker { .. }) => Some((false, true)),
        Err(ErrorKind::Transport { source, .. }) if is_transport_failure(source) => {
            Some((true, true))
        }
        Err(_) => None,
    }
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
        let none = BTreeMap::new();
        assert_eq!(untried_brokers(&qs, &none, &[]), 3);
        assert_eq!(untried_brokers(&qs, &none, &["a".to_owned()]), 2);
        let all = ["a".to_owned(), "c".to_owned(), "b".to_owned()];
        assert_eq!(untried_brokers(&qs, &none, &all), 0);
        assert_eq!(untried_brokers(&[], &none, &[]), 0);
        let mixed: Vec<MessageQueue> = [("a", 0), ("b", 0), ("a", 1), ("c", 0), ("b", 1)]
            .iter()
            .map(|(b, i)| MessageQueue::new("T", *b, *i))
            .collect();
        assert_eq!(untried_brokers(&mixed, &none, &[]), 3);
        assert_eq!(untried_brokers(&mixed, &none, &["b".to_owned()]), 2);
        // A static topic's logical queues share a mock name; their real brokers count.
        let logical: Vec<MessageQueue> = (0..4)
            .map(|i| MessageQueue::new("T", "__syslo__global__", i))
            .collect();
        let endpoints: BTreeMap<MessageQueue, String> = logical
            .iter()
            .map(|q| (q.clone(), if q.queue_id < 2 { "a" } else { "b" }.to_owned()))
            .collect();
        assert_eq!(untried_brokers(&logical, &endpoints, &[]), 2);
        assert_eq!(untried_brokers(&logical, &endpoints, &["b".to_owned()]), 1);
    }

    fn broker(code: ResponseCode) -> ErrorKind {
        ErrorKind::Broker {
            code,
            remark: None,
            broker: "b".into(),
            addr: "a".into(),
        }
    }

    fn remoting(source: RemotingError) -> ErrorKind {
        ErrorKind::Transport {
            broker: "b".into(),
            source,
        }
    }

    #[test]
    fn retry_and_fault_tables() {
        let cfg = ProducerConfig::new("pg");
        let timeout = || RemotingError::Timeout {
            addr: "a".into(),
            opaque: 1,
            after: Duration::from_secs(1),
            written: true,
        };
        let closed = || RemotingError::ConnectionClosed {
            addr: "a".into(),
            written: false,
        };
        let refused = || RemotingError::Connect {
            addr: "a".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        // (error, retryable, fault verdict)
        type Case = (ErrorKind, bool, Option<(bool, bool)>);
        let cases: Vec<Case> = vec![
            // Broker health: retried and isolating.
            (broker(ResponseCode::SYSTEM_BUSY), true, Some((true, false))),
            (
                broker(ResponseCode::SYSTEM_ERROR),
                true,
                Some((true, false)),
            ),
            (
                broker(ResponseCode::SERVICE_NOT_AVAILABLE),
                true,
                Some((true, false)),
            ),
            (broker(ResponseCode::GO_AWAY), true, Some((true, false))),
            (
                broker(ResponseCode::FLOW_CONTROL),
                false,
                Some((true, false)),
            ),
            // Topic or message: retried as configured, never isolating.
            (
                broker(ResponseCode::TOPIC_NOT_EXIST),
                true,
                Some((false, true)),
            ),
            (
                broker(ResponseCode::NO_PERMISSION),
                true,
                Some((false, true)),
            ),
            (broker(ResponseCode::NO_BUYER_ID), true, Some((false, true))),
            (
                broker(ResponseCode::NOT_IN_CURRENT_UNIT),
                true,
                Some((false, true)),
            ),
            (
                broker(ResponseCode::MESSAGE_ILLEGAL),
                false,
                Some((false, true)),
            ),
            (
                broker(ResponseCode::INVALID_PARAMETER),
                false,
                Some((false, true)),
            ),
            (remoting(timeout()), true, Some((true, true))),
            (remoting(closed()), true, Some((true, true))),
            (remoting(refused()), true, Some((true, true))),
            (
                remoting(RemotingError::Overloaded { addr: "a".into() }),
                true,
                None,
            ),
            (remoting(RemotingError::Shutdown), false, None),
            (
                remoting(RemotingError::FrameTooLarge { len: 1, max: 0 }),
                false,
                None,
            ),
            (ErrorKind::BrokerNotFound { broker: "b".into() }, true, None),
            (ErrorKind::Cancelled { maybe_stored: true }, false, None),
        ];
        for (err, retry, verdict) in cases {
            assert_eq!(is_retryable(&cfg, &err), retry, "{err}");
            let outcome = Err(err);
            assert_eq!(fault_verdict(&outcome), verdict, "{outcome:?}");
        }
        assert_eq!(fault_verdict(&Ok(None)), Some((false, true)));
    }
}
