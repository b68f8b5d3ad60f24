//! The transaction flow and the check worker over the fake transport, on tokio's paused clock.

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use rmq_common::header::transaction::CheckTransactionStateRequestHeader;
use rmq_common::stored::MessageExt;
use rmq_common::{property, Message, ResponseCode};
use tokio::sync::Semaphore;

use super::*;
use crate::config::ProducerConfig;
use crate::send_result::SendStatus;
use crate::transaction::check::{CheckJob, CheckRouter, QueuedBytes, Registration, Routed};
use crate::transaction::ListenerError;
use crate::transport::fake::{FakeTransport, Step};

/// What the scripted listener does on one call.
#[derive(Debug, Clone, Copy)]
enum Act {
    Answer(TransactionState),
    Fail,
    Panic,
    Sleep(Duration),
    /// Waits for a permit of the listener's gate, then commits.
    Gate,
}

#[derive(Debug)]
struct Scripted {
    acts: StdMutex<VecDeque<Act>>,
    /// The messages `execute` saw, and the args.
    executed: StdMutex<Vec<(Message, u32)>>,
    checked: StdMutex<Vec<MessageExt>>,
    gate: Semaphore,
}

impl Default for Scripted {
    fn default() -> Self {
        Self::with(&[])
    }
}

impl Scripted {
    fn with(acts: &[Act]) -> Self {
        Self {
            acts: StdMutex::new(acts.iter().copied().collect()),
            executed: StdMutex::default(),
            checked: StdMutex::default(),
            gate: Semaphore::new(0),
        }
    }

    async fn act(&self) -> Result<TransactionState, ListenerError> {
        let act = self.acts.lock().expect("acts").pop_front();
        match act.unwrap_or(Act::Answer(TransactionState::Commit)) {
            Act::Answer(state) => Ok(state),
            Act::Fail => Err("db down".into()),
            Act::Panic => panic!("listener bug"),
            Act::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(TransactionState::Commit)
            }
            Act::Gate => {
                let permit = self.gate.acquire().await;
                drop(permit);
                Ok(TransactionState::Commit)
            }
        }
    }
}

impl TransactionListener for Scripted {
    type Arg = u32;

    async fn execute(&self, msg: &Message, arg: u32) -> Result<TransactionState, ListenerError> {
        self.executed
            .lock()
            .expect("executed")
            .push((msg.clone(), arg));
        self.act().await
    }

    async fn check(&self, msg: &MessageExt) -> Result<TransactionState, ListenerError> {
        self.checked.lock().expect("checked").push(msg.clone());
        self.act().await
    }
}

fn core() -> Arc<Core<FakeTransport>> {
    let cfg = ProducerConfig::new("TxGroup");
    Arc::new(Core::new(FakeTransport::new(2, 2), cfg))
}

async fn run(
    core: &Arc<Core<FakeTransport>>,
    listener: &Scripted,
    msg: Message,
) -> Result<TransactionSendResult, (ErrorKind, Message)> {
    let cfg = TransactionConfig::default().with_execute_timeout(Duration::from_secs(5));
    in_transaction(core, listener, &cfg, msg, 42, SendOptions::new()).await
}

#[tokio::test(start_paused = true)]
async fn each_decision_ends_the_transaction_on_the_storing_broker() {
    for (state, wire) in [
        (TransactionState::Commit, 8),
        (TransactionState::Rollback, 12),
        (TransactionState::Unknown, 0),
    ] {
        let core = core();
        let listener = Scripted::with(&[Act::Answer(state)]);
        let msg = Message::new("T", "order").with_delay_level(3);
        let r = run(&core, &listener, msg).await.expect("sent");
        assert_eq!(
            (r.state, r.end_written, r.note.as_deref()),
            (state, true, None)
        );
        assert_eq!(r.is_committed(), state == TransactionState::Commit);

        let executed = listener.executed.lock().expect("executed").clone();
        let (seen, arg) = &executed[0];
        assert_eq!(*arg, 42);
        assert_eq!(seen.property(property::TRAN_MSG), Some("true"));
        assert_eq!(seen.property(property::PGROUP), Some("TxGroup"));
        assert_eq!(seen.property(property::DELAY), None, "DELAY removed");
        assert_eq!(
            seen.property(property::TRANSACTION_ID),
            Some(r.send.msg_id.as_str())
        );

        let ends = core.transport.ends();
        assert_eq!(ends.len(), 1);
        let (to, h, remark) = &ends[0];
        assert_eq!(to, &format!("broker:{}", r.send.queue.broker_name));
        assert_eq!(h.commit_or_rollback, wire);
        assert_eq!((h.tran_state_table_offset, h.commit_log_offset), (7, 4096));
        assert_eq!(h.msg_id, r.send.msg_id);
        assert_eq!(h.transaction_id.as_deref(), Some(r.send.msg_id.as_str()));
        assert_eq!(h.producer_group, "TxGroup");
        assert_eq!(h.topic.as_deref(), Some("T"));
        assert!(!h.from_transaction_check);
        assert_eq!(*remark, None);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_panicking_or_slow_listener_counts_as_unknown() {
    let cases = [
        (Act::Fail, "execute failed: db down"),
        (Act::Panic, "execute panicked: listener bug"),
        (
            Act::Sleep(Duration::from_secs(6)),
            "execute did not finish within 5s",
        ),
    ];
    for (act, note) in cases {
        let core = core();
        let listener = Scripted::with(&[act]);
        let r = run(&core, &listener, Message::new("T", "x"))
            .await
            .expect("sent");
        assert_eq!(r.state, TransactionState::Unknown);
        assert_eq!(r.note.as_deref(), Some(note));
        let ends = core.transport.ends();
        assert_eq!(ends[0].1.commit_or_rollback, 0);
        assert_eq!(
            ends[0].2.as_deref(),
            Some(format!("executeLocalTransactionBranch exception: {note}").as_str())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_half_message_stored_without_its_guarantee_is_rolled_back_unexecuted() {
    for status in [
        SendStatus::FlushDiskTimeout,
        SendStatus::FlushSlaveTimeout,
        SendStatus::SlaveNotAvailable,
    ] {
        let core = core();
        core.transport.script_next(&[Step::Stored(status)]);
        let listener = Scripted::default();
        let r = run(&core, &listener, Message::new("T", "x"))
            .await
            .expect("sent");
        assert_eq!(r.state, TransactionState::Rollback, "{status}");
        assert!(r.note.is_some_and(|n| n.contains(status.as_str())));
        assert!(listener.executed.lock().expect("executed").is_empty());
        let ends = core.transport.ends();
        assert_eq!(
            (ends[0].1.commit_or_rollback, ends[0].2.clone()),
            (12, None)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_half_send_never_runs_the_listener_and_hands_the_message_back_clean() {
    let core = core();
    // Refused by both brokers (a code outside the retry set stops at once).
    core.transport
        .script_next(&[Step::Refuse(ResponseCode::MESSAGE_ILLEGAL)]);
    let listener = Scripted::default();
    let msg = Message::new("T", "x")
        .with_user_property("k", "v")
        .expect("prop")
        .with_delay_level(2);
    let (kind, back) = run(&core, &listener, msg).await.expect_err("refused");
    assert!(matches!(kind, ErrorKind::Broker { .. }), "{kind:?}");
    assert!(listener.executed.lock().expect("executed").is_empty());
    assert!(core.transport.ends().is_empty());
    assert_eq!(back.property(property::TRAN_MSG), None);
    assert_eq!(back.property(property::PGROUP), None);
    assert_eq!(back.user_property("k"), Some("v"));
    assert_eq!(
        back.delay_level(),
        Some(2),
        "the user's DELAY is handed back"
    );

    // Invalid before anything is sent.
    let (kind, _) = run(&core, &listener, Message::new("", "x"))
        .await
        .expect_err("invalid");
    assert!(matches!(kind, ErrorKind::InvalidMessage(_)), "{kind:?}");
}

fn check_job(n: u32) -> CheckJob {
    let mut msg = Message::new("T", "x");
    msg.properties_mut()
        .insert(property::UNIQ_KEY, format!("ID{n}"));
    msg.properties_mut().insert(property::PGROUP, "TxGroup");
    CheckJob {
        addr: "127.0.0.1:10911".into(),
        header: CheckTransactionStateRequestHeader {
            topic: Some("T".into()),
            tran_state_table_offset: i64::from(n),
            commit_log_offset: 1000 + i64::from(n),
            msg_id: Some(format!("ID{n}")),
            transaction_id: Some(format!("ID{n}")),
            offset_msg_id: None,
            broker_name: Some("broker-a".into()),
        },
        msg: MessageExt {
            message: msg,
            ..MessageExt::default()
        },
        group: "TxGroup".into(),
    }
}

/// A worker over the fake transport, registered on a router.
fn start_worker(
    listener: Scripted,
    concurrency: usize,
    queue: usize,
) -> (
    Arc<Worker<Scripted, FakeTransport>>,
    Arc<CheckRouter>,
    Registration,
    CancellationToken,
) {
    let worker = Arc::new(Worker {
        listener: Arc::new(listener),
        core: core(),
        cfg: TransactionConfig::default()
            .with_check_timeout(Duration::from_secs(2))
            .with_check_limits(concurrency, queue),
    });
    let router = Arc::new(CheckRouter::default());
    let (tx, rx) = mpsc::channel(queue);
    let bytes = QueuedBytes::new(usize::MAX);
    let registration = router.register("TxGroup", tx, Arc::clone(&bytes));
    let stop = CancellationToken::new();
    drop(tokio::spawn(worker::run(
        Arc::clone(&worker),
        rx,
        bytes,
        stop.clone(),
        TaskTracker::new(),
    )));
    (worker, router, registration, stop)
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn checks_are_answered_to_their_broker_even_when_the_listener_fails() {
    let listener = Scripted::with(&[
        Act::Panic,
        Act::Answer(TransactionState::Rollback),
        Act::Sleep(Duration::from_secs(3)),
        Act::Fail,
    ]);
    let (worker, router, _reg, stop) = start_worker(listener, 1, 10);
    for n in 0..4 {
        assert_eq!(router.route(check_job(n)), Routed::Queued);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ends = worker.core.transport.ends();
    assert_eq!(ends.len(), 4, "every check answered: {ends:?}");
    let got: Vec<(i32, bool, Option<&str>)> = ends
        .iter()
        .map(|(_, h, r)| (h.commit_or_rollback, h.from_transaction_check, r.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (
                0,
                true,
                Some("checkLocalTransactionState Exception: check panicked: listener bug")
            ),
            (12, true, None),
            (
                0,
                true,
                Some("checkLocalTransactionState Exception: check did not finish within 2s")
            ),
            (
                0,
                true,
                Some("checkLocalTransactionState Exception: check failed: db down")
            ),
        ]
    );
    let (to, h, _) = &ends[1];
    assert_eq!(to, "127.0.0.1:10911");
    assert_eq!((h.tran_state_table_offset, h.commit_log_offset), (1, 1001));
    assert_eq!(h.msg_id, "ID1");
    assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_check_flood_is_bounded_by_the_pool_and_the_queue() {
    // Every check waits at the gate: one runs, three wait in the queue, the rest are dropped.
    let listener = Scripted::with(&[Act::Gate; 100]);
    let (worker, router, _reg, stop) = start_worker(listener, 1, 3);
    let mut routed = Vec::new();
    for n in 0..100 {
        routed.push(router.route(check_job(n)));
        settle().await;
    }
    let queued = routed.iter().filter(|r| **r == Routed::Queued).count();
    let full = routed.iter().filter(|r| **r == Routed::QueueFull).count();
    // One taken by the running check, one held by the worker waiting for a slot, three queued.
    assert_eq!((queued, full), (5, 95), "{routed:?}");
    assert_eq!(worker.listener.checked.lock().expect("checked").len(), 1);
    worker.listener.gate.add_permits(100);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(worker.core.transport.ends().len(), 5);
    stop.cancel();
}
