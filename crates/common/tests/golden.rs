//! Golden values: the real-server fixtures and PROTOCOL.md's worked examples.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_common::route::perm;
use rmq_common::{
    encode_batch, CommandHeader, HeartbeatData, Message, OffsetMessageId, Properties, RequestCode,
    SendMessageResponseHeader, TopicRouteData, UniqIdGenerator,
};
use support::{ext_fields, frame, hex_decode};

const FIXTURE_UNIQ_KEY: &str = "7F0000010F2C18B4AAC2000000000000";

fn fixture_header() -> SendMessageRequestHeader {
    // The fixture's properties, in the fixture's order.
    let props: Properties = [
        ("TAGS", "TagA"),
        ("KEYS", "k1 k2"),
        ("UNIQ_KEY", FIXTURE_UNIQ_KEY),
        ("WAIT", "true"),
    ]
    .into_iter()
    .collect();
    SendMessageRequestHeader {
        producer_group: "FixtureGroup".into(),
        topic: "FixtureTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        sys_flag: 0,
        born_timestamp: 1_763_942_400_000,
        flag: 0,
        properties: Some(props.encode()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: None,
        broker_name: Some("broker-a".into()),
    }
}

#[test]
fn v2_ext_fields_equal_the_real_server_fixture() {
    let f = frame("send_v2_json.req.hex");
    assert_eq!(f.header["code"], 310);
    let wire = ext_fields(&f);
    let ours = SendMessageRequestHeaderV2(fixture_header()).to_ext_fields();
    assert_eq!(ours, wire);
    // Exactly these keys: a..n without l.
    let mut keys: Vec<&str> = ours.iter().map(|(k, _)| k).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "m", "n"]
    );
    // The properties string byte for byte, trailing \x02 included.
    assert_eq!(
        wire.get("i"),
        Some("TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}7F0000010F2C18B4AAC2000000000000\u{2}WAIT\u{1}true\u{2}")
    );
    assert_eq!(ours.get("i"), wire.get("i"));
    // And it decodes back to the same header, through read_for_code too.
    let decoded = SendMessageRequestHeader::read_for_code(RequestCode::SEND_MESSAGE_V2, &wire)
        .expect("decode fixture");
    assert_eq!(decoded, fixture_header());
    assert_eq!(f.body, b"hello fixture");
}

#[test]
fn fixture_properties_match_the_message_api() {
    let f = frame("send_v2_json.req.hex");
    let wire = ext_fields(&f);
    let mut msg = Message::new("FixtureTopic", "hello fixture")
        .with_tags("TagA")
        .with_keys(["k1", "k2"]);
    msg.properties_mut().insert("UNIQ_KEY", FIXTURE_UNIQ_KEY);
    let decoded = Properties::decode(wire.get("i").expect("i"));
    assert_eq!(&decoded, msg.properties());
    assert_eq!(msg.keys(), ["k1", "k2"]);
}

#[test]
fn send_response_fixture_decodes() {
    let f = frame("send_v2_json.resp.hex");
    assert_eq!(f.header["code"], 0);
    let h = SendMessageResponseHeader::read_from(&ext_fields(&f)).expect("decode");
    assert_eq!(h.msg_id, "7F00000100002A9F00000000004988BA");
    assert_eq!((h.queue_id, h.queue_offset), (0, 0));
    assert_eq!(h.transaction_id.as_deref(), Some(FIXTURE_UNIQ_KEY));
    assert_eq!(h.region_id.as_deref(), Some("DefaultRegion"));
    assert_eq!(h.trace_on, Some(true));
    assert_eq!(h.batch_uniq_id, None);
    let id = OffsetMessageId::decode(&h.msg_id).expect("offset id");
    assert_eq!(
        id.addr,
        "127.0.0.1:10911".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(id.commit_log_offset, 0x4988BA);
    assert_eq!(id.encode(), h.msg_id);
}

#[test]
fn route_fixture_parses() {
    let f = frame("route_tbw102_json.resp.hex");
    assert_eq!(f.body.len(), 552);
    let route: TopicRouteData = serde_json::from_slice(&f.body).expect("route JSON");
    assert_eq!(route.order_topic_conf, None);
    assert_eq!(route.topic_queue_mapping_by_broker, None);
    assert!(route.filter_server_table.is_empty());
    let names: Vec<&str> = route
        .queue_datas
        .iter()
        .map(|q| q.broker_name.as_str())
        .collect();
    assert_eq!(names, ["broker-a", "broker-b"]);
    for q in &route.queue_datas {
        assert_eq!(
            (
                q.read_queue_nums,
                q.write_queue_nums,
                q.perm,
                q.topic_sys_flag
            ),
            (8, 8, 7, 0)
        );
        assert!(q.is_writeable() && q.is_readable() && perm::is_inherited(q.perm));
    }
    let masters: Vec<(&str, Option<&str>)> = route
        .broker_datas
        .iter()
        .map(|b| (b.broker_name.as_str(), b.master_addr()))
        .collect();
    assert_eq!(
        masters,
        [
            ("broker-a", Some("127.0.0.1:10911")),
            ("broker-b", Some("127.0.0.1:10921"))
        ]
    );
    for b in &route.broker_datas {
        assert_eq!(b.cluster, "DefaultCluster");
        assert_eq!(b.zone_name, None);
        assert!(!b.enable_acting_master);
    }
    assert_eq!(
        route.broker("broker-b").map(|b| b.broker_addrs.len()),
        Some(1)
    );
}

#[test]
fn heartbeat_fixture_parses() {
    let f = frame("heartbeat_json.req.hex");
    let hb: HeartbeatData = serde_json::from_slice(&f.body).expect("heartbeat JSON");
    assert_eq!(hb.client_id, "127.0.0.1@fixture");
    assert_eq!(hb.producer_data_set.len(), 1);
    assert_eq!(hb.producer_data_set[0].group_name, "FixtureGroup");
    assert!(hb.consumer_data_set.is_empty());
}

#[test]
fn batch_record_equals_protocol_example() {
    let body = encode_batch(&[Message::new("T", "hi")]).expect("encode");
    let want =
        hex_decode("00000022 00000000 00000000 00000000 00000002 6869 000A 57414954017472756502");
    assert_eq!(body.as_ref(), want.as_slice());
}

#[test]
fn uniq_key_equals_protocol_example() {
    let g = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), 12345)
        .with_class_loader_hash(0x1B6D_3586)
        .with_counter_start(1);
    // Any instant 0x0A1B2C3D ms after a UTC month start: 2025-11-01T00:00:00Z.
    let id = g.next_id_at(1_761_955_200_000 + 0x0A1B_2C3D);
    assert_eq!(id, "C0A8010A30391B6D35860A1B2C3D0001");
    // The counter moves on; the prefix stays.
    let next = g.next_id_at(1_761_955_200_000 + 0x0A1B_2C3D);
    assert_eq!(next, "C0A8010A30391B6D35860A1B2C3D0002");
    assert_eq!(g.prefix(), "C0A8010A30391B6D3586");
}

#[test]
fn uniq_key_pid_is_truncated_to_16_bits() {
    let g = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0x0012_3039)
        .with_class_loader_hash(0);
    assert_eq!(&g.prefix()[8..12], "3039");
}

#[test]
fn offset_msg_id_equals_protocol_example() {
    let id = OffsetMessageId::new("192.168.1.20:10911".parse().expect("addr"), 0x1234);
    assert_eq!(id.encode(), "C0A8011400002A9F0000000000001234");
    assert_eq!(
        OffsetMessageId::decode("C0A8011400002A9F0000000000001234"),
        Ok(id)
    );
    assert_eq!(
        OffsetMessageId::decode("c0a8011400002a9f0000000000001234"),
        Ok(id)
    );
}
