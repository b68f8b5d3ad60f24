//! `MockBroker`: stores what it is sent and answers like a broker.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rmq_common::header::recall::{RecallMessageRequestHeader, RecallMessageResponseHeader};
use rmq_common::header::send::SendMessageRequestHeader;
use rmq_common::route::perm;
use rmq_common::stored::encode_stored_message;
use rmq_common::{
    CommandHeader, EndTransactionRequestHeader, HeartbeatData, Message, RequestCode, ResponseCode,
    UnregisterClientRequestHeader, ViewMessageRequestHeader,
};
use rmq_remoting::{BoxFuture, ConnectionHandle, ProcessorTable, RemotingCommand, RequestContext};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::endpoint::{endpoint_knobs, Endpoint};
use crate::faults::{Faults, Gate};
use crate::half::EndOutcome;
use crate::reply;
use crate::store::{
    now_ms, EndTransactionRecord, HeartbeatRecord, SendContext, Store, StoredMessage, TopicConf,
    UnknownTopic,
};
use crate::timer::{RecallPolicy, RecallRecord};
use crate::transaction::{send_checks, TransactionCheck, Transactions};

/// Called when a send auto-creates a topic: `(broker name, topic, queue count)`.
pub(crate) type CreateHook = Arc<dyn Fn(&str, &str, i32) + Send + Sync>;

struct Shared {
    name: String,
    store: Store,
    unknown: Mutex<UnknownTopic>,
    on_create: Mutex<Option<CreateHook>>,
    requests: Mutex<HashMap<i32, usize>>,
    tx: Transactions,
    /// `recallMessageEnable`.
    recall_enabled: AtomicBool,
    /// The runtime the broker started on (the check service runs there).
    runtime: Handle,
    /// The endpoint's shutdown token.
    shut: CancellationToken,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An in-process broker on `127.0.0.1` (ephemeral port).
///
/// Handles `SEND_MESSAGE` (10), `SEND_MESSAGE_V2` (310), `SEND_BATCH_MESSAGE` (320, split into
/// its messages), `SEND_REPLY_MESSAGE(_V2)` (324 / 325), `HEART_BEAT`, `UNREGISTER_CLIENT`,
/// `VIEW_MESSAGE_BY_ID`, `END_TRANSACTION` and `RECALL_MESSAGE`. Stored sends get the `CLUSTER`
/// property ([`CLUSTER`](crate::CLUSTER)), as a broker adds it.
/// A send is answered as a broker does: `msgId` (offset message id of this address and a
/// commit-log offset; comma-joined for a batch), `queueId` (a random writable queue when the
/// request's is negative), `queueOffset` (per queue), `transactionId` (the `UNIQ_KEY`),
/// `MSG_REGION` and `TRACE_ON`. A properties string over
/// [`MAX_PROPERTIES_BYTES`](crate::MAX_PROPERTIES_BYTES) is answered `MESSAGE_ILLEGAL`, as a
/// real broker does. With the `test-util` feature's knobs, delay and black hole apply to every
/// request and scripted replies are consumed one per send.
///
/// # Transactional messages
///
/// A send with `TRAN_MSG=true` (or the prepared sysFlag, 4) is a **half message**, kept as a
/// broker keeps it: answered like any send, but stored in queue 0 of
/// [`TRANS_HALF_TOPIC`](crate::TRANS_HALF_TOPIC) (its own queue offsets: the `queueOffset`
/// answered is the one `END_TRANSACTION` must carry as `tranStateTableOffset`) and invisible
/// until committed: see [`half_messages`](Self::half_messages). A batch with a transaction
/// sysFlag is refused `MESSAGE_ILLEGAL`. `END_TRANSACTION` is handled as
/// `EndTransactionProcessor` does: COMMIT (8) appends the message to its real topic and queue
/// (a new record with a new commit-log offset) where [`messages`](Self::messages) shows it,
/// ROLLBACK (12) drops it, 0 leaves it pending (and gets no answer, as from a broker); a request
/// for no pending half message, or with the wrong group or offsets, changes nothing and is
/// answered `SYSTEM_ERROR` (`ILLEGAL_OPERATION`, 604, past a `CHECK_IMMUNITY_TIME_IN_SECONDS`
/// unless it answers a check; nothing for a oneway request). Heartbeats register each producer
/// group's connections, to which [`check_transactions`](Self::check_transactions) and the
/// automatic check ([`set_transaction_check`](Self::set_transaction_check)) send
/// `CHECK_TRANSACTION_STATE`.
///
/// # Request/reply
///
/// A reply (`SEND_REPLY_MESSAGE(_V2)`) is stored like a send (to its topic,
/// `{CLUSTER}_REPLY_TOPIC`, which a [`MockCluster`](crate::MockCluster) creates on every broker),
/// then pushed with `PUSH_REPLY_MESSAGE_TO_CLIENT` to the connection whose heartbeat carried
/// the client id of its `REPLY_TO_CLIENT` property, as Java's `ReplyMessageProcessor` does: the
/// replier gets `SUCCESS` once the requester accepted it, `SYSTEM_ERROR` with the reason when
/// there is no such connection or the push failed. [`push_reply`](Self::push_reply) pushes any
/// reply directly.
///
/// # Timer messages and recall
///
/// A single send with a timer property due in the future is kept as a Java 5.x broker keeps
/// it: answered with a `recallHandle`, stored in the timer topic where
/// [`timer_messages`](Self::timer_messages) shows it, and delivered to its real topic and queue
/// once its time has passed (or at once with [`fire_timers`](Self::fire_timers)); until then
/// [`messages`](Self::messages) does not show it. `RECALL_MESSAGE` is answered as
/// `RecallMessageProcessor` answers it (codes and remarks), and drops the pending timer message
/// it names; see [`recalls`](Self::recalls) and [`set_recall_enabled`](Self::set_recall_enabled).
#[derive(Debug, Clone)]
pub struct MockBroker {
    endpoint: Endpoint,
    shared: Arc<Shared>,
}

endpoint_knobs!(MockBroker);

impl MockBroker {
    /// Starts a standalone broker named `name` that accepts sends to any topic
    /// ([`UnknownTopic::Accept`]).
    ///
    /// # Errors
    /// The bind error.
    pub async fn start(name: &str) -> io::Result<Self> {
        Self::start_with(name, Arc::new(AtomicU64::new(0)), UnknownTopic::Accept).await
    }

    /// Starts a broker sharing the arrival counter `seq` with others.
    pub(crate) async fn start_with(
        name: &str,
        seq: Arc<AtomicU64>,
        unknown: UnknownTopic,
    ) -> io::Result<Self> {
        let faults = Faults::default();
        let endpoint = Endpoint::bind(ProcessorTable::new(), faults).await?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            store: Store::new(name.to_owned(), endpoint.addr(), seq),
            unknown: Mutex::new(unknown),
            on_create: Mutex::new(None),
            requests: Mutex::new(HashMap::new()),
            tx: Transactions::default(),
            recall_enabled: AtomicBool::new(true),
            runtime: Handle::current(),
            shut: endpoint.shut.clone(),
        });
        let table = endpoint.server.processors();
        for code in [
            RequestCode::SEND_MESSAGE,
            RequestCode::SEND_MESSAGE_V2,
            RequestCode::SEND_BATCH_MESSAGE,
            RequestCode::HEART_BEAT,
            RequestCode::UNREGISTER_CLIENT,
            RequestCode::VIEW_MESSAGE_BY_ID,
            RequestCode::END_TRANSACTION,
            RequestCode::SEND_REPLY_MESSAGE,
            RequestCode::SEND_REPLY_MESSAGE_V2,
            RequestCode::RECALL_MESSAGE,
        ] {
            // Weak: the broker keeps the connections of producer groups, whose processors
            // must not keep the broker alive in turn.
            let (s, f) = (Arc::downgrade(&shared), endpoint.faults.clone());
            let processor = move |ctx: RequestContext,
                                  req: RemotingCommand|
                  -> BoxFuture<'static, Option<RemotingCommand>> {
                let (s, f) = (s.upgrade(), f.clone());
                Box::pin(async move {
                    let s = s?;
                    process(&s, &f, &ctx, req).await
                })
            };
            table.register(code, Arc::new(processor));
        }
        tracing::debug!(name, addr = %endpoint.addr(), "mock broker started");
        Ok(Self { endpoint, shared })
    }

    /// The broker name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Creates (or changes) a read-write topic with `queues` queues.
    pub fn create_topic(&self, topic: &str, queues: i32) {
        self.create_topic_with_perm(topic, queues, perm::READ | perm::WRITE);
    }

    /// Creates (or changes) a topic with `queues` write queues and permission `perm`.
    pub fn create_topic_with_perm(&self, topic: &str, queues: i32, perm: i32) {
        self.shared.store.set_topic(
            topic,
            TopicConf {
                write_queues: queues,
                perm,
            },
        );
    }

    /// Forgets a topic.
    pub fn remove_topic(&self, topic: &str) {
        self.shared.store.remove_topic(topic);
    }

    /// The write-queue count of a topic this broker knows.
    #[must_use]
    pub fn topic_queues(&self, topic: &str) -> Option<i32> {
        self.shared.store.topic(topic).map(|c| c.write_queues)
    }

    /// What a send to an unknown topic gets from now on.
    pub fn set_unknown_topic(&self, policy: UnknownTopic) {
        *lock(&self.shared.unknown) = policy;
    }

    pub(crate) fn set_create_hook(&self, hook: CreateHook) {
        *lock(&self.shared.on_create) = Some(hook);
    }

    /// Every stored message, in arrival order (timer messages once delivered).
    #[must_use]
    pub fn messages(&self) -> Vec<StoredMessage> {
        self.shared.store.deliver_timers(Some(now_ms()));
        self.shared.store.messages()
    }

    /// The pending (not yet delivered, not recalled) timer messages, in commit-log order, as a
    /// broker stores them: topic [`TIMER_TOPIC`](rmq_common::timer::TIMER_TOPIC), queue 0,
    /// the properties `TIMER_OUT_MS`, `REAL_TOPIC` and `REAL_QID` added.
    #[must_use]
    pub fn timer_messages(&self) -> Vec<StoredMessage> {
        self.shared.store.deliver_timers(Some(now_ms()));
        self.shared.store.timer_messages()
    }

    /// Delivers every pending timer message now, whatever its time; returns how many.
    pub fn fire_timers(&self) -> usize {
        self.shared.store.deliver_timers(None)
    }

    /// Whether `RECALL_MESSAGE` is allowed (`recallMessageEnable`; on by default here and on
    /// rocketmq-rust brokers, off on Java brokers): when off, recalls are answered
    /// `NO_PERMISSION`.
    pub fn set_recall_enabled(&self, on: bool) {
        self.shared.recall_enabled.store(on, Ordering::Relaxed);
    }

    /// The `RECALL_MESSAGE` requests received, with what they were answered.
    #[must_use]
    pub fn recalls(&self) -> Vec<RecallRecord> {
        self.shared.store.recalls()
    }

    /// The stored messages of `topic`, in arrival order.
    #[must_use]
    pub fn messages_of(&self, topic: &str) -> Vec<StoredMessage> {
        let mut all = self.messages();
        all.retain(|m| m.topic() == topic);
        all
    }

    /// Number of stored messages.
    #[must_use]
    pub fn message_count(&self) -> usize {
        self.shared.store.messages().len()
    }

    /// Forgets the stored messages (offsets keep counting; pending half messages stay).
    pub fn clear_messages(&self) {
        self.shared.store.clear_messages();
    }

    /// Requests received with `code` (answered or not).
    #[must_use]
    pub fn request_count(&self, code: RequestCode) -> usize {
        lock(&self.shared.requests)
            .get(&code.value())
            .copied()
            .unwrap_or(0)
    }

    /// Heartbeats received.
    #[must_use]
    pub fn heartbeats(&self) -> Vec<HeartbeatRecord> {
        self.shared.store.heartbeats()
    }

    /// `UNREGISTER_CLIENT` headers received.
    #[must_use]
    pub fn unregisters(&self) -> Vec<UnregisterClientRequestHeader> {
        self.shared.store.unregisters()
    }

    /// `END_TRANSACTION` requests received (whatever they did).
    #[must_use]
    pub fn end_transactions(&self) -> Vec<EndTransactionRecord> {
        self.shared.store.end_transactions()
    }

    /// The pending half messages, in commit-log order, as a broker stores them: topic
    /// [`TRANS_HALF_TOPIC`](crate::TRANS_HALF_TOPIC), queue 0 and its offsets, the transaction
    /// type of the sysFlag reset to 0, the properties `REAL_TOPIC`, `REAL_QID` and
    /// `__transactionId__` added (and `TRANSACTION_CHECK_TIMES` once checked). `header` is the
    /// send request's, `msg_id` the one answered.
    #[must_use]
    pub fn half_messages(&self) -> Vec<StoredMessage> {
        self.shared.store.half_messages()
    }

    /// How many times the pending half message at `commit_log_offset` has been checked (a
    /// check counts when due, even with no producer connection to send it to).
    #[must_use]
    pub fn half_check_count(&self, commit_log_offset: i64) -> Option<u32> {
        self.shared.store.half_check_count(commit_log_offset)
    }

    /// The live connections a heartbeat registered for the producer group `group` (and no
    /// `UNREGISTER_CLIENT` removed).
    #[must_use]
    pub fn producer_connections(&self, group: &str) -> Vec<ConnectionHandle> {
        self.shared.tx.connections(group)
    }

    /// Pushes `reply` with `PUSH_REPLY_MESSAGE_TO_CLIENT` to the connection of the client named
    /// in its `REPLY_TO_CLIENT` property (the last one a heartbeat of that client id registered),
    /// as if a replier had sent it to this broker; returns the client's answer code.
    ///
    /// # Errors
    /// What a broker would answer the replier (`SYSTEM_ERROR` remark): no `REPLY_TO_CLIENT`, no
    /// connection of that client, or the push failed (closed, no answer within 3 s).
    pub async fn push_reply(&self, reply: &Message) -> Result<ResponseCode, String> {
        let send = SendMessageRequestHeader {
            producer_group: "MOCK_REPLIER".into(),
            topic: reply.topic().to_owned(),
            default_topic: crate::AUTO_CREATE_TOPIC.into(),
            default_topic_queue_nums: 4,
            born_timestamp: now_ms(),
            flag: reply.flag(),
            properties: Some(reply.properties().encode()),
            ..SendMessageRequestHeader::default()
        };
        let addr = self.shared.store.addr;
        let req = reply::push_request(&send, reply.body().clone(), addr, addr);
        reply::push(&self.shared.tx, reply.properties(), req).await
    }

    /// Checks every pending half message now, whatever its age or check count: sends
    /// `CHECK_TRANSACTION_STATE` oneway to one live connection of its group (`PGROUP`), in
    /// turn among several. Returns how many checks were written; a half message whose group
    /// has no connection is skipped (but its check count goes up, as on a broker).
    pub async fn check_transactions(&self) -> usize {
        send_checks(&self.shared.store, &self.shared.tx, None).await
    }

    /// Starts (or replaces, or with `None` stops) the automatic transaction check: a task
    /// that runs a check pass every `interval` (see [`TransactionCheck`]) until the broker is
    /// shut down or dropped. `min_age` also becomes the transaction timeout an
    /// `END_TRANSACTION` is judged by (`CHECK_IMMUNITY_TIME_IN_SECONDS`; 6 s without a check).
    pub fn set_transaction_check(&self, check: Option<TransactionCheck>) {
        let Some(check) = check else {
            self.shared.tx.stop_check();
            return;
        };
        let stop = self.shared.shut.child_token();
        self.shared.tx.set_check(check, stop.clone());
        let weak = Arc::downgrade(&self.shared);
        self.shared.runtime.spawn(check_service(weak, check, stop));
        tracing::debug!(broker = %self.shared.name, ?check, "transaction check service started");
    }
}

/// The automatic check: a pass every `check.interval` until `stop` or the broker is gone.
async fn check_service(shared: Weak<Shared>, check: TransactionCheck, stop: CancellationToken) {
    let period = check.interval.max(std::time::Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Some(s) = shared.upgrade() else { break };
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            sent = send_checks(&s.store, &s.tx, Some(check.rules())) => {
                if sent > 0 {
                    tracing::debug!(broker = %s.name, sent, "transaction check pass");
                }
            }
        }
    }
    tracing::debug!("transaction check service ended");
}

async fn process(
    shared: &Shared,
    faults: &Faults,
    ctx: &RequestContext,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    let arrival = faults.arrival(ctx);
    *lock(&shared.requests).entry(req.code).or_insert(0) += 1;
    shared.store.deliver_timers(Some(now_ms()));
    let code = req.request_code();
    let is_reply = matches!(
        code,
        RequestCode::SEND_REPLY_MESSAGE | RequestCode::SEND_REPLY_MESSAGE_V2
    );
    let is_send = is_reply
        || matches!(
            code,
            RequestCode::SEND_MESSAGE
                | RequestCode::SEND_MESSAGE_V2
                | RequestCode::SEND_BATCH_MESSAGE
        );
    let scripted = match faults.gate(arrival, ctx, is_send).await {
        Gate::Done => return None,
        Gate::Refuse(code, remark) => return Some(req.response_to(code, remark)),
        Gate::Proceed(scripted) => scripted,
    };
    let resp = match code {
        _ if is_reply => {
            let stored = send(shared, ctx, &req, scripted);
            let (born, store) = (ctx.peer_addr(), shared.store.addr);
            reply::after_store(&shared.tx, &req, born, store, stored).await
        }
        _ if is_send => send(shared, ctx, &req, scripted),
        RequestCode::HEART_BEAT => heartbeat(shared, ctx, &req),
        RequestCode::UNREGISTER_CLIENT => {
            match req.decode_header::<UnregisterClientRequestHeader>() {
                Ok(h) => {
                    if let Some(group) = &h.producer_group {
                        shared.tx.unregister(group, ctx.peer_addr());
                    }
                    shared.store.record_unregister(h);
                    req.response_to(ResponseCode::SUCCESS, None)
                }
                Err(e) => error(&req, &e),
            }
        }
        RequestCode::VIEW_MESSAGE_BY_ID => view(shared, &req),
        RequestCode::END_TRANSACTION => return end_transaction(shared, &req),
        RequestCode::RECALL_MESSAGE => recall(shared, &req),
        _ => req.response_to(
            ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
            Some(format!(" request type {} not supported", req.code)),
        ),
    };
    Some(resp)
}

fn error(req: &RemotingCommand, e: &dyn fmt::Display) -> RemotingCommand {
    req.response_to(ResponseCode::SYSTEM_ERROR, Some(e.to_string()))
}

fn send(
    shared: &Shared,
    ctx: &RequestContext,
    req: &RemotingCommand,
    scripted: Option<(ResponseCode, Option<String>)>,
) -> RemotingCommand {
    let reply_code = match scripted {
        Some((code, remark)) if !code.is_stored() => return req.response_to(code, remark),
        Some((code, _)) => code,
        None => ResponseCode::SUCCESS,
    };
    let header = match SendMessageRequestHeader::read_for_code(req.request_code(), &req.ext_fields)
    {
        Ok(h) => h,
        Err(e) => return error(req, &e),
    };
    let cx = SendContext {
        code: req.request_code(),
        header,
        body: req.body.clone(),
        born_host: ctx.peer_addr(),
        reply_code,
    };
    let unknown = *lock(&shared.unknown);
    match shared.store.store_send(cx, unknown) {
        Ok(stored) => {
            if let Some((topic, queues)) = stored.created {
                tracing::info!(broker = %shared.name, topic, queues, "topic auto-created");
                let hook = lock(&shared.on_create).clone();
                if let Some(hook) = hook {
                    hook(&shared.name, &topic, queues);
                }
            }
            let mut resp = req.response_to(reply_code, None);
            stored.response.write_to(&mut resp.ext_fields);
            resp
        }
        Err((code, remark)) => req.response_to(code, Some(remark)),
    }
}

/// `END_TRANSACTION`: recorded, then handled as `EndTransactionProcessor` does (a oneway
/// request gets no answer anyway).
fn end_transaction(shared: &Shared, req: &RemotingCommand) -> Option<RemotingCommand> {
    let header = match req.decode_header::<EndTransactionRequestHeader>() {
        Ok(h) => h,
        Err(e) => return Some(error(req, &e)),
    };
    shared.store.record_end_transaction(EndTransactionRecord {
        header: header.clone(),
        remark: req.remark.clone(),
        oneway: req.is_oneway(),
    });
    match shared
        .store
        .end_transaction(&header, now_ms(), shared.tx.timeout_ms())
    {
        EndOutcome::Committed | EndOutcome::RolledBack => {
            Some(req.response_to(ResponseCode::SUCCESS, None))
        }
        // A broker answers nothing to "unknown" (0) or an unknown value.
        EndOutcome::NoAnswer => None,
        EndOutcome::Refused(code, remark) => Some(req.response_to(code, remark)),
    }
}

/// `RECALL_MESSAGE`: judged as `RecallMessageProcessor` does (see [`crate::timer`]).
fn recall(shared: &Shared, req: &RemotingCommand) -> RemotingCommand {
    let header = match req.decode_header::<RecallMessageRequestHeader>() {
        Ok(h) => h,
        Err(e) => return error(req, &e),
    };
    let policy = RecallPolicy {
        enabled: shared.recall_enabled.load(Ordering::Relaxed),
        any_topic: *lock(&shared.unknown) == UnknownTopic::Accept,
    };
    let answer = shared.store.recall(&header, policy, now_ms());
    let mut resp = req.response_to(answer.code, answer.remark);
    resp.ext_fields
        .insert(rmq_common::property::MSG_REGION, "DefaultRegion");
    if let Some(msg_id) = answer.msg_id {
        RecallMessageResponseHeader { msg_id }.write_to(&mut resp.ext_fields);
    }
    resp
}

fn heartbeat(shared: &Shared, ctx: &RequestContext, req: &RemotingCommand) -> RemotingCommand {
    match serde_json::from_slice::<HeartbeatData>(&req.body) {
        Ok(data) => {
            for p in &data.producer_data_set {
                shared
                    .tx
                    .register(&p.group_name, &data.client_id, ctx.connection());
            }
            shared.store.record_heartbeat(HeartbeatRecord {
                client_id: data.client_id,
                producer_groups: data
                    .producer_data_set
                    .into_iter()
                    .map(|p| p.group_name)
                    .collect(),
                consumer_count: data.consumer_data_set.len(),
                language: req.language,
                version: req.version,
                peer: ctx.peer_addr(),
            });
            req.response_to(ResponseCode::SUCCESS, None)
        }
        Err(e) => error(req, &format!("bad heartbeat body: {e}")),
    }
}

fn view(shared: &Shared, req: &RemotingCommand) -> RemotingCommand {
    let header = match req.decode_header::<ViewMessageRequestHeader>() {
        Ok(h) => h,
        Err(e) => return error(req, &e),
    };
    match shared.store.find_by_offset(header.offset) {
        Some(ext) => req
            .response_to(ResponseCode::SUCCESS, None)
            .with_body(encode_stored_message(&ext)),
        None => req.response_to(
            ResponseCode::SYSTEM_ERROR,
            Some(format!(
                "can not find message by the offset, {}",
                header.offset
            )),
        ),
    }
}
