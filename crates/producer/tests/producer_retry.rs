//! The retry loop against the testkit cluster: busy, black-holed, refusing and closing brokers,
//! non-retryable codes, queue-pinned sends, the deadline, and what errors say about storage.

use std::time::{Duration, Instant};

use rmq_common::{property, Message, MessageQueue, RequestCode, ResponseCode};
use rmq_producer::{ErrorKind, Producer, ProducerBuilder, SendOptions, SendStatus};
use rmq_testkit::{MockBroker, MockCluster, Reply};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

async fn cluster(brokers: usize, topic: &str) -> MockCluster {
    let c = timeout(T, MockCluster::start(brokers))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 1);
    c
}

fn builder(c: &MockCluster) -> ProducerBuilder {
    Producer::builder("RetryGroup")
        .name_server(c.namesrv_addr())
        .busy_backoff(Duration::from_millis(20))
}

async fn start(b: ProducerBuilder) -> Producer {
    timeout(T, b.start())
        .await
        .expect("in time")
        .expect("start")
}

fn broker<'a>(c: &'a MockCluster, name: &str) -> &'a MockBroker {
    c.broker(name).expect("broker")
}

fn sends(b: &MockBroker) -> usize {
    b.request_count(RequestCode::SEND_MESSAGE_V2)
}

async fn stop(p: Producer, c: MockCluster) {
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_busy_broker_is_retried_on_the_other_and_then_isolated() {
    let c = cluster(2, "BusyTopic").await;
    broker(&c, "broker-a")
        .faults()
        .script_codes(vec![ResponseCode::SYSTEM_BUSY; 100]);
    let p = start(builder(&c)).await;
    for i in 0..20 {
        let r = timeout(T, p.send(Message::new("BusyTopic", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b", "send {i}");
        assert_eq!(r.status, SendStatus::SendOk);
    }
    // The first busy answer isolates broker-a (10 s): it is asked exactly once, and the send
    // that asked it made exactly two attempts (a, then b).
    assert_eq!(sends(broker(&c, "broker-a")), 1);
    assert_eq!(sends(broker(&c, "broker-b")), 20);
    assert_eq!(c.messages_of("BusyTopic").len(), 20);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_busy_exhausts_the_attempts_alternating_brokers() {
    let c = cluster(2, "AllBusy").await;
    for b in c.brokers() {
        b.faults().script_codes(vec![ResponseCode::SYSTEM_BUSY; 10]);
    }
    let p = start(builder(&c)).await;
    let err = timeout(T, p.send(Message::new("AllBusy", "x")))
        .await
        .expect("in time")
        .expect_err("busy");
    let ErrorKind::RetriesExhausted {
        attempts,
        ref brokers,
        ref last,
        ..
    } = *err.kind()
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(attempts, 3, "1 + 2 retries");
    assert_eq!(brokers.len(), 3);
    assert!(
        brokers[0] != brokers[1] && brokers[1] != brokers[2],
        "each retry avoids the last broker: {brokers:?}"
    );
    assert!(
        matches!(
            **last,
            ErrorKind::Broker {
                code: ResponseCode::SYSTEM_BUSY,
                ..
            }
        ),
        "{last}"
    );
    assert_eq!(err.response_code(), Some(ResponseCode::SYSTEM_BUSY));
    assert!(!err.maybe_stored(), "refused every time");
    assert_eq!(
        err.into_message().map(|m| m.body().clone()),
        Some("x".into())
    );
    assert_eq!(
        sends(broker(&c, "broker-a")) + sends(broker(&c, "broker-b")),
        3
    );
    assert!(c.messages().is_empty());
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_retryable_code_fails_at_once() {
    let c = cluster(2, "Illegal").await;
    for b in c.brokers() {
        b.faults().script_codes([ResponseCode::MESSAGE_ILLEGAL]);
    }
    let p = start(builder(&c)).await;
    let err = timeout(T, p.send(Message::new("Illegal", "x")))
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Broker {
                code: ResponseCode::MESSAGE_ILLEGAL,
                ..
            }
        ),
        "one attempt, the broker's answer as is: {err}"
    );
    assert_eq!(
        sends(broker(&c, "broker-a")) + sends(broker(&c, "broker-b")),
        1
    );
    assert!(!err.maybe_stored());
    assert!(err.into_message().is_some());
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_codes_replace_the_retry_set() {
    let c = cluster(2, "Codes").await;
    for b in c.brokers() {
        b.faults().script_codes(vec![ResponseCode::SYSTEM_BUSY; 3]);
    }
    let p = start(builder(&c).retry_response_codes([ResponseCode::TOPIC_NOT_EXIST])).await;
    let err = timeout(T, p.send(Message::new("Codes", "x")))
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Broker {
                code: ResponseCode::SYSTEM_BUSY,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        sends(broker(&c, "broker-a")) + sends(broker(&c, "broker-b")),
        1
    );
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_broker_costs_one_capped_attempt_within_the_deadline() {
    let c = cluster(2, "Hole").await;
    broker(&c, "broker-a").faults().set_black_hole(true);
    let p = start(builder(&c).send_timeout(Duration::from_millis(1500))).await;
    let mut slowest = Duration::ZERO;
    for i in 0..6 {
        let t0 = Instant::now();
        let r = timeout(T, p.send(Message::new("Hole", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        slowest = slowest.max(t0.elapsed());
        assert_eq!(r.queue.broker_name, "broker-b");
    }
    // The hung attempt is capped at a fair share (1.5 s / 3 attempts), then broker-b answers.
    assert!(
        slowest < Duration::from_millis(1500),
        "within the deadline: {slowest:?}"
    );
    assert!(
        slowest >= Duration::from_millis(450),
        "one send waited for the hole: {slowest:?}"
    );
    assert_eq!(
        sends(broker(&c, "broker-a")),
        1,
        "isolated after its timeout"
    );
    assert_eq!(c.messages_of("Hole").len(), 6);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_broker_fails_over_fast_and_never_receives() {
    let c = cluster(2, "Refuse").await;
    let p = start(builder(&c)).await;
    // Learn the route while both brokers are up, then broker-a refuses connections.
    timeout(T, p.send(Message::new("Refuse", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    let a = broker(&c, "broker-a");
    a.down().await;
    let before = sends(a);
    for i in 0..6 {
        let t0 = Instant::now();
        let r = timeout(T, p.send(Message::new("Refuse", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b");
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "a refused connect fails fast: {:?}",
            t0.elapsed()
        );
    }
    assert_eq!(sends(a), before);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closed_after_the_write_is_retried_elsewhere() {
    let c = cluster(2, "Closing").await;
    for b in c.brokers() {
        b.faults().script([Reply::Close]);
    }
    let p = start(builder(&c)).await;
    let r = timeout(T, p.send(Message::new("Closing", "x")))
        .await
        .expect("in time")
        .expect("sent on the second broker");
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(c.messages_of("Closing").len(), 1);
    // x closes, y closes (each after reading the request), x answers.
    assert_eq!(
        sends(broker(&c, "broker-a")) + sends(broker(&c, "broker-b")),
        3
    );
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_hung_broker_times_out_and_may_have_stored() {
    let c = cluster(1, "Hung").await;
    broker(&c, "broker-a").faults().set_black_hole(true);
    let p = start(builder(&c)).await;
    let t0 = Instant::now();
    let err = timeout(
        T,
        p.send_with(
            Message::new("Hung", "x"),
            SendOptions::new().timeout(Duration::from_millis(600)),
        ),
    )
    .await
    .expect("in time")
    .expect_err("no answer");
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert!(err.maybe_stored(), "written, never answered: {err}");
    assert!(
        err.into_message().is_none(),
        "a message that may be stored is not handed back"
    );
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_send_retries_only_on_its_queue_and_only_when_not_stored() {
    let c = cluster(2, "Pinned").await;
    let a = broker(&c, "broker-a");
    a.faults()
        .script_codes([ResponseCode::SYSTEM_BUSY, ResponseCode::SYSTEM_BUSY]);
    let p = start(builder(&c)).await;
    let mq = MessageQueue::new("Pinned", "broker-a", 0);
    let r = timeout(
        T,
        p.send_with(
            Message::new("Pinned", "x"),
            SendOptions::new().queue(mq.clone()),
        ),
    )
    .await
    .expect("in time")
    .expect("third try");
    assert_eq!(r.queue, mq);
    assert_eq!(
        (sends(a), sends(broker(&c, "broker-b"))),
        (3, 0),
        "never moved to broker-b"
    );

    a.faults().set_black_hole(true);
    let err = timeout(
        T,
        p.send_with(Message::new("Pinned", "y"), SendOptions::new().queue(mq)),
    )
    .await
    .expect("in time")
    .expect_err("hole");
    assert!(err.maybe_stored(), "{err}");
    assert_eq!(sends(a), 4, "a timeout may have stored it: not retried");
    assert_eq!(sends(broker(&c, "broker-b")), 0);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_but_not_ok_is_returned_or_retried_as_configured() {
    let c = cluster(2, "Flush").await;
    for b in c.brokers() {
        b.faults().script_codes([ResponseCode::FLUSH_DISK_TIMEOUT]);
    }
    let p = start(builder(&c)).await;
    let r = timeout(T, p.send(Message::new("Flush", "x")))
        .await
        .expect("in time")
        .expect("stored");
    assert_eq!(r.status, SendStatus::FlushDiskTimeout);
    assert_eq!(c.messages_of("Flush").len(), 1, "no second copy by default");
    timeout(T, p.shutdown()).await.expect("shutdown");

    for b in c.brokers() {
        b.faults().clear_script();
        b.faults().script_codes([ResponseCode::FLUSH_DISK_TIMEOUT]);
    }
    let p = start(builder(&c).retry_another_broker_when_not_store_ok(true)).await;
    let r = timeout(T, p.send(Message::new("Flush", "y")))
        .await
        .expect("in time")
        .expect("stored");
    // The first broker stores it with FLUSH_DISK_TIMEOUT, the second too, the third attempt
    // (back on the first, whose script is used up) answers SEND_OK.
    assert_eq!(r.status, SendStatus::SendOk, "retried on another broker");
    let ys: Vec<_> = c
        .messages_of("Flush")
        .into_iter()
        .filter(|m| m.body().as_ref() == b"y")
        .collect();
    assert_eq!(ys.len(), 3, "Java's documented duplicates");
    assert_ne!(ys[0].broker, ys[1].broker);
    assert_eq!(ys[0].broker, ys[2].broker);
    for copy in &ys {
        assert_eq!(
            copy.property(property::UNIQ_KEY),
            Some(r.msg_id.as_str()),
            "every retried copy carries the one UNIQ_KEY of the send"
        );
    }
    stop(p, c).await;
}

/// An asynchronous send's result carries its message's id whether it ends stored OK, stored
/// not OK (returned as is) or stored not OK then retried: the remoting transport leaves the id
/// to the send's state, which moves it in at the end or copies it when a retry follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_results_carry_the_id_of_every_copy() {
    let c = cluster(2, "AsyncId").await;
    let send = |p: &Producer, body: &'static str| {
        let p = p.clone();
        async move {
            let fut = timeout(
                T,
                p.send_async(Message::new("AsyncId", body), SendOptions::new()),
            )
            .await
            .expect("in time")
            .expect("admitted");
            timeout(T, fut).await.expect("in time").expect("stored")
        }
    };
    let ids_of = |body: &[u8]| -> Vec<String> {
        c.messages_of("AsyncId")
            .into_iter()
            .filter(|m| m.body().as_ref() == body)
            .filter_map(|m| m.property(property::UNIQ_KEY).map(str::to_owned))
            .collect()
    };
    for b in c.brokers() {
        b.faults().script_codes([ResponseCode::FLUSH_DISK_TIMEOUT]);
    }
    let p = start(builder(&c)).await;
    let not_ok = send(&p, "n").await;
    assert_eq!(not_ok.status, SendStatus::FlushDiskTimeout);
    timeout(T, p.shutdown()).await.expect("shutdown");
    for b in c.brokers() {
        b.faults().clear_script();
        b.faults().script_codes([ResponseCode::FLUSH_DISK_TIMEOUT]);
    }
    let p = start(builder(&c).retry_another_broker_when_not_store_ok(true)).await;
    let retried = send(&p, "r").await;
    assert_eq!(
        retried.status,
        SendStatus::SendOk,
        "retried on another broker"
    );
    // Both scripts are used up: stored OK at once. (`retried` was stored three times: each
    // broker's scripted FLUSH_DISK_TIMEOUT, then OK; the default `retries_async` of 2 allows it.)
    let ok = send(&p, "o").await;
    assert_eq!(ok.status, SendStatus::SendOk);
    for (r, body, copies) in [(&not_ok, b"n", 1), (&ok, b"o", 1), (&retried, b"r", 3)] {
        assert_eq!(r.msg_id.len(), 32, "{r}");
        assert_eq!(ids_of(body), vec![r.msg_id.clone(); copies], "{r}");
    }
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_sends_retry_like_sync_sends() {
    let c = cluster(2, "AsyncRetry").await;
    broker(&c, "broker-a")
        .faults()
        .script_codes(vec![ResponseCode::SYSTEM_BUSY; 100]);
    let p = start(builder(&c)).await;
    let mut futures = Vec::new();
    for i in 0..10 {
        futures.push(
            timeout(
                T,
                p.send_async(
                    Message::new("AsyncRetry", format!("{i}")),
                    SendOptions::new(),
                ),
            )
            .await
            .expect("in time")
            .expect("admitted"),
        );
    }
    for f in futures {
        let r = timeout(T, f).await.expect("in time").expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b");
    }
    assert_eq!(c.messages_of("AsyncRetry").len(), 10);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maybe_stored_error_names_the_stored_id_and_a_resend_keeps_it() {
    let c = cluster(1, "Ids").await;
    let a = broker(&c, "broker-a");
    let p = start(builder(&c)).await;
    timeout(T, p.send(Message::new("Ids", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    // The broker stores the message after the client gave up waiting.
    a.faults().set_delay(Duration::from_millis(1500));
    let mut msg = Message::new("Ids", "late");
    let id = p.assign_msg_id(&mut msg);
    assert_eq!(p.assign_msg_id(&mut msg), id, "an id already set is kept");
    let err = timeout(
        T,
        p.send_with(
            msg.clone(),
            SendOptions::new().timeout(Duration::from_millis(500)),
        ),
    )
    .await
    .expect("in time")
    .expect_err("times out");
    assert!(err.maybe_stored(), "{err}");
    assert_eq!(err.msg_id(), Some(id.as_str()));
    // Without a pre-assigned id, the error still names the id the broker stores.
    let err2 = timeout(
        T,
        p.send_with(
            Message::new("Ids", "late2"),
            SendOptions::new().timeout(Duration::from_millis(500)),
        ),
    )
    .await
    .expect("in time")
    .expect_err("times out");
    let id2 = err2.msg_id().expect("an id after preparation").to_owned();
    let deadline = Instant::now() + T;
    while c.messages_of("Ids").len() < 3 {
        assert!(Instant::now() < deadline, "late messages never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored_id = |body: &str| {
        c.messages_of("Ids")
            .iter()
            .find(|m| m.body() == body)
            .and_then(|m| m.property(property::UNIQ_KEY).map(str::to_owned))
    };
    assert_eq!(stored_id("late").as_deref(), Some(id.as_str()));
    assert_eq!(stored_id("late2").as_deref(), Some(id2.as_str()));
    // The resend of the same logical message keeps its id.
    a.faults().set_delay(Duration::ZERO);
    let r = timeout(T, p.send(msg))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(r.msg_id, id);
    let copies = c
        .messages_of("Ids")
        .iter()
        .filter(|m| m.property(property::UNIQ_KEY) == Some(id.as_str()))
        .count();
    assert_eq!(copies, 2, "both copies carry the one id");
    stop(p, c).await;
}
