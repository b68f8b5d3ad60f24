//! Trace records (Java's `TraceContext` + `TraceBean` of the producer side) and how a send or a
//! transaction end becomes one (Java's `SendMessageTraceHookImpl`,
//! `EndTransactionTraceHookImpl`). Pure: the caller passes the clock.

use std::time::Duration;

// The region when the broker names none (Java `MixAll.DEFAULT_TRACE_REGION_ID`).
use rmq_common::header::send::DEFAULT_REGION;
use rmq_common::namespace::without_any;
use rmq_common::{property, Properties};

use crate::kernel::Outgoing;
use crate::send_result::SendResult;
use crate::transaction::TransactionState;

/// The traced message's type (Java `MessageType`): its ordinal goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsgType {
    /// `Normal_Msg`.
    Normal = 0,
    /// `Trans_Msg_Half`: a half message.
    TransHalf = 1,
    /// `Trans_msg_Commit`: every `EndTransaction` record (commit or not, as Java).
    TransCommit = 2,
    /// `Delay_Msg`.
    Delay = 3,
    /// `Order_Msg` (never produced by Java's remoting producer, nor here; kept for the ordinal).
    #[allow(dead_code)]
    Order = 4,
}

impl MsgType {
    /// Java's `ordinal()`.
    pub(crate) fn ordinal(self) -> u8 {
        self as u8
    }
}

/// A `Pub` record: one stored send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PubRecord {
    /// When the attempt began, epoch ms.
    pub(crate) timestamp_ms: i64,
    pub(crate) region: String,
    /// The producer group, out of its namespace.
    pub(crate) group: String,
    /// The topic, out of its namespace.
    pub(crate) topic: String,
    /// `SendResult.msgId` (a batch: the inner ids joined by `,`).
    pub(crate) msg_id: String,
    /// `None` is written `null`, as Java's `StringBuilder` does.
    pub(crate) tags: Option<String>,
    pub(crate) keys: Option<String>,
    /// The broker address the attempt went to.
    pub(crate) store_host: String,
    /// The body as sent (compressed, or the encoded batch), as Java's hook reads it.
    pub(crate) body_length: usize,
    pub(crate) cost_ms: i64,
    pub(crate) msg_type: MsgType,
    pub(crate) offset_msg_id: String,
    /// `SEND_OK`.
    pub(crate) success: bool,
}

/// An `EndTransaction` record: a transaction ended by this producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndTxRecord {
    pub(crate) timestamp_ms: i64,
    pub(crate) region: String,
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) msg_id: String,
    pub(crate) tags: Option<String>,
    pub(crate) keys: Option<String>,
    /// The broker the end went to.
    pub(crate) store_host: String,
    /// `None` is written `null`.
    pub(crate) transaction_id: Option<String>,
    pub(crate) state: TransactionState,
    pub(crate) from_check: bool,
}

/// One record of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TraceRecord {
    /// A stored send.
    Pub(Box<PubRecord>),
    /// A transaction's end.
    EndTransaction(Box<EndTxRecord>),
}

impl TraceRecord {
    /// The topic of the traced message (records of one topic share trace messages).
    pub(crate) fn topic(&self) -> &str {
        match self {
            Self::Pub(r) => &r.topic,
            Self::EndTransaction(r) => &r.topic,
        }
    }
}

/// The properties that make a message a delayed one: a delay level or Java's
/// `__STARTDELIVERTIME` (Java's hook), and the 5.x timer properties (beyond Java's hook).
const DELAYED: [&str; 5] = [
    "__STARTDELIVERTIME",
    property::DELAY,
    property::TIMER_DELIVER_MS,
    property::TIMER_DELAY_SEC,
    property::TIMER_DELAY_MS,
];

/// The type of a message with the encoded properties `props` (Java's `sendKernelImpl`):
/// `TRAN_MSG=true` is a half message, a delayed one ([`DELAYED`]) is `Delay`.
pub(crate) fn msg_type_of(props: &str) -> MsgType {
    let mut half = false;
    for (k, v) in pairs(props) {
        if DELAYED.contains(&k) {
            return MsgType::Delay;
        }
        half |= k == property::TRAN_MSG && v == "true";
    }
    if half {
        MsgType::TransHalf
    } else {
        MsgType::Normal
    }
}

/// The pairs of encoded properties (`k\u{1}v\u{2}`...), without building a map.
fn pairs(encoded: &str) -> impl Iterator<Item = (&str, &str)> + Clone {
    encoded
        .split('\u{2}')
        .filter_map(|pair| pair.split_once('\u{1}'))
}

/// One property of encoded properties.
fn get<'a>(encoded: &'a str, name: &str) -> Option<&'a str> {
    pairs(encoded).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The `Pub` record of an attempt of `out` by `group` (unwrapped here) to `store_host`
/// that began `cost` before `now_ms` and was answered `result`; `None` when the broker has
/// tracing off (`TRACE_ON=false`).
pub(crate) fn pub_record(
    group: &str,
    out: &Outgoing,
    store_host: Option<&str>,
    cost: Duration,
    now_ms: i64,
    result: &SendResult,
) -> Option<PubRecord> {
    if !result.trace_on {
        return None;
    }
    let props: &str = &out.properties;
    let cost_ms = i64::try_from(cost.as_millis()).unwrap_or(i64::MAX);
    let region = if result.region_id.is_empty() {
        DEFAULT_REGION.to_owned()
    } else {
        result.region_id.to_string()
    };
    Some(PubRecord {
        timestamp_ms: now_ms.saturating_sub(cost_ms),
        region,
        group: without_any(group).into_owned(),
        topic: without_any(out.topic()).into_owned(),
        msg_id: result.msg_id.clone(),
        tags: get(props, property::TAGS).map(str::to_owned),
        keys: get(props, property::KEYS).map(str::to_owned),
        store_host: store_host.unwrap_or_default().to_owned(),
        body_length: out.body.len(),
        cost_ms,
        msg_type: msg_type_of(props),
        offset_msg_id: result.offset_msg_id.clone(),
        success: result.status.is_ok(),
    })
}

/// What an `EndTransaction` record is made of (Java's `EndTransactionContext`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndTx<'a> {
    /// The producer group (as on the wire; unwrapped here).
    pub(crate) group: &'a str,
    /// The message's topic.
    pub(crate) topic: &'a str,
    /// Its properties (tags, keys, region).
    pub(crate) props: &'a Properties,
    pub(crate) msg_id: &'a str,
    pub(crate) transaction_id: Option<&'a str>,
    pub(crate) store_host: Option<&'a str>,
    pub(crate) state: TransactionState,
    pub(crate) from_check: bool,
}

/// The `EndTransaction` record of `end` at `now_ms`: the region is the message's `MSG_REGION`
/// (a checked-back message has the broker's), else the default.
pub(crate) fn end_record(end: &EndTx<'_>, now_ms: i64) -> EndTxRecord {
    let region = end
        .props
        .get(property::MSG_REGION)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_REGION);
    EndTxRecord {
        timestamp_ms: now_ms,
        region: region.to_owned(),
        group: without_any(end.group).into_owned(),
        topic: without_any(end.topic).into_owned(),
        msg_id: end.msg_id.to_owned(),
        tags: end.props.get(property::TAGS).map(str::to_owned),
        keys: end.props.get(property::KEYS).map(str::to_owned),
        store_host: end.store_host.unwrap_or_default().to_owned(),
        transaction_id: end.transaction_id.map(str::to_owned),
        state: end.state,
        from_check: end.from_check,
    }
}
