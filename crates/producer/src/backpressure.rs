//! Async back-pressure: a bound on the asynchronous sends in flight, by count and by body bytes
//! (Java 5's `backPressureForAsyncSendNum` / `backPressureForAsyncSendSize`, on by default here).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The two bounds.
#[derive(Debug)]
pub(crate) struct Backpressure {
    count: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_count: usize,
    max_bytes: u32,
}

/// Held while one asynchronous send is in flight; dropping it frees the room.
#[derive(Debug)]
pub(crate) struct Permit {
    _count: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

impl Backpressure {
    /// Room for `max_count` sends and `max_bytes` body bytes (at most `u32::MAX`).
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> Self {
        let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
        let max_count = max_count.min(Semaphore::MAX_PERMITS);
        Self {
            count: Arc::new(Semaphore::new(max_count)),
            bytes: Arc::new(Semaphore::new(max_bytes as usize)),
            max_count,
            max_bytes,
        }
    }

    /// The bounds `(sends, bytes)`.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.max_count, self.max_bytes as usize)
    }

    /// Sends and bytes in flight now.
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        (
            self.max_count - self.count.available_permits(),
            self.max_bytes as usize - self.bytes.available_permits(),
        )
    }

    /// Bytes a body of `size` takes (a body larger than the bound takes the whole bound, so it
    /// can still go when nothing else is in flight).
    fn weight(&self, size: usize) -> u32 {
        u32::try_from(size).unwrap_or(u32::MAX).min(self.max_bytes)
    }

    /// Waits for room for one send of `size` bytes (FIFO); `None` once closed.
    pub(crate) async fn acquire(&self, size: usize) -> Option<Permit> {
        let count = Arc::clone(&self.count).acquire_owned().await.ok()?;
        let weight = self.weight(size);
        let bytes = if weight == 0 {
            None
        } else {
            Some(
                Arc::clone(&self.bytes)
                    .acquire_many_owned(weight)
                    .await
                    .ok()?,
            )
        };
        Some(Permit {
            _count: count,
            _bytes: bytes,
        })
    }

    /// Wakes every waiter with `None` (shutdown).
    pub(crate) fn close(&self) {
        self.count.close();
        self.bytes.close();
    }

    /// Room for one send of `size` bytes now, or `None` when full.
    pub(crate) fn try_acquire(&self, size: usize) -> Option<Permit> {
        let count = Arc::clone(&self.count).try_acquire_owned().ok()?;
        let weight = self.weight(size);
        let bytes = if weight == 0 {
            None
        } else {
            match Arc::clone(&self.bytes).try_acquire_many_owned(weight) {
                Ok(p) => Some(p),
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => return None,
            }
        };
        Some(Permit {
            _count: count,
            _bytes: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_by_count_and_by_bytes() {
        let bp = Backpressure::new(2, 100);
        let a = bp.try_acquire(60).expect("room");
        assert!(bp.try_acquire(60).is_none(), "bytes full");
        let b = bp.try_acquire(40).expect("room");
        assert_eq!(bp.in_flight(), (2, 100));
        assert!(bp.try_acquire(0).is_none(), "count full");
        drop(a);
        assert_eq!(bp.in_flight(), (1, 40));
        drop(b);
        assert_eq!(bp.in_flight(), (0, 0));
        let huge = bp
            .try_acquire(10_000)
            .expect("an oversized body takes the whole bound");
        assert_eq!(bp.in_flight(), (1, 100));
        drop(huge);
    }

    #[tokio::test]
    async fn waiters_wake_when_room_frees_or_on_close() {
        let bp = Arc::new(Backpressure::new(1, 10));
        let held = bp.acquire(5).await.expect("room");
        let waiter = tokio::spawn({
            let bp = Arc::clone(&bp);
            async move { bp.acquire(5).await.is_some() }
        });
        tokio::task::yield_now().await;
        drop(held);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok(true))));
        let _held = bp.acquire(1).await.expect("room");
        let waiter = tokio::spawn({
            let bp = Arc::clone(&bp);
            async move { bp.acquire(1).await.is_some() }
        });
        tokio::task::yield_now().await;
        bp.close();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok(false))));
    }
}
