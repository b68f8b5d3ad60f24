//! `GO_AWAY` (1500) against scripted raw servers on loopback: the connection drains (requests in
//! flight on it still get their answers, then the client closes it), the refused request is
//! resent once on a new connection with a new opaque, a second `GO_AWAY` comes back as it is,
//! and a failed reconnect is the connect error.

mod common;

use std::time::Duration;

use common::{accept, echo, listener, next, request, send, within};
use futures_util::StreamExt;
use rmq_common::{RequestCode, ResponseCode};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig, RemotingError};

const CODE: RequestCode = RequestCode::SEND_MESSAGE_V2;
const T: Duration = Duration::from_secs(10);

fn go_away(req: &RemotingCommand) -> RemotingCommand {
    req.response_to(ResponseCode::GO_AWAY, Some("please go away".to_owned()))
}

fn body(cmd: &RemotingCommand) -> &[u8] {
    &cmd.body
}

#[tokio::test]
async fn go_away_drains_the_connection_and_resends_once_on_a_new_one() {
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let c = RemotingClient::new(RemotingConfig::default());
    // An async call in flight on the first connection...
    let first = within(c.invoke_async(&addr, request(CODE, "in-flight"), T))
        .await
        .expect("accepted");
    let mut a = accept(&l).await;
    let in_flight = next(&mut a).await;
    assert_eq!(body(&in_flight), b"in-flight");
    // ...then a sync call the server refuses with GO_AWAY.
    let c2 = c.clone();
    let a2 = addr.clone();
    let refused = tokio::spawn(async move { c2.invoke_sync(&a2, request(CODE, "again"), T).await });
    let req = next(&mut a).await;
    assert_eq!(body(&req), b"again");
    send(&mut a, go_away(&req)).await;
    // The resend comes on a new connection, with a new opaque.
    let mut b = accept(&l).await;
    let resent = next(&mut b).await;
    assert_eq!(body(&resent), b"again");
    assert_ne!(resent.opaque, req.opaque, "a resend takes a new opaque");
    assert_eq!(resent.code, req.code);
    assert_eq!(resent.ext_fields, req.ext_fields);
    send(&mut b, echo(&resent)).await;
    let resp = within(refused).await.expect("task").expect("answered");
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert_eq!(body(&resp), b"again");
    // The request in flight on the draining connection still gets its answer there.
    send(&mut a, echo(&in_flight)).await;
    let resp = within(first)
        .await
        .expect("answered on the draining connection");
    assert_eq!(body(&resp), b"in-flight");
    // Then the client closes the drained connection: the server reads its end.
    let end = within(a.next()).await;
    assert!(end.is_none(), "drained connection closed, got {end:?}");
    // New calls go on the new connection.
    let c3 = c.clone();
    let a3 = addr.clone();
    let later = tokio::spawn(async move { c3.invoke_sync(&a3, request(CODE, "later"), T).await });
    let req = next(&mut b).await;
    assert_eq!(body(&req), b"later");
    send(&mut b, echo(&req)).await;
    within(later).await.expect("task").expect("answered");
    assert_eq!(c.pending_len(), 0);
}

#[tokio::test]
async fn async_call_is_resent_after_go_away() {
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let c = RemotingClient::new(RemotingConfig::default());
    let fut = within(c.invoke_async(&addr, request(CODE, "x"), T))
        .await
        .expect("accepted");
    let mut a = accept(&l).await;
    let req = next(&mut a).await;
    send(&mut a, go_away(&req)).await;
    let answer = tokio::spawn(fut);
    let mut b = accept(&l).await;
    let resent = next(&mut b).await;
    assert_eq!(body(&resent), b"x");
    assert_ne!(resent.opaque, req.opaque);
    send(&mut b, echo(&resent)).await;
    let resp = within(answer).await.expect("task").expect("answered");
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    // Nothing was in flight on the first connection: it closes at once.
    assert!(within(a.next()).await.is_none());
}

#[tokio::test]
async fn a_callback_call_is_resent_after_go_away() {
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let c = RemotingClient::new(RemotingConfig::default());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&calls);
    within(c.invoke_async_with(&addr, request(CODE, "x"), T, move |r| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = tx.send(r);
    }))
    .await;
    let mut a = accept(&l).await;
    let req = next(&mut a).await;
    send(&mut a, go_away(&req)).await;
    let mut b = accept(&l).await;
    let resent = next(&mut b).await;
    assert_eq!(body(&resent), b"x");
    assert_ne!(resent.opaque, req.opaque);
    send(&mut b, echo(&resent)).await;
    let resp = within(rx).await.expect("called").expect("answered");
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(within(a.next()).await.is_none());
}

#[tokio::test]
async fn a_second_go_away_is_returned_as_it_is() {
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let c = RemotingClient::new(RemotingConfig::default());
    let c2 = c.clone();
    let a2 = addr.clone();
    let call = tokio::spawn(async move { c2.invoke_sync(&a2, request(CODE, "x"), T).await });
    let mut a = accept(&l).await;
    let req = next(&mut a).await;
    send(&mut a, go_away(&req)).await;
    let mut b = accept(&l).await;
    let req = next(&mut b).await;
    send(&mut b, go_away(&req)).await;
    let resp = within(call).await.expect("task").expect("an answer");
    assert_eq!(resp.response_code(), ResponseCode::GO_AWAY);
    // Not resent a second time: both connections drain and close, and the next call dials a
    // third one.
    assert!(within(a.next()).await.is_none());
    assert!(within(b.next()).await.is_none());
    let c3 = c.clone();
    let a3 = addr.clone();
    let later = tokio::spawn(async move { c3.invoke_sync(&a3, request(CODE, "y"), T).await });
    let mut third = accept(&l).await;
    let req = next(&mut third).await;
    send(&mut third, echo(&req)).await;
    within(later).await.expect("task").expect("answered");
}

#[tokio::test]
async fn a_failed_reconnect_is_the_connect_error_and_not_delivered() {
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let c = RemotingClient::new(RemotingConfig::default());
    let c2 = c.clone();
    let a2 = addr.clone();
    let call = tokio::spawn(async move { c2.invoke_sync(&a2, request(CODE, "x"), T).await });
    let mut a = accept(&l).await;
    drop(l); // the server stops accepting: the reconnect is refused
    let req = next(&mut a).await;
    send(&mut a, go_away(&req)).await;
    let err = within(call)
        .await
        .expect("task")
        .expect_err("no new connection");
    assert!(
        matches!(err, RemotingError::Connect { .. }),
        "a connect error, got {err:?}"
    );
    assert!(!err.maybe_delivered(), "the resend was never written");
}

#[tokio::test]
async fn without_reconnect_the_go_away_answer_is_returned() {
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let c = RemotingClient::new(RemotingConfig {
        reconnect_on_go_away: false,
        ..RemotingConfig::default()
    });
    let c2 = c.clone();
    let a2 = addr.clone();
    let call = tokio::spawn(async move { c2.invoke_sync(&a2, request(CODE, "x"), T).await });
    let mut a = accept(&l).await;
    let req = next(&mut a).await;
    send(&mut a, go_away(&req)).await;
    let resp = within(call).await.expect("task").expect("an answer");
    assert_eq!(resp.response_code(), ResponseCode::GO_AWAY);
    // The connection stays in use.
    let c3 = c.clone();
    let a3 = addr.clone();
    let later = tokio::spawn(async move { c3.invoke_sync(&a3, request(CODE, "y"), T).await });
    let req = next(&mut a).await;
    assert_eq!(body(&req), b"y");
    send(&mut a, echo(&req)).await;
    within(later).await.expect("task").expect("answered");
}
