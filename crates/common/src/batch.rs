//! Batch message body (`MessageDecoder.encodeMessages`, `MessageBatch` rules; PROTOCOL §5).
//!
//! The body of `SEND_BATCH_MESSAGE` (320) is the concatenation of one record per message:
//!
//! ```text
//! totalSize i32 (= 20 + bodyLen + 2 + propLen) | magicCode i32 = 0 | bodyCRC i32 = 0 |
//! flag i32 | bodyLen i32 | body | propLen i16 | properties (UTF-8)
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Message, Properties};

/// The topic prefix of retry topics, which may not be batched.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";

/// Fixed bytes of one record besides body and properties.
const RECORD_OVERHEAD: usize = 4 + 4 + 4 + 4 + 4 + 2;

/// A batch could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// No message at all.
    #[error("a batch needs at least one message")]
    Empty,
    /// The messages do not all have the same topic.
    #[error("the topic of the messages in one batch should be the same: `{first}` and `{other}`")]
    MixedTopics {
        /// The first message's topic.
        first: String,
        /// The first differing topic.
        other: String,
    },
    /// The messages do not all have the same `WAIT` value.
    #[error("the waitStoreMsgOK of the messages in one batch should be the same")]
    MixedWaitStoreMsgOk,
    /// A message has a delay level.
    #[error("delayed messages (message {index}) are not supported for batching")]
    DelayNotSupported {
        /// Index of the message in the batch.
        index: usize,
    },
    /// A message has a timer property (`TIMER_DELIVER_MS`, `TIMER_DELAY_MS`,
    /// `TIMER_DELAY_SEC`): brokers ignore it inside a batch and deliver the message at once.
    #[error("timer messages (message {index}) are not supported for batching")]
    TimerNotSupported {
        /// Index of the message in the batch.
        index: usize,
    },
    /// The topic is a `%RETRY%` topic.
    #[error("retry group topic `{topic}` is not supported for batching")]
    RetryTopic {
        /// The topic.
        topic: String,
    },
    /// A message's encoded properties do not fit the i16 length field.
    #[error("message {index}: properties are {len} bytes, more than 32767")]
    PropertiesTooLong {
        /// Index of the message in the batch.
        index: usize,
        /// Encoded length.
        len: usize,
    },
    /// A body does not fit the i32 length field.
    #[error("message {index}: body of {len} bytes is too large")]
    BodyTooLarge {
        /// Index of the message in the batch.
        index: usize,
        /// Body length.
        len: usize,
    },
    /// The body ends inside a record.
    #[error("batch record at byte {offset} is truncated")]
    Truncated {
        /// Start of the broken record.
        offset: usize,
    },
    /// A length field is negative or inconsistent with the record size.
    #[error("batch record at byte {offset} has an inconsistent {field}")]
    BadLength {
        /// Start of the broken record.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
}

/// Checks Java's batch rules (`MessageBatch.generateFromList`, `DefaultMQProducer.batch`):
/// at least one message, one topic, not a `%RETRY%` topic, one `WAIT` value, no delay level;
/// and no timer property (Java lets it through, and brokers then deliver the message at once).
///
/// # Errors
/// The first rule broken, as a [`BatchError`].
///
/// ```
/// use rmq_common::batch::{check_batch, BatchError};
/// use rmq_common::Message;
/// assert_eq!(check_batch(&[Message::new("T", "a"), Message::new("T", "b")]), Ok(()));
/// assert_eq!(
///     check_batch(&[Message::new("T", "a").with_delay_level(1)]),
///     Err(BatchError::DelayNotSupported { index: 0 })
/// );
/// assert_eq!(
///     check_batch(&[Message::new("T", "a"), Message::new("T", "b").with_delay_time_sec(5)]),
///     Err(BatchError::TimerNotSupported { index: 1 })
/// );
/// ```
pub fn check_batch(messages: &[Message]) -> Result<(), BatchError> {
    let first = messages.first().ok_or(BatchError::Empty)?;
    for (index, m) in messages.iter().enumerate() {
        if m.delay_level().is_some_and(|l| l > 0) {
            return Err(BatchError::DelayNotSupported { index });
        }
        if crate::timer::TIMER_PROPERTIES
            .iter()
            .any(|&p| m.property(p).is_some())
        {
            return Err(BatchError::TimerNotSupported { index });
        }
        if m.topic().starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            return Err(BatchError::RetryTopic {
                topic: m.topic().to_owned(),
            });
        }
        if m.topic() != first.topic() {
            return Err(BatchError::MixedTopics {
                first: first.topic().to_owned(),
                other: m.topic().to_owned(),
            });
        }
        if m.wait_store_msg_ok() != first.wait_store_msg_ok() {
            return Err(BatchError::MixedWaitStoreMsgOk);
        }
    }
    Ok(())
}

/// The bytes `msg` takes in a batch body: the fixed record fields, the body and the encoded
/// properties (set its `UNIQ_KEY` first: it is part of them).
///
/// ```
/// use rmq_common::batch::{encode_batch, record_len};
/// use rmq_common::Message;
/// let msgs = [Message::new("T", "hi").with_tags("A"), Message::new("T", "there")];
/// let total: usize = msgs.iter().map(record_len).sum();
/// assert_eq!(encode_batch(&msgs)?.len(), total);
/// # Ok::<(), rmq_common::batch::BatchError>(())
/// ```
#[must_use]
pub fn record_len(msg: &Message) -> usize {
    RECORD_OVERHEAD + msg.body().len() + msg.properties().encoded_len()
}

/// Encodes the batch body after [`check_batch`]. Bodies are written as they are (a batch is
/// never compressed); each message's properties (set `UNIQ_KEY` on each before) are encoded
/// with [`Properties::encode`].
///
/// # Errors
/// [`BatchError`] for a broken batch rule or a field too long for its length prefix.
///
/// ```
/// use rmq_common::batch::encode_batch;
/// use rmq_common::Message;
/// let body = encode_batch(&[Message::new("T", "hi")])?;
/// assert_eq!(
///     body.as_ref(),
///     b"\0\0\0\x22\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x02hi\0\x0AWAIT\x01true\x02"
/// );
/// # Ok::<(), rmq_common::batch::BatchError>(())
/// ```
pub fn encode_batch(messages: &[Message]) -> Result<Bytes, BatchError> {
    check_batch(messages)?;
    let mut props = Vec::with_capacity(messages.len());
    let mut total = 0usize;
    for (index, m) in messages.iter().enumerate() {
        let p = m.properties().encode();
        if p.len() > i16::MAX as usize {
            return Err(BatchError::PropertiesTooLong {
                index,
                len: p.len(),
            });
        }
        let len = m.body().len();
        if len > i32::MAX as usize - RECORD_OVERHEAD - p.len() {
            return Err(BatchError::BodyTooLarge { index, len });
        }
        total += RECORD_OVERHEAD + len + p.len();
        props.push(p);
    }
    let mut out = BytesMut::with_capacity(total);
    for (m, p) in messages.iter().zip(&props) {
        let body = m.body();
        // Lengths were bounded above, so these conversions are exact.
        out.put_i32((RECORD_OVERHEAD + body.len() + p.len()) as i32);
        out.put_i32(0); // magic code
        out.put_i32(0); // body CRC
        out.put_i32(m.flag());
        out.put_i32(body.len() as i32);
        out.put_slice(body);
        out.put_i16(p.len() as i16);
        out.put_slice(p.as_bytes());
    }
    Ok(out.freeze())
}

/// Splits a batch body into its messages (`MessageDecoder.decodeMessages`), as a broker does.
///
/// Records carry no topic: the messages come back with an empty topic, to be set from the
/// request header. Bodies are zero-copy slices of `body`; properties are decoded with
/// [`Properties::decode`] (invalid UTF-8 is replaced, as Java's `new String` does).
///
/// # Errors
/// [`BatchError::Truncated`] or [`BatchError::BadLength`] for a malformed body.
///
/// ```
/// use rmq_common::batch::{decode_batch, encode_batch};
/// use rmq_common::Message;
/// let msgs = vec![Message::new("T", "a").with_tags("x"), Message::new("T", "b")];
/// let back = decode_batch(encode_batch(&msgs)?)?;
/// assert_eq!(back.len(), 2);
/// assert_eq!(back[0].tags(), Some("x"));
/// assert_eq!(back[1].body().as_ref(), b"b");
/// # Ok::<(), rmq_common::batch::BatchError>(())
/// ```
pub fn decode_batch(mut body: Bytes) -> Result<Vec<Message>, BatchError> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while body.has_remaining() {
        if body.remaining() < RECORD_OVERHEAD {
            return Err(BatchError::Truncated { offset });
        }
        let total = body.get_i32();
        let total = usize::try_from(total)
            .ok()
            .filter(|&t| t >= RECORD_OVERHEAD)
            .ok_or(BatchError::BadLength {
                offset,
                field: "totalSize",
            })?;
        if body.remaining() < total - 4 {
            return Err(BatchError::Truncated { offset });
        }
        let mut rec = body.split_to(total - 4);
        let _magic = rec.get_i32();
        let _crc = rec.get_i32();
        let flag = rec.get_i32();
        let body_len = usize::try_from(rec.get_i32())
            .ok()
            .filter(|&l| l + 2 <= rec.remaining())
            .ok_or(BatchError::BadLength {
                offset,
                field: "bodyLen",
            })?;
        let msg_body = rec.split_to(body_len);
        let prop_len = usize::try_from(rec.get_i16())
            .ok()
            .filter(|&l| l == rec.remaining())
            .ok_or(BatchError::BadLength {
                offset,
                field: "propertiesLength",
            })?;
        let props = Properties::decode(&String::from_utf8_lossy(&rec[..prop_len]));
        out.push(Message::from_parts(String::new(), flag, msg_body, props));
        offset += total;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_table() {
        let m = |t: &str| Message::new(t, "x");
        let cases: Vec<(Vec<Message>, Option<BatchError>)> = vec![
            (vec![], Some(BatchError::Empty)),
            (vec![m("T"), m("T")], None),
            (
                vec![m("T"), m("U")],
                Some(BatchError::MixedTopics {
                    first: "T".into(),
                    other: "U".into(),
                }),
            ),
            (
                vec![m("T"), m("T").with_wait_store_msg_ok(false)],
                Some(BatchError::MixedWaitStoreMsgOk),
            ),
            (
                vec![m("T"), m("T").with_delay_level(2)],
                Some(BatchError::DelayNotSupported { index: 1 }),
            ),
            (
                vec![m("%RETRY%g")],
                Some(BatchError::RetryTopic {
                    topic: "%RETRY%g".into(),
                }),
            ),
        ];
        for (msgs, want) in cases {
            assert_eq!(check_batch(&msgs).err(), want);
            assert_eq!(encode_batch(&msgs).err(), want);
        }
    }

    #[test]
    fn too_long_properties_are_refused() {
        let mut msg = Message::new("T", "x");
        msg.properties_mut().insert("big", "v".repeat(40_000));
        assert!(matches!(
            encode_batch(&[msg]),
            Err(BatchError::PropertiesTooLong { index: 0, .. })
        ));
    }

    #[test]
    fn malformed_bodies() {
        let good = encode_batch(&[Message::new("T", "hi")]).expect("encode");
        for cut in 1..good.len() {
            assert!(decode_batch(good.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut bad = good.to_vec();
        bad[3] = 0x10; // totalSize below the fixed overhead
        assert_eq!(
            decode_batch(bad.into()),
            Err(BatchError::BadLength {
                offset: 0,
                field: "totalSize"
            })
        );
        let mut bad = good.to_vec();
        bad[19] = 0x30; // bodyLen past the record
        assert_eq!(
            decode_batch(bad.into()),
            Err(BatchError::BadLength {
                offset: 0,
                field: "bodyLen"
            })
        );
        assert_eq!(decode_batch(Bytes::new()), Ok(vec![]));
    }
}
