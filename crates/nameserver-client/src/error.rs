//! Errors of the name-server layer.

use rmq_common::ResponseCode;
use rmq_remoting::RemotingError;

/// A route body that cannot be used: neither standard JSON nor fastjson's numeric-key form, or
/// asking for more queues than the client builds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteDecodeError {
    /// The name server answered SUCCESS without a body.
    #[error("route body is empty")]
    Empty,
    /// The body does not parse as route data.
    #[error("route body is not valid route JSON: {message} (line {line}, column {column})")]
    Invalid {
        /// serde_json's description of the problem.
        message: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// A queue count above [`MAX_QUEUES_PER_BROKER`](crate::MAX_QUEUES_PER_BROKER), or a route
    /// whose queues together exceed [`MAX_QUEUES_PER_ROUTE`](crate::MAX_QUEUES_PER_ROUTE) (a
    /// broken or hostile name server: Java would try to allocate them all).
    #[error("route rejected: {what} asks for {count} queues, above the limit of {max}")]
    TooManyQueues {
        /// Which count: the queue data, `orderTopicConf` item, or the whole route.
        what: String,
        /// The count asked for.
        count: i64,
        /// The limit.
        max: i64,
    },
}

impl RouteDecodeError {
    pub(crate) fn invalid(e: &serde_json::Error) -> Self {
        Self::Invalid {
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Why a route could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NameServerError {
    /// No name-server address is configured.
    #[error("no name server address configured")]
    NoNameServer,
    /// Every name server tried was refused, closed, broke the protocol, timed out, or was in
    /// its reconnect backoff window (skipped at once) within the deadline. Why the last one
    /// failed is the source, `last`: its own sources name the cause (an OS error, an
    /// undecodable frame, ...).
    #[error("every name server failed (tried {})", .tried.join(", "))]
    Unreachable {
        /// The addresses tried, in order.
        tried: Vec<String>,
        /// The error of the last attempt.
        #[source]
        last: RemotingError,
    },
    /// The name server knows no route for the topic.
    #[error("topic {topic} does not exist: {}", .remark.as_deref().unwrap_or("(no remark)"))]
    TopicNotExist {
        /// The topic asked for.
        topic: String,
        /// The name server's remark.
        remark: Option<String>,
    },
    /// The name server answered with another error code.
    #[error("name server answered {code}: {}", .remark.as_deref().unwrap_or("(no remark)"))]
    Server {
        /// The response code.
        code: ResponseCode,
        /// The name server's remark.
        remark: Option<String>,
    },
    /// The route exists but no queue is writable on a broker with a master.
    #[error("route of topic {topic} has no writable queue on a master broker")]
    NoWritableMaster {
        /// The topic.
        topic: String,
    },
    /// The route body could not be decoded.
    #[error("bad route body")]
    BadRouteBody(#[from] RouteDecodeError),
}

impl NameServerError {
    /// True when the name server said the topic does not exist.
    #[must_use]
    pub fn is_topic_not_exist(&self) -> bool {
        matches!(self, Self::TopicNotExist { .. })
    }

    /// A copy of this error, for another caller that failed for the same reason (see
    /// [`RemotingError::duplicate`]).
    ///
    /// ```
    /// use rmq_nameserver_client::NameServerError;
    /// let e = NameServerError::NoWritableMaster { topic: "T".into() };
    /// assert_eq!(e.duplicate().to_string(), e.to_string());
    /// ```
    #[must_use]
    pub fn duplicate(&self) -> Self {
        match self {
            Self::NoNameServer => Self::NoNameServer,
            Self::Unreachable { tried, last } => Self::Unreachable {
                tried: tried.clone(),
                last: last.duplicate(),
            },
            Self::TopicNotExist { topic, remark } => Self::TopicNotExist {
                topic: topic.clone(),
                remark: remark.clone(),
            },
            Self::Server { code, remark } => Self::Server {
                code: *code,
                remark: remark.clone(),
            },
            Self::NoWritableMaster { topic } => Self::NoWritableMaster {
                topic: topic.clone(),
            },
            Self::BadRouteBody(e) => Self::BadRouteBody(e.clone()),
        }
    }
}

#[allow(dead_code)]
const fn assert_send_sync<T: Send + Sync + 'static>() {}
const _: () = assert_send_sync::<NameServerError>();
const _: () = assert_send_sync::<RouteDecodeError>();
const _: () = assert_send_sync::<crate::ConfigError>();
