//! The writer's chunks (see `writer`) against a scripted peer on its own thread: the frames of
//! callers woken together go out in chunks as they come, so that a peer answering each chunk
//! keeps the client from waiting for whole rounds.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rmq_common::{ExtFields, RequestCode, ResponseCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::tests::start_duplex;
use super::Connection;
use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;

const LIMIT: Duration = Duration::from_secs(20);
const CALLERS: usize = 64;
const ROUNDS: usize = 100;
/// How long the peer waits for more frames before it answers a short batch.
const QUIET: Duration = Duration::from_millis(20);
/// How long each caller works (blocking its worker) before each request: the peer, on its own
/// thread, must answer a chunk within the rest of the round's work (~48 times this).
const WORK: Duration = Duration::from_micros(150);

/// What a run saw: the chunk-sized writes after the first round.
struct Run {
    chunks: usize,
}

impl Run {
    /// At least one chunk-sized write per four rounds (whole rounds give 2 to 4 in all).
    fn has_chunks(&self) {
        assert!(
            self.chunks >= ROUNDS / 4,
            "{} chunks in {} rounds of {CALLERS}",
            self.chunks,
            ROUNDS - 1
        );
    }
}

/// A stream that records the bytes of each of the writer's batches (it flushes once after
/// each).
struct CountFlushes<S> {
    inner: S,
    unflushed: usize,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountFlushes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountFlushes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.unflushed += n;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.unflushed += n;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.unflushed > 0 {
            let bytes = std::mem::take(&mut self.unflushed);
            self.batches.lock().expect("not poisoned").push(bytes);
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs `peer` on a thread of its own, on a runtime of its own.
fn on_own_thread<T, F>(peer: F) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(peer)
    })
}

/// Runs [`CALLERS`] sync callers for [`ROUNDS`] requests each, every caller working [`WORK`]
/// before each request, against a peer on its own thread that answers every `answer_every`
/// frames it has read in one write.
async fn run(answer_every: usize) -> Run {
    let (ours, theirs) = tokio::io::duplex(1024 * 1024);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let ours = CountFlushes {
        inner: ours,
        unflushed: 0,
        batches: Arc::clone(&batches),
    };
    let conn = start_duplex(ours);
    let after_first = Arc::new(AtomicUsize::new(0));
    let peer = {
        let batches = Arc::clone(&batches);
        let after_first = Arc::clone(&after_first);
        on_own_thread(async move {
            let mut peer = Framed::new(theirs, RemotingCodec::new());
            let mut held = Vec::new();
            let mut seen = 0;
            while seen < CALLERS * ROUNDS || !held.is_empty() {
                // Near the end fewer callers are left than a batch: what is held is
                // answered once nothing more comes for a while.
                let wait = if held.is_empty() { LIMIT } else { QUIET };
                let next = tokio::time::timeout(wait, peer.next()).await;
                if let Ok(req) = next {
                    held.push(req.expect("a frame").expect("decodes"));
                    seen += 1;
                    if seen == CALLERS {
                        let so_far = batches.lock().expect("not poisoned").len();
                        after_first.store(so_far, Ordering::SeqCst);
                    }
                    if held.len() < answer_every {
                        continue;
                    }
                }
                for req in held.drain(..) {
                    peer.feed(req.response_to(ResponseCode::SUCCESS, None))
                        .await
                        .expect("buffered");
                }
                SinkExt::<RemotingCommand>::flush(&mut peer)
                    .await
                    .expect("sent");
            }
        })
    };
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    std::thread::sleep(WORK);
                    call(&conn).await;
                }
            })
        })
        .collect();
    for c in callers {
        tokio::time::timeout(LIMIT, c)
            .await
            .expect("in time")
            .expect("caller");
    }
    peer.join().expect("peer");
    conn.close();
    let batches = batches.lock().expect("not poisoned");
    // Frames differ by a few bytes (their opaques): counted by the mean frame's size.
    let frame = batches.iter().sum::<usize>() / (CALLERS * ROUNDS);
    let chunks = batches[after_first.load(Ordering::SeqCst)..]
        .iter()
        .filter(|&&bytes| (8 * frame..=24 * frame).contains(&bytes))
        .count();
    Run { chunks }
}

async fn call(conn: &Connection) {
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
    req.opaque = conn.next_opaque();
    conn.call(&req, Instant::now() + LIMIT, LIMIT, false)
        .await
        .expect("a reply");
}

/// The peer answers every 16 frames at once: the client, still working through the round,
/// finds the answers waiting, and keeps writing chunks (whole rounds: 2 to 4 such writes; a
/// frame at a time: none).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_round_goes_out_in_chunks_the_peer_answers_as_they_come() {
    run(16).await.has_chunks();
}

/// The peer answers only once it has the whole round: the frames still go out in chunks as
/// the callers send (the writer does not hold them for a round).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_peer_that_answers_whole_rounds_still_gets_chunks() {
    run(CALLERS).await.has_chunks();
}

/// A lone request with nothing else in flight (one sync caller, a first request, a heartbeat)
/// is written at once, not after the worker's other ready tasks: here one that blocks the only
/// worker for 300 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_lone_request_is_written_at_once() {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let conn = start_duplex(ours);
    let start = std::time::Instant::now();
    let peer = on_own_thread(async move {
        let mut peer = Framed::new(theirs, RemotingCodec::new());
        let req = tokio::time::timeout(LIMIT, peer.next())
            .await
            .expect("in time")
            .expect("a frame")
            .expect("decodes");
        let arrived = start.elapsed();
        peer.send(req.response_to(ResponseCode::SUCCESS, None))
            .await
            .expect("sent");
        arrived
    });
    let caller = {
        let conn = conn.clone();
        tokio::spawn(async move { call(&conn).await })
    };
    let busy = tokio::spawn(async { std::thread::sleep(Duration::from_millis(300)) });
    tokio::time::timeout(LIMIT, caller)
        .await
        .expect("in time")
        .expect("caller");
    busy.await.expect("busy");
    let arrived = peer.join().expect("peer");
    conn.close();
    assert!(
        arrived < Duration::from_millis(150),
        "the request reached the peer after {arrived:?}"
    );
}
