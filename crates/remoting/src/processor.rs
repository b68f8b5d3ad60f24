//! Request processors (server-initiated requests on a client, every request on a server) and
//! RPC hooks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use rmq_common::RequestCode;

use crate::command::RemotingCommand;
use crate::connection::ConnectionHandle;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a request came from.
#[derive(Debug, Clone)]
pub struct RequestContext {
    handle: ConnectionHandle,
}

impl RequestContext {
    pub(crate) const fn new(handle: ConnectionHandle) -> Self {
        Self { handle }
    }

    /// The peer's socket address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.handle.peer_addr()
    }

    /// The connection the request arrived on.
    #[must_use]
    pub const fn connection(&self) -> &ConnectionHandle {
        &self.handle
    }
}

/// Handles requests of one or more codes.
///
/// The returned response gets the request's opaque and the response bit; `None` sends nothing,
/// and nothing is sent for a oneway request. A processor that panics is answered with
/// `SYSTEM_ERROR`, as Java answers an exception. Closures of the right shape are processors:
///
/// ```
/// use std::sync::Arc;
/// use rmq_common::{RequestCode, ResponseCode};
/// use rmq_remoting::{BoxFuture, ProcessorTable, RemotingCommand, RequestContext, RequestProcessor};
///
/// let echo = |_ctx: RequestContext, req: RemotingCommand| -> BoxFuture<'static, Option<RemotingCommand>> {
///     Box::pin(async move {
///         Some(req.response_to(ResponseCode::SUCCESS, None).with_body(req.body.clone()))
///     })
/// };
/// let table = ProcessorTable::new();
/// table.register(RequestCode::HEART_BEAT, Arc::new(echo));
/// assert!(table.get(RequestCode::HEART_BEAT.value()).is_some());
/// ```
pub trait RequestProcessor: Send + Sync + 'static {
    /// Handles one request.
    fn process(
        &self,
        ctx: RequestContext,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>>;
}

impl<F> RequestProcessor for F
where
    F: Fn(RequestContext, RemotingCommand) -> BoxFuture<'static, Option<RemotingCommand>>
        + Send
        + Sync
        + 'static,
{
    fn process(
        &self,
        ctx: RequestContext,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        self(ctx, req)
    }
}

/// Runs before each request is sent and after each response arrives (request signing, tracing).
pub trait RpcHook: Send + Sync + 'static {
    /// Called with the request before it is encoded (the opaque is not assigned yet).
    fn before_request(&self, addr: &str, req: &mut RemotingCommand);

    /// Called with each response before it is returned to the caller.
    fn after_response(&self, addr: &str, resp: &mut RemotingCommand);
}

#[derive(Default)]
struct Table {
    by_code: HashMap<i32, Arc<dyn RequestProcessor>>,
    fallback: Option<Arc<dyn RequestProcessor>>,
}

/// Request code → processor, shared by every connection of a client or server. Cheap to clone
/// (clones share the table); processors can be registered while connections run.
#[derive(Clone, Default)]
pub struct ProcessorTable {
    inner: Arc<RwLock<Table>>,
}

impl fmt::Debug for ProcessorTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut codes: Vec<i32> = t.by_code.keys().copied().collect();
        codes.sort_unstable();
        f.debug_struct("ProcessorTable")
            .field("codes", &codes)
            .field("fallback", &t.fallback.is_some())
            .finish()
    }
}

impl ProcessorTable {
    /// An empty table: every request is answered REQUEST_CODE_NOT_SUPPORTED.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the processor of `code`.
    pub fn register(&self, code: RequestCode, processor: Arc<dyn RequestProcessor>) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .by_code
            .insert(code.value(), processor);
    }

    /// Builder form of [`register`](Self::register).
    #[must_use]
    pub fn with(self, code: RequestCode, processor: Arc<dyn RequestProcessor>) -> Self {
        self.register(code, processor);
        self
    }

    /// Sets the processor for codes without their own (Java's default processor).
    pub fn set_fallback(&self, processor: Arc<dyn RequestProcessor>) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .fallback = Some(processor);
    }

    /// The processor for `code`: its own, else the fallback.
    #[must_use]
    pub fn get(&self, code: i32) -> Option<Arc<dyn RequestProcessor>> {
        let t = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        t.by_code.get(&code).or(t.fallback.as_ref()).cloned()
    }
}
