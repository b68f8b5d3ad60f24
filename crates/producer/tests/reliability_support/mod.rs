//! Shared by the reliability test binaries (`reliability`, `reliability_hostile`): in-process
//! servers on 127.0.0.1 (the testkit's mocks, and a raw TCP peer for what the mocks cannot do),
//! bounded waits, and the memory lock.

// Each binary uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rmq_producer::ErrorKind;
use rmq_remoting::RemotingError;
use rmq_testkit::MockCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A generous bound for any single await.
pub(crate) const T: Duration = Duration::from_secs(30);

/// The memory test measures the process's RSS: it runs alone, every other test holds this
/// lock shared.
pub(crate) static MEMORY_LOCK: RwLock<()> = RwLock::const_new(());

pub(crate) async fn shared() -> RwLockReadGuard<'static, ()> {
    MEMORY_LOCK.read().await
}

pub(crate) async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEMORY_LOCK.write().await
}

pub(crate) async fn cluster(brokers: usize) -> MockCluster {
    timeout(T, MockCluster::start(brokers))
        .await
        .expect("cluster in time")
        .expect("cluster")
}

pub(crate) use rmq_testkit::error_line as chain;

/// The transport error behind `kind` (itself, or the last attempt's of a timeout or of
/// exhausted retries).
pub(crate) fn transport_cause(kind: &ErrorKind) -> Option<&RemotingError> {
    match kind {
        ErrorKind::Transport { source, .. } => Some(source),
        ErrorKind::RetriesExhausted { last, .. } => transport_cause(last),
        ErrorKind::Timeout {
            last: Some(last), ..
        } => transport_cause(last),
        _ => None,
    }
}

/// Polls `cond` every 10 ms for at most `bound`.
pub(crate) async fn eventually(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A raw TCP peer on 127.0.0.1 standing in for a broker or a name server; its tasks end when
/// it is dropped.
pub(crate) struct RawPeer {
    pub(crate) addr: String,
    pub(crate) accepted: Arc<AtomicUsize>,
    pub(crate) frames: Arc<AtomicUsize>,
    pub(crate) task: JoinHandle<()>,
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
pub(crate) enum PeerMode {
    /// Accepts and holds every connection, never reads a byte.
    Mute,
    /// Reads frame after frame and answers each with these bytes (the connection stays open
    /// until the client closes it).
    Answer(&'static [u8]),
}

impl RawPeer {
    pub(crate) async fn start(mode: PeerMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (accepted, frames) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, f) = (accepted.clone(), frames.clone());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            let mut conns = tokio::task::JoinSet::new();
            // Bounded: a test opens a handful of connections.
            for _ in 0..256 {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                a.fetch_add(1, Ordering::SeqCst);
                match mode {
                    PeerMode::Mute => held.push(socket),
                    PeerMode::Answer(reply) => {
                        let f = f.clone();
                        conns.spawn(answer_frames(socket, reply, f));
                    }
                }
            }
            // Keep the held sockets open until aborted.
            std::future::pending::<()>().await;
            drop((held, conns));
        });
        Self {
            addr,
            accepted,
            frames,
            task,
        }
    }
}

/// Answers every frame read on `socket` with `reply` (at most 1024 frames).
pub(crate) async fn answer_frames(
    mut socket: TcpStream,
    reply: &'static [u8],
    frames: Arc<AtomicUsize>,
) {
    for _ in 0..1024 {
        let mut len = [0u8; 4];
        if socket.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > 64 << 20 {
            return;
        }
        let mut frame = vec![0u8; n];
        if socket.read_exact(&mut frame).await.is_err() {
            return;
        }
        frames.fetch_add(1, Ordering::SeqCst);
        if socket.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// A length word announcing a 2 GiB frame (over any frame bound), then a few bytes.
pub(crate) const OVERSIZE_FRAME: &[u8] = &[0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, b'{', b'}'];

/// A well-framed command whose JSON header is not JSON.
pub(crate) const BAD_JSON_FRAME: &[u8] = &[
    0, 0, 0, 20, // frame length: 4 + 16
    0, 0, 0, 16, // serialize type JSON, header length 16
    b'{', b'n', b'o', b't', b' ', b'j', b's', b'o', b'n', b',', b' ', b'"', b'c', b'o', b'd', b'e',
];

/// Resident set size of this process, in bytes (Linux: `/proc/self/statm`, 4 KiB pages).
pub(crate) fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `len` pseudo-random (incompressible) bytes.
pub(crate) fn random_body(seed: u64, len: usize) -> Bytes {
    let mut x = seed | 1;
    let mut out = BytesMut::with_capacity(len);
    while out.len() + 8 <= len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.put_u64(x);
    }
    out.resize(len, 0);
    out.freeze()
}
