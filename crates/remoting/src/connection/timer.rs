//! The connection's timer task: fails every pending request whose deadline passed.
//!
//! One timer per connection instead of one per request: it sleeps until the earliest deadline
//! of the pending table (re-armed only when an earlier one arrives, which is rare: requests of
//! one connection mostly share one timeout), expires what is due and sleeps again. A request
//! that timed out gets [`RemotingError::Timeout`](crate::RemotingError::Timeout); the
//! connection closes too when the request asked for it (a sync call under `close_on_timeout`),
//! never for an asynchronous one.

use tokio::time::Instant;

use super::reader::CloseOnDrop;
use super::Connection;

/// The timer task; `guard` closes the connection should the task end unexpectedly (a
/// runtime shutting down), so that no waiter is left without its deadline.
pub(super) async fn run(guard: CloseOnDrop) {
    let conn: &Connection = &guard.0;
    let shared = &conn.shared;
    let pending = &shared.pending;
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut expired = Vec::new();
    loop {
        let woken = pending.timer_woken();
        tokio::pin!(woken);
        // Before looking at the table, so that a deadline registered after the look wakes us.
        woken.as_mut().enable();
        let next = pending.expire(Instant::now(), &mut expired);
        if !expired.is_empty() {
            // Closed before the caller learns of its timeout, so that its next call does not
            // pick this connection.
            if expired.iter().any(|e| e.closes()) {
                conn.close();
            }
            for e in expired.drain(..) {
                let err = e.error(conn.addr());
                tracing::debug!(addr = %conn.addr(), opaque = e.opaque, written = e.waiter.written(), "request timed out");
                e.waiter.deliver(Err(err));
            }
        }
        if let Some(at) = next {
            sleep.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            () = shared.closed() => break,
            () = woken => {}
            () = &mut sleep, if next.is_some() => {}
        }
    }
    // Closed: the writer fails whatever is left. Closing again is harmless.
}
