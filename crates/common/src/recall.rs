//! Recall handles (5.x): what a broker answers for a timer message (`recallHandle` of the send
//! response) and `RECALL_MESSAGE` takes back to withdraw it before its time.
//!
//! Java's `RecallMessageHandle.HandleV1`: the text `v1 topic brokerName timestamp uniqKey`
//! (single spaces) in URL-safe Base64, **padded** (`Base64.getUrlEncoder()`); Java decodes with
//! `Base64.getUrlDecoder()`, which takes it with or without padding, splits on spaces (trailing
//! empty parts dropped) and needs `v1` and at least five parts (more are ignored). The
//! rocketmq-rust broker decodes padded handles only, so a handle is sent as it was received and
//! [`RecallHandle::encode`] pads. `timestamp` is the delivery time in epoch milliseconds as the
//! broker chose it (Java: the timer slot + 1; rocketmq-rust: the requested time).

use std::fmt;

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE as PADDED};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// The one handle version (`HandleV1`).
pub const VERSION_1: &str = "v1";

/// URL-safe Base64 that takes input with or without padding, as `Base64.getUrlDecoder()`.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A decoded recall handle (Java's `RecallMessageHandle.HandleV1`).
///
/// ```
/// use rmq_common::recall::RecallHandle;
/// let h = RecallHandle {
///     topic: "Orders".into(),
///     broker_name: "broker-a".into(),
///     deliver_time_ms: 1_700_000_000_000,
///     msg_id: "7F000001000018B4AAC2".into(),
/// };
/// let text = h.encode();
/// assert_eq!(RecallHandle::decode(&text)?, h);
/// assert_eq!(RecallHandle::decode(text.trim_end_matches('='))?, h); // unpadded, as Java takes it
/// # Ok::<(), rmq_common::recall::RecallHandleError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecallHandle {
    /// The topic the message was sent to (its real topic, not the timer topic).
    pub topic: String,
    /// The broker that holds it: a recall goes to this broker's master.
    pub broker_name: String,
    /// When the message is due, in epoch milliseconds: a recall after it fails.
    pub deliver_time_ms: u64,
    /// The message's id (`UNIQ_KEY`), which a successful recall answers.
    pub msg_id: String,
}

/// Why a recall handle cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecallHandleError {
    /// The handle is empty.
    #[error("recall handle is empty")]
    Empty,
    /// The handle is not URL-safe Base64.
    #[error("recall handle is not URL-safe Base64")]
    NotBase64,
    /// The decoded handle is not UTF-8 text.
    #[error("recall handle is not UTF-8 text")]
    NotUtf8,
    /// The first part is not `v1`.
    #[error("recall handle version {0:?} is not supported (expected \"v1\")")]
    UnsupportedVersion(String),
    /// Fewer than five space-separated parts.
    #[error("recall handle has {found} parts, expected 5 (v1 topic brokerName timestamp msgId)")]
    MissingParts {
        /// The parts found.
        found: usize,
    },
    /// A part is empty (two spaces in a row).
    #[error("recall handle has an empty {0}")]
    EmptyPart(&'static str),
    /// The timestamp is not a number of milliseconds.
    #[error("recall handle timestamp {0:?} is not a number of milliseconds")]
    BadTimestamp(String),
}

impl RecallHandle {
    /// Decodes a handle as Java's `RecallMessageHandle.decodeHandle` does, with typed errors, and
    /// also refuses what Java lets through for the broker to refuse (empty parts, a timestamp that
    /// is not a number).
    ///
    /// # Errors
    /// A [`RecallHandleError`] naming what is wrong.
    pub fn decode(handle: &str) -> Result<Self, RecallHandleError> {
        if handle.is_empty() {
            return Err(RecallHandleError::Empty);
        }
        let raw = LENIENT
            .decode(handle.as_bytes())
            .map_err(|_| RecallHandleError::NotBase64)?;
        let text = String::from_utf8(raw).map_err(|_| RecallHandleError::NotUtf8)?;
        let mut parts: Vec<&str> = text.split(' ').collect();
        // Java's String.split drops trailing empty strings.
        while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        if parts[0] != VERSION_1 {
            return Err(RecallHandleError::UnsupportedVersion(parts[0].to_owned()));
        }
        let [_, topic, broker_name, timestamp, msg_id, ..] = parts[..] else {
            return Err(RecallHandleError::MissingParts { found: parts.len() });
        };
        for (name, part) in [
            ("topic", topic),
            ("broker name", broker_name),
            ("timestamp", timestamp),
            ("message id", msg_id),
        ] {
            if part.is_empty() {
                return Err(RecallHandleError::EmptyPart(name));
            }
        }
        let deliver_time_ms = timestamp
            .parse()
            .map_err(|_| RecallHandleError::BadTimestamp(timestamp.to_owned()))?;
        Ok(Self {
            topic: topic.to_owned(),
            broker_name: broker_name.to_owned(),
            deliver_time_ms,
            msg_id: msg_id.to_owned(),
        })
    }

    /// The handle text, as Java's `HandleV1.buildHandle` writes it (padded URL-safe Base64).
    #[must_use]
    pub fn encode(&self) -> String {
        PADDED.encode(self.to_string())
    }
}

impl fmt::Display for RecallHandle {
    /// The decoded text: `v1 topic brokerName timestamp msgId`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION_1} {} {} {} {}",
            self.topic, self.broker_name, self.deliver_time_ms, self.msg_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        PADDED.encode(text)
    }

    #[test]
    fn java_encoding_is_padded_url_safe_base64() {
        // Java: Base64.getUrlEncoder().encodeToString("v1 topic broker-0 1707111111111 msgId")
        // (the rocketmq-rust broker's doc example decodes this same text).
        let h = RecallHandle {
            topic: "topic".into(),
            broker_name: "broker-0".into(),
            deliver_time_ms: 1_707_111_111_111,
            msg_id: "msgId".into(),
        };
        assert_eq!(
            h.encode(),
            "djEgdG9waWMgYnJva2VyLTAgMTcwNzExMTExMTExMSBtc2dJZA=="
        );
        // URL-safe alphabet: '-' and '_' where standard Base64 has '+' and '/'.
        let odd = RecallHandle {
            msg_id: "\u{3ff}\u{3ff}?".into(),
            ..h
        };
        let text = odd.encode();
        assert!(!text.contains('+') && !text.contains('/'), "{text}");
        assert_eq!(RecallHandle::decode(&text), Ok(odd));
    }

    #[test]
    fn decode_table() {
        use RecallHandleError as E;
        let ok = |topic: &str, broker: &str, ts: u64, id: &str| {
            Ok(RecallHandle {
                topic: topic.into(),
                broker_name: broker.into(),
                deliver_time_ms: ts,
                msg_id: id.into(),
            })
        };
        let cases: Vec<(String, Result<RecallHandle, E>)> = vec![
            (
                b64("v1 T broker-a 1700000000000 ID1"),
                ok("T", "broker-a", 1_700_000_000_000, "ID1"),
            ),
            // Unpadded (Java's decoder takes it) and trailing spaces (Java's split drops them).
            (
                b64("v1 T b 5 ID").trim_end_matches('=').to_owned(),
                ok("T", "b", 5, "ID"),
            ),
            (b64("v1 T b 5 ID  "), ok("T", "b", 5, "ID")),
            // Extra parts are ignored, as Java does.
            (b64("v1 T b 5 ID extra"), ok("T", "b", 5, "ID")),
            (String::new(), Err(E::Empty)),
            ("not base64!".into(), Err(E::NotBase64)),
            ("djE+".into(), Err(E::NotBase64)), // standard alphabet, not URL-safe
            (PADDED.encode([0xFF, 0xFE]), Err(E::NotUtf8)),
            (b64("v2 T b 5 ID"), Err(E::UnsupportedVersion("v2".into()))),
            (b64(" "), Err(E::UnsupportedVersion(String::new()))),
            (b64("v1 T b 5"), Err(E::MissingParts { found: 4 })),
            (b64("v1"), Err(E::MissingParts { found: 1 })),
            (b64("v1  b 5 ID"), Err(E::EmptyPart("topic"))),
            (b64("v1 T  5 ID"), Err(E::EmptyPart("broker name"))),
            (b64("v1 T b 5  ID"), Err(E::EmptyPart("message id"))),
            (b64("v1 T b soon ID"), Err(E::BadTimestamp("soon".into()))),
            (b64("v1 T b -5 ID"), Err(E::BadTimestamp("-5".into()))),
        ];
        for (handle, want) in cases {
            assert_eq!(RecallHandle::decode(&handle), want, "{handle:?}");
        }
    }
}
