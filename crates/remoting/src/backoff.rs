//! [`BackoffConfig`]: how long a client waits before connecting again to an address whose
//! connect failed.

use std::time::Duration;

/// Reconnect backoff per address, after gRPC's connection backoff: once a connect to an address
/// fails (refused, timed out after the whole [`connect_timeout`](crate::RemotingConfig::connect_timeout),
/// TLS handshake failed), calls to that address fail at once with
/// [`RemotingError::Backoff`](crate::RemotingError::Backoff) for a window; the first call after
/// the window tries to connect again (the probe). Each further consecutive failure multiplies
/// the window by `multiplier`, up to `max`; a successful connect resets it. Every window is
/// spread by ±`jitter` so that many clients do not probe in step.
///
/// The defaults (100 ms, ×1.6, ±20 %, at most 10 s) take a dead address from thousands of
/// connects a second to one every 10 s within about 30 s, while a restarted peer is used again
/// within a fraction of a second of a short outage.
///
/// ```
/// use std::time::Duration;
/// use rmq_remoting::{BackoffConfig, RemotingConfig};
/// let cfg = RemotingConfig {
///     reconnect_backoff: BackoffConfig { max: Duration::from_secs(2), ..BackoffConfig::default() },
///     ..RemotingConfig::default()
/// };
/// assert_eq!(cfg.reconnect_backoff.initial, Duration::from_millis(100));
/// assert!(BackoffConfig::DISABLED.is_disabled());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The window after the first failed connect (100 ms). Zero disables the backoff: every
    /// call without a live connection tries to connect.
    pub initial: Duration,
    /// The window's growth per further consecutive failure (1.6; values below 1, and NaN,
    /// count as 1).
    pub multiplier: f64,
    /// The random spread of each window as a fraction of it: 0.2 is ±20 % (clamped to
    /// `0.0..=1.0`; NaN counts as 0).
    pub jitter: f64,
    /// The longest window, jitter included (10 s).
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(10),
        }
    }
}

impl BackoffConfig {
    /// No backoff: every call to an address without a live connection tries to connect (the
    /// behaviour of the Java client).
    pub const DISABLED: Self = Self {
        initial: Duration::ZERO,
        multiplier: 1.0,
        jitter: 0.0,
        max: Duration::ZERO,
    };

    /// Whether the backoff is off (`initial` or `max` is zero).
    #[must_use]
    pub fn is_disabled(&self) -> bool {
        self.initial.is_zero() || self.max.is_zero()
    }

    /// The window after `failures` consecutive failed connects (at least 1), with `spread` in
    /// `-1.0..=1.0` scaling the jitter (a random draw in use, fixed in tests).
    pub(crate) fn window(&self, failures: u32, spread: f64) -> Duration {
        if self.is_disabled() {
            return Duration::ZERO;
        }
        let multiplier = if self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        // A day at most: "no cap" given as Duration::MAX must not overflow instants.
        let cap = self.max.min(MAX_WINDOW);
        let max = cap.as_secs_f64();
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = (self.initial.as_secs_f64() * multiplier.powi(exponent)).min(max);
        let secs = base * (1.0 + jitter * spread.clamp(-1.0, 1.0));
        Duration::try_from_secs_f64(secs.min(max)).unwrap_or(cap)
    }
}

/// The longest window, whatever `max` says.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn extreme_settings_stay_within_a_day() {
        let huge = BackoffConfig {
            initial: Duration::MAX,
            multiplier: f64::MAX,
            jitter: 1.0,
            max: Duration::MAX,
        };
        for failures in [1, 2, u32::MAX] {
            assert_eq!(huge.window(failures, 1.0), MAX_WINDOW);
        }
        let no_cap = BackoffConfig {
            max: Duration::MAX,
            ..BackoffConfig::default()
        };
        assert_eq!(no_cap.window(1, 0.0), ms(100));
        assert_eq!(no_cap.window(u32::MAX, 0.0), MAX_WINDOW);
    }

    #[test]
    fn windows_grow_by_the_multiplier_up_to_the_max() {
        let b = BackoffConfig::default();
        assert_eq!(b.window(1, 0.0), ms(100));
        assert_eq!(b.window(2, 0.0), ms(160));
        assert_eq!(b.window(3, 0.0), ms(256));
        assert_eq!(b.window(11, 0.0), Duration::from_secs(10));
        assert_eq!(b.window(u32::MAX, 0.0), Duration::from_secs(10));
    }

    #[test]
    fn jitter_spreads_within_its_fraction_and_never_past_the_max() {
        let b = BackoffConfig::default();
        assert_eq!(b.window(1, -1.0), ms(80));
        assert_eq!(b.window(1, 1.0), ms(120));
        assert_eq!(b.window(1, 7.0), ms(120), "spread clamped");
        assert_eq!(b.window(40, 1.0), Duration::from_secs(10));
        assert!(b.window(40, -1.0) >= Duration::from_secs(8));
    }

    #[test]
    fn odd_settings_are_tamed() {
        let odd = BackoffConfig {
            multiplier: 0.5,
            jitter: f64::NAN,
            ..BackoffConfig::default()
        };
        assert_eq!(odd.window(5, 1.0), ms(100));
        let nan = BackoffConfig {
            multiplier: f64::NAN,
            jitter: 5.0,
            ..BackoffConfig::default()
        };
        assert_eq!(nan.window(3, 0.0), ms(100));
        assert_eq!(nan.window(3, -1.0), Duration::ZERO);
        assert_eq!(BackoffConfig::DISABLED.window(3, 1.0), Duration::ZERO);
        let no_max = BackoffConfig {
            max: Duration::ZERO,
            ..BackoffConfig::default()
        };
        assert!(no_max.is_disabled());
    }
}
