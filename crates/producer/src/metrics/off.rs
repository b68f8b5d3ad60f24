//! The recorder without the `metrics` feature: zero-sized, every call empty (compiled away).

use std::time::Duration;

use crate::error::ErrorKind;

/// Records nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metrics;

impl Metrics {
    /// The recorder.
    pub(crate) const fn off() -> Self {
        Self
    }

    /// Never recording: callers skip the work of gathering what would be recorded.
    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn send_done(&self, _topic: &str, _cost: Duration, _error: Option<&ErrorKind>) {}

    #[inline(always)]
    pub(crate) fn retry(&self, _topic: &str) {}

    #[inline(always)]
    pub(crate) fn isolated(&self, _broker: &str) {}

    #[inline(always)]
    pub(crate) fn backpressure(&self, _how: super::Wait) {}
}
