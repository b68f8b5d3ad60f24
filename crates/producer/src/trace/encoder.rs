//! Java's `TraceDataEncoder.encoderFromContextBean` and `AsyncTraceDispatcher.flushData`: the
//! text of a record (fields split by `\u{1}`, each record ended by `\u{2}`, absent strings
//! written `null` as Java's `StringBuilder.append` writes them) and how records of one topic
//! are packed into trace messages with their keys.

use std::fmt::Write as _;

use super::record::{EndTxRecord, MsgType, PubRecord, TraceRecord};

/// Between the fields of a record (Java `TraceConstants.CONTENT_SPLITOR`).
pub(crate) const CONTENT_SPLITOR: char = '\u{1}';

/// After each record (Java `TraceConstants.FIELD_SPLITOR`).
pub(crate) const FIELD_SPLITOR: char = '\u{2}';

/// The keys of one trace message at most, in bytes: the broker limits a message's properties.
const MAX_KEYS_BYTES: usize = 16 * 1024;

/// Appends `record`'s text to `buf`.
pub(crate) fn encode(record: &TraceRecord, buf: &mut String) {
    match record {
        TraceRecord::Pub(r) => encode_pub(r, buf),
        TraceRecord::EndTransaction(r) => encode_end(r, buf),
    }
}

/// Writes the fields, each followed by its separator, the last by [`FIELD_SPLITOR`].
fn fields(buf: &mut String, fields: &[&dyn std::fmt::Display]) {
    let last = fields.len().saturating_sub(1);
    for (i, field) in fields.iter().enumerate() {
        // Writing to a String cannot fail.
        let _ = write!(buf, "{field}");
        buf.push(if i == last {
            FIELD_SPLITOR
        } else {
            CONTENT_SPLITOR
        });
    }
}

/// Java's `null` for an absent string.
fn or_null(s: Option<&str>) -> &str {
    s.unwrap_or("null")
}

fn ordinal(t: MsgType) -> u8 {
    t.ordinal()
}

/// Java's `int` cost time (a cast of the milliseconds).
fn cost(ms: i64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

fn encode_pub(r: &PubRecord, buf: &mut String) {
    fields(
        buf,
        &[
            &"Pub",
            &r.timestamp_ms,
            &r.region,
            &r.group,
            &r.topic,
            &r.msg_id,
            &or_null(r.tags.as_deref()),
            &or_null(r.keys.as_deref()),
            &r.store_host,
            &r.body_length,
            &cost(r.cost_ms),
            &ordinal(r.msg_type),
            &r.offset_msg_id,
            &r.success,
        ],
    );
}

fn encode_end(r: &EndTxRecord, buf: &mut String) {
    fields(
        buf,
        &[
            &"EndTransaction",
            &r.timestamp_ms,
            &r.region,
            &r.group,
            &r.topic,
            &r.msg_id,
            &or_null(r.tags.as_deref()),
            &or_null(r.keys.as_deref()),
            &r.store_host,
            &ordinal(MsgType::TransCommit),
            &or_null(r.transaction_id.as_deref()),
            &r.state.as_str(),
            &r.from_check,
        ],
    );
}

/// The keys a record is found by (Java `TraceTransferBean.transKey`): its message id, then its
/// message's keys (split at spaces). A batch's ids, joined by `,` in its record, are keys each
/// (Java keeps the joined text as one key, which no id lookup finds).
pub(crate) fn keys_of(record: &TraceRecord) -> impl Iterator<Item = &str> {
    let (id, keys) = match record {
        TraceRecord::Pub(r) => (&r.msg_id, r.keys.as_deref()),
        TraceRecord::EndTransaction(r) => (&r.msg_id, r.keys.as_deref()),
    };
    id.split(',')
        .chain(keys.into_iter().flat_map(|k| k.split(' ')))
        .filter(|k| !k.is_empty())
}

/// One trace message: its body and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceMessage {
    /// The records' texts, one after the other.
    pub(crate) body: String,
    /// Distinct keys, in record order (ids first).
    pub(crate) keys: Vec<String>,
    /// How many records the body holds.
    pub(crate) records: usize,
}

impl TraceMessage {
    fn new() -> Self {
        Self {
            body: String::new(),
            keys: Vec::new(),
            records: 0,
        }
    }

    fn add_keys(&mut self, record: &TraceRecord) {
        let mut len: usize = self.keys.iter().map(|k| k.len() + 1).sum();
        for key in keys_of(record) {
            if len + key.len() + 1 > MAX_KEYS_BYTES {
                break;
            }
            if !self.keys.iter().any(|k| k == key) {
                len += key.len() + 1;
                self.keys.push(key.to_owned());
            }
        }
    }
}

/// Packs `records` into trace messages (Java's `sendTraceData` + `flushData`): the records of
/// one topic together, in order, topics in the order they first appear; a message is closed
/// before a record would take its body over `max_body` bytes (Java closes it once it is over,
/// which its own size check then refuses), so only a single record larger than `max_body` makes
/// a larger message.
pub(crate) fn pack(records: &[TraceRecord], max_body: usize) -> Vec<TraceMessage> {
    let mut topics: Vec<&str> = Vec::new();
    for r in records {
        if !topics.contains(&r.topic()) {
            topics.push(r.topic());
        }
    }
    let mut out = Vec::new();
    let mut text = String::with_capacity(256);
    for topic in topics {
        let mut msg = TraceMessage::new();
        for r in records.iter().filter(|r| r.topic() == topic) {
            text.clear();
            encode(r, &mut text);
            if msg.records > 0 && msg.body.len() + text.len() > max_body {
                out.push(std::mem::replace(&mut msg, TraceMessage::new()));
            }
            msg.body.push_str(&text);
            msg.add_keys(r);
            msg.records += 1;
        }
        if msg.records > 0 {
            out.push(msg);
        }
    }
    out
}
