//! The async mode's sending loop: `--concurrency` sends kept in flight, spread over a few
//! workers, each with its own window of `send_async` futures that it records as they resolve.
//!
//! No task per send and no shared semaphore: the harness stays cheap next to the producer it
//! measures (a task spawned per send to await its future cost about as much as the send's own
//! completion). The windows together never exceed what the producer's back-pressure admits at
//! once, so `send_async` never waits for room inside the producer, where a stop could not end
//! the wait.

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rmq_producer::SendOptions;
use tokio::time::Instant;

use super::Shared;

/// The windows of the async workers: `concurrency` sends in flight (at most `room`, the
/// producer's back-pressure bound, when it has one) spread over at most `cores` workers, as
/// evenly as they divide.
///
/// ```text
/// windows(256, Some(1024), 2) == [128, 128]
/// windows(100, Some(8), 2)    == [4, 4]
/// windows(1, None, 2)         == [1]
/// ```
pub(super) fn windows(concurrency: u32, room: Option<usize>, cores: usize) -> Vec<usize> {
    let total = room.map_or(concurrency as usize, |r| r.min(concurrency as usize));
    let total = total.max(1);
    let workers = cores.clamp(1, total);
    (0..workers)
        .map(|i| total / workers + usize::from(i < total % workers))
        .collect()
}

/// One async worker: keeps up to `window` sends in flight until the budget is spent or closed,
/// then waits for the rest of its window (the run's drain bounds how long).
pub(super) async fn run(s: Arc<Shared>, window: usize) {
    let mut flying = FuturesUnordered::new();
    let mut open = true;
    loop {
        while open && flying.len() < window {
            if s.budget.take(1) == 0 {
                open = false;
                break;
            }
            s.rec.begin(1);
            let t = Instant::now();
            let options = SendOptions::new().timeout(s.send_timeout);
            match s.producer.send_async(s.message(), options).await {
                Err(e) => s.fail(1, &e),
                Ok(fut) => flying.push(async move { (fut.await, t) }),
            }
        }
        match flying.next().await {
            Some((Ok(_), t)) => s.rec.ok(1, t.elapsed()),
            Some((Err(e), _)) => s.fail(1, &e),
            None if open => {}
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::windows;

    #[test]
    fn windows_spread_the_sends_in_flight_over_the_cores() {
        let cases: &[(u32, Option<usize>, usize, &[usize])] = &[
            (256, Some(1024), 2, &[128, 128]),
            (256, None, 2, &[128, 128]),
            (100, Some(8), 2, &[4, 4]),
            (5, Some(1024), 2, &[3, 2]),
            (1, None, 2, &[1]),
            (3, Some(1), 4, &[1]),
            (7, None, 4, &[2, 2, 2, 1]),
            (4, None, 0, &[4]),
        ];
        for &(concurrency, room, cores, want) in cases {
            let got = windows(concurrency, room, cores);
            assert_eq!(got, want, "windows({concurrency}, {room:?}, {cores})");
            let cap = room.map_or(concurrency as usize, |r| r.min(concurrency as usize));
            assert_eq!(got.iter().sum::<usize>(), cap.max(1));
        }
    }
}
