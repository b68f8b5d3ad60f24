//! The outcome of a successful send: [`SendResult`] and [`SendStatus`].

use std::borrow::Cow;
use std::fmt;

use rmq_common::{MessageQueue, ResponseCode};

/// How the broker stored the message (Java's `SendStatus`). Every status means **stored**; the
/// three non-OK ones only report that durability or replication lagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendStatus {
    /// Stored (`SEND_OK`).
    SendOk,
    /// Stored, but the synchronous flush to disk timed out (`FLUSH_DISK_TIMEOUT`).
    FlushDiskTimeout,
    /// Stored, but the synchronous replication to the slave timed out (`FLUSH_SLAVE_TIMEOUT`).
    FlushSlaveTimeout,
    /// Stored, but no slave was available for synchronous replication (`SLAVE_NOT_AVAILABLE`).
    SlaveNotAvailable,
}

impl SendStatus {
    /// The status for a send response code, as Java's `processSendResponse`: `None` for every code
    /// that is not one of the four "stored" codes (the send failed).
    ///
    /// ```
    /// use rmq_common::ResponseCode;
    /// use rmq_producer::SendStatus;
    /// assert_eq!(SendStatus::from_code(ResponseCode::SUCCESS), Some(SendStatus::SendOk));
    /// assert_eq!(SendStatus::from_code(ResponseCode::FLUSH_DISK_TIMEOUT), Some(SendStatus::FlushDiskTimeout));
    /// assert_eq!(SendStatus::from_code(ResponseCode::SYSTEM_BUSY), None);
    /// ```
    #[must_use]
    pub fn from_code(code: ResponseCode) -> Option<Self> {
        match code {
            ResponseCode::SUCCESS => Some(Self::SendOk),
            ResponseCode::FLUSH_DISK_TIMEOUT => Some(Self::FlushDiskTimeout),
            ResponseCode::FLUSH_SLAVE_TIMEOUT => Some(Self::FlushSlaveTimeout),
            ResponseCode::SLAVE_NOT_AVAILABLE => Some(Self::SlaveNotAvailable),
            _ => None,
        }
    }

    /// Whether this is [`SendStatus::SendOk`].
    #[must_use]
    pub fn is_ok(self) -> bool {
        self == Self::SendOk
    }

    /// Java's enum constant name (`SEND_OK`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendOk => "SEND_OK",
            Self::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            Self::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            Self::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        }
    }
}

impl fmt::Display for SendStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the broker answered to a successful send (Java's `SendResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendResult {
    /// How the message was stored.
    pub status: SendStatus,
    /// The client message id (`UNIQ_KEY`); for a batch, the inner messages' ids joined by `,`.
    pub msg_id: String,
    /// The broker's offset message id (store host + commit-log offset); for a batch, one per
    /// message joined by `,`.
    pub offset_msg_id: String,
    /// The queue the message was stored in (the broker name used and the queue id it answered).
    pub queue: MessageQueue,
    /// The offset of the message in its consume queue.
    pub queue_offset: i64,
    /// The transaction id the broker answered (the stored message's `UNIQ_KEY`).
    pub transaction_id: Option<String>,
    /// The broker's region (`MSG_REGION`, `"DefaultRegion"` when absent). Borrowed when it is
    /// `"DefaultRegion"` (a broker's default): no allocation per send for it.
    pub region_id: Cow<'static, str>,
    /// Whether the broker has message tracing on (`TRACE_ON` is not `"false"`).
    pub trace_on: bool,
    /// The broker's recall handle (5.x, timer messages only): pass it to
    /// [`Producer::recall`](crate::Producer::recall) to withdraw the message before its time.
    pub recall_handle: Option<String>,
}

impl fmt::Display for SendResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SendResult [sendStatus={}, msgId={}, offsetMsgId={}, messageQueue={}, queueOffset={}]",
            self.status, self.msg_id, self.offset_msg_id, self.queue, self.queue_offset
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_four_stored_codes_map_to_a_status() {
        let stored = [
            (0, SendStatus::SendOk),
            (10, SendStatus::FlushDiskTimeout),
            (12, SendStatus::FlushSlaveTimeout),
            (11, SendStatus::SlaveNotAvailable),
        ];
        for (code, status) in stored {
            assert_eq!(
                SendStatus::from_code(ResponseCode(code)),
                Some(status),
                "code {code}"
            );
        }
        for code in [1, 2, 3, 13, 14, 16, 17, 204, 205, 1500, -1, 9999] {
            assert_eq!(
                SendStatus::from_code(ResponseCode(code)),
                None,
                "code {code}"
            );
        }
        assert!(SendStatus::SendOk.is_ok());
        assert!(!SendStatus::SlaveNotAvailable.is_ok());
        assert_eq!(
            SendStatus::FlushSlaveTimeout.to_string(),
            "FLUSH_SLAVE_TIMEOUT"
        );
    }
}
