//! The client instance: producers of one process with the same client id and settings share
//! connections and one heartbeat listing every group; a group's shutdown unregisters that group
//! only; the last producer closes the instance.

use std::sync::Arc;
use std::time::Duration;

use rmq_common::Message;
use rmq_producer::Producer;
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

/// A one-broker cluster with the topic `Shared` (2 queues).
async fn cluster() -> MockCluster {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Shared", 2);
    c
}

async fn producer(c: &MockCluster, group: &str, instance: &str) -> Producer {
    Producer::builder(group)
        .name_server(c.namesrv_addr())
        .instance_name(instance)
        .heartbeat_interval(Duration::from_millis(100))
        .start()
        .await
        .expect("start")
}

async fn send3(p: &Producer) {
    for i in 0..3 {
        let sent = timeout(T, p.send(Message::new("Shared", format!("m{i}")))).await;
        assert!(matches!(sent, Ok(Ok(_))), "{sent:?}");
    }
}

/// Waits until `f` holds (bounded).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_groups_share_one_instance_and_unregister_apart() {
    let c = cluster().await;
    let broker = &c.brokers()[0];
    let orders = producer(&c, "OrderProducers", "inst-1").await;
    let payments = producer(&c, "PaymentProducers", "inst-1").await;
    assert!(
        Arc::ptr_eq(orders.instance(), payments.instance()),
        "one instance"
    );
    assert_eq!(orders.client_id(), payments.client_id());
    assert_eq!(
        orders.instance().groups(),
        ["OrderProducers", "PaymentProducers"]
    );
    send3(&orders).await;
    send3(&payments).await;
    assert_eq!(
        broker.connection_count(),
        1,
        "one connection for both groups"
    );

    eventually("a heartbeat naming both groups", || {
        broker.heartbeats().iter().any(|h| {
            h.producer_groups.iter().any(|g| g == "OrderProducers")
                && h.producer_groups.iter().any(|g| g == "PaymentProducers")
        })
    })
    .await;

    timeout(T, orders.shutdown())
        .await
        .expect("shutdown in time");
    let unregistered: Vec<Option<String>> = broker
        .unregisters()
        .into_iter()
        .map(|u| u.producer_group)
        .collect();
    assert_eq!(unregistered, [Some("OrderProducers".to_owned())]);
    // The other group goes on over the same connection, and its heartbeats no longer name the
    // group that left.
    send3(&payments).await;
    assert_eq!(broker.connection_count(), 1);
    assert_eq!(payments.instance().groups(), ["PaymentProducers"]);
    let seen = broker.heartbeats().len();
    eventually("a heartbeat after the first group left", || {
        broker.heartbeats().len() > seen + 1
    })
    .await;
    let last = broker.heartbeats().pop().expect("a heartbeat");
    assert!(
        !last.producer_groups.iter().any(|g| g == "OrderProducers"),
        "{last:?}"
    );

    timeout(T, payments.shutdown())
        .await
        .expect("shutdown in time");
    let unregistered: Vec<Option<String>> = broker
        .unregisters()
        .into_iter()
        .map(|u| u.producer_group)
        .collect();
    assert_eq!(
        unregistered,
        [
            Some("OrderProducers".to_owned()),
            Some("PaymentProducers".to_owned())
        ]
    );
    eventually("the last producer closes the connection", || {
        broker.connection_count() == 0
    })
    .await;
}

#[tokio::test]
async fn other_settings_get_their_own_instance() {
    let c = cluster().await;
    let a = producer(&c, "GroupA", "inst-a").await;
    let b = producer(&c, "GroupB", "inst-b").await;
    assert!(!Arc::ptr_eq(a.instance(), b.instance()));
    assert_ne!(a.client_id(), b.client_id());
    send3(&a).await;
    send3(&b).await;
    assert_eq!(c.brokers()[0].connection_count(), 2);
    // Same instance name, another send timeout: sends differ, connections are shared.
    let a2 = Producer::builder("GroupA2")
        .name_server(c.namesrv_addr())
        .instance_name("inst-a")
        .heartbeat_interval(Duration::from_millis(100))
        .send_timeout(Duration::from_secs(9))
        .start()
        .await
        .expect("start");
    assert!(Arc::ptr_eq(a.instance(), a2.instance()));
    // Another transport setting: not shared.
    let remoting = rmq_remoting::RemotingConfig {
        connect_timeout: Duration::from_millis(1234),
        ..rmq_remoting::RemotingConfig::default()
    };
    let a3 = Producer::builder("GroupA3")
        .name_server(c.namesrv_addr())
        .instance_name("inst-a")
        .heartbeat_interval(Duration::from_millis(100))
        .remoting(remoting)
        .start()
        .await
        .expect("start");
    assert!(!Arc::ptr_eq(a.instance(), a3.instance()));
    for p in [a, b, a2, a3] {
        timeout(T, p.shutdown()).await.expect("shutdown in time");
    }
}

#[tokio::test]
async fn a_dropped_producer_leaves_the_instance_to_the_others() {
    let c = cluster().await;
    let kept = producer(&c, "Kept", "inst-drop").await;
    let dropped = producer(&c, "Dropped", "inst-drop").await;
    send3(&dropped).await;
    drop(dropped);
    assert_eq!(kept.instance().groups(), ["Kept"]);
    send3(&kept).await;
    timeout(T, kept.shutdown()).await.expect("shutdown in time");
}

#[tokio::test]
async fn broker_requests_reach_the_instance_processors_or_are_refused() {
    use rmq_common::{ExtFields, RequestCode, ResponseCode};
    use rmq_remoting::{BoxFuture, RemotingCommand, RequestContext};

    let c = cluster().await;
    let p = producer(&c, "Checked", "inst-proc").await;
    send3(&p).await;
    let broker = &c.brokers()[0];
    let conn = broker
        .connections()
        .pop()
        .expect("the producer's connection");
    let ask = |code| RemotingCommand::request(RequestCode(code), ExtFields::new());

    // No processor (RESET_CONSUMER_CLIENT_OFFSET, a consumer's): answered
    // REQUEST_CODE_NOT_SUPPORTED, the connection stays up.
    let resp = timeout(T, conn.invoke(ask(220), Duration::from_secs(5)))
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(
        resp.response_code(),
        ResponseCode::REQUEST_CODE_NOT_SUPPORTED
    );
    send3(&p).await;
    assert_eq!(broker.connection_count(), 1, "the connection survived");

    // A processor registered on the instance answers.
    let processor =
        |_: RequestContext, req: RemotingCommand| -> BoxFuture<'static, Option<RemotingCommand>> {
            Box::pin(async move {
                Some(req.response_to(ResponseCode::SUCCESS, Some("checked".to_owned())))
            })
        };
    p.instance()
        .register_processor(RequestCode(220), Arc::new(processor));
    let resp = timeout(T, conn.invoke(ask(220), Duration::from_secs(5)))
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert_eq!(resp.remark.as_deref(), Some("checked"));
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}

#[tokio::test]
async fn an_instance_whose_runtime_is_gone_is_not_handed_out() {
    let c = cluster().await;
    let namesrv = c.namesrv_addr();
    // A producer started on another runtime, which then shuts down under it.
    let orphan = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let p = rt.block_on(
            Producer::builder("Orphan")
                .name_server(namesrv)
                .instance_name("inst-rt")
                .heartbeat_interval(Duration::from_millis(100))
                .start(),
        );
        drop(rt);
        p.expect("start")
    })
    .join()
    .expect("thread");
    let p = producer(&c, "Fresh", "inst-rt").await;
    assert!(
        !Arc::ptr_eq(orphan.instance(), p.instance()),
        "the orphan's instance has no runtime left"
    );
    send3(&p).await;
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    drop(orphan);
}

#[tokio::test]
async fn default_instance_names_do_not_share() {
    let c = cluster().await;
    let start = |group: &'static str| {
        Producer::builder(group)
            .name_server(c.namesrv_addr())
            .start()
    };
    let a = start("DefaultA").await.expect("start");
    let b = start("DefaultB").await.expect("start");
    assert!(
        !Arc::ptr_eq(a.instance(), b.instance()),
        "as Java 5: pid#nanos each"
    );
    for p in [a, b] {
        timeout(T, p.shutdown()).await.expect("shutdown in time");
    }
}

#[tokio::test]
async fn a_shutdown_that_gives_up_leaves_the_other_producers_sends_alone() {
    let c = cluster().await;
    let broker = &c.brokers()[0];
    let start = |timeout: Duration| {
        Producer::builder("SameGroup")
            .name_server(c.namesrv_addr())
            .instance_name("inst-same-group")
            .shutdown_timeout(timeout)
            .start()
    };
    let a = start(Duration::from_millis(200)).await.expect("start");
    let b = start(Duration::from_secs(5)).await.expect("start");
    send3(&a).await;
    broker.faults().set_delay(Duration::from_secs(1));
    let a_send = {
        let a = a.clone();
        tokio::spawn(async move { a.send(Message::new("Shared", "from a")).await })
    };
    let b_send = {
        let b = b.clone();
        tokio::spawn(async move { b.send(Message::new("Shared", "from b")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    timeout(T, a.shutdown()).await.expect("shutdown in time");
    let a_outcome = timeout(T, a_send).await.expect("in time").expect("task");
    assert!(
        a_outcome.as_ref().is_err_and(|e| e.maybe_stored()),
        "a's send was cancelled after it was written: {a_outcome:?}"
    );
    let b_outcome = timeout(T, b_send).await.expect("in time").expect("task");
    assert!(b_outcome.is_ok(), "b's send is untouched: {b_outcome:?}");
    let from_b = c
        .messages_of("Shared")
        .iter()
        .filter(|m| m.body().as_ref() == b"from b")
        .count();
    assert_eq!(
        from_b, 1,
        "stored once, never retried over a closed connection"
    );
    broker.faults().set_delay(Duration::ZERO);
    timeout(T, b.shutdown()).await.expect("shutdown in time");
}

#[tokio::test]
async fn secrets_and_tls_are_compared_before_sharing() {
    use rmq_producer::{Credentials, TlsConfig};

    let c = cluster().await;
    let start = |group: &'static str, credentials: Credentials, tls: Option<TlsConfig>| {
        let mut builder = Producer::builder(group)
            .name_server(c.namesrv_addr())
            .instance_name("inst-secrets")
            .credentials(credentials);
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        builder.start()
    };
    let one = start("G1", Credentials::new("ak", "secret-one"), None)
        .await
        .expect("start");
    let two = start("G2", Credentials::new("ak", "secret-two"), None)
        .await
        .expect("start");
    let again = start("G3", Credentials::new("ak", "secret-one"), None)
        .await
        .expect("start");
    assert!(
        !Arc::ptr_eq(one.instance(), two.instance()),
        "another secret"
    );
    assert!(
        Arc::ptr_eq(one.instance(), again.instance()),
        "the same credentials"
    );

    let tls = TlsConfig::dangerous_insecure_no_verify();
    let t1 = start("G4", Credentials::new("ak", "s"), Some(tls.clone()))
        .await
        .expect("start");
    let t2 = start("G5", Credentials::new("ak", "s"), Some(tls))
        .await
        .expect("start");
    let t3 = start(
        "G6",
        Credentials::new("ak", "s"),
        Some(TlsConfig::dangerous_insecure_no_verify()),
    )
    .await
    .expect("start");
    assert!(
        Arc::ptr_eq(t1.instance(), t2.instance()),
        "clones of one TLS configuration"
    );
    assert!(
        !Arc::ptr_eq(t1.instance(), t3.instance()),
        "TLS built apart is not compared"
    );
    for p in [one, two, again, t1, t2, t3] {
        timeout(T, p.shutdown()).await.expect("shutdown in time");
    }
}
