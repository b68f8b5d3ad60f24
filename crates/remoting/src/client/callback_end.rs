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
use crate::connection::{Connection, OnReply, Reply};
use crate::processor::RpcHook;

/// What the end of one call needs.
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
    pub(super) permit: Slot,
    pub(super) callback: Callback<F>,
}

impl<F> Ended<F>
where
    F: FnOnce(Reply) + Send + 'static,
{
    /// The callback the connection calls with the outcome; `req` (the request as sent) when a
    /// `GO_AWAY` answer is to be resent.
    pub(super) fn into_reply(self, req: Option<RemotingCommand>) -> OnReply {
        Callback::new(Box::new(move |reply: Reply| self.end(reply, req)))
    }

    fn end(self, reply: Reply, req: Option<RemotingCommand>) {
        if let (Ok(resp), Some(req)) = (&reply, req) {
            if go_away::is_go_away(resp) {
                let client = self.client.upgrade().map(|inner| RemotingClient { inner });
                let runtime = tokio::runtime::Handle::try_current().ok();
                if let (Some(client), Some(runtime)) = (client, runtime) {
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

    fn finish(self, reply: Reply) {
        let Self {
            conn,
            hook,
            permit,
            callback,
            ..
        } = self;
        drop(permit);
        let reply = reply.map(|mut resp| {
            if let Some(hook) = &hook {
                hook.after_response(conn.addr(), &mut resp);
            }
            resp
        });
        callback.call(reply);
    }
}
