//! One send attempt (Java's `sendKernelImpl` + `MQClientAPIImpl.sendMessage` +
//! `processSendResponse`), split into pure steps:
//!
//! 1. [`prepare_single`] / [`prepare_batch`], once per send: the `UNIQ_KEY` (set once, kept across
//!    retries), compression of bodies at or over the threshold (sysFlag `COMPRESSED | type`:
//!    `0x301` zlib, `0x101` LZ4, `0x201` zstd; batches never), the transaction flag, the encoded
//!    properties;
//! 2. [`build_request`], once per attempt: the V2 header (`SEND_MESSAGE_V2`, `SEND_REPLY_MESSAGE_V2`
//!    for a reply, `SEND_BATCH_MESSAGE`)
//!    for the chosen queue, with a fresh `bornTimestamp`;
//! 3. [`process_response`]: the response code mapped as Java does, the ids read back.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use bytestring::ByteString;
use rmq_common::batch::encode_batch;
use rmq_common::header::send::{SendMessageResponseHeader, DEFAULT_REGION};
use rmq_common::{
    property, sysflag, CommandHeader, ExtFields, LanguageCode, Message, MessageQueue, Properties,
    RequestCode,
};
use rmq_remoting::{EncodedExtBuilder, EncodedExtFields, RemotingCommand, SerializeType};

use crate::config::ProducerConfig;
use crate::error::ErrorKind;
use crate::send_result::{SendResult, SendStatus};

/// The `%RETRY%` topic prefix (Java `MixAll.RETRY_GROUP_TOPIC_PREFIX`).
const RETRY_TOPIC_PREFIX: &str = "%RETRY%";

/// A message ready for the wire: built once per send, reused by every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// `SEND_MESSAGE_V2`, `SEND_REPLY_MESSAGE_V2` (a reply) or `SEND_BATCH_MESSAGE`.
    pub(crate) code: RequestCode,
    /// The wire body: the (possibly compressed) body, or the encoded batch.
    pub(crate) body: Bytes,
    /// `sysFlag`.
    pub(crate) sys_flag: i32,
    /// The user flag.
    pub(crate) flag: i32,
    /// The topic, shared by the requests of every attempt.
    pub(crate) topic_bytes: ByteString,
    /// The encoded properties (header field `i`), shared by every attempt.
    pub(crate) properties: ByteString,
    /// What [`SendResult::msg_id`] reports: the `UNIQ_KEY`, or the inner keys joined by `,`.
    pub(crate) msg_id: String,
    /// The wall-clock read of the prepare (epoch ms): the time of the ids it generated, and the
    /// `bornTimestamp` of a first attempt made without a wait (a later one reads the clock again,
    /// as Java's `sendKernelImpl` does per attempt).
    pub(crate) born_ms: i64,
    /// `reconsumeTimes` / `maxReconsumeTimes` moved out of the properties of `%RETRY%` topics.
    pub(crate) reconsume_times: i32,
    pub(crate) max_reconsume_times: Option<i32>,
}

impl Outgoing {
    /// The topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic_bytes
    }

    /// Whether this is a batch.
    pub(crate) fn is_batch(&self) -> bool {
        self.code == RequestCode::SEND_BATCH_MESSAGE
    }
}

/// Where a prepare gets the `UNIQ_KEY`s it generates: a closure (which reads the clock itself),
/// or [`ProcessIds`] (which takes the prepare's own clock read: one read per send).
pub(crate) trait IdSource {
    /// A new id; `now_ms` is the prepare's wall-clock read.
    fn id_at(&mut self, now_ms: i64) -> String;
}

impl<F: FnMut() -> String> IdSource for F {
    fn id_at(&mut self, _now_ms: i64) -> String {
        self()
    }
}

/// The process-wide generator ([`crate::identity::uniq_ids`]), fed the prepare's clock read.
pub(crate) struct ProcessIds;

impl IdSource for ProcessIds {
    fn id_at(&mut self, now_ms: i64) -> String {
        crate::identity::uniq_ids().next_id_at(now_ms)
    }
}

/// Sets the message's `UNIQ_KEY` when absent (Java `setUniqID`) and returns it.
pub(crate) fn ensure_uniq_key(msg: &mut Message, next_id: &mut impl FnMut() -> String) -> String {
    ensure_uniq_key_at(msg, 0, next_id)
}

/// [`ensure_uniq_key`] with the id generated for `now_ms` (when `ids` takes it).
fn ensure_uniq_key_at(msg: &mut Message, now_ms: i64, ids: &mut impl IdSource) -> String {
    if let Some(id) = msg.property(property::UNIQ_KEY).filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    let id = ids.id_at(now_ms);
    msg.properties_mut()
        .insert_named(property::UNIQ_KEY, id.clone());
    id
}

/// Milliseconds since the Unix epoch (`bornTimestamp`, and the time in a `UNIQ_KEY`).
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Prepares one message (the message is already validated). Sets its `UNIQ_KEY` when absent; the
/// message itself is otherwise untouched (its body stays uncompressed). Reads the wall clock once
/// ([`Outgoing::born_ms`]).
pub(crate) fn prepare_single(
    msg: &mut Message,
    cfg: &ProducerConfig,
    next_id: &mut impl IdSource,
) -> Outgoing {
    let born_ms = wall_ms();
    let uniq_key = ensure_uniq_key_at(msg, born_ms, next_id);
    let mut sys_flag = 0;
    let raw = msg.body().clone();
    // Compressed only when that makes it smaller: random or already compressed data grows under
    // zlib, and a body at the size limit would then be refused by the broker after a round trip.
    // A compressor failure sends the body as it is, as Java does.
    let ty = cfg.compress_type;
    let compressed = (raw.len() >= cfg.compress_threshold)
        .then(|| ty.compress(&raw, cfg.compress_level))
        .and_then(|r| {
            r.map_err(|e| tracing::warn!(error = %e, %ty, "compression failed: sent uncompressed"))
                .ok()
        })
        .filter(|c| c.len() < raw.len());
    let body = match compressed {
        Some(c) => {
            sys_flag |= sysflag::COMPRESSED_FLAG | ty.sys_flag();
            Bytes::from(c)
        }
        None => raw.clone(),
    };
    if msg
        .property(property::TRAN_MSG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        sys_flag |= sysflag::TRANSACTION_PREPARED_TYPE;
    }
    let (properties, reconsume_times, max_reconsume_times) =
        if msg.topic().starts_with(RETRY_TOPIC_PREFIX) {
            let mut props: Properties = msg.properties().clone();
            let reconsume = props
                .remove(property::RECONSUME_TIME)
                .and_then(|v| v.parse().ok());
            let max = props
                .remove(property::MAX_RECONSUME_TIMES)
                .and_then(|v| v.parse().ok());
            (props.encode(), reconsume.unwrap_or(0), max)
        } else {
            (msg.properties().encode(), 0, None)
        };
    // A reply (`MSG_TYPE=reply`) goes out with its own code, as Java's `MQClientAPIImpl` does:
    // brokers push it to the requester instead of only storing it.
    let code = if rmq_common::reply::is_reply(msg) {
        RequestCode::SEND_REPLY_MESSAGE_V2
    } else {
        RequestCode::SEND_MESSAGE_V2
    };
    let mut out = Outgoing {
        code,
        body,
        sys_flag,
        flag: msg.flag(),
        topic_bytes: shared_text(&LAST_TOPIC, msg.topic()),
        properties: ByteString::from(properties),
        msg_id: uniq_key,
        born_ms,
        reconsume_times,
        max_reconsume_times,
    };
    crate::namespace::apply(&mut out, crate::namespace::of(cfg));
    out
}

/// Prepares a batch (each message already validated): every inner message gets its `UNIQ_KEY`;
/// the wrapper carries only `WAIT` (from the first message). Never compressed.
///
/// Unlike Java 5's `DefaultMQProducer.batch`, the wrapper gets no `UNIQ_KEY` of its own (as in
/// Java 4.x): brokers append the wrapper's properties to every inner record
/// (`MessageExtEncoder.encode(MessageExtBatch)`), so a wrapper id would replace every inner id and
/// all messages of the batch would be stored under one id.
///
/// # Errors
/// The batch rules (same topic, same `WAIT`, no delay, not a retry topic, not empty).
pub(crate) fn prepare_batch(
    msgs: &mut [Message],
    next_id: &mut impl IdSource,
) -> Result<Outgoing, rmq_common::batch::BatchError> {
    let born_ms = wall_ms();
    let inner_ids: Vec<String> = msgs
        .iter_mut()
        .map(|m| ensure_uniq_key_at(m, born_ms, next_id))
        .collect();
    let body = encode_batch(msgs)?;
    let first = msgs.first().ok_or(rmq_common::batch::BatchError::Empty)?;
    let mut wrapper = Properties::with_capacity(1);
    wrapper.insert(
        property::WAIT,
        if first.wait_store_msg_ok() {
            "true"
        } else {
            "false"
        },
    );
    Ok(Outgoing {
        code: RequestCode::SEND_BATCH_MESSAGE,
        body,
        sys_flag: 0,
        flag: 0,
        topic_bytes: ByteString::from(first.topic()),
        properties: ByteString::from(wrapper.encode()),
        msg_id: inner_ids.join(","),
        born_ms,
        reconsume_times: 0,
        max_reconsume_times: None,
    })
}

/// Header values shared by every send of a producer, as shared byte strings (cloning one is a
/// reference-count increment, not an allocation).
#[derive(Debug, Clone)]
pub(crate) struct WireConsts {
    group: ByteString,
    default_topic: ByteString,
    default_topic_queue_nums: ByteString,
    unit_mode: ByteString,
    language: LanguageCode,
    serialize_type: SerializeType,
    /// The constant entries pre-encoded, when requests go out with pre-encoded ext fields
    /// (JSON headers, no ACL signing): see [`build_request`].
    encoded: Option<Box<EncodedConsts>>,
}

/// The constant entries of the V2 header as JSON, encoded once per producer: `a`, then `c` and
/// `d` (the topic `b` sits between them), then `k`.
#[derive(Debug, Clone)]
struct EncodedConsts {
    /// Tells the producers' constants apart in [`LAST_HEAD`] (a clone keeps it: same entries).
    id: u64,
    a: EncodedExtFields,
    cd: EncodedExtFields,
    k: EncodedExtFields,
    /// `k` then `m` false: the tail of a single message's header without `l`, in one copy.
    km_single: EncodedExtFields,
}

/// The source of [`EncodedConsts::id`].
static NEXT_CONSTS_ID: AtomicU64 = AtomicU64::new(0);

/// The head of a V2 header, `a` to `d`, for one producer's constants and one topic.
struct Head {
    consts: u64,
    topic: ByteString,
    json: EncodedExtFields,
}

thread_local! {
    /// The head last written on this thread: the sends of one topic copy it whole instead of
    /// encoding the topic each time (the topic needs escaping only in theory, but it is scanned).
    static LAST_HEAD: RefCell<Option<Head>> = const { RefCell::new(None) };
}

impl EncodedConsts {
    fn new(cfg: &ProducerConfig) -> Self {
        let mut a = EncodedExtFields::builder(cfg.group.len() + 8);
        a.str("a", &cfg.group);
        let mut cd = EncodedExtFields::builder(cfg.name_server.default_topic.len() + 24);
        cd.str("c", &cfg.name_server.default_topic)
            .int("d", cfg.name_server.default_topic_queue_nums.into());
        let mut k = EncodedExtFields::builder(12);
        k.bool("k", cfg.unit_mode);
        let k = k.build();
        let mut km_single = EncodedExtFields::builder(24);
        km_single.extend(&k).bool("m", false);
        // Kept as long as the producer: not in the builders' shared chunks.
        Self {
            id: NEXT_CONSTS_ID.fetch_add(1, Ordering::Relaxed),
            a: a.build().detach(),
            cd: cd.build().detach(),
            k: k.detach(),
            km_single: km_single.build().detach(),
        }
    }

    /// Bytes of the three parts and their separators.
    fn len(&self) -> usize {
        self.a.as_json().len() + self.cd.as_json().len() + self.k.as_json().len() + 3
    }

    /// Appends `a`, `b` (`topic`), `c` and `d` to `b`: a copy of this thread's last head when it
    /// is this producer's for `topic`, else encoded (and kept as the last head).
    fn put_head(&self, b: &mut EncodedExtBuilder, topic: &ByteString) {
        let cached = LAST_HEAD.try_with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some(head) if head.consts == self.id && head.topic == *topic => {
                    b.extend(&head.json);
                }
                _ => {
                    let json = self.head(topic);
                    b.extend(&json);
                    // Kept until another head replaces it (one chunk per thread at most:
                    // not detached, which would cost a send that changes topic a copy).
                    *last = Some(Head {
                        consts: self.id,
                        topic: topic.clone(),
                        json,
                    });
                }
            }
        });
        // The thread's locals are being destroyed (a send from a thread-local destructor).
        if cached.is_err() {
            b.extend(&self.head(topic));
        }
    }

    /// `a`, `b` (`topic`), `c` and `d`, encoded.
    fn head(&self, topic: &ByteString) -> EncodedExtFields {
        let mut h = EncodedExtFields::builder(self.a.as_json().len() + topic.len() + 40);
        h.extend(&self.a).str("b", topic).extend(&self.cd);
        h.build()
    }
}

impl WireConsts {
    /// The header serialization of every request.
    pub(crate) fn serialize_type(&self) -> SerializeType {
        self.serialize_type
    }

    /// The language code of every request.
    pub(crate) fn language(&self) -> LanguageCode {
        self.language
    }

    pub(crate) fn new(cfg: &ProducerConfig) -> Self {
        Self {
            group: ByteString::from(cfg.group.as_str()),
            default_topic: ByteString::from(cfg.name_server.default_topic.as_str()),
            default_topic_queue_nums: int(cfg.name_server.default_topic_queue_nums),
            unit_mode: boolean(cfg.unit_mode),
            language: cfg.language,
            serialize_type: cfg.serialize_type,
            // A signing hook reads the fields (the client would read pre-encoded ones back:
            // cheaper not to encode them), and the ROCKETMQ header has no use for JSON.
            encoded: (cfg.credentials.is_none() && cfg.serialize_type == SerializeType::Json)
                .then(|| Box::new(EncodedConsts::new(cfg))),
        }
    }
}

/// Decimal text of `v`, without allocating for the small values most fields hold.
fn int(v: i32) -> ByteString {
    const SMALL: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    ];
    match usize::try_from(v) {
        Ok(i) if i < SMALL.len() => ByteString::from_static(SMALL[i]),
        _ => ByteString::from(v.to_string()),
    }
}

thread_local! {
    /// The last `bornTimestamp` written on this thread, as text: the sends of one millisecond
    /// share it instead of formatting and allocating it each.
    static LAST_MILLIS: RefCell<(i64, ByteString)> = const {
        RefCell::new((i64::MIN, ByteString::from_static("")))
    };
}

thread_local! {
    /// The last topic prepared on this thread, and the last broker name written: consecutive
    /// sends share one copy (a reference-count increment instead of two allocations).
    static LAST_TOPIC: RefCell<ByteString> = const { RefCell::new(ByteString::from_static("")) };
    static LAST_BROKER: RefCell<ByteString> = const { RefCell::new(ByteString::from_static("")) };
}

/// `text` as a shared byte string, the one kept in `last` when it is the same text.
fn shared_text(
    last: &'static std::thread::LocalKey<RefCell<ByteString>>,
    text: &str,
) -> ByteString {
    last.try_with(|last| {
        let mut last = last.borrow_mut();
        if &**last != text {
            *last = ByteString::from(text);
        }
        last.clone()
    })
    .unwrap_or_else(|_| ByteString::from(text))
}

/// Decimal text of a millisecond timestamp, shared by the sends of the same millisecond.
fn millis_text(ms: i64) -> ByteString {
    LAST_MILLIS
        .try_with(|last| {
            let mut last = last.borrow_mut();
            if last.0 != ms {
                *last = (ms, ByteString::from(ms.to_string()));
            }
            last.1.clone()
        })
        .unwrap_or_else(|_| ByteString::from(ms.to_string()))
}

fn boolean(v: bool) -> ByteString {
    ByteString::from_static(if v { "true" } else { "false" })
}

/// The request of one attempt to `mq`, born at `born_timestamp_ms`: the ext fields of
/// `SendMessageRequestHeaderV2` (`a`..`n`, in Java's order, `l` only when set). Pre-encoded
/// ([`build_request_encoded`]) for JSON headers without ACL signing, else as [`ExtFields`]
/// ([`build_request_fields`]); both give the same frame (unit tests check it byte for byte).
pub(crate) fn build_request(
    out: &Outgoing,
    w: &WireConsts,
    mq: &MessageQueue,
    born_timestamp_ms: i64,
) -> RemotingCommand {
    match &w.encoded {
        Some(consts) => build_request_encoded(out, w, consts, mq, born_timestamp_ms),
        None => build_request_fields(out, w, mq, born_timestamp_ms),
    }
}

/// [`build_request`] with the header pre-encoded: the constant entries copied, the variable ones
/// written (the header encoder then copies the whole in one write).
fn build_request_encoded(
    out: &Outgoing,
    w: &WireConsts,
    consts: &EncodedConsts,
    mq: &MessageQueue,
    born_timestamp_ms: i64,
) -> RemotingCommand {
    // The properties' separators take 6 bytes each once escaped: room for one every 4 bytes.
    let props = out.properties.len();
    let size = consts.len() + out.topic().len() + props + props / 4 * 5 + mq.broker_name.len();
    let mut b = EncodedExtFields::builder(size + 128);
    consts.put_head(&mut b, &out.topic_bytes);
    b.int("e", mq.queue_id.into())
        .int("f", out.sys_flag.into())
        .int("g", born_timestamp_ms)
        .int("h", out.flag.into())
        .str("i", &out.properties)
        .int("j", out.reconsume_times.into());
    match out.max_reconsume_times {
        None if !out.is_batch() => {
            b.extend(&consts.km_single);
        }
        max => {
            b.extend(&consts.k);
            if let Some(max) = max {
                b.int("l", max.into());
            }
            b.bool("m", out.is_batch());
        }
    }
    b.str("n", &mq.broker_name);
    // Fields set in place (each builder step moves the command: a copy of 152 bytes).
    let mut req = RemotingCommand::request_encoded(out.code, b.build());
    req.body = out.body.clone();
    req.serialize_type = w.serialize_type;
    req.language = w.language;
    req
}

/// [`build_request`] with the header as [`ExtFields`] (what a signing hook and the ROCKETMQ
/// header read), built from shared values (unit tests check them against rmq-common's header
/// encoder).
pub(crate) fn build_request_fields(
    out: &Outgoing,
    w: &WireConsts,
    mq: &MessageQueue,
    born_timestamp_ms: i64,
) -> RemotingCommand {
    let key = ByteString::from_static;
    let mut ext = ExtFields::with_capacity(14);
    ext.push(key("a"), w.group.clone());
    ext.push(key("b"), out.topic_bytes.clone());
    ext.push(key("c"), w.default_topic.clone());
    ext.push(key("d"), w.default_topic_queue_nums.clone());
    ext.push(key("e"), int(mq.queue_id));
    ext.push(key("f"), int(out.sys_flag));
    ext.push(key("g"), millis_text(born_timestamp_ms));
    ext.push(key("h"), int(out.flag));
    ext.push(key("i"), out.properties.clone());
    ext.push(key("j"), int(out.reconsume_times));
    ext.push(key("k"), w.unit_mode.clone());
    if let Some(max) = out.max_reconsume_times {
        ext.push(key("l"), int(max));
    }
    ext.push(key("m"), boolean(out.is_batch()));
    ext.push(key("n"), shared_text(&LAST_BROKER, &mq.broker_name));
    let mut req = RemotingCommand::request(out.code, ext)
        .with_body(out.body.clone())
        .with_serialize_type(w.serialize_type);
    req.language = w.language;
    req
}

/// Java's `processSendResponse`: the four "stored" codes give a [`SendResult`] for `queue` (its
/// id replaced by the one the broker answers), every other code is an [`ErrorKind::Broker`]
/// refusal. `msg_id` is what the result reports (a batch's inner ids unless the broker names
/// the batch; empty for one message read by the remoting transport, whose id the send's state
/// moves in). `addr` gives the broker's address from its name, read only for a refusal.
///
/// # Errors
/// [`ErrorKind::Broker`] for a refusal, [`ErrorKind::InvalidResponse`] when a "stored" answer
/// has an unreadable header.
pub(crate) fn process_response(
    resp: &RemotingCommand,
    msg_id: String,
    is_batch: bool,
    mut queue: MessageQueue,
    addr: impl FnOnce(&str) -> String,
) -> Result<SendResult, ErrorKind> {
    let code = resp.response_code();
    let Some(status) = SendStatus::from_code(code) else {
        return Err(ErrorKind::Broker {
            code,
            remark: resp.remark.clone(),
            addr: addr(&queue.broker_name),
            broker: queue.broker_name,
        });
    };
    let header = match SendMessageResponseHeader::read_from(&resp.ext_fields) {
        Ok(header) => header,
        Err(source) => {
            return Err(ErrorKind::InvalidResponse {
                broker: queue.broker_name,
                code,
                source,
            })
        }
    };
    // An "inner batch" (batch consume-queue topic) is stored as one message: the broker answers
    // its id in `batchUniqId`.
    let msg_id = match (header.batch_uniq_id, is_batch) {
        (Some(id), true) => id,
        _ => msg_id,
    };
    queue.queue_id = header.queue_id;
    Ok(SendResult {
        status,
        msg_id,
        offset_msg_id: header.msg_id,
        queue,
        queue_offset: header.queue_offset,
        transaction_id: header.transaction_id,
        region_id: header
            .region_id
            .filter(|r| !r.is_empty())
            .unwrap_or(Cow::Borrowed(DEFAULT_REGION)),
        trace_on: header.trace_on.unwrap_or(true),
        recall_handle: header.recall_handle,
    })
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "kernel_wire_tests.rs"]
mod wire_tests;
