//! Request/reply through a real broker (`scripts/rocketmq-dev.sh start`): a requester sends a
//! request and waits; a replier (a second producer on its own client instance, driven by the
//! test since there is no consumer) reads the request back from the broker's commit log
//! (`VIEW_MESSAGE_BY_ID`), builds the reply from it (topic `{CLUSTER}_REPLY_TOPIC`) and sends it
//! with `SEND_REPLY_MESSAGE_V2`; the broker pushes it to the requester
//! (`PUSH_REPLY_MESSAGE_TO_CLIENT`).
//!
//! Skipped (with a note) when the cluster is not configured, failed when `CI` is set without it.

mod support;

use std::time::{Duration, Instant};

use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::MessageExt;
use rmq_common::{property, reply, Message, MessageQueue};
use rmq_producer::{Producer, SendOptions};
use rmq_remoting::{RemotingClient, RemotingConfig};
use support::commit_log::view;
use support::{cluster_shared, real_cluster, unique_topic, RealCluster, INTEROP_TIMEOUT as T};
use tokio::time::timeout;

const BROKER: &str = "broker-a";

async fn start(cluster: &RealCluster, group: &str) -> Producer {
    timeout(
        T,
        Producer::builder(group)
            .name_server(&cluster.namesrv)
            .instance_name(group)
            .start(),
    )
    .await
    .expect("start in time")
    .expect("start")
}

/// The queue every message of the test goes to, so that the replier knows where to look.
fn queue(topic: &str) -> MessageQueue {
    MessageQueue::new(topic, BROKER, 0)
}

/// A marker sent now: where to start reading the commit log of `BROKER` (also creates `topic`).
async fn marker(p: &Producer, topic: &str) -> i64 {
    let r = timeout(
        T,
        p.send_with(
            Message::new(topic, "marker"),
            SendOptions::new().queue(queue(topic)),
        ),
    )
    .await
    .expect("in time")
    .expect("marker sent");
    OffsetMessageId::decode(&r.offset_msg_id)
        .expect("offset message id")
        .commit_log_offset
}

/// The stored request with body `body`: the commit log of `BROKER` read record after record
/// from `from` (the marker) until it shows up, resuming where the last read ended (other tests
/// may write to the same broker meanwhile). Bounded by `T`.
async fn read_request(
    client: &RemotingClient,
    cluster: &RealCluster,
    topic: &str,
    from: i64,
    body: &str,
) -> MessageExt {
    let addr = cluster.broker_addr(BROKER).expect("broker-a address");
    let deadline = Instant::now() + T;
    let mut offset = from;
    for _ in 0..1_000_000 {
        assert!(
            Instant::now() < deadline,
            "request {body} not stored in time"
        );
        match timeout(T, view(client, addr, topic, offset))
            .await
            .ok()
            .flatten()
        {
            Some(s) => {
                offset += i64::try_from(s.raw.len()).expect("record size");
                let m = s.ext;
                if m.message.topic() == topic && m.message.body().as_ref() == body.as_bytes() {
                    return m;
                }
            }
            // The end of the log for now: wait for more.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("request {body} not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_a_request_gets_the_reply_of_another_producer() {
    let Some(cluster) = real_cluster("interop_a_request_gets_the_reply_of_another_producer") else {
        return;
    };
    let _shared = cluster_shared().await;
    let topic = unique_topic("RmqRequest");
    let requester = start(&cluster, "RmqInteropRequester").await;
    let replier = start(&cluster, "RmqInteropReplier").await;
    let client = RemotingClient::new(RemotingConfig::default());
    let from = marker(&replier, &topic).await;

    for (i, reply_body) in ["pong".to_owned(), "0123456789".repeat(2_000)]
        .into_iter()
        .enumerate()
    {
        let ask_body = format!("ping-{i}");
        let ask = requester.request_with(
            Message::new(&topic, ask_body.clone()),
            SendOptions::new()
                .queue(queue(&topic))
                .timeout(Duration::from_secs(15)),
        );
        let answer = async {
            let request = read_request(&client, &cluster, &topic, from, &ask_body).await;
            // What the broker stored: the request properties and the broker's CLUSTER.
            let m = &request.message;
            assert_eq!(
                m.property(property::REPLY_TO_CLIENT),
                Some(requester.client_id())
            );
            assert!(m.property(property::CORRELATION_ID).is_some());
            assert_eq!(m.property(property::TTL), Some("15000"));
            let cluster_name = m
                .property(property::CLUSTER)
                .expect("CLUSTER set by the broker");
            let sent = timeout(
                T,
                replier.send_reply(m, reply_body.clone(), SendOptions::new()),
            )
            .await
            .expect("in time")
            .unwrap_or_else(|e| panic!("reply to {cluster_name}: {e:#?}"));
            (request, sent)
        };
        let (got, (request, sent)) = timeout(T, async { tokio::join!(ask, answer) })
            .await
            .expect("in time");
        let got = got.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(
            got.message.body().as_ref(),
            reply_body.as_bytes(),
            "request {i}"
        );
        assert_eq!(
            got.message.property(property::CORRELATION_ID),
            request.message.property(property::CORRELATION_ID)
        );
        let cluster_name = request
            .message
            .property(property::CLUSTER)
            .unwrap_or_default();
        assert_eq!(got.message.topic(), reply::reply_topic(cluster_name));
        assert!(got.message.property(property::PUSH_REPLY_TIME).is_some());
        eprintln!(
            "request {i}: reply of {} bytes via {} ({}), {}",
            reply_body.len(),
            sent.queue,
            sent.msg_id,
            got.message.topic()
        );
    }
    assert_eq!(requester.instance().waiting_replies(), 0);
    timeout(T, requester.shutdown()).await.expect("shutdown");
    timeout(T, replier.shutdown()).await.expect("shutdown");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_no_reply_times_out_and_a_reply_to_a_gone_requester_is_refused() {
    let Some(cluster) =
        real_cluster("interop_no_reply_times_out_and_a_reply_to_a_gone_requester_is_refused")
    else {
        return;
    };
    let _shared = cluster_shared().await;
    let topic = unique_topic("RmqRequestGone");
    let requester = start(&cluster, "RmqInteropRequesterGone").await;
    let replier = start(&cluster, "RmqInteropReplierGone").await;
    let client = RemotingClient::new(RemotingConfig::default());
    let from = marker(&replier, &topic).await;

    let err = timeout(
        T,
        requester.request_with(
            Message::new(&topic, "unanswered"),
            SendOptions::new()
                .queue(queue(&topic))
                .timeout(Duration::from_secs(1)),
        ),
    )
    .await
    .expect("in time")
    .expect_err("nobody replies");
    assert!(
        matches!(err.kind(), rmq_producer::ErrorKind::ReplyTimeout { .. }),
        "{err}"
    );
    assert!(err.maybe_stored() && err.is_timeout());
    assert_eq!(requester.instance().waiting_replies(), 0);
    let request = read_request(&client, &cluster, &topic, from, "unanswered").await;
    assert_eq!(err.msg_id(), request.uniq_key());

    // The requester leaves: the broker has no session of its client id any more and answers
    // SYSTEM_ERROR (retried, then given up).
    timeout(T, requester.shutdown()).await.expect("shutdown");
    let err = timeout(
        T,
        replier.send_reply(&request.message, "too late", SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect_err("no requester");
    assert_eq!(
        err.response_code(),
        Some(rmq_common::ResponseCode::SYSTEM_ERROR),
        "{err:#?}"
    );
    eprintln!("reply to a gone requester: {err}");
    timeout(T, replier.shutdown()).await.expect("shutdown");
    client.shutdown().await;
}
