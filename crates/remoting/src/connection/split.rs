//! When the writer splits a round of frames into chunks (issue 13, the 64-sync-task convoy).
//!
//! A round is the frames of the callers one read of replies woke together. Written whole, the
//! peer has nothing to do while the client works through the round and the client nothing while
//! the peer answers it: one park of each per round. Written in chunks as they come (at least
//! [`CHUNK`] frames, or what is in hand when a yield brings no more), the peer can answer the first chunk while the client still works on the rest;
//! that pays only if the answer is back before the client runs out of work. Otherwise the
//! client parks once per chunk instead of once per round, which costs more than the convoy.
//!
//! So the writer splits only while it pays: the reader, at the start of each burst of replies
//! (its read had found the socket empty before), notes whether callers woken earlier still had
//! frames to come (`answered` above zero: the client was still busy, so it had not parked for
//! these replies) or not (the client had finished and waited). A miss stops the split; it is
//! tried again after a number of whole rounds that doubles with each miss in a row, up to
//! [`MAX_BACKOFF`]; a hit resets that number.
//!
//! Known limits: a burst is any reply that follows a read that found the socket empty, so a
//! peer that writes each reply on its own (a Netty broker flushes per reply) can start a
//! "burst" in the middle of a round, judged while the same round's callers are still counted
//! (a hit where the client may have waited); and on a busy machine the one-worker state stays
//! bistable (issue 13, twelfth pass, in benches/README.md).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Frames per chunk while a round is split.
pub(super) const CHUNK: usize = 16;

/// The most whole rounds between two tries of the split.
const MAX_BACKOFF: u32 = 64;

const NONE: u8 = 0;
const HIT: u8 = 1;
const MISS: u8 = 2;

/// What the reader and the writer share about the split.
#[derive(Debug, Default)]
pub(crate) struct SplitSignal {
    /// Set by the writer while it splits rounds: the reader notes its bursts only then.
    on: AtomicBool,
    /// The reader's note on the latest burst of replies ([`HIT`] or [`MISS`]), taken by the
    /// writer.
    verdict: AtomicU8,
}

impl SplitSignal {
    /// Called by the reader at the first reply of a burst; `busy` is whether callers woken
    /// before it had frames still to come.
    pub(super) fn burst(&self, busy: bool) {
        if self.on.load(Ordering::Relaxed) {
            self.verdict
                .store(if busy { HIT } else { MISS }, Ordering::Relaxed);
        }
    }
}

/// The writer's side: whether the next batch is a chunk.
#[derive(Debug)]
pub(super) struct Split {
    on: bool,
    /// Whole rounds still to write before the next try.
    wait: u32,
    /// Whole rounds to wait after the next miss.
    backoff: u32,
}

impl Split {
    pub(super) const fn new() -> Self {
        Self {
            on: false,
            wait: 0,
            backoff: 1,
        }
    }

    /// True while rounds are split: the writer then counts the callers it still expects
    /// down by the frames it takes, rather than forgetting them at each write.
    pub(super) const fn is_on(&self) -> bool {
        self.on
    }

    /// Whether the batch the writer starts, with `callers` woken callers whose frames are
    /// expected, is written as a chunk of [`CHUNK`] frames.
    pub(super) fn chunk(&mut self, signal: &SplitSignal, callers: usize) -> bool {
        if self.on {
            match signal.verdict.swap(NONE, Ordering::Relaxed) {
                MISS => {
                    self.on = false;
                    signal.on.store(false, Ordering::Relaxed);
                    self.wait = self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return false;
                }
                HIT => self.backoff = 1,
                _ => {}
            }
            return callers >= 2 * CHUNK;
        }
        if callers < 2 * CHUNK {
            return false;
        }
        if self.wait > 0 {
            self.wait -= 1;
            return false;
        }
        self.on = true;
        signal.verdict.store(NONE, Ordering::Relaxed);
        signal.on.store(true, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_stops_the_split_for_rounds_that_double() {
        let signal = SplitSignal::default();
        let mut split = Split::new();
        assert!(
            !split.chunk(&signal, 2 * CHUNK - 1),
            "a small round is whole"
        );
        assert!(split.chunk(&signal, 64));
        signal.burst(true);
        assert!(split.chunk(&signal, 48), "a hit keeps it");
        signal.burst(false);
        assert!(!split.chunk(&signal, 64), "a miss stops it");
        assert!(!split.is_on());
        // Bursts are not noted while the split is off.
        signal.burst(false);
        assert!(
            !split.chunk(&signal, 64),
            "one whole round after the first miss"
        );
        assert!(split.chunk(&signal, 64), "then tried again");
        signal.burst(false);
        assert!(!split.chunk(&signal, 64));
        assert!(!split.chunk(&signal, 64));
        assert!(
            !split.chunk(&signal, 64),
            "two whole rounds after the second miss in a row"
        );
        assert!(split.chunk(&signal, 64));
        signal.burst(true);
        assert!(split.chunk(&signal, 64));
        signal.burst(false);
        assert!(!split.chunk(&signal, 64));
        assert!(
            !split.chunk(&signal, 64),
            "a hit reset the wait to one round"
        );
        assert!(split.chunk(&signal, 64));
    }
}
