//! TLS interop with the TLS cluster of `scripts/rocketmq-dev.sh` (a name server speaking TLS, in
//! permissive mode, and broker-tls, a real rocketmq-rust broker that accepts TLS only, both with a
//! certificate for 127.0.0.1 signed by the cluster's CA):
//!
//! - a producer trusting that CA sends over TLS, and what it sent is read back over TLS with
//!   `VIEW_MESSAGE_BY_ID`;
//! - a producer, and a remoting client, trusting only an unrelated CA fail with a certificate
//!   error before writing anything;
//! - a producer without TLS (its route lookup works: the name server also accepts plaintext) is
//!   refused by the broker, fast, and its message is not stored.
//!
//! Skipped (with a note) when the TLS cluster is not configured, failed when `CI` is set without it.

mod support;

use std::time::{Duration, Instant};

use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::decode_stored_message;
use rmq_common::{Message, MessageQueue, RequestCode, ResponseCode, ViewMessageRequestHeader};
use rmq_producer::{ErrorKind, Producer, SendError, SendOptions, SendResult, SendStatus};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig, RemotingError, TlsConfig};
use rmq_testkit::interop::{require, TlsCluster};
use support::{unique_topic, INTEROP_TIMEOUT as T};
use tokio::time::timeout;

/// The broker of the TLS cluster (the script's name for it).
const BROKER: &str = "broker-tls";

/// How long a refusal may take: far below the 10 s send timeout of the producers here.
const FAST: Duration = Duration::from_secs(5);

/// The TLS cluster from the environment, `None` (skip) when not configured outside CI.
fn tls_cluster(test: &str) -> Option<TlsCluster> {
    require(
        test,
        TlsCluster::from_vars(|k| std::env::var(k).ok()),
        std::env::var_os("CI").is_some(),
    )
}

/// TLS trusting exactly the CA in `ca_file`.
fn trusting(ca_file: &str) -> TlsConfig {
    TlsConfig::new()
        .with_ca_file(ca_file)
        .unwrap_or_else(|e| panic!("CA file {ca_file}: {e}"))
}

/// A remoting client speaking TLS trusting `ca_file`.
fn tls_client(ca_file: &str) -> RemotingClient {
    RemotingClient::new(RemotingConfig {
        tls: Some(trusting(ca_file)),
        ..RemotingConfig::default()
    })
}

async fn producer(namesrv: &str, group: &str, tls: Option<TlsConfig>) -> Producer {
    let mut b = Producer::builder(group)
        .name_server(namesrv)
        .send_timeout(Duration::from_secs(10))
        .retries(0);
    if let Some(tls) = tls {
        b = b.tls(tls);
    }
    timeout(T, b.start())
        .await
        .expect("start in time")
        .expect("start")
}

/// The error of the (last) attempt behind `err`.
fn attempt(err: &ErrorKind) -> &ErrorKind {
    match err {
        ErrorKind::RetriesExhausted { last, .. }
        | ErrorKind::Timeout {
            last: Some(last), ..
        } => attempt(last),
        other => other,
    }
}

/// The transport error behind `err`, wherever it sits (a send to the broker, or the route
/// lookup at the name server).
fn remoting_cause(err: &SendError) -> Option<&RemotingError> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(attempt(err.kind()));
    while let Some(e) = cause {
        if let Some(r) = e.downcast_ref::<RemotingError>() {
            return Some(r);
        }
        cause = e.source();
    }
    None
}

use rmq_testkit::error_line as chain;

/// `VIEW_MESSAGE_BY_ID` of the message of `r` on the broker at `addr`: its body.
async fn read_back(client: &RemotingClient, addr: &str, r: &SendResult) -> Vec<u8> {
    let offset = OffsetMessageId::decode(&r.offset_msg_id)
        .expect("offset message id")
        .commit_log_offset;
    let header = ViewMessageRequestHeader {
        topic: Some(r.queue.topic.clone()),
        offset,
    };
    let req = RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &header);
    let resp = timeout(T, client.invoke_sync(addr, req, Duration::from_secs(10)))
        .await
        .expect("view in time")
        .expect("VIEW_MESSAGE_BY_ID over TLS");
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "VIEW_MESSAGE_BY_ID {}: {:?}",
        r.offset_msg_id,
        resp.remark
    );
    let stored = decode_stored_message(&mut resp.body.clone()).expect("stored message");
    assert_eq!(stored.message.topic(), r.queue.topic);
    stored.message.body().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_tls_trusted_sends_are_stored_and_others_refused() {
    let Some(tls) = tls_cluster("interop_tls_trusted_sends_are_stored_and_others_refused") else {
        return;
    };
    let topic = unique_topic("RmqTls");

    // (a) Trusting the cluster's CA: route lookup and sends over TLS, stored, read back over TLS.
    let trusted = producer(&tls.namesrv, "RmqTlsGroup", Some(trusting(&tls.ca_file))).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        let body = format!("tls {i}");
        let r = timeout(
            T,
            trusted.send(Message::new(topic.as_str(), body.clone()).with_keys(["k"])),
        )
        .await
        .expect("in time")
        .expect("a send over TLS is stored");
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(r.queue.broker_name, BROKER);
        sent.push((body, r));
    }
    let reader = tls_client(&tls.ca_file);
    for (body, r) in &sent {
        assert_eq!(
            read_back(&reader, &tls.broker, r).await,
            body.as_bytes(),
            "{}",
            r.msg_id
        );
    }

    // (b) Trusting only another CA: a certificate error, typed, before anything is written. The
    // same client id as the trusted producer (no instance name): it must not share that
    // producer's connections, which trust the cluster's CA.
    let untrusting = producer(
        &tls.namesrv,
        "RmqTlsOtherCa",
        Some(trusting(&tls.other_ca_file)),
    )
    .await;
    let started = Instant::now();
    let err = timeout(
        T,
        untrusting.send(Message::new(topic.as_str(), "untrusted")),
    )
    .await
    .expect("in time")
    .expect_err("a server whose certificate the client does not trust");
    eprintln!("trusting another CA: {}", chain(&err));
    assert!(
        started.elapsed() < FAST,
        "took {:?}: {err}",
        started.elapsed()
    );
    let cause = remoting_cause(&err).unwrap_or_else(|| panic!("no transport cause: {err:?}"));
    assert!(cause.is_tls(), "{cause:?}");
    assert!(cause.is_certificate_error(), "{cause:?}");
    assert!(matches!(cause, RemotingError::Tls { .. }), "{cause:?}");
    assert!(!err.maybe_stored(), "nothing was written: {err}");
    timeout(T, untrusting.shutdown()).await.expect("shutdown");

    // The same at the broker itself, with a remoting client.
    let other = tls_client(&tls.other_ca_file);
    let header = ViewMessageRequestHeader {
        topic: Some(topic.clone()),
        offset: 0,
    };
    let req = RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &header);
    let err = timeout(
        T,
        other.invoke_sync(&tls.broker, req, Duration::from_secs(10)),
    )
    .await
    .expect("in time")
    .expect_err("the broker's certificate is not trusted");
    eprintln!("remoting client trusting another CA: {}", chain(&err));
    assert!(err.is_certificate_error(), "{err:?}");
    assert!(!err.maybe_delivered(), "{err:?}");

    // (c) No TLS: the route comes (the name server is permissive), the broker refuses plaintext.
    let queue: MessageQueue = sent[0].1.queue.clone();
    let plain = producer(&tls.namesrv, "RmqTlsPlain", None).await;
    let started = Instant::now();
    let err = timeout(
        T,
        plain.send_with(
            Message::new(topic.as_str(), "plaintext"),
            SendOptions::new().queue(queue.clone()),
        ),
    )
    .await
    .expect("in time")
    .expect_err("the broker accepts TLS only");
    eprintln!("plaintext: {}", chain(&err));
    assert!(
        started.elapsed() < FAST,
        "took {:?}: {err}",
        started.elapsed()
    );
    assert!(
        matches!(attempt(err.kind()), ErrorKind::Transport { broker, .. } if broker == BROKER),
        "the refusal comes from {BROKER}: {err:?}"
    );
    assert!(
        !remoting_cause(&err).is_some_and(RemotingError::is_tls),
        "a plaintext client has no TLS error: {err:?}"
    );
    timeout(T, plain.shutdown()).await.expect("shutdown");

    // ... and is not stored: the next message on that queue takes the offset right after the
    // last one of (a).
    let last = sent
        .iter()
        .filter(|(_, r)| r.queue == queue)
        .map(|(_, r)| r.queue_offset)
        .max()
        .expect("a send of (a) on the queue");
    let next = timeout(
        T,
        trusted.send_with(
            Message::new(topic.as_str(), "after"),
            SendOptions::new().queue(queue.clone()),
        ),
    )
    .await
    .expect("in time")
    .expect("a send over TLS is stored");
    assert_eq!(
        next.queue_offset,
        last + 1,
        "the refused plaintext message took no place in {queue}"
    );
    assert_eq!(read_back(&reader, &tls.broker, &next).await, b"after");

    timeout(T, trusted.shutdown()).await.expect("shutdown");
}
