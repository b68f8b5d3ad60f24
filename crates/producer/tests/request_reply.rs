//! Request/reply against the testkit cluster: the broker stores the request with its `CLUSTER`,
//! a replier (a second producer, on its own client instance) reads it back and replies, and the
//! broker pushes the reply to the requester's connection (`PUSH_REPLY_MESSAGE_TO_CLIENT`).

use std::time::Duration;

use rmq_common::stored::MessageExt;
use rmq_common::{property, reply, Message, RequestCode, ResponseCode};
use rmq_producer::{ErrorKind, Producer, SendOptions};
use rmq_testkit::{MockCluster, StoredMessage, CLUSTER};
use tokio::time::{sleep, timeout};

const T: Duration = Duration::from_secs(20);
const TOPIC: &str = "PriceRequests";

async fn cluster() -> MockCluster {
    let c = MockCluster::start(2).await.expect("cluster");
    c.create_topic(TOPIC, 4);
    c
}

/// A producer on its own client instance (as another process would be).
async fn producer(c: &MockCluster, group: &str) -> Producer {
    timeout(
        T,
        Producer::builder(group)
            .name_server(c.namesrv_addr())
            .instance_name(group)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start")
}

/// The stored requests of `TOPIC` (bounded wait for `n`).
async fn requests(c: &MockCluster, n: usize) -> Vec<StoredMessage> {
    for _ in 0..400 {
        let got = c.messages_of(TOPIC);
        if got.len() >= n {
            return got;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} requests not stored in time");
}

/// Replies to the first `n` requests of `TOPIC` (in reverse order), each with `re:` + its body.
async fn reply_all(c: &MockCluster, replier: &Producer, n: usize) {
    let mut stored = requests(c, n).await;
    stored.reverse();
    for r in stored.iter().take(n) {
        let body = format!("re:{}", String::from_utf8_lossy(r.body()));
        let sent = timeout(
            T,
            replier.send_reply(&r.ext.message, body, SendOptions::new()),
        )
        .await
        .expect("in time")
        .expect("reply sent");
        assert_eq!(sent.status.as_str(), "SEND_OK");
    }
}

fn body(m: &MessageExt) -> String {
    String::from_utf8_lossy(m.message.body()).into_owned()
}

#[tokio::test]
async fn a_request_gets_its_reply() {
    let c = cluster().await;
    let requester = producer(&c, "price_client").await;
    let replier = producer(&c, "price_service").await;
    let ask = requester.request(
        Message::new(TOPIC, "SKU-1").with_tags("price"),
        Duration::from_secs(5),
    );
    let answer = reply_all(&c, &replier, 1);
    let (got, ()) = timeout(T, async { tokio::join!(ask, answer) })
        .await
        .expect("in time");
    let got = got.expect("reply");

    let request = &c.messages_of(TOPIC)[0];
    // What the requester set (Java's prepareSendRequest) and the broker added.
    let correlation_id = request.property(property::CORRELATION_ID).expect("id");
    assert_eq!(
        request.property(property::REPLY_TO_CLIENT),
        Some(requester.client_id())
    );
    assert_eq!(request.property(property::TTL), Some("5000"));
    assert_eq!(request.property(property::CLUSTER), Some(CLUSTER));
    assert_eq!(
        request.property(property::MSG_TYPE),
        None,
        "a request is a plain send"
    );
    assert_eq!(request.code, RequestCode::SEND_MESSAGE_V2);

    // The reply as the broker pushed it.
    assert_eq!(body(&got), "re:SKU-1");
    assert_eq!(got.message.topic(), reply::reply_topic(CLUSTER));
    assert_eq!(
        got.message.property(property::CORRELATION_ID),
        Some(correlation_id)
    );
    assert_eq!(got.message.property(property::MSG_TYPE), Some("reply"));
    assert!(got.message.property(property::ARRIVE_TIME).is_some());
    assert!(got.message.property(property::PUSH_REPLY_TIME).is_some());
    assert!(got.store_timestamp > 0 && got.born_timestamp > 0);
    assert!(got.store_host.port() > 0 && got.born_host.port() > 0);

    // The reply went out as SEND_REPLY_MESSAGE_V2 and was stored in the reply topic.
    let replies = c.messages_of(&reply::reply_topic(CLUSTER));
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].code, RequestCode::SEND_REPLY_MESSAGE_V2);
    assert_eq!(replies[0].property(property::CLUSTER), None);
    assert_eq!(requester.instance().waiting_replies(), 0);
    requester.shutdown().await;
    replier.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_are_matched_by_correlation_id() {
    const N: usize = 24;
    let c = cluster().await;
    let requester = producer(&c, "many_client").await;
    let replier = producer(&c, "many_service").await;
    let asks = (0..N).map(|i| {
        let p = requester.clone();
        tokio::spawn(async move {
            let got = p
                .request(
                    Message::new(TOPIC, format!("q{i}")),
                    Duration::from_secs(10),
                )
                .await;
            (i, got)
        })
    });
    let asks: Vec<_> = asks.collect();
    timeout(T, reply_all(&c, &replier, N))
        .await
        .expect("replied");
    for ask in asks {
        let (i, got) = timeout(T, ask).await.expect("in time").expect("task");
        let got = got.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(
            body(&got),
            format!("re:q{i}"),
            "request {i} got another's reply"
        );
    }
    assert_eq!(requester.instance().waiting_replies(), 0);
    requester.shutdown().await;
    replier.shutdown().await;
}

#[tokio::test]
async fn no_reply_times_out_and_no_entry_outlives_its_request() {
    let c = cluster().await;
    let requester = producer(&c, "lonely_client").await;

    // Stored, never answered: ReplyTimeout, maybe stored (it is), with the request's id.
    let err = timeout(
        T,
        requester.request(Message::new(TOPIC, "x"), Duration::from_millis(300)),
    )
    .await
    .expect("in time")
    .expect_err("no replier");
    assert!(
        matches!(err.kind(), ErrorKind::ReplyTimeout { .. }),
        "{err}"
    );
    assert!(err.is_timeout() && err.maybe_stored());
    let stored = c.messages_of(TOPIC);
    assert_eq!(err.msg_id(), stored[0].ext.uniq_key());
    assert_eq!(requester.instance().waiting_replies(), 0, "timeout");

    // The request's future dropped while waiting (a caller's own timeout).
    let dropped = timeout(
        Duration::from_millis(200),
        requester.request(Message::new(TOPIC, "y"), Duration::from_secs(30)),
    )
    .await;
    assert!(dropped.is_err());
    assert_eq!(requester.instance().waiting_replies(), 0, "cancelled");

    // The send fails: refused by the broker, or no route at all.
    for b in c.brokers() {
        b.faults().script_codes([ResponseCode::MESSAGE_ILLEGAL]);
    }
    let err = timeout(
        T,
        requester.request(Message::new(TOPIC, "z"), Duration::from_secs(5)),
    )
    .await
    .expect("in time")
    .expect_err("refused");
    assert_eq!(err.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
    assert!(!err.maybe_stored());
    let back = err.into_message().expect("handed back");
    assert!(back.property(property::CORRELATION_ID).is_some());
    let err = timeout(
        T,
        requester.request(Message::new("NoSuchTopic", "z"), Duration::from_secs(2)),
    )
    .await
    .expect("in time")
    .expect_err("no route");
    assert!(matches!(err.kind(), ErrorKind::NoRoute { .. }), "{err}");
    assert_eq!(requester.instance().waiting_replies(), 0, "send failures");
    for b in c.brokers() {
        b.faults().clear_script();
    }

    // A late reply to a timed-out request is answered SUCCESS and dropped.
    let replier = producer(&c, "late_service").await;
    let sent = timeout(
        T,
        replier.send_reply(&stored[0].ext.message, "late", SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("pushed");
    assert_eq!(sent.status.as_str(), "SEND_OK");
    requester.shutdown().await;
    replier.shutdown().await;
}

#[tokio::test]
async fn pushes_for_unknown_ids_are_answered_success() {
    let c = cluster().await;
    let requester = producer(&c, "push_client").await;
    // A send makes the broker know the client (heartbeat on first use).
    let r = timeout(T, requester.send(Message::new(TOPIC, "hello")))
        .await
        .expect("in time")
        .expect("sent");
    let broker = c.broker(&r.queue.broker_name).expect("broker");
    for _ in 0..400 {
        if !broker.producer_connections("push_client").is_empty() {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    let mut unknown = Message::new(reply::reply_topic(CLUSTER), "nobody asked");
    unknown.properties_mut().insert(property::MSG_TYPE, "reply");
    unknown
        .properties_mut()
        .insert(property::CORRELATION_ID, "no-such-request");
    unknown
        .properties_mut()
        .insert(property::REPLY_TO_CLIENT, requester.client_id());
    let code = timeout(T, broker.push_reply(&unknown))
        .await
        .expect("in time");
    assert_eq!(
        code,
        Ok(ResponseCode::SUCCESS),
        "Java answers SUCCESS and logs"
    );

    // The broker side: a reply for a client it has no connection of, or for no client.
    unknown
        .properties_mut()
        .insert(property::REPLY_TO_CLIENT, "10.9.9.9@gone");
    let err = timeout(T, broker.push_reply(&unknown))
        .await
        .expect("in time");
    assert!(err.is_err_and(|e| e.contains("not found")));
    unknown.properties_mut().remove(property::REPLY_TO_CLIENT);
    let err = timeout(T, broker.push_reply(&unknown))
        .await
        .expect("in time");
    assert!(err.is_err_and(|e| e.contains("REPLY_TO_CLIENT")));
    requester.shutdown().await;
}

#[tokio::test]
async fn a_reply_over_the_compression_threshold_arrives_inflated() {
    let c = cluster().await;
    let requester = producer(&c, "big_client").await;
    let replier = producer(&c, "big_service").await;
    let big: String = "0123456789abcdef".repeat(8 * 1024); // 128 KiB, compressible
    let ask = requester.request(Message::new(TOPIC, "big please"), Duration::from_secs(5));
    let answer = async {
        let r = &requests(&c, 1).await[0];
        timeout(
            T,
            replier.send_reply(&r.ext.message, big.clone(), SendOptions::new()),
        )
        .await
        .expect("in time")
        .expect("sent");
    };
    let (got, ()) = timeout(T, async { tokio::join!(ask, answer) })
        .await
        .expect("in time");
    let got = got.expect("reply");
    assert_eq!(got.message.body().len(), big.len());
    assert_eq!(body(&got), big);
    assert_eq!(got.sys_flag & 1, 0, "inflated: compressed bit cleared");
    // It travelled compressed (zlib, sysFlag 0x301).
    let stored = &c.messages_of(&reply::reply_topic(CLUSTER))[0];
    assert_eq!(stored.header.sys_flag & 0x701, 0x301);
    assert!(stored.body().len() < big.len() / 10);
    requester.shutdown().await;
    replier.shutdown().await;
}

#[tokio::test]
async fn replies_need_a_request_and_a_requester() {
    let c = cluster().await;
    let replier = producer(&c, "strict_service").await;
    // Not a request (never stored, no CLUSTER): refused before anything is sent.
    let err = replier
        .send_reply(&Message::new(TOPIC, "hi"), "x", SendOptions::new())
        .await
        .expect_err("not a request");
    assert!(matches!(err.kind(), ErrorKind::CannotReply(_)), "{err}");
    assert!(!err.maybe_stored());
    let replies: usize = c
        .brokers()
        .iter()
        .map(|b| b.request_count(RequestCode::SEND_REPLY_MESSAGE_V2))
        .sum();
    assert_eq!(replies, 0);

    // A request whose requester is gone: every broker answers SYSTEM_ERROR (no connection of
    // that client), retried on the others, then given up.
    let requester = producer(&c, "gone_client").await;
    let _ = timeout(
        T,
        requester.request(Message::new(TOPIC, "q"), Duration::from_millis(200)),
    )
    .await;
    requester.shutdown().await;
    let r = &requests(&c, 1).await[0];
    let err = timeout(
        T,
        replier.send_reply(&r.ext.message, "late", SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect_err("nobody to push to");
    assert_eq!(
        err.response_code(),
        Some(ResponseCode::SYSTEM_ERROR),
        "{err}"
    );
    replier.shutdown().await;
}

#[tokio::test]
async fn send_request_tells_where_the_request_is_and_shutdown_ends_the_wait() {
    let c = cluster().await;
    let requester = timeout(
        T,
        Producer::builder("two_step_client")
            .name_server(c.namesrv_addr())
            .instance_name("two_step_client")
            .shutdown_timeout(Duration::from_millis(200))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let replier = producer(&c, "two_step_service").await;

    let pending = timeout(
        T,
        requester.send_request(
            Message::new(TOPIC, "first"),
            SendOptions::new().timeout(Duration::from_secs(10)),
        ),
    )
    .await
    .expect("in time")
    .expect("stored");
    let stored = &c.messages_of(TOPIC)[0];
    assert_eq!(
        pending.send_result().msg_id,
        stored.ext.uniq_key().unwrap_or_default()
    );
    assert_eq!(pending.send_result().offset_msg_id, stored.msg_id);
    assert_eq!(
        Some(pending.correlation_id()),
        stored.property(property::CORRELATION_ID)
    );
    assert!(pending.time_left() <= Duration::from_secs(10));
    timeout(
        T,
        replier.send_reply(&stored.ext.message, "second", SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("replied");
    let got = timeout(T, pending.reply())
        .await
        .expect("in time")
        .expect("reply");
    assert_eq!(body(&got), "second");

    // A dropped PendingReply leaves the table at once.
    let pending = timeout(
        T,
        requester.send_request(Message::new(TOPIC, "dropped"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("stored");
    assert_eq!(requester.instance().waiting_replies(), 1);
    drop(pending);
    assert_eq!(requester.instance().waiting_replies(), 0);

    // Shutdown waits for a pending reply up to its shutdown timeout, then cancels the wait.
    let pending = timeout(
        T,
        requester.send_request(
            Message::new(TOPIC, "never answered"),
            SendOptions::new().timeout(Duration::from_secs(60)),
        ),
    )
    .await
    .expect("in time")
    .expect("stored");
    let wait = tokio::spawn(pending.reply());
    timeout(T, requester.shutdown())
        .await
        .expect("shutdown in time");
    let err = timeout(T, wait)
        .await
        .expect("in time")
        .expect("task")
        .expect_err("cancelled");
    assert!(matches!(err.kind(), ErrorKind::Cancelled { .. }), "{err}");
    assert!(err.maybe_stored());
    replier.shutdown().await;
}
