//! Transactional messages against the testkit broker, which stores half messages invisibly,
//! commits and rolls them back on `END_TRANSACTION`, and checks undecided ones back over the
//! connections that heartbeat the producer group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rmq_common::header::transaction::CheckTransactionStateRequestHeader;
use rmq_common::stored::{encode_stored_message, MessageExt};
use rmq_common::{property, CommandHeader, Message, RequestCode};
use rmq_producer::{
    ListenerError, Producer, TransactionConfig, TransactionListener, TransactionProducer,
    TransactionState,
};
use rmq_remoting::RemotingCommand;
use rmq_testkit::{MockCluster, TransactionCheck};
use tokio::sync::Semaphore;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);
const TOPIC: &str = "TxTopic";

/// A listener whose `execute` answers its argument and whose `check` answers from a table of
/// message id → state (Commit when absent), or waits at a gate, or panics, as told.
#[derive(Debug)]
struct Book {
    answers: Mutex<HashMap<String, TransactionState>>,
    checks: Mutex<Vec<String>>,
    panic_next_checks: AtomicUsize,
    gate: Option<Semaphore>,
}

impl Book {
    fn new() -> Self {
        Self {
            answers: Mutex::default(),
            checks: Mutex::default(),
            panic_next_checks: AtomicUsize::new(0),
            gate: None,
        }
    }

    fn gated() -> Self {
        Self {
            gate: Some(Semaphore::new(0)),
            ..Self::new()
        }
    }

    fn checked(&self) -> Vec<String> {
        self.checks.lock().expect("checks").clone()
    }
}

impl TransactionListener for Book {
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
        self.checks.lock().expect("checks").push(id.clone());
        if let Some(gate) = &self.gate {
            drop(gate.acquire().await);
        }
        let panics = self.panic_next_checks.load(Ordering::SeqCst);
        if panics > 0 {
            self.panic_next_checks.store(panics - 1, Ordering::SeqCst);
            panic!("check bug");
        }
        let answers = self.answers.lock().expect("answers");
        Ok(answers
            .get(&id)
            .copied()
            .unwrap_or(TransactionState::Commit))
    }
}

async fn cluster() -> MockCluster {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(TOPIC, 4);
    c
}

async fn start(c: &MockCluster, group: &str, book: Book) -> TransactionProducer<Book> {
    start_with(c, group, book, TransactionConfig::default()).await
}

async fn start_with(
    c: &MockCluster,
    group: &str,
    book: Book,
    cfg: TransactionConfig,
) -> TransactionProducer<Book> {
    timeout(
        T,
        Producer::builder(group)
            .name_server(c.namesrv_addr())
            .heartbeat_interval(Duration::from_millis(200))
            .transaction(cfg)
            .start_transactional(book),
    )
    .await
    .expect("in time")
    .expect("start")
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn visible(c: &MockCluster, id: &str) -> bool {
    c.messages_of(TOPIC)
        .iter()
        .any(|m| m.ext.uniq_key() == Some(id))
}

fn pending(c: &MockCluster, id: &str) -> bool {
    c.half_messages()
        .iter()
        .any(|m| m.ext.uniq_key() == Some(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_shows_rollback_discards_unknown_is_checked_back() {
    let c = cluster().await;
    let p = start(&c, "TxGroup", Book::new()).await;

    let commit = p
        .send_in_transaction(Message::new(TOPIC, "commit"), TransactionState::Commit)
        .await
        .expect("sent");
    assert!(commit.is_committed());
    let id = commit.send.msg_id.clone();
    eventually("the committed message is visible", || visible(&c, &id)).await;
    assert!(!pending(&c, &id));

    let rollback = p
        .send_in_transaction(Message::new(TOPIC, "rollback"), TransactionState::Rollback)
        .await
        .expect("sent");
    assert_eq!(rollback.state, TransactionState::Rollback);
    let rid = rollback.send.msg_id.clone();
    eventually("the rolled-back message is gone", || !pending(&c, &rid)).await;

    let unknown = p
        .send_in_transaction(Message::new(TOPIC, "unknown"), TransactionState::Unknown)
        .await
        .expect("sent");
    assert!(unknown.end_written && !unknown.is_committed());
    let uid = unknown.send.msg_id.clone();
    // Still pending after its (unknown) end: invisible.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(pending(&c, &uid) && !visible(&c, &uid));

    // The broker asks; the listener answers Commit; the message shows.
    assert_eq!(c.check_transactions().await, 1);
    eventually("the checked-back message is visible", || visible(&c, &uid)).await;
    assert_eq!(p.listener().checked(), std::slice::from_ref(&uid));
    assert!(!visible(&c, &rid), "the rolled-back message never shows");

    // What the broker received: three ends after the sends, one after the check.
    let ends = c.brokers()[0].end_transactions();
    let summary: Vec<(i32, bool, bool)> = ends
        .iter()
        .map(|e| {
            (
                e.header.commit_or_rollback,
                e.header.from_transaction_check,
                e.oneway,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (8, false, true),
            (12, false, true),
            (0, false, true),
            (8, true, true)
        ]
    );
    let first = &ends[0].header;
    assert_eq!(first.tran_state_table_offset, commit.send.queue_offset);
    assert_eq!(first.msg_id, id);
    assert_eq!(first.producer_group, "TxGroup");
    assert_eq!(first.topic.as_deref(), Some(TOPIC));
    assert_eq!(first.broker_name.as_deref(), Some("broker-a"));
    // The heartbeat carried the group, so the broker could find the producer.
    assert!(c.brokers()[0]
        .heartbeats()
        .iter()
        .any(|h| h.producer_groups.iter().any(|g| g == "TxGroup")));
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_checks_reach_a_producer_restarted_under_the_same_group() {
    let c = cluster().await;
    c.set_auto_create(true); // TBW102's route: how a producer that never sent finds brokers
    let first = start(&c, "TxRestart", Book::new()).await;
    let left = first
        .send_in_transaction(
            Message::new(TOPIC, "left behind"),
            TransactionState::Unknown,
        )
        .await
        .expect("sent");
    let id = left.send.msg_id.clone();
    timeout(T, first.shutdown())
        .await
        .expect("shutdown in time");
    assert!(pending(&c, &id));

    // A new process of the group: it sends nothing, and answers the check of the half message
    // its predecessor left.
    let second = start(&c, "TxRestart", Book::new()).await;
    c.set_transaction_check(Some(TransactionCheck {
        interval: Duration::from_millis(100),
        min_age: Duration::ZERO,
        ..TransactionCheck::default()
    }));
    eventually("the successor commits the predecessor's message", || {
        visible(&c, &id)
    })
    .await;
    assert_eq!(second.listener().checked().first(), Some(&id));
    c.set_transaction_check(None);
    timeout(T, second.shutdown())
        .await
        .expect("shutdown in time");
}

/// A `CHECK_TRANSACTION_STATE` as a broker sends it, for a half message of `group`.
fn check_request(group: &str, id: &str, offset: i64) -> RemotingCommand {
    let mut msg = Message::new(TOPIC, "pushed");
    msg.properties_mut().insert(property::UNIQ_KEY, id);
    msg.properties_mut().insert(property::PGROUP, group);
    msg.properties_mut().insert(property::TRAN_MSG, "true");
    let ext = MessageExt {
        message: msg,
        commit_log_offset: offset,
        ..MessageExt::default()
    };
    let header = CheckTransactionStateRequestHeader {
        topic: Some(TOPIC.into()),
        tran_state_table_offset: offset,
        commit_log_offset: offset,
        msg_id: Some(id.into()),
        transaction_id: Some(id.into()),
        offset_msg_id: None,
        broker_name: Some("broker-a".into()),
    };
    RemotingCommand::request(RequestCode::CHECK_TRANSACTION_STATE, header.to_ext_fields())
        .with_body(encode_stored_message(&ext))
}

/// The producer's connection at the testkit broker, after a first send opened it.
async fn producer_conn(
    c: &MockCluster,
    p: &TransactionProducer<Book>,
) -> rmq_remoting::ConnectionHandle {
    p.producer()
        .send(Message::new(TOPIC, "open"))
        .await
        .expect("sent");
    c.brokers()[0]
        .connections()
        .pop()
        .expect("the producer's connection")
}

/// Waits until the client has read everything sent before on `conn`: a request the client
/// answers (REQUEST_CODE_NOT_SUPPORTED) comes back after the frames before it were dispatched.
async fn barrier(conn: &rmq_remoting::ConnectionHandle) {
    let ask = RemotingCommand::request(RequestCode(220), rmq_common::ExtFields::new());
    let resp = timeout(T, conn.invoke(ask, T))
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(
        resp.response_code(),
        rmq_common::ResponseCode::REQUEST_CODE_NOT_SUPPORTED
    );
}

fn checks_answered(c: &MockCluster) -> Vec<(String, i32, Option<String>)> {
    c.brokers()[0]
        .end_transactions()
        .into_iter()
        .filter(|e| e.header.from_transaction_check)
        .map(|e| (e.header.msg_id, e.header.commit_or_rollback, e.remark))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_for_other_groups_are_ignored_and_a_panicking_check_counts_as_unknown() {
    let c = cluster().await;
    let book = Book::new();
    book.panic_next_checks.store(1, Ordering::SeqCst);
    let p = start(&c, "TxOwn", book).await;
    let conn = producer_conn(&c, &p).await;

    // A group this process has no transactional producer of: logged and ignored.
    conn.invoke_oneway(check_request("SomeoneElse", "ID-OTHER", 1), T)
        .await
        .expect("written");
    // Ours: the first check panics (answered unknown), the next one commits.
    for n in 1..=2 {
        conn.invoke_oneway(check_request("TxOwn", "ID-OWN", 2), T)
            .await
            .expect("written");
        eventually("the check is answered", || checks_answered(&c).len() == n).await;
    }
    let answers = checks_answered(&c);
    assert_eq!(answers[0].0, "ID-OWN");
    assert_eq!(answers[0].1, 0, "a panicking check answers unknown");
    assert_eq!(
        answers[0].2.as_deref(),
        Some("checkLocalTransactionState Exception: check panicked: check bug")
    );
    assert_eq!((answers[1].1, answers[1].2.clone()), (8, None));
    assert!(!p.listener().checked().contains(&"ID-OTHER".to_owned()));
    // The connection survived all of it, and the answers went over it (no second connection).
    assert!(!conn.is_closed());
    assert_eq!(c.brokers()[0].connection_count(), 1);
    p.producer()
        .send(Message::new(TOPIC, "still fine"))
        .await
        .expect("sent");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_flood_is_bounded() {
    let c = cluster().await;
    let cfg = TransactionConfig::default().with_check_limits(2, 10);
    let p = start_with(&c, "TxFlood", Book::gated(), cfg).await;
    let conn = producer_conn(&c, &p).await;
    for n in 0..2_000 {
        conn.invoke_oneway(check_request("TxFlood", &format!("ID{n}"), n), T)
            .await
            .expect("written");
    }
    // Two checks run (held at the gate).
    barrier(&conn).await;
    eventually("two checks running", || p.listener().checked().len() == 2).await;
    assert_eq!(p.listener().checked().len(), 2);
    p.listener()
        .gate
        .as_ref()
        .expect("gate")
        .add_permits(10_000);
    // The producer is still fine, and the broker asks again later: a new check is answered,
    // after what was queued before it.
    conn.invoke_oneway(check_request("TxFlood", "AGAIN", 9_999), T)
        .await
        .expect("written");
    eventually("a later check is answered", || {
        checks_answered(&c).iter().any(|(id, ..)| id == "AGAIN")
    })
    .await;
    eventually("every check run is answered", || {
        checks_answered(&c).len() == p.listener().checked().len()
    })
    .await;
    // Of the flood, the queue held ten, plus what the worker had taken off it while the flood
    // came in (two running, one waiting for a slot): 13, or as few as 10 when the flood outran
    // the worker (a loaded machine). Every other check was dropped at once.
    let flood = checks_answered(&c).len() - 1;
    assert!((10..=13).contains(&flood), "{flood} of 2,000 checks run");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_half_send_runs_nothing_and_after_shutdown_checks_are_ignored() {
    let c = cluster().await;
    let p = timeout(
        T,
        Producer::builder("TxDown")
            .name_server(c.namesrv_addr())
            .instance_name("tx-down")
            .start_transactional(Book::new()),
    )
    .await
    .expect("in time")
    .expect("start");
    // Another producer of the instance keeps its connections open after TxDown stops.
    let keeper = timeout(
        T,
        Producer::builder("Keeper")
            .name_server(c.namesrv_addr())
            .instance_name("tx-down")
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let err = p
        .send_in_transaction(Message::new("NoSuchTopic", "x"), TransactionState::Commit)
        .await
        .expect_err("no route");
    let back = err.into_message().expect("handed back");
    assert_eq!(back.property(property::TRAN_MSG), None);
    assert!(c.brokers()[0].end_transactions().is_empty());

    let conn = producer_conn(&c, &p).await;
    let extra = p.clone();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let err = extra
        .send_in_transaction(Message::new(TOPIC, "late"), TransactionState::Commit)
        .await
        .expect_err("stopped");
    assert!(matches!(err.kind(), rmq_producer::ErrorKind::NotRunning));
    // A check arriving now reaches the instance (its connection is the keeper's too) and is
    // ignored: TxDown has no transactional producer any more.
    conn.invoke_oneway(check_request("TxDown", "LATE", 5), T)
        .await
        .expect("written");
    barrier(&conn).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(checks_answered(&c).is_empty());
    assert!(extra.listener().checked().is_empty());
    timeout(T, keeper.shutdown())
        .await
        .expect("shutdown in time");
}
