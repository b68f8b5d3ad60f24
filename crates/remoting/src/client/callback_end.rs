//! How a call of [`invoke_async_with`](crate::RemotingClient::invoke_async_with) ends, on the
//! connection task that has its outcome: the in-flight permit released, the hook's
//! `after_response`, a `GO_AWAY` answer resent once (from a task of its own: the resend
//! connects and waits, which a connection task must not), then the caller's callback.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::callback::Callback;
use super::in_flight::Slot;
use super::{go_away, Inner, RemotingClient};
use crate::command::RemotingCommand;
use crate::connection::{Complete, Connection, OnReply, Reply};
use crate::processor::RpcHook;

/// What the end of one call needs. Boxed once, when the call starts, and completed in its box
/// (it is the connection's completion of the call): the caller's callback, which holds what
/// the caller needs to read the answer, is not copied from hand to hand (issue 13).
pub(super) struct Ended<F>
where
    F: FnOnce(Reply),
{
    /// Weak: a pending answer does not keep a dropped client's connections open.
    pub(super) client: Weak<Inner>,
    pub(super) conn: Connection,
    pub(super) deadline: Instant,
    pub(super) timeout: Duration,
    pub(super) hook: Option<Arc<dyn RpcHook>>,
    /// Released (`None`) before the callback runs.
    pub(super) permit: Option<Slot>,
    pub(super) callback: Callback<F>,
    /// The request as sent, when a `GO_AWAY` answer is to be resent.
    pub(super) req: Option<RemotingCommand>,
}

impl<F> Ended<F>
where
    F: FnOnce(Reply) + Send + 'static,
{
    /// The connection's completion of the call; `req` (the request as sent) is kept when a
    /// `GO_AWAY` answer is to be resent (`keep`). Stored straight into the box: not wrapped in
    /// an `Option` on the way (each move of a request copies 152 bytes, issue 13).
    pub(super) fn into_reply(mut self: Box<Self>, req: RemotingCommand, keep: bool) -> OnReply {
        if keep {
            self.req = Some(req);
        }
        self
    }

    fn end(mut self: Box<Self>, reply: Reply) {
        if let Ok(resp) = &reply {
            if self.req.is_some() && go_away::is_go_away(resp) {
                let client = self.client.upgrade().map(|inner| RemotingClient { inner });
                let runtime = tokio::runtime::Handle::try_current().ok();
                if let (Some(client), Some(runtime), Some(req)) = (client, runtime, self.req.take())
                {
                    drop(runtime.spawn(async move {
                        let addr = self.conn.addr().to_owned();
                        let resent = client
                            .resend_after_go_away(
                                &addr,
                                &self.conn,
                                req,
                                self.deadline,
                                self.timeout,
                                false,
                            )
                            .await;
                        self.finish(resent);
                    }));
                    return;
                }
            }
        }
        self.finish(reply);
    }

    fn finish(&mut self, mut reply: Reply) {
        self.permit = None;
        if let (Ok(resp), Some(hook)) = (&mut reply, &self.hook) {
            hook.after_response(self.conn.addr(), resp);
        }
        self.callback.call_in_place(reply);
    }
}

impl<F> Complete for Ended<F>
where
    F: FnOnce(Reply) + Send + 'static,
{
    fn complete(self: Box<Self>, reply: Reply) {
        self.end(reply);
    }
}
