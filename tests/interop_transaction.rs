//! Transactional messages against a real cluster (`scripts/rocketmq-dev.sh start`, whose brokers
//! check undecided half messages every second once they are 3 s old): a committed message
//! becomes readable, a rolled-back one never does, an unknown one is checked back and then
//! committed, and a producer restarted under the same group answers the check of a half
//! message its predecessor left. Messages are read back from the commit log of the broker that
//! stored them (`VIEW_MESSAGE_BY_ID`, record after record from the half message's offset: the
//! committed record is written after it, under the real topic).
//!
//! Skipped (with a note) when the cluster is not configured, failed when `CI` is set without it.

mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::MessageExt;
use rmq_common::Message;
use rmq_producer::{
    ListenerError, Producer, TransactionListener, TransactionProducer, TransactionSendResult,
    TransactionState,
};
use rmq_remoting::{RemotingClient, RemotingConfig};
use support::commit_log::walk_commit_log;
use support::{cluster_shared, real_cluster, unique_topic, RealCluster, INTEROP_TIMEOUT as T};
use tokio::time::timeout;

/// How long a check-back may take: the brokers' 3 s transaction timeout, 1 s interval, slack.
const CHECK_WAIT: Duration = Duration::from_secs(60);

/// `execute` answers its argument; `check` answers `on_check` and records the topic and
/// message id.
#[derive(Debug)]
struct Ledger {
    on_check: TransactionState,
    checks: Mutex<Vec<(String, String)>>,
}

impl Ledger {
    fn answering(on_check: TransactionState) -> Self {
        Self {
            on_check,
            checks: Mutex::default(),
        }
    }

    /// The ids checked for `topic` (a group may also be asked about an earlier run's leftovers).
    fn checked_in(&self, topic: &str) -> Vec<String> {
        self.checks
            .lock()
            .expect("checks")
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, id)| id.clone())
            .collect()
    }

    fn checked(&self, id: &str) -> bool {
        self.checks
            .lock()
            .expect("checks")
            .iter()
            .any(|(_, c)| c == id)
    }
}

impl TransactionListener for Ledger {
    type Arg = TransactionState;

    async fn execute(
        &self,
        _msg: &Message,
        state: TransactionState,
    ) -> Result<TransactionState, ListenerError> {
        Ok(state)
    }

    async fn check(&self, msg: &MessageExt) -> Result<TransactionState, ListenerError> {
        let id = msg.uniq_key().unwrap_or_default().to_owned();
        let topic = msg.message.topic().to_owned();
        self.checks.lock().expect("checks").push((topic, id));
        Ok(self.on_check)
    }
}

async fn start(
    cluster: &RealCluster,
    group: &str,
    on_check: TransactionState,
) -> TransactionProducer<Ledger> {
    timeout(
        T,
        Producer::builder(group)
            .name_server(&cluster.namesrv)
            .start_transactional(Ledger::answering(on_check)),
    )
    .await
    .expect("start in time")
    .expect("start")
}

/// Where a half message's committed copy would be: its broker and commit-log offset.
fn half_at<'a>(cluster: &'a RealCluster, r: &TransactionSendResult) -> (&'a str, i64) {
    let addr = cluster
        .broker_addr(&r.send.queue.broker_name)
        .expect("broker of the result");
    let offset = OffsetMessageId::decode(&r.send.offset_msg_id)
        .expect("offset message id")
        .commit_log_offset;
    (addr, offset)
}

/// The records of `topic` with `UNIQ_KEY` `id` after the half message of `r`.
async fn committed(
    client: &RemotingClient,
    cluster: &RealCluster,
    topic: &str,
    r: &TransactionSendResult,
) -> Vec<MessageExt> {
    let (addr, from) = half_at(cluster, r);
    walk_commit_log(client, addr, topic, from)
        .await
        .into_values()
        .map(|s| s.ext)
        .filter(|m| m.uniq_key() == Some(r.send.msg_id.as_str()))
        .collect()
}

/// Waits until the committed copy of `r` is readable.
async fn wait_committed(
    client: &RemotingClient,
    cluster: &RealCluster,
    topic: &str,
    r: &TransactionSendResult,
) -> MessageExt {
    let deadline = Instant::now() + CHECK_WAIT;
    loop {
        if let Some(m) = committed(client, cluster, topic, r).await.pop() {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{} not committed within {CHECK_WAIT:?}",
            r.send.msg_id
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + CHECK_WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {CHECK_WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_commit_is_readable_rollback_never_unknown_is_checked_back() {
    let Some(cluster) =
        real_cluster("interop_commit_is_readable_rollback_never_unknown_is_checked_back")
    else {
        return;
    };
    let _shared = cluster_shared().await;
    let topic = unique_topic("RmqTx");
    let p = start(&cluster, "RmqInteropTx", TransactionState::Commit).await;
    let ledger = p.listener();
    let client = RemotingClient::new(RemotingConfig::default());

    let mut results: HashMap<&str, TransactionSendResult> = HashMap::new();
    for (label, state) in [
        ("commit", TransactionState::Commit),
        ("rollback", TransactionState::Rollback),
        ("unknown", TransactionState::Unknown),
    ] {
        let msg = Message::new(&topic, label).with_keys([label]);
        let r = timeout(T, p.send_in_transaction(msg, state))
            .await
            .expect("in time")
            .expect("half message stored");
        assert_eq!((r.state, r.end_written), (state, true), "{label}: {r}");
        results.insert(label, r);
    }

    let commit = wait_committed(&client, &cluster, &topic, &results["commit"]).await;
    assert_eq!(commit.message.body().as_ref(), b"commit");
    assert_eq!(commit.message.keys(), ["commit"]);

    // The unknown one: the broker asks, the listener commits, the message becomes readable.
    let unknown_id = results["unknown"].send.msg_id.clone();
    eventually("the broker checks the unknown transaction back", || {
        ledger.checked(&unknown_id)
    })
    .await;
    let unknown = wait_committed(&client, &cluster, &topic, &results["unknown"]).await;
    assert_eq!(unknown.message.body().as_ref(), b"unknown");

    // By now the rollback had every chance to show up (and was never checked): it did not.
    let rollback = &results["rollback"];
    assert!(committed(&client, &cluster, &topic, rollback)
        .await
        .is_empty());
    assert!(!ledger.checked(&rollback.send.msg_id));
    assert!(!ledger.checked(&results["commit"].send.msg_id));
    // Decided transactions are not asked about again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        ledger.checked_in(&topic),
        [unknown_id],
        "only the unknown one was checked, once"
    );

    timeout(T, p.shutdown()).await.expect("shutdown in time");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_a_restarted_producer_answers_its_predecessors_half_message() {
    let Some(cluster) =
        real_cluster("interop_a_restarted_producer_answers_its_predecessors_half_message")
    else {
        return;
    };
    let _shared = cluster_shared().await;
    let topic = unique_topic("RmqTxRestart");
    let group = "RmqInteropTxRestart";
    let client = RemotingClient::new(RemotingConfig::default());

    // The first process leaves an undecided half message and stops; should the broker ask it
    // before it is gone, it answers Unknown, leaving the decision to its successor.
    let first = start(&cluster, group, TransactionState::Unknown).await;
    let r = timeout(
        T,
        first.send_in_transaction(
            Message::new(&topic, "left behind"),
            TransactionState::Unknown,
        ),
    )
    .await
    .expect("in time")
    .expect("half message stored");
    timeout(T, first.shutdown())
        .await
        .expect("shutdown in time");
    assert!(
        !first.listener().checked(&r.send.msg_id),
        "stopped before the check"
    );

    // Its successor sends nothing: its heartbeat (to the brokers of TBW102's route) is how the
    // broker finds it.
    let second = start(&cluster, group, TransactionState::Commit).await;
    let ledger = second.listener();
    let id = r.send.msg_id.clone();
    eventually("the successor is asked about the half message", || {
        ledger.checked(&id)
    })
    .await;
    let m = wait_committed(&client, &cluster, &topic, &r).await;
    assert_eq!(m.message.body().as_ref(), b"left behind");
    timeout(T, second.shutdown())
        .await
        .expect("shutdown in time");
    client.shutdown().await;
}
