//! Request, response and language codes of the remoting protocol.
//!
//! Each code is a transparent newtype over its wire integer with named constants, so that a
//! code this crate does not know (a newer broker's) is kept as it is instead of failing a decode.

use std::fmt;

macro_rules! named_codes {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $( $(#[$cmeta:meta])* $const:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(transparent)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$cmeta])* pub const $const: Self = Self($value); )*

            /// The Java constant name of this code, or `None` when the code is unknown to this crate.
            #[must_use]
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($const)), )*
                    _ => None,
                }
            }

            /// The raw wire value.
            #[must_use]
            pub const fn value(self) -> $repr {
                self.0
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                Self(v)
            }
        }

        impl From<$name> for $repr {
            fn from(c: $name) -> $repr {
                c.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}({})", n, self.0),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

named_codes! {
    /// A request code (`RequestCode.java`). Unknown values are kept.
    ///
    /// ```
    /// use rmq_common::RequestCode;
    /// assert_eq!(RequestCode::SEND_MESSAGE_V2.value(), 310);
    /// assert_eq!(RequestCode::from(105), RequestCode::GET_ROUTEINFO_BY_TOPIC);
    /// assert_eq!(RequestCode(9999).name(), None);
    /// ```
    RequestCode(i32) {
        /// Send with the V1 (long names) header.
        SEND_MESSAGE = 10,
        /// Pull messages (consumer; used by tests to read messages back).
        PULL_MESSAGE = 11,
        /// Query messages by key.
        QUERY_MESSAGE = 12,
        /// Create or update a topic (admin).
        UPDATE_AND_CREATE_TOPIC = 17,
        /// Max offset of a queue.
        GET_MAX_OFFSET = 30,
        /// View a stored message by its commit-log offset.
        VIEW_MESSAGE_BY_ID = 33,
        /// Client heartbeat to a broker.
        HEART_BEAT = 34,
        /// Unregister a client from a broker.
        UNREGISTER_CLIENT = 35,
        /// Consumer send-back.
        CONSUMER_SEND_MSG_BACK = 36,
        /// Commit / roll back a half message (oneway).
        END_TRANSACTION = 37,
        /// Broker asks the producer for a transaction's state (oneway, broker to client).
        CHECK_TRANSACTION_STATE = 39,
        /// Broker tells a consumer its group changed (broker to client).
        NOTIFY_CONSUMER_IDS_CHANGED = 40,
        /// Topic route from a name server.
        GET_ROUTEINFO_BY_TOPIC = 105,
        /// Cluster info from a name server.
        GET_BROKER_CLUSTER_INFO = 106,
        /// Reset a consumer's offsets (broker to client).
        RESET_CONSUMER_CLIENT_OFFSET = 220,
        /// Consumer status (broker to client).
        GET_CONSUMER_STATUS_FROM_CLIENT = 221,
        /// Consumer running info (broker to client).
        GET_CONSUMER_RUNNING_INFO = 307,
        /// Consume a message directly (broker to client).
        CONSUME_MESSAGE_DIRECTLY = 309,
        /// Send with the V2 (short names) header: the Java default.
        SEND_MESSAGE_V2 = 310,
        /// Send a batch (V2 header, batch body).
        SEND_BATCH_MESSAGE = 320,
        /// Reply message, V1 header.
        SEND_REPLY_MESSAGE = 324,
        /// Reply message, V2 header.
        SEND_REPLY_MESSAGE_V2 = 325,
        /// Push a reply to a client (broker to client).
        PUSH_REPLY_MESSAGE_TO_CLIENT = 326,
        /// Recall (withdraw) a timer message not yet delivered (5.x).
        RECALL_MESSAGE = 370,
    }
}

named_codes! {
    /// A response code (`ResponseCode.java` / `RemotingSysResponseCode.java`). Unknown values are kept.
    ///
    /// ```
    /// use rmq_common::ResponseCode;
    /// assert_eq!(ResponseCode::TOPIC_NOT_EXIST.value(), 17);
    /// assert_eq!(format!("{}", ResponseCode::SYSTEM_BUSY), "SYSTEM_BUSY(2)");
    /// ```
    ResponseCode(i32) {
        /// Success.
        SUCCESS = 0,
        /// Generic server error.
        SYSTEM_ERROR = 1,
        /// Server overloaded (page cache busy, thread pool full...).
        SYSTEM_BUSY = 2,
        /// The receiver has no processor for the request code.
        REQUEST_CODE_NOT_SUPPORTED = 3,
        /// Transaction failed.
        TRANSACTION_FAILED = 4,
        /// Stored, but the flush to disk timed out.
        FLUSH_DISK_TIMEOUT = 10,
        /// Stored, but no slave is available.
        SLAVE_NOT_AVAILABLE = 11,
        /// Stored, but the slave flush timed out.
        FLUSH_SLAVE_TIMEOUT = 12,
        /// The message is illegal (size, properties...).
        MESSAGE_ILLEGAL = 13,
        /// Service not available (disk full, slave, shutting down).
        SERVICE_NOT_AVAILABLE = 14,
        /// Version not supported.
        VERSION_NOT_SUPPORTED = 15,
        /// No permission (topic or broker not writable).
        NO_PERMISSION = 16,
        /// The topic does not exist.
        TOPIC_NOT_EXIST = 17,
        /// The topic exists already.
        TOPIC_EXIST_ALREADY = 18,
        /// Pull: nothing found.
        PULL_NOT_FOUND = 19,
        /// Pull: retry immediately.
        PULL_RETRY_IMMEDIATELY = 20,
        /// Pull: offset moved.
        PULL_OFFSET_MOVED = 21,
        /// Query: nothing found.
        QUERY_NOT_FOUND = 22,
        /// Invalid parameter (5.x).
        INVALID_PARAMETER = 29,
        /// No buyer id.
        NO_BUYER_ID = 204,
        /// Not in current unit.
        NOT_IN_CURRENT_UNIT = 205,
        /// Consumer not online.
        CONSUMER_NOT_ONLINE = 206,
        /// Flow control.
        FLOW_CONTROL = 215,
        /// Not leader for queue.
        NOT_LEADER_FOR_QUEUE = 501,
        /// The operation is not allowed in this state (an `END_TRANSACTION` past its time, a
        /// recall with a bad handle or too late).
        ILLEGAL_OPERATION = 604,
        /// Server is shutting down; reconnect and resend (5.2.0+).
        GO_AWAY = 1500,
    }
}

impl ResponseCode {
    /// The four codes that mean the broker **stored** the message (`processSendResponse`).
    #[must_use]
    pub const fn is_stored(self) -> bool {
        matches!(self.0, 0 | 10 | 11 | 12)
    }
}

named_codes! {
    /// The language of the peer (`LanguageCode.java`): a byte in ROCKETMQ headers, an enum name in JSON.
    ///
    /// ```
    /// use rmq_common::LanguageCode;
    /// assert_eq!(LanguageCode::from_name("RUST"), Some(LanguageCode::RUST));
    /// assert_eq!(LanguageCode::JAVA.name(), Some("JAVA"));
    /// ```
    LanguageCode(u8) {
        /// Java.
        JAVA = 0,
        /// C++.
        CPP = 1,
        /// .NET.
        DOTNET = 2,
        /// Python.
        PYTHON = 3,
        /// Delphi.
        DELPHI = 4,
        /// Erlang.
        ERLANG = 5,
        /// Ruby.
        RUBY = 6,
        /// Other.
        OTHER = 7,
        /// HTTP.
        HTTP = 8,
        /// Go.
        GO = 9,
        /// PHP.
        PHP = 10,
        /// OMS.
        OMS = 11,
        /// Rust (brokers 4.9.4+).
        RUST = 12,
        /// Node.js (5.3.2+).
        NODE_JS = 13,
    }
}

impl LanguageCode {
    /// Parses a Java enum name (`"JAVA"`, `"RUST"`, ...). Unknown names give `None`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        (0u8..=13).map(Self).find(|c| c.name() == Some(name))
    }
}

impl Default for LanguageCode {
    fn default() -> Self {
        Self::JAVA
    }
}

/// `MQVersion.Version` ordinal for `M.m.p` (4.x and 5.x): `213 + 200·(M−4) + 20·m + 2·p`.
///
/// ```
/// assert_eq!(rmq_common::code::mq_version(4, 9, 4), 401);
/// assert_eq!(rmq_common::code::mq_version(5, 3, 3), 479);
/// ```
#[must_use]
pub const fn mq_version(major: i32, minor: i32, patch: i32) -> i32 {
    213 + 200 * (major - 4) + 20 * minor + 2 * patch
}

/// The version this client advertises: `V4_9_4` (401). Name servers then answer routes in
/// standard JSON, and no 5.2+ server answers `GO_AWAY` to it (thresholds 441 / 475).
pub const CLIENT_VERSION: i32 = mq_version(4, 9, 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_are_kept() {
        let c = ResponseCode::from(12345);
        assert_eq!(c.value(), 12345);
        assert_eq!(c.name(), None);
        assert_eq!(format!("{c:?}"), "ResponseCode(12345)");
    }

    #[test]
    fn language_names_round_trip() {
        for b in 0u8..=13 {
            let c = LanguageCode(b);
            let name = c.name().expect("named");
            assert_eq!(LanguageCode::from_name(name), Some(c));
        }
        assert_eq!(LanguageCode::from_name("COBOL"), None);
    }

    #[test]
    fn versions_match_java_ordinals() {
        assert_eq!(mq_version(4, 0, 0), 213);
        assert_eq!(mq_version(4, 5, 2), 317);
        assert_eq!(mq_version(5, 1, 4), 441);
        assert_eq!(mq_version(5, 3, 1), 475);
        assert_eq!(CLIENT_VERSION, 401);
    }

    #[test]
    fn stored_codes() {
        for c in [0, 10, 11, 12] {
            assert!(ResponseCode(c).is_stored());
        }
        for c in [1, 2, 14, 17] {
            assert!(!ResponseCode(c).is_stored());
        }
    }
}
