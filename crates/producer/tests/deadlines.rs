//! Deadlines that cover everything: an asynchronous send's wait for back-pressure room counts
//! against its timeout, and shutdown does not wait long on a hung broker.

use std::time::Duration;

use rmq_common::Message;
use rmq_producer::{ErrorKind, Producer, SendOptions};
use rmq_testkit::MockCluster;
use tokio::time::{timeout, Instant};

const T: Duration = Duration::from_secs(20);

async fn cluster() -> MockCluster {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Deadlines", 2);
    c
}

#[tokio::test]
async fn waiting_for_back_pressure_room_counts_against_the_send_timeout() {
    let c = cluster().await;
    let p = Producer::builder("DeadlineGroup")
        .name_server(c.namesrv_addr())
        .async_backpressure(1, 1 << 20)
        .send_timeout(Duration::from_millis(400))
        .retries_async(0)
        .start()
        .await
        .expect("start");
    // The route first, then a broker that never answers.
    assert!(p.send(Message::new("Deadlines", "warm")).await.is_ok());
    c.brokers()[0].faults().set_black_hole(true);
    let first = p
        .send_async(Message::new("Deadlines", "first"), SendOptions::new())
        .await
        .expect("admitted: the one room");
    let second = timeout(
        T,
        p.send_async(
            Message::new("Deadlines", "second"),
            SendOptions::new().timeout(Duration::from_millis(150)),
        ),
    )
    .await
    .expect("in time");
    let err = second.expect_err("no room within its own deadline");
    assert!(
        matches!(err.kind(), ErrorKind::Timeout { attempts: 0, .. }),
        "{err:?}"
    );
    assert!(!err.maybe_stored());
    let back = err.into_message().expect("handed back: never sent");
    assert_eq!(back.body().as_ref(), b"second");
    let first = timeout(T, first).await.expect("in time");
    assert!(first.is_err_and(|e| e.is_timeout()));
    c.brokers()[0].faults().set_black_hole(false);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}

#[tokio::test]
async fn shutdown_spends_at_most_a_second_on_a_hung_broker() {
    let c = cluster().await;
    let p = Producer::builder("DeadlineGroup2")
        .name_server(c.namesrv_addr())
        .start()
        .await
        .expect("start");
    assert!(p.send(Message::new("Deadlines", "used")).await.is_ok());
    c.brokers()[0].faults().set_black_hole(true);
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let took = t0.elapsed();
    // Java's 3 s bound per broker made this take over 3 s.
    assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
    c.brokers()[0].faults().set_black_hole(false);
}
