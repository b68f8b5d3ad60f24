//! `rmq-common`: the data of Apache RocketMQ's remoting protocol, with no I/O.
//!
//! Messages and their properties, message queues, request/response/language codes, command
//! headers (as plain structs that map to ext fields), topic route data, message ids, and the
//! validation rules the Java client applies before sending.
#![warn(missing_docs)]

pub mod batch;
pub mod code;
pub mod compression;
pub mod ext_fields;
pub mod header;
pub mod heartbeat;
mod hex;
pub mod message;
pub mod message_id;
pub mod message_queue;
pub mod properties;
pub mod property;
pub mod route;
pub mod stored;
pub mod sysflag;
pub mod validate;

pub use batch::{decode_batch, encode_batch, BatchError};
pub use code::{LanguageCode, RequestCode, ResponseCode};
pub use compression::CompressionError;
pub use ext_fields::ExtFields;
pub use header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
    GetRouteInfoRequestHeader, HeaderError, SendMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader, UnregisterClientRequestHeader, ViewMessageRequestHeader,
};
pub use heartbeat::{HeartbeatData, ProducerData};
pub use message::{Message, MessageError};
pub use message_id::{MessageIdError, OffsetMessageId, UniqIdGenerator};
pub use message_queue::MessageQueue;
pub use properties::Properties;
pub use route::{BrokerData, QueueData, TopicRouteData, MASTER_ID};
pub use stored::{MessageExt, StoredMessageError};
pub use validate::ValidationError;
