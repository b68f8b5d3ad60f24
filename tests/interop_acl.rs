//! ACL interop: a real rocketmq-rust broker with authentication enabled (the ACL cluster of
//! `scripts/rocketmq-dev.sh`) stores what a producer with the right credentials sends, and refuses
//! unsigned sends and sends signed with a wrong secret, with NO_PERMISSION.

mod support;

use std::time::Duration;

use rmq::common::{Message, ResponseCode};
use rmq::producer::{Credentials, ErrorKind, Producer, SendStatus};
use support::{acl_cluster, unique_topic, INTEROP_TIMEOUT};
use tokio::time::timeout;

async fn producer(namesrv: &str, group: &str, credentials: Option<Credentials>) -> Producer {
    let mut b = Producer::builder(group)
        .name_server(namesrv)
        .send_timeout(Duration::from_secs(10))
        .retries(0);
    if let Some(c) = credentials {
        b = b.credentials(c);
    }
    timeout(INTEROP_TIMEOUT, b.start())
        .await
        .expect("start in time")
        .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_acl_signed_sends_are_stored_and_others_refused() {
    let Some(acl) = acl_cluster("interop_acl_signed_sends_are_stored_and_others_refused") else {
        return;
    };
    let (namesrv, ak, sk) = (acl.namesrv, acl.access_key, acl.secret_key);
    let topic = unique_topic("RmqAcl");

    let signed = producer(&namesrv, "RmqAclGroup", Some(Credentials::new(&ak, &sk))).await;
    for i in 0..3 {
        let r = timeout(
            INTEROP_TIMEOUT,
            signed.send(Message::new(topic.as_str(), format!("acl {i}")).with_keys(["k"])),
        )
        .await
        .expect("in time")
        .expect("a signed send is stored");
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(r.queue.broker_name, "broker-acl");
    }

    for (what, credentials) in [
        ("unsigned", None),
        (
            "wrong secret",
            Some(Credentials::new(&ak, "not-the-secret")),
        ),
    ] {
        let p = producer(&namesrv, "RmqAclOthers", credentials).await;
        let err = timeout(
            INTEROP_TIMEOUT,
            p.send(Message::new(topic.as_str(), "refused")),
        )
        .await
        .expect("in time")
        .expect_err(what);
        assert_eq!(
            err.response_code(),
            Some(ResponseCode::NO_PERMISSION),
            "{what}: {err}"
        );
        assert!(
            !err.maybe_stored(),
            "{what}: a refusal is certainly not stored"
        );
        assert!(
            matches!(err.kind(), ErrorKind::Broker { .. }),
            "{what}: {err:?}"
        );
        timeout(INTEROP_TIMEOUT, p.shutdown())
            .await
            .expect("shutdown");
    }
    timeout(INTEROP_TIMEOUT, signed.shutdown())
        .await
        .expect("shutdown");
}
