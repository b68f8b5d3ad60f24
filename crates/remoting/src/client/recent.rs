//! The pool's connections a thread used last, so that a call finds its connection without the
//! pool's map (a shard lock, a hash of the address and a compare: about 200 instructions per
//! call, issue 13).
//!
//! An entry is only a hint: it is used while its connection is up and not draining (the checks
//! the pool's own lookup makes), which also covers every way a connection leaves the pool (a
//! close, a `GO_AWAY`, a reconnect, which closes the connection it replaces, and the client's
//! shutdown or drop, which close them all). Entries hold the connection weakly: a cache does
//! not keep a closed connection's buffers alive.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::connection::{Connection, WeakConnection};

/// Entries per thread: a producer's threads talk to a handful of brokers.
const SLOTS: usize = 8;

/// Tells pools apart (an address could be reused by a later pool).
static NEXT_POOL: AtomicU64 = AtomicU64::new(1);

/// A fresh pool id.
pub(super) fn pool_id() -> u64 {
    NEXT_POOL.fetch_add(1, Ordering::Relaxed)
}

struct Entry {
    pool: u64,
    addr: Box<str>,
    conn: WeakConnection,
}

#[derive(Default)]
struct Recent {
    entries: Vec<Entry>,
    /// The slot the next new entry replaces once all are taken.
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::new(Recent::default());
}

/// This thread's connection of pool `pool` to `addr`, if it is up and not draining.
pub(super) fn get(pool: u64, addr: &str) -> Option<Connection> {
    RECENT
        .try_with(|recent| {
            let recent = recent.try_borrow().ok()?;
            let entry = recent
                .entries
                .iter()
                .find(|e| e.pool == pool && *e.addr == *addr)?;
            let conn = entry.conn.upgrade()?;
            (!conn.is_closed() && !conn.is_draining()).then_some(conn)
        })
        .ok()
        .flatten()
}

/// Remembers `conn` as pool `pool`'s connection to `addr` on this thread.
pub(super) fn put(pool: u64, addr: &str, conn: &Connection) {
    let conn = conn.downgrade();
    let _ = RECENT.try_with(|recent| {
        let Ok(mut recent) = recent.try_borrow_mut() else {
            return;
        };
        let recent = &mut *recent;
        if let Some(e) = recent
            .entries
            .iter_mut()
            .find(|e| e.pool == pool && *e.addr == *addr)
        {
            e.conn = conn;
            return;
        }
        let entry = Entry {
            pool,
            addr: addr.into(),
            conn,
        };
        if recent.entries.len() < SLOTS {
            recent.entries.push(entry);
        } else {
            recent.entries[recent.next] = entry;
            recent.next = (recent.next + 1) % SLOTS;
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI32;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::TcpListener;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::super::pool::Pool;
    use super::*;
    use crate::config::RemotingConfig;
    use crate::processor::ProcessorTable;

    #[tokio::test]
    async fn pools_and_addresses_are_told_apart_and_the_slots_stay_bounded() {
        let (a, b) = (pool_id(), pool_id());
        assert_ne!(a, b);
        assert!(get(a, "x:1").is_none(), "nothing cached");
        let pool = Pool::default();
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (config, processors) = (RemotingConfig::default(), ProcessorTable::new());
        let (opaque, shut) = (Arc::new(AtomicI32::new(1)), CancellationToken::new());
        let conn = pool
            .get(&addr, deadline, &config, &processors, &opaque, &shut)
            .await
            .expect("connects");
        for i in 0..SLOTS * 3 {
            put(a, &format!("h:{i}"), &conn);
        }
        RECENT.with(|r| assert_eq!(r.borrow().entries.len(), SLOTS));
        let last = format!("h:{}", SLOTS * 3 - 1);
        assert!(get(a, &last).is_some_and(|c| c.same(&conn)));
        assert!(get(a, "h:0").is_none(), "replaced");
        assert!(get(b, &last).is_none(), "another pool's");
        conn.close();
        assert!(get(a, &last).is_none(), "closed");
        pool.close_all(Instant::now());
    }
}
