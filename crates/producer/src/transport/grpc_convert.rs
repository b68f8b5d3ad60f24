//! A prepared message ([`Outgoing`]) as `apache.rocketmq.v2.Message`s (the 5.x clients'
//! `PublishingMessageImpl.toProtobuf`).
//!
//! The remoting properties split into the protobuf's system properties and user properties:
//! `UNIQ_KEY` is the message id, `TAGS` the tag, `KEYS` the keys, `__SHARDINGKEY` the message
//! group (a FIFO message), `TRACE_CONTEXT` the trace context, `TRAN_MSG` the transaction type,
//! and the delay properties (`DELAY` level, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`,
//! `TIMER_DELIVER_MS`) one delivery timestamp (a DELAY message). `WAIT` has no gRPC
//! counterpart and `PGROUP` is the proxy's to set (from the client's group): both are dropped; every other property travels as a user property. A batch is its
//! messages, each with its own id. Queue ids are written explicitly (queue 0 included) for
//! sends pinned to a queue; other sends leave the queue to the proxy.

use bytes::Bytes;
use rmq_common::compression::CompressionType;
use rmq_common::{batch, property, sysflag, Properties};
use rmq_grpc::pb;

use crate::kernel::Outgoing;

/// The delay of each `DELAY` level (1-based), the broker's default `messageDelayLevel`.
const DELAY_LEVELS_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// What the conversion needs besides the message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The queue id, for a send pinned to a queue.
    pub(crate) queue_id: Option<i32>,
    /// Epoch milliseconds now (born timestamp, relative delays).
    pub(crate) now_ms: u64,
    /// The client host (`born_host`).
    pub(crate) born_host: &'a str,
}

/// Why a prepared message cannot be sent over gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConvertError {
    /// The batch body does not decode.
    Batch(String),
    /// The compressed body does not inflate.
    Body(String),
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Batch(e) => write!(f, "batch cannot be split for gRPC: {e}"),
            Self::Body(e) => write!(f, "compressed body cannot be inflated for gRPC: {e}"),
        }
    }
}

/// The protobuf messages of `out`: one, or a batch's messages.
pub(crate) fn to_pb(out: &Outgoing, cx: Context<'_>) -> Result<Vec<pb::Message>, ConvertError> {
    if out.is_batch() {
        let msgs = batch::decode_batch(out.body.clone())
            .map_err(|e| ConvertError::Batch(e.to_string()))?;
        return Ok(msgs
            .iter()
            // The batch records carry no topic: the batch's is every message's.
            .map(|m| one(out.topic(), m.properties(), m.body().clone(), cx))
            .collect());
    }
    let body = if out.sys_flag & sysflag::COMPRESSED_FLAG != 0 {
        let ty = CompressionType::from_sys_flag(out.sys_flag)
            .map_err(|e| ConvertError::Body(e.to_string()))?;
        Bytes::from(
            ty.decompress(&out.body, usize::MAX)
                .map_err(|e| ConvertError::Body(e.to_string()))?,
        )
    } else {
        out.body.clone()
    };
    let props = Properties::decode(&out.properties);
    Ok(vec![one(out.topic(), &props, body, cx)])
}

fn timestamp(ms: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

/// When a message with these properties is due (epoch ms), if it is delayed.
pub(crate) fn delivery_ms(props: &Properties, now_ms: u64) -> Option<u64> {
    let num = |name| props.get(name).and_then(|v| v.parse::<u64>().ok());
    if let Some(at) = num(property::TIMER_DELIVER_MS) {
        return Some(at);
    }
    if let Some(ms) = num(property::TIMER_DELAY_MS) {
        return Some(now_ms.saturating_add(ms));
    }
    if let Some(s) = num(property::TIMER_DELAY_SEC) {
        return Some(now_ms.saturating_add(s.saturating_mul(1000)));
    }
    let level = usize::try_from(num(property::DELAY)?).ok()?;
    let delay = DELAY_LEVELS_MS
        .get(level.checked_sub(1)?)
        .copied()
        .unwrap_or(DELAY_LEVELS_MS[17]);
    Some(now_ms.saturating_add(delay))
}

/// Properties that become system properties (or are dropped) instead of user properties.
fn is_system(name: &str) -> bool {
    matches!(
        name,
        property::UNIQ_KEY
            | property::TAGS
            | property::KEYS
            | property::SHARDING_KEY
            | property::TRACE_CONTEXT
            | property::TRAN_MSG
            | property::WAIT
            | property::PGROUP
            | property::DELAY
            | property::TIMER_DELAY_SEC
            | property::TIMER_DELAY_MS
            | property::TIMER_DELIVER_MS
    )
}

fn one(topic: &str, props: &Properties, body: Bytes, cx: Context<'_>) -> pb::Message {
    let group = props
        .get(property::SHARDING_KEY)
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    let deliver = delivery_ms(props, cx.now_ms);
    let transactional = props
        .get(property::TRAN_MSG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let message_type = if transactional {
        pb::MessageType::Transaction
    } else if deliver.is_some() {
        pb::MessageType::Delay
    } else if group.is_some() {
        pb::MessageType::Fifo
    } else {
        pb::MessageType::Normal
    };
    let user_properties = props
        .iter()
        .filter(|(k, _)| !is_system(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let system = pb::SystemProperties {
        tag: props.get(property::TAGS).map(str::to_owned),
        keys: props
            .get(property::KEYS)
            .map(|k| {
                k.split(property::KEY_SEPARATOR)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        message_id: props.get(property::UNIQ_KEY).unwrap_or_default().to_owned(),
        body_encoding: pb::Encoding::Identity as i32,
        message_type: message_type as i32,
        born_timestamp: Some(timestamp(cx.now_ms)),
        born_host: cx.born_host.to_owned(),
        delivery_timestamp: if transactional {
            None
        } else {
            deliver.map(timestamp)
        },
        queue_id: cx.queue_id,
        // A FIFO group and a delay cannot go together (the proxy refuses both): the delay wins,
        // as the broker's timer would break the order anyway.
        message_group: if transactional || deliver.is_some() {
            None
        } else {
            group
        },
        trace_context: props.get(property::TRACE_CONTEXT).map(str::to_owned),
        ..Default::default()
    };
    pb::Message {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: topic.to_owned(),
        }),
        user_properties,
        system_properties: Some(system),
        body,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use rmq_common::Message;

    use super::*;
    use crate::config::ProducerConfig;
    use crate::kernel::{prepare_batch, prepare_single};

    const NOW: u64 = 1_700_000_000_000;

    fn prop(mut msg: Message, name: &str, value: &str) -> Message {
        msg.properties_mut().insert(name, value);
        msg
    }

    fn cx(queue_id: Option<i32>) -> Context<'static> {
        Context {
            queue_id,
            now_ms: NOW,
            born_host: "10.0.0.1",
        }
    }

    fn convert(mut msg: Message, queue_id: Option<i32>) -> pb::Message {
        let cfg = ProducerConfig::default();
        let out = prepare_single(&mut msg, &cfg, &mut || "ID1".to_owned());
        let mut v = to_pb(&out, cx(queue_id)).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn message_types_from_properties() {
        let table: [(Message, pb::MessageType, Option<u64>, Option<&str>); 7] = [
            (Message::new("T", "b"), pb::MessageType::Normal, None, None),
            (
                prop(Message::new("T", "b"), property::SHARDING_KEY, "g1"),
                pb::MessageType::Fifo,
                None,
                Some("g1"),
            ),
            (
                Message::new("T", "b").with_delay_time_ms(5_000),
                pb::MessageType::Delay,
                Some(NOW + 5_000),
                None,
            ),
            (
                Message::new("T", "b").with_deliver_time_ms(NOW + 7),
                pb::MessageType::Delay,
                Some(NOW + 7),
                None,
            ),
            (
                prop(Message::new("T", "b"), property::TIMER_DELAY_SEC, "3"),
                pb::MessageType::Delay,
                Some(NOW + 3_000),
                None,
            ),
            (
                prop(Message::new("T", "b"), property::DELAY, "3"),
                pb::MessageType::Delay,
                Some(NOW + 10_000),
                None,
            ),
            (
                prop(Message::new("T", "b"), property::TRAN_MSG, "true"),
                pb::MessageType::Transaction,
                None,
                None,
            ),
        ];
        for (msg, ty, at, group) in table {
            let what = format!("{:?}", msg.properties());
            let m = convert(msg, None);
            let sys = m.system_properties.unwrap();
            assert_eq!(sys.message_type, ty as i32, "{what}");
            assert_eq!(
                sys.delivery_timestamp.map(|t| u64::try_from(
                    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
                )
                .unwrap()),
                at,
                "{what}"
            );
            assert_eq!(sys.message_group.as_deref(), group, "{what}");
            assert!(
                m.user_properties.is_empty(),
                "{what}: {:?}",
                m.user_properties
            );
        }
    }

    #[test]
    fn system_and_user_properties_split() {
        let msg = Message::new("T", "body")
            .with_tags("TagA")
            .with_keys(["k1", "k2"]);
        let msg = prop(msg, "color", "red");
        let m = convert(msg, Some(0));
        let sys = m.system_properties.as_ref().unwrap();
        assert_eq!(sys.tag.as_deref(), Some("TagA"));
        assert_eq!(sys.keys, ["k1", "k2"]);
        assert_eq!(sys.message_id, "ID1");
        assert_eq!(sys.born_host, "10.0.0.1");
        assert_eq!(sys.queue_id, Some(0));
        assert_eq!(m.user_properties.len(), 1);
        assert_eq!(m.user_properties["color"], "red");
        assert_eq!(&m.body[..], b"body");
        assert_eq!(m.topic.as_ref().unwrap().name, "T");
        // Queue 0 is on the wire: field 13, varint 0 (0x68 0x00) inside the system properties.
        let bytes = sys.encode_to_vec();
        assert!(bytes.windows(2).any(|w| w == [0x68, 0x00]), "{bytes:02x?}");
        let none = convert(Message::new("T", "b"), None);
        let bytes = none.system_properties.unwrap().encode_to_vec();
        assert!(!bytes.windows(2).any(|w| w == [0x68, 0x00]));
    }

    #[test]
    fn a_batch_is_its_messages_with_their_own_ids() {
        let mut msgs = vec![
            Message::new("T", "a").with_tags("x"),
            prop(Message::new("T", "b"), "p", "1"),
        ];
        let mut n = 0;
        let out = prepare_batch(&mut msgs, &mut || {
            n += 1;
            format!("ID{n}")
        })
        .unwrap();
        let v = to_pb(&out, cx(None)).unwrap();
        assert_eq!(v.len(), 2);
        let ids: Vec<_> = v
            .iter()
            .map(|m| m.system_properties.as_ref().unwrap().message_id.clone())
            .collect();
        assert_eq!(ids, ["ID1", "ID2"]);
        assert_eq!(&v[0].body[..], b"a");
        assert_eq!(v[1].user_properties["p"], "1");
        assert!(v.iter().all(|m| m.topic.as_ref().unwrap().name == "T"));
    }

    #[test]
    fn compressed_bodies_are_sent_inflated() {
        let cfg = ProducerConfig {
            compress_threshold: 10,
            ..ProducerConfig::default()
        };
        let body = "x".repeat(1000);
        let mut msg = Message::new("T", body.clone());
        let out = prepare_single(&mut msg, &cfg, &mut || "ID".to_owned());
        assert_ne!(out.sys_flag & sysflag::COMPRESSED_FLAG, 0);
        let v = to_pb(&out, cx(None)).unwrap();
        assert_eq!(&v[0].body[..], body.as_bytes());
    }
}
