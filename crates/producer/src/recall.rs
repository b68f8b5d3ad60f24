//! [`Producer::recall`]: withdraw a timer message before its time (5.x `RECALL_MESSAGE`, Java's
//! `DefaultMQProducer.recallMessage`).
//!
//! The send result of a timer message carries the broker's recall handle
//! ([`SendResult::recall_handle`](crate::SendResult::recall_handle)). Recalling checks the topic
//! and decodes the handle (typed errors, nothing sent), finds the master of the broker the
//! handle names (from the route cache, else by looking the topic's route up), and sends
//! `RECALL_MESSAGE` (`producerGroup`, `topic`, `recallHandle` as given, `bname`) within the
//! producer's send timeout. The broker answers the message id, or refuses: `ILLEGAL_OPERATION`
//! (604) for a handle of another topic or broker or one past its time (delivered already),
//! `NO_PERMISSION` when recall is off (`recallMessageEnable`, off by default on Java brokers,
//! on for rocketmq-rust), `TOPIC_NOT_EXIST`, `SERVICE_NOT_AVAILABLE` / `SLAVE_NOT_AVAILABLE`.
//! A Java broker answers success for any well-formed handle still in its time window, whether
//! or not it holds that message (the recall is a delete mark for the timer wheel).

use std::time::Duration;

use rmq_common::header::recall::{RecallMessageRequestHeader, RecallMessageResponseHeader};
use rmq_common::recall::{RecallHandle, RecallHandleError};
use rmq_common::validate::{validate_topic, ValidationError};
use rmq_common::{CommandHeader, HeaderError, RequestCode, ResponseCode};
use rmq_nameserver_client::NameServerError;
use rmq_remoting::{RemotingCommand, RemotingError};
use tokio::time::Instant;
use tracing::Instrument;

use crate::Producer;

/// Topic prefixes a recall refuses (Java: `NamespaceUtil.isRetryTopic` / `isDLQTopic`).
const REFUSED_PREFIXES: [&str; 2] = ["%RETRY%", "%DLQ%"];

/// Why a recall failed. Every variant before [`RecallError::NameServer`] is raised before
/// anything is sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecallError {
    /// The producer is shutting down or shut down.
    #[error("the producer is not running")]
    NotRunning,
    /// The topic breaks the topic rules.
    #[error("invalid topic")]
    InvalidTopic(#[source] ValidationError),
    /// Retry and dead-letter topics cannot be recalled from.
    #[error("topic {0} is not supported for recall")]
    UnsupportedTopic(String),
    /// The handle cannot be decoded.
    #[error("invalid recall handle")]
    InvalidHandle(#[source] RecallHandleError),
    /// The handle names another topic than the one given (a broker would refuse it).
    #[error("the recall handle is for topic {handle_topic}, not {topic}")]
    #[non_exhaustive]
    TopicMismatch {
        /// The topic given.
        topic: String,
        /// The topic in the handle.
        handle_topic: String,
    },
    /// The topic's route could not be looked up.
    #[error("route lookup failed")]
    NameServer(#[source] NameServerError),
    /// No master address is known for the broker the handle names.
    #[error("no master address known for broker {broker}")]
    #[non_exhaustive]
    BrokerNotFound {
        /// The broker name.
        broker: String,
    },
    /// The request could not be written, or no answer came in time (then the recall may have
    /// been done).
    #[error("recall on broker {broker} failed")]
    #[non_exhaustive]
    Transport {
        /// The broker name.
        broker: String,
        /// The cause.
        #[source]
        source: RemotingError,
    },
    /// The broker refused the recall.
    #[error("broker {broker} ({addr}) refused the recall with {code}{}", remark_text(remark.as_deref()))]
    #[non_exhaustive]
    Broker {
        /// The response code.
        code: ResponseCode,
        /// The broker's remark.
        remark: Option<String>,
        /// The broker name.
        broker: String,
        /// The broker address.
        addr: String,
    },
    /// The broker answered success without a message id.
    #[error("broker {broker} answered the recall without a message id")]
    #[non_exhaustive]
    InvalidResponse {
        /// The broker name.
        broker: String,
        /// The cause.
        #[source]
        source: HeaderError,
    },
}

// Every public error must cross threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RecallError>();
};

fn remark_text(remark: Option<&str>) -> String {
    match remark.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!(": {r}"),
        None => String::new(),
    }
}

impl RecallError {
    /// The broker's response code, when a broker refused.
    #[must_use]
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Self::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when no answer came in time after the request was written: the message may have
    /// been recalled.
    #[must_use]
    pub fn maybe_recalled(&self) -> bool {
        matches!(self, Self::Transport { source, .. } if source.maybe_delivered())
    }
}

/// The checks made before anything is sent: the topic, the handle, and that they agree.
fn check(topic: &str, handle: &str) -> Result<RecallHandle, RecallError> {
    validate_topic(topic).map_err(RecallError::InvalidTopic)?;
    if REFUSED_PREFIXES.iter().any(|p| topic.starts_with(p)) {
        return Err(RecallError::UnsupportedTopic(topic.to_owned()));
    }
    let decoded = RecallHandle::decode(handle).map_err(RecallError::InvalidHandle)?;
    if decoded.topic != topic {
        return Err(RecallError::TopicMismatch {
            topic: topic.to_owned(),
            handle_topic: decoded.topic,
        });
    }
    Ok(decoded)
}

impl Producer {
    /// Recalls (withdraws) a timer message before its time: `handle` is the
    /// [`recall_handle`](crate::SendResult::recall_handle) of its send result, `topic` the
    /// topic it was sent to. Returns the recalled message's id (its `UNIQ_KEY`). Bounded by
    /// the producer's send timeout. The request goes to the master of the broker the handle
    /// names. Brokers refuse with `ILLEGAL_OPERATION` (604) a handle of another broker or one
    /// past its time (the message was delivered), with `NO_PERMISSION` when recall is off
    /// (`recallMessageEnable`: off by default on Java brokers). A Java broker answers success for
    /// any well-formed handle still in its time window, whether or not it holds that message.
    ///
    /// ```no_run
    /// # use rmq_common::Message;
    /// # use rmq_producer::Producer;
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let producer = Producer::builder("pg").name_server("127.0.0.1:9876").start().await?;
    /// let sent = producer.send(Message::new("Orders", "remind").with_delay_time_sec(600)).await?;
    /// if let Some(handle) = &sent.recall_handle {
    ///     let id = producer.recall("Orders", handle).await?;
    ///     assert_eq!(id, sent.msg_id);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A [`RecallError`]: a bad topic or handle before anything is sent, else the route
    /// lookup, the transport or the broker's refusal.
    pub async fn recall(&self, topic: &str, handle: &str) -> Result<String, RecallError> {
        let inner = self.inner();
        let Some(_token) = inner.begin() else {
            return Err(RecallError::NotRunning);
        };
        // The handle names the topic as stored: in the producer's namespace (Java
        // `withNamespace(topic)`).
        let wire = rmq_common::namespace::wrap(crate::namespace::of(inner.cfg()), topic);
        let topic = wire.as_ref();
        let decoded = check(topic, handle)?;
        let broker = decoded.broker_name.clone();
        let span = tracing::info_span!("recall", topic, broker = %broker, msg_id = %decoded.msg_id);
        let outcome = self
            .recall_on(topic, handle, &broker)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        match &outcome {
            Ok(id) => tracing::debug!(msg_id = %id, "recalled"),
            Err(e) => tracing::debug!(error = %e, "recall failed"),
        }
        outcome
    }

    async fn recall_on(
        &self,
        topic: &str,
        handle: &str,
        broker: &str,
    ) -> Result<String, RecallError> {
        let inner = self.inner();
        let cfg = inner.cfg();
        if let Some(grpc) = inner.core.transport.grpc() {
            return grpc.recall(topic, handle, broker, cfg.send_timeout).await;
        }
        let instance = inner.instance();
        let started = Instant::now();
        let left = |timeout: Duration| timeout.saturating_sub(started.elapsed());
        let addr = match instance.routes.master_addr(broker) {
            Some(addr) => addr,
            None => {
                // Java's tryToFindTopicPublishInfo: the topic's route names the broker.
                instance
                    .routes
                    .publish_info(topic, false, left(cfg.send_timeout))
                    .await
                    .map_err(RecallError::NameServer)?;
                instance
                    .routes
                    .master_addr(broker)
                    .ok_or_else(|| RecallError::BrokerNotFound {
                        broker: broker.to_owned(),
                    })?
            }
        };
        let header = RecallMessageRequestHeader {
            producer_group: Some(cfg.group.clone()),
            topic: topic.to_owned(),
            recall_handle: handle.to_owned(),
            broker_name: Some(broker.to_owned()),
        };
        let mut req = RemotingCommand::request(RequestCode::RECALL_MESSAGE, header.to_ext_fields())
            .with_serialize_type(cfg.serialize_type);
        req.language = cfg.language;
        let resp = instance
            .remoting
            .invoke_sync(&addr, req, left(cfg.send_timeout))
            .await
            .map_err(|source| RecallError::Transport {
                broker: broker.to_owned(),
                source,
            })?;
        let code = resp.response_code();
        if code != ResponseCode::SUCCESS {
            return Err(RecallError::Broker {
                code,
                remark: resp.remark,
                broker: broker.to_owned(),
                addr,
            });
        }
        RecallMessageResponseHeader::read_from(&resp.ext_fields)
            .map(|h| h.msg_id)
            .map_err(|source| RecallError::InvalidResponse {
                broker: broker.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(topic: &str) -> String {
        RecallHandle {
            topic: topic.into(),
            broker_name: "broker-a".into(),
            deliver_time_ms: 1_700_000_000_000,
            msg_id: "ID1".into(),
        }
        .encode()
    }

    #[test]
    fn checks_before_sending() {
        let good = handle("Orders");
        let cases: Vec<(&str, String, &str)> = vec![
            ("Orders", good.clone(), "ok"),
            ("", good.clone(), "InvalidTopic"),
            ("bad topic", good.clone(), "InvalidTopic"),
            ("%RETRY%g", handle("%RETRY%g"), "UnsupportedTopic"),
            ("%DLQ%g", handle("%DLQ%g"), "UnsupportedTopic"),
            ("Orders", "???".into(), "InvalidHandle"),
            ("Orders", "djE".into(), "InvalidHandle"), // "v1" alone
            ("Other", good, "TopicMismatch"),
        ];
        for (topic, h, want) in cases {
            let got = match check(topic, &h) {
                Ok(d) => {
                    assert_eq!(
                        (d.broker_name.as_str(), d.msg_id.as_str()),
                        ("broker-a", "ID1")
                    );
                    "ok"
                }
                Err(RecallError::InvalidTopic(_)) => "InvalidTopic",
                Err(RecallError::UnsupportedTopic(_)) => "UnsupportedTopic",
                Err(RecallError::InvalidHandle(_)) => "InvalidHandle",
                Err(RecallError::TopicMismatch { .. }) => "TopicMismatch",
                Err(other) => panic!("{topic}: {other}"),
            };
            assert_eq!(got, want, "{topic} {h}");
        }
    }
}
