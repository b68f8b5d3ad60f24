//! Request/reply (Java 4.6+ `DefaultMQProducer.request`, `DefaultMQProducerImpl.request` /
//! `prepareSendRequest`, `RequestResponseFuture`): a requester sends a message and waits for the
//! reply a replier sends back through the broker.
//!
//! The requester ([`Producer::request`]) registers a correlation id in its client instance's
//! reply table ([`table`]), sets `CORRELATION_ID`, `REPLY_TO_CLIENT` (its client id) and `TTL`
//! (the deadline in ms) on the message, makes sure the brokers know it (the first request to a
//! topic whose route is not cached looks the route up and heartbeats every broker, as Java), then
//! sends the message as any send and waits, within the same deadline, for the broker's
//! `PUSH_REPLY_MESSAGE_TO_CLIENT` ([`processor`]) carrying that id. The replier
//! ([`Producer::send_reply`]) builds the reply from the request it got
//! ([`rmq_common::reply::create_reply_message`]) and sends it: a `MSG_TYPE=reply` message goes
//! out as `SEND_REPLY_MESSAGE_V2`, and the broker pushes it to the client named in
//! `REPLY_TO_CLIENT`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rmq_common::reply::create_reply_message;
use rmq_common::stored::MessageExt;
use rmq_common::validate::validate_message;
use rmq_common::{property, Message};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{ErrorKind, SendError, Unsent};
use crate::instance::heartbeat;
use crate::options::SendOptions;
use crate::producer::Inner;
use crate::retry;
use crate::send::timeout_of;
use crate::send_result::SendResult;
use crate::transport::Transport;
use crate::Producer;

mod pending;
mod processor;
mod table;

pub use pending::PendingReply;
pub(crate) use processor::ReplyProcessor;
pub(crate) use table::ReplyTable;

impl Producer {
    /// Sends `msg` as a request and waits for its reply, all within `timeout` (Java's
    /// `request(msg, timeout)`). The same as [`Producer::request_with`] with
    /// `SendOptions::new().timeout(timeout)`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rmq_common::Message;
    /// use rmq_producer::Producer;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let producer = Producer::builder("price_client").name_server("127.0.0.1:9876").start().await?;
    /// let reply = producer
    ///     .request(Message::new("PriceRequests", "SKU-1"), Duration::from_secs(3))
    ///     .await?;
    /// println!("{}", String::from_utf8_lossy(reply.message.body()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Producer::request_with`].
    pub async fn request(&self, msg: Message, timeout: Duration) -> Result<MessageExt, SendError> {
        self.request_with(msg, SendOptions::new().timeout(timeout))
            .await
    }

    /// Sends `msg` as a request with `options` (target queue or selector; the deadline, which
    /// covers the send and the wait for the reply, is the options' timeout or the producer's
    /// send timeout) and returns the reply as the broker pushed it: topic
    /// (`{cluster}_REPLY_TOPIC`), body (decompressed), properties (`CORRELATION_ID`,
    /// `ARRIVE_TIME`, ...), hosts and times (Java returns the same fields as a `Message`).
    /// [`Producer::send_request`] and [`PendingReply::reply`] in one call.
    ///
    /// # Errors
    /// As [`Producer::send_request`], then as [`PendingReply::reply`].
    pub async fn request_with(
        &self,
        msg: Message,
        options: SendOptions,
    ) -> Result<MessageExt, SendError> {
        self.send_request(msg, options).await?.reply().await
    }

    /// Sends `msg` as a request and returns once its broker stored it, with the
    /// [`PendingReply`] that waits for the reply (Java's `request(msg, callback, timeout)`:
    /// spawn a task on `reply()` for a callback). The deadline of `options` (or the producer's
    /// send timeout) covers both.
    ///
    /// `CORRELATION_ID`, `REPLY_TO_CLIENT` (this client's id) and `TTL` (the deadline in ms)
    /// are set on `msg`, replacing any, as Java's `prepareSendRequest` does; a message handed
    /// back by an error carries them. The first request to a topic whose route is not cached
    /// also heartbeats every broker first (as Java), so that the broker a reply reaches knows
    /// this client.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rmq_common::Message;
    /// use rmq_producer::{Producer, SendOptions};
    ///
    /// # async fn ask(producer: &Producer) -> Result<(), rmq_producer::SendError> {
    /// let options = SendOptions::new().timeout(Duration::from_secs(3));
    /// let pending = producer.send_request(Message::new("PriceRequests", "SKU-1"), options).await?;
    /// println!("stored as {}; waiting", pending.send_result().msg_id);
    /// let reply = pending.reply().await?;
    /// # drop(reply); Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Those of [`Producer::send_with`] ([`SendError::maybe_stored`] says whether the request
    /// may have been stored; no reply is waited for then).
    pub async fn send_request(
        &self,
        mut msg: Message,
        options: SendOptions,
    ) -> Result<PendingReply, SendError> {
        let inner = self.inner();
        let Some(token) = inner.begin() else {
            return Err(SendError::new(ErrorKind::NotRunning, Unsent::one(msg)));
        };
        if let Err(source) = validate_message(&msg, inner.cfg().max_message_size) {
            return Err(SendError::new(
                ErrorKind::InvalidMessage(source),
                Unsent::one(msg),
            ));
        }
        let started = Instant::now();
        let timeout = timeout_of(&inner.core, &options);
        let waiting = inner.instance().replies.register();
        prepare_request(&mut msg, waiting.id(), self.client_id(), timeout);
        self.assign_msg_id(&mut msg);
        let span =
            tracing::info_span!("request", topic = msg.topic(), correlation_id = %waiting.id());
        let sent = async {
            register_first(inner, msg.topic(), started, timeout).await;
            let left = timeout.saturating_sub(started.elapsed());
            let request = msg.clone();
            let sent = self.send_with(msg, options.timeout(left)).await?;
            tracing::debug!(msg_id = %sent.msg_id, queue = %sent.queue, "request stored; waiting for the reply");
            Ok((sent, request))
        }
        .instrument(span.clone())
        .await;
        let (sent, request) = sent?;
        Ok(PendingReply {
            inner: Arc::clone(inner),
            waiting,
            sent,
            started,
            timeout,
            request,
            span,
            _token: token,
        })
    }

    /// Replies to `request` (a request message as a replier received it, stored by a broker)
    /// with `body`: builds the reply (Java's `MessageUtil.createReplyMessage`: topic
    /// `{CLUSTER}_REPLY_TOPIC`, `MSG_TYPE=reply`, `CORRELATION_ID`, `REPLY_TO_CLIENT` and `TTL`
    /// copied) and sends it as [`Producer::send_with`] does, with `SEND_REPLY_MESSAGE_V2`. The
    /// broker that takes it pushes it to the requester; it answers `SYSTEM_ERROR` (retried on
    /// another broker) when the requester has no connection to it.
    ///
    /// ```no_run
    /// use rmq_common::stored::MessageExt;
    /// use rmq_producer::{Producer, SendOptions};
    ///
    /// # async fn answer(replier: &Producer, request: &MessageExt) -> Result<(), rmq_producer::SendError> {
    /// let price = "42.00"; // computed from request.message.body()
    /// replier.send_reply(&request.message, price, SendOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::CannotReply`] before anything is sent when `request` lacks `CLUSTER`,
    /// `REPLY_TO_CLIENT` or `CORRELATION_ID`; otherwise as [`Producer::send_with`].
    pub async fn send_reply(
        &self,
        request: &Message,
        body: impl Into<Bytes>,
        options: SendOptions,
    ) -> Result<SendResult, SendError> {
        match create_reply_message(request, body) {
            Ok(reply) => self.send_with(reply, options).await,
            Err(e) => Err(SendError::bare(ErrorKind::CannotReply(e))),
        }
    }
}

/// Java's `prepareSendRequest`: the properties that make `msg` a request of `client_id` waiting
/// `timeout` under `correlation_id`.
pub(crate) fn prepare_request(
    msg: &mut Message,
    correlation_id: &str,
    client_id: &str,
    timeout: Duration,
) {
    let props = msg.properties_mut();
    props.insert(property::CORRELATION_ID, correlation_id);
    props.insert(property::REPLY_TO_CLIENT, client_id);
    props.insert(property::TTL, timeout.as_millis().to_string());
}

/// The first request to a topic whose route is not cached: look the route up and heartbeat
/// every broker now (Java's `prepareSendRequest`), so that the broker a reply reaches knows this
/// client. Bounded by half of what is left of the deadline; failures are left to the send.
async fn register_first(inner: &Arc<Inner>, topic: &str, started: Instant, timeout: Duration) {
    if inner.core.transport.cached_route(topic, started).is_some() {
        return;
    }
    if let Err(e) = retry::publish_info(&inner.core, topic, started, timeout).await {
        tracing::debug!(error = %e, "request: route lookup failed (the send will tell)");
        return;
    }
    let bound = timeout.saturating_sub(started.elapsed()) / 2;
    // The reply comes through whichever broker the replier picks for `{cluster}_REPLY_TOPIC`,
    // not necessarily one of this topic's: heartbeat the cluster's brokers too (the default
    // topic's route, which Java's publish table holds from start).
    if inner.cfg().proxy.is_none() {
        crate::transaction::discover_brokers(
            Arc::clone(inner.instance()),
            inner.cfg().name_server.default_topic.clone(),
            bound,
        )
        .await;
    }
    let beat = heartbeat::heartbeat_now(inner.instance());
    if tokio::time::timeout(bound, beat).await.is_err() {
        tracing::debug!(
            ?bound,
            "request: heartbeat to the brokers still in flight; sending anyway"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_request_sets_java_properties_and_replaces_old_ones() {
        let mut msg = Message::new("T", "ask").with_tags("TagA");
        msg.properties_mut()
            .insert(property::CORRELATION_ID, "stale");
        prepare_request(
            &mut msg,
            "id-1",
            "10.0.0.1@42#1",
            Duration::from_millis(2500),
        );
        assert_eq!(msg.property(property::CORRELATION_ID), Some("id-1"));
        assert_eq!(
            msg.property(property::REPLY_TO_CLIENT),
            Some("10.0.0.1@42#1")
        );
        assert_eq!(msg.property(property::TTL), Some("2500"));
        assert_eq!(msg.tags(), Some("TagA"));
        assert!(
            !rmq_common::reply::is_reply(&msg),
            "a request is sent as any message"
        );
    }
}
