//! The task of one batch: waits for its hold time (or to be handed its batch), sends the batch
//! as one `SEND_BATCH_MESSAGE` through the send loop, and resolves every member exactly once.

use std::sync::Arc;

use rmq_common::{property, Message};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use super::accumulator::{Accumulator, Key, Kind, Release, Ticket, Trigger};
use super::rules::split_result;
use crate::error::{ErrorKind, SendError, Unsent};
use crate::kernel::prepare_batch;
use crate::options::SendOptions;
use crate::retry::{self, Core, Mode};
use crate::send::run_sync;
use crate::transport::Transport;

/// What woke a batch's task.
enum Woke {
    /// Its batch, handed over (`None`: the accumulator is gone).
    Handed(Option<Release>),
    /// Its hold time is over, or shutdown gave up waiting.
    Time(Trigger),
}

/// Runs batch `id` of `key`: waits until `until` (then takes the batch out of the map), until
/// the batch is handed over, or until shutdown gives up waiting; then sends it.
pub(crate) async fn run<T: Transport>(
    acc: Arc<Accumulator>,
    core: Arc<Core<T>>,
    key: Key,
    id: u64,
    mut woken: oneshot::Receiver<Release>,
    until: Instant,
) {
    let woke = tokio::select! {
        biased;
        handed = &mut woken => Woke::Handed(handed.ok()),
        () = core.abort.cancelled() => Woke::Time(Trigger::Shutdown),
        () = tokio::time::sleep_until(until) => Woke::Time(Trigger::HoldTime),
    };
    let release = match woke {
        Woke::Handed(release) => release,
        Woke::Time(trigger) => match acc.take(&key, id, trigger) {
            Some(release) => Some(release),
            // Not in the map any more: it was closed and handed over under the map's lock, so
            // it is already in the channel.
            None => woken.await.ok(),
        },
    };
    let Some(release) = release else {
        return;
    };
    send(&core, &key, release).await;
    if acc.config().send_when_idle {
        // The callers just answered may send again at once: let them join the open batch
        // before it goes for the lane being idle, so that they go together.
        tokio::task::yield_now().await;
    }
    acc.sent(&key);
}

/// Sends a closed batch and resolves its members.
pub(crate) async fn send<T: Transport>(core: &Arc<Core<T>>, key: &Key, release: Release) {
    let Release {
        members,
        trigger,
        bytes,
    } = release;
    let now = Instant::now();
    let mut msgs: Vec<Message> = Vec::with_capacity(members.len());
    let mut tickets: Vec<Ticket> = Vec::with_capacity(members.len());
    let mut withdrawn = 0usize;
    for member in members {
        if member.ticket.withdrawn() {
            withdrawn += 1;
            continue;
        }
        if member.ticket.deadline <= now {
            let kind = ErrorKind::Timeout {
                after: member.ticket.timeout,
                attempts: 0,
                maybe_stored: false,
                last: None,
            };
            member
                .ticket
                .resolve(Err(SendError::new(kind, Unsent::one(member.msg))));
            continue;
        }
        msgs.push(member.msg);
        tickets.push(member.ticket);
    }
    let span = tracing::debug_span!(
        "auto_batch",
        topic = %key.topic,
        queue = ?key.queue.as_ref().map(ToString::to_string),
        messages = msgs.len(),
        bytes,
        trigger = trigger.as_str(),
        withdrawn,
    );
    async {
        // The earliest deadline of the batch is the batch's.
        let Some(deadline) = tickets.iter().map(|t| t.deadline).min() else {
            tracing::debug!("auto-batch: every member withdrawn or expired; nothing to send");
            return;
        };
        let out = match prepare_batch(&mut msgs, &mut crate::kernel::ProcessIds) {
            Ok(out) => out,
            Err(e) => return fail_all(tickets, msgs, ErrorKind::InvalidBatch(e)),
        };
        let ids: Vec<String> = msgs.iter().map(uniq_key).collect();
        let mut options = SendOptions::new().timeout(deadline.saturating_duration_since(now));
        if let Some(queue) = &key.queue {
            options = options.queue(queue.clone());
        }
        let retries = match key.kind {
            Kind::Sync => core.cfg.retries,
            Kind::Async => core.cfg.retries_async,
        };
        let outcome = match msgs.first() {
            Some(first) => run_sync(core, out, first, options, Mode::Reply, retries).await,
            None => Err(ErrorKind::InvalidBatch(rmq_common::batch::BatchError::Empty)),
        };
        match outcome {
            Ok(Some(result)) => {
                tracing::debug!(status = %result.status, queue = %result.queue, first_offset = result.queue_offset, "auto-batch sent");
                for (ticket, r) in tickets.into_iter().zip(split_result(&result, &ids)) {
                    ticket.resolve(Ok(r));
                }
            }
            Ok(None) => fail_all(tickets, msgs, retry::cancelled(true)),
            Err(kind) => {
                tracing::debug!(error = %kind, maybe_stored = kind.maybe_stored(), "auto-batch failed");
                fail_all(tickets, msgs, kind);
            }
        }
    }
    .instrument(span)
    .await;
}

fn uniq_key(msg: &Message) -> String {
    msg.property(property::UNIQ_KEY)
        .unwrap_or_default()
        .to_owned()
}

/// Fails every member with the batch's error (each its own copy), handing each its message back
/// when the batch was certainly not stored.
fn fail_all(tickets: Vec<Ticket>, msgs: Vec<Message>, kind: ErrorKind) {
    let n = tickets.len();
    let mut kind = Some(kind);
    for (i, (ticket, msg)) in tickets.into_iter().zip(msgs).enumerate() {
        let this = if i + 1 == n {
            kind.take()
        } else {
            kind.as_ref().map(ErrorKind::duplicate)
        };
        let this = this.unwrap_or(ErrorKind::Cancelled { maybe_stored: true });
        ticket.resolve(Err(SendError::new(this, Unsent::one(msg))));
    }
}
