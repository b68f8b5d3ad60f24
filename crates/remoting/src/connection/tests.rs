//! Connection tasks that end abnormally still close the connection and fail every waiter; a
//! stream without vectored writes still gets every frame whole.

use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::{ExtFields, RequestCode};
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{wait_finished, ConnOptions, Connection};
use crate::command::RemotingCommand;
use crate::config::RemotingConfig;
use crate::error::RemotingError;
use crate::processor::ProcessorTable;

const LIMIT: Duration = Duration::from_secs(20);

/// The peer of an in-memory connection.
type Peer = tokio_util::codec::Framed<tokio::io::DuplexStream, crate::codec::RemotingCodec>;

/// The next `n` requests the peer reads.
async fn read_frames(peer: &mut Peer, n: usize) -> Vec<RemotingCommand> {
    use futures_util::StreamExt;
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        let req = tokio::time::timeout(LIMIT, peer.next())
            .await
            .expect("in time")
            .expect("a frame")
            .expect("decodes");
        frames.push(req);
    }
    frames
}

/// Answers `reqs` with SUCCESS in one write, so that the reader hands the replies out in one go.
async fn answer_in_one_write(peer: &mut Peer, reqs: &[RemotingCommand]) {
    use futures_util::SinkExt;
    for req in reqs {
        peer.feed(req.response_to(rmq_common::ResponseCode::SUCCESS, None))
            .await
            .expect("buffered");
    }
    tokio::time::timeout(LIMIT, SinkExt::<RemotingCommand>::flush(peer))
        .await
        .expect("in time")
        .expect("sent");
}

/// A connection over an in-memory stream, with the default configuration.
pub(super) fn start_duplex<S>(io: S) -> Connection
where
    S: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let opts = ConnOptions::new(
        "duplex".to_owned(),
        &RemotingConfig::default(),
        ProcessorTable::new(),
        Arc::new(AtomicI32::new(1)),
    );
    Connection::start_io(io, "127.0.0.1:1".parse().expect("addr"), opts, |_| ())
}

/// A connection to a loopback peer that reads nothing; the peer's socket is returned to keep
/// it open.
async fn connection() -> (Connection, [JoinHandle<()>; 2], TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (ours, theirs) = tokio::time::timeout(LIMIT, async {
        tokio::join!(TcpStream::connect(addr), l.accept())
    })
    .await
    .expect("connect in time");
    let opts = ConnOptions::new(
        addr.to_string(),
        &RemotingConfig::default(),
        ProcessorTable::new(),
        Arc::new(AtomicI32::new(1)),
    );
    let (conn, tasks) = Connection::start_tcp(ours.expect("connect"), opts, |_| ());
    (conn, tasks, theirs.expect("accept").0)
}

/// Which task dies, and whether it ran before (on the current-thread runtime a spawned task
/// runs only when the test yields).
async fn dies_and_fails_the_waiter(task: usize, ran: bool) {
    let (conn, tasks, _peer) = connection().await;
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
    req.opaque = conn.next_opaque();
    let deadline = Instant::now() + Duration::from_secs(600);
    let (rx, _guard) = conn
        .send_request(&req, deadline, Duration::from_secs(600), false)
        .await
        .expect("queued");
    assert_eq!(conn.pending_len(), 1);
    if ran {
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }
    // Aborting drops the task's future where it waits (or before it ever ran), as a panic or
    // a runtime shutdown would.
    tasks[task].abort();
    let reply = tokio::time::timeout(LIMIT, rx)
        .await
        .expect("the waiter is failed, not left hanging")
        .expect("failed explicitly, not by a dropped sender");
    assert!(
        matches!(reply, Err(RemotingError::ConnectionClosed { .. })),
        "{reply:?}"
    );
    assert!(conn.is_closed());
    tokio::time::timeout(LIMIT, conn.finished())
        .await
        .expect("finished");
    assert_eq!(conn.pending_len(), 0);
}

#[tokio::test]
async fn a_reader_task_that_dies_closes_the_connection() {
    dies_and_fails_the_waiter(0, true).await;
}

#[tokio::test]
async fn a_reader_task_dropped_before_it_ran_closes_the_connection() {
    dies_and_fails_the_waiter(0, false).await;
}

#[tokio::test]
async fn a_writer_task_that_dies_fails_every_waiter() {
    dies_and_fails_the_waiter(1, true).await;
}

#[tokio::test]
async fn a_writer_task_dropped_before_it_ran_fails_every_waiter() {
    dies_and_fails_the_waiter(1, false).await;
}

#[tokio::test]
async fn shutdown_waits_for_every_connection_at_once() {
    // Two live connections that will not finish: the wait gives up after one grace period,
    // not one per connection. Sockets are set up first; then the clock is paused, since the
    // grace timer is the subject.
    let (a, _a_tasks, _a_peer) = connection().await;
    let (b, _b_tasks, _b_peer) = connection().await;
    tokio::time::pause();
    let grace = Duration::from_secs(5);
    let start = Instant::now();
    wait_finished(&[a.clone(), b.clone()], grace).await;
    let took = start.elapsed();
    assert!(took >= grace && took < 2 * grace, "waited {took:?}");
    assert!(!a.is_finished() && !b.is_finished());
}

/// A stream without vectored writes (an in-memory duplex) gets every frame whole and in
/// order, small and large bodies mixed; the peer's replies route back by opaque.
#[tokio::test]
async fn frames_go_whole_over_a_stream_without_vectored_writes() {
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    use crate::codec::RemotingCodec;

    let (ours, theirs) = tokio::io::duplex(4096);
    let ours = NotVectored(ours);
    assert!(!ours.is_write_vectored());
    let conn = start_duplex(ours);
    let sizes = [0usize, 5, 600, 20_000, 3, 300_000, 1];
    let bodies: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| Bytes::from(vec![u8::try_from(i).expect("small"); n]))
        .collect();
    let deadline = Instant::now() + LIMIT;
    let mut waiters = Vec::new();
    for body in &bodies {
        let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new())
            .with_body(body.clone());
        req.opaque = conn.next_opaque();
        waiters.push(
            conn.send_request(&req, deadline, Duration::from_secs(600), false)
                .await
                .expect("queued"),
        );
    }
    let mut peer = Framed::new(theirs, RemotingCodec::new());
    for body in &bodies {
        let req = tokio::time::timeout(LIMIT, peer.next())
            .await
            .expect("in time")
            .expect("a frame")
            .expect("decodes");
        assert_eq!(&req.body, body);
        let resp = req.response_to(rmq_common::ResponseCode::SUCCESS, None);
        tokio::time::timeout(LIMIT, peer.send(resp))
            .await
            .expect("in time")
            .expect("sent");
    }
    for (rx, mut guard) in waiters {
        let reply = tokio::time::timeout(LIMIT, rx).await.expect("in time");
        guard.disarm();
        reply.expect("answered").expect("a reply");
    }
    conn.close();
    tokio::time::timeout(LIMIT, conn.finished())
        .await
        .expect("finished");
}

/// A stream that hides its vectored writes (so the writer's one-slice-per-write path runs).
struct NotVectored<S>(S);

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for NotVectored<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NotVectored<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Several sync callers answered by one read send their next requests together: the writer,
/// woken by the first of them, gathers while each pass of the worker's ready tasks brings
/// another frame (on a multi-thread runtime it would otherwise run right after each caller and
/// write its frame alone, a `writev` and a wake-up of the peer per frame).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn callers_answered_together_share_one_write() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    use crate::codec::RemotingCodec;

    const CALLERS: usize = 8;
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let ours = CountWrites {
        inner: ours,
        writes: Arc::clone(&writes),
    };
    let conn = start_duplex(ours);
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for _ in 0..2 {
                    let mut req =
                        RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
                    req.opaque = conn.next_opaque();
                    let deadline = Instant::now() + LIMIT;
                    conn.call(&req, deadline, LIMIT, false)
                        .await
                        .expect("a reply");
                }
            })
        })
        .collect();
    let mut peer = Framed::new(theirs, RemotingCodec::new());
    let round = read_frames(&mut peer, CALLERS).await;
    let before = writes.load(Ordering::SeqCst);
    answer_in_one_write(&mut peer, &round).await;
    let mut second = Vec::new();
    for _ in 0..CALLERS {
        let req = tokio::time::timeout(LIMIT, peer.next())
            .await
            .expect("in time")
            .expect("a frame")
            .expect("decodes");
        second.push(req.opaque);
        peer.send(req.response_to(rmq_common::ResponseCode::SUCCESS, None))
            .await
            .expect("sent");
    }
    let second_round_writes = writes.load(Ordering::SeqCst) - before;
    for c in callers {
        tokio::time::timeout(LIMIT, c)
            .await
            .expect("in time")
            .expect("caller");
    }
    // Each opaque once: no frame lost or repeated.
    second.sort_unstable();
    second.dedup();
    assert_eq!(second.len(), CALLERS);
    assert!(
        second_round_writes <= 2,
        "{CALLERS} frames took {second_round_writes} writes"
    );
    conn.close();
    tokio::time::timeout(LIMIT, conn.finished())
        .await
        .expect("finished");
}

/// A stream that counts the writes that took bytes.
struct CountWrites<S> {
    inner: S,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CountWrites<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountWrites<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A close while the writer waits for the frames of callers answered together: every caller's
/// next request still resolves, with `ConnectionClosed`, the connection finishes, and a caller
/// told `written: true` had its frame reach the peer (the writer gave up on the frames in hand
/// when it found the connection closed after a yield, reporting them written; found in review).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_close_while_the_writer_gathers_fails_every_request_truthfully() {
    use futures_util::StreamExt;
    use tokio_util::codec::Framed;

    use crate::codec::RemotingCodec;

    const CALLERS: usize = 8;
    let (mut written_true, mut never_arrived) = (0, 0);
    for _round in 0..20 {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let conn = start_duplex(ours);
        let callers: Vec<_> = (0..CALLERS)
            .map(|i| {
                let conn = conn.clone();
                tokio::spawn(async move {
                    let mut req =
                        RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
                    req.opaque = conn.next_opaque();
                    conn.call(&req, Instant::now() + LIMIT, LIMIT, false)
                        .await
                        .expect("a reply");
                    if i == CALLERS / 2 {
                        conn.close();
                        return None;
                    }
                    req.opaque = conn.next_opaque();
                    let next = conn.call(&req, Instant::now() + LIMIT, LIMIT, false).await;
                    Some((req.opaque, next))
                })
            })
            .collect();
        // Every first request answered in one write, so their callers wake together.
        let mut peer = Framed::new(theirs, RemotingCodec::new());
        let first = read_frames(&mut peer, CALLERS).await;
        answer_in_one_write(&mut peer, &first).await;
        let mut results = Vec::new();
        for c in callers {
            let r = tokio::time::timeout(LIMIT, c).await.expect("resolves");
            if let Some(r) = r.expect("caller") {
                results.push(r);
            }
        }
        tokio::time::timeout(LIMIT, conn.finished())
            .await
            .expect("finished");
        assert_eq!(conn.pending_len(), 0);
        drop(conn);
        let mut seen = Vec::new();
        while let Ok(Some(Ok(f))) =
            tokio::time::timeout(Duration::from_millis(500), peer.next()).await
        {
            seen.push(f.opaque);
        }
        assert_eq!(results.len(), CALLERS - 1);
        for (opaque, r) in &results {
            assert!(
                matches!(r, Err(RemotingError::ConnectionClosed { .. })),
                "{r:?}"
            );
            if let Err(RemotingError::ConnectionClosed { written: true, .. }) = r {
                written_true += 1;
                if !seen.contains(opaque) {
                    never_arrived += 1;
                }
            }
        }
    }
    assert_eq!(
        never_arrived, 0,
        "{never_arrived} of {written_true} requests reported written never reached the peer"
    );
}
