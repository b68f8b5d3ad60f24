//! The reader task: responses go to their waiter by opaque, requests to the processors.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use futures_util::{FutureExt, StreamExt};
use rmq_common::ResponseCode;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;

use super::{CloseCause, Connection, ConnectionHandle, Shared};
use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;
use crate::error::DecodeError;
use crate::processor::RequestContext;
use crate::tls::TlsCause;

/// Closes the connection when the reader task ends, however it ends (returning, panicking, or
/// dropped unfinished, even before its first poll): the writer then fails every waiter.
pub(super) struct CloseOnDrop(pub(super) Connection);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The reader task; `guard` is made by the spawner, so it exists before the first poll.
pub(super) async fn run<R: AsyncRead + Unpin>(guard: CloseOnDrop, rd: R) {
    let conn = &guard.0;
    let shared = &conn.shared;
    let codec = RemotingCodec::with_max_frame_length(shared.opts.max_frame_length);
    let mut frames = FramedRead::with_capacity(rd, codec, 16 * 1024);
    let mut first = true;
    loop {
        if shared.is_closed() {
            break;
        }
        // A frame already buffered (the common case under load: one read brings many) is taken
        // without building the select below, whose close future costs more than the frame.
        let item = match frames.next().now_or_never() {
            Some(item) => item,
            None => tokio::select! {
                biased;
                () = shared.closed_for(&shared.reader_close) => break,
                item = frames.next() => item,
            },
        };
        match item {
            Some(Ok(cmd)) => {
                first = false;
                // Traffic, for the idle timeout: a flag the writer's idle check takes (no clock
                // read per frame; written only when it changes).
                if !shared.read_seen.load(Ordering::Relaxed) {
                    shared.read_seen.store(true, Ordering::Relaxed);
                }
                if cmd.is_response() {
                    let opaque = cmd.opaque;
                    if !shared.pending.complete(opaque, Ok(cmd)) {
                        tracing::debug!(opaque, "response without a waiter (timed out?); dropped");
                    }
                } else if let Some(resp) = dispatch(conn, cmd) {
                    // Waits for queue budget: while the peer does not read our responses, we
                    // stop reading its requests.
                    send(conn, resp).await;
                }
            }
            Some(Err(e)) => {
                on_read_error(shared, e, first);
                break;
            }
            None => {
                tracing::debug!("peer closed the connection");
                break;
            }
        }
    }
}

/// Logs why reading failed and records the cause the waiters will get: a TLS refusal, or a
/// protocol error (anything but a plain read failure, which stays `ConnectionClosed`).
fn on_read_error(shared: &Shared, e: DecodeError, first: bool) {
    match TlsCause::of(&e, first) {
        Some(cause @ TlsCause::PeerSpeaksTls) => {
            tracing::warn!(
                "the peer speaks TLS on this plain connection (a TLS-only server, \
                 or a TLS client on a plain port); closing"
            );
            shared.set_close_cause(CloseCause::Tls(cause));
        }
        Some(cause) => {
            tracing::warn!(error = %e, "the peer refused the TLS session; closing");
            shared.set_close_cause(CloseCause::Tls(cause));
        }
        None if matches!(e, DecodeError::Io(_)) => {
            tracing::debug!(error = %e, "read failed; closing the connection");
        }
        None => {
            tracing::warn!(error = %e, "undecodable frame; closing the connection");
            shared.set_close_cause(CloseCause::Protocol(e));
        }
    }
}

/// Hands a request to its processor; unknown codes get REQUEST_CODE_NOT_SUPPORTED (unless
/// oneway). Returns the response to send now when the processor answered at once.
fn dispatch(conn: &Connection, req: RemotingCommand) -> Option<RemotingCommand> {
    let code = req.code;
    let opaque = req.opaque;
    let oneway = req.is_oneway();
    let Some(processor) = conn.shared.opts.processors.get(code) else {
        tracing::debug!(code, opaque, oneway, "no processor for request code");
        let remark = format!(" request type {code} not supported");
        let resp = req.response_to(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, Some(remark));
        return reply(Some(resp), opaque, oneway);
    };
    let ctx = RequestContext::new(ConnectionHandle::new(conn.clone()));
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| processor.process(ctx, req)));
    let mut fut = match started {
        Ok(fut) => fut,
        Err(_) => return reply(Some(panicked(code)), opaque, oneway),
    };
    // Poll once here: a processor that answers at once costs no task. If it is not ready, the
    // spawned task polls it again with its own waker.
    let mut cx = Context::from_waker(Waker::noop());
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
        Ok(Poll::Ready(resp)) => reply(resp, opaque, oneway),
        Ok(Poll::Pending) => {
            let conn = conn.clone();
            tokio::spawn(async move {
                let resp = AssertUnwindSafe(fut)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Some(panicked(code)));
                if let Some(resp) = reply(resp, opaque, oneway) {
                    send(&conn, resp).await;
                }
            });
            None
        }
        Err(_) => reply(Some(panicked(code)), opaque, oneway),
    }
}

/// Java answers a processor exception with SYSTEM_ERROR.
fn panicked(code: i32) -> RemotingCommand {
    tracing::error!(code, "request processor panicked");
    RemotingCommand::response(
        ResponseCode::SYSTEM_ERROR,
        Some(format!("processor for request code {code} failed")),
    )
}

/// The processor's answer as it goes out, with the request's opaque and the response bit;
/// nothing for oneway requests or `None`.
fn reply(resp: Option<RemotingCommand>, opaque: i32, oneway: bool) -> Option<RemotingCommand> {
    let mut resp = resp?;
    if oneway {
        return None;
    }
    resp.opaque = opaque;
    resp.mark_response();
    Some(resp)
}

/// Queues a response, waiting for queue budget while the connection is up.
async fn send(conn: &Connection, resp: RemotingCommand) {
    if let Err(e) = conn.send_untracked_waiting(&resp).await {
        tracing::debug!(opaque = resp.opaque, error = %e, "could not send the response");
    }
}
