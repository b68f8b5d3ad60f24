//! [`ErrorKind::duplicate`]: the error of one batch, given to each of its messages.

use crate::error::ErrorKind;

impl ErrorKind {
    /// A copy of this error for another message of the same failed batch: the same variant and
    /// fields, the causes copied (see [`rmq_remoting::RemotingError::duplicate`]), so every
    /// member reads the same kind, text, `maybe_stored` and response code.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::InvalidMessage(e) => Self::InvalidMessage(e.clone()),
            Self::InvalidBatch(e) => Self::InvalidBatch(e.clone()),
            Self::NotRunning => Self::NotRunning,
            Self::NoRoute { topic, source } => Self::NoRoute {
                topic: topic.clone(),
                source: source
                    .as_ref()
                    .map(rmq_nameserver_client::NameServerError::duplicate),
            },
            Self::NameServer(e) => Self::NameServer(e.duplicate()),
            Self::QueueUnavailable { topic, queue } => Self::QueueUnavailable {
                topic: topic.clone(),
                queue: queue.clone(),
            },
            Self::BrokerNotFound { broker } => Self::BrokerNotFound {
                broker: broker.clone(),
            },
            Self::Broker {
                code,
                remark,
                broker,
                addr,
            } => Self::Broker {
                code: *code,
                remark: remark.clone(),
                broker: broker.clone(),
                addr: addr.clone(),
            },
            Self::Transport { broker, source } => Self::Transport {
                broker: broker.clone(),
                source: source.duplicate(),
            },
            Self::InvalidResponse {
                broker,
                code,
                source,
            } => Self::InvalidResponse {
                broker: broker.clone(),
                code: *code,
                source: source.clone(),
            },
            Self::Timeout {
                after,
                attempts,
                maybe_stored,
                last,
            } => Self::Timeout {
                after: *after,
                attempts: *attempts,
                maybe_stored: *maybe_stored,
                last: last.as_ref().map(|e| Box::new(e.duplicate())),
            },
            Self::RetriesExhausted {
                attempts,
                brokers,
                last,
                maybe_stored,
            } => Self::RetriesExhausted {
                attempts: *attempts,
                brokers: brokers.clone(),
                last: Box::new(last.duplicate()),
                maybe_stored: *maybe_stored,
            },
            Self::Overloaded {
                max_in_flight,
                max_bytes,
            } => Self::Overloaded {
                max_in_flight: *max_in_flight,
                max_bytes: *max_bytes,
            },
            Self::Cancelled { maybe_stored } => Self::Cancelled {
                maybe_stored: *maybe_stored,
            },
            // Errors of requests, never of a batch; copied all the same.
            Self::ReplyTimeout {
                after,
                correlation_id,
            } => Self::ReplyTimeout {
                after: *after,
                correlation_id: correlation_id.clone(),
            },
            Self::InvalidReply {
                correlation_id,
                source,
            } => Self::InvalidReply {
                correlation_id: correlation_id.clone(),
                source: source.duplicate(),
            },
            Self::CannotReply(e) => Self::CannotReply(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::Duration;

    use rmq_common::batch::BatchError;
    use rmq_common::validate::ValidationError;
    use rmq_common::{HeaderError, ResponseCode};
    use rmq_nameserver_client::NameServerError;
    use rmq_remoting::RemotingError;

    use super::*;

    /// The text of an error and of every cause, in order.
    fn chain(e: &ErrorKind) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut next = e.source();
        while let Some(s) = next {
            out.push(s.to_string());
            next = s.source();
        }
        out
    }

    #[test]
    fn every_kind_is_copied_with_its_causes() {
        let closed = || RemotingError::ConnectionClosed {
            addr: "127.0.0.1:10911".into(),
            written: true,
        };
        let broker = || ErrorKind::Broker {
            code: ResponseCode::SYSTEM_BUSY,
            remark: Some("busy".into()),
            broker: "broker-a".into(),
            addr: "127.0.0.1:10911".into(),
        };
        let all = vec![
            ErrorKind::InvalidMessage(ValidationError::EmptyBody),
            ErrorKind::InvalidBatch(BatchError::Empty),
            ErrorKind::NotRunning,
            ErrorKind::NoRoute {
                topic: "T".into(),
                source: Some(NameServerError::NoWritableMaster { topic: "T".into() }),
            },
            ErrorKind::NameServer(NameServerError::Unreachable {
                tried: vec!["127.0.0.1:9876".into()],
                last: closed(),
            }),
            ErrorKind::QueueUnavailable {
                topic: "T".into(),
                queue: "broker-a/9".into(),
            },
            ErrorKind::BrokerNotFound {
                broker: "broker-z".into(),
            },
            broker(),
            ErrorKind::Transport {
                broker: "broker-a".into(),
                source: closed(),
            },
            ErrorKind::InvalidResponse {
                broker: "broker-a".into(),
                code: ResponseCode::SUCCESS,
                source: HeaderError::Missing { field: "queueId" },
            },
            ErrorKind::Timeout {
                after: Duration::from_secs(3),
                attempts: 2,
                maybe_stored: true,
                last: Some(Box::new(broker())),
            },
            ErrorKind::RetriesExhausted {
                attempts: 3,
                brokers: vec!["broker-a".into(), "broker-b".into()],
                last: Box::new(ErrorKind::Transport {
                    broker: "broker-b".into(),
                    source: closed(),
                }),
                maybe_stored: true,
            },
            ErrorKind::Overloaded {
                max_in_flight: 1,
                max_bytes: 2,
            },
            ErrorKind::Cancelled { maybe_stored: true },
        ];
        for e in &all {
            let c = e.duplicate();
            assert_eq!(chain(&c), chain(e));
            assert_eq!(c.maybe_stored(), e.maybe_stored(), "{e}");
            assert_eq!(c.response_code(), e.response_code(), "{e}");
            assert_eq!(c.is_timeout(), e.is_timeout(), "{e}");
            assert_eq!(c.is_retryable(), e.is_retryable(), "{e}");
            assert_eq!(std::mem::discriminant(&c), std::mem::discriminant(e), "{e}");
        }
    }
}
