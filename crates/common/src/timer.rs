//! Timer (scheduled) messages, 5.x: a message delivered at a given time instead of at once.
//!
//! One of three properties asks for it: `TIMER_DELIVER_MS` (epoch milliseconds),
//! `TIMER_DELAY_MS` or `TIMER_DELAY_SEC` (from the broker's receipt). A broker stores such a
//! message in queue 0 of [`TIMER_TOPIC`] (properties `TIMER_OUT_MS`, `REAL_TOPIC`, `REAL_QID`
//! added; Java's `HookUtils.transformTimerMessage`) where no consumer sees it, and at its time
//! writes a copy to the real topic and queue. What brokers do with the edge cases, and what
//! [`validate_timer`] refuses before sending instead:
//!
//! | request | Java broker 5.x | rocketmq-rust broker 1.0 | here |
//! |---|---|---|---|
//! | a value that is not a number | `MESSAGE_ILLEGAL` | `MESSAGE_ILLEGAL` (also negatives) | [`ValidationError::InvalidTimerValue`] |
//! | due now or in the past | stored as a normal message, delivered at once | `MESSAGE_ILLEGAL` | [`ValidationError::TimerNotInFuture`] |
//! | more than `timerMaxDelaySec` ahead (3 days) | `MESSAGE_ILLEGAL` | `MESSAGE_ILLEGAL` | [`ValidationError::TimerTooFar`] |
//! | with a delay level (`DELAY`) | timer properties dropped, the level wins | same | [`ValidationError::TimerWithDelayLevel`] |
//! | several timer properties | `TIMER_DELAY_SEC`, then `TIMER_DELAY_MS`, then `TIMER_DELIVER_MS` wins | same | [`ValidationError::TimerConflict`] |
//! | in a batch | ignored: delivered at once | ignored | [`BatchError::TimerNotSupported`](crate::BatchError::TimerNotSupported) |
//! | timer wheel off (`timerWheelEnable=false`) | `SYSTEM_ERROR` | `SYSTEM_ERROR` | the broker's refusal |

use crate::validate::ValidationError;
use crate::{property, Message};

/// The topic a broker keeps timer messages in until their time (`TimerMessageStore.TIMER_TOPIC`).
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";

/// A broker's default `timerMaxDelaySec`, in milliseconds: 3 days.
pub const DEFAULT_MAX_DELAY_MS: u64 = 3 * 24 * 60 * 60 * 1000;

/// The timer properties, in the order a broker looks at them.
pub const TIMER_PROPERTIES: [&str; 3] = [
    property::TIMER_DELAY_SEC,
    property::TIMER_DELAY_MS,
    property::TIMER_DELIVER_MS,
];

/// What a message's timer property asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerRequest {
    /// `TIMER_DELAY_SEC`: seconds after the broker receives it.
    DelaySec(u64),
    /// `TIMER_DELAY_MS`: milliseconds after the broker receives it.
    DelayMs(u64),
    /// `TIMER_DELIVER_MS`: at this epoch millisecond.
    DeliverAtMs(u64),
}

impl TimerRequest {
    /// The message's timer request, `None` when it has no timer property.
    ///
    /// # Errors
    /// [`ValidationError::TimerConflict`] for several timer properties,
    /// [`ValidationError::InvalidTimerValue`] for a value that is not a non-negative integer.
    pub fn of(msg: &Message) -> Result<Option<Self>, ValidationError> {
        let mut present = TIMER_PROPERTIES
            .iter()
            .filter_map(|&name| msg.property(name).map(|v| (name, v)));
        let Some((name, value)) = present.next() else {
            return Ok(None);
        };
        if let Some((second, _)) = present.next() {
            return Err(ValidationError::TimerConflict {
                first: name,
                second,
            });
        }
        let n: u64 = value
            .parse()
            .map_err(|_| ValidationError::InvalidTimerValue {
                property: name,
                value: value.to_owned(),
            })?;
        Ok(Some(match name {
            property::TIMER_DELAY_SEC => Self::DelaySec(n),
            property::TIMER_DELAY_MS => Self::DelayMs(n),
            _ => Self::DeliverAtMs(n),
        }))
    }

    /// The property it travels in.
    #[must_use]
    pub const fn property(self) -> &'static str {
        match self {
            Self::DelaySec(_) => property::TIMER_DELAY_SEC,
            Self::DelayMs(_) => property::TIMER_DELAY_MS,
            Self::DeliverAtMs(_) => property::TIMER_DELIVER_MS,
        }
    }

    /// How long after `now_ms` it is due (0 when due already), `None` when that overflows.
    #[must_use]
    pub fn delay_ms(self, now_ms: u64) -> Option<u64> {
        match self {
            Self::DelaySec(s) => s.checked_mul(1000),
            Self::DelayMs(ms) => Some(ms),
            Self::DeliverAtMs(at) => Some(at.saturating_sub(now_ms)),
        }
    }
}

/// Checks a message's timer properties against the rules in the [module docs](self), at
/// `now_ms`, for a broker that keeps timers at most `max_delay_ms` ahead. Returns when the
/// message is due (epoch ms), `None` for a message without a timer.
///
/// # Errors
/// The [`ValidationError`] of the first rule broken.
///
/// ```
/// use rmq_common::timer::{validate_timer, DEFAULT_MAX_DELAY_MS};
/// use rmq_common::validate::ValidationError;
/// use rmq_common::Message;
/// let now = 1_700_000_000_000;
/// let max = DEFAULT_MAX_DELAY_MS;
/// assert_eq!(validate_timer(&Message::new("T", "x"), now, max), Ok(None));
/// let later = Message::new("T", "x").with_delay_time_ms(5_000);
/// assert_eq!(validate_timer(&later, now, max), Ok(Some(now + 5_000)));
/// let past = Message::new("T", "x").with_deliver_time_ms(now - 1);
/// assert_eq!(
///     validate_timer(&past, now, max),
///     Err(ValidationError::TimerNotInFuture { deliver_ms: now - 1, now_ms: now })
/// );
/// ```
pub fn validate_timer(
    msg: &Message,
    now_ms: u64,
    max_delay_ms: u64,
) -> Result<Option<u64>, ValidationError> {
    let Some(request) = TimerRequest::of(msg)? else {
        return Ok(None);
    };
    if msg.delay_level().is_some_and(|l| l > 0) {
        return Err(ValidationError::TimerWithDelayLevel {
            property: request.property(),
        });
    }
    let delay_ms = request.delay_ms(now_ms);
    let deliver_ms = match request {
        TimerRequest::DeliverAtMs(at) => Some(at),
        _ => delay_ms.and_then(|d| now_ms.checked_add(d)),
    };
    match (delay_ms, deliver_ms) {
        (Some(0), Some(deliver_ms)) => {
            Err(ValidationError::TimerNotInFuture { deliver_ms, now_ms })
        }
        (Some(d), Some(deliver_ms)) if d <= max_delay_ms => Ok(Some(deliver_ms)),
        (d, _) => Err(ValidationError::TimerTooFar {
            delay_ms: d.unwrap_or(u64::MAX),
            max_ms: max_delay_ms,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;
    const MAX: u64 = DEFAULT_MAX_DELAY_MS;

    type Outcome = Result<Option<u64>, ValidationError>;

    #[test]
    fn validate_timer_table() {
        use ValidationError as E;
        let m = || Message::new("T", "x");
        let props = |pairs: &[(&'static str, &str)]| {
            let mut msg = m();
            for &(k, v) in pairs {
                msg.properties_mut().insert(k, v.to_owned());
            }
            msg
        };
        let cases: Vec<(&str, Message, Outcome)> = vec![
            ("no timer", m(), Ok(None)),
            (
                "a delay level alone is no timer",
                m().with_delay_level(3),
                Ok(None),
            ),
            ("1 ms ahead", m().with_delay_time_ms(1), Ok(Some(NOW + 1))),
            ("5 s", m().with_delay_time_sec(5), Ok(Some(NOW + 5_000))),
            (
                "at +1 ms",
                m().with_deliver_time_ms(NOW + 1),
                Ok(Some(NOW + 1)),
            ),
            (
                "exactly the maximum",
                m().with_delay_time_ms(MAX),
                Ok(Some(NOW + MAX)),
            ),
            (
                "at exactly the maximum",
                m().with_deliver_time_ms(NOW + MAX),
                Ok(Some(NOW + MAX)),
            ),
            (
                "3 days in seconds",
                m().with_delay_time_sec(MAX / 1000),
                Ok(Some(NOW + MAX)),
            ),
            (
                "one past the maximum",
                m().with_delay_time_ms(MAX + 1),
                Err(E::TimerTooFar {
                    delay_ms: MAX + 1,
                    max_ms: MAX,
                }),
            ),
            (
                "at one past the maximum",
                m().with_deliver_time_ms(NOW + MAX + 1),
                Err(E::TimerTooFar {
                    delay_ms: MAX + 1,
                    max_ms: MAX,
                }),
            ),
            (
                "seconds overflowing milliseconds",
                m().with_delay_time_sec(u64::MAX / 10),
                Err(E::TimerTooFar {
                    delay_ms: u64::MAX,
                    max_ms: MAX,
                }),
            ),
            (
                "now",
                m().with_deliver_time_ms(NOW),
                Err(E::TimerNotInFuture {
                    deliver_ms: NOW,
                    now_ms: NOW,
                }),
            ),
            (
                "in the past",
                m().with_deliver_time_ms(1),
                Err(E::TimerNotInFuture {
                    deliver_ms: 1,
                    now_ms: NOW,
                }),
            ),
            (
                "zero delay",
                m().with_delay_time_ms(0),
                Err(E::TimerNotInFuture {
                    deliver_ms: NOW,
                    now_ms: NOW,
                }),
            ),
            (
                "zero seconds",
                m().with_delay_time_sec(0),
                Err(E::TimerNotInFuture {
                    deliver_ms: NOW,
                    now_ms: NOW,
                }),
            ),
            (
                "not a number",
                props(&[(property::TIMER_DELAY_MS, "soon")]),
                Err(E::InvalidTimerValue {
                    property: property::TIMER_DELAY_MS,
                    value: "soon".into(),
                }),
            ),
            (
                "negative",
                props(&[(property::TIMER_DELIVER_MS, "-5")]),
                Err(E::InvalidTimerValue {
                    property: property::TIMER_DELIVER_MS,
                    value: "-5".into(),
                }),
            ),
            (
                "empty",
                props(&[(property::TIMER_DELAY_SEC, "")]),
                Err(E::InvalidTimerValue {
                    property: property::TIMER_DELAY_SEC,
                    value: String::new(),
                }),
            ),
            (
                "with a delay level",
                m().with_delay_level(2).with_delay_time_ms(1_000),
                Err(E::TimerWithDelayLevel {
                    property: property::TIMER_DELAY_MS,
                }),
            ),
            (
                "two timer properties",
                m().with_deliver_time_ms(NOW + 10).with_delay_time_sec(1),
                Err(E::TimerConflict {
                    first: property::TIMER_DELAY_SEC,
                    second: property::TIMER_DELIVER_MS,
                }),
            ),
            (
                "delay ms and deliver ms",
                m().with_delay_time_ms(1).with_deliver_time_ms(NOW + 10),
                Err(E::TimerConflict {
                    first: property::TIMER_DELAY_MS,
                    second: property::TIMER_DELIVER_MS,
                }),
            ),
        ];
        for (name, msg, want) in cases {
            assert_eq!(validate_timer(&msg, NOW, MAX), want, "{name}");
        }
    }

    #[test]
    fn a_smaller_broker_maximum_is_honoured() {
        let msg = Message::new("T", "x").with_delay_time_sec(61);
        assert!(validate_timer(&msg, NOW, 60_000).is_err());
        assert_eq!(validate_timer(&msg, NOW, 61_000), Ok(Some(NOW + 61_000)));
    }
}
