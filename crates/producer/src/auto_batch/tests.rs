//! Unit tests of auto-batching over the scripted transport, on tokio's paused clock: the hold
//! time and size triggers, per-member results and errors, withdrawal, the memory bound,
//! shutdown's flush. Nothing touches the network.

use std::sync::Arc;
use std::time::Duration;

use rmq_common::{property, Message, MessageQueue, ResponseCode};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::accumulator::{Entrant, Joined, Kind, Receipt};
use super::{Accumulator, AutoBatchConfig};
use crate::config::ProducerConfig;
use crate::deliver::SendOutcome;
use crate::error::ErrorKind;
use crate::identity;
use crate::kernel::ensure_uniq_key;
use crate::retry::Core;
use crate::transport::fake::{FakeTransport, Step};

const S3: Duration = Duration::from_secs(3);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Harness {
    core: Arc<Core<FakeTransport>>,
    acc: Arc<Accumulator>,
    sends: TaskTracker,
}

fn harness(batching: AutoBatchConfig, edit: impl FnOnce(&mut ProducerConfig)) -> Harness {
    let mut cfg = ProducerConfig::new("pg");
    edit(&mut cfg);
    let max = cfg.max_message_size;
    Harness {
        core: Arc::new(Core::new(FakeTransport::new(2, 4), cfg)),
        acc: Arc::new(Accumulator::new(batching, max)),
        sends: TaskTracker::new(),
    }
}

/// A message of topic `T` with its id set, and that id.
fn msg(body: &str) -> (Message, String) {
    let mut m = Message::new("T", body.to_owned());
    let id = ensure_uniq_key(&mut m, &mut || identity::uniq_ids().next_id());
    (m, id)
}

/// The bytes every `msg(..)` of a 2-byte body takes in a batch.
fn record() -> usize {
    rmq_common::batch::record_len(&msg("m0").0)
}

impl Harness {
    async fn join_with(
        &self,
        m: Message,
        queue: Option<MessageQueue>,
        kind: Kind,
        timeout: Duration,
    ) -> Joined {
        let record = rmq_common::batch::record_len(&m);
        let entrant = Entrant {
            msg: m,
            record,
            queue,
            kind,
            started: Instant::now(),
            timeout,
            token: self.sends.token(),
        };
        self.acc.join(&self.core, entrant).await
    }

    /// Joins a sync send of `body` to any queue; its receipt and id.
    async fn join(&self, body: &str) -> (Receipt, String) {
        let (m, id) = msg(body);
        (held(self.join_with(m, None, Kind::Sync, S3).await), id)
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.core
            .transport
            .calls()
            .into_iter()
            .map(|c| c.ids)
            .collect()
    }
}

fn held(j: Joined) -> Receipt {
    match j {
        Joined::Held(r) => r,
        other => panic!("not held: {other:?}"),
    }
}

async fn outcome(r: Receipt) -> SendOutcome {
    tokio::time::timeout(Duration::from_secs(60), r)
        .await
        .expect("resolved in time")
        .expect("resolved")
        .0
}

#[tokio::test(start_paused = true)]
async fn the_hold_time_sends_one_batch_and_each_member_gets_its_own_result() {
    let h = harness(AutoBatchConfig::default(), |_| {});
    let t0 = Instant::now();
    let mut joined = Vec::new();
    for i in 0..5 {
        joined.push(h.join(&format!("m{i}")).await);
    }
    let ids: Vec<String> = joined.iter().map(|(_, id)| id.clone()).collect();
    let mut offsets = Vec::new();
    for (i, (receipt, id)) in joined.into_iter().enumerate() {
        let r = outcome(receipt).await.expect("stored");
        assert_eq!(r.msg_id, id);
        // The fake broker answers offset 7 for the batch's first message.
        assert_eq!(r.queue_offset, 7 + i64::try_from(i).expect("small"));
        offsets.push(r.offset_msg_id);
    }
    let calls = h.core.transport.calls();
    assert_eq!(calls.len(), 1, "one request: {calls:?}");
    assert_eq!(calls[0].ids, ids, "every message, in join order");
    assert_eq!(calls[0].at - t0, ms(10), "sent when the hold time was over");
    offsets.dedup();
    assert_eq!(offsets.len(), 5, "each its own offset message id");
    assert_eq!(h.acc.bytes_held(), 0, "room given back");
    assert!(h.sends.is_empty(), "every registration released");
}

#[tokio::test(start_paused = true)]
async fn the_size_trigger_sends_at_once_and_the_next_message_opens_a_new_batch() {
    let h = harness(
        AutoBatchConfig::default().with_max_batch_bytes(3 * record()),
        |_| {},
    );
    let t0 = Instant::now();
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(h.join(&format!("m{i}")).await);
    }
    let (late, late_id) = h.join("m3").await;
    for (r, _) in first {
        outcome(r).await.expect("stored");
    }
    outcome(late).await.expect("stored");
    let calls = h.core.transport.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!((calls[0].ids.len(), calls[0].at - t0), (3, ms(0)));
    assert_eq!(
        (calls[1].ids.clone(), calls[1].at - t0),
        (vec![late_id], ms(10))
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_never_grows_past_the_largest_request() {
    let r = record();
    let h = harness(AutoBatchConfig::default(), |c| {
        c.max_message_size = 2 * r + r / 2;
    });
    let t0 = Instant::now();
    let mut joined = Vec::new();
    for i in 0..3 {
        joined.push(h.join(&format!("m{i}")).await);
    }
    for (r, _) in joined {
        outcome(r).await.expect("stored");
    }
    let calls = h.core.transport.calls();
    let shape: Vec<(usize, Duration)> = calls.iter().map(|c| (c.ids.len(), c.at - t0)).collect();
    assert_eq!(shape, vec![(2, ms(0)), (1, ms(10))]);
}

#[tokio::test(start_paused = true)]
async fn queue_wait_flag_and_caller_kind_keep_batches_apart() {
    let h = harness(AutoBatchConfig::default(), |_| {});
    let q = MessageQueue::new("T", "broker-b", 9);
    let mut receipts = Vec::new();
    for _ in 0..2 {
        receipts.push(h.join("any").await.0);
        let (m, _) = msg("queue");
        receipts.push(held(h.join_with(m, Some(q.clone()), Kind::Sync, S3).await));
        let (m, _) = msg("nowait");
        let m = m.with_wait_store_msg_ok(false);
        receipts.push(held(h.join_with(m, None, Kind::Sync, S3).await));
        let (m, _) = msg("async");
        receipts.push(held(h.join_with(m, None, Kind::Async, S3).await));
    }
    let mut results = Vec::new();
    for r in receipts {
        results.push(outcome(r).await.expect("stored"));
    }
    let calls = h.core.transport.calls();
    assert_eq!(calls.len(), 4, "one batch per key: {calls:?}");
    assert!(calls.iter().all(|c| c.ids.len() == 2));
    assert_eq!(
        calls
            .iter()
            .filter(|c| (c.broker.as_str(), c.queue_id) == ("broker-b", 9))
            .count(),
        1,
        "the pinned batch went to its queue: {calls:?}"
    );
    let pinned = &results[1];
    assert_eq!(
        (pinned.queue.broker_name.as_str(), pinned.queue.queue_id),
        ("broker-b", 9)
    );
    assert_eq!(results[5].queue, pinned.queue);
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_fails_every_member_and_hands_each_its_message_back() {
    let h = harness(AutoBatchConfig::default(), |_| {});
    h.core
        .transport
        .script_next(&[Step::Refuse(ResponseCode::MESSAGE_ILLEGAL)]);
    let mut joined = Vec::new();
    for i in 0..3 {
        joined.push(h.join(&format!("m{i}")).await);
    }
    for (i, (receipt, id)) in joined.into_iter().enumerate() {
        let e = outcome(receipt).await.expect_err("refused");
        assert!(!e.maybe_stored());
        assert_eq!(e.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
        assert!(matches!(e.kind(), ErrorKind::Broker { .. }), "{e:?}");
        assert_eq!(e.msg_id(), Some(id.as_str()));
        let back = e.into_message().expect("handed back");
        assert_eq!(back.body().as_ref(), format!("m{i}").as_bytes());
        assert_eq!(back.property(property::UNIQ_KEY), Some(id.as_str()));
    }
    assert_eq!(h.core.transport.calls().len(), 1, "not retried");
    assert_eq!(h.acc.bytes_held(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_may_be_stored_reports_it_to_every_member() {
    let h = harness(AutoBatchConfig::default(), |_| {});
    h.core
        .transport
        .script_next(&[Step::WrittenThenClosed(ms(5))]);
    let q = MessageQueue::new("T", "broker-a", 0);
    let mut joined = Vec::new();
    for i in 0..3 {
        let (m, id) = msg(&format!("m{i}"));
        joined.push((
            held(h.join_with(m, Some(q.clone()), Kind::Sync, S3).await),
            id,
        ));
    }
    for (receipt, id) in joined {
        let e = outcome(receipt).await.expect_err("connection lost");
        assert!(e.maybe_stored(), "{e:?}");
        assert!(!e.has_message(), "never handed back when it may be stored");
        assert_eq!(e.msg_id(), Some(id.as_str()), "the id to look it up by");
        assert!(matches!(e.kind(), ErrorKind::Transport { .. }), "{e:?}");
    }
    assert_eq!(
        h.core.transport.calls().len(),
        1,
        "a pinned batch that may be stored is not retried"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_retries_the_whole_batch_on_the_other_broker() {
    let h = harness(AutoBatchConfig::default(), |_| {});
    h.core
        .transport
        .script_next(&[Step::Refuse(ResponseCode::SYSTEM_ERROR)]);
    let mut joined = Vec::new();
    for i in 0..3 {
        joined.push(h.join(&format!("m{i}")).await);
    }
    for (receipt, id) in joined {
        assert_eq!(outcome(receipt).await.expect("stored").msg_id, id);
    }
    let calls = h.core.transport.calls();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].broker, calls[1].broker);
    assert_eq!(calls[0].ids, calls[1].ids, "the same batch, the same ids");
}

#[tokio::test(start_paused = true)]
async fn a_sync_caller_that_gives_up_withdraws_only_its_message() {
    let h = harness(AutoBatchConfig::default(), |_| {});
    let (a, a_id) = h.join("a").await;
    let (b, _) = h.join("b").await;
    let (c, c_id) = h.join("c").await;
    drop(b);
    assert_eq!(outcome(a).await.expect("stored").msg_id, a_id);
    assert_eq!(outcome(c).await.expect("stored").msg_id, c_id);
    assert_eq!(h.batches(), vec![vec![a_id, c_id]]);
    assert_eq!(h.acc.bytes_held(), 0);
    assert!(h.sends.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_async_send_whose_future_is_dropped_still_goes() {
    let h = harness(AutoBatchConfig::default(), |_| {});
    let mut ids = Vec::new();
    let mut kept = Vec::new();
    for (i, keep) in [true, false, true].into_iter().enumerate() {
        let (m, id) = msg(&format!("m{i}"));
        ids.push(id);
        let receipt = held(h.join_with(m, None, Kind::Async, S3).await);
        if keep {
            kept.push(receipt);
        }
    }
    for r in kept {
        outcome(r).await.expect("stored");
    }
    assert_eq!(h.batches(), vec![ids]);
    tokio::time::timeout(S3, h.sends.wait_for_empty())
        .await
        .expect("every send resolved");
}

trait WaitEmpty {
    async fn wait_for_empty(&self);
}

impl WaitEmpty for TaskTracker {
    /// Waits until no registration is left (the tracker is never closed here).
    async fn wait_for_empty(&self) {
        for _ in 0..1000 {
            if self.is_empty() {
                return;
            }
            tokio::time::sleep(ms(1)).await;
        }
        panic!("{} registrations left", self.len());
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_accumulator_makes_a_send_wait_for_room_within_its_deadline() {
    let r = record();
    let h = Arc::new(harness(
        AutoBatchConfig::default()
            .with_max_batch_bytes(2 * r)
            .with_max_total_bytes(2 * r),
        |_| {},
    ));
    // Two messages fill the batch and the room; the broker takes 1.4 s to answer.
    h.core.transport.script_next(&[Step::Ok(ms(1400))]);
    let t0 = Instant::now();
    let (a, _) = h.join("m0").await;
    let (b, _) = h.join("m1").await;
    // A send with 1 s left gets no room in time: a timeout before any attempt, handed back.
    let (m, _) = msg("m2");
    let Joined::Failed(e) = h
        .join_with(m, None, Kind::Sync, Duration::from_secs(1))
        .await
    else {
        panic!("no room expected");
    };
    assert_eq!(Instant::now() - t0, Duration::from_secs(1));
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Timeout {
                attempts: 0,
                maybe_stored: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.into_message().expect("handed back").body().as_ref(),
        b"m2"
    );
    // A send with 3 s gets room when the first batch is answered.
    let (m, d_id) = msg("m3");
    let d = held(h.join_with(m, None, Kind::Sync, S3).await);
    assert_eq!(Instant::now() - t0, ms(1400));
    outcome(a).await.expect("stored");
    outcome(b).await.expect("stored");
    assert_eq!(outcome(d).await.expect("stored").msg_id, d_id);
    assert_eq!(h.acc.bytes_held(), 0);
}

#[tokio::test(start_paused = true)]
async fn flush_all_sends_what_is_held_at_once() {
    let h = harness(
        AutoBatchConfig::default().with_hold_time(Duration::from_secs(1)),
        |_| {},
    );
    let t0 = Instant::now();
    let (a, _) = h.join("a").await;
    let (b, _) = h.join("b").await;
    h.acc.flush_all();
    outcome(a).await.expect("stored");
    outcome(b).await.expect("stored");
    let calls = h.core.transport.calls();
    assert_eq!((calls.len(), calls[0].at - t0), (1, ms(0)));
}

#[tokio::test(start_paused = true)]
async fn an_abort_ends_holds_and_waits_for_room() {
    let r = record();
    let h = Arc::new(harness(
        AutoBatchConfig::default()
            .with_hold_time(Duration::from_secs(1))
            .with_max_total_bytes(2 * r)
            .with_max_batch_bytes(2 * r),
        |_| {},
    ));
    // Held for 1 s, taking half the room; the next message needs more than that half.
    let (held_one, _) = h.join("a").await;
    let waiter = {
        let h = Arc::clone(&h);
        tokio::spawn(async move {
            let (m, _) = msg(&"b".repeat(r));
            h.join_with(m, None, Kind::Sync, S3).await
        })
    };
    tokio::time::sleep(ms(1)).await;
    h.core.abort();
    match waiter.await.expect("join task") {
        Joined::Failed(e) => {
            assert!(matches!(e.kind(), ErrorKind::NotRunning), "{e:?}");
            assert!(e.has_message());
        }
        other => panic!("{other:?}"),
    }
    let e = outcome(held_one).await.expect_err("cancelled");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Cancelled {
                maybe_stored: false
            }
        ),
        "{e:?}"
    );
    assert!(e.into_message().is_some());
}

#[tokio::test(start_paused = true)]
async fn many_concurrent_senders_each_resolve_once_and_every_message_goes_once() {
    let h = Arc::new(harness(
        AutoBatchConfig::default().with_max_batch_bytes(7 * record()),
        |_| {},
    ));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(ms(i % 13)).await;
            let (m, id) = msg(&format!("m{}", i % 10));
            let kind = if i % 3 == 0 { Kind::Async } else { Kind::Sync };
            let r = outcome(held(h.join_with(m, None, kind, S3).await)).await;
            (id, r.expect("stored").msg_id)
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        let (id, result_id) = t.await.expect("task");
        assert_eq!(id, result_id);
        got.push(id);
    }
    let mut sent: Vec<String> = h.batches().into_iter().flatten().collect();
    assert!(
        h.batches().len() >= 15,
        "batches of at most 7: {}",
        h.batches().len()
    );
    sent.sort();
    got.sort();
    assert_eq!(sent, got, "every message sent exactly once");
    assert_eq!(h.acc.bytes_held(), 0);
    assert!(h.sends.is_empty());
}

#[tokio::test(start_paused = true)]
async fn send_when_idle_sends_the_first_at_once_and_the_next_when_it_is_answered() {
    let h = harness(
        AutoBatchConfig::default()
            .with_hold_time(Duration::from_secs(1))
            .with_send_when_idle(true),
        |_| {},
    );
    h.core.transport.script_next(&[Step::Ok(ms(5))]);
    let t0 = Instant::now();
    let (a, a_id) = h.join("a").await;
    let (b, b_id) = h.join("b").await;
    let (c, c_id) = h.join("c").await;
    for r in [a, b, c] {
        outcome(r).await.expect("stored");
    }
    let calls = h.core.transport.calls();
    let shape: Vec<(Vec<String>, Duration)> =
        calls.iter().map(|c| (c.ids.clone(), c.at - t0)).collect();
    assert_eq!(
        shape,
        vec![(vec![a_id], ms(0)), (vec![b_id, c_id], ms(5))],
        "the first alone at once, the others as soon as it was answered"
    );
}

#[tokio::test(start_paused = true)]
async fn send_when_idle_still_sends_at_the_hold_time_behind_a_slow_batch() {
    let h = harness(AutoBatchConfig::default().with_send_when_idle(true), |_| {});
    h.core.transport.script_next(&[Step::Ok(ms(100))]);
    let t0 = Instant::now();
    let (a, _) = h.join("a").await;
    let (b, _) = h.join("b").await;
    outcome(b).await.expect("stored");
    outcome(a).await.expect("stored");
    let at: Vec<Duration> = h.core.transport.calls().iter().map(|c| c.at - t0).collect();
    assert_eq!(at, vec![ms(0), ms(10)]);
}

#[tokio::test(start_paused = true)]
async fn send_when_idle_lets_waiting_senders_fill_a_batch_per_round_trip() {
    let h = Arc::new(harness(
        AutoBatchConfig::default()
            .with_hold_time(Duration::from_secs(1))
            .with_send_when_idle(true),
        |_| {},
    ));
    // Every answer takes 2 ms; 16 tasks each send 10 messages, one after the other.
    h.core.transport.script_next(&[Step::Ok(ms(2)); 64]);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let (m, id) = msg(&format!("t{t} m{i}"));
                let r = outcome(held(h.join_with(m, None, Kind::Sync, S3).await)).await;
                assert_eq!(r.expect("stored").msg_id, id);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let batches = h.batches();
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 160);
    assert!(
        batches.len() <= 12,
        "one batch per round (the first message alone): {} batches",
        batches.len()
    );
    assert!(
        t0.elapsed() <= ms(24),
        "never waited for the hold time: {:?}",
        t0.elapsed()
    );
}
