//! The checks a single message passes before anything is sent: Java's `Validators.checkMessage`
//! ([`validate_message`]) and, for a timer message, the timer rules of
//! [`rmq_common::timer`] against the producer's `timer_max_delay` and the wall clock.
//! Messages of a batch are checked with [`validate_message`] alone: a timer property there is a
//! batch error ([`BatchError::TimerNotSupported`](rmq_common::BatchError::TimerNotSupported)).

use std::time::{SystemTime, UNIX_EPOCH};

use rmq_common::timer::validate_timer;
use rmq_common::validate::{validate_message, ValidationError};
use rmq_common::Message;

use crate::config::ProducerConfig;

/// Checks one message to be sent on its own.
pub(crate) fn check_message(msg: &Message, cfg: &ProducerConfig) -> Result<(), ValidationError> {
    validate_message(msg, cfg.max_message_size)?;
    let max_ms = u64::try_from(cfg.timer_max_delay.as_millis()).unwrap_or(u64::MAX);
    if let Some(deliver_ms) = validate_timer(msg, wall_ms(), max_ms)? {
        tracing::trace!(topic = msg.topic(), deliver_ms, "timer message");
    }
    Ok(())
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
}
