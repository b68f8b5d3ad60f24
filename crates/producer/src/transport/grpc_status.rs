//! gRPC outcomes as the producer's [`ErrorKind`]s, so that the send loop's rules (retry, fault
//! table, `maybe_stored`, the message handed back) apply unchanged.
//!
//! A proxy's `apache.rocketmq.v2.Code` maps to the remoting response code of the same meaning
//! (the 5.x clients' `StatusChecker` groups them the same way):
//!
//! | v2 code | as | retried by default |
//! |---|---|---|
//! | `OK`, `MULTIPLE_RESULTS` | `SEND_OK` | |
//! | `MASTER_PERSISTENCE_TIMEOUT` | stored, `FLUSH_DISK_TIMEOUT` | |
//! | `SLAVE_PERSISTENCE_TIMEOUT` | stored, `FLUSH_SLAVE_TIMEOUT` | |
//! | `HA_NOT_AVAILABLE` | stored, `SLAVE_NOT_AVAILABLE` | |
//! | `TOO_MANY_REQUESTS` | `SYSTEM_BUSY` (pause, then retry) | yes |
//! | `INTERNAL_ERROR`, `INTERNAL_SERVER_ERROR`, unknown | `SYSTEM_ERROR` | yes |
//! | `PRECONDITION_FAILED` | `SERVICE_NOT_AVAILABLE` | yes |
//! | `NOT_FOUND`, `TOPIC_NOT_FOUND` | `TOPIC_NOT_EXIST` | yes |
//! | `UNAUTHORIZED`, `FORBIDDEN`, `PAYMENT_REQUIRED` | `NO_PERMISSION` | yes |
//! | `NOT_IMPLEMENTED`, `UNSUPPORTED`, `VERSION_UNSUPPORTED` | `REQUEST_CODE_NOT_SUPPORTED` | |
//! | every other 4xxxx (bad request, illegal fields, too large) | `MESSAGE_ILLEGAL` | |
//! | `PROXY_TIMEOUT`, `REQUEST_TIMEOUT` | a timeout after the write (maybe stored) | yes |
//!
//! The refusal's remark is `"<CODE_NAME>(<code>): <message>"`; its broker is the queue's broker
//! name and its address the proxy endpoint. Failures below the RocketMQ status: the call's
//! deadline is a [`RemotingError::Timeout`] (written, so maybe stored); a channel that could not
//! connect is a [`RemotingError::Connect`] (certainly not stored); any other transport failure a
//! [`RemotingError::ConnectionClosed`] after the write (maybe stored); gRPC statuses the
//! server's framework answers before the handler (`UNAUTHENTICATED`, `PERMISSION_DENIED`,
//! `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, `UNIMPLEMENTED`) map like the codes above.

use std::io;

use rmq_common::ResponseCode;
use rmq_grpc::pb::Code;
use rmq_grpc::CallError;
use rmq_remoting::RemotingError;

use crate::error::ErrorKind;
use crate::send_result::SendStatus;

/// What a v2 status code says about a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Stored, with this status.
    Stored(SendStatus),
    /// Refused (certainly not stored), as this remoting code.
    Refused(ResponseCode),
    /// The proxy gave up waiting for the broker: maybe stored.
    TimedOut,
}

/// The verdict of `code`.
pub(crate) fn verdict(code: i32) -> Verdict {
    let Ok(code) = Code::try_from(code) else {
        return Verdict::Refused(ResponseCode::SYSTEM_ERROR);
    };
    match code {
        Code::Ok | Code::MultipleResults => Verdict::Stored(SendStatus::SendOk),
        Code::MasterPersistenceTimeout => Verdict::Stored(SendStatus::FlushDiskTimeout),
        Code::SlavePersistenceTimeout => Verdict::Stored(SendStatus::FlushSlaveTimeout),
        Code::HaNotAvailable => Verdict::Stored(SendStatus::SlaveNotAvailable),
        Code::ProxyTimeout | Code::RequestTimeout => Verdict::TimedOut,
        Code::TooManyRequests => Verdict::Refused(ResponseCode::SYSTEM_BUSY),
        Code::PreconditionFailed => Verdict::Refused(ResponseCode::SERVICE_NOT_AVAILABLE),
        Code::NotFound | Code::TopicNotFound => Verdict::Refused(ResponseCode::TOPIC_NOT_EXIST),
        Code::Unauthorized | Code::Forbidden | Code::PaymentRequired => {
            Verdict::Refused(ResponseCode::NO_PERMISSION)
        }
        Code::NotImplemented | Code::Unsupported | Code::VersionUnsupported => {
            Verdict::Refused(ResponseCode::REQUEST_CODE_NOT_SUPPORTED)
        }
        c if (40000..50000).contains(&(c as i32)) => {
            Verdict::Refused(ResponseCode::MESSAGE_ILLEGAL)
        }
        _ => Verdict::Refused(ResponseCode::SYSTEM_ERROR),
    }
}

/// The error of a v2 status that is not a success, for a send to `broker` through `endpoint`.
pub(crate) fn status_error(code: i32, message: &str, broker: &str, endpoint: &str) -> ErrorKind {
    match verdict(code) {
        Verdict::TimedOut => ErrorKind::Transport {
            broker: broker.to_owned(),
            source: RemotingError::Timeout {
                addr: endpoint.to_owned(),
                opaque: 0,
                after: std::time::Duration::ZERO,
                written: true,
            },
        },
        Verdict::Refused(rc) => refused(rc, code, message, broker, endpoint),
        // Not an error: callers read stored verdicts themselves.
        Verdict::Stored(_) => refused(ResponseCode::SYSTEM_ERROR, code, message, broker, endpoint),
    }
}

fn refused(rc: ResponseCode, code: i32, message: &str, broker: &str, endpoint: &str) -> ErrorKind {
    ErrorKind::Broker {
        code: rc,
        remark: Some(format!("{}({code}): {message}", rmq_grpc::code::name(code))),
        broker: broker.to_owned(),
        addr: endpoint.to_owned(),
    }
}

/// The error of a failed call.
pub(crate) fn call_error(err: CallError, broker: &str, endpoint: &str) -> ErrorKind {
    let transport = |source| ErrorKind::Transport {
        broker: broker.to_owned(),
        source,
    };
    match err {
        CallError::Timeout(after) => transport(RemotingError::Timeout {
            addr: endpoint.to_owned(),
            opaque: 0,
            after,
            written: true,
        }),
        CallError::Rpc(status) => {
            let as_code = match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    Some(Code::Unauthorized)
                }
                tonic::Code::ResourceExhausted => Some(Code::TooManyRequests),
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Some(Code::BadRequest),
                tonic::Code::Unimplemented => Some(Code::NotImplemented),
                tonic::Code::NotFound => Some(Code::NotFound),
                _ => None,
            };
            if let Some(code) = as_code {
                return status_error(code as i32, status.message(), broker, endpoint);
            }
            let err = CallError::Rpc(status);
            if err.maybe_delivered() {
                transport(RemotingError::ConnectionClosed {
                    addr: endpoint.to_owned(),
                    written: true,
                })
            } else {
                transport(RemotingError::Connect {
                    addr: endpoint.to_owned(),
                    source: io::Error::new(io::ErrorKind::ConnectionRefused, err.to_string()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_codes_map_to_the_remoting_meaning() {
        use ResponseCode as R;
        let table: [(Code, Verdict); 16] = [
            (Code::Ok, Verdict::Stored(SendStatus::SendOk)),
            (Code::MultipleResults, Verdict::Stored(SendStatus::SendOk)),
            (
                Code::MasterPersistenceTimeout,
                Verdict::Stored(SendStatus::FlushDiskTimeout),
            ),
            (
                Code::SlavePersistenceTimeout,
                Verdict::Stored(SendStatus::FlushSlaveTimeout),
            ),
            (
                Code::HaNotAvailable,
                Verdict::Stored(SendStatus::SlaveNotAvailable),
            ),
            (Code::ProxyTimeout, Verdict::TimedOut),
            (Code::TooManyRequests, Verdict::Refused(R::SYSTEM_BUSY)),
            (Code::InternalServerError, Verdict::Refused(R::SYSTEM_ERROR)),
            (Code::InternalError, Verdict::Refused(R::SYSTEM_ERROR)),
            (Code::TopicNotFound, Verdict::Refused(R::TOPIC_NOT_EXIST)),
            (Code::Forbidden, Verdict::Refused(R::NO_PERMISSION)),
            (Code::Unauthorized, Verdict::Refused(R::NO_PERMISSION)),
            (
                Code::MessageBodyTooLarge,
                Verdict::Refused(R::MESSAGE_ILLEGAL),
            ),
            (
                Code::IllegalMessageKey,
                Verdict::Refused(R::MESSAGE_ILLEGAL),
            ),
            (
                Code::Unsupported,
                Verdict::Refused(R::REQUEST_CODE_NOT_SUPPORTED),
            ),
            (
                Code::PreconditionFailed,
                Verdict::Refused(R::SERVICE_NOT_AVAILABLE),
            ),
        ];
        for (code, want) in table {
            assert_eq!(verdict(code as i32), want, "{code:?}");
        }
        assert_eq!(verdict(12_345), Verdict::Refused(R::SYSTEM_ERROR));
    }

    #[test]
    fn errors_keep_the_send_rules() {
        let busy = status_error(Code::TooManyRequests as i32, "slow down", "broker-a", "p:1");
        assert_eq!(busy.response_code(), Some(ResponseCode::SYSTEM_BUSY));
        assert!(!busy.maybe_stored());
        assert!(
            busy.to_string()
                .contains("TOO_MANY_REQUESTS(42900): slow down"),
            "{busy}"
        );
        let big = status_error(Code::MessageBodyTooLarge as i32, "x", "b", "p:1");
        assert!(!big.is_retryable() && !big.maybe_stored());
        let late = status_error(Code::ProxyTimeout as i32, "x", "b", "p:1");
        assert!(late.maybe_stored() && late.is_retryable());
        let timeout = call_error(
            CallError::Timeout(std::time::Duration::from_secs(1)),
            "b",
            "p:1",
        );
        assert!(timeout.maybe_stored() && timeout.is_timeout());
        let refused = call_error(
            CallError::Rpc(tonic::Status::unavailable(
                "tcp connect error: Connection refused",
            )),
            "b",
            "p:1",
        );
        assert!(
            !refused.maybe_stored() && refused.is_retryable(),
            "{refused:?}"
        );
        let reset = call_error(
            CallError::Rpc(tonic::Status::unavailable("stream reset")),
            "b",
            "p:1",
        );
        assert!(reset.maybe_stored());
        let denied = call_error(
            CallError::Rpc(tonic::Status::permission_denied("no")),
            "b",
            "p:1",
        );
        assert_eq!(denied.response_code(), Some(ResponseCode::NO_PERMISSION));
    }
}
