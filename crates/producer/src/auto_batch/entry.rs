//! Where `send` and `send_async` hand a message to the accumulator when auto-batching is on.

use std::sync::Arc;

use rmq_common::validate::validate_message;
use rmq_common::Message;
use tokio::time::Instant;

use super::accumulator::{Entrant, Joined, Kind, Receipt};
use super::rules;
use crate::error::{ErrorKind, SendError, Unsent};
use crate::identity;
use crate::kernel::ensure_uniq_key;
use crate::options::{SendOptions, To};
use crate::producer::Inner;
use crate::retry::Target;
use crate::send::{resolve_target, timeout_of};
use crate::send_future::SendFuture;
use crate::send_result::SendResult;

/// Where a send goes when auto-batching may hold it.
#[derive(Debug)]
pub(crate) enum Routed<R> {
    /// Held and resolved (sync), or held with its future (async), or failed.
    Done(Result<R, SendError>),
    /// Not held (auto-batching off, or a message sent alone): send it the usual way.
    Direct(Message, SendOptions),
}

/// A synchronous send: held until its batch is answered, or routed the usual way.
pub(crate) async fn send_sync(
    inner: &Arc<Inner>,
    msg: Message,
    options: SendOptions,
) -> Routed<SendResult> {
    match submit(inner, msg, options, Kind::Sync).await {
        Submitted::Held(receipt) => Routed::Done(match receipt.await {
            Ok((outcome, _leftovers)) => outcome,
            // The batch's task was dropped (runtime shutdown) after the batch may have left.
            Err(_) => Err(SendError::bare(ErrorKind::Cancelled { maybe_stored: true })),
        }),
        Submitted::Failed(e) => Routed::Done(Err(e)),
        Submitted::Direct(msg, options) => Routed::Direct(msg, options),
    }
}

/// An asynchronous send: held (its future resolves when its batch is answered), or routed the
/// usual way.
pub(crate) async fn send_async(
    inner: &Arc<Inner>,
    msg: Message,
    options: SendOptions,
) -> Routed<SendFuture> {
    match submit(inner, msg, options, Kind::Async).await {
        Submitted::Held(receipt) => Routed::Done(Ok(SendFuture::new(receipt))),
        Submitted::Failed(e) => Routed::Done(Err(e)),
        Submitted::Direct(msg, options) => Routed::Direct(msg, options),
    }
}

enum Submitted {
    Held(Receipt),
    Failed(SendError),
    Direct(Message, SendOptions),
}

/// Validates, gives the message its id, checks it may be held, resolves a selector's queue
/// (Java: before the accumulator), and joins the accumulator.
async fn submit(
    inner: &Arc<Inner>,
    mut msg: Message,
    options: SendOptions,
    kind: Kind,
) -> Submitted {
    let Some(acc) = &inner.batcher else {
        return Submitted::Direct(msg, options);
    };
    let core = &inner.core;
    let Some(token) = inner.begin() else {
        return Submitted::Failed(SendError::new(ErrorKind::NotRunning, Unsent::one(msg)));
    };
    if let Err(source) = validate_message(&msg, core.cfg.max_message_size) {
        return Submitted::Failed(SendError::new(
            ErrorKind::InvalidMessage(source),
            Unsent::one(msg),
        ));
    }
    let started = Instant::now();
    let timeout = timeout_of(core, &options);
    // Java sets the id before the message joins a batch; a send alone keeps it.
    ensure_uniq_key(&mut msg, &mut || identity::uniq_ids().next_id());
    let record = rmq_common::batch::record_len(&msg);
    let alone = rules::alone(&msg, record, &core.cfg, acc.config()).or_else(|| {
        (!rules::deadline_allows(timeout, acc.config())).then_some(rules::Alone::ShortDeadline)
    });
    if let Some(why) = alone {
        tracing::trace!(why = why.as_str(), "auto-batch: sent alone");
        return Submitted::Direct(msg, options);
    }
    let queue = match options.target() {
        To::Any => None,
        _ => match resolve_target(core, &options, &msg, msg.topic(), started, timeout).await {
            Ok(Target::Queue(queue)) => Some(*queue),
            Ok(Target::Any) => None,
            Err(kind) => return Submitted::Failed(SendError::new(kind, Unsent::one(msg))),
        },
    };
    let entrant = Entrant {
        msg,
        record,
        queue,
        kind,
        started,
        timeout,
        token,
    };
    match acc.join(core, entrant).await {
        Joined::Held(receipt) => Submitted::Held(receipt),
        Joined::Failed(e) => Submitted::Failed(e),
        Joined::Direct(msg, why) => {
            tracing::trace!(why = why.as_str(), "auto-batch: sent alone");
            // Too little time left after waiting for room: what is left is the send's deadline.
            let left = timeout.saturating_sub(started.elapsed());
            Submitted::Direct(msg, options.timeout(left))
        }
    }
}
