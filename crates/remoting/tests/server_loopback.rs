//! RemotingServer with RemotingClient on loopback: processors, fault knobs, pushes to clients.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{connect, eventually, request, within};
use rmq_common::{RequestCode, ResponseCode};
use rmq_remoting::{
    BoxFuture, DecodeError, ProcessorTable, RemotingClient, RemotingCommand, RemotingConfig,
    RemotingError, RemotingServer, RequestContext, SerializeType,
};

const ECHO: RequestCode = RequestCode::HEART_BEAT;
const SILENT: RequestCode = RequestCode::UNREGISTER_CLIENT;
const GARBAGE: RequestCode = RequestCode::VIEW_MESSAGE_BY_ID;
const PANIC: RequestCode = RequestCode::QUERY_MESSAGE;
const T: Duration = Duration::from_secs(5);

type Reply = BoxFuture<'static, Option<RemotingCommand>>;

fn table() -> ProcessorTable {
    let echo = |ctx: RequestContext, req: RemotingCommand| -> Reply {
        Box::pin(async move {
            let peer = ctx.peer_addr().to_string();
            let mut resp = req
                .response_to(ResponseCode::SUCCESS, Some(peer))
                .with_body(req.body.clone());
            resp.ext_fields = req.ext_fields.clone();
            Some(resp)
        })
    };
    let silent = |_: RequestContext, _: RemotingCommand| -> Reply { Box::pin(async { None }) };
    let garbage = |ctx: RequestContext, _: RemotingCommand| -> Reply {
        // serialize type 5 does not exist: the client must drop the connection
        let _ = ctx
            .connection()
            .send_raw(Bytes::from_static(&[0, 0, 0, 8, 5, 0, 0, 0]));
        Box::pin(async { None })
    };
    let panics = |_: RequestContext, _: RemotingCommand| -> Reply { panic!("processor bug") };
    ProcessorTable::new()
        .with(ECHO, Arc::new(echo))
        .with(SILENT, Arc::new(silent))
        .with(GARBAGE, Arc::new(garbage))
        .with(PANIC, Arc::new(panics))
}

async fn server() -> RemotingServer {
    within(RemotingServer::bind(
        "127.0.0.1:0",
        RemotingConfig::default(),
        table(),
    ))
    .await
    .expect("bind")
}

fn client() -> RemotingClient {
    RemotingClient::new(RemotingConfig {
        close_on_timeout: false,
        ..RemotingConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_answer_in_both_serializations() {
    let s = server().await;
    let addr = s.local_addr().to_string();
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        let c = RemotingClient::new(RemotingConfig {
            serialize_type: st,
            ..RemotingConfig::default()
        });
        let mut req = request(ECHO, "ping");
        req.ext_fields.insert("k", "v");
        let resp = within(c.invoke_sync(&addr, req, T)).await.expect("reply");
        assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
        assert_eq!(&resp.body[..], b"ping");
        assert_eq!(resp.ext_fields.get("k"), Some("v"));
        assert_eq!(
            resp.serialize_type, st,
            "answered in the request's serialization"
        );
        assert!(resp
            .remark
            .as_deref()
            .is_some_and(|p| p.starts_with("127.0.0.1:")));

        let resp = within(c.invoke_sync(&addr, request(RequestCode(4242), ""), T))
            .await
            .expect("reply");
        assert_eq!(
            resp.response_code(),
            ResponseCode::REQUEST_CODE_NOT_SUPPORTED
        );
        assert_eq!(
            resp.remark.as_deref(),
            Some(" request type 4242 not supported")
        );
    }
    within(s.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_processor_answers_system_error() {
    let s = server().await;
    let c = client();
    let resp = within(c.invoke_sync(&s.local_addr().to_string(), request(PANIC, ""), T))
        .await
        .expect("reply");
    assert_eq!(resp.response_code(), ResponseCode::SYSTEM_ERROR);
    // the connection survived
    let resp = within(c.invoke_sync(&s.local_addr().to_string(), request(ECHO, "ok"), T))
        .await
        .expect("reply");
    assert_eq!(&resp.body[..], b"ok");
    within(s.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_refuses_new_connections_and_resume_accepts_again() {
    let s = server().await;
    let addr = s.local_addr().to_string();
    let before = client();
    within(before.invoke_sync(&addr, request(ECHO, "1"), T))
        .await
        .expect("reply");
    assert!(eventually(|| s.connection_count() == 1).await);

    within(s.pause_accept()).await;
    let err = within(client().invoke_sync(&addr, request(ECHO, "2"), T))
        .await
        .expect_err("refused");
    assert!(matches!(err, RemotingError::Connect { .. }), "{err:?}");
    assert!(!err.maybe_delivered());
    // a live connection keeps working
    within(before.invoke_sync(&addr, request(ECHO, "3"), T))
        .await
        .expect("reply");

    within(s.resume_accept()).await.expect("rebind");
    within(client().invoke_sync(&addr, request(ECHO, "4"), T))
        .await
        .expect("accepted again");
    assert_eq!(s.local_addr().to_string(), addr);
    within(s.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_connections_fails_the_clients_waiters() {
    let s = server().await;
    // A silent processor that says when the request has reached the server.
    const NOTED: RequestCode = RequestCode::GET_BROKER_CLUSTER_INFO;
    let arrived = Arc::new(tokio::sync::Notify::new());
    let note = Arc::clone(&arrived);
    let noted = move |_: RequestContext, _: RemotingCommand| -> Reply {
        note.notify_one(); // stores a permit if nobody waits yet
        Box::pin(async { None })
    };
    s.processors().register(NOTED, Arc::new(noted));
    let addr = s.local_addr().to_string();
    let c = client();
    let fut = within(c.invoke_async(&addr, request(NOTED, ""), Duration::from_secs(15)))
        .await
        .expect("accepted");
    within(arrived.notified()).await;
    assert_eq!(s.connection_count(), 1);
    s.close_connections();
    match within(fut).await {
        Err(e @ RemotingError::ConnectionClosed { written: true, .. }) => {
            assert!(e.maybe_delivered())
        }
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    assert!(eventually(|| s.connection_count() == 0).await);
    // the client reconnects on next use
    within(c.invoke_sync(&addr, request(ECHO, "again"), T))
        .await
        .expect("reply");
    within(s.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_listed_before_it_serves_its_first_request() {
    let s = server().await;
    // A processor that answers with the number of live connections it sees.
    const COUNTS: RequestCode = RequestCode::GET_BROKER_CLUSTER_INFO;
    let seen_by = Arc::new(std::sync::OnceLock::<RemotingServer>::new());
    let server_of = Arc::clone(&seen_by);
    let counts = move |_: RequestContext, req: RemotingCommand| -> Reply {
        let n = server_of.get().map_or(0, RemotingServer::connection_count);
        Box::pin(async move { Some(req.response_to(ResponseCode::SUCCESS, Some(n.to_string()))) })
    };
    s.processors().register(COUNTS, Arc::new(counts));
    seen_by.set(s.clone()).expect("set once");
    let addr = s.local_addr().to_string();
    // Each on a new connection, the earlier ones kept open: the first request of each races
    // the accept loop's listing, and sees exactly the connections opened so far.
    let mut clients = Vec::new();
    for i in 0..40 {
        let c = client();
        let resp = within(c.invoke_sync(&addr, request(COUNTS, ""), T))
            .await
            .expect("reply");
        clients.push(c);
        let n: usize = resp
            .remark
            .as_deref()
            .unwrap_or("")
            .parse()
            .expect("a count");
        assert_eq!(
            n,
            i + 1,
            "connection {i} served a request before it was listed"
        );
    }
    within(s.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_makes_the_client_drop_the_connection() {
    let s = server().await;
    let c = client();
    let err = within(c.invoke_sync(&s.local_addr().to_string(), request(GARBAGE, ""), T))
        .await
        .expect_err("connection dropped");
    // A typed error naming what could not be decoded, still a connection failure.
    assert!(
        matches!(
            &err,
            RemotingError::Protocol {
                written: true,
                source: DecodeError::UnknownSerializeType(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_connection() && err.maybe_delivered());
    assert_eq!(c.pending_len(), 0);
    within(s.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_can_call_the_client() {
    let s = server().await;
    let c = client();
    let info = |_: RequestContext, req: RemotingCommand| -> Reply {
        Box::pin(async move {
            Some(RemotingCommand::response(ResponseCode::SUCCESS, None).with_body(req.body.clone()))
        })
    };
    c.register_processor(RequestCode::GET_CONSUMER_RUNNING_INFO, Arc::new(info));
    within(c.invoke_sync(&s.local_addr().to_string(), request(ECHO, ""), T))
        .await
        .expect("connected");
    let conns = s.connections();
    assert_eq!(conns.len(), 1);
    let resp =
        within(conns[0].invoke(request(RequestCode::GET_CONSUMER_RUNNING_INFO, "status"), T))
            .await
            .expect("client answers");
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert_eq!(&resp.body[..], b"status");
    let resp = within(conns[0].invoke(request(RequestCode::CHECK_TRANSACTION_STATE, ""), T))
        .await
        .expect("client answers");
    assert_eq!(
        resp.response_code(),
        ResponseCode::REQUEST_CODE_NOT_SUPPORTED
    );
    within(conns[0].invoke_oneway(request(RequestCode::CHECK_TRANSACTION_STATE, ""), T))
        .await
        .expect("written");
    within(s.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_everything() {
    let s = server().await;
    let addr = s.local_addr().to_string();
    let c = client();
    let fut = within(c.invoke_async(&addr, request(SILENT, ""), Duration::from_secs(10)))
        .await
        .expect("accepted");
    within(s.shutdown()).await;
    assert!(matches!(
        within(fut).await,
        Err(RemotingError::ConnectionClosed { .. })
    ));
    assert_eq!(s.connection_count(), 0);
    let err = within(c.invoke_sync(&addr, request(ECHO, ""), T))
        .await
        .expect_err("nobody listens");
    assert!(!err.maybe_delivered(), "{err:?}");
    assert!(
        within(s.resume_accept()).await.is_err(),
        "no resume after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_queue_budget_are_refused() {
    // A processor pushes 1 MiB responses to a client that never reads them.
    const PUSH: RequestCode = RequestCode::GET_CONSUMER_RUNNING_INFO;
    let (outcome_tx, outcome_rx) = tokio::sync::oneshot::channel();
    let outcome_tx = std::sync::Mutex::new(Some(outcome_tx));
    let push = move |ctx: RequestContext, req: RemotingCommand| -> Reply {
        let resp = req
            .response_to(ResponseCode::SUCCESS, None)
            .with_body(vec![0u8; 1024 * 1024]);
        let mut outcome = Ok(());
        for _ in 0..64 {
            outcome = ctx.connection().send_response(&resp);
            if outcome.is_err() {
                break;
            }
        }
        if let Some(tx) = outcome_tx.lock().expect("lock").take() {
            let _ = tx.send(outcome);
        }
        Box::pin(async { None })
    };
    let s = within(RemotingServer::bind(
        "127.0.0.1:0",
        RemotingConfig {
            max_queued_bytes: 2 * 1024 * 1024,
            ..RemotingConfig::default()
        },
        ProcessorTable::new().with(PUSH, Arc::new(push)),
    ))
    .await
    .expect("bind");
    let mut f = connect(s.local_addr()).await;
    common::send(&mut f, request(PUSH, "")).await;
    // 64 MiB cannot sit in socket buffers plus a 2 MiB queue.
    match within(outcome_rx).await.expect("processor ran") {
        Err(e @ RemotingError::Overloaded { .. }) => assert!(!e.maybe_delivered()),
        other => panic!("expected Overloaded, got {other:?}"),
    }
    drop(f);
    within(s.shutdown()).await;
}
