//! The mock broker's in-memory store: topics, commit-log and queue offsets, stored messages and
//! the records of heartbeats, unregisters and transaction ends. Pure logic, no I/O. Half
//! (transactional) messages are in [`crate::half`], timer messages and recalls in
//! [`crate::timer`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rmq_common::batch::decode_batch;
use rmq_common::header::send::SendMessageRequestHeader;
use rmq_common::message_id::OffsetMessageId;
use rmq_common::route::perm;
use rmq_common::stored::{encode_stored_message, MessageExt};
use rmq_common::{
    property, sysflag, EndTransactionRequestHeader, LanguageCode, Message, Properties, RequestCode,
    ResponseCode, SendMessageResponseHeader, UnregisterClientRequestHeader,
};

use crate::half::{self, Half};
use crate::route::CLUSTER;
use crate::timer::{self, RecallRecord};

/// Queue count of the default topic `TBW102` on a mock broker (a broker's `defaultTopicQueueNums`).
pub const TBW102_QUEUE_NUMS: i32 = 8;

/// Longest properties string a broker stores, in bytes (`Short.MAX_VALUE`: the stored format's
/// length field is a signed 16-bit integer). A longer one is answered `MESSAGE_ILLEGAL`, before
/// it is decoded.
pub const MAX_PROPERTIES_BYTES: usize = 32_767;

/// The remark of a broker's `MESSAGE_ILLEGAL` / `PROPERTIES_SIZE_EXCEEDED` answer.
const MESSAGE_ILLEGAL_REMARK: &str = "the message is illegal, maybe msg body or properties length not matched. msg body length limit 128k, msg properties length limit 32k.";

/// What a broker does with a send to a topic it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownTopic {
    /// Store it anyway (a standalone mock broker's default), with
    /// `defaultTopicQueueNums` queues when the request asks for any queue.
    Accept,
    /// Answer `TOPIC_NOT_EXIST` (a broker with `autoCreateTopicEnable=false`).
    Reject,
    /// Create the topic as a real broker does from `TBW102`: `min(defaultTopicQueueNums, 8)`
    /// read-write queues, registered with the cluster's name server.
    AutoCreate,
}

/// A message as the mock broker stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Arrival order (shared by the brokers of a [`MockCluster`](crate::MockCluster)).
    pub seq: u64,
    /// The broker that stored it.
    pub broker: String,
    /// The request code (`SEND_MESSAGE`, `SEND_MESSAGE_V2`, `SEND_BATCH_MESSAGE`).
    pub code: RequestCode,
    /// The decoded send header.
    pub header: SendMessageRequestHeader,
    /// The offset message id answered for it.
    pub msg_id: String,
    /// Position inside its batch, for batch sends.
    pub batch_index: Option<usize>,
    /// The response code answered (SUCCESS or a scripted stored code).
    pub reply_code: ResponseCode,
    /// The stored form: message (topic, flag, body, properties), queue id and offset,
    /// commit-log offset, hosts, timestamps.
    pub ext: MessageExt,
}

impl StoredMessage {
    /// The topic.
    #[must_use]
    pub fn topic(&self) -> &str {
        self.ext.message.topic()
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        self.ext.message.body()
    }

    /// The properties.
    #[must_use]
    pub fn properties(&self) -> &Properties {
        self.ext.message.properties()
    }

    /// One property.
    #[must_use]
    pub fn property(&self, name: &str) -> Option<&str> {
        self.ext.message.property(name)
    }

    /// The queue id written.
    #[must_use]
    pub fn queue_id(&self) -> i32 {
        self.ext.queue_id
    }

    /// The queue offset.
    #[must_use]
    pub fn queue_offset(&self) -> i64 {
        self.ext.queue_offset
    }

    /// The commit-log offset.
    #[must_use]
    pub fn commit_log_offset(&self) -> i64 {
        self.ext.commit_log_offset
    }
}

/// A heartbeat as the mock broker received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRecord {
    /// `clientID`.
    pub client_id: String,
    /// The producer groups.
    pub producer_groups: Vec<String>,
    /// Number of consumer entries.
    pub consumer_count: usize,
    /// The request frame's language.
    pub language: LanguageCode,
    /// The request frame's version.
    pub version: i32,
    /// The client's address.
    pub peer: SocketAddr,
}

/// An `END_TRANSACTION` as the mock broker received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTransactionRecord {
    /// The header.
    pub header: EndTransactionRequestHeader,
    /// The request's remark (Java puts the reason there).
    pub remark: Option<String>,
    /// Whether it came as oneway.
    pub oneway: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicConf {
    pub(crate) write_queues: i32,
    pub(crate) perm: i32,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    commit_log_offset: i64,
    queue_offsets: HashMap<(String, i32), i64>,
    topics: HashMap<String, TopicConf>,
    pub(crate) messages: Vec<StoredMessage>,
    /// The pending half messages, by commit-log offset.
    pub(crate) halves: BTreeMap<i64, Half>,
    /// The pending timer messages, by commit-log offset.
    pub(crate) timers: BTreeMap<i64, StoredMessage>,
    /// The recalls received.
    pub(crate) recalls: Vec<RecallRecord>,
    heartbeats: Vec<HeartbeatRecord>,
    unregisters: Vec<UnregisterClientRequestHeader>,
    end_transactions: Vec<EndTransactionRecord>,
}

/// A rejected send: code and remark.
pub(crate) type Rejection = (ResponseCode, String);

/// What a send needs besides the request.
pub(crate) struct SendContext {
    pub(crate) code: RequestCode,
    pub(crate) header: SendMessageRequestHeader,
    pub(crate) body: Bytes,
    pub(crate) born_host: SocketAddr,
    pub(crate) reply_code: ResponseCode,
}

/// A successful send: the answer, and the topic created on the way (auto-create).
pub(crate) struct Stored {
    pub(crate) response: SendMessageResponseHeader,
    pub(crate) created: Option<(String, i32)>,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    seq: Arc<AtomicU64>,
    state: Mutex<State>,
}

impl Store {
    pub(crate) fn new(name: String, addr: SocketAddr, seq: Arc<AtomicU64>) -> Self {
        Self {
            name,
            addr,
            seq,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next arrival number.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends `ext` to the commit log as a broker does: the next offset of its queue and the
    /// commit-log offset, which then grows by the record's size. Returns it with its offsets
    /// and its offset message id.
    pub(crate) fn append(&self, state: &mut State, mut ext: MessageExt) -> (MessageExt, String) {
        let slot = state
            .queue_offsets
            .entry((ext.message.topic().to_owned(), ext.queue_id))
            .or_insert(0);
        ext.queue_offset = *slot;
        *slot += 1;
        ext.commit_log_offset = state.commit_log_offset;
        ext.store_host = self.addr;
        let size = i64::try_from(encode_stored_message(&ext).len()).unwrap_or(i64::MAX);
        state.commit_log_offset = ext.commit_log_offset.saturating_add(size);
        let msg_id = OffsetMessageId::new(self.addr, ext.commit_log_offset).encode();
        (ext, msg_id)
    }

    pub(crate) fn set_topic(&self, topic: &str, conf: TopicConf) {
        self.lock().topics.insert(topic.to_owned(), conf);
    }

    pub(crate) fn remove_topic(&self, topic: &str) {
        self.lock().topics.remove(topic);
    }

    pub(crate) fn topic(&self, topic: &str) -> Option<TopicConf> {
        self.lock().topics.get(topic).copied()
    }

    /// Stores a send (single or batch) and builds the broker's answer.
    pub(crate) fn store_send(
        &self,
        cx: SendContext,
        unknown: UnknownTopic,
    ) -> Result<Stored, Rejection> {
        let h = &cx.header;
        let mut state = self.lock();
        let mut created = None;
        let conf = match (state.topics.get(&h.topic).copied(), unknown) {
            (Some(conf), _) => Some(conf),
            (None, UnknownTopic::Accept) => None,
            (None, UnknownTopic::Reject) => {
                return Err((
                    ResponseCode::TOPIC_NOT_EXIST,
                    format!("topic[{}] not exist, apply first please!", h.topic),
                ))
            }
            (None, UnknownTopic::AutoCreate) => {
                let queues = h.default_topic_queue_nums.clamp(1, TBW102_QUEUE_NUMS);
                let conf = TopicConf {
                    write_queues: queues,
                    perm: perm::READ | perm::WRITE,
                };
                state.topics.insert(h.topic.clone(), conf);
                created = Some((h.topic.clone(), queues));
                Some(conf)
            }
        };
        if let Some(conf) = conf {
            if !perm::is_writeable(conf.perm) {
                return Err((
                    ResponseCode::NO_PERMISSION,
                    format!("the topic[{}] sending message is forbidden", h.topic),
                ));
            }
        }
        let queue_nums = conf.map_or(h.default_topic_queue_nums.max(1), |c| c.write_queues);
        let queue_id = if h.queue_id < 0 {
            fastrand::i32(0..queue_nums.max(1))
        } else {
            h.queue_id
        };
        if conf.is_some() && queue_id >= queue_nums {
            return Err((
                ResponseCode::SYSTEM_ERROR,
                format!(
                    "request queueId[{queue_id}] is illegal, topic:{} topicConfig.writeQueueNums:{queue_nums} producer:{}",
                    h.topic, cx.born_host
                ),
            ));
        }
        // A real broker refuses it when appending to the commit log; checked before the
        // properties are decoded so a huge string costs nothing.
        let props_len = h.properties.as_deref().map_or(0, str::len);
        if props_len > MAX_PROPERTIES_BYTES {
            tracing::warn!(
                broker = %self.name,
                len = props_len,
                "message properties length too long"
            );
            return Err((
                ResponseCode::MESSAGE_ILLEGAL,
                MESSAGE_ILLEGAL_REMARK.to_owned(),
            ));
        }
        let header_props = Properties::decode(h.properties.as_deref().unwrap_or(""));
        let batch = cx.code == RequestCode::SEND_BATCH_MESSAGE;
        let is_half = !batch && half::is_half(h, &header_props, &self.name);
        if batch && sysflag::transaction_value(h.sys_flag) != sysflag::TRANSACTION_NOT_TYPE {
            // A broker's commit log refuses a batch with a transaction type.
            tracing::warn!(broker = %self.name, topic = %h.topic, "transactional batch refused");
            return Err((
                ResponseCode::MESSAGE_ILLEGAL,
                MESSAGE_ILLEGAL_REMARK.to_owned(),
            ));
        }
        let messages = self.messages_of(&cx)?;
        let store_timestamp = now_ms();
        let timer_out = if batch || is_half {
            None
        } else {
            timer::timer_out_ms(&header_props, store_timestamp)?
        };
        let mut recall_handle = None;
        let mut msg_ids = Vec::with_capacity(messages.len());
        let mut first_queue_offset = None;
        // A broker adds its cluster to what it stores from a send (Java's
        // `SendMessageProcessor`; repliers read it to find the reply topic), not to replies.
        let is_reply = matches!(
            cx.code,
            RequestCode::SEND_REPLY_MESSAGE | RequestCode::SEND_REPLY_MESSAGE_V2
        );
        for (index, mut message) in messages.into_iter().enumerate() {
            if !is_reply {
                message.properties_mut().insert(property::CLUSTER, CLUSTER);
            }
            let ext = MessageExt {
                message,
                queue_id,
                sys_flag: h.sys_flag,
                born_timestamp: h.born_timestamp,
                born_host: cx.born_host,
                store_timestamp,
                reconsume_times: h.reconsume_times.unwrap_or(0),
                ..MessageExt::default()
            };
            // A half message goes to queue 0 of the half topic instead, a timer message to
            // queue 0 of the timer topic.
            let ext = match timer_out {
                _ if is_half => half::to_half(ext),
                Some(out) => timer::to_timer(ext, out),
                None => ext,
            };
            let (ext, msg_id) = self.append(&mut state, ext);
            first_queue_offset.get_or_insert(ext.queue_offset);
            msg_ids.push(msg_id.clone());
            let stored = StoredMessage {
                seq: self.next_seq(),
                broker: self.name.clone(),
                code: cx.code,
                header: h.clone(),
                msg_id,
                batch_index: batch.then_some(index),
                reply_code: cx.reply_code,
                ext,
            };
            if is_half {
                let offset = stored.ext.commit_log_offset;
                let (broker, topic) = (&self.name, &h.topic);
                tracing::debug!(broker, topic, offset, "half message stored");
                state.halves.insert(offset, Half::new(stored));
            } else if let Some(out) = timer_out {
                let offset = stored.ext.commit_log_offset;
                let (broker, topic) = (&self.name, &h.topic);
                tracing::debug!(
                    broker,
                    topic,
                    offset,
                    timer_out_ms = out,
                    "timer message stored"
                );
                recall_handle = timer::recall_handle(&self.name, &stored.ext);
                state.timers.insert(offset, stored);
            } else {
                state.messages.push(stored);
            }
        }
        let response = SendMessageResponseHeader {
            msg_id: msg_ids.join(","),
            queue_id,
            queue_offset: first_queue_offset.unwrap_or(0),
            transaction_id: header_props.get(property::UNIQ_KEY).map(str::to_owned),
            batch_uniq_id: None,
            region_id: Some("DefaultRegion".into()),
            trace_on: Some(true),
            recall_handle,
        };
        Ok(Stored { response, created })
    }

    /// The messages of a send: the body as one message, or the split batch.
    fn messages_of(&self, cx: &SendContext) -> Result<Vec<Message>, Rejection> {
        let h = &cx.header;
        if cx.code == RequestCode::SEND_BATCH_MESSAGE {
            let mut messages = decode_batch(cx.body.clone()).map_err(|e| {
                (
                    ResponseCode::MESSAGE_ILLEGAL,
                    format!("bad batch body: {e}"),
                )
            })?;
            for m in &mut messages {
                m.set_topic(h.topic.clone());
            }
            Ok(messages)
        } else {
            let props = Properties::decode(h.properties.as_deref().unwrap_or(""));
            Ok(vec![Message::from_parts(
                h.topic.clone(),
                h.flag,
                cx.body.clone(),
                props,
            )])
        }
    }

    /// The stored, half or timer message at a commit-log offset.
    pub(crate) fn find_by_offset(&self, commit_log_offset: i64) -> Option<MessageExt> {
        let state = self.lock();
        state
            .messages
            .iter()
            .find(|m| m.ext.commit_log_offset == commit_log_offset)
            .map(|m| m.ext.clone())
            .or_else(|| {
                let half = state.halves.get(&commit_log_offset)?;
                Some(half.stored.ext.clone())
            })
            .or_else(|| Some(state.timers.get(&commit_log_offset)?.ext.clone()))
    }

    pub(crate) fn messages(&self) -> Vec<StoredMessage> {
        self.lock().messages.clone()
    }

    pub(crate) fn clear_messages(&self) {
        self.lock().messages.clear();
    }

    pub(crate) fn record_heartbeat(&self, record: HeartbeatRecord) {
        self.lock().heartbeats.push(record);
    }

    pub(crate) fn heartbeats(&self) -> Vec<HeartbeatRecord> {
        self.lock().heartbeats.clone()
    }

    pub(crate) fn record_unregister(&self, header: UnregisterClientRequestHeader) {
        self.lock().unregisters.push(header);
    }

    pub(crate) fn unregisters(&self) -> Vec<UnregisterClientRequestHeader> {
        self.lock().unregisters.clone()
    }

    pub(crate) fn record_end_transaction(&self, record: EndTransactionRecord) {
        self.lock().end_transactions.push(record);
    }

    pub(crate) fn end_transactions(&self) -> Vec<EndTransactionRecord> {
        self.lock().end_transactions.clone()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_common::batch::encode_batch;

    fn store() -> Store {
        let addr: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        Store::new("broker-a".into(), addr, Arc::new(AtomicU64::new(0)))
    }

    fn send(code: RequestCode, topic: &str, queue_id: i32, body: Bytes) -> SendContext {
        let mut props = Properties::new();
        props.insert(property::UNIQ_KEY, "UNIQ1");
        SendContext {
            code,
            header: SendMessageRequestHeader {
                producer_group: "pg".into(),
                topic: topic.into(),
                default_topic: "TBW102".into(),
                default_topic_queue_nums: 4,
                queue_id,
                properties: Some(props.encode()),
                ..SendMessageRequestHeader::default()
            },
            body,
            born_host: "127.0.0.1:5000".parse().unwrap(),
            reply_code: ResponseCode::SUCCESS,
        }
    }

    #[test]
    fn offsets_ids_and_answer_like_a_broker() {
        let s = store();
        let conf = TopicConf {
            write_queues: 2,
            perm: 6,
        };
        s.set_topic("T", conf);
        let a = s
            .store_send(
                send(
                    RequestCode::SEND_MESSAGE_V2,
                    "T",
                    1,
                    Bytes::from_static(b"x"),
                ),
                UnknownTopic::Reject,
            )
            .unwrap();
        let b = s
            .store_send(
                send(RequestCode::SEND_MESSAGE, "T", 1, Bytes::from_static(b"y")),
                UnknownTopic::Reject,
            )
            .unwrap();
        assert_eq!((a.response.queue_id, a.response.queue_offset), (1, 0));
        assert_eq!((b.response.queue_id, b.response.queue_offset), (1, 1));
        assert_eq!(a.response.transaction_id.as_deref(), Some("UNIQ1"));
        let id_a = OffsetMessageId::decode(&a.response.msg_id).unwrap();
        let id_b = OffsetMessageId::decode(&b.response.msg_id).unwrap();
        assert_eq!(id_a.commit_log_offset, 0);
        assert!(id_b.commit_log_offset > 0);
        assert_eq!(id_b.addr, "127.0.0.1:10911".parse().unwrap());
        let stored = s.find_by_offset(id_b.commit_log_offset).unwrap();
        assert_eq!(stored.message.body().as_ref(), b"y");
        let msgs = s.messages();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].seq, msgs[1].seq), (0, 1));
        assert_eq!(msgs[1].property(property::UNIQ_KEY), Some("UNIQ1"));
        assert_eq!(
            msgs[1].property(property::CLUSTER),
            Some(CLUSTER),
            "as a broker adds"
        );
        let reply = s
            .store_send(
                send(RequestCode::SEND_REPLY_MESSAGE_V2, "T", 0, Bytes::new()),
                UnknownTopic::Reject,
            )
            .unwrap();
        assert_eq!(reply.response.queue_id, 0);
        let msgs = s.messages();
        assert_eq!(msgs[2].code, RequestCode::SEND_REPLY_MESSAGE_V2);
        assert_eq!(msgs[2].property(property::CLUSTER), None, "not on replies");
    }

    #[test]
    fn unknown_topics_and_bad_queues() {
        let s = store();
        let err = s
            .store_send(
                send(RequestCode::SEND_MESSAGE_V2, "U", 0, Bytes::new()),
                UnknownTopic::Reject,
            )
            .err()
            .unwrap();
        assert_eq!(err.0, ResponseCode::TOPIC_NOT_EXIST);
        let ok = s
            .store_send(
                send(RequestCode::SEND_MESSAGE_V2, "U", -1, Bytes::new()),
                UnknownTopic::AutoCreate,
            )
            .unwrap();
        assert_eq!(ok.created, Some(("U".to_owned(), 4)));
        assert!((0..4).contains(&ok.response.queue_id));
        let err = s
            .store_send(
                send(RequestCode::SEND_MESSAGE_V2, "U", 4, Bytes::new()),
                UnknownTopic::Reject,
            )
            .err()
            .unwrap();
        assert_eq!(err.0, ResponseCode::SYSTEM_ERROR);
        s.set_topic(
            "R",
            TopicConf {
                write_queues: 4,
                perm: 4,
            },
        );
        let err = s
            .store_send(
                send(RequestCode::SEND_MESSAGE_V2, "R", 0, Bytes::new()),
                UnknownTopic::Reject,
            )
            .err()
            .unwrap();
        assert_eq!(err.0, ResponseCode::NO_PERMISSION);
        // Accept: any queue, no topic created.
        let ok = s
            .store_send(
                send(RequestCode::SEND_MESSAGE_V2, "V", 9, Bytes::new()),
                UnknownTopic::Accept,
            )
            .unwrap();
        assert_eq!((ok.response.queue_id, ok.created), (9, None));
    }

    #[test]
    fn batches_are_split_with_comma_joined_ids() {
        let s = store();
        let body = encode_batch(&[Message::new("B", "one"), Message::new("B", "two")]).unwrap();
        let ok = s
            .store_send(
                send(RequestCode::SEND_BATCH_MESSAGE, "B", 0, body),
                UnknownTopic::Accept,
            )
            .unwrap();
        let ids: Vec<&str> = ok.response.msg_id.split(',').collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(ok.response.queue_offset, 0);
        let msgs = s.messages();
        assert_eq!(msgs[1].body().as_ref(), b"two");
        assert_eq!(msgs[1].topic(), "B");
        assert_eq!(
            (msgs[0].batch_index, msgs[1].batch_index),
            (Some(0), Some(1))
        );
        assert_eq!((msgs[0].queue_offset(), msgs[1].queue_offset()), (0, 1));
        assert_eq!(msgs[1].msg_id, ids[1]);
        let bad = s.store_send(
            send(
                RequestCode::SEND_BATCH_MESSAGE,
                "B",
                0,
                Bytes::from_static(b"\0\0"),
            ),
            UnknownTopic::Accept,
        );
        assert_eq!(bad.err().unwrap().0, ResponseCode::MESSAGE_ILLEGAL);
    }
}
