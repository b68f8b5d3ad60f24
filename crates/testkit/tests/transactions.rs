//! Transactional messages on the mock broker over loopback, driven by a plain `RemotingClient`
//! acting as a producer: half message, check back to the producer group, END_TRANSACTION.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::{decode_stored_message, MessageExt};
use rmq_common::{
    property, sysflag, CheckTransactionStateRequestHeader, CommandHeader,
    EndTransactionRequestHeader, HeartbeatData, ProducerData, Properties, RequestCode,
    ResponseCode, SendMessageResponseHeader, UnregisterClientRequestHeader,
};
use rmq_remoting::{BoxFuture, RemotingClient, RemotingCommand, RemotingConfig, RequestContext};
use rmq_testkit::{MockBroker, MockCluster, TransactionCheck, TRANS_HALF_TOPIC};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(5);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

/// Polls `f` until it is true.
async fn until(mut f: impl FnMut() -> bool) {
    within(async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

type Check = (CheckTransactionStateRequestHeader, MessageExt, bool);

/// A client whose checks arrive on the returned channel (header, body, oneway).
fn producer() -> (RemotingClient, mpsc::UnboundedReceiver<Check>) {
    let c = RemotingClient::new(RemotingConfig::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let on_check = move |_: RequestContext,
                         req: RemotingCommand|
          -> BoxFuture<'static, Option<RemotingCommand>> {
        let header = req
            .decode_header::<CheckTransactionStateRequestHeader>()
            .unwrap();
        let mut body = req.body.clone();
        let msg = decode_stored_message(&mut body).unwrap();
        let _ = tx.send((header, msg, req.is_oneway()));
        Box::pin(std::future::ready(None))
    };
    c.register_processor(RequestCode::CHECK_TRANSACTION_STATE, Arc::new(on_check));
    (c, rx)
}

async fn heartbeat(c: &RemotingClient, addr: &str, group: &str) {
    let hb = HeartbeatData {
        client_id: "127.0.0.1@1".into(),
        producer_data_set: vec![ProducerData::new(group)],
        consumer_data_set: vec![],
    };
    let req = RemotingCommand::request(RequestCode::HEART_BEAT, Default::default())
        .with_body(serde_json::to_vec(&hb).unwrap());
    let resp = within(c.invoke_sync(addr, req, T)).await.unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
}

/// Sends a half message as a producer does; returns the send answer.
async fn send_half(c: &RemotingClient, addr: &str, uniq: &str) -> SendMessageResponseHeader {
    let mut props = Properties::new();
    props.insert(property::TRAN_MSG, "true");
    props.insert(property::PGROUP, "pg");
    props.insert(property::UNIQ_KEY, uniq);
    let header = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "T".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 1,
        sys_flag: sysflag::TRANSACTION_PREPARED_TYPE,
        born_timestamp: 1_700_000_000_000,
        properties: Some(props.encode()),
        ..SendMessageRequestHeader::default()
    };
    let req = RemotingCommand::request_with_header(
        RequestCode::SEND_MESSAGE_V2,
        &SendMessageRequestHeaderV2(header),
    )
    .with_body(&b"half"[..]);
    let resp = within(c.invoke_sync(addr, req, T)).await.unwrap();
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "{:?}",
        resp.remark
    );
    SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap()
}

fn end_request(check: &CheckTransactionStateRequestHeader, value: i32) -> RemotingCommand {
    let end = EndTransactionRequestHeader {
        topic: check.topic.clone(),
        producer_group: "pg".into(),
        tran_state_table_offset: check.tran_state_table_offset,
        commit_log_offset: check.commit_log_offset,
        commit_or_rollback: value,
        from_transaction_check: true,
        msg_id: check.msg_id.clone().unwrap_or_default(),
        transaction_id: check.transaction_id.clone(),
        broker_name: check.broker_name.clone(),
    };
    RemotingCommand::request_with_header(RequestCode::END_TRANSACTION, &end)
}

#[tokio::test]
async fn half_message_check_and_commit() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    b.create_topic("T", 4);
    let addr = b.addr();
    let (c, mut checks) = producer();
    heartbeat(&c, &addr, "pg").await;
    assert_eq!(b.producer_connections("pg").len(), 1);

    let sent = send_half(&c, &addr, "UNIQ-1").await;
    assert_eq!(
        (sent.queue_id, sent.queue_offset),
        (1, 0),
        "real queue id, half-queue offset"
    );
    assert_eq!(sent.transaction_id.as_deref(), Some("UNIQ-1"));
    let offset = OffsetMessageId::decode(&sent.msg_id)
        .unwrap()
        .commit_log_offset;
    assert_eq!(b.message_count(), 0);
    assert!(b.messages_of("T").is_empty());
    let halves = b.half_messages();
    assert_eq!(halves.len(), 1);
    assert_eq!(halves[0].topic(), TRANS_HALF_TOPIC);

    assert_eq!(within(b.check_transactions()).await, 1);
    let (h, msg, oneway) = within(checks.recv()).await.unwrap();
    assert!(oneway);
    assert_eq!(h.topic.as_deref(), Some("T"));
    assert_eq!(
        (h.tran_state_table_offset, h.commit_log_offset),
        (0, offset)
    );
    assert_eq!(h.msg_id.as_deref(), Some("UNIQ-1"));
    assert_eq!(h.transaction_id.as_deref(), Some("UNIQ-1"));
    assert_eq!(h.offset_msg_id.as_deref(), Some(sent.msg_id.as_str()));
    assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
    assert_eq!((msg.message.topic(), msg.queue_id), ("T", 1));
    assert_eq!((msg.queue_offset, msg.commit_log_offset), (0, offset));
    assert_eq!(msg.message.body().as_ref(), b"half");
    assert_eq!(msg.message.property(property::PGROUP), Some("pg"));
    assert_eq!(msg.message.property(property::TRAN_MSG), Some("true"));
    assert_eq!(msg.uniq_key(), Some("UNIQ-1"));
    assert_eq!(msg.store_host, b.socket_addr());
    assert_eq!(b.half_check_count(offset), Some(1));

    within(c.invoke_oneway(&addr, end_request(&h, sysflag::TRANSACTION_COMMIT_TYPE), T))
        .await
        .unwrap();
    until(|| b.message_count() == 1).await;
    let m = &b.messages_of("T")[0];
    assert_eq!((m.queue_id(), m.queue_offset()), (1, 0));
    assert!(m.commit_log_offset() > offset);
    assert_eq!(m.ext.prepared_transaction_offset, offset);
    assert!(b.half_messages().is_empty());
    assert_eq!(b.end_transactions().len(), 1);

    // Ended already: recorded, refused, nothing changes.
    let resp = within(c.invoke_sync(&addr, end_request(&h, sysflag::TRANSACTION_COMMIT_TYPE), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SYSTEM_ERROR);
    assert_eq!(b.end_transactions().len(), 2);
    assert_eq!(b.message_count(), 1);
    within(b.shutdown()).await;
}

#[tokio::test]
async fn rollback_unknown_state_and_unregistered_groups() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    let addr = b.addr();
    let (c, mut checks) = producer();
    let sent = send_half(&c, &addr, "UNIQ-2").await;
    // No producer connection for the group yet: nothing sent.
    assert_eq!(within(b.check_transactions()).await, 0);
    heartbeat(&c, &addr, "pg").await;
    assert_eq!(within(b.check_transactions()).await, 1);
    let (h, _, _) = within(checks.recv()).await.unwrap();
    assert_eq!(h.tran_state_table_offset, sent.queue_offset);
    assert_eq!(b.half_check_count(h.commit_log_offset), Some(2));

    // Unknown state: a broker answers nothing; still pending.
    let unknown = end_request(&h, sysflag::TRANSACTION_NOT_TYPE);
    let err = within(c.invoke_sync(&addr, unknown, Duration::from_millis(300))).await;
    assert!(err.is_err(), "{err:?}");
    assert_eq!(b.half_messages().len(), 1);

    let rollback = end_request(&h, sysflag::TRANSACTION_ROLLBACK_TYPE);
    let resp = within(c.invoke_sync(&addr, rollback, T)).await.unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert!(b.half_messages().is_empty());
    assert_eq!(b.message_count(), 0);

    send_half(&c, &addr, "UNIQ-3").await;
    let un = UnregisterClientRequestHeader {
        client_id: "127.0.0.1@1".into(),
        producer_group: Some("pg".into()),
        consumer_group: None,
    };
    let req = RemotingCommand::request_with_header(RequestCode::UNREGISTER_CLIENT, &un);
    within(c.invoke_sync(&addr, req, T)).await.unwrap();
    assert!(b.producer_connections("pg").is_empty());
    assert_eq!(within(b.check_transactions()).await, 0);
    within(b.shutdown()).await;
}

#[tokio::test]
async fn the_check_service_checks_then_discards() {
    let cluster = within(MockCluster::start(1)).await.unwrap();
    cluster.create_topic("T", 4);
    let b = &cluster.brokers()[0];
    let addr = b.addr();
    let (c, mut checks) = producer();
    heartbeat(&c, &addr, "pg").await;
    let sent = send_half(&c, &addr, "UNIQ-4").await;
    let offset = OffsetMessageId::decode(&sent.msg_id)
        .unwrap()
        .commit_log_offset;
    cluster.set_transaction_check(Some(TransactionCheck {
        interval: Duration::from_millis(20),
        min_age: Duration::ZERO,
        max_checks: 2,
    }));
    for times in ["1", "2"] {
        let (h, msg, _) = within(checks.recv()).await.unwrap();
        assert_eq!(h.commit_log_offset, offset);
        assert_eq!(
            msg.message.property(property::TRANSACTION_CHECK_TIMES),
            Some(times)
        );
    }
    until(|| cluster.half_messages().is_empty()).await;
    assert!(cluster.messages().is_empty());
    // Stopped: a new half message is left alone.
    cluster.set_transaction_check(None);
    send_half(&c, &addr, "UNIQ-5").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(cluster.half_messages().len(), 1);
    assert_eq!(
        b.half_check_count(cluster.half_messages()[0].commit_log_offset()),
        Some(0)
    );
    within(cluster.shutdown()).await;
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test]
async fn the_check_service_ends_with_the_broker() {
    let before = alive_tasks();
    let check = Some(TransactionCheck {
        interval: Duration::from_secs(3600),
        ..TransactionCheck::default()
    });
    // Dropped without shutdown.
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    b.set_transaction_check(check);
    assert!(alive_tasks() > before);
    drop(b);
    until(|| alive_tasks() == before).await;
    // Shut down but kept.
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    b.set_transaction_check(check);
    b.set_transaction_check(check); // the replaced one ends at once
    within(b.shutdown()).await;
    until(|| alive_tasks() == before).await;
    drop(b);
}
