//! Timer messages, recall and compression types end to end against the mock cluster: timer
//! messages held until their time and recalled, bad timer messages and bad handles refused
//! before anything is sent, brokers' refusals typed, every compression type stored as sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmq_common::compression::CompressionType;
use rmq_common::recall::RecallHandle;
use rmq_common::validate::ValidationError;
use rmq_common::{sysflag, BatchError, Message, RequestCode, ResponseCode};
use rmq_producer::{ErrorKind, Producer, RecallError, SendOptions};
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

/// Whether a validation error is the one a case expects.
type IsExpected = fn(&ValidationError) -> bool;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn setup(topic: &str) -> (MockCluster, Producer) {
    let c = timeout(T, MockCluster::start(2))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 4);
    let p = timeout(
        T,
        Producer::builder("timer_pg")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    (c, p)
}

fn sends(c: &MockCluster) -> usize {
    c.brokers()
        .iter()
        .map(|b| {
            b.request_count(RequestCode::SEND_MESSAGE_V2)
                + b.request_count(RequestCode::SEND_BATCH_MESSAGE)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_message_is_held_then_recalled_and_never_delivered() {
    let (c, p) = setup("TimerT").await;
    let r = timeout(
        T,
        p.send(Message::new("TimerT", "remind me").with_delay_time_sec(60)),
    )
    .await
    .expect("in time")
    .expect("sent");
    let handle = r
        .recall_handle
        .clone()
        .expect("a timer message has a recall handle");
    let decoded = RecallHandle::decode(&handle).expect("Java's HandleV1");
    assert_eq!(
        (decoded.topic.as_str(), decoded.msg_id.as_str()),
        ("TimerT", r.msg_id.as_str())
    );
    assert_eq!(decoded.broker_name, r.queue.broker_name);
    let broker = c.broker(&r.queue.broker_name).expect("broker");
    assert_eq!(broker.timer_messages().len(), 1);
    assert!(
        c.messages_of("TimerT").is_empty(),
        "not visible before its time"
    );

    let id = timeout(T, p.recall("TimerT", &handle))
        .await
        .expect("in time")
        .expect("recalled");
    assert_eq!(id, r.msg_id);
    let recalls = broker.recalls();
    assert_eq!(recalls.len(), 1);
    let h = &recalls[0].header;
    assert_eq!(h.producer_group.as_deref(), Some("timer_pg"));
    assert_eq!(
        (h.topic.as_str(), h.recall_handle.as_str()),
        ("TimerT", handle.as_str())
    );
    assert_eq!(h.broker_name.as_deref(), Some(r.queue.broker_name.as_str()));
    assert!(recalls[0].removed);
    assert_eq!(broker.fire_timers(), 0, "nothing left to deliver");
    assert!(c.messages_of("TimerT").is_empty());
    p.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_message_is_delivered_at_its_time() {
    let (c, p) = setup("TimerD").await;
    let at = now_ms() + 1_500;
    let r = timeout(
        T,
        p.send(Message::new("TimerD", "later").with_deliver_time_ms(at)),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert!(r.recall_handle.is_some());
    assert!(c.messages_of("TimerD").is_empty(), "not before its time");
    // The broker delivers at its 1 s slot before the time asked for; bounded wait.
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = c.messages_of("TimerD");
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered.len(), 1, "delivered within 5 s");
    assert!(
        now_ms() + 1_000 >= at,
        "not more than the 1 s precision early"
    );
    assert_eq!(delivered[0].ext.uniq_key(), Some(r.msg_id.as_str()));
    assert_eq!(delivered[0].queue_id(), r.queue.queue_id);
    assert_eq!(delivered[0].body().as_ref(), b"later");
    // Too late to recall now: the broker's ILLEGAL_OPERATION, typed.
    let err = p
        .recall("TimerD", r.recall_handle.as_deref().unwrap_or_default())
        .await
        .expect_err("late");
    assert_eq!(
        err.response_code(),
        Some(ResponseCode::ILLEGAL_OPERATION),
        "{err}"
    );
    assert!(!err.maybe_recalled());
    p.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timer_messages_are_refused_before_sending() {
    let (c, p) = setup("TimerBad").await;
    let m = || Message::new("TimerBad", "x");
    let now = now_ms();
    let cases: Vec<(Message, IsExpected)> = vec![
        (m().with_deliver_time_ms(now - 1_000), |e| {
            matches!(e, ValidationError::TimerNotInFuture { .. })
        }),
        (m().with_delay_time_ms(0), |e| {
            matches!(e, ValidationError::TimerNotInFuture { .. })
        }),
        (m().with_delay_time_sec(3 * 24 * 3600 + 1), |e| {
            matches!(e, ValidationError::TimerTooFar { .. })
        }),
        (m().with_delay_level(3).with_delay_time_sec(5), |e| {
            matches!(e, ValidationError::TimerWithDelayLevel { .. })
        }),
        (
            m().with_delay_time_sec(5).with_deliver_time_ms(now + 9_000),
            |e| matches!(e, ValidationError::TimerConflict { .. }),
        ),
    ];
    for (msg, want) in cases {
        let err = p.send(msg.clone()).await.expect_err("refused");
        match err.kind() {
            ErrorKind::InvalidMessage(v) => assert!(want(v), "{v}"),
            other => panic!("{other}"),
        }
        assert!(!err.maybe_stored());
        assert_eq!(
            err.into_message().map(|m| m.body().clone()),
            Some(msg.body().clone())
        );
        let err = p
            .send_async(msg.clone(), SendOptions::new())
            .await
            .expect_err("refused async");
        assert!(
            matches!(err.kind(), ErrorKind::InvalidMessage(v) if want(v)),
            "{err}"
        );
        let err = p
            .send_oneway(msg, SendOptions::new())
            .await
            .expect_err("refused oneway");
        assert!(
            matches!(err.kind(), ErrorKind::InvalidMessage(v) if want(v)),
            "{err}"
        );
    }
    // A broker with a smaller maximum: the producer's setting.
    let short = timeout(
        T,
        Producer::builder("timer_pg2")
            .name_server(c.namesrv_addr())
            .timer_max_delay(Duration::from_secs(60))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let err = short
        .send(m().with_delay_time_sec(61))
        .await
        .expect_err("too far");
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidMessage(ValidationError::TimerTooFar { .. })
    ));
    // In a batch, a timer would be ignored by the broker: refused.
    let err = p
        .send_batch(vec![m(), m().with_delay_time_sec(5)], SendOptions::new())
        .await
        .expect_err("batch");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidBatch(BatchError::TimerNotSupported { index: 1 })
        ),
        "{err}"
    );
    assert_eq!(err.into_batch().map(|b| b.len()), Some(2));
    assert_eq!(sends(&c), 0, "nothing was sent");
    short.shutdown().await;
    p.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_refusals_are_typed() {
    let (c, p) = setup("TimerR").await;
    let r = p
        .send(Message::new("TimerR", "x").with_delay_time_sec(30))
        .await
        .expect("sent");
    let handle = r.recall_handle.clone().expect("handle");
    let decoded = RecallHandle::decode(&handle).expect("decode");
    // Before sending: a bad handle, another topic's handle, a retry topic.
    let err = p
        .recall("TimerR", "not a handle")
        .await
        .expect_err("bad handle");
    assert!(matches!(err, RecallError::InvalidHandle(_)), "{err}");
    let err = p.recall("Other", &handle).await.expect_err("topic");
    assert!(matches!(err, RecallError::TopicMismatch { .. }), "{err}");
    let err = p
        .recall("%RETRY%g", &handle)
        .await
        .expect_err("retry topic");
    assert!(matches!(err, RecallError::UnsupportedTopic(_)), "{err}");
    let recall_requests = || -> usize {
        c.brokers()
            .iter()
            .map(|b| b.request_count(RequestCode::RECALL_MESSAGE))
            .sum()
    };
    assert_eq!(recall_requests(), 0);
    // A broker no route names.
    let ghost = RecallHandle {
        broker_name: "broker-z".into(),
        ..decoded.clone()
    }
    .encode();
    let err = p
        .recall("TimerR", &ghost)
        .await
        .expect_err("unknown broker");
    assert!(
        matches!(err, RecallError::BrokerNotFound { ref broker, .. } if broker == "broker-z"),
        "{err}"
    );
    // The broker's refusals: recall switched off, then allowed.
    let broker = c.broker(&decoded.broker_name).expect("broker");
    broker.set_recall_enabled(false);
    let err = p.recall("TimerR", &handle).await.expect_err("off");
    assert_eq!(
        err.response_code(),
        Some(ResponseCode::NO_PERMISSION),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("recall failed, operation is forbidden"),
        "{err}"
    );
    assert_eq!(broker.timer_messages().len(), 1);
    broker.set_recall_enabled(true);
    assert_eq!(
        p.recall("TimerR", &handle).await.expect("recalled"),
        r.msg_id
    );
    // After shutdown: not running.
    p.shutdown().await;
    assert!(matches!(
        p.recall("TimerR", &handle).await,
        Err(RecallError::NotRunning)
    ));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_type_is_stored_as_sent() {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Zip", 4);
    let body = b"order-42 created; ".repeat(600);
    for ty in [
        CompressionType::Zlib,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ] {
        let p = Producer::builder(format!("zip_{ty}"))
            .name_server(c.namesrv_addr())
            .compression_type(ty)
            .start()
            .await
            .expect("start");
        let r = p
            .send(Message::new("Zip", body.clone()))
            .await
            .expect("sent");
        let stored = c
            .messages_of("Zip")
            .into_iter()
            .find(|m| m.ext.uniq_key() == Some(r.msg_id.as_str()))
            .expect("stored");
        assert_eq!(
            stored.header.sys_flag,
            sysflag::COMPRESSED_FLAG | ty.sys_flag(),
            "{ty}"
        );
        assert!(stored.body().len() < body.len() / 4, "{ty}: compressed");
        assert_eq!(
            ty.decompress(stored.body(), body.len())
                .expect("decompress"),
            body,
            "{ty}"
        );
        p.shutdown().await;
    }
    // A zstd level beyond 22 or a zlib level beyond 9 is a configuration error.
    let bad = Producer::builder("zip_bad")
        .name_server(c.namesrv_addr())
        .compression_type(CompressionType::Zstd)
        .compression(4096, 23)
        .build_config();
    assert!(bad.is_err());
    let ok = Producer::builder("zip_ok")
        .name_server(c.namesrv_addr())
        .compression_type(CompressionType::Zstd)
        .compression(4096, 19)
        .build_config();
    assert!(ok.is_ok());
    c.shutdown().await;
}
