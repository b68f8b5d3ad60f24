//! One connection per address: lazily connected, replaced on next use once closed.

use std::sync::atomic::AtomicI32;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RemotingConfig;
use crate::connection::{ConnOptions, Connection};
use crate::error::RemotingError;
use crate::processor::ProcessorTable;

#[derive(Debug, Default)]
pub(super) struct Pool {
    conns: DashMap<String, Connection>,
    /// One connect at a time per address; an entry lives while someone connects there.
    connecting: DashMap<String, Arc<Mutex<()>>>,
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
    /// The live connection to `addr`, connecting first if there is none.
    pub(super) async fn get(
        &self,
        addr: &str,
        deadline: Instant,
        config: &RemotingConfig,
        processors: &ProcessorTable,
        opaque: &Arc<AtomicI32>,
        shut: &CancellationToken,
    ) -> Result<Connection, RemotingError> {
        if shut.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
        if let Some(c) = self.live(addr) {
            return Ok(c);
        }
        let start = Instant::now();
        let limit = deadline.min(start + config.connect_timeout);
        // Boxed: connecting is rare, and would otherwise size every call's future for it.
        let connect = Box::pin(self.connect(addr, config, processors, opaque, shut));
        match tokio::time::timeout_at(limit, connect).await {
            Ok(r) => r,
            Err(_) => {
                tracing::debug!(addr, "connect timed out");
                Err(RemotingError::ConnectTimeout {
                    addr: addr.to_owned(),
                    after: start.elapsed(),
                })
            }
        }
    }

    fn live(&self, addr: &str) -> Option<Connection> {
        let c = self.conns.get(addr).map(|c| c.clone())?;
        (!c.is_closed()).then_some(c)
    }

    async fn connect(
        &self,
        addr: &str,
        config: &RemotingConfig,
        processors: &ProcessorTable,
        opaque: &Arc<AtomicI32>,
        shut: &CancellationToken,
    ) -> Result<Connection, RemotingError> {
        let slot = ConnectingSlot::take(&self.connecting, addr);
        let _one_at_a_time = slot.lock().lock().await;
        if let Some(c) = self.live(addr) {
            return Ok(c);
        }
        if shut.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
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
            processors.clone(),
            Arc::clone(opaque),
        );
        let conn = match &config.tls {
            None => Connection::start(stream, opts),
            Some(tls) => {
                let peer = stream
                    .peer_addr()
                    .map_err(|source| RemotingError::Connect {
                        addr: addr.to_owned(),
                        source,
                    })?;
                // Within the caller's connect timeout, like the TCP connect.
                let stream = tls.connect(addr, stream).await?;
                Connection::start_io(stream, peer, opts)
            }
        };
        tracing::info!(addr, tls = config.tls.is_some(), "connected");
        if let Some(old) = self.conns.insert(addr.to_owned(), conn.clone()) {
            old.close();
        }
        if shut.is_cancelled() {
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

    /// Every connection (live or closing).
    pub(super) fn all(&self) -> Vec<Connection> {
        self.conns.iter().map(|e| e.value().clone()).collect()
    }

    /// Addresses with a connect lock (someone is connecting there).
    #[cfg(test)]
    fn connecting_len(&self) -> usize {
        self.connecting.len()
    }

    /// Removes and closes every connection, returning them.
    pub(super) fn close_all(&self) -> Vec<Connection> {
        let all = self.all();
        self.conns.clear();
        for c in &all {
            c.close();
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;

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
        for _ in 0..3 {
            let r = pool
                .get(&refused, deadline, &config, &processors, &opaque, &shut)
                .await;
            assert!(matches!(r, Err(RemotingError::Connect { .. })), "{r:?}");
        }
        assert_eq!(pool.connecting_len(), 0, "after failed connects");
        conn.close();
    }
}
