//! The ACL hook on a real connection: what the peer decodes carries the access key and a
//! signature it can verify, for JSON and ROCKETMQ headers alike.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{accept, echo, listener, next, request, send, within};
use rmq_common::RequestCode;
use rmq_remoting::acl::{signature, AclHook, Credentials, ACCESS_KEY, SIGNATURE};
use rmq_remoting::{EncodedExtFields, RemotingClient, RemotingConfig, SerializeType};

#[tokio::test]
async fn the_peer_receives_a_verifiable_signature() {
    for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let mut f = accept(&l).await;
            let req = next(&mut f).await;
            send(&mut f, echo(&req)).await;
            req
        });
        let c = RemotingClient::new(RemotingConfig {
            serialize_type,
            ..RemotingConfig::default()
        });
        c.set_hook(Arc::new(AclHook::new(Credentials::new("ak-1", "sk-1"))));
        let mut req = request(RequestCode::SEND_MESSAGE_V2, "body bytes");
        req.ext_fields.insert("b", "TopicTest");
        req.ext_fields.insert("a", "GroupA");
        within(c.invoke_sync(&addr.to_string(), req, Duration::from_secs(5)))
            .await
            .expect("reply");
        let got = within(server).await.expect("server");
        assert_eq!(got.ext_fields.get(ACCESS_KEY), Some("ak-1"));
        assert_eq!(got.ext_fields.get("b"), Some("TopicTest"));
        // What a broker does: recompute over what arrived, with the secret it knows.
        let expected = signature(&got.ext_fields, &got.body, "sk-1");
        assert_eq!(
            got.ext_fields.get(SIGNATURE),
            Some(expected.as_str()),
            "{serialize_type:?}"
        );
        assert_ne!(
            signature(&got.ext_fields, &got.body, "wrong-secret"),
            expected
        );
        c.shutdown().await;
    }
}

/// A request whose fields are partly pre-encoded (`EncodedExtFields`): the hook signs every
/// field sent, and the peer receives them all, with either header type.
#[tokio::test]
async fn pre_encoded_fields_are_signed_and_sent() {
    for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let mut f = accept(&l).await;
            let req = next(&mut f).await;
            send(&mut f, echo(&req)).await;
            req
        });
        let c = RemotingClient::new(RemotingConfig {
            serialize_type,
            ..RemotingConfig::default()
        });
        c.set_hook(Arc::new(AclHook::new(Credentials::new("ak-1", "sk-1"))));
        let mut req = request(RequestCode::SEND_MESSAGE_V2, "body bytes");
        let mut pre = EncodedExtFields::builder(64);
        pre.str("a", "GroupA")
            .str("i", "KEYS\u{1}k\"1\u{2}")
            .int("g", 1_763_942_400_000);
        req.encoded_ext = Some(pre.build());
        req.ext_fields.insert("b", "TopicTest");
        within(c.invoke_sync(&addr.to_string(), req, Duration::from_secs(5)))
            .await
            .expect("reply");
        let got = within(server).await.expect("server");
        assert_eq!(
            got.ext_fields.get("a"),
            Some("GroupA"),
            "{serialize_type:?}"
        );
        assert_eq!(got.ext_fields.get("i"), Some("KEYS\u{1}k\"1\u{2}"));
        assert_eq!(got.ext_fields.get("g"), Some("1763942400000"));
        assert_eq!(got.ext_fields.get("b"), Some("TopicTest"));
        assert_eq!(got.ext_fields.get(ACCESS_KEY), Some("ak-1"));
        let expected = signature(&got.ext_fields, &got.body, "sk-1");
        assert_eq!(got.ext_fields.get(SIGNATURE), Some(expected.as_str()));
        c.shutdown().await;
    }
}
