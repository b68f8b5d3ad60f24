//! The mocks over real loopback sockets, driven by a `RemotingClient`. The fault-knob tests need
//! the `test-util` feature (`cargo test -p rmq-testkit --features test-util`).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use rmq_common::batch::encode_batch;
use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::decode_stored_message;
use rmq_common::{
    property, CommandHeader, EndTransactionRequestHeader, GetRouteInfoRequestHeader, HeartbeatData,
    Message, ProducerData, Properties, RequestCode, ResponseCode, SendMessageResponseHeader,
    TopicRouteData, UnregisterClientRequestHeader, ViewMessageRequestHeader,
};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig, RemotingError};
#[cfg(feature = "test-util")]
use rmq_testkit::Reply;
use rmq_testkit::{
    MockBroker, MockCluster, MockNameServer, RouteBuilder, UnknownTopic, AUTO_CREATE_TOPIC,
};

const T: Duration = Duration::from_secs(5);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

fn client() -> RemotingClient {
    RemotingClient::new(RemotingConfig::default())
}

fn route_request(topic: &str) -> RemotingCommand {
    let header = GetRouteInfoRequestHeader {
        topic: topic.into(),
        accept_standard_json_only: Some(true),
    };
    RemotingCommand::request_with_header(RequestCode::GET_ROUTEINFO_BY_TOPIC, &header)
}

fn send_header(topic: &str, queue_id: i32, uniq: &str) -> SendMessageRequestHeader {
    let mut props = Properties::new();
    props.insert(property::TAGS, "TagA");
    props.insert(property::UNIQ_KEY, uniq);
    props.insert(property::WAIT, "true");
    SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: AUTO_CREATE_TOPIC.into(),
        default_topic_queue_nums: 4,
        queue_id,
        born_timestamp: 1_700_000_000_000,
        properties: Some(props.encode()),
        ..SendMessageRequestHeader::default()
    }
}

fn send_v2(topic: &str, queue_id: i32, uniq: &str, body: &'static [u8]) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2(send_header(topic, queue_id, uniq));
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &header).with_body(body)
}

#[tokio::test]
async fn name_server_serves_set_routes_and_counts_requests() {
    let ns = within(MockNameServer::start()).await.unwrap();
    let c = client();
    let addr = ns.addr();
    let route = RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:1")
        .queues("broker-a", 3)
        .build();
    ns.set_route("T", route.clone());

    let resp = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    let got: TopicRouteData = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(got, route);

    let resp = within(c.invoke_sync(&addr, route_request("U"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::TOPIC_NOT_EXIST);
    assert!(resp.remark.unwrap().contains("for the topic: U"));

    ns.set_route_body("F", Bytes::from_static(b"{0:1}"));
    let resp = within(c.invoke_sync(&addr, route_request("F"), T))
        .await
        .unwrap();
    assert_eq!(resp.body.as_ref(), b"{0:1}");

    ns.remove_route("T");
    let resp = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::TOPIC_NOT_EXIST);

    assert_eq!(ns.request_count("T"), 2);
    assert_eq!(ns.request_count("U"), 1);
    assert_eq!(ns.total_requests(), 4);
    let first = &ns.requests()[0];
    assert_eq!(first.accept_standard_json_only, Some(true));
    assert_eq!(first.version, rmq_common::code::CLIENT_VERSION);
    within(ns.shutdown()).await;
}

#[cfg(feature = "test-util")]
fn write_queues(resp: &RemotingCommand) -> i32 {
    let route: TopicRouteData = serde_json::from_slice(&resp.body).unwrap();
    route.queue_datas[0].write_queue_nums
}

#[cfg(feature = "test-util")]
#[tokio::test]
async fn a_delayed_route_answer_is_the_route_and_delay_of_its_arrival() {
    let ns = within(MockNameServer::start()).await.unwrap();
    let route = |n| {
        RouteBuilder::new()
            .broker("b", "127.0.0.1:1")
            .queues("b", n)
            .build()
    };
    ns.set_route("T", route(2));
    let c = client();
    let addr = ns.addr();
    ns.faults().set_delay(Duration::from_millis(1500));
    let slow = {
        let (c, addr) = (c.clone(), addr.clone());
        tokio::spawn(async move { c.invoke_sync(&addr, route_request("T"), T).await })
    };
    // Once counted, the request's answer and delay are fixed: changing both now affects only
    // later requests.
    within(async {
        while ns.request_count("T") == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    ns.faults().set_delay(Duration::ZERO);
    ns.set_route("T", route(1));
    let fast = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap();
    assert_eq!(write_queues(&fast), 1);
    let slow = within(slow).await.unwrap().unwrap();
    assert_eq!(
        write_queues(&slow),
        2,
        "the delayed answer carries the old route"
    );
    within(ns.shutdown()).await;
}

#[cfg(feature = "test-util")]
#[tokio::test]
async fn name_server_fault_knobs() {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route(
        "T",
        RouteBuilder::new()
            .broker("b", "127.0.0.1:1")
            .queues("b", 1)
            .build(),
    );
    let c = client();
    let addr = ns.addr();

    // Scripted codes, consumed one per request.
    ns.faults().script_codes([ResponseCode::SYSTEM_ERROR]);
    let resp = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SYSTEM_ERROR);
    let resp = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);

    // Black hole: the request is counted but never answered.
    ns.faults().set_black_hole(true);
    let before = ns.request_count("T");
    let err = within(c.invoke_sync(&addr, route_request("T"), Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(ns.request_count("T"), before + 1);
    ns.faults().set_black_hole(false);

    // Delay longer than the caller's timeout, then shorter.
    ns.faults().set_delay(Duration::from_millis(400));
    let err = within(c.invoke_sync(&addr, route_request("T"), Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let resp = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    ns.faults().reset();

    // Malformed frame: the client cannot decode it and the call fails.
    ns.faults().script([Reply::Malformed]);
    let err = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemotingError::Decode(_)
                | RemotingError::ConnectionClosed { .. }
                | RemotingError::Protocol { .. }
        ),
        "{err}"
    );

    // Down: refused; up: served again.
    ns.down().await;
    let err = within(c.invoke_sync(&addr, route_request("T"), T))
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Connect { .. }), "{err}");
    ns.up().await.unwrap();
    // The client backs off reconnecting to an address that refused it: served again once the
    // (short, first) window has passed.
    let resp = within(async {
        loop {
            match c.invoke_sync(&addr, route_request("T"), T).await {
                Ok(r) => break r,
                Err(e) if e.is_connection() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);

    // Close live sockets: the next call reconnects.
    assert!(ns.connection_count() >= 1);
    ns.close_connections();
    let resp = within(async {
        loop {
            match c.invoke_sync(&addr, route_request("T"), T).await {
                Ok(r) => break r,
                Err(e) if e.is_connection() => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    within(ns.shutdown()).await;
}

#[tokio::test]
async fn broker_answers_sends_like_a_broker() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    b.create_topic("T", 4);
    let c = client();
    let addr = b.addr();

    let resp = within(c.invoke_sync(&addr, send_v2("T", 2, "U1", b"one"), T))
        .await
        .unwrap();
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "{:?}",
        resp.remark
    );
    let h = SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap();
    assert_eq!((h.queue_id, h.queue_offset), (2, 0));
    assert_eq!(h.transaction_id.as_deref(), Some("U1"));
    assert_eq!(h.region_id.as_deref(), Some("DefaultRegion"));
    assert_eq!(h.trace_on, Some(true));
    let id = OffsetMessageId::decode(&h.msg_id).unwrap();
    assert_eq!(id.addr, b.socket_addr());

    // V1 header, same queue: next offset.
    let req =
        RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE, &send_header("T", 2, "U2"))
            .with_body(&b"two"[..]);
    let resp = within(c.invoke_sync(&addr, req, T)).await.unwrap();
    let h2 = SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap();
    assert_eq!((h2.queue_id, h2.queue_offset), (2, 1));
    assert!(
        OffsetMessageId::decode(&h2.msg_id)
            .unwrap()
            .commit_log_offset
            > id.commit_log_offset
    );

    // Negative queue id: a writable queue is chosen.
    for _ in 0..20 {
        let resp = within(c.invoke_sync(&addr, send_v2("T", -1, "U3", b"x"), T))
            .await
            .unwrap();
        let h = SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap();
        assert!((0..4).contains(&h.queue_id), "{}", h.queue_id);
    }
    // Out-of-range queue id is refused.
    let resp = within(c.invoke_sync(&addr, send_v2("T", 4, "U4", b"x"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SYSTEM_ERROR);

    let msgs = b.messages_of("T");
    assert_eq!(msgs.len(), 22);
    assert_eq!(msgs[0].code, RequestCode::SEND_MESSAGE_V2);
    assert_eq!(msgs[1].code, RequestCode::SEND_MESSAGE);
    assert_eq!(msgs[0].body().as_ref(), b"one");
    assert_eq!(msgs[0].property(property::TAGS), Some("TagA"));
    assert_eq!(msgs[0].header.producer_group, "pg");
    assert_eq!(msgs[0].msg_id, h.msg_id);
    assert!(msgs.windows(2).all(|w| w[0].seq < w[1].seq));

    // View by id: the stored-message format of what was stored.
    let view = ViewMessageRequestHeader {
        topic: Some("T".into()),
        offset: id.commit_log_offset,
    };
    let req = RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &view);
    let resp = within(c.invoke_sync(&addr, req, T)).await.unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    let mut body = resp.body.clone();
    let ext = decode_stored_message(&mut body).unwrap();
    assert_eq!(ext.message.body().as_ref(), b"one");
    assert_eq!(ext.queue_id, 2);
    assert_eq!(ext.commit_log_offset, id.commit_log_offset);
    assert_eq!(ext.uniq_key(), Some("U1"));
    within(b.shutdown()).await;
}

#[tokio::test]
async fn broker_splits_batches() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    let c = client();
    let msgs = vec![
        Message::new("B", "m0"),
        Message::new("B", "m1"),
        Message::new("B", "m2"),
    ];
    let mut header = send_header("B", 1, "batch");
    header.batch = Some(true);
    let req = RemotingCommand::request_with_header(
        RequestCode::SEND_BATCH_MESSAGE,
        &SendMessageRequestHeaderV2(header),
    )
    .with_body(encode_batch(&msgs).unwrap());
    let resp = within(c.invoke_sync(&b.addr(), req, T)).await.unwrap();
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "{:?}",
        resp.remark
    );
    let h = SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap();
    let ids: Vec<&str> = h.msg_id.split(',').collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(h.queue_offset, 0);
    let stored = b.messages();
    let bodies: Vec<&[u8]> = stored.iter().map(|m| m.body().as_ref()).collect();
    assert_eq!(bodies, [&b"m0"[..], b"m1", b"m2"]);
    assert_eq!(stored[2].queue_offset(), 2);
    assert_eq!(stored[2].batch_index, Some(2));
    assert_eq!(stored[2].msg_id, ids[2]);
    within(b.shutdown()).await;
}

#[tokio::test]
async fn broker_records_heartbeats_unregisters_and_transaction_ends() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    let c = client();
    let addr = b.addr();
    let hb = HeartbeatData {
        client_id: "127.0.0.1@1".into(),
        producer_data_set: vec![
            ProducerData::new("CLIENT_INNER_PRODUCER"),
            ProducerData::new("pg"),
        ],
        consumer_data_set: vec![],
    };
    let req = RemotingCommand::request(RequestCode::HEART_BEAT, Default::default())
        .with_body(serde_json::to_vec(&hb).unwrap());
    let resp = within(c.invoke_sync(&addr, req, T)).await.unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    let rec = &b.heartbeats()[0];
    assert_eq!(rec.client_id, "127.0.0.1@1");
    assert_eq!(rec.producer_groups, ["CLIENT_INNER_PRODUCER", "pg"]);

    let un = UnregisterClientRequestHeader {
        client_id: "127.0.0.1@1".into(),
        producer_group: Some("pg".into()),
        consumer_group: None,
    };
    let req = RemotingCommand::request_with_header(RequestCode::UNREGISTER_CLIENT, &un);
    let resp = within(c.invoke_sync(&addr, req, T)).await.unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert_eq!(b.unregisters(), [un]);

    let end = EndTransactionRequestHeader {
        producer_group: "pg".into(),
        commit_or_rollback: 8,
        msg_id: "ID".into(),
        ..EndTransactionRequestHeader::default()
    };
    let req = RemotingCommand::request_with_header(RequestCode::END_TRANSACTION, &end);
    within(c.invoke_oneway(&addr, req, T)).await.unwrap();
    let ends = within(async {
        loop {
            let ends = b.end_transactions();
            if !ends.is_empty() {
                break ends;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(ends[0].header, end);
    assert!(ends[0].oneway);
    assert_eq!(b.request_count(RequestCode::END_TRANSACTION), 1);
    within(b.shutdown()).await;
}

#[cfg(feature = "test-util")]
#[tokio::test]
async fn broker_scripted_codes_stored_or_not() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    let c = client();
    let addr = b.addr();
    b.faults().script_codes([
        ResponseCode::SYSTEM_BUSY,
        ResponseCode::FLUSH_DISK_TIMEOUT,
        ResponseCode::TOPIC_NOT_EXIST,
        ResponseCode::SLAVE_NOT_AVAILABLE,
    ]);
    let mut codes = Vec::new();
    for i in 0..5 {
        let resp = within(c.invoke_sync(&addr, send_v2("T", 0, &format!("u{i}"), b"x"), T))
            .await
            .unwrap();
        if resp.response_code().is_stored() {
            SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap();
        } else {
            assert!(resp.remark.is_some());
        }
        codes.push(resp.response_code());
    }
    assert_eq!(
        codes,
        [
            ResponseCode::SYSTEM_BUSY,
            ResponseCode::FLUSH_DISK_TIMEOUT,
            ResponseCode::TOPIC_NOT_EXIST,
            ResponseCode::SLAVE_NOT_AVAILABLE,
            ResponseCode::SUCCESS
        ]
    );
    let stored: Vec<(String, ResponseCode)> = b
        .messages()
        .iter()
        .map(|m| {
            (
                m.property(property::UNIQ_KEY).unwrap().to_owned(),
                m.reply_code,
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            ("u1".to_owned(), ResponseCode::FLUSH_DISK_TIMEOUT),
            ("u3".to_owned(), ResponseCode::SLAVE_NOT_AVAILABLE),
            ("u4".to_owned(), ResponseCode::SUCCESS)
        ]
    );
    assert_eq!(b.faults().scripted_left(), 0);

    // Close instead of answering, then no reply at all.
    b.faults().script([Reply::Close, Reply::NoReply]);
    let err = within(c.invoke_sync(&addr, send_v2("T", 0, "c", b"x"), T))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::ConnectionClosed { written: true, .. }),
        "{err}"
    );
    let err = within(c.invoke_sync(
        &addr,
        send_v2("T", 0, "n", b"x"),
        Duration::from_millis(200),
    ))
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(b.message_count(), 3);
    within(b.shutdown()).await;
}

#[tokio::test]
async fn cluster_topics_routes_and_auto_create() {
    let cluster = within(MockCluster::start(2)).await.unwrap();
    let names: Vec<&str> = cluster.brokers().iter().map(MockBroker::name).collect();
    assert_eq!(names, ["broker-a", "broker-b"]);
    cluster.create_topic("T", 3);
    let route = cluster.route("T").unwrap();
    assert_eq!(route.broker_datas.len(), 2);
    assert!(route
        .queue_datas
        .iter()
        .all(|q| q.write_queue_nums == 3 && q.perm == 6));
    let a = cluster.broker("broker-a").unwrap();
    assert_eq!(
        route.broker("broker-a").unwrap().master_addr(),
        Some(a.addr().as_str())
    );

    let c = client();
    // Unknown topic without auto-create.
    let resp = within(c.invoke_sync(&a.addr(), send_v2("N", 0, "u", b"x"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::TOPIC_NOT_EXIST);

    cluster.set_auto_create(true);
    let tbw = cluster.route(AUTO_CREATE_TOPIC).unwrap();
    assert!(tbw
        .queue_datas
        .iter()
        .all(|q| q.perm == 7 && q.write_queue_nums == 8));
    let b = cluster.broker("broker-b").unwrap();
    let resp = within(c.invoke_sync(&b.addr(), send_v2("N", -1, "u", b"x"), T))
        .await
        .unwrap();
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "{:?}",
        resp.remark
    );
    assert_eq!(b.topic_queues("N"), Some(4));
    let route = cluster.route("N").unwrap();
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(route.queue_datas[0].broker_name, "broker-b");
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    let resp = within(c.invoke_sync(&a.addr(), send_v2("N", 0, "v", b"x"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert_eq!(cluster.route("N").unwrap().broker_datas.len(), 2);
    let order: Vec<String> = cluster
        .messages_of("N")
        .iter()
        .map(|m| m.broker.clone())
        .collect();
    assert_eq!(order, ["broker-b", "broker-a"]);

    cluster.set_auto_create(false);
    assert!(cluster.route(AUTO_CREATE_TOPIC).is_none());
    let resp = within(c.invoke_sync(&a.addr(), send_v2("M", 0, "w", b"x"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::TOPIC_NOT_EXIST);

    within(cluster.shutdown()).await;
    let err = within(c.invoke_sync(&a.addr(), send_v2("T", 0, "z", b"x"), T))
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
}

#[tokio::test]
async fn standalone_broker_policy_reject() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    b.set_unknown_topic(UnknownTopic::Reject);
    let resp = within(client().invoke_sync(&b.addr(), send_v2("X", 0, "u", b"x"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::TOPIC_NOT_EXIST);
    assert_eq!(b.request_count(RequestCode::SEND_MESSAGE_V2), 1);
    assert_eq!(b.message_count(), 0);
    within(b.shutdown()).await;
}

#[tokio::test]
async fn dropping_the_cluster_stops_every_server() {
    let cluster = within(MockCluster::start(2)).await.unwrap();
    cluster.create_topic("T", 1);
    let c = client();
    let ns = cluster.namesrv_addr();
    let broker = cluster.brokers()[1].addr();
    let resp = within(c.invoke_sync(&broker, send_v2("T", 0, "u", b"x"), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    within(c.invoke_sync(&ns, route_request("T"), T))
        .await
        .unwrap();
    drop(cluster);
    // The live connections close and the listeners go away.
    for addr in [broker, ns] {
        within(async {
            loop {
                match c.invoke_sync(&addr, route_request("T"), T).await {
                    Err(RemotingError::Connect { .. }) => break,
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await;
    }
}
