//! The connection's timer on tokio's paused clock: deadlines kept per connection.

use std::net::SocketAddr;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::{ExtFields, RequestCode};
use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{ConnOptions, Connection, PendingGuard, Reply};
use crate::command::RemotingCommand;
use crate::config::RemotingConfig;
use crate::error::RemotingError;
use crate::processor::ProcessorTable;

const MS: Duration = Duration::from_millis(1);

/// A connection over an in-memory stream whose peer never answers (kept open by the returned
/// end).
fn connection() -> (Connection, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let opts = ConnOptions::new(
        "peer".into(),
        &RemotingConfig::default(),
        ProcessorTable::new(),
        Arc::new(AtomicI32::new(1)),
    );
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    (Connection::start_io(ours, peer, opts, |_| ()), theirs)
}

/// Sends a request that times out `after` from now.
async fn send(
    conn: &Connection,
    after: Duration,
    close: bool,
) -> (i32, oneshot::Receiver<Reply>, PendingGuard) {
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
    req.opaque = conn.next_opaque();
    let (rx, guard) = conn
        .send_request(&req, Instant::now() + after, after, close)
        .await
        .expect("queued");
    (req.opaque, rx, guard)
}

/// Awaits `rx`, returning the outcome and when it came.
async fn outcome(rx: oneshot::Receiver<Reply>) -> (Reply, Instant) {
    let reply = tokio::time::timeout(Duration::from_secs(600), rx)
        .await
        .expect("resolved")
        .expect("delivered");
    (reply, Instant::now())
}

fn timed_out(reply: &Reply, after: Duration) -> bool {
    matches!(reply, Err(RemotingError::Timeout { after: a, .. }) if *a == after)
}

#[tokio::test(start_paused = true)]
async fn a_request_times_out_at_its_deadline_and_the_others_wait() {
    let (conn, _peer) = connection();
    let t0 = Instant::now();
    let (_, a, _ga) = send(&conn, 100 * MS, false).await;
    let (_, b, _gb) = send(&conn, 300 * MS, false).await;
    let (reply, at) = outcome(a).await;
    assert!(timed_out(&reply, 100 * MS), "{reply:?}");
    let took = at - t0;
    assert!(
        took >= 100 * MS && took <= 102 * MS,
        "timed out after {took:?}"
    );
    assert_eq!(conn.pending_len(), 1, "the other request still waits");
    assert!(!conn.is_closed(), "an async timeout keeps the connection");
    let (reply, at) = outcome(b).await;
    assert!(timed_out(&reply, 300 * MS), "{reply:?}");
    let took = at - t0;
    assert!(
        took >= 300 * MS && took <= 302 * MS,
        "timed out after {took:?}"
    );
    assert_eq!(conn.pending_len(), 0);
    assert!(!conn.is_closed());
}

#[tokio::test(start_paused = true)]
async fn out_of_order_deadlines_each_expire_on_time() {
    let (conn, _peer) = connection();
    let t0 = Instant::now();
    let (_, late, _gl) = send(&conn, 500 * MS, false).await;
    let (_, early, _ge) = send(&conn, 100 * MS, false).await;
    let (_, middle, _gm) = send(&conn, 250 * MS, false).await;
    for (rx, after) in [(early, 100 * MS), (middle, 250 * MS), (late, 500 * MS)] {
        let (reply, at) = outcome(rx).await;
        assert!(timed_out(&reply, after), "{reply:?}");
        let took = at - t0;
        assert!(
            took >= after && took <= after + 2 * MS,
            "{after:?}: timed out after {took:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_completed_request_s_deadline_does_nothing() {
    let (conn, _peer) = connection();
    // A sync call's timeout would close the connection: this one completes first.
    let (opaque, rx, mut guard) = send(&conn, 100 * MS, true).await;
    let mut reply = RemotingCommand::response(rmq_common::ResponseCode::SUCCESS, None);
    reply.opaque = opaque;
    assert!(conn.shared.pending.complete(opaque, Ok(reply)));
    guard.disarm();
    let (got, _) = outcome(rx).await;
    assert!(got.is_ok(), "{got:?}");
    tokio::time::sleep(500 * MS).await;
    assert!(!conn.is_closed(), "the deadline of a completed call fired");
    // A later request is not hit by the old deadline either.
    let (_, rx, _g) = send(&conn, 200 * MS, false).await;
    let t1 = Instant::now();
    let (got, at) = outcome(rx).await;
    assert!(timed_out(&got, 200 * MS), "{got:?}");
    assert!(at - t1 >= 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_sync_timeout_closes_the_connection() {
    let (conn, _peer) = connection();
    let (_, other, _go) = send(&conn, 10_000 * MS, false).await;
    let (_, rx, _g) = send(&conn, 100 * MS, true).await;
    let (reply, _) = outcome(rx).await;
    assert!(timed_out(&reply, 100 * MS), "{reply:?}");
    let (reply, _) = outcome(other).await;
    assert!(
        matches!(reply, Err(RemotingError::ConnectionClosed { .. })),
        "{reply:?}"
    );
    assert!(conn.is_closed());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_queue_stays_bounded_under_answered_requests() {
    let (conn, _peer) = connection();
    // One request that is never answered heads the queue the whole run.
    let (_, _stuck, _gs) = send(&conn, 3_600_000 * MS, false).await;
    let mut most = 0;
    for i in 0..20_000u32 {
        let timeout = if i % 7 == 0 { 1_000 * MS } else { 3_000 * MS };
        let (opaque, rx, mut guard) = send(&conn, timeout, false).await;
        let mut reply = RemotingCommand::response(rmq_common::ResponseCode::SUCCESS, None);
        reply.opaque = opaque;
        assert!(conn.shared.pending.complete(opaque, Ok(reply)));
        guard.disarm();
        drop(rx);
        most = most.max(conn.shared.pending.deadlines_len());
        if i % 1000 == 0 {
            tokio::time::sleep(MS).await;
        }
    }
    assert_eq!(conn.pending_len(), 1);
    assert!(most <= 200, "the deadline queue grew to {most} entries");
}

/// Sends a request whose outcome goes to a callback; the outcomes are counted in `seen`.
async fn send_with_callback(
    conn: &Connection,
    after: Duration,
    seen: &Arc<std::sync::Mutex<Vec<(Reply, Instant)>>>,
) -> i32 {
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
    req.opaque = conn.next_opaque();
    let opaque = req.opaque;
    let seen = Arc::clone(seen);
    conn.send_request_callback(req, Instant::now() + after, after, move |_| {
        Box::new(crate::client::Callback::new(move |r: Reply| {
            seen.lock().expect("lock").push((r, Instant::now()));
        }))
    })
    .await;
    opaque
}

#[tokio::test(start_paused = true)]
async fn a_callback_is_called_once_with_its_reply_or_its_timeout() {
    let (conn, _peer) = connection();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let answered = send_with_callback(&conn, 100 * MS, &seen).await;
    let _unanswered = send_with_callback(&conn, 200 * MS, &seen).await;
    let mut reply = RemotingCommand::response(rmq_common::ResponseCode::SUCCESS, None);
    reply.opaque = answered;
    assert!(conn.shared.pending.complete(answered, Ok(reply)));
    assert!(!conn
        .shared
        .pending
        .complete(answered, Err(RemotingError::Shutdown)));
    tokio::time::sleep(1_000 * MS).await;
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2, "each called once");
    assert!(seen[0].0.is_ok());
    assert!(timed_out(&seen[1].0, 200 * MS), "{:?}", seen[1].0);
    let took = seen[1].1 - t0;
    assert!(
        took >= 200 * MS && took <= 202 * MS,
        "timed out after {took:?}"
    );
    assert!(!conn.is_closed());
    assert_eq!(conn.pending_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_callback_does_not_end_the_connection() {
    let (conn, _peer) = connection();
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
    req.opaque = conn.next_opaque();
    conn.send_request_callback(req, Instant::now() + 50 * MS, 50 * MS, |_| {
        Box::new(crate::client::Callback::new(|_r: Reply| {
            panic!("callback panics")
        }))
    })
    .await;
    tokio::time::sleep(100 * MS).await;
    assert!(!conn.is_closed(), "the timer survived the panic");
    let (_, rx, _g) = send(&conn, 100 * MS, false).await;
    let (reply, _) = outcome(rx).await;
    assert!(timed_out(&reply, 100 * MS), "{reply:?}");
}

#[tokio::test(start_paused = true)]
async fn a_closed_connection_fails_callbacks_once() {
    let (conn, _peer) = connection();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    send_with_callback(&conn, 10_000 * MS, &seen).await;
    conn.close();
    tokio::time::timeout(Duration::from_secs(60), conn.finished())
        .await
        .expect("finished");
    // after close: failed at once, here
    send_with_callback(&conn, 10_000 * MS, &seen).await;
    tokio::time::sleep(20_000 * MS).await;
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen
        .iter()
        .all(|(r, _)| matches!(r, Err(RemotingError::ConnectionClosed { .. }))));
}
