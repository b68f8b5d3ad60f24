//! The reader task: responses go to their waiter by opaque, requests to the processors.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use futures_util::{FutureExt, StreamExt};
use rmq_common::ResponseCode;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::FramedRead;

use super::{Connection, ConnectionHandle};
use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;
use crate::processor::RequestContext;

pub(super) async fn run(conn: Connection, rd: OwnedReadHalf) {
    let shared = &conn.shared;
    let codec = RemotingCodec::with_max_frame_length(shared.opts.max_frame_length);
    let mut frames = FramedRead::with_capacity(rd, codec, 16 * 1024);
    loop {
        let item = tokio::select! {
            biased;
            () = shared.closed.cancelled() => break,
            item = frames.next() => item,
        };
        match item {
            Some(Ok(cmd)) => {
                let ms = shared.started.elapsed().as_millis();
                shared
                    .last_read_ms
                    .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
                if cmd.is_response() {
                    let opaque = cmd.opaque;
                    if !shared.pending.complete(opaque, Ok(cmd)) {
                        tracing::debug!(opaque, "response without a waiter (timed out?); dropped");
                    }
                } else {
                    dispatch(&conn, cmd);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "undecodable frame; closing the connection");
                break;
            }
            None => {
                tracing::debug!("peer closed the connection");
                break;
            }
        }
    }
    conn.close();
}

/// Hands a request to its processor; unknown codes get REQUEST_CODE_NOT_SUPPORTED (unless oneway).
fn dispatch(conn: &Connection, req: RemotingCommand) {
    let code = req.code;
    let opaque = req.opaque;
    let oneway = req.is_oneway();
    let Some(processor) = conn.shared.opts.processors.get(code) else {
        tracing::debug!(code, opaque, oneway, "no processor for request code");
        if !oneway {
            let remark = format!(" request type {code} not supported");
            let resp = req.response_to(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, Some(remark));
            send_reply(conn, Some(resp), opaque, oneway);
        }
        return;
    };
    let ctx = RequestContext::new(ConnectionHandle::new(conn.clone()));
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| processor.process(ctx, req)));
    let mut fut = match started {
        Ok(fut) => fut,
        Err(_) => return send_reply(conn, Some(panicked(code)), opaque, oneway),
    };
    // Poll once here: a processor that answers at once costs no task. If it is not ready, the
    // spawned task polls it again with its own waker.
    let mut cx = Context::from_waker(Waker::noop());
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
        Ok(Poll::Ready(resp)) => send_reply(conn, resp, opaque, oneway),
        Ok(Poll::Pending) => {
            let conn = conn.clone();
            tokio::spawn(async move {
                let resp = AssertUnwindSafe(fut)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Some(panicked(code)));
                send_reply(&conn, resp, opaque, oneway);
            });
        }
        Err(_) => send_reply(conn, Some(panicked(code)), opaque, oneway),
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

/// Writes the processor's answer with the request's opaque and the response bit; nothing for
/// oneway requests or `None`.
fn send_reply(conn: &Connection, resp: Option<RemotingCommand>, opaque: i32, oneway: bool) {
    let Some(mut resp) = resp else { return };
    if oneway {
        return;
    }
    resp.opaque = opaque;
    resp.mark_response();
    if let Err(e) = conn.send_untracked(&resp) {
        tracing::debug!(opaque, error = %e, "could not send the response");
    }
}
