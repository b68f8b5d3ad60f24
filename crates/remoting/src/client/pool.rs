//! One connection per address: lazily connected, replaced on next use once closed; after a
//! failed connect, calls fail at once until the address's backoff window passes.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicI32;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoffs;
use crate::config::RemotingConfig;
use crate::connection::{ConnOptions, Connection};
use crate::error::RemotingError;
use crate::processor::ProcessorTable;

/// A connect left unfinished this long counts as a failed one (see `connect`).
const BLACK_HOLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// FNV-1a over the address: every call looks its connection up, and SipHash of a
/// `host:port` cost more than the rest of the lookup. (The keys are a handful of broker
/// addresses: no flooding to defend against.)
#[derive(Debug, Clone, Copy)]
pub(super) struct AddrHasher(u64);

impl Default for AddrHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        // DashMap picks the shard from the high bits: mix the low ones up.
        self.0 ^ (self.0 >> 29).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[derive(Debug)]
pub(super) struct Pool {
    /// Its id in the threads' caches of recent connections (`super::recent`).
    id: u64,
    conns: DashMap<String, Connection, BuildHasherDefault<AddrHasher>>,
    /// One connect at a time per address; an entry lives while someone connects there.
    connecting: DashMap<String, Arc<Mutex<()>>>,
    /// Addresses whose last connect failed, and until when calls to them fail at once.
    backoff: Backoffs,
    /// Connections the peer said `GO_AWAY` on, out of `conns`, until they have closed.
    draining: std::sync::Mutex<Vec<Connection>>,
    /// Connects, reconnects and failed connects (for metrics).
    pub(super) counters: super::stats::Counters,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            id: super::recent::pool_id(),
            conns: DashMap::default(),
            connecting: DashMap::default(),
            backoff: Backoffs::default(),
            draining: std::sync::Mutex::default(),
            counters: super::stats::Counters::default(),
        }
    }
}

/// A share of the per-address connect lock; the last share to go removes the map entry, so
/// addresses connected once (or never reached) do not pile up.
struct ConnectingSlot<'a> {
    map: &'a DashMap<String, Arc<Mutex<()>>>,
    addr: &'a str,
    lock: Arc<Mutex<()>>,
}

impl<'a> ConnectingSlot<'a> {
    fn take(map: &'a DashMap<String, Arc<Mutex<()>>>, addr: &'a str) -> Self {
        let lock = Arc::clone(&map.entry(addr.to_owned()).or_default());
        Self { map, addr, lock }
    }

    fn lock(&self) -> &Mutex<()> {
        &self.lock
    }
}

impl Drop for ConnectingSlot<'_> {
    fn drop(&mut self) {
        // Checked under the shard lock, where `take` clones: 2 means the map and this slot
        // are the only holders, and nobody can take a new share of this lock any more.
        self.map
            .remove_if(self.addr, |_, lock| Arc::strong_count(lock) == 2);
    }
}

impl Pool {
    /// The live connection to `addr`, connecting first if there is none; fails at once with
    /// [`RemotingError::Backoff`] while `addr` is in its reconnect backoff window.
    pub(super) async fn get(
        &self,
        addr: &str,
        deadline: Instant,
        config: &RemotingConfig,
        processors: &ProcessorTable,
        opaque: &Arc<AtomicI32>,
        shut: &CancellationToken,
    ) -> Result<Connection, RemotingError> {
        // A shut-down client was refused by the caller already (an atomic check; the token's
        // takes a lock); a connect checks the token again.
        if let Some(c) = self.live(addr) {
            return Ok(c);
        }
        self.backoff.check(addr)?;
        let ctx = ConnectCtx {
            addr,
            start: Instant::now(),
            deadline,
            config,
            processors,
            opaque,
            shut,
        };
        // Boxed: connecting is rare, and would otherwise size every call's future for it.
        Box::pin(self.connect(ctx)).await
    }

    /// The pooled connection to `addr` when it is up and not draining (this thread's recent
    /// one when it still is, else the map's).
    pub(super) fn live(&self, addr: &str) -> Option<Connection> {
        if let Some(c) = super::recent::get(self.id, addr) {
            return Some(c);
        }
        let c = self.conns.get(addr).map(|c| c.clone())?;
        let live = !c.is_closed() && !c.is_draining();
        if live {
            super::recent::put(self.id, addr, &c);
        }
        live.then_some(c)
    }

    /// Takes `conn` (the peer said `GO_AWAY` on it) out of the table, so that the next call to
    /// `addr` connects anew, and keeps it among the draining ones until it has closed. True
    /// when this call retired it (false: already retired).
    pub(super) fn retire(&self, addr: &str, conn: &Connection) -> bool {
        if !conn.mark_draining() {
            return false;
        }
        self.conns.remove_if(addr, |_, c| c.same(conn));
        let mut draining = self
            .draining
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        draining.retain(|c| !c.is_finished());
        draining.push(conn.clone());
        true
    }

    /// One connect at a time per address: waits for the address's lock, then connects unless
    /// another caller connected (or failed, opening a backoff window) meanwhile. The attempt's
    /// outcome is recorded in the backoff table under the lock, so the callers waiting for it
    /// see it.
    async fn connect(&self, ctx: ConnectCtx<'_>) -> Result<Connection, RemotingError> {
        let addr = ctx.addr;
        let config = ctx.config;
        let full = ctx.start + config.connect_timeout;
        let limit = ctx.deadline.min(full);
        let timed_out = || {
            tracing::debug!(addr, "connect timed out");
            RemotingError::ConnectTimeout {
                addr: addr.to_owned(),
                after: ctx.start.elapsed(),
            }
        };
        let slot = ConnectingSlot::take(&self.connecting, addr);
        let Ok(_one_at_a_time) = tokio::time::timeout_at(limit, slot.lock().lock()).await else {
            return Err(timed_out());
        };
        if let Some(c) = self.live(addr) {
            return Ok(c);
        }
        if ctx.shut.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
        self.backoff.check(addr)?;
        let conn = match tokio::time::timeout_at(limit, open(&ctx)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                self.counters.failed();
                self.backoff.failed(addr, &config.reconnect_backoff, &e);
                return Err(e);
            }
            Err(_) => {
                let e = timed_out();
                self.counters.failed();
                // The address's fault when its whole connect timeout ran out, or when it left a
                // connect (TCP and TLS handshakes) unfinished for a second: a black hole. A
                // caller's own short deadline says nothing of the address.
                let long = config.connect_timeout.min(BLACK_HOLE_AFTER);
                if limit == full || ctx.start.elapsed() >= long {
                    self.backoff.failed(addr, &config.reconnect_backoff, &e);
                }
                return Err(e);
            }
        };
        self.backoff.succeeded(addr);
        tracing::info!(addr, tls = config.tls.is_some(), "connected");
        let old = self.conns.insert(addr.to_owned(), conn.clone());
        // A reconnect also when the old connection already left the table (closed on a
        // timeout, retired after a `GO_AWAY`).
        self.counters.connected(addr);
        if let Some(old) = old {
            old.close();
        }
        if ctx.shut.is_cancelled() {
            // Raced with shutdown: do not leave a connection behind.
            conn.close();
            return Err(RemotingError::Shutdown);
        }
        Ok(conn)
    }

    /// Removes and closes the connection to `addr`.
    pub(super) fn close(&self, addr: &str) {
        if let Some((_, c)) = self.conns.remove(addr) {
            c.close();
        }
    }

    /// Every connection (live, closing, or draining after a `GO_AWAY`).
    pub(super) fn all(&self) -> Vec<Connection> {
        let mut all: Vec<Connection> = self.conns.iter().map(|e| e.value().clone()).collect();
        all.extend(
            self.draining
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .filter(|c| !c.is_finished())
                .cloned(),
        );
        all
    }

    /// Connections open now (live or draining, not closed).
    pub(super) fn open_count(&self) -> u64 {
        let live = self
            .conns
            .iter()
            .filter(|c| !c.value().is_closed() && !c.value().is_draining())
            .count();
        let draining = self
            .draining
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|c| !c.is_closed())
            .count();
        u64::try_from(live + draining).unwrap_or(u64::MAX)
    }

    /// Addresses with a connect lock (someone is connecting there).
    #[cfg(test)]
    fn connecting_len(&self) -> usize {
        self.connecting.len()
    }

    /// Removes and closes every connection in order (what is queued on each is written first,
    /// at most until `until`), returning them.
    pub(super) fn close_all(&self, until: Instant) -> Vec<Connection> {
        let all = self.all();
        self.conns.clear();
        self.draining
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        for c in &all {
            c.close_after_queued(until);
        }
        all
    }
}

/// What one connect needs.
struct ConnectCtx<'a> {
    addr: &'a str,
    /// When the call started connecting (the connect timeout counts from here).
    start: Instant,
    /// The call's deadline.
    deadline: Instant,
    config: &'a RemotingConfig,
    processors: &'a ProcessorTable,
    opaque: &'a Arc<AtomicI32>,
    shut: &'a CancellationToken,
}

/// Opens a connection: TCP connect, then the TLS handshake when configured.
async fn open(ctx: &ConnectCtx<'_>) -> Result<Connection, RemotingError> {
    let (addr, config) = (ctx.addr, ctx.config);
    let stream = TcpStream::connect(addr).await.map_err(|source| {
        tracing::debug!(addr, error = %source, "connect failed");
        RemotingError::Connect {
            addr: addr.to_owned(),
            source,
        }
    })?;
    if let Err(e) = stream.set_nodelay(config.tcp_nodelay) {
        tracing::debug!(addr, error = %e, "could not set TCP_NODELAY");
    }
    let opts = ConnOptions::new(
        addr.to_owned(),
        config,
        ctx.processors.clone(),
        Arc::clone(ctx.opaque),
    );
    Ok(match &config.tls {
        None => Connection::start(stream, opts, |_| ()),
        Some(tls) => {
            let peer = stream
                .peer_addr()
                .map_err(|source| RemotingError::Connect {
                    addr: addr.to_owned(),
                    source,
                })?;
            // Within the caller's connect timeout, like the TCP connect.
            let stream = tls.connect(addr, stream).await?;
            Connection::start_io(stream, peer, opts, |_| ())
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn the_address_hash_tells_ports_and_hosts_apart() {
        use std::hash::BuildHasher;
        let h = |a: &str| BuildHasherDefault::<AddrHasher>::default().hash_one(a);
        let addrs = [
            "127.0.0.1:10911",
            "127.0.0.1:10912",
            "127.0.0.2:10911",
            "",
            "a",
        ];
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(h(a), h(a));
            for b in &addrs[i + 1..] {
                assert_ne!(h(a), h(b), "{a} and {b}");
            }
        }
    }

    #[tokio::test]
    async fn connect_locks_do_not_outlive_the_connects() {
        let pool = Pool::default();
        let config = RemotingConfig::default();
        let (processors, opaque, shut) = (
            ProcessorTable::new(),
            Arc::new(AtomicI32::new(1)),
            CancellationToken::new(),
        );
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let live = l.local_addr().expect("addr").to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let conn = pool
            .get(&live, deadline, &config, &processors, &opaque, &shut)
            .await
            .expect("connects");
        assert_eq!(pool.connecting_len(), 0, "after a connect");
        // A refused address (nothing listens any more) leaves nothing behind either.
        let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let refused = gone.local_addr().expect("addr").to_string();
        drop(gone);
        for i in 0..3 {
            let r = pool
                .get(&refused, deadline, &config, &processors, &opaque, &shut)
                .await;
            match r {
                Err(RemotingError::Connect { .. }) if i == 0 => {}
                // Then within the backoff window.
                Err(RemotingError::Backoff { .. }) if i > 0 => {}
                other => panic!("call {i}: {other:?}"),
            }
        }
        assert_eq!(pool.connecting_len(), 0, "after failed connects");
        conn.close();
    }

    /// A connection removed from the pool (closed on a timeout, retired after a `GO_AWAY`) and
    /// connected again counts as a reconnect.
    #[tokio::test]
    async fn connecting_again_after_a_removal_is_a_reconnect() {
        let pool = Pool::default();
        let config = RemotingConfig::default();
        let (processors, opaque, shut) = (
            ProcessorTable::new(),
            Arc::new(AtomicI32::new(1)),
            CancellationToken::new(),
        );
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let first = pool
            .get(&addr, deadline, &config, &processors, &opaque, &shut)
            .await
            .expect("connects");
        // Twice: the second lookup is this thread's cached one.
        for _ in 0..2 {
            assert!(pool.live(&addr).is_some_and(|c| c.same(&first)));
        }
        // Closed on a timeout: out of the table (and not handed out from the cache).
        pool.close(&addr);
        assert!(pool.live(&addr).is_none());
        let again = pool
            .get(&addr, deadline, &config, &processors, &opaque, &shut)
            .await
            .expect("connects again");
        assert!(!again.same(&first));
        assert!(pool.live(&addr).is_some_and(|c| c.same(&again)));
        // Retired after a GO_AWAY: out of the table too.
        assert!(pool.retire(&addr, &again));
        assert!(
            pool.live(&addr).is_none(),
            "a draining connection is not used"
        );
        let third = pool
            .get(&addr, deadline, &config, &processors, &opaque, &shut)
            .await
            .expect("connects a third time");
        assert!(pool.live(&addr).is_some_and(|c| c.same(&third)));
        let stats = pool.counters.snapshot(0);
        assert_eq!((stats.connects, stats.reconnects), (3, 2), "{stats:?}");
        pool.close_all(Instant::now());
        drop((first, third, l));
    }
}
