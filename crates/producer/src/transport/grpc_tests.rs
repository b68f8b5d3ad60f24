//! The gRPC transport against a scripted `MessagingService` on 127.0.0.1: routes, the request
//! metadata, the status mapping under the send loop's rules, settings applied, telemetry
//! commands answered, heartbeat and termination.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmq_common::{Message, MessageQueue};
use rmq_grpc::pb;
use rmq_grpc::pb::messaging_service_server::{MessagingService, MessagingServiceServer};
use rmq_grpc::pb::telemetry_command::Command;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::*;
use crate::{ErrorKind, Producer, SendOptions};

/// The server's side of a telemetry stream.
type Outbound = mpsc::Sender<Result<pb::TelemetryCommand, Status>>;

/// What the fake proxy saw.
#[derive(Default)]
struct Seen {
    sends: Vec<(tonic::metadata::MetadataMap, pb::SendMessageRequest)>,
    heartbeats: usize,
    terminations: usize,
    client_settings: Vec<pb::Settings>,
    answers: Vec<pb::TelemetryCommand>,
    ends: Vec<pb::EndTransactionRequest>,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    /// Codes answered to the next sends, in order (then OK).
    script: Arc<Mutex<Vec<pb::Code>>>,
    /// The server's side of the last telemetry stream.
    push: Arc<Mutex<Option<Outbound>>>,
}

fn st(code: pb::Code, message: &str) -> Option<pb::Status> {
    Some(pb::Status {
        code: code as i32,
        message: message.to_owned(),
    })
}

fn queue(
    topic: &str,
    broker: &str,
    broker_id: i32,
    id: i32,
    perm: pb::Permission,
) -> pb::MessageQueue {
    pb::MessageQueue {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: topic.to_owned(),
        }),
        id,
        permission: perm as i32,
        broker: Some(pb::Broker {
            name: broker.to_owned(),
            id: broker_id,
            endpoints: None,
        }),
        accept_message_types: vec![],
    }
}

#[tonic::async_trait]
impl MessagingService for Fake {
    async fn query_route(
        &self,
        req: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        let topic = req.into_inner().topic.unwrap_or_default().name;
        if topic == "Missing" {
            return Ok(Response::new(pb::QueryRouteResponse {
                status: st(pb::Code::TopicNotFound, "no such topic"),
                message_queues: vec![],
            }));
        }
        use pb::Permission::{Read, ReadWrite, Write};
        Ok(Response::new(pb::QueryRouteResponse {
            status: st(pb::Code::Ok, "OK"),
            message_queues: vec![
                queue(&topic, "broker-b", 0, 1, ReadWrite),
                queue(&topic, "broker-b", 0, 0, Write),
                queue(&topic, "broker-a", 0, 0, ReadWrite),
                queue(&topic, "broker-a", 0, 1, Read),
                queue(&topic, "broker-a", 1, 2, ReadWrite),
            ],
        }))
    }

    async fn heartbeat(
        &self,
        _req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.seen.lock().unwrap().heartbeats += 1;
        Ok(Response::new(pb::HeartbeatResponse {
            status: st(pb::Code::Ok, "OK"),
        }))
    }

    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let meta = req.metadata().clone();
        let req = req.into_inner();
        let code = {
            let mut script = self.script.lock().unwrap();
            if script.is_empty() {
                pb::Code::Ok
            } else {
                script.remove(0)
            }
        };
        let entries = req
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| pb::SendResultEntry {
                status: st(code, "scripted"),
                message_id: m.system_properties.as_ref().unwrap().message_id.clone(),
                transaction_id: "TX".to_owned(),
                offset: 100 + i64::try_from(i).unwrap(),
                recall_handle: String::new(),
            })
            .collect();
        self.seen.lock().unwrap().sends.push((meta, req));
        Ok(Response::new(pb::SendMessageResponse {
            status: st(code, "scripted"),
            entries,
        }))
    }

    async fn end_transaction(
        &self,
        req: Request<pb::EndTransactionRequest>,
    ) -> Result<Response<pb::EndTransactionResponse>, Status> {
        self.seen.lock().unwrap().ends.push(req.into_inner());
        Ok(Response::new(pb::EndTransactionResponse {
            status: st(pb::Code::Ok, "OK"),
        }))
    }

    type TelemetryStream = ReceiverStream<Result<pb::TelemetryCommand, Status>>;

    async fn telemetry(
        &self,
        req: Request<tonic::Streaming<pb::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(8);
        *self.push.lock().unwrap() = Some(tx.clone());
        let seen = Arc::clone(&self.seen);
        tokio::spawn(async move {
            let mut first = true;
            while let Some(Ok(cmd)) = inbound.next().await {
                match cmd.command {
                    Some(Command::Settings(s)) => {
                        seen.lock().unwrap().client_settings.push(s);
                        let server = pb::Settings {
                            backoff_policy: Some(pb::RetryPolicy {
                                max_attempts: 4,
                                strategy: Some(pb::retry_policy::Strategy::ExponentialBackoff(
                                    pb::ExponentialBackoff {
                                        initial: Some(prost_types::Duration {
                                            seconds: 0,
                                            nanos: 20_000_000,
                                        }),
                                        max: None,
                                        multiplier: 2.0,
                                    },
                                )),
                            }),
                            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
                                topics: vec![],
                                max_body_size: 1024,
                                validate_message_type: false,
                            })),
                            ..Default::default()
                        };
                        let _ = tx
                            .send(Ok(pb::TelemetryCommand {
                                status: st(pb::Code::Ok, "OK"),
                                command: Some(Command::Settings(server)),
                            }))
                            .await;
                        if first {
                            first = false;
                            for c in [
                                Command::VerifyMessageCommand(pb::VerifyMessageCommand {
                                    nonce: "v1".into(),
                                    message: None,
                                }),
                                Command::PrintThreadStackTraceCommand(
                                    pb::PrintThreadStackTraceCommand { nonce: "p1".into() },
                                ),
                            ] {
                                let _ = tx
                                    .send(Ok(pb::TelemetryCommand {
                                        status: None,
                                        command: Some(c),
                                    }))
                                    .await;
                            }
                        }
                    }
                    _ => seen.lock().unwrap().answers.push(cmd),
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn notify_client_termination(
        &self,
        _req: Request<pb::NotifyClientTerminationRequest>,
    ) -> Result<Response<pb::NotifyClientTerminationResponse>, Status> {
        self.seen.lock().unwrap().terminations += 1;
        Ok(Response::new(pb::NotifyClientTerminationResponse {
            status: st(pb::Code::Ok, "OK"),
        }))
    }

    async fn recall_message(
        &self,
        req: Request<pb::RecallMessageRequest>,
    ) -> Result<Response<pb::RecallMessageResponse>, Status> {
        let req = req.into_inner();
        if req.topic.unwrap_or_default().name != "T" {
            return Ok(Response::new(pb::RecallMessageResponse {
                status: st(pb::Code::Forbidden, "recall is off"),
                message_id: String::new(),
            }));
        }
        Ok(Response::new(pb::RecallMessageResponse {
            status: st(pb::Code::Ok, "OK"),
            message_id: format!("recalled:{}", req.recall_handle.len()),
        }))
    }
}

async fn serve() -> (Fake, SocketAddr) {
    let fake = Fake::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = MessagingServiceServer::new(fake.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (fake, addr)
}

async fn producer(addr: SocketAddr) -> Producer {
    Producer::builder("grpc_test_group")
        .proxy(addr.to_string())
        .send_timeout(Duration::from_secs(3))
        .heartbeat_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap()
}

#[test]
fn proxy_routes_keep_writable_master_queues_in_order() {
    use pb::Permission::{Read, ReadWrite, Write};
    let queues = [
        queue("T", "broker-b", 0, 1, ReadWrite),
        queue("T", "broker-b", 0, 0, Write),
        queue("T", "broker-a", 0, 0, ReadWrite),
        queue("T", "broker-a", 0, 0, ReadWrite),
        queue("T", "broker-a", 0, 1, Read),
        queue("T", "broker-a", 1, 2, ReadWrite),
    ];
    let info = publish_info(&queues, "T", "127.0.0.1:8081");
    assert_eq!(
        info.queues,
        [
            MessageQueue::new("T", "broker-a", 0),
            MessageQueue::new("T", "broker-b", 0),
            MessageQueue::new("T", "broker-b", 1),
        ]
    );
    assert_eq!(info.master_addr("broker-b"), Some("127.0.0.1:8081"));
}

#[tokio::test]
async fn sends_carry_metadata_and_settings_apply() {
    let (fake, addr) = serve().await;
    let p = producer(addr).await;
    // The proxy's settings replaced the producer's.
    assert_eq!(p.config().retries, 3);
    assert_eq!(p.config().max_message_size, 1024);
    assert_eq!(p.config().busy_backoff, Duration::from_millis(20));
    let r = p
        .send(Message::new("T", "hello").with_tags("TagA"))
        .await
        .unwrap();
    assert_eq!(r.queue_offset, 100);
    assert_eq!(r.transaction_id.as_deref(), Some("TX"));
    {
        let seen = fake.seen.lock().unwrap();
        let (meta, req) = &seen.sends[0];
        let get = |k: &str| {
            meta.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert_eq!(get("x-mq-client-id"), p.client_id());
        assert_eq!(get("x-mq-language"), "RUST");
        assert_eq!(get("x-mq-protocol"), "v2");
        assert!(!get("x-mq-request-id").is_empty());
        assert_eq!(get("x-mq-date-time").len(), 16);
        let sys = req.messages[0].system_properties.as_ref().unwrap();
        assert_eq!(sys.message_id, r.msg_id);
        assert_eq!(sys.tag.as_deref(), Some("TagA"));
        assert_eq!(sys.queue_id, None, "the proxy picks the queue");
        let settings = seen.client_settings.last().unwrap();
        assert_eq!(settings.client_type, Some(pb::ClientType::Producer as i32));
    }
    // Too large for the proxy's limit: refused before anything is sent, message handed back.
    let err = p
        .send(Message::new("T", vec![b'x'; 2000]))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidMessage(_)),
        "{err:?}"
    );
    assert!(err.into_message().is_some());
    // Pinned to a queue: the queue id is written, queue 0 included.
    let mq = MessageQueue::new("T", "broker-a", 0);
    let r = p
        .send_with(Message::new("T", "q"), SendOptions::new().queue(mq.clone()))
        .await
        .unwrap();
    assert_eq!(r.queue, mq);
    assert_eq!(
        fake.seen.lock().unwrap().sends[1].1.messages[0]
            .system_properties
            .as_ref()
            .unwrap()
            .queue_id,
        Some(0)
    );
    // The telemetry commands were answered with their nonces.
    for _ in 0..100 {
        if fake.seen.lock().unwrap().answers.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let seen = fake.seen.lock().unwrap();
        let nonces: Vec<_> = seen
            .answers
            .iter()
            .map(|a| match &a.command {
                Some(Command::VerifyMessageResult(v)) => v.nonce.clone(),
                Some(Command::ThreadStackTrace(t)) => t.nonce.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(nonces, ["v1", "p1"]);
        // The topic joined the settings once its route was loaded.
        let last = seen.client_settings.last().unwrap();
        match &last.pub_sub {
            Some(pb::settings::PubSub::Publishing(p)) => {
                assert_eq!(
                    p.topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                    ["T"]
                );
            }
            other => panic!("{other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    p.shutdown().await;
    let seen = fake.seen.lock().unwrap();
    assert!(seen.heartbeats >= 1);
    assert_eq!(seen.terminations, 1);
}

#[tokio::test]
async fn statuses_follow_the_send_rules() {
    let (fake, addr) = serve().await;
    let p = producer(addr).await;
    // Throttled, then stored: retried after the proxy's backoff.
    fake.script.lock().unwrap().push(pb::Code::TooManyRequests);
    let r = p.send(Message::new("T", "a")).await.unwrap();
    assert!(r.status.is_ok());
    assert_eq!(fake.seen.lock().unwrap().sends.len(), 2);
    // Refused for the message: not retried, handed back, the code named in the remark.
    fake.script
        .lock()
        .unwrap()
        .push(pb::Code::IllegalMessageKey);
    let err = p.send(Message::new("T", "b")).await.unwrap_err();
    assert!(!err.maybe_stored());
    assert_eq!(
        err.response_code(),
        Some(rmq_common::ResponseCode::MESSAGE_ILLEGAL)
    );
    assert!(err.to_string().contains("ILLEGAL_MESSAGE_KEY"), "{err}");
    assert!(err.into_message().is_some());
    assert_eq!(fake.seen.lock().unwrap().sends.len(), 3);
    // Stored but not durable in time: a result, not an error.
    fake.script
        .lock()
        .unwrap()
        .extend([pb::Code::MasterPersistenceTimeout; 4]);
    let r = p.send(Message::new("T", "c")).await.unwrap();
    assert_eq!(r.status, crate::SendStatus::FlushDiskTimeout);
    fake.script.lock().unwrap().clear();
    // An unknown topic: no route.
    let err = p.send(Message::new("Missing", "d")).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NoRoute { .. }), "{err:?}");
    // Async, batch and oneway sends take the same path.
    let fut = p
        .send_async(Message::new("T", "e"), SendOptions::new())
        .await
        .unwrap();
    assert!(fut.await.is_ok());
    let r = p
        .send_batch(
            vec![Message::new("T", "f1"), Message::new("T", "f2")],
            SendOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.msg_id.split(',').count(), 2);
    let before = fake.seen.lock().unwrap().sends.len();
    assert_eq!(
        fake.seen.lock().unwrap().sends[before - 1].1.messages.len(),
        2
    );
    p.send_oneway(Message::new("T", "g"), SendOptions::new())
        .await
        .unwrap();
    for _ in 0..100 {
        if fake.seen.lock().unwrap().sends.len() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.seen.lock().unwrap().sends.len(), before + 1);
    p.shutdown().await;
}

/// Server settings with `attempts`, a throttling pause of `backoff_ms` and a body limit.
fn server_settings(attempts: i32, backoff_ms: i32, max_body: i32) -> pb::TelemetryCommand {
    pb::TelemetryCommand {
        status: st(pb::Code::Ok, "OK"),
        command: Some(Command::Settings(pb::Settings {
            backoff_policy: Some(pb::RetryPolicy {
                max_attempts: attempts,
                strategy: Some(pb::retry_policy::Strategy::ExponentialBackoff(
                    pb::ExponentialBackoff {
                        initial: Some(prost_types::Duration {
                            seconds: 0,
                            nanos: backoff_ms * 1_000_000,
                        }),
                        max: None,
                        multiplier: 2.0,
                    },
                )),
            }),
            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
                topics: vec![],
                max_body_size: max_body,
                validate_message_type: false,
            })),
            ..Default::default()
        })),
    }
}

#[tokio::test]
async fn later_settings_apply_to_the_next_sends() {
    let (fake, addr) = serve().await;
    let p = producer(addr).await;
    let grpc = p.inner().core.transport.grpc().unwrap();
    assert_eq!(grpc.live_limits().max_attempts, Some(4));
    // Four attempts: three throttled answers, then stored.
    fake.script
        .lock()
        .unwrap()
        .extend([pb::Code::TooManyRequests; 3]);
    assert!(p.send(Message::new("T", "a")).await.is_ok());
    assert_eq!(fake.seen.lock().unwrap().sends.len(), 4);
    // The proxy changes its mind: two attempts, 5 ms pause, 16-byte bodies.
    let push = fake.push.lock().unwrap().clone().unwrap();
    push.send(Ok(server_settings(2, 5, 16))).await.unwrap();
    for _ in 0..200 {
        if grpc.live_limits().max_attempts == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        grpc.live_limits(),
        LiveLimits {
            max_attempts: Some(2),
            busy_backoff: Some(Duration::from_millis(5)),
        }
    );
    // Two attempts now (sync and async), then the throttling error.
    fake.script
        .lock()
        .unwrap()
        .extend([pb::Code::TooManyRequests; 3]);
    assert!(p.send(Message::new("T", "b")).await.is_err());
    assert_eq!(fake.seen.lock().unwrap().sends.len(), 6);
    fake.script.lock().unwrap().clear();
    fake.script
        .lock()
        .unwrap()
        .extend([pb::Code::TooManyRequests; 3]);
    let fut = p
        .send_async(Message::new("T", "c"), SendOptions::new())
        .await
        .unwrap();
    assert!(fut.await.is_err());
    assert_eq!(fake.seen.lock().unwrap().sends.len(), 8);
    fake.script.lock().unwrap().clear();
    // A body over the new limit is refused before anything is sent, and handed back.
    let err = p
        .send(Message::new("T", "seventeen bytes!!"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidMessage(rmq_common::validate::ValidationError::BodyTooLarge {
                size: 17,
                max: 16
            })
        ),
        "{err:?}"
    );
    assert!(!err.maybe_stored());
    assert!(err.into_message().is_some());
    assert_eq!(fake.seen.lock().unwrap().sends.len(), 8);
    // Within the limit: sent.
    assert!(p.send(Message::new("T", "sixteen bytes!!!")).await.is_ok());
    assert_eq!(fake.seen.lock().unwrap().sends.len(), 9);
    p.shutdown().await;
}

#[test]
fn live_limits_and_body_limit_table() {
    let mut server = ServerSettings::default();
    assert_eq!(live_limits(&server), LiveLimits::default());
    assert_eq!(body_limit(4 << 20, &server), 4 << 20);
    server.max_attempts = Some(3);
    server.backoff_initial = Some(Duration::from_millis(7));
    for (configured, proxy, want) in [(4 << 20, 1024, 1024), (100, 1024, 100), (1024, 1024, 1024)] {
        server.max_body_size = Some(proxy);
        assert_eq!(
            body_limit(configured, &server),
            want,
            "{configured} {proxy}"
        );
    }
    assert_eq!(
        live_limits(&server),
        LiveLimits {
            max_attempts: Some(3),
            busy_backoff: Some(Duration::from_millis(7)),
        }
    );
}

#[tokio::test]
async fn an_unreachable_proxy_fails_sends_as_not_stored() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = Producer::builder("grpc_test_group")
        .proxy(addr.to_string())
        .send_timeout(Duration::from_millis(800))
        .start()
        .await
        .unwrap();
    let err = p.send(Message::new("T", "x")).await.unwrap_err();
    assert!(!err.maybe_stored(), "{err:?}");
    assert!(err.into_message().is_some());
    p.shutdown().await;
}

#[test]
fn bad_proxy_endpoints_are_refused_before_start() {
    let cfg = Producer::builder("g").proxy("nohost").build_config();
    assert!(matches!(cfg, Err(ConfigError::BadProxy { .. })), "{cfg:?}");
    assert!(Producer::builder("g")
        .proxy("127.0.0.1:8081")
        .build_config()
        .is_ok());
}

struct Listener;

impl crate::TransactionListener for Listener {
    type Arg = crate::TransactionState;

    async fn execute(
        &self,
        _msg: &Message,
        arg: crate::TransactionState,
    ) -> Result<crate::TransactionState, crate::ListenerError> {
        Ok(arg)
    }

    async fn check(
        &self,
        msg: &rmq_common::stored::MessageExt,
    ) -> Result<crate::TransactionState, crate::ListenerError> {
        Ok(if msg.message.property("verdict") == Some("commit") {
            crate::TransactionState::Commit
        } else {
            crate::TransactionState::Rollback
        })
    }
}

#[tokio::test]
async fn transactions_end_and_orphans_are_checked_through_the_proxy() {
    let (fake, addr) = serve().await;
    let p = Producer::builder("grpc_tx_group")
        .proxy(addr.to_string())
        .start_transactional(Listener)
        .await
        .unwrap();
    let r = p
        .send_in_transaction(Message::new("T", "half"), crate::TransactionState::Commit)
        .await
        .unwrap();
    let r2 = p
        .send_in_transaction(
            Message::new("T", "half2"),
            crate::TransactionState::Rollback,
        )
        .await
        .unwrap();
    {
        let seen = fake.seen.lock().unwrap();
        let sys = seen.sends[0].1.messages[0]
            .system_properties
            .clone()
            .unwrap();
        assert_eq!(sys.message_type, pb::MessageType::Transaction as i32);
        let user = &seen.sends[0].1.messages[0].user_properties;
        assert!(
            !user.contains_key("PGROUP") && !user.contains_key("TRAN_MSG"),
            "{user:?}"
        );
        let ends: Vec<_> = seen
            .ends
            .iter()
            .map(|e| {
                (
                    e.message_id.clone(),
                    e.resolution,
                    e.source,
                    e.topic.clone().unwrap().name,
                )
            })
            .collect();
        let client = pb::TransactionSource::SourceClient as i32;
        assert_eq!(
            ends,
            [
                (
                    r.send.msg_id.clone(),
                    pb::TransactionResolution::Commit as i32,
                    client,
                    "T".to_owned()
                ),
                (
                    r2.send.msg_id.clone(),
                    pb::TransactionResolution::Rollback as i32,
                    client,
                    "T".to_owned()
                ),
            ]
        );
        assert!(seen.ends.iter().all(|e| e.transaction_id == "TX"));
    }
    // An orphan: the listener's check answers it with a server-check EndTransaction.
    let push = fake.push.lock().unwrap().clone().unwrap();
    let orphan = pb::Message {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: "T".into(),
        }),
        user_properties: [("verdict".to_owned(), "commit".to_owned())]
            .into_iter()
            .collect(),
        system_properties: Some(pb::SystemProperties {
            message_id: "ORPHAN1".into(),
            ..Default::default()
        }),
        body: bytes::Bytes::from_static(b"o"),
    };
    push.send(Ok(pb::TelemetryCommand {
        status: None,
        command: Some(Command::RecoverOrphanedTransactionCommand(
            pb::RecoverOrphanedTransactionCommand {
                message: Some(orphan),
                transaction_id: "TXO".into(),
            },
        )),
    }))
    .await
    .unwrap();
    let mut end = None;
    for _ in 0..200 {
        end = fake.seen.lock().unwrap().ends.get(2).cloned();
        if end.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = end.expect("the orphan was answered");
    assert_eq!(end.message_id, "ORPHAN1");
    assert_eq!(end.transaction_id, "TXO");
    assert_eq!(end.resolution, pb::TransactionResolution::Commit as i32);
    assert_eq!(end.source, pb::TransactionSource::SourceServerCheck as i32);
    p.shutdown().await;
}

#[tokio::test]
async fn recall_goes_through_the_proxy() {
    let (_fake, addr) = serve().await;
    let p = producer(addr).await;
    let handle = |topic: &str| {
        rmq_common::recall::RecallHandle {
            topic: topic.to_owned(),
            broker_name: "broker-a".to_owned(),
            deliver_time_ms: 1_700_000_000_000,
            msg_id: "ID1".to_owned(),
        }
        .encode()
    };
    let h = handle("T");
    assert_eq!(
        p.recall("T", &h).await.unwrap(),
        format!("recalled:{}", h.len())
    );
    let err = p.recall("U", &handle("U")).await.unwrap_err();
    assert!(
        matches!(&err, crate::RecallError::Broker { code, .. } if *code == rmq_common::ResponseCode::NO_PERMISSION),
        "{err:?}"
    );
    p.shutdown().await;
}
