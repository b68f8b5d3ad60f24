//! [`RemotingClient`]: RPC over one multiplexed connection per address.

mod backoff;
mod callback;
mod callback_end;
mod go_away;
mod in_flight;
mod pool;
mod recent;
mod response_future;
mod start;
mod stats;
mod sync_call;

pub use stats::ConnectionStats;

pub(crate) use callback::Callback;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rmq_common::RequestCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{field, Instrument};

use crate::command::{RemotingCommand, SerializeType};
use crate::config::{OverloadPolicy, RemotingConfig};
use crate::connection::Connection;
use crate::error::RemotingError;
use crate::processor::{ProcessorTable, RequestProcessor, RpcHook};
use crate::tls::TlsConfig;

pub(crate) use in_flight::Slot;
use in_flight::{InFlight, NoSlot};
pub use response_future::ResponseFuture;

/// How long [`RemotingClient::shutdown`] waits for its connections to finish closing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a connection closed by shutdown (or by dropping the client) may still write the
/// oneway requests queued on it (within [`SHUTDOWN_GRACE`]).
const SHUTDOWN_LINGER: Duration = Duration::from_secs(4);

/// Java's `MIN_CLOSE_TIMEOUT_MILLIS` (J5 `NettyRemotingClient`).
const MIN_CLOSE_AFTER_TIMEOUT: Duration = Duration::from_millis(100);

/// Whether a sync call that timed out closes its connection (with `close_on_timeout`), as J5's
/// `invokeSync`: only when the wait for the reply had a fair share of the timeout, `left >
/// 100 ms || left > timeout / 4`, where `left` is what remained once the connection was there.
/// A call that spent its budget connecting says little about the connection.
fn close_after_sync_timeout(timeout: Duration, left: Duration) -> bool {
    left > MIN_CLOSE_AFTER_TIMEOUT || left > timeout / 4
}

/// An RPC client for the remoting protocol: one multiplexed connection per address string,
/// connected lazily (within the connect timeout) and replaced on next use once closed. After a
/// failed connect, calls to that address fail at once for a growing window
/// ([`RemotingConfig::reconnect_backoff`]); the first call after it tries again.
///
/// Cheap to clone; clones share connections, processors and the hook. Requests are matched to
/// replies by opaque. Every call ends with a reply or a typed [`RemotingError`]: a timed-out
/// call removes its entry, and when a connection dies every waiter on it fails at once.
///
/// ```no_run
/// # async fn demo() -> Result<(), rmq_remoting::RemotingError> {
/// use std::time::Duration;
/// use rmq_common::{ExtFields, RequestCode};
/// use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig};
///
/// let client = RemotingClient::new(RemotingConfig::default());
/// let mut ext = ExtFields::new();
/// ext.insert("topic", "TBW102");
/// let req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, ext);
/// let resp = client.invoke_sync("127.0.0.1:9876", req, Duration::from_secs(3)).await?;
/// println!("code {}", resp.response_code());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RemotingConfig,
    pool: pool::Pool,
    processors: ProcessorTable,
    hook: RwLock<Option<Arc<dyn RpcHook>>>,
    /// Set once a hook is set: until then a call does not take the hook's lock.
    has_hook: AtomicBool,
    async_permits: InFlight,
    oneway_permits: InFlight,
    opaque: Arc<AtomicI32>,
    shut: CancellationToken,
    /// Set just before `shut` is cancelled: what each call checks (the token's own check
    /// takes a lock).
    shut_flag: AtomicBool,
}

impl Inner {
    fn shut_down(&self) {
        self.shut_flag.store(true, Ordering::Release);
        self.shut.cancel();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: nobody can wait on these connections any more; what is
        // queued on them (oneway requests whose callers returned) is still written, boundedly.
        self.shut_down();
        self.pool.close_all(Instant::now() + SHUTDOWN_LINGER);
    }
}

impl fmt::Debug for RemotingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingClient")
            .field("connections", &self.inner.pool.all().len())
            .field("pending", &self.pending_len())
            .field("shut_down", &self.inner.shut.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl RemotingClient {
    /// A client with no connection yet.
    #[must_use]
    pub fn new(config: RemotingConfig) -> Self {
        if config.tls.as_ref().is_some_and(TlsConfig::is_insecure) {
            tracing::warn!(
                "TLS server certificates are NOT verified (TlsConfig::dangerous_insecure_no_verify): \
                 any server, or anyone on the path, is accepted; use it for tests only"
            );
        }
        let async_permits = InFlight::new(config.max_async_in_flight);
        let oneway_permits = InFlight::new(config.max_oneway_in_flight);
        Self {
            inner: Arc::new(Inner {
                config,
                pool: pool::Pool::default(),
                processors: ProcessorTable::new(),
                hook: RwLock::new(None),
                has_hook: AtomicBool::new(false),
                async_permits,
                oneway_permits,
                opaque: Arc::new(AtomicI32::new(1)),
                shut: CancellationToken::new(),
                shut_flag: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RemotingConfig {
        &self.inner.config
    }

    /// Sends `req` to `addr` and waits for the reply. `timeout` covers connect, write and reply.
    ///
    /// On a timeout the connection is closed when [`RemotingConfig::close_on_timeout`] is set
    /// and the wait for the reply had more than 100 ms or a quarter of `timeout` left after
    /// connecting (Java's rule); other calls on it then fail with
    /// [`RemotingError::ConnectionClosed`].
    ///
    /// Dropping the future abandons the call: nothing is sent if the request was not queued
    /// yet; once queued, its correlation entry is removed and a frame still waiting in the
    /// queue is not written (one already being written completes). The connection stays up.
    ///
    /// # Errors
    /// [`RemotingError::Connect`]/[`ConnectTimeout`](RemotingError::ConnectTimeout) (never
    /// delivered), [`RemotingError::Backoff`] at once while `addr` is in its reconnect backoff
    /// window after a failed connect ([`RemotingConfig::reconnect_backoff`]; never delivered),
    /// [`RemotingError::Timeout`], [`RemotingError::ConnectionClosed`],
    /// [`RemotingError::Protocol`] (the peer sent an undecodable frame),
    /// [`RemotingError::Overloaded`] (the connection's queue is over
    /// [`max_queued_bytes`](RemotingConfig::max_queued_bytes)), [`RemotingError::FrameTooLarge`],
    /// [`RemotingError::Encode`], [`RemotingError::Shutdown`].
    // Not an `async fn`: a hand-written future that queues the request at its first poll
    // without a wait when it can, then waits on the reply's channel alone (see `sync_call`).
    #[inline]
    pub fn invoke_sync<'a>(
        &'a self,
        addr: &'a str,
        req: RemotingCommand,
        timeout: Duration,
    ) -> impl Future<Output = Result<RemotingCommand, RemotingError>> + Send + 'a {
        sync_call::SyncCall::new(self, addr, req, None, timeout)
    }

    /// [`invoke_sync`](Self::invoke_sync) ended by `deadline` instead of `timeout` from now:
    /// for a caller that has read the clock already (one read less per call). `deadline`
    /// should be no later than `timeout` from now; `timeout` is what the call's errors report,
    /// and what [`close_on_timeout`](RemotingConfig::close_on_timeout)'s rule looks at on a live
    /// connection (not the time `deadline` leaves): such a call that times out closes its
    /// connection as an `invoke_sync` with that `timeout` would.
    ///
    /// # Errors
    /// As [`invoke_sync`](Self::invoke_sync).
    #[inline]
    pub fn invoke_sync_until<'a>(
        &'a self,
        addr: &'a str,
        req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
    ) -> impl Future<Output = Result<RemotingCommand, RemotingError>> + Send + 'a {
        sync_call::SyncCall::new(self, addr, req, Some(deadline), timeout)
    }

    /// Sends `req` to `addr` in two phases: this future resolves once the request is accepted
    /// for writing (connection up, in-flight permit held: this is where back-pressure waits or
    /// fails with [`RemotingError::Overloaded`]); the returned [`ResponseFuture`] resolves with
    /// the reply or the deadline (`timeout` from now, connect included).
    ///
    /// A timeout never closes the connection (as Java's `invokeAsync`): other requests
    /// pipelined on it keep waiting for their own replies.
    ///
    /// Dropping this future before it resolves sends nothing. Dropping the [`ResponseFuture`]
    /// abandons the call as dropping [`invoke_sync`](Self::invoke_sync) does.
    ///
    /// # Errors
    /// As [`invoke_sync`](Self::invoke_sync); [`RemotingError::Overloaded`] also when every
    /// async permit is taken.
    // Not an `async fn`: the call's future is a plain block that queues the request without a
    // wait when it can (see `start`); only a call that must wait builds (and boxes) the future
    // that waits, in the call's span.
    pub fn invoke_async<'a>(
        &'a self,
        addr: &'a str,
        req: RemotingCommand,
        timeout: Duration,
    ) -> impl Future<Output = Result<ResponseFuture, RemotingError>> + Send + 'a {
        let span = tracing::debug_span!(
            "rmq.invoke_async",
            addr,
            code = req.code,
            opaque = field::Empty
        );
        async move {
            let deadline = crate::deadline_after(timeout);
            // Entered for the synchronous part only (a closure for `in_scope` would copy the
            // request into it).
            let started = {
                let _entered = span.enter();
                self.start_async(addr, req, deadline, timeout, &span)
            };
            match started {
                start::Started::Done(done) => done,
                started => {
                    let waiting = self.start_async_waiting(addr, started, deadline, timeout);
                    Box::pin(waiting.instrument(span)).await
                }
            }
        }
    }

    /// Callback form of [`invoke_async`](Self::invoke_async): spawns the first phase (connect,
    /// in-flight permit, queueing) on the current tokio runtime; `callback` then runs exactly
    /// once, with the outcome, as [`invoke_async_with`](Self::invoke_async_with) says. When the
    /// runtime shuts down first, it runs in the thread dropping the runtime, with
    /// [`RemotingError::Shutdown`] (the call had not been queued yet) or the connection's
    /// failure ([`RemotingError::ConnectionClosed`]). The call cannot be cancelled.
    ///
    /// The callback runs on the connection's reader task (or its timer, or its writer): keep it
    /// short and never block in it.
    ///
    /// # Panics
    /// When called outside a tokio runtime (the callback is not called then).
    pub fn invoke_async_callback(
        &self,
        addr: &str,
        req: RemotingCommand,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, RemotingError>) + Send + 'static,
    ) {
        let runtime = tokio::runtime::Handle::current();
        let this = self.clone();
        let addr = addr.to_owned();
        let callback = Callback::new(callback);
        runtime.spawn(async move {
            this.invoke_async_with(&addr, req, timeout, move |outcome| callback.call(outcome))
                .await;
        });
    }

    /// [`invoke_async`](Self::invoke_async) with the outcome delivered to `callback` instead of
    /// a [`ResponseFuture`]: resolves once the request is accepted for writing (the first
    /// phase, where back-pressure waits). `callback` runs exactly once: in this future, with an
    /// error that kept the request from being queued; else on the connection's reader task
    /// with the reply (after the hook's `after_response`), on its timer with
    /// [`RemotingError::Timeout`] at the deadline (`timeout` from now; the connection stays
    /// up), or with the connection's failure. A `GO_AWAY` answer is resent once on a new
    /// connection, as `invoke_async` does, from a task of its own; the callback then runs there.
    /// Dropping this future before it resolves calls `callback` with
    /// [`RemotingError::Shutdown`]; once it resolved, the call cannot be cancelled.
    ///
    /// The callback runs on a connection task that reads every reply of the connection: keep
    /// it short and never block in it (hand longer work to a task or a channel). A panic in it
    /// is caught and logged.
    // Not an `async fn`: one would hold `req` and `callback` twice (as its arguments, and in the
    // block that uses them). The block queues the request without a wait when it can (see
    // `start`); only a call that must wait builds (and boxes) the future that waits, in the
    // call's span. The address is anything that gives a `&str`, owned by the future (a caller
    // that builds the request before it awaits may own it).
    pub fn invoke_async_with<'a>(
        &'a self,
        addr: impl AsRef<str> + Send + 'a,
        req: RemotingCommand,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, RemotingError>) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'a {
        self.invoke_async_within(addr, req, None, timeout, callback)
    }

    /// [`invoke_async_with`](Self::invoke_async_with) ended by `deadline` instead of `timeout`
    /// from now: for a caller that has read the clock already (one read less per call).
    /// `deadline` should be no later than `timeout` from now; `timeout` is what the call's
    /// errors report.
    pub fn invoke_async_with_until<'a>(
        &'a self,
        addr: impl AsRef<str> + Send + 'a,
        req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, RemotingError>) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'a {
        self.invoke_async_within(addr, req, Some(deadline), timeout, callback)
    }

    /// [`invoke_async_with`](Self::invoke_async_with) ended by `deadline`, else by `timeout`
    /// from the first poll.
    #[allow(clippy::manual_async_fn)]
    fn invoke_async_within<'a>(
        &'a self,
        addr: impl AsRef<str> + Send + 'a,
        req: RemotingCommand,
        deadline: Option<Instant>,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, RemotingError>) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'a {
        let callback = Callback::new(callback);
        let span = tracing::debug_span!(
            "rmq.invoke_async",
            addr = addr.as_ref(),
            code = req.code,
            opaque = field::Empty
        );
        async move {
            let addr = addr.as_ref();
            let deadline = deadline.unwrap_or_else(|| crate::deadline_after(timeout));
            // Queued at once when nothing needs a wait; else the waiting rest, boxed (rare).
            let waiting = {
                let _entered = span.enter();
                self.start_with(addr, req, deadline, timeout, callback, &span)
            };
            let waiting = waiting.map(|waiting| Box::pin(waiting.instrument(span)));
            if let Some(waiting) = waiting {
                waiting.await;
            }
        }
    }

    /// Sends `req` with the oneway bit set; resolves once it is queued on the connection (as
    /// Java's `invokeOneway`, which returns once the frame is handed to the channel), not once
    /// written. Registers nothing.
    ///
    /// `timeout` bounds the connect and the waits for a oneway in-flight permit and for room in
    /// the connection's queue. The permit
    /// ([`max_oneway_in_flight`](RemotingConfig::max_oneway_in_flight)) is held until the frame
    /// is written (or its write failed), so it bounds what is queued but not yet written. A
    /// write that fails after this call returned is logged (at debug with the opaque, and a
    /// warning per failed write), nothing more. [`shutdown`](Self::shutdown) writes what is
    /// queued before closing the connections.
    ///
    /// Dropping the future before it resolves sends nothing; once it resolved, the frame is
    /// written.
    ///
    /// # Errors
    /// As [`invoke_async`](Self::invoke_async) for the connect and the waits (never
    /// [`RemotingError::Timeout`]: nothing is awaited after queueing).
    pub fn invoke_oneway<'a>(
        &'a self,
        addr: &'a str,
        mut req: RemotingCommand,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), RemotingError>> + Send + 'a {
        let span = tracing::debug_span!(
            "rmq.invoke_oneway",
            addr,
            code = req.code,
            opaque = field::Empty
        );
        // One instrumented block using `req` in place, as `invoke_sync`.
        async move {
            let deadline = crate::deadline_after(timeout);
            let conn = self.connection(addr, deadline).await?;
            let permit = self
                .permit(&self.inner.oneway_permits, addr, deadline)
                .await?;
            req.mark_oneway();
            self.prepare_in_place(addr, &mut req, &conn, self.hook().as_deref());
            tracing::Span::current().record("opaque", req.opaque);
            // The writer drops the permit once the frame is written.
            conn.oneway(&req, deadline, Some(permit)).await
        }
        .instrument(span)
    }

    /// Registers the processor for server-initiated requests of `code` (on every connection).
    pub fn register_processor(&self, code: RequestCode, processor: Arc<dyn RequestProcessor>) {
        self.inner.processors.register(code, processor);
    }

    /// Sets the hook run before each request and after each response.
    pub fn set_hook(&self, hook: Arc<dyn RpcHook>) {
        *self
            .inner
            .hook
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
        self.inner.has_hook.store(true, Ordering::Release);
    }

    /// Requests waiting for a reply, over all connections.
    #[must_use]
    pub fn pending_len(&self) -> usize {
        self.inner
            .pool
            .all()
            .iter()
            .map(Connection::pending_len)
            .sum()
    }

    /// Counts of this client's connections: open now, connects, reconnects, failed connects.
    #[must_use]
    pub fn connection_stats(&self) -> ConnectionStats {
        let pool = &self.inner.pool;
        pool.counters.snapshot(pool.open_count())
    }

    /// Closes the connection to `addr` (its waiters fail at once); the next call reconnects.
    pub fn close(&self, addr: &str) {
        self.inner.pool.close(addr);
    }

    /// Fails every waiter, closes every connection and refuses new calls with
    /// [`RemotingError::Shutdown`]. What is queued on a connection (oneway requests, which
    /// resolved once queued) is written before its socket closes, for at most 4 s (a peer
    /// that reads nothing does not hold shutdown up longer). Waits (boundedly, 5 s) until the
    /// connections have closed.
    pub async fn shutdown(&self) {
        tracing::info!("remoting client shutting down");
        self.inner.shut_down();
        self.inner.async_permits.close();
        self.inner.oneway_permits.close();
        let conns = self.inner.pool.close_all(Instant::now() + SHUTDOWN_LINGER);
        crate::connection::wait_finished(&conns, SHUTDOWN_GRACE).await;
    }

    async fn connection(&self, addr: &str, deadline: Instant) -> Result<Connection, RemotingError> {
        let i = &*self.inner;
        if i.shut_flag.load(Ordering::Acquire) {
            return Err(RemotingError::Shutdown);
        }
        i.pool
            .get(addr, deadline, &i.config, &i.processors, &i.opaque, &i.shut)
            .await
    }

    /// The pooled connection to `addr` when it is up (and the client is not shut down), without
    /// waiting.
    fn live_connection(&self, addr: &str) -> Option<Connection> {
        let i = &*self.inner;
        if i.shut_flag.load(Ordering::Acquire) {
            return None;
        }
        i.pool.live(addr)
    }

    /// An in-flight slot per the overload policy.
    async fn permit(
        &self,
        slots: &InFlight,
        addr: &str,
        deadline: Instant,
    ) -> Result<Slot, RemotingError> {
        match slots.try_take() {
            Ok(slot) => return Ok(slot),
            Err(NoSlot::Closed) => return Err(RemotingError::Shutdown),
            Err(NoSlot::Full) => {}
        }
        let overloaded = || {
            tracing::debug!(addr, "too many requests in flight");
            RemotingError::Overloaded {
                addr: addr.to_owned(),
            }
        };
        match self.inner.config.overload {
            OverloadPolicy::Fail => Err(overloaded()),
            OverloadPolicy::Wait => {
                // Boxed: rare, see `Connection::reserve`.
                let wait = Box::pin(tokio::time::timeout_at(deadline, slots.take()));
                match wait.await {
                    Ok(Some(slot)) => Ok(slot),
                    Ok(None) => Err(RemotingError::Shutdown),
                    Err(_) => Err(overloaded()),
                }
            }
        }
    }

    /// The hook, read once per call (before and after a call use the same one).
    fn hook(&self) -> Option<Arc<dyn RpcHook>> {
        if !self.inner.has_hook.load(Ordering::Acquire) {
            return None;
        }
        self.inner
            .hook
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs the hook, applies the configured serialization and assigns the opaque, on the
    /// request in place (a request moved through and back is copied twice: 152 bytes each).
    fn prepare_in_place(
        &self,
        addr: &str,
        req: &mut RemotingCommand,
        conn: &Connection,
        hook: Option<&dyn RpcHook>,
    ) {
        if let Some(hook) = hook {
            req.materialize_ext_in_place(); // the hook sees (and signs) every field sent
            hook.before_request(addr, req);
        }
        if self.inner.config.serialize_type == SerializeType::RocketMq {
            req.serialize_type = SerializeType::RocketMq;
        }
        req.opaque = conn.next_opaque();
    }
}

#[allow(dead_code)]
const fn assert_send_sync<T: Send + Sync + 'static>() {}
const _: () = assert_send_sync::<RemotingClient>();
const _: () = assert_send_sync::<ResponseFuture>();

#[cfg(test)]
mod tests {
    use super::*;

    /// The futures of the async calls hold their arguments and the span, nothing more: what
    /// waits (connect, permit, queue room) is boxed, off the path that needs no wait, and each
    /// caller moves these futures at least once.
    #[test]
    fn the_async_calls_futures_stay_small() {
        let client = RemotingClient::new(RemotingConfig::default());
        let req = || RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, Default::default());
        let cmd = size_of::<RemotingCommand>();
        let t = Duration::from_secs(1);
        let call = client.invoke_async("127.0.0.1:1", req(), t);
        assert!(size_of_val(&call) <= cmd + 128, "{}", size_of_val(&call));
        drop(call);
        let call = client.invoke_async_with("127.0.0.1:1".to_owned(), req(), t, |_| {});
        assert!(size_of_val(&call) <= cmd + 144, "{}", size_of_val(&call));
    }

    #[test]
    fn sync_timeout_closes_only_with_enough_time_left_as_java() {
        let ms = Duration::from_millis;
        // plenty left after connecting
        assert!(close_after_sync_timeout(ms(3000), ms(2990)));
        assert!(close_after_sync_timeout(ms(3000), ms(101)));
        // little left, and under a quarter of the timeout
        assert!(!close_after_sync_timeout(ms(3000), ms(100)));
        assert!(!close_after_sync_timeout(ms(3000), ms(5)));
        // short timeouts: a quarter is the bar
        assert!(close_after_sync_timeout(ms(100), ms(26)));
        assert!(!close_after_sync_timeout(ms(100), ms(25)));
        assert!(!close_after_sync_timeout(ms(100), Duration::ZERO));
    }
}
