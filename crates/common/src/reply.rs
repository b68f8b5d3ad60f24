//! Request/reply messages (Java 4.6+ `DefaultMQProducer.request`), as pure data rules.
//!
//! A *request* is a message carrying `CORRELATION_ID`, `REPLY_TO_CLIENT` (the requester's client
//! id) and `TTL`; the broker that stores it adds `CLUSTER`. A replier builds the *reply* with
//! [`create_reply_message`] (Java's `MessageUtil.createReplyMessage`): topic
//! `{CLUSTER}_REPLY_TOPIC`, `MSG_TYPE=reply`, the three request properties copied. A reply is sent
//! with `SEND_REPLY_MESSAGE_V2` (325); the broker pushes it to the requester's connection with
//! `PUSH_REPLY_MESSAGE_TO_CLIENT` (326), which the requester reads with [`reply_message_ext`]
//! (Java's `ClientRemotingProcessor.receiveReplyMessage`).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use crate::compression::{self, CompressionError};
use crate::header::reply::ReplyMessageRequestHeader;
use crate::stored::MessageExt;
use crate::{property, sysflag, Message, Properties};

/// Suffix of the reply topic of a cluster (Java's `MixAll.REPLY_TOPIC_POSTFIX`).
pub const REPLY_TOPIC_POSTFIX: &str = "REPLY_TOPIC";

/// The `MSG_TYPE` value of a reply (Java's `MixAll.REPLY_MESSAGE_FLAG`).
pub const REPLY_MESSAGE_FLAG: &str = "reply";

/// The reply topic of `cluster` (Java's `MixAll.getReplyTopic`).
///
/// ```
/// assert_eq!(rmq_common::reply::reply_topic("DefaultCluster"), "DefaultCluster_REPLY_TOPIC");
/// ```
#[must_use]
pub fn reply_topic(cluster: &str) -> String {
    format!("{cluster}_{REPLY_TOPIC_POSTFIX}")
}

/// Whether `msg` is a reply (`MSG_TYPE=reply`): such a message goes out with
/// `SEND_REPLY_MESSAGE_V2` instead of `SEND_MESSAGE_V2`, as Java's `MQClientAPIImpl` does.
///
/// ```
/// use rmq_common::{property, reply, Message};
/// let mut msg = Message::new("DefaultCluster_REPLY_TOPIC", "pong");
/// assert!(!reply::is_reply(&msg));
/// msg.properties_mut().insert(property::MSG_TYPE, reply::REPLY_MESSAGE_FLAG);
/// assert!(reply::is_reply(&msg));
/// ```
#[must_use]
pub fn is_reply(msg: &Message) -> bool {
    msg.property(property::MSG_TYPE) == Some(REPLY_MESSAGE_FLAG)
}

/// A reply cannot be built from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The message lacks a property a reply needs: `CLUSTER` (set by the broker that stored the
    /// request: a message never stored is not a request to reply to), or `REPLY_TO_CLIENT` /
    /// `CORRELATION_ID` (set by the requester: not a request).
    #[error("the request has no {0} property")]
    MissingProperty(&'static str),
}

/// Builds the reply to `request` with `body` (Java's `MessageUtil.createReplyMessage`): topic
/// `{CLUSTER}_REPLY_TOPIC`, `MSG_TYPE=reply`, and `CORRELATION_ID`, `REPLY_TO_CLIENT` and `TTL`
/// copied from the request (`TTL` only when present). Nothing else of the request is copied.
///
/// # Errors
/// [`ReplyError::MissingProperty`] when `CLUSTER`, `REPLY_TO_CLIENT` or `CORRELATION_ID` is
/// missing or empty. (Java checks only `CLUSTER` and lets the broker refuse a reply with no
/// `REPLY_TO_CLIENT`; a reply without them could never reach anyone, so it is refused here,
/// before anything is sent.)
///
/// ```
/// use rmq_common::{property, reply, Message};
/// let mut request = Message::new("Prices", "price of SKU-1?");
/// for (k, v) in [
///     (property::CLUSTER, "DefaultCluster"),
///     (property::CORRELATION_ID, "3f0c8e6a-1b7e-4c3e-9d0a-5b6f1c2d3e4f"),
///     (property::REPLY_TO_CLIENT, "10.0.0.7@12345#1"),
///     (property::TTL, "3000"),
/// ] {
///     request.properties_mut().insert(k, v);
/// }
/// let r = reply::create_reply_message(&request, "42.00")?;
/// assert_eq!(r.topic(), "DefaultCluster_REPLY_TOPIC");
/// assert!(reply::is_reply(&r));
/// assert_eq!(r.property(property::TTL), Some("3000"));
/// assert_eq!(r.body().as_ref(), b"42.00");
/// # Ok::<(), rmq_common::reply::ReplyError>(())
/// ```
pub fn create_reply_message(
    request: &Message,
    body: impl Into<Bytes>,
) -> Result<Message, ReplyError> {
    let required = |name: &'static str| {
        request
            .property(name)
            .filter(|v| !v.is_empty())
            .ok_or(ReplyError::MissingProperty(name))
    };
    let cluster = required(property::CLUSTER)?;
    let reply_to = required(property::REPLY_TO_CLIENT)?;
    let correlation_id = required(property::CORRELATION_ID)?;
    let mut props = Properties::with_capacity(4);
    props.insert(property::MSG_TYPE, REPLY_MESSAGE_FLAG);
    props.insert(property::CORRELATION_ID, correlation_id);
    props.insert(property::REPLY_TO_CLIENT, reply_to);
    if let Some(ttl) = request.property(property::TTL) {
        props.insert(property::TTL, ttl);
    }
    Ok(Message::from_parts(
        reply_topic(cluster),
        0,
        body.into(),
        props,
    ))
}

/// An `ip:port` address as brokers write hosts: `127.0.0.1:10911`, `[::1]:10911`, or Java's
/// unbracketed IPv6 form `0:0:0:0:0:0:0:1:10911` (split at the last `:`, as Java's
/// `string2SocketAddress`). `None` when it is none of these.
///
/// ```
/// use rmq_common::reply::parse_host;
/// assert_eq!(parse_host("127.0.0.1:10911"), Some("127.0.0.1:10911".parse().unwrap()));
/// assert_eq!(parse_host("0:0:0:0:0:0:0:1:10911"), Some("[::1]:10911".parse().unwrap()));
/// assert_eq!(parse_host("broker-a"), None);
/// ```
#[must_use]
pub fn parse_host(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse() {
        return Some(addr);
    }
    let (ip, port) = s.rsplit_once(':')?;
    Some(SocketAddr::new(
        ip.parse::<IpAddr>().ok()?,
        port.parse().ok()?,
    ))
}

/// The reply of a `PUSH_REPLY_MESSAGE_TO_CLIENT` as the requester gets it (Java's
/// `receiveReplyMessage`): topic, queue id, flag, born and store times and hosts (an address
/// that cannot be read stays unspecified), reconsume times, the properties with `ARRIVE_TIME` set
/// to `arrive_time_ms`, and the body, decompressed when the header's `sysFlag` says so (at most
/// `inflate_limit` bytes; the compressed bit is then cleared from the result's `sys_flag`).
///
/// # Errors
/// The body is compressed and cannot be decompressed (corrupt, over the limit, or not zlib).
///
/// ```
/// use rmq_common::header::reply::ReplyMessageRequestHeader;
/// use rmq_common::{property, reply};
/// let header = ReplyMessageRequestHeader {
///     topic: "DefaultCluster_REPLY_TOPIC".into(),
///     properties: Some("CORRELATION_ID\u{1}c-1\u{2}".into()),
///     born_host: "127.0.0.1:50312".into(),
///     store_host: "127.0.0.1:10911".into(),
///     ..Default::default()
/// };
/// let reply = reply::reply_message_ext(&header, "pong".into(), 1_700_000_000_000, 1 << 20)?;
/// assert_eq!(reply.message.property(property::CORRELATION_ID), Some("c-1"));
/// assert_eq!(reply.message.property(property::ARRIVE_TIME), Some("1700000000000"));
/// assert_eq!(reply.store_host.port(), 10911);
/// # Ok::<(), rmq_common::CompressionError>(())
/// ```
pub fn reply_message_ext(
    header: &ReplyMessageRequestHeader,
    body: Bytes,
    arrive_time_ms: i64,
    inflate_limit: usize,
) -> Result<MessageExt, CompressionError> {
    let mut sys_flag = header.sys_flag;
    let body = if sysflag::has(sys_flag, sysflag::COMPRESSED_FLAG) {
        let ty = sysflag::compression_type(sys_flag);
        if ty != sysflag::COMPRESSION_ZLIB {
            return Err(CompressionError::Unsupported(ty));
        }
        sys_flag &= !sysflag::COMPRESSED_FLAG;
        Bytes::from(compression::decompress(&body, inflate_limit)?)
    } else {
        body
    };
    let mut props = Properties::decode(header.properties.as_deref().unwrap_or(""));
    props.insert(property::ARRIVE_TIME, arrive_time_ms.to_string());
    let unspecified = MessageExt::default().born_host;
    Ok(MessageExt {
        message: Message::from_parts(header.topic.clone(), header.flag, body, props),
        queue_id: header.queue_id,
        sys_flag,
        born_timestamp: header.born_timestamp,
        born_host: parse_host(&header.born_host).unwrap_or(unspecified),
        store_timestamp: header.store_timestamp,
        store_host: parse_host(&header.store_host).unwrap_or(unspecified),
        reconsume_times: header.reconsume_times.unwrap_or(0),
        ..MessageExt::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(props: &[(&str, &str)]) -> Message {
        let mut m = Message::new("Prices", "ask").with_tags("TagA");
        for (k, v) in props {
            m.properties_mut().insert(*k, *v);
        }
        m
    }

    /// Java's `MessageUtil.createReplyMessage` (and `MessageUtilsTest`), row by row: what the
    /// reply carries for each request shape.
    #[test]
    fn create_reply_message_table() {
        const FULL: &[(&str, &str)] = &[
            (property::CLUSTER, "clusterName"),
            (property::CORRELATION_ID, "id-1"),
            (property::REPLY_TO_CLIENT, "127.0.0.1@1"),
            (property::TTL, "3000"),
        ];
        let no_ttl = &FULL[..3];
        let without = |name: &str| -> Vec<(&str, &str)> {
            FULL.iter().copied().filter(|(k, _)| *k != name).collect()
        };
        let empty_cluster: Vec<(&str, &str)> = FULL
            .iter()
            .map(|&(k, v)| {
                if k == property::CLUSTER {
                    (k, "")
                } else {
                    (k, v)
                }
            })
            .collect();
        type Row<'a> = (
            &'a str,
            Vec<(&'a str, &'a str)>,
            Result<Option<&'a str>, ReplyError>,
        );
        let rows: Vec<Row<'_>> = vec![
            ("full request", FULL.to_vec(), Ok(Some("3000"))),
            ("no TTL", no_ttl.to_vec(), Ok(None)),
            (
                "no CLUSTER (never stored)",
                without(property::CLUSTER),
                Err(ReplyError::MissingProperty(property::CLUSTER)),
            ),
            (
                "empty CLUSTER",
                empty_cluster,
                Err(ReplyError::MissingProperty(property::CLUSTER)),
            ),
            (
                "no REPLY_TO_CLIENT",
                without(property::REPLY_TO_CLIENT),
                Err(ReplyError::MissingProperty(property::REPLY_TO_CLIENT)),
            ),
            (
                "no CORRELATION_ID",
                without(property::CORRELATION_ID),
                Err(ReplyError::MissingProperty(property::CORRELATION_ID)),
            ),
        ];
        for (name, props, want) in rows {
            let got = create_reply_message(&request(&props), "body");
            match (got, want) {
                (Ok(r), Ok(ttl)) => {
                    assert_eq!(r.topic(), "clusterName_REPLY_TOPIC", "{name}");
                    assert_eq!(r.body().as_ref(), b"body", "{name}");
                    assert_eq!(r.property(property::MSG_TYPE), Some("reply"), "{name}");
                    assert_eq!(r.property(property::CORRELATION_ID), Some("id-1"), "{name}");
                    assert_eq!(
                        r.property(property::REPLY_TO_CLIENT),
                        Some("127.0.0.1@1"),
                        "{name}"
                    );
                    assert_eq!(r.property(property::TTL), ttl, "{name}");
                    // Nothing else of the request: no tags, no cluster, no WAIT.
                    let n = 3 + usize::from(ttl.is_some());
                    assert_eq!(r.properties().len(), n, "{name}: {:?}", r.properties());
                    assert_eq!(r.flag(), 0, "{name}");
                }
                (Err(e), Err(want)) => assert_eq!(e, want, "{name}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn header(sys_flag: i32, props: &str) -> ReplyMessageRequestHeader {
        ReplyMessageRequestHeader {
            producer_group: "replier".into(),
            topic: "C_REPLY_TOPIC".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 3,
            sys_flag,
            born_timestamp: 11,
            flag: 7,
            properties: Some(props.into()),
            reconsume_times: Some(2),
            unit_mode: false,
            born_host: "10.1.2.3:4567".into(),
            store_host: "0:0:0:0:0:0:0:1:10911".into(),
            store_timestamp: 22,
        }
    }

    #[test]
    fn reply_ext_fields_and_compressed_body() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let z = compression::compress(&body, 5);
        let h = header(
            0x301,
            "CORRELATION_ID\u{1}c\u{2}PUSH_REPLY_TIME\u{1}20\u{2}",
        );
        let r = reply_message_ext(&h, Bytes::from(z.clone()), 99, 1 << 20).expect("inflates");
        assert_eq!(r.message.body().as_ref(), body.as_slice());
        assert_eq!(r.sys_flag, 0x300, "compressed bit cleared");
        assert_eq!(
            (r.message.topic(), r.message.flag(), r.queue_id),
            ("C_REPLY_TOPIC", 7, 3)
        );
        assert_eq!(
            (r.born_timestamp, r.store_timestamp, r.reconsume_times),
            (11, 22, 2)
        );
        assert_eq!(r.born_host, "10.1.2.3:4567".parse().unwrap());
        assert_eq!(r.store_host, "[::1]:10911".parse().unwrap());
        assert_eq!(r.message.property(property::ARRIVE_TIME), Some("99"));
        assert_eq!(r.message.property(property::PUSH_REPLY_TIME), Some("20"));

        // Not compressed: the body as it came, even if it looks like zlib.
        let r = reply_message_ext(&header(0, ""), Bytes::from(z.clone()), 1, 1 << 20).unwrap();
        assert_eq!(r.message.body().as_ref(), z.as_slice());
        // Corrupt, too large, or another algorithm: an error, never the raw bytes.
        let bad = reply_message_ext(&header(0x301, ""), Bytes::from_static(b"xx"), 1, 1 << 20);
        assert!(matches!(bad, Err(CompressionError::Corrupt(_))));
        let big = reply_message_ext(&header(0x301, ""), Bytes::from(z), 1, 100);
        assert!(matches!(
            big,
            Err(CompressionError::TooLarge { limit: 100 })
        ));
        let lz4 = reply_message_ext(&header(0x101, ""), Bytes::new(), 1, 100);
        assert!(matches!(lz4, Err(CompressionError::Unsupported(0x100))));
        // Unreadable hosts stay unspecified.
        let mut h = header(0, "");
        h.born_host = "nowhere".into();
        let r = reply_message_ext(&h, Bytes::new(), 1, 1).unwrap();
        assert!(r.born_host.ip().is_unspecified());
    }
}
