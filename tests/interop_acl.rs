//! ACL interop: a real rocketmq-rust broker with authentication enabled (the ACL cluster of
//! `scripts/rocketmq-dev.sh`) stores what a producer with the right credentials sends, and refuses
//! unsigned sends and sends signed with a wrong secret, with NO_PERMISSION; a send whose header
//! is pre-encoded (`EncodedExtFields`) is signed over every field it sends.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rmq::common::{Message, ResponseCode};
use rmq::producer::{Credentials, ErrorKind, Producer, SendStatus};
use rmq_common::header::route::GetRouteInfoRequestHeader;
use rmq_common::header::send::SendMessageResponseHeader;
use rmq_common::RequestCode;
use rmq_nameserver_client::decode_route;
use rmq_remoting::acl::AclHook;
use rmq_remoting::{
    EncodedExtFields, RemotingClient, RemotingCommand, RemotingConfig, SerializeType,
};
use support::{acl_cluster, unique_topic, INTEROP_TIMEOUT};
use tokio::time::timeout;

const CALL: Duration = Duration::from_secs(10);

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

/// The `SEND_MESSAGE_V2` ext fields of one message to `topic` on `broker`, pre-encoded as the
/// producer writes them (keys with a quote in the properties: escapes inside the encoded text).
fn pre_encoded_send(topic: &str, broker: &str, id: &str) -> EncodedExtFields {
    let born = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let props = format!("KEYS\u{1}k\"q\\1\u{2}WAIT\u{1}true\u{2}UNIQ_KEY\u{1}{id}\u{2}");
    let mut b = EncodedExtFields::builder(512);
    b.str("a", "RmqAclPreGroup")
        .str("b", topic)
        .str("c", "TBW102")
        .int("d", 4)
        .int("e", 0)
        .int("f", 0)
        .int("g", born)
        .int("h", 0)
        .str("i", &props)
        .int("j", 0)
        .bool("k", false)
        .bool("m", false)
        .str("n", broker);
    b.build()
}

/// A send request whose header is pre-encoded (`EncodedExtFields`), through a remoting client
/// with the ACL hook, in both header types: the hook reads the pre-encoded fields back and
/// signs every field sent, and the broker stores the message; without the hook, refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_acl_pre_encoded_header_is_signed_and_stored() {
    let Some(acl) = acl_cluster("interop_acl_pre_encoded_header_is_signed_and_stored") else {
        return;
    };
    let (namesrv, ak, sk) = (acl.namesrv, acl.access_key, acl.secret_key);
    let topic = unique_topic("RmqAclPre");
    // The topic is created by a signed producer's first send.
    let signed = producer(&namesrv, "RmqAclPreGroup", Some(Credentials::new(&ak, &sk))).await;
    let first = timeout(
        INTEROP_TIMEOUT,
        signed.send(Message::new(topic.as_str(), "create")),
    )
    .await
    .expect("in time")
    .expect("stored");
    let broker = first.queue.broker_name.clone();

    let hooked = RemotingClient::new(RemotingConfig::default());
    hooked.set_hook(Arc::new(AclHook::new(Credentials::new(&ak, &sk))));
    let route_req = RemotingCommand::request_with_header(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        &GetRouteInfoRequestHeader::new(topic.as_str()),
    );
    let route = timeout(
        INTEROP_TIMEOUT,
        hooked.invoke_sync(&namesrv, route_req, CALL),
    )
    .await
    .expect("in time")
    .expect("route");
    assert_eq!(route.response_code(), ResponseCode::SUCCESS, "{route:?}");
    let route = decode_route(&route.body).expect("route body");
    let addr = route
        .broker(&broker)
        .and_then(|b| b.master_addr())
        .expect("master address")
        .to_owned();

    for (i, st) in [SerializeType::Json, SerializeType::RocketMq]
        .into_iter()
        .enumerate()
    {
        let id = format!("7F0000010F2C18B4AAC2000000ACE00{i}");
        let mut req = RemotingCommand::request_encoded(
            RequestCode::SEND_MESSAGE_V2,
            pre_encoded_send(&topic, &broker, &id),
        )
        .with_body(format!("pre-encoded {st:?}"))
        .with_serialize_type(st);
        let resp = timeout(
            INTEROP_TIMEOUT,
            hooked.invoke_sync(&addr, req.clone(), CALL),
        )
        .await
        .expect("in time")
        .expect("answer");
        assert_eq!(
            resp.response_code(),
            ResponseCode::SUCCESS,
            "{st:?}: {resp:?}"
        );
        let stored: SendMessageResponseHeader = resp.decode_header().expect("send header");
        assert_eq!(stored.queue_id, 0, "{st:?}");

        // The control: the same request unsigned is refused.
        let bare = RemotingClient::new(RemotingConfig::default());
        req.body = "unsigned".into();
        let resp = timeout(INTEROP_TIMEOUT, bare.invoke_sync(&addr, req, CALL))
            .await
            .expect("in time")
            .expect("answer");
        assert_eq!(resp.response_code(), ResponseCode::NO_PERMISSION, "{st:?}");
        bare.shutdown().await;
    }
    hooked.shutdown().await;
    timeout(INTEROP_TIMEOUT, signed.shutdown())
        .await
        .expect("shutdown");
}
