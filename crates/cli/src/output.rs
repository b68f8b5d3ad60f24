//! What `rmq send` prints: one JSON line per result, and the exit code of the whole run.
//!
//! - stored: `{"status":"SEND_OK","msgId":..,"offsetMsgId":..,"topic":..,"brokerName":..,
//!   "queueId":..,"queueOffset":..}`, plus `"recallHandle"` for a timer message
//! - oneway: `{"status":"ONEWAY_WRITTEN","msgId":..,"topic":..}`
//! - transactional (`--transaction`): the stored line plus `"transactionState"` (`COMMIT_MESSAGE`,
//!   `ROLLBACK_MESSAGE` or `UNKNOW`: what was reported to the broker), `"endWritten"` (whether
//!   `END_TRANSACTION` was written) and, when the state is not the local transaction's own
//!   answer, `"note"` (why)
//! - a check-back answered: `{"status":"CHECK_ANSWERED","msgId":..,"topic":..,
//!   "transactionState":..,"sentHere":bool}` (`sentHere` false: a half message this run did not
//!   send, answered `UNKNOW`)
//! - failed: `{"error":{"kind":..,"maybeStored":bool,"message":..}}` (plus `"responseCode"` when
//!   a broker answered with one); `message` is the error followed by each of its causes.

use std::error::Error;

use rmq_producer::{ErrorKind, SendError, SendResult, TransactionSendResult};
use serde::Serialize;

/// The status printed for a oneway send once it is handed to the connection (the producer's
/// shutdown, before the command exits, writes what is queued; the name is kept for scripts).
pub(crate) const ONEWAY_WRITTEN: &str = "ONEWAY_WRITTEN";

/// A stored message (or batch).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendLine<'a> {
    pub(crate) status: &'static str,
    pub(crate) msg_id: &'a str,
    pub(crate) offset_msg_id: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) broker_name: &'a str,
    pub(crate) queue_id: i32,
    pub(crate) queue_offset: i64,
    /// The broker's recall handle (timer messages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recall_handle: Option<&'a str>,
}

impl<'a> From<&'a SendResult> for SendLine<'a> {
    fn from(r: &'a SendResult) -> Self {
        Self {
            status: r.status.as_str(),
            msg_id: &r.msg_id,
            offset_msg_id: &r.offset_msg_id,
            topic: &r.queue.topic,
            broker_name: &r.queue.broker_name,
            queue_id: r.queue.queue_id,
            queue_offset: r.queue_offset,
            recall_handle: r.recall_handle.as_deref(),
        }
    }
}

/// A oneway message, handed to the connection to a broker (no answer is awaited).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OnewayLine<'a> {
    pub(crate) status: &'static str,
    pub(crate) msg_id: &'a str,
    pub(crate) topic: &'a str,
}

/// A transactional message: the stored half message and how its transaction ended.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TxSendLine<'a> {
    #[serde(flatten)]
    pub(crate) send: SendLine<'a>,
    /// The state reported to the broker (Java's `LocalTransactionState` name).
    pub(crate) transaction_state: &'static str,
    /// Whether `END_TRANSACTION` was written (when not, the broker checks back).
    pub(crate) end_written: bool,
    /// Why the state is not the local transaction's own answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<&'a str>,
}

impl<'a> From<&'a TransactionSendResult> for TxSendLine<'a> {
    fn from(r: &'a TransactionSendResult) -> Self {
        Self {
            send: SendLine::from(&r.send),
            transaction_state: r.state.as_str(),
            end_written: r.end_written,
            note: r.note.as_deref(),
        }
    }
}

/// The status of a [`CheckLine`].
pub(crate) const CHECK_ANSWERED: &str = "CHECK_ANSWERED";

/// A broker's check-back (`CHECK_TRANSACTION_STATE`) and the answer given.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckLine<'a> {
    pub(crate) status: &'static str,
    /// The half message's id (`UNIQ_KEY`; empty when it has none).
    pub(crate) msg_id: &'a str,
    pub(crate) topic: &'a str,
    /// The answer (Java's `LocalTransactionState` name).
    pub(crate) transaction_state: &'static str,
    /// Whether this run sent the message; the others are answered `UNKNOW`.
    pub(crate) sent_here: bool,
}

/// A failed send.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ErrorLine {
    pub(crate) error: ErrorBody,
}

/// The body of [`ErrorLine`].
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    /// The [`ErrorKind`] variant.
    pub(crate) kind: &'static str,
    /// Whether the message may have been stored (a retry may duplicate it).
    pub(crate) maybe_stored: bool,
    /// The broker's response code, when one caused the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_code: Option<i32>,
    /// The error and its causes, in one line.
    pub(crate) message: String,
}

impl From<&SendError> for ErrorLine {
    fn from(e: &SendError) -> Self {
        Self::from(e.kind())
    }
}

/// What a send error says is all in its kind: the message handed back is not printed.
impl From<&ErrorKind> for ErrorLine {
    fn from(e: &ErrorKind) -> Self {
        Self {
            error: ErrorBody {
                kind: error_kind(e),
                maybe_stored: e.maybe_stored(),
                response_code: e.response_code().map(|c| c.0),
                message: one_line(e),
            },
        }
    }
}

/// The name of an [`ErrorKind`] variant.
pub(crate) fn error_kind(e: &ErrorKind) -> &'static str {
    match e {
        ErrorKind::InvalidMessage(_) => "InvalidMessage",
        ErrorKind::InvalidBatch(_) => "InvalidBatch",
        ErrorKind::NotRunning => "NotRunning",
        ErrorKind::NoRoute { .. } => "NoRoute",
        ErrorKind::NameServer(_) => "NameServer",
        ErrorKind::QueueUnavailable { .. } => "QueueUnavailable",
        ErrorKind::BrokerNotFound { .. } => "BrokerNotFound",
        ErrorKind::Broker { .. } => "Broker",
        ErrorKind::Transport { .. } => "Transport",
        ErrorKind::InvalidResponse { .. } => "InvalidResponse",
        ErrorKind::Timeout { .. } => "Timeout",
        ErrorKind::RetriesExhausted { .. } => "RetriesExhausted",
        ErrorKind::Overloaded { .. } => "Overloaded",
        ErrorKind::Cancelled { .. } => "Cancelled",
        ErrorKind::ReplyTimeout { .. } => "ReplyTimeout",
        ErrorKind::InvalidReply { .. } => "InvalidReply",
        ErrorKind::CannotReply(_) => "CannotReply",
        _ => "Other",
    }
}

/// An error and its sources in one line, `a: b: c`; a source already quoted by the message
/// before it is not repeated.
pub(crate) fn one_line(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cur = s.source();
    }
    line.replace(['\n', '\r'], " ")
}

/// The JSON text of a line (serializing these plain structs cannot fail; an empty object is
/// printed if it ever did).
pub(crate) fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// Prints `text` and a newline on stdout. A closed stdout (e.g. `| head -1`) is not an error
/// worth a panic: the line is dropped and the exit code still tells the outcome.
pub(crate) fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Exit codes.
pub(crate) mod exit {
    /// Every message succeeded.
    pub(crate) const OK: u8 = 0;
    /// A failure; every failed message was certainly not stored (or the command failed).
    pub(crate) const FAILED: u8 = 1;
    /// Bad usage (clap's own code).
    pub(crate) const USAGE: u8 = 2;
    /// A failure after which a message may have been stored (a retry may duplicate it), or a
    /// transaction left undecided (its half message waits on the broker).
    pub(crate) const MAYBE_STORED: u8 = 3;
}

/// Counts the outcomes of a run and gives its exit code.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) maybe_stored: u64,
}

impl Tally {
    /// Records one success.
    pub(crate) fn ok(&mut self) {
        self.ok += 1;
    }

    /// Records one failure.
    pub(crate) fn failed(&mut self, maybe_stored: bool) {
        self.failed += 1;
        if maybe_stored {
            self.maybe_stored += 1;
        }
    }

    /// 0 when nothing failed; 3 when a failed message may have been stored; 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.maybe_stored > 0 {
            exit::MAYBE_STORED
        } else if self.failed > 0 {
            exit::FAILED
        } else {
            exit::OK
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rmq_common::validate::ValidationError;
    use rmq_common::ResponseCode;
    use rmq_producer::SendStatus;
    use serde_json::{json, Value};

    use super::*;

    fn parse(s: &str) -> Value {
        assert!(!s.contains('\n'), "one line: {s}");
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn send_line_has_the_documented_fields() {
        let line = SendLine {
            status: SendStatus::SendOk.as_str(),
            msg_id: "7F00000100002A9F0000000000000001",
            offset_msg_id: "7F00000100002A9F0000000000000042",
            topic: "T",
            broker_name: "broker-a",
            queue_id: 3,
            queue_offset: 17,
            recall_handle: None,
        };
        assert_eq!(
            parse(&to_json(&line)),
            json!({"status":"SEND_OK","msgId":"7F00000100002A9F0000000000000001",
                   "offsetMsgId":"7F00000100002A9F0000000000000042","topic":"T",
                   "brokerName":"broker-a","queueId":3,"queueOffset":17})
        );
        let timer = SendLine {
            recall_handle: Some("djEgVCBicm9rZXItYSAxIElE"),
            ..line
        };
        assert_eq!(
            parse(&to_json(&timer))["recallHandle"],
            json!("djEgVCBicm9rZXItYSAxIElE")
        );
    }

    #[test]
    fn oneway_line() {
        let line = OnewayLine {
            status: ONEWAY_WRITTEN,
            msg_id: "ID",
            topic: "T",
        };
        assert_eq!(
            parse(&to_json(&line)),
            json!({"status":"ONEWAY_WRITTEN","msgId":"ID","topic":"T"})
        );
    }

    #[test]
    fn transaction_lines() {
        let send = SendLine {
            status: "SEND_OK",
            msg_id: "ID",
            offset_msg_id: "OFF",
            topic: "T",
            broker_name: "broker-a",
            queue_id: 1,
            queue_offset: 2,
            recall_handle: None,
        };
        let line = TxSendLine {
            send,
            transaction_state: rmq_producer::TransactionState::Unknown.as_str(),
            end_written: true,
            note: None,
        };
        assert_eq!(
            parse(&to_json(&line)),
            json!({"status":"SEND_OK","msgId":"ID","offsetMsgId":"OFF","topic":"T",
                   "brokerName":"broker-a","queueId":1,"queueOffset":2,
                   "transactionState":"UNKNOW","endWritten":true})
        );
        let noted = TxSendLine {
            note: Some("why"),
            end_written: false,
            ..line
        };
        let v = parse(&to_json(&noted));
        assert_eq!(
            (&v["note"], &v["endWritten"]),
            (&json!("why"), &json!(false))
        );
        let check = CheckLine {
            status: CHECK_ANSWERED,
            msg_id: "ID",
            topic: "T",
            transaction_state: "COMMIT_MESSAGE",
            sent_here: true,
        };
        assert_eq!(
            parse(&to_json(&check)),
            json!({"status":"CHECK_ANSWERED","msgId":"ID","topic":"T",
                   "transactionState":"COMMIT_MESSAGE","sentHere":true})
        );
    }

    #[test]
    fn invalid_topic_is_a_certain_failure() {
        let e = ErrorKind::InvalidMessage(ValidationError::IllegalTopicChar { ch: '!' });
        let v = parse(&to_json(&ErrorLine::from(&e)));
        assert_eq!(v["error"]["kind"], "InvalidMessage");
        assert_eq!(v["error"]["maybeStored"], false);
        assert!(v["error"].get("responseCode").is_none());
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("invalid message: "), "{v}");
        assert!(
            message.contains("illegal character '!'"),
            "the cause is printed after the error: {v}"
        );
    }

    /// The error of one send of a real producer to a testkit broker prepared by `setup`.
    async fn failed_send(
        setup: impl FnOnce(&rmq_testkit::MockBroker),
        retries: u32,
        timeout: Duration,
    ) -> SendError {
        let within = Duration::from_secs(20);
        let c = tokio::time::timeout(within, rmq_testkit::MockCluster::start(1))
            .await
            .expect("in time")
            .expect("cluster");
        c.create_topic("T", 1);
        let p = rmq_producer::Producer::builder("OutputTest")
            .name_server(c.namesrv_addr())
            .retries(retries)
            .send_timeout(timeout)
            .start()
            .await
            .expect("start");
        // The route first, so that the failure is the broker's.
        assert!(p.send(rmq_common::Message::new("T", "warm")).await.is_ok());
        setup(&c.brokers()[0]);
        let sent = tokio::time::timeout(within, p.send(rmq_common::Message::new("T", "x")))
            .await
            .expect("in time");
        let err = sent.expect_err("the send fails");
        c.brokers()[0].faults().reset();
        tokio::time::timeout(within, p.shutdown())
            .await
            .expect("shutdown in time");
        err
    }

    #[tokio::test]
    async fn timeout_after_write_may_be_stored() {
        let e = failed_send(
            |b| b.faults().set_black_hole(true),
            0,
            Duration::from_millis(300),
        )
        .await;
        let v = parse(&to_json(&ErrorLine::from(&e)));
        assert_eq!(v["error"]["kind"], "Transport");
        assert_eq!(v["error"]["maybeStored"], true);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("send to broker broker-a failed: "),
            "{v}"
        );
        assert!(
            message.contains("timed out"),
            "the transport's cause is printed: {v}"
        );
    }

    #[tokio::test]
    async fn broker_refusal_carries_its_code() {
        let e = failed_send(
            |b| b.faults().script_codes([ResponseCode::TOPIC_NOT_EXIST]),
            0,
            Duration::from_secs(3),
        )
        .await;
        let line = to_json(&ErrorLine::from(&e));
        let v = parse(&line);
        assert_eq!(v["error"]["kind"], "Broker");
        assert_eq!(v["error"]["responseCode"], ResponseCode::TOPIC_NOT_EXIST.0);
        assert_eq!(v["error"]["maybeStored"], false);
    }

    #[tokio::test]
    async fn exhausted_retries_print_the_last_error_and_its_cause() {
        let e = failed_send(
            |b| b.faults().script_codes([ResponseCode::SYSTEM_ERROR; 3]),
            2,
            Duration::from_secs(3),
        )
        .await;
        let v = parse(&to_json(&ErrorLine::from(&e)));
        assert_eq!(v["error"]["kind"], "RetriesExhausted");
        assert_eq!(v["error"]["maybeStored"], false);
        assert_eq!(v["error"]["responseCode"], ResponseCode::SYSTEM_ERROR.0);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("send failed after 3 attempts"), "{v}");
        assert!(
            message.contains(": broker broker-a (127.0.0.1:"),
            "the last attempt's error follows: {v}"
        );
    }

    #[test]
    fn one_line_joins_new_sources_only() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl Error for E {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "outer: inner",
            Some(Box::new(E("inner", Some(Box::new(E("root\ncause", None)))))),
        );
        assert_eq!(one_line(&e), "outer: inner: root cause");
    }

    #[test]
    fn exit_codes() {
        let mut t = Tally::default();
        t.ok();
        assert_eq!(t.exit_code(), exit::OK);
        t.failed(false);
        assert_eq!(t.exit_code(), exit::FAILED);
        t.failed(true);
        assert_eq!(t.exit_code(), exit::MAYBE_STORED);
        assert_eq!((t.ok, t.failed, t.maybe_stored), (1, 2, 1));
        assert_ne!(exit::USAGE, exit::FAILED);
    }
}
