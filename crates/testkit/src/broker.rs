//! `MockBroker`: stores what it is sent and answers like a broker.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use rmq_common::header::send::SendMessageRequestHeader;
use rmq_common::route::perm;
use rmq_common::stored::encode_stored_message;
use rmq_common::{
    CommandHeader, EndTransactionRequestHeader, HeartbeatData, RequestCode, ResponseCode,
    UnregisterClientRequestHeader, ViewMessageRequestHeader,
};
use rmq_remoting::{BoxFuture, ProcessorTable, RemotingCommand, RequestContext};

use crate::endpoint::{endpoint_knobs, Endpoint};
use crate::faults::{Faults, Gate};
use crate::store::{
    EndTransactionRecord, HeartbeatRecord, SendContext, Store, StoredMessage, TopicConf,
    UnknownTopic,
};

/// Called when a send auto-creates a topic: `(broker name, topic, queue count)`.
pub(crate) type CreateHook = Arc<dyn Fn(&str, &str, i32) + Send + Sync>;

struct Shared {
    name: String,
    store: Store,
    unknown: Mutex<UnknownTopic>,
    on_create: Mutex<Option<CreateHook>>,
    requests: Mutex<HashMap<i32, usize>>,
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
/// its messages), `HEART_BEAT`, `UNREGISTER_CLIENT`, `VIEW_MESSAGE_BY_ID` and `END_TRANSACTION`.
/// A send is answered as a broker does: `msgId` (offset message id of this address and a
/// commit-log offset; comma-joined for a batch), `queueId` (a random writable queue when the
/// request's is negative), `queueOffset` (per queue), `transactionId` (the `UNIQ_KEY`),
/// `MSG_REGION` and `TRACE_ON`. A properties string over
/// [`MAX_PROPERTIES_BYTES`](crate::MAX_PROPERTIES_BYTES) is answered `MESSAGE_ILLEGAL`, as a
/// real broker does. With the `test-util` feature's knobs, delay and black hole apply to every
/// request and scripted replies are consumed one per send.
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
        ] {
            let (s, f) = (shared.clone(), endpoint.faults.clone());
            let processor = move |ctx: RequestContext,
                                  req: RemotingCommand|
                  -> BoxFuture<'static, Option<RemotingCommand>> {
                let (s, f) = (s.clone(), f.clone());
                Box::pin(async move { process(&s, &f, &ctx, req).await })
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

    /// Every stored message, in arrival order.
    #[must_use]
    pub fn messages(&self) -> Vec<StoredMessage> {
        self.shared.store.messages()
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

    /// Forgets the stored messages (offsets keep counting).
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

    /// `END_TRANSACTION` requests received.
    #[must_use]
    pub fn end_transactions(&self) -> Vec<EndTransactionRecord> {
        self.shared.store.end_transactions()
    }
}

async fn process(
    shared: &Shared,
    faults: &Faults,
    ctx: &RequestContext,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    let arrival = faults.arrival();
    *lock(&shared.requests).entry(req.code).or_insert(0) += 1;
    let code = req.request_code();
    let is_send = matches!(
        code,
        RequestCode::SEND_MESSAGE | RequestCode::SEND_MESSAGE_V2 | RequestCode::SEND_BATCH_MESSAGE
    );
    let scripted = match faults.gate(arrival, ctx, is_send).await {
        Gate::Done => return None,
        Gate::Proceed(scripted) => scripted,
    };
    let resp = match code {
        _ if is_send => send(shared, ctx, &req, scripted),
        RequestCode::HEART_BEAT => heartbeat(shared, ctx, &req),
        RequestCode::UNREGISTER_CLIENT => {
            match req.decode_header::<UnregisterClientRequestHeader>() {
                Ok(h) => {
                    shared.store.record_unregister(h);
                    req.response_to(ResponseCode::SUCCESS, None)
                }
                Err(e) => error(&req, &e),
            }
        }
        RequestCode::VIEW_MESSAGE_BY_ID => view(shared, &req),
        RequestCode::END_TRANSACTION => match req.decode_header::<EndTransactionRequestHeader>() {
            Ok(header) => {
                shared.store.record_end_transaction(EndTransactionRecord {
                    header,
                    remark: req.remark.clone(),
                    oneway: req.is_oneway(),
                });
                // A broker answers nothing; a oneway request gets nothing anyway.
                req.response_to(ResponseCode::SUCCESS, None)
            }
            Err(e) => error(&req, &e),
        },
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

fn heartbeat(shared: &Shared, ctx: &RequestContext, req: &RemotingCommand) -> RemotingCommand {
    match serde_json::from_slice::<HeartbeatData>(&req.body) {
        Ok(data) => {
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
