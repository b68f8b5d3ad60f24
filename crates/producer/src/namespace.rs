//! A producer's namespace (Java `ClientConfig.namespace`, `DefaultMQProducer.setNamespace`):
//! topics and the group are wrapped on the wire (`ns%name`, see [`rmq_common::namespace`]) and
//! unwrapped in what the user sees.
//!
//! As Java 5: the group is wrapped once at start (`DefaultMQProducer.start`), so the heartbeat,
//! `UNREGISTER_CLIENT`, `END_TRANSACTION`'s `producerGroup` and the half message's `PGROUP` all
//! carry `ns%group`; a message's topic is wrapped for the wire (`withNamespace`), and the
//! property `INSTANCE_ID` set to the namespace (`sendKernelImpl`); a target queue is wrapped
//! (`queueWithNamespace`); a selector sees the topic's queues and the message unwrapped
//! (`sendSelectImpl`); results name the plain topic (`processSendResponse`), and so do errors;
//! a checked-back message's topic is unwrapped before the listener sees it
//! (`ClientRemotingProcessor.checkTransactionState`). The user's message is never changed but
//! for its `UNIQ_KEY` and `INSTANCE_ID`.

use std::borrow::Cow;

use bytestring::ByteString;
use rmq_common::namespace::{unwrap, wrap};
use rmq_common::{property, Message, MessageQueue};
use rmq_nameserver_client::NameServerError;

use crate::config::{ConfigError, ProducerConfig};
use crate::error::ErrorKind;
use crate::kernel::Outgoing;
use crate::retry::Outcome;
use crate::select::QueueSelector;

/// The namespace of `cfg`, `None` when unset or empty.
pub(crate) fn of(cfg: &ProducerConfig) -> Option<&str> {
    cfg.namespace.as_deref().filter(|ns| !ns.is_empty())
}

/// Checks the namespace and the group it wraps (Java checks the wrapped group).
pub(crate) fn check(cfg: &ProducerConfig) -> Result<(), ConfigError> {
    let Some(ns) = of(cfg) else { return Ok(()) };
    if !rmq_common::namespace::is_valid_namespace(ns) {
        return Err(ConfigError::Invalid(
            "namespace may only contain letters, digits, '_', '-' and '|'",
        ));
    }
    rmq_common::validate::validate_group(&wrap(Some(ns), &cfg.group)).map_err(ConfigError::Group)
}

/// `cfg` as a running producer uses it: the group in the namespace (`DefaultMQProducer.start`).
pub(crate) fn wire_config(mut cfg: ProducerConfig) -> ProducerConfig {
    if let Cow::Owned(group) = wrap(of(&cfg), &cfg.group) {
        tracing::debug!(namespace = ?cfg.namespace, group, "producer group in its namespace");
        cfg.group = group;
    }
    cfg
}

/// Puts a prepared message in the namespace: wire topic wrapped, `INSTANCE_ID` property set
/// (unless the message has one).
pub(crate) fn apply(out: &mut Outgoing, ns: Option<&str>) {
    let Some(ns) = ns else { return };
    if let Cow::Owned(topic) = wrap(Some(ns), out.topic()) {
        out.topic_bytes = ByteString::from(topic);
    }
    let key = format!("{}\u{1}", property::INSTANCE_ID);
    let has = out.properties.starts_with(&key) || out.properties.contains(&format!("\u{2}{key}"));
    if !has {
        // The encoded properties end with their separator (or are empty).
        let mut props = String::with_capacity(out.properties.len() + key.len() + ns.len() + 1);
        props.push_str(&out.properties);
        props.push_str(&key);
        props.push_str(ns);
        props.push('\u{2}');
        out.properties = ByteString::from(props);
    }
}

/// A target queue in the namespace (`queueWithNamespace`).
pub(crate) fn queue_in(ns: Option<&str>, queue: &MessageQueue) -> MessageQueue {
    let mut q = queue.clone();
    if let Cow::Owned(topic) = wrap(ns, &queue.topic) {
        q.topic = topic;
    }
    q
}

/// Lets `selector` pick among `queues` (the route's, wrapped) as it would without a namespace:
/// it sees the queues and the message with their plain topic.
pub(crate) fn select(
    ns: Option<&str>,
    selector: &dyn QueueSelector,
    queues: &[MessageQueue],
    msg: &Message,
) -> Option<usize> {
    if ns.is_none() {
        return selector.select(queues, msg);
    }
    let plain: Vec<MessageQueue> = queues.iter().map(|q| queue_out(ns, q.clone())).collect();
    selector.select(&plain, msg)
}

/// A queue out of the namespace.
pub(crate) fn queue_out(ns: Option<&str>, mut queue: MessageQueue) -> MessageQueue {
    if let Cow::Owned(topic) = unwrap(ns, &queue.topic) {
        queue.topic = topic;
    }
    queue
}

/// A topic out of the namespace, in place.
fn topic_out(ns: Option<&str>, topic: &mut String) {
    if let Cow::Owned(plain) = unwrap(ns, topic) {
        *topic = plain;
    }
}

/// A send's outcome out of the namespace, in place (an outcome is ~190 bytes: each move by
/// value is a copy, issue 13): the result's queue and the topics errors name.
pub(crate) fn outcome_out(ns: Option<&str>, outcome: &mut Outcome) {
    if ns.is_none() {
        return;
    }
    match outcome {
        Ok(Some(result)) => topic_out(ns, &mut result.queue.topic),
        Ok(None) => {}
        Err(kind) => error_out(ns, kind),
    }
}

/// The topics an error names, out of the namespace.
pub(crate) fn error_out(ns: Option<&str>, kind: &mut ErrorKind) {
    match kind {
        ErrorKind::NoRoute { topic, source } => {
            topic_out(ns, topic);
            if let Some(source) = source {
                name_server_error_out(ns, source);
            }
        }
        ErrorKind::NameServer(source) => name_server_error_out(ns, source),
        ErrorKind::QueueUnavailable { topic, queue } => {
            topic_out(ns, topic);
            // `queue` may be a queue's Display, naming the wire topic.
            if let Some(ns) = ns {
                let wire = format!("topic={ns}%");
                if queue.contains(&wire) {
                    *queue = queue.replacen(&wire, "topic=", 1);
                }
            }
        }
        ErrorKind::Timeout {
            last: Some(last), ..
        }
        | ErrorKind::RetriesExhausted { last, .. } => error_out(ns, last),
        _ => {}
    }
}

fn name_server_error_out(ns: Option<&str>, err: &mut NameServerError) {
    if let NameServerError::TopicNotExist { topic, .. } = err {
        topic_out(ns, topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send_result::{SendResult, SendStatus};

    fn out(topic: &str, props: &str) -> Outgoing {
        Outgoing {
            code: rmq_common::RequestCode::SEND_MESSAGE_V2,
            body: bytes::Bytes::new(),
            sys_flag: 0,
            flag: 0,
            topic_bytes: ByteString::from(topic),
            properties: ByteString::from(props),
            msg_id: String::new(),
            born_ms: 0,
            reconsume_times: 0,
            max_reconsume_times: None,
        }
    }

    #[test]
    fn prepared_messages_go_on_the_wire_in_the_namespace() {
        // (namespace, topic, properties) -> (wire topic, wire properties)
        let cases = [
            (None, "T", "A\u{1}1\u{2}", "T", "A\u{1}1\u{2}"),
            (
                Some("ns"),
                "T",
                "A\u{1}1\u{2}",
                "ns%T",
                "A\u{1}1\u{2}INSTANCE_ID\u{1}ns\u{2}",
            ),
            (Some("ns"), "T", "", "ns%T", "INSTANCE_ID\u{1}ns\u{2}"),
            (Some("ns"), "ns%T", "", "ns%T", "INSTANCE_ID\u{1}ns\u{2}"),
            (
                Some("ns"),
                "%RETRY%g",
                "",
                "%RETRY%ns%g",
                "INSTANCE_ID\u{1}ns\u{2}",
            ),
            (
                Some("ns"),
                "TBW102",
                "",
                "TBW102",
                "INSTANCE_ID\u{1}ns\u{2}",
            ),
            // an INSTANCE_ID of the message's own is kept
            (
                Some("ns"),
                "T",
                "INSTANCE_ID\u{1}x\u{2}",
                "ns%T",
                "INSTANCE_ID\u{1}x\u{2}",
            ),
        ];
        for (ns, topic, props, want_topic, want_props) in cases {
            let mut o = out(topic, props);
            apply(&mut o, ns);
            assert_eq!(o.topic(), want_topic, "{ns:?} {topic}");
            assert_eq!(&*o.properties, want_props, "{ns:?} {topic}");
        }
    }

    #[test]
    fn results_and_errors_name_the_plain_topic() {
        let ns = Some("ns");
        let wire = MessageQueue::new("ns%T", "b", 1);
        let result = SendResult {
            status: SendStatus::SendOk,
            msg_id: String::new(),
            offset_msg_id: String::new(),
            queue: wire.clone(),
            queue_offset: 0,
            transaction_id: None,
            region_id: "".into(),
            trace_on: false,
            recall_handle: None,
        };
        let mut outcome = Ok(Some(result));
        outcome_out(ns, &mut outcome);
        let Ok(Some(r)) = outcome else {
            panic!("a result")
        };
        assert_eq!(r.queue, MessageQueue::new("T", "b", 1));
        let nested = ErrorKind::RetriesExhausted {
            attempts: 1,
            brokers: vec![],
            last: Box::new(ErrorKind::NoRoute {
                topic: "ns%T".into(),
                source: Some(NameServerError::TopicNotExist {
                    topic: "ns%T".into(),
                    remark: None,
                }),
            }),
            maybe_stored: false,
        };
        let mut outcome = Err(nested);
        outcome_out(ns, &mut outcome);
        let Err(ErrorKind::RetriesExhausted { last, .. }) = outcome else {
            panic!("the error")
        };
        let ErrorKind::NoRoute { topic, source } = *last else {
            panic!("no route")
        };
        assert_eq!(topic, "T");
        assert!(
            matches!(source, Some(NameServerError::TopicNotExist { topic, .. }) if topic == "T")
        );
        let mut q = ErrorKind::QueueUnavailable {
            topic: "ns%T".into(),
            queue: wire.to_string(),
        };
        error_out(ns, &mut q);
        assert!(
            matches!(&q, ErrorKind::QueueUnavailable { topic, queue } if topic == "T" && queue.contains("topic=T,")),
            "{q:?}"
        );
        // Another namespace's topic is left alone.
        let mut other = ErrorKind::NoRoute {
            topic: "x%T".into(),
            source: None,
        };
        error_out(ns, &mut other);
        assert!(matches!(&other, ErrorKind::NoRoute { topic, .. } if topic == "x%T"));
    }

    #[test]
    fn target_queues_are_wrapped_and_selectors_see_plain_ones() {
        let ns = Some("ns");
        assert_eq!(
            queue_in(ns, &MessageQueue::new("T", "b", 0)),
            MessageQueue::new("ns%T", "b", 0)
        );
        assert_eq!(
            queue_in(None, &MessageQueue::new("T", "b", 0)),
            MessageQueue::new("T", "b", 0)
        );
        let wire = [
            MessageQueue::new("ns%T", "a", 0),
            MessageQueue::new("ns%T", "b", 1),
        ];
        let seen = std::sync::Mutex::new(Vec::new());
        let selector = |qs: &[MessageQueue], m: &Message| {
            seen.lock()
                .expect("lock")
                .extend(qs.iter().map(|q| q.topic.clone()));
            assert_eq!(m.topic(), "T");
            Some(1)
        };
        let pick = select(ns, &selector, &wire, &Message::new("T", "x"));
        assert_eq!(pick, Some(1));
        assert_eq!(*seen.lock().expect("lock"), ["T", "T"]);
    }
}
