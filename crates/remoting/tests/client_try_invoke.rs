//! `RemotingClient::try_invoke_async_with`: queued at once (no future) when the connection is
//! up and a permit free, else a boxed future that waits; the callback runs exactly once either
//! way, and a dropped future calls it with `Shutdown`.

mod common;

use std::time::Duration;

use common::{accept, echo, listener, next, request, send, within};
use rmq_common::RequestCode;
use rmq_remoting::{RemotingClient, RemotingConfig, RemotingError};
use tokio::sync::oneshot;

const CODE: RequestCode = RequestCode::GET_ROUTEINFO_BY_TOPIC;
const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_at_once_once_connected_and_answered_once_either_way() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        for _ in 0..2 {
            let req = next(&mut f).await;
            send(&mut f, echo(&req)).await;
        }
        f
    });
    let c = RemotingClient::new(RemotingConfig::default());
    let addr = addr.to_string();
    // No connection yet: the call must wait for it, so a future comes back.
    let (tx, rx) = oneshot::channel();
    let rest = c.try_invoke_async_with(addr.clone(), request(CODE, "first"), T, move |r| {
        drop(tx.send(r));
    });
    let rest = rest.expect("a call without a connection waits");
    within(rest).await;
    let reply = within(rx).await.expect("called back").expect("a reply");
    assert_eq!(&reply.body[..], b"first");
    // Connected, a permit free, room in the queue: queued here, no future.
    let (tx, rx) = oneshot::channel();
    let rest = c.try_invoke_async_with(addr.as_str(), request(CODE, "second"), T, move |r| {
        drop(tx.send(r));
    });
    assert!(
        rest.is_none(),
        "a call that needs no wait is queued at once"
    );
    let reply = within(rx).await.expect("called back").expect("a reply");
    assert_eq!(&reply.body[..], b"second");
    assert_eq!(c.pending_len(), 0);
    drop(within(server).await);
    within(c.shutdown()).await;
}

#[tokio::test]
async fn a_dropped_future_calls_back_with_shutdown_and_so_does_a_call_on_a_closed_client() {
    let c = RemotingClient::new(RemotingConfig::default());
    let (tx, mut rx) = oneshot::channel();
    let rest = c.try_invoke_async_with("127.0.0.1:1", request(CODE, "x"), T, move |r| {
        drop(tx.send(r));
    });
    let rest = rest.expect("a call without a connection waits");
    assert!(rx.try_recv().is_err(), "not called back before the drop");
    drop(rest);
    let got = within(rx).await.expect("called back");
    assert!(matches!(got, Err(RemotingError::Shutdown)), "{got:?}");
    // A closed client without a connection to the address: the call goes to the waiting
    // part (no live connection), which ends at once with `Shutdown`.
    within(c.shutdown()).await;
    let (tx, mut rx) = oneshot::channel();
    let rest = c.try_invoke_async_with("127.0.0.1:1", request(CODE, "y"), T, move |r| {
        drop(tx.send(r));
    });
    let rest = rest.expect("no live connection: the waiting part");
    assert!(rx.try_recv().is_err(), "not called back before it runs");
    within(rest).await;
    let got = within(rx).await.expect("called back");
    assert!(matches!(got, Err(RemotingError::Shutdown)), "{got:?}");
}
