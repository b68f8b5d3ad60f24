//! The checks a single message passes before anything is sent: Java's `Validators.checkMessage`
//! ([`validate_message`]) and, for a timer message, the timer rules of
//! [`rmq_common::timer`] against the producer's `timer_max_delay` and the wall clock.
//! Messages of a batch are checked with [`validate_message`] alone: a timer property there is a
//! batch error ([`BatchError::TimerNotSupported`](rmq_common::BatchError::TimerNotSupported)).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use rmq_common::timer::{validate_timer, TimerRequest};
use rmq_common::validate::{validate_body, validate_message, ValidationError};
use rmq_common::Message;

use crate::config::ProducerConfig;

/// Checks one message to be sent on its own.
pub(crate) fn check_message(msg: &Message, cfg: &ProducerConfig) -> Result<(), ValidationError> {
    if topic_passed_last(msg.topic()) {
        // The topic rules depend on the topic text alone: only the body is left to check.
        validate_body(msg, cfg.max_message_size)?;
    } else {
        validate_message(msg, cfg.max_message_size)?;
        // `try_with`: nothing is remembered while the thread's locals are destroyed.
        let _ = LAST_VALID_TOPIC.try_with(|last| {
            let mut last = last.borrow_mut();
            last.clear();
            last.push_str(msg.topic());
        });
    }
    // The wall clock is read only for a timer message.
    if TimerRequest::of(msg)?.is_none() {
        return Ok(());
    }
    let max_ms = u64::try_from(cfg.timer_max_delay.as_millis()).unwrap_or(u64::MAX);
    if let Some(deliver_ms) = validate_timer(msg, wall_ms(), max_ms)? {
        tracing::trace!(topic = msg.topic(), deliver_ms, "timer message");
    }
    Ok(())
}

thread_local! {
    /// The topic of the last message that passed [`validate_message`] on this thread (empty:
    /// none; an empty topic never passes): the next message of the same topic skips the topic
    /// rules (the sends of a producer mostly go to one topic).
    static LAST_VALID_TOPIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Whether `topic` is the last topic that passed the checks on this thread.
fn topic_passed_last(topic: &str) -> bool {
    !topic.is_empty()
        && LAST_VALID_TOPIC
            .try_with(|last| last.borrow().as_str() == topic)
            .unwrap_or(false)
}

/// Milliseconds since the Unix epoch: a timer message's delivery time is on the broker's wall
/// clock.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timer_rules_apply_with_the_configured_maximum() {
        let mut cfg = ProducerConfig::new("pg");
        let now = wall_ms();
        let ok = Message::new("T", "x").with_deliver_time_ms(now + 60_000);
        assert_eq!(check_message(&ok, &cfg), Ok(()));
        let past = Message::new("T", "x").with_deliver_time_ms(now - 1);
        assert!(matches!(
            check_message(&past, &cfg),
            Err(ValidationError::TimerNotInFuture { .. })
        ));
        cfg.timer_max_delay = Duration::from_secs(30);
        assert!(matches!(
            check_message(&ok, &cfg),
            Err(ValidationError::TimerTooFar { delay_ms, max_ms: 30_000 }) if delay_ms > 30_000
        ));
        // The plain rules come first.
        let empty = Message::new("T", "").with_delay_time_ms(0);
        assert_eq!(check_message(&empty, &cfg), Err(ValidationError::EmptyBody));
    }

    #[test]
    fn a_topic_that_passed_still_checks_every_body_and_other_topics_are_checked() {
        let mut cfg = ProducerConfig::new("pg");
        cfg.max_message_size = 4;
        assert_eq!(check_message(&Message::new("T", "x"), &cfg), Ok(()));
        assert!(topic_passed_last("T"));
        // The same topic again: the body rules still apply.
        assert_eq!(
            check_message(&Message::new("T", ""), &cfg),
            Err(ValidationError::EmptyBody)
        );
        assert_eq!(
            check_message(&Message::new("T", "12345"), &cfg),
            Err(ValidationError::BodyTooLarge { size: 5, max: 4 })
        );
        // Another topic is checked in full, and does not replace the last valid one when bad.
        assert_eq!(
            check_message(&Message::new("a b", "x"), &cfg),
            Err(ValidationError::IllegalTopicChar { ch: ' ' })
        );
        assert!(topic_passed_last("T"));
        assert!(matches!(
            check_message(&Message::new("RMQ_SYS_TRANS_HALF_TOPIC", "x"), &cfg),
            Err(ValidationError::NotAllowedTopic(_))
        ));
        assert_eq!(
            check_message(&Message::new("", "x"), &cfg),
            Err(ValidationError::EmptyTopic)
        );
        assert!(!topic_passed_last(""));
        // A prefix or an extension of the valid topic is not it.
        assert!(!topic_passed_last("T "));
        assert_eq!(
            check_message(&Message::new("T ", "x"), &cfg),
            Err(ValidationError::IllegalTopicChar { ch: ' ' })
        );
        // A timer message on a valid topic still gets the timer rules.
        let past = Message::new("T", "x").with_deliver_time_ms(wall_ms() - 1);
        assert!(matches!(
            check_message(&past, &cfg),
            Err(ValidationError::TimerNotInFuture { .. })
        ));
    }
}
