//! Deadlines from caller-supplied timeouts, without overflow.

use std::time::Duration;

use tokio::time::Instant;

/// About 30 years: what a deadline saturates to (tokio's own "far future" is the same order).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + timeout`, saturating far in the future instead of panicking on overflow, so a caller
/// may pass `Duration::MAX` for "no practical limit".
///
/// ```
/// use std::time::Duration;
/// use rmq_remoting::deadline_after;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let d = deadline_after(Duration::MAX); // does not panic
/// assert!(d > tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
/// # }
/// ```
#[must_use]
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(FAR_FUTURE))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ordinary_timeouts_are_exact_and_huge_ones_saturate() {
        let before = Instant::now();
        let d = deadline_after(Duration::from_secs(3));
        assert!(d >= before + Duration::from_secs(3));
        assert!(d <= Instant::now() + Duration::from_secs(3));
        let far = deadline_after(Duration::MAX);
        assert!(far >= before + FAR_FUTURE);
    }
}
