//! ACL credentials: every request the producer sends to a broker carries the access key and a
//! signature the broker can verify with the secret key (Java's `AclClientRPCHook`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmq_common::{Message, RequestCode, ResponseCode};
use rmq_producer::{Credentials, Producer};
use rmq_remoting::acl::{signature, ACCESS_KEY, SECURITY_TOKEN, SIGNATURE};
use rmq_remoting::{
    BoxFuture, ProcessorTable, RemotingCommand, RemotingConfig, RemotingServer, RequestContext,
};
use rmq_testkit::{MockNameServer, RouteBuilder};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

type Seen = Arc<Mutex<Vec<RemotingCommand>>>;

/// A broker that records every request and answers sends as stored.
async fn recording_broker() -> (RemotingServer, Seen) {
    let seen = Seen::default();
    let table = ProcessorTable::new();
    for code in [RequestCode::SEND_MESSAGE_V2, RequestCode::HEART_BEAT] {
        let seen = Arc::clone(&seen);
        let processor = move |_: RequestContext,
                              req: RemotingCommand|
              -> BoxFuture<'static, Option<RemotingCommand>> {
            let mut resp = req.response_to(ResponseCode::SUCCESS, None);
            if req.request_code() == RequestCode::SEND_MESSAGE_V2 {
                resp.ext_fields
                    .insert("msgId", "7F00000100002A9F00000000004988BA");
                resp.ext_fields.insert("queueId", "0");
                resp.ext_fields.insert("queueOffset", "0");
            }
            if let Ok(mut s) = seen.lock() {
                s.push(req);
            }
            Box::pin(async move { Some(resp) })
        };
        table.register(code, Arc::new(processor));
    }
    let server = RemotingServer::bind("127.0.0.1:0", RemotingConfig::default(), table)
        .await
        .expect("bind");
    (server, seen)
}

/// A recording broker and a name server routing `topic` to it (one queue).
async fn routed_broker(topic: &str) -> (RemotingServer, Seen, MockNameServer) {
    let (broker, seen) = recording_broker().await;
    let ns = timeout(T, MockNameServer::start())
        .await
        .expect("in time")
        .expect("name server");
    ns.set_route(
        topic,
        RouteBuilder::new()
            .broker("broker-a", &broker.local_addr().to_string())
            .queues("broker-a", 1)
            .build(),
    );
    (broker, seen, ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_request_is_signed_with_the_credentials() {
    let (broker, seen, ns) = routed_broker("AclTopic").await;
    let p = Producer::builder("AclGroup")
        .name_server(ns.addr())
        .credentials(Credentials::new("RocketMQ", "12345678").with_security_token("tok"))
        .start()
        .await
        .expect("start");
    let body = "signed body";
    timeout(T, p.send(Message::new("AclTopic", body).with_tags("TagA")))
        .await
        .expect("in time")
        .expect("sent");
    timeout(T, p.shutdown()).await.expect("shutdown in time");

    let seen = seen.lock().expect("lock").clone();
    let send = seen
        .iter()
        .find(|r| r.request_code() == RequestCode::SEND_MESSAGE_V2)
        .expect("a send arrived");
    assert_eq!(&send.body[..], body.as_bytes());
    assert!(
        seen.iter()
            .any(|r| r.request_code() == RequestCode::HEART_BEAT),
        "heartbeats too"
    );
    for req in &seen {
        assert_eq!(req.ext_fields.get(ACCESS_KEY), Some("RocketMQ"), "{req:?}");
        assert_eq!(req.ext_fields.get(SECURITY_TOKEN), Some("tok"));
        let expected = signature(&req.ext_fields, &req.body, "12345678");
        assert_eq!(req.ext_fields.get(SIGNATURE), Some(expected.as_str()));
    }
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_nothing_is_added() {
    let (broker, seen, ns) = routed_broker("PlainTopic").await;
    let p = Producer::builder("PlainGroup")
        .name_server(ns.addr())
        .start()
        .await
        .expect("start");
    timeout(T, p.send(Message::new("PlainTopic", "x")))
        .await
        .expect("in time")
        .expect("sent");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    for req in seen.lock().expect("lock").iter() {
        assert_eq!(req.ext_fields.get(ACCESS_KEY), None);
        assert_eq!(req.ext_fields.get(SIGNATURE), None);
    }
    broker.shutdown().await;
    ns.shutdown().await;
}
