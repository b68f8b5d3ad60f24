//! Asynchronous sends settled in the remoting transport's callback (the first answer settles
//! the send on the connection's task; only retries go to the completion driver): an answer
//! before the launch returns, the connection timer's timeout, a connection closed mid-flight,
//! a retryable first answer going on to another broker, shutdown with sends in flight (answered
//! before its deadline, or parked past it and cancelled), sends racing shutdown, a `SendFuture`
//! dropped before its send ends. A `send_async` future dropped inside its launch:
//! `async_launch_drop.rs`.

mod callback_support;

use std::time::{Duration, Instant};

use callback_support::*;
use rmq_common::{Message, ResponseCode};
use rmq_producer::{ErrorKind, Producer, SendError, SendFuture, SendOptions, SendStatus};
use rmq_testkit::Reply;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_launch_returns_settles_the_send_and_its_retry_goes_on() {
    let c = cluster(2, "Early").await;
    let p = start(builder(&c).latency_fault_tolerance(false)).await;
    timeout(T, p.send(Message::new("Early", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    // A refused connect fails inside the launch, before it returns: the answer waits for the
    // send's state, which settles it at once (a retry, on the other broker).
    let a = broker(&c, "broker-a");
    a.down().await;
    // The warm-up may have gone to either broker.
    let before = sends(a);
    for i in 0..6 {
        let f = send_async(&p, "Early", &format!("{i}"), SendOptions::new()).await;
        let r = timeout(T, f).await.expect("in time").expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b", "send {i}");
        assert_eq!(r.status, SendStatus::SendOk);
    }
    assert_eq!(sends(a), before, "none reached broker-a");
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_timer_times_the_first_attempt_out() {
    let c = cluster(1, "Silent").await;
    let p = start(builder(&c)).await;
    timeout(T, p.send(Message::new("Silent", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    broker(&c, "broker-a").faults().set_black_hole(true);
    let t0 = Instant::now();
    let f = send_async(
        &p,
        "Silent",
        "x",
        SendOptions::new().timeout(Duration::from_millis(400)),
    )
    .await;
    let err = timeout(T, f)
        .await
        .expect("in time")
        .expect_err("no answer");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(err.maybe_stored(), "written, never answered: {err}");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Timeout { .. } | ErrorKind::RetriesExhausted { .. }
        ),
        "{err}"
    );
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_flight_fails_the_attempt_and_the_retry_stores_once() {
    let c = cluster(2, "Closing").await;
    for b in c.brokers() {
        b.faults().script([Reply::Close]);
    }
    let p = start(builder(&c)).await;
    let f = send_async(&p, "Closing", "x", SendOptions::new()).await;
    let r = timeout(T, f).await.expect("in time").expect("sent");
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(c.messages_of("Closing").len(), 1);
    // x closes, y closes (each after reading the request), x answers.
    assert_eq!(
        sends(broker(&c, "broker-a")) + sends(broker(&c, "broker-b")),
        3
    );
    // No retry left: the closed connection is the send's error, settled in the callback.
    let c1 = cluster(1, "ClosingOnce").await;
    broker(&c1, "broker-a").faults().script([Reply::Close]);
    let p1 = start(builder(&c1).retries_async(0)).await;
    let f = send_async(&p1, "ClosingOnce", "y", SendOptions::new()).await;
    let err = timeout(T, f).await.expect("in time").expect_err("closed");
    assert!(
        matches!(err.kind(), ErrorKind::Transport { .. }),
        "the connection's failure: {err}"
    );
    assert!(err.maybe_stored(), "written, then the connection closed");
    assert!(eventually(|| p1.stats().sends_in_flight == 0).await);
    stop(p1, c1).await;
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_first_answer_goes_on_to_the_other_broker() {
    let c = cluster(2, "Busy").await;
    broker(&c, "broker-a")
        .faults()
        .script_codes(vec![ResponseCode::SYSTEM_BUSY; 100]);
    let p = start(builder(&c).latency_fault_tolerance(false)).await;
    let mut futures = Vec::new();
    for i in 0..20 {
        futures.push(send_async(&p, "Busy", &format!("{i}"), SendOptions::new()).await);
    }
    for f in futures {
        let r = timeout(T, f).await.expect("in time").expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b");
    }
    // Round-robin: about half went to broker-a first, were answered busy there and retried.
    assert!(sends(broker(&c, "broker-a")) >= 5);
    assert_eq!(sends(broker(&c, "broker-b")), 20);
    assert_eq!(c.messages_of("Busy").len(), 20);
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_sends_in_flight_and_each_resolves_once() {
    let c = cluster(2, "Drain").await;
    for b in c.brokers() {
        b.faults().set_delay(Duration::from_millis(200));
    }
    let p = start(builder(&c)).await;
    let mut futures = Vec::new();
    for i in 0..50 {
        futures.push(send_async(&p, "Drain", &format!("{i}"), SendOptions::new()).await);
    }
    assert!(
        p.stats().sends_in_flight > 0,
        "in flight when shutdown begins"
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert_eq!(p.stats().sends_in_flight, 0);
    for f in futures {
        // Resolved before shutdown returned: one poll is enough.
        let r = timeout(Duration::ZERO, f)
            .await
            .expect("resolved")
            .expect("sent, not cancelled");
        assert_eq!(r.status, SendStatus::SendOk);
    }
    assert_eq!(c.messages_of("Drain").len(), 50);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_future_loses_no_completion() {
    let c = cluster(1, "Dropped").await;
    broker(&c, "broker-a")
        .faults()
        .set_delay(Duration::from_millis(100));
    let p = start(builder(&c)).await;
    for i in 0..20 {
        drop(send_async(&p, "Dropped", &format!("{i}"), SendOptions::new()).await);
    }
    // Every send still goes out, is stored, and leaves the in-flight count.
    assert!(eventually(|| c.messages_of("Dropped").len() == 20).await);
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    assert_eq!(p.stats().async_in_flight, 0, "room released");
    // The producer goes on as before.
    let f = send_async(&p, "Dropped", "after", SendOptions::new()).await;
    timeout(T, f).await.expect("in time").expect("sent");
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_the_sends_parked_for_an_answer_at_its_deadline() {
    let c = cluster(2, "Parked").await;
    let grace = Duration::from_millis(500);
    let p = start(
        builder(&c)
            .shutdown_timeout(grace)
            .async_backpressure(64, 1 << 20),
    )
    .await;
    timeout(T, p.send(Message::new("Parked", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    for b in c.brokers() {
        b.faults().set_black_hole(true);
    }
    // Far longer than the test: only shutdown ends these sends.
    let options = SendOptions::new().timeout(Duration::from_secs(30));
    let mut futures = Vec::new();
    for i in 0..50 {
        futures.push(send_async(&p, "Parked", &format!("{i}"), options.clone()).await);
    }
    let written = || c.brokers().iter().map(sends).sum::<usize>() == 51;
    assert!(eventually(written).await, "every request written");
    let s = p.stats();
    assert_eq!((s.sends_in_flight, s.async_in_flight), (50, 50), "{s:?}");
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let took = t0.elapsed();
    assert!(
        took >= grace - Duration::from_millis(50) && took < grace + SLACK,
        "waited for the sends up to its deadline, then cancelled them: {took:?}"
    );
    assert_idle(&p);
    for (i, f) in futures.into_iter().enumerate() {
        // Resolved before shutdown returned: one poll is enough, and it is the only outcome.
        let err = timeout(Duration::ZERO, f)
            .await
            .expect("resolved")
            .expect_err("never answered");
        assert!(is_cancelled(err.kind(), true), "send {i}: {err}");
        assert!(err.maybe_stored(), "send {i}: written: {err}");
        // Maybe stored: the message is not handed back, its id is (to spot a duplicate).
        assert!(!err.has_message(), "send {i}: {err}");
        assert!(err.msg_id().is_some_and(|id| !id.is_empty()), "send {i}");
    }
    assert!(
        c.messages_of("Parked").len() == 1,
        "only the warm-up stored"
    );
    // A send after shutdown is refused, typed.
    let err = timeout(
        T,
        p.send_async(Message::new("Parked", "late"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect_err("refused");
    assert!(matches!(err.kind(), ErrorKind::NotRunning), "{err}");
    c.shutdown().await;
}

/// What one sending task saw: the futures of its admitted sends, and why it stopped.
struct Racer {
    futures: Vec<SendFuture>,
    refused: Option<SendError>,
}

async fn race(p: Producer, id: usize) -> Racer {
    let mut futures = Vec::new();
    // Bounded: shutdown begins within a few sends; 1 ms apart, 5000 is seconds.
    for i in 0..5000 {
        let sent = timeout(
            T,
            p.send_async(
                Message::new("Race", format!("{id}-{i}")),
                SendOptions::new(),
            ),
        )
        .await
        .expect("send_async in time");
        match sent {
            Ok(f) => futures.push(f),
            Err(e) => {
                return Racer {
                    futures,
                    refused: Some(e),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Racer {
        futures,
        refused: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_racing_shutdown_all_resolve_and_later_sends_are_refused() {
    let c = cluster(2, "Race").await;
    // Answers come after shutdown's deadline: what is in flight then is cancelled.
    for b in c.brokers() {
        b.faults().set_delay(Duration::from_millis(400));
    }
    let grace = Duration::from_millis(150);
    let p = start(builder(&c).shutdown_timeout(grace)).await;
    timeout(T, p.send(Message::new("Race", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    let racers: Vec<_> = (0..4).map(|id| tokio::spawn(race(p.clone(), id))).collect();
    assert!(eventually(|| p.stats().sends_in_flight >= 8).await);
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert!(t0.elapsed() < grace + SLACK, "{:?}", t0.elapsed());
    let (mut ok, mut cancelled, mut started) = (0, 0, 0);
    for racer in racers {
        let Racer { futures, refused } = timeout(T, racer)
            .await
            .expect("racer in time")
            .expect("racer");
        // Every racer goes on until refused, which shutdown does at once.
        assert!(
            refused
                .as_ref()
                .is_some_and(|e| matches!(e.kind(), ErrorKind::NotRunning)),
            "{refused:?}"
        );
        started += futures.len();
        for f in futures {
            match timeout(T, f).await.expect("each send resolves") {
                Ok(r) => {
                    assert_eq!(r.status, SendStatus::SendOk);
                    ok += 1;
                }
                Err(e) if matches!(e.kind(), ErrorKind::Cancelled { .. }) => cancelled += 1,
                Err(e) => panic!("neither a result nor a cancellation: {e}"),
            }
        }
    }
    assert_eq!(ok + cancelled, started);
    assert!(
        cancelled >= 8,
        "in flight at the deadline: {cancelled} of {started}"
    );
    assert_idle(&p);
    for _ in 0..2 {
        let err = timeout(
            T,
            p.send_async(Message::new("Race", "late"), SendOptions::new()),
        )
        .await
        .expect("in time")
        .expect_err("refused after shutdown");
        assert!(matches!(err.kind(), ErrorKind::NotRunning), "{err}");
        let err = p
            .try_send_async(Message::new("Race", "late"), SendOptions::new())
            .expect_err("refused after shutdown");
        assert!(matches!(err.kind(), ErrorKind::NotRunning), "{err}");
    }
    // Stored: the warm-up and at most the sends not cancelled (a cancelled one may be stored
    // too, after its answer was given up on).
    assert!(c.messages_of("Race").len() > ok);
    c.shutdown().await;
}
