//! Name servers replaced at run time (`Producer::update_name_servers`, Java's
//! `updateNameServerAddressList`), against two mock name servers that count requests.

use std::time::Duration;

use rmq_common::Message;
use rmq_producer::{ConfigError, Producer};
use rmq_testkit::{MockCluster, MockNameServer};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + T;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

async fn send(p: &Producer, topic: &str) {
    timeout(T, p.send(Message::new(topic, "x")))
        .await
        .expect("in time")
        .expect("sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_lookups_ask_the_new_name_servers_only() {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Early", 2);
    c.create_topic("Late", 2);
    let old = c.namesrv();
    let new = timeout(T, MockNameServer::start())
        .await
        .expect("in time")
        .expect("name server");
    for topic in ["Early", "Late"] {
        new.set_route(topic, c.route(topic).expect("route"));
    }
    // "Late" is only known to the new name server.
    old.remove_route("Late");
    let p = timeout(
        T,
        Producer::builder("NsGroup")
            .name_server(c.namesrv_addr())
            .route_poll_interval(Duration::from_millis(50))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    send(&p, "Early").await;
    assert!(old.request_count("Early") >= 1);
    assert_eq!(new.total_requests(), 0);
    assert!(eventually(|| old.connection_count() == 1).await);

    assert_eq!(p.update_name_servers(new.addr()), Ok(true));
    assert_eq!(p.name_servers(), [new.addr()]);
    // The same list again changes nothing.
    assert_eq!(p.update_name_servers(new.addr()), Ok(false));
    // The removed name server's connection is closed, and it is never asked again.
    assert!(
        eventually(|| old.connection_count() == 0).await,
        "connection to the removed name server closed"
    );
    let asked_old = old.total_requests();
    // The cached route is still used...
    send(&p, "Early").await;
    // ...and a new topic is looked up on the new name server.
    send(&p, "Late").await;
    assert!(new.request_count("Late") >= 1);
    // The refresher (every 50 ms) asks the new one for every cached topic.
    assert!(eventually(|| new.request_count("Early") >= 2).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        old.total_requests(),
        asked_old,
        "the removed name server was asked again"
    );
    assert_eq!(old.connection_count(), 0);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    new.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lists_are_refused_and_leave_the_list_in_use() {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Kept", 1);
    let p = timeout(
        T,
        Producer::builder("NsGroup2")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    assert_eq!(p.update_name_servers(""), Err(ConfigError::NoNameServer));
    let bad = p.update_name_servers(format!("{};not-an-address", c.namesrv_addr()));
    assert!(
        matches!(&bad, Err(ConfigError::BadNameServer { addr, .. }) if addr == "not-an-address"),
        "{bad:?}"
    );
    assert_eq!(p.name_servers(), [c.namesrv_addr()]);
    send(&p, "Kept").await;
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}
