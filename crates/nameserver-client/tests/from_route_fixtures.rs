//! `decode_route` + `TopicPublishInfo::from_route` on the canned bodies of
//! `tests/fixtures/routes/`, with the exact queue lists Java's `topicRouteData2TopicPublishInfo`
//! builds from them, and properties of `from_route` on generated routes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rmq_common::route::{perm, BrokerData, QueueData, TopicRouteData, MASTER_ID};
use rmq_nameserver_client::{decode_route, RouteDecodeError, TopicPublishInfo};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/routes/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `"broker-a:0 broker-a:1 ..."` for a queue list.
fn queue_list(info: &TopicPublishInfo, topic: &str) -> String {
    info.queues
        .iter()
        .map(|q| {
            assert_eq!(q.topic, topic);
            format!("{}:{}", q.broker_name, q.queue_id)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn addrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(b, a)| ((*b).to_owned(), (*a).to_owned()))
        .collect()
}

struct Case {
    file: &'static str,
    queues: &'static str,
    order_topic: bool,
    masters: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        file: "standard.json",
        queues: "broker-a:0 broker-a:1 broker-b:0 broker-b:1 broker-b:2 broker-b:3",
        order_topic: false,
        masters: &[
            ("broker-a", "192.168.0.10:10911"),
            ("broker-b", "192.168.0.20:10911"),
        ],
    },
    Case {
        file: "fastjson_numeric_keys.json",
        queues: "broker-a:0 broker-a:1 broker-a:2 broker-a:3",
        order_topic: false,
        masters: &[("broker-a", "192.168.0.10:10911")],
    },
    Case {
        file: "fastjson_pretty.json",
        queues: "broker-a:0 broker-b:0 broker-b:1",
        order_topic: false,
        masters: &[
            ("broker-a", "10.1.0.3:10911"),
            ("broker-b", "10.1.0.1:10911"),
        ],
    },
    Case {
        file: "order_topic.json",
        queues: "broker-b:0 broker-b:1 broker-a:0 broker-a:1 broker-a:2",
        order_topic: true,
        masters: &[("broker-a", "192.168.0.10:10911")],
    },
    Case {
        file: "no_master.json",
        queues: "broker-b:0 broker-b:1 broker-b:2",
        order_topic: false,
        masters: &[("broker-b", "192.168.0.20:10911")],
    },
    Case {
        file: "read_only.json",
        queues: "broker-b:0 broker-b:1",
        order_topic: false,
        masters: &[
            ("broker-a", "192.168.0.10:10911"),
            ("broker-b", "192.168.0.20:10911"),
            ("broker-c", "192.168.0.30:10911"),
        ],
    },
    Case {
        file: "several_brokers.json",
        queues: "broker-a:0 broker-c:0 broker-c:1 broker-c:2",
        order_topic: false,
        masters: &[
            ("broker-a", "10.0.0.1:10911"),
            ("broker-b", "10.0.0.2:10911"),
            ("broker-c", "10.0.0.3:10911"),
            ("broker-z", "10.0.0.9:10911"),
        ],
    },
    Case {
        file: "real_server_tbw102.json",
        queues: "broker-a:0 broker-a:1 broker-a:2 broker-a:3 broker-a:4 broker-a:5 broker-a:6 \
                 broker-a:7 broker-b:0 broker-b:1 broker-b:2 broker-b:3 broker-b:4 broker-b:5 \
                 broker-b:6 broker-b:7",
        order_topic: false,
        masters: &[
            ("broker-a", "127.0.0.1:10911"),
            ("broker-b", "127.0.0.1:10921"),
        ],
    },
];

#[test]
fn fixtures_give_javas_queue_lists() {
    for case in CASES {
        let route =
            decode_route(&fixture(case.file)).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let info = TopicPublishInfo::from_route("T", &route);
        let expected = case.queues.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(queue_list(&info, "T"), expected, "{}", case.file);
        assert_eq!(info.order_topic, case.order_topic, "{}", case.file);
        assert_eq!(info.broker_addrs, addrs(case.masters), "{}", case.file);
        assert_eq!(info.is_ok(), !expected.is_empty(), "{}", case.file);
    }
}

#[test]
fn fastjson_fixture_keeps_slaves_and_the_old_sysflag_name() {
    let route = decode_route(&fixture("fastjson_numeric_keys.json")).unwrap();
    let bd = &route.broker_datas[0];
    assert_eq!(bd.broker_addrs.len(), 2);
    assert_eq!(bd.broker_addrs[&1], "192.168.0.11:10911");
    assert_eq!(route.queue_datas[0].perm, 6);
    // The strict parser alone rejects it: the fallback did the work.
    assert!(
        serde_json::from_slice::<TopicRouteData>(&fixture("fastjson_numeric_keys.json")).is_err()
    );
}

#[test]
fn string_values_that_look_like_keys_are_untouched() {
    let body = fixture("fastjson_pretty.json");
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.contains(r#""note":"{0:\"not a key\"},1:""#));
    let route = decode_route(&body).unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs[&1], "10.1.0.2:10911");
}

#[test]
fn truncated_body_is_a_typed_error_with_position() {
    let err = decode_route(&fixture("broken_truncated.json")).unwrap_err();
    let RouteDecodeError::Invalid {
        message,
        line,
        column,
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(*line, 1);
    assert!(*column > 100, "{err}");
    assert!(message.contains("EOF"), "{message}");
}

#[test]
fn real_server_tbw102_capped_for_an_auto_created_topic() {
    let route = decode_route(&fixture("real_server_tbw102.json")).unwrap();
    let info = TopicPublishInfo::from_default_route("NewTopic", &route, 4);
    assert_eq!(
        queue_list(&info, "NewTopic"),
        "broker-a:0 broker-a:1 broker-a:2 broker-a:3 broker-b:0 broker-b:1 broker-b:2 broker-b:3"
    );
    // Java takes min(cap, readQueueNums) for both counts.
    let mut small = route.clone();
    small.queue_datas[0].read_queue_nums = 2;
    small.queue_datas[0].write_queue_nums = 8;
    let info = TopicPublishInfo::from_default_route("NewTopic", &small, 4);
    assert_eq!(info.queues.len(), 2 + 4);
}

// ---- properties ------------------------------------------------------------------------------

fn broker_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "broker-a",
        "broker-b",
        "broker-B",
        "b",
        "broker-\u{e9}",
        "z",
    ])
    .prop_map(str::to_owned)
}

fn broker_data() -> impl Strategy<Value = BrokerData> {
    (
        broker_name(),
        prop::collection::btree_map(0i64..3, "[0-9]{1,3}", 0..3),
    )
        .prop_map(|(name, ids)| BrokerData {
            cluster: "c".into(),
            broker_name: name,
            broker_addrs: ids
                .into_iter()
                .map(|(id, port)| (id, format!("10.0.0.{id}:{port}")))
                .collect(),
            ..BrokerData::default()
        })
}

fn queue_data() -> impl Strategy<Value = QueueData> {
    (broker_name(), 0i32..8, -1i32..6, 0i32..6).prop_map(|(name, perm, write, read)| QueueData {
        broker_name: name,
        read_queue_nums: read,
        write_queue_nums: write,
        perm,
        topic_sys_flag: 0,
    })
}

fn route() -> impl Strategy<Value = TopicRouteData> {
    (
        prop::collection::vec(queue_data(), 0..6),
        prop::collection::vec(broker_data(), 0..5),
    )
        .prop_map(|(queue_datas, broker_datas)| TopicRouteData {
            queue_datas,
            broker_datas,
            ..TopicRouteData::default()
        })
}

/// Removes the quotes of every `"digits":` key, as fastjson's legacy writer leaves them.
fn fastjsonify(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let after_open = i > 0 && matches!(bytes[i - 1], b'{' | b',');
        if after_open && bytes[i] == b'"' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let end = i + 1 + digits;
            if digits > 0 && bytes.get(end) == Some(&b'"') && bytes.get(end + 1) == Some(&b':') {
                out.extend_from_slice(&bytes[i + 1..end]);
                i = end + 1;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn from_route_never_yields_a_queue_on_a_non_writable_or_masterless_broker(route in route()) {
        let info = TopicPublishInfo::from_route("T", &route);
        let first_bd = |name: &str| route.broker_datas.iter().find(|b| b.broker_name == name);
        for q in &info.queues {
            let bd = first_bd(&q.broker_name);
            prop_assert!(bd.is_some_and(|b| b.broker_addrs.contains_key(&MASTER_ID)), "{q}");
            prop_assert!(route.queue_datas.iter().any(|qd| qd.broker_name == q.broker_name
                && perm::is_writeable(qd.perm)
                && q.queue_id < qd.write_queue_nums), "{q}");
        }
        // Exactly one queue per write queue of every eligible queue data.
        let expected: i32 = route.queue_datas.iter()
            .filter(|qd| perm::is_writeable(qd.perm))
            .filter(|qd| first_bd(&qd.broker_name).is_some_and(|b| b.master_addr().is_some()))
            .map(|qd| qd.write_queue_nums.max(0))
            .sum();
        prop_assert_eq!(info.queues.len(), usize::try_from(expected).unwrap());
        // Brokers in Java order (UTF-16 code units), ids ascending within a queue data.
        for w in info.queues.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let ord = a.broker_name.encode_utf16().cmp(b.broker_name.encode_utf16());
            prop_assert!(ord.is_le(), "{a} before {b}");
            if a.broker_name == b.broker_name && b.queue_id != 0 {
                prop_assert_eq!(b.queue_id, a.queue_id + 1);
            }
        }
    }

    #[test]
    fn fastjson_form_decodes_to_the_same_route(route in route()) {
        let json = serde_json::to_string(&route).unwrap();
        let legacy = fastjsonify(&json);
        let has_master_key = route.broker_datas.iter().any(|b| !b.broker_addrs.is_empty());
        prop_assert_eq!(legacy != json, has_master_key);
        prop_assert_eq!(decode_route(legacy.as_bytes()).unwrap(), route);
    }
}
