//! Golden request, end to end: the producer's SEND_MESSAGE_V2 for a message with tags, keys, a
//! user property and a compressed body, as a broker receives it, against the checked-in fixture
//! `crates/producer/tests/fixtures/send_message_v2.golden` (one comment per field); plus the
//! `UNIQ_KEY` layout of generated ids.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmq_common::compression::decompress;
use rmq_common::{property, Message, MessageQueue, RequestCode};
use rmq_producer::{Producer, SendOptions};
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);
const GOLDEN: &str = include_str!("fixtures/send_message_v2.golden");

fn golden() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in GOLDEN.lines() {
        let line = line.split_once("  #").map_or(line, |(v, _)| v).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(" = ") {
            let v = v
                .trim()
                .replace("\\u0001", "\u{1}")
                .replace("\\u0002", "\u{2}");
            out.entry(k.trim().to_owned()).or_default().push(v);
        }
    }
    out
}

fn one<'a>(g: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    g.get(key)
        .and_then(|v| v.first())
        .map_or_else(|| panic!("golden key {key}"), String::as_str)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_message_v2_matches_the_java_golden_request() {
    let g = golden();
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("GoldenTopic", 4);
    let p = timeout(
        T,
        Producer::builder(one(&g, "ext.a"))
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");

    let body: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz"
        .iter()
        .copied()
        .cycle()
        .take(5000)
        .collect();
    let mut msg = Message::new("GoldenTopic", body.clone())
        .with_tags("TagA")
        .with_keys(["k1", "k2"])
        .with_user_property("region", "eu")
        .expect("property");
    msg.properties_mut()
        .insert(property::UNIQ_KEY, one(&g, "prop.UNIQ_KEY"));
    let queue = MessageQueue::new(
        "GoldenTopic",
        one(&g, "ext.n"),
        one(&g, "ext.e").parse().expect("queue id"),
    );
    let before = now_ms();
    let r = timeout(T, p.send_with(msg, SendOptions::new().queue(queue)))
        .await
        .expect("in time")
        .expect("sent");
    let after = now_ms();
    assert_eq!(
        r.msg_id,
        one(&g, "prop.UNIQ_KEY"),
        "a preset UNIQ_KEY is kept"
    );

    let stored = c.messages_of("GoldenTopic");
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    let h = &m.header;
    assert_eq!(m.code.value().to_string(), one(&g, "code"));
    assert_eq!(m.code, RequestCode::SEND_MESSAGE_V2);
    assert_eq!(h.producer_group, one(&g, "ext.a"));
    assert_eq!(h.topic, one(&g, "ext.b"));
    assert_eq!(h.default_topic, one(&g, "ext.c"));
    assert_eq!(h.default_topic_queue_nums.to_string(), one(&g, "ext.d"));
    assert_eq!(h.queue_id.to_string(), one(&g, "ext.e"));
    assert_eq!(h.sys_flag.to_string(), one(&g, "ext.f"));
    assert!(
        (before..=after).contains(&h.born_timestamp),
        "ext.g is the send time"
    );
    assert_eq!(h.flag.to_string(), one(&g, "ext.h"));
    assert_eq!(
        h.reconsume_times.map(|v| v.to_string()).as_deref(),
        Some(one(&g, "ext.j"))
    );
    assert_eq!(
        h.unit_mode.map(|v| v.to_string()).as_deref(),
        Some(one(&g, "ext.k"))
    );
    assert_eq!(
        h.batch.map(|v| v.to_string()).as_deref(),
        Some(one(&g, "ext.m"))
    );
    assert_eq!(h.broker_name.as_deref(), Some(one(&g, "ext.n")));
    assert!(g["absent"].iter().any(|k| k == "l"));
    assert_eq!(h.max_reconsume_times, None, "ext.l absent");

    let expected: BTreeMap<String, String> = g
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("prop.")
                .map(|name| (name.to_owned(), v[0].clone()))
        })
        .collect();
    // What the client wrote (the stored message also has the broker's CLUSTER).
    assert_eq!(m.property(property::CLUSTER), Some(rmq_testkit::CLUSTER));
    let wire_props = rmq_common::Properties::decode(h.properties.as_deref().unwrap_or(""));
    let sent: BTreeMap<String, String> = wire_props
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(sent, expected);
    assert_eq!(
        h.properties
            .as_deref()
            .map(|i| i.ends_with(one(&g, "properties.trailing"))),
        Some(true)
    );

    let wire = m.body();
    assert_eq!(format!("{:02x}", wire[0]), one(&g, "body.zlib_cmf"));
    assert_eq!(
        ((u32::from(wire[0]) * 256 + u32::from(wire[1])) % 31).to_string(),
        one(&g, "body.zlib_check")
    );
    let inflated = decompress(wire, 1 << 20).expect("zlib stream");
    assert_eq!(inflated.len().to_string(), one(&g, "body.inflated_len"));
    assert_eq!(inflated, body);

    // A generated UNIQ_KEY: 32 uppercase hex (IPv4) = IP, pid (16 bits), class-loader hash,
    // ms since the month start, counter; the IP is the one of the client id.
    let r = timeout(T, p.send(Message::new("GoldenTopic", "x")))
        .await
        .expect("in time")
        .expect("sent");
    let id = r.msg_id.as_str();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "{id}"
    );
    let ip = p.client_id().split('@').next().expect("ip");
    match ip.parse::<std::net::IpAddr>().expect("ip") {
        std::net::IpAddr::V4(v4) => {
            assert_eq!(id.len(), 32, "{id}");
            let hex: String = v4.octets().iter().map(|b| format!("{b:02X}")).collect();
            assert_eq!(&id[..8], hex, "{id}");
            assert_eq!(
                &id[8..12],
                format!("{:04X}", std::process::id() & 0xFFFF),
                "{id}"
            );
        }
        std::net::IpAddr::V6(_) => assert_eq!(id.len(), 56, "{id}"),
    }
    let stored = c.messages_of("GoldenTopic");
    assert_eq!(stored[1].property(property::UNIQ_KEY), Some(id));
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}
