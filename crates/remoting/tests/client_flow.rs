//! RemotingClient back-pressure and flow: in-flight permits, the per-connection queue budget,
//! the write timeout, abandoned frames, and the idle timeout, against scripted raw servers
//! (oneway calls: `client_oneway.rs`).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{accept, echo, listener, next, read_until_quiet, request, send, within};
use futures_util::StreamExt;
use rmq_common::RequestCode;
use rmq_remoting::{OverloadPolicy, RemotingClient, RemotingConfig, RemotingError};
use tokio::time::Instant;

const CODE: RequestCode = RequestCode::GET_ROUTEINFO_BY_TOPIC;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_with_fail_policy() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        read_until_quiet(&mut f).await
    });
    let c = RemotingClient::new(RemotingConfig {
        max_async_in_flight: 2,
        max_oneway_in_flight: 1,
        overload: OverloadPolicy::Fail,
        close_on_timeout: false,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    let t = Duration::from_secs(10);
    let a = within(c.invoke_async(&addr, request(CODE, "a"), t))
        .await
        .expect("first");
    let _b = within(c.invoke_async(&addr, request(CODE, "b"), t))
        .await
        .expect("second");
    let err = within(c.invoke_async(&addr, request(CODE, "c"), t))
        .await
        .expect_err("third is refused");
    assert!(matches!(err, RemotingError::Overloaded { .. }), "{err:?}");
    assert!(!err.maybe_delivered());
    assert_eq!(c.pending_len(), 2);
    drop(a); // frees a permit
    let _c = within(c.invoke_async(&addr, request(CODE, "c"), t))
        .await
        .expect("accepted again");
    within(c.shutdown()).await;
    drop(within(server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_with_wait_policy_waits_then_gives_up() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        read_until_quiet(&mut f).await
    });
    let c = RemotingClient::new(RemotingConfig {
        max_async_in_flight: 1,
        close_on_timeout: false,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    let held = within(c.invoke_async(&addr, request(CODE, "a"), Duration::from_secs(10)))
        .await
        .expect("first");
    let start = Instant::now();
    let err = within(c.invoke_async(&addr, request(CODE, "b"), Duration::from_millis(150)))
        .await
        .expect_err("no permit in time");
    assert!(matches!(err, RemotingError::Overloaded { .. }), "{err:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "it waited for a permit"
    );
    drop(held);
    within(c.shutdown()).await;
    drop(within(server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_when_the_connection_dies_are_not_written() {
    // A server that never reads: the socket buffers fill, later frames stay queued.
    let (l, addr) = listener().await;
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (s, _) = within(l.accept()).await.expect("accept");
        // Bytes arrived: the writer has claimed (and started writing) a frame.
        within(s.readable()).await.expect("readable");
        let _ = within(close_rx).await;
        drop(s);
    });
    // Loopback buffers can hold tens of MiB (receive autotuning up to tcp_rmem's maximum,
    // 32 MiB here): queue far more than that (the body is shared, not copied).
    let c = RemotingClient::new(RemotingConfig {
        close_on_timeout: false,
        max_queued_bytes: 256 * 1024 * 1024,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    let body = Bytes::from(vec![7u8; 4 * 1024 * 1024]);
    let mut futs = Vec::new();
    for _ in 0..40 {
        let f = within(c.invoke_async(&addr, request(CODE, body.clone()), Duration::from_secs(15)))
            .await
            .expect("accepted");
        futs.push(f);
    }
    close_tx.send(()).expect("server waits");
    let (mut written, mut unwritten) = (0, 0);
    for f in futs {
        match within(f).await {
            Err(RemotingError::ConnectionClosed { written: true, .. }) => written += 1,
            Err(RemotingError::ConnectionClosed { written: false, .. }) => unwritten += 1,
            other => panic!("expected ConnectionClosed, got {other:?}"),
        }
    }
    // The server saw bytes, so a frame was written; 160 MiB cannot all sit in loopback socket
    // buffers, so some frames were still queued.
    assert!(written > 0, "no frame was reported written");
    assert!(unwritten > 0, "no frame was reported unwritten");
    assert_eq!(c.pending_len(), 0);
    within(server).await.expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_queue_budget_are_refused_and_give_their_permits_back() {
    // The server reads nothing until told: the socket buffers fill, then the client's queue.
    let (read_tx, server, addr) = echo_when_told(b"last").await;
    const PERMITS: usize = 16;
    let c = RemotingClient::new(RemotingConfig {
        max_async_in_flight: PERMITS,
        max_queued_bytes: 16 * 1024 * 1024,
        overload: OverloadPolicy::Wait,
        close_on_timeout: false,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    // Wait policy: a call is refused only when no room freed up during its whole timeout, so
    // "Overloaded" means the writer is stuck (not merely behind, as a Fail policy would see).
    let big = Bytes::from(vec![1u8; 8 * 1024 * 1024]);
    let mut accepted = Vec::new();
    let mut overloaded = None;
    for _ in 0..PERMITS - 1 {
        let call = c.invoke_async(&addr, request(CODE, big.clone()), Duration::from_secs(2));
        match within(call).await {
            Ok(f) => accepted.push(f),
            Err(e) => {
                overloaded = Some(e);
                break;
            }
        }
    }
    // 120 MiB cannot sit in loopback socket buffers plus a 16 MiB queue.
    let err = overloaded.expect("the queue budget refused a request");
    assert!(matches!(err, RemotingError::Overloaded { .. }), "{err:?}");
    assert!(!err.maybe_delivered());
    // The refused call waited out its whole timeout: the connection's timer may have expired
    // the first accepted ones by now (a deadline runs whether or not its future is polled);
    // their frames stay queued until the writer gets to them.
    let left = c.pending_len();
    assert!(left <= accepted.len(), "{left} pending");
    // The queue stays too full for another big frame: every form of call is refused, each
    // giving its permit back.
    let short = Duration::from_millis(100);
    for _ in 0..PERMITS + 4 {
        let err = within(c.invoke_async(&addr, request(CODE, big.clone()), short))
            .await
            .expect_err("still over budget");
        assert!(matches!(err, RemotingError::Overloaded { .. }), "{err:?}");
    }
    let err = within(c.invoke_sync(&addr, request(CODE, big.clone()), short))
        .await
        .expect_err("sync calls share the budget");
    assert!(matches!(err, RemotingError::Overloaded { .. }), "{err:?}");
    let err = within(c.invoke_oneway(&addr, request(CODE, big.clone()), short))
        .await
        .expect_err("oneway calls share the budget");
    assert!(matches!(err, RemotingError::Overloaded { .. }), "{err:?}");
    assert!(c.pending_len() <= left, "the refused calls left no entry");

    // Abandoned requests give their budget back once the writer gets to them.
    drop(accepted);
    read_tx.send(()).expect("server waits");
    let t = Duration::from_secs(15);
    within(c.invoke_sync(&addr, request(CODE, "probe"), t))
        .await
        .expect("the queue drains");
    // Every async permit is free again (none leaked by the refused calls).
    let mut futs = Vec::new();
    for i in 0..PERMITS {
        let f = within(c.invoke_async(&addr, request(CODE, format!("again-{i}")), t))
            .await
            .expect("a permit and room");
        futs.push((i, f));
    }
    for (i, f) in futs {
        let resp = within(f).await.expect("reply");
        assert_eq!(resp.body, Bytes::from(format!("again-{i}")));
    }
    within(c.invoke_sync(&addr, request(CODE, "last"), t))
        .await
        .expect("reply");
    assert_eq!(c.pending_len(), 0);
    drop(within(server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_after_the_write_timeout() {
    let (l, addr) = listener().await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (s, _) = within(l.accept()).await.expect("accept");
        let _ = within(done_rx).await; // holds the socket open, never reads
        drop(s);
    });
    let c = RemotingClient::new(RemotingConfig {
        write_timeout: Duration::from_secs(1),
        close_on_timeout: false,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    let body = Bytes::from(vec![3u8; 4 * 1024 * 1024]);
    let mut futs = Vec::new();
    for _ in 0..8 {
        // A reply deadline far beyond the test's bound: only the write timeout can end these.
        let f =
            within(c.invoke_async(&addr, request(CODE, body.clone()), Duration::from_secs(600)))
                .await
                .expect("accepted");
        futs.push(f);
    }
    let (mut written, mut unwritten) = (0, 0);
    for f in futs {
        match within(f).await {
            Err(RemotingError::ConnectionClosed { written: true, .. }) => written += 1,
            Err(RemotingError::ConnectionClosed { written: false, .. }) => unwritten += 1,
            other => panic!("expected ConnectionClosed, got {other:?}"),
        }
    }
    // 32 MiB do not fit in loopback socket buffers: the writer was stuck in a frame.
    assert!(
        written > 0 && unwritten > 0,
        "{written} written, {unwritten} not"
    );
    assert_eq!(c.pending_len(), 0);
    done_tx.send(()).expect("server waits");
    within(server).await.expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_a_pending_request_is_not_closed_as_idle() {
    let (l, addr) = listener().await;
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        let req = next(&mut f).await;
        within(reply_rx).await.expect("the test says when");
        send(&mut f, echo(&req)).await;
        // Nothing pending any more: now the client closes the idle connection.
        within(f.next()).await.is_none()
    });
    let c = RemotingClient::new(RemotingConfig {
        idle_timeout: Duration::from_millis(300),
        ..RemotingConfig::default()
    });
    let fut = within(c.invoke_async(
        &addr.to_string(),
        request(CODE, "slow"),
        Duration::from_secs(15),
    ))
    .await
    .expect("accepted");
    // Several idle periods without a read or a write pass while the reply is awaited.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    reply_tx.send(()).expect("server waits");
    let resp = within(fut).await.expect("the slow reply arrives");
    assert_eq!(&resp.body[..], b"slow");
    assert!(
        within(server).await.expect("server"),
        "an idle connection without pending requests is closed"
    );
}

/// A callback call that finds the connection's queue full waits for room (Wait policy) and is
/// answered once the peer reads again; until then it neither resolves nor calls back. Its
/// first phase otherwise queues without a wait: this is its other path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_call_waits_for_queue_room_then_is_answered() {
    let (read_tx, server, addr) = echo_when_told(b"waited").await;
    let c = RemotingClient::new(RemotingConfig {
        max_queued_bytes: 16 * 1024 * 1024,
        overload: OverloadPolicy::Wait,
        close_on_timeout: false,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    // Fill the socket buffers and the queue (the server reads nothing yet).
    let big = Bytes::from(vec![1u8; 8 * 1024 * 1024]);
    let short = Duration::from_millis(100);
    let mut accepted = Vec::new();
    for _ in 0..64 {
        match within(c.invoke_async(&addr, request(CODE, big.clone()), short)).await {
            Ok(f) => accepted.push(f),
            Err(RemotingError::Overloaded { .. }) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(accepted.len() < 64, "the queue never filled");
    // Now a call with a frame too big for what is left must wait for room.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let call = c.invoke_async_with(
        addr.clone(),
        request(CODE, big.clone()),
        Duration::from_secs(15),
        move |r| drop(tx.send(r)),
    );
    let mut call = Box::pin(call);
    let waited = tokio::time::timeout(Duration::from_millis(300), call.as_mut()).await;
    assert!(waited.is_err(), "the call did not wait for room");
    // Abandoned calls give their budget back once written or skipped; the server reads now.
    drop(accepted);
    read_tx.send(()).expect("server waits");
    within(call).await;
    let reply = within(rx).await.expect("called back").expect("a reply");
    assert_eq!(reply.body.len(), big.len());
    within(c.invoke_sync(&addr, request(CODE, "waited"), Duration::from_secs(15)))
        .await
        .expect("reply");
    assert_eq!(c.pending_len(), 0);
    drop(within(server).await);
}

/// A server that reads nothing until told, then echoes every request until one whose body is
/// `last`; it hands its connection back (kept open) when done.
async fn echo_when_told(
    last: &'static [u8],
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<
        tokio_util::codec::Framed<tokio::net::TcpStream, rmq_remoting::RemotingCodec>,
    >,
    std::net::SocketAddr,
) {
    let (l, addr) = listener().await;
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        within(read_rx).await.expect("told to read");
        loop {
            let req = next(&mut f).await;
            send(&mut f, echo(&req)).await;
            if &req.body[..] == last {
                return f;
            }
        }
    });
    (read_tx, server, addr)
}
