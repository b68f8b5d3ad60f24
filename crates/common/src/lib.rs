//! `rmq-common`: the data of Apache RocketMQ's remoting protocol, with no I/O.
//!
//! Messages and their properties, message queues, request/response/language codes, command
//! headers (as plain structs that map to ext fields), topic route data, message ids, and the
//! validation rules the Java client applies before sending.
//!
//! | module | what |
//! |---|---|
//! | [`message`], [`properties`], [`property`] | [`Message`], its [`Properties`] (`\x01`/`\x02` wire form) and the well-known names |
//! | [`message_queue`] | [`MessageQueue`] |
//! | [`code`], [`ext_fields`], [`header`] | codes, [`ExtFields`] and the command headers ([`CommandHeader`]) |
//! | [`batch`], [`compression`], [`sysflag`] | batch bodies, zlib / LZ4 / zstd bodies, `sysFlag` bits |
//! | [`route`], [`heartbeat`] | JSON bodies: [`TopicRouteData`] and [`HeartbeatData`] |
//! | [`message_id`], [`stored`] | `UNIQ_KEY` / offset ids and the stored-message format |
//! | [`recall`], [`timer`] | recall handles; timer (scheduled) message properties and their checks |
//! | [`reply`] | request/reply: the reply to a request, the reply as the requester receives it |
//! | [`validate`] | the client-side checks, as [`ValidationError`] |
//!
//! ```
//! use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
//! use rmq_common::{CommandHeader, Message};
//! let msg = Message::new("TopicTest", "hello").with_tags("TagA");
//! rmq_common::validate::validate_message(&msg, rmq_common::validate::DEFAULT_MAX_MESSAGE_SIZE)?;
//! let header = SendMessageRequestHeaderV2(SendMessageRequestHeader {
//!     producer_group: "pg".into(),
//!     topic: msg.topic().into(),
//!     default_topic: "TBW102".into(),
//!     default_topic_queue_nums: 4,
//!     properties: Some(msg.properties().encode()),
//!     unit_mode: Some(false),
//!     batch: Some(false),
//!     ..Default::default()
//! });
//! let ext = header.to_ext_fields();
//! assert_eq!(ext.get("i"), Some("WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}"));
//! # Ok::<(), rmq_common::ValidationError>(())
//! ```
#![warn(missing_docs)]

pub mod batch;
pub mod code;
pub mod compression;
pub mod ext_fields;
mod ext_json;
pub mod header;
pub mod heartbeat;
mod hex;
pub mod message;
pub mod message_id;
pub mod message_queue;
pub mod namespace;
pub mod properties;
pub mod property;
pub mod recall;
pub mod reply;
pub mod route;
pub mod stored;
pub mod sysflag;
pub mod timer;
pub mod validate;

pub use batch::{decode_batch, encode_batch, BatchError};
pub use code::{LanguageCode, RequestCode, ResponseCode};
pub use compression::CompressionError;
pub use ext_fields::ExtFields;
pub use header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
    GetRouteInfoRequestHeader, HeaderError, ReplyMessageRequestHeader, SendMessageRequestHeader,
    SendMessageRequestHeaderV2, SendMessageResponseHeader, UnregisterClientRequestHeader,
    ViewMessageRequestHeader,
};
pub use heartbeat::{HeartbeatData, ProducerData};
pub use message::{Message, MessageError};
pub use message_id::{MessageIdError, OffsetMessageId, UniqIdGenerator};
pub use message_queue::MessageQueue;
pub use properties::Properties;
pub use route::{BrokerData, QueueData, TopicRouteData, MASTER_ID};
pub use stored::{MessageExt, StoredMessageError};
pub use validate::ValidationError;
