//! Queue selection: the default round-robin with fault avoidance, and the pluggable
//! [`QueueSelector`] for sends that choose their own queue (ordered messages).
//!
//! The default choice follows Java 5.1.4+ `MQFaultStrategy.selectOneMessageQueue`: a per-topic
//! counter seeded at random walks the queue list; on a retry the broker that just failed is
//! avoided; with latency fault tolerance on, a queue of an *available* broker is preferred, then one
//! of a *reachable* broker, then (our addition) any broker but the one that just failed, and
//! finally any queue at all, so a send is never refused only because every broker is isolated.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::time::Instant;

use rmq_common::{Message, MessageQueue};

use crate::fault::LatencyFaultTolerance;

/// Chooses the queue of a send made with [`SendOptions::selector`](crate::SendOptions::selector)
/// (Java's `MessageQueueSelector`): typically all messages of one order key go to one queue.
///
/// Returns an index into `queues` (the writable queues of the topic, in route order); `None` or an
/// index out of range fails the send without sending anything. A selector's queue is never changed
/// by the producer: retries, when safe, go to the same queue. What Java passes as `arg` is
/// whatever the selector captures.
///
/// Any `Fn(&[MessageQueue], &Message) -> Option<usize> + Send + Sync` is a selector:
///
/// ```
/// use rmq_common::{Message, MessageQueue};
/// use rmq_producer::QueueSelector;
///
/// let order_id = 7u64;
/// let by_id = move |queues: &[MessageQueue], _: &Message| {
///     usize::try_from(order_id % queues.len() as u64).ok()
/// };
/// let queues = [MessageQueue::new("T", "broker-a", 0), MessageQueue::new("T", "broker-a", 1)];
/// assert_eq!(by_id.select(&queues, &Message::new("T", "x")), Some(1));
/// ```
pub trait QueueSelector: Send + Sync {
    /// The index of the queue to send `msg` to.
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> Option<usize>;
}

impl<F> QueueSelector for F
where
    F: Fn(&[MessageQueue], &Message) -> Option<usize> + Send + Sync,
{
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> Option<usize> {
        self(queues, msg)
    }
}

/// Picks the queue by a hash of a key (Java's `SelectMessageQueueByHash`): the same key always
/// selects the same queue while the queue list is unchanged.
///
/// The hash is FNV-1a over the key's [`Hash`] output: stable across runs and processes of the
/// same build (unlike `std`'s randomly keyed hasher), but not Java's `hashCode`: when Java
/// producers send the same order keys to the topic, use
/// [`JavaHashSelector`](crate::JavaHashSelector).
///
/// ```
/// use rmq_common::{Message, MessageQueue};
/// use rmq_producer::{HashSelector, QueueSelector};
///
/// let queues: Vec<_> = (0..4).map(|i| MessageQueue::new("T", "broker-a", i)).collect();
/// let msg = Message::new("T", "x");
/// let a = HashSelector::new("order-42").select(&queues, &msg);
/// assert_eq!(a, HashSelector::new("order-42").select(&queues, &msg));
/// assert!(a.is_some_and(|i| i < 4));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HashSelector {
    hash: u64,
}

impl HashSelector {
    /// A selector of the queue of `key`.
    pub fn new<K: Hash + ?Sized>(key: &K) -> Self {
        let mut hasher = Fnv1a::default();
        key.hash(&mut hasher);
        Self {
            hash: hasher.finish(),
        }
    }
}

impl QueueSelector for HashSelector {
    fn select(&self, queues: &[MessageQueue], _msg: &Message) -> Option<usize> {
        let len = u64::try_from(queues.len()).ok().filter(|n| *n > 0)?;
        usize::try_from(self.hash % len).ok()
    }
}

/// Picks a queue at random (Java's `SelectMessageQueueByRandom`).
///
/// ```
/// use rmq_common::{Message, MessageQueue};
/// use rmq_producer::{QueueSelector, RandomSelector};
///
/// let queues = [MessageQueue::new("T", "broker-a", 0)];
/// assert_eq!(RandomSelector.select(&queues, &Message::new("T", "x")), Some(0));
/// assert_eq!(RandomSelector.select(&[], &Message::new("T", "x")), None);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSelector;

impl QueueSelector for RandomSelector {
    fn select(&self, queues: &[MessageQueue], _msg: &Message) -> Option<usize> {
        (!queues.is_empty()).then(|| fastrand::usize(..queues.len()))
    }
}

/// 64-bit FNV-1a: a tiny deterministic hasher (also for the small per-send maps keyed by topic
/// or broker address, where SipHash cost more than the lookup).
#[derive(Debug)]
pub(crate) struct Fnv1a(u64);

/// Builds [`Fnv1a`] hashers.
pub(crate) type FnvBuild = std::hash::BuildHasherDefault<Fnv1a>;

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The fault view used by [`select_queue`]: the table and the current time.
pub(crate) type FaultView<'a> = Option<(&'a LatencyFaultTolerance, Instant)>;

/// The real broker of a queue: its endpoint for a static topic's logical queue (whose own broker
/// name is a mock name shared by every logical queue), else its broker name.
pub(crate) fn real_broker<'a>(
    endpoints: &'a BTreeMap<MessageQueue, String>,
    mq: &'a MessageQueue,
) -> &'a str {
    endpoints
        .get(mq)
        .map_or(mq.broker_name.as_str(), String::as_str)
}

/// The default queue choice for one attempt (see the module docs).
///
/// `endpoints` maps a static topic's logical queues to their real brokers (empty otherwise):
/// broker avoidance and the fault table always concern real brokers. `counter` is the topic's
/// round-robin counter (advanced once per probe, as Java's `incrementAndGet`), `avoid` the (real)
/// broker of the previous failed attempt, `faults` the fault table when latency fault tolerance
/// is on. `None` only when `queues` is empty.
pub(crate) fn select_queue<'q>(
    queues: &'q [MessageQueue],
    endpoints: &BTreeMap<MessageQueue, String>,
    counter: &AtomicU32,
    avoid: Option<&str>,
    faults: FaultView<'_>,
) -> Option<&'q MessageQueue> {
    if queues.is_empty() {
        return None;
    }
    let not_avoided = |mq: &MessageQueue| avoid.is_none_or(|b| real_broker(endpoints, mq) != b);
    if let Some((table, now)) = faults {
        let found = probe(queues, counter, |mq| {
            not_avoided(mq) && table.is_available(real_broker(endpoints, mq), now)
        })
        .or_else(|| {
            probe(queues, counter, |mq| {
                not_avoided(mq) && table.is_reachable(real_broker(endpoints, mq))
            })
        });
        if found.is_some() {
            return found;
        }
    }
    if avoid.is_some() {
        if let Some(mq) = probe(queues, counter, not_avoided) {
            return Some(mq);
        }
    }
    Some(&queues[next_index(counter, queues.len())])
}

/// Walks the list once from the counter and returns the first queue accepted by `keep`.
fn probe<'q>(
    queues: &'q [MessageQueue],
    counter: &AtomicU32,
    keep: impl Fn(&MessageQueue) -> bool,
) -> Option<&'q MessageQueue> {
    (0..queues.len())
        .map(|_| &queues[next_index(counter, queues.len())])
        .find(|mq| keep(mq))
}

/// `(counter.incrementAndGet() & 0x7FFF_FFFF) % len`.
fn next_index(counter: &AtomicU32, len: usize) -> usize {
    let n = counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & 0x7FFF_FFFF;
    // u32 always fits in usize on the 32- and 64-bit targets we build for.
    usize::try_from(n).unwrap_or(0) % len
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const NONE: &BTreeMap<MessageQueue, String> = &BTreeMap::new();

    fn queues(brokers: &[(&str, i32)]) -> Vec<MessageQueue> {
        brokers
            .iter()
            .flat_map(|(b, n)| (0..*n).map(move |i| MessageQueue::new("T", *b, i)))
            .collect()
    }

    #[test]
    fn round_robin_visits_every_queue() {
        let qs = queues(&[("a", 2), ("b", 2)]);
        let c = AtomicU32::new(7);
        let seen: Vec<_> = (0..4)
            .map(|_| select_queue(&qs, NONE, &c, None, None).cloned())
            .collect();
        let distinct: HashSet<_> = seen.iter().flatten().collect();
        assert_eq!(distinct.len(), 4, "{seen:?}");
    }

    #[test]
    fn counter_wraps_without_panicking() {
        let qs = queues(&[("a", 3)]);
        let c = AtomicU32::new(u32::MAX - 1);
        for _ in 0..5 {
            assert!(select_queue(&qs, NONE, &c, None, None).is_some());
        }
    }

    #[test]
    fn avoids_last_broker_then_falls_back_to_it() {
        let qs = queues(&[("a", 2), ("b", 2)]);
        let c = AtomicU32::new(0);
        for _ in 0..16 {
            let mq = select_queue(&qs, NONE, &c, Some("a"), None).expect("queue");
            assert_eq!(mq.broker_name, "b");
        }
        let only_a = queues(&[("a", 2)]);
        assert_eq!(
            select_queue(&only_a, NONE, &c, Some("a"), None)
                .expect("queue")
                .broker_name,
            "a"
        );
        assert!(select_queue(&[], NONE, &c, None, None).is_none());
    }

    #[test]
    fn isolated_broker_skipped_until_its_window_ends() {
        let qs = queues(&[("a", 2), ("b", 2)]);
        let c = AtomicU32::new(0);
        let faults = LatencyFaultTolerance::new();
        let t0 = Instant::now();
        faults.record("a", Duration::from_millis(1), true, true, t0);
        for _ in 0..16 {
            let mq = select_queue(&qs, NONE, &c, None, Some((&faults, t0))).expect("queue");
            assert_eq!(mq.broker_name, "b");
        }
        let later = t0 + Duration::from_secs(10);
        let brokers: HashSet<_> = (0..16)
            .map(|_| {
                select_queue(&qs, NONE, &c, None, Some((&faults, later)))
                    .expect("q")
                    .broker_name
                    .clone()
            })
            .collect();
        assert_eq!(brokers.len(), 2, "a is chosen again once its window passed");
    }

    #[test]
    fn reachable_then_any_broker_when_all_isolated() {
        let qs = queues(&[("a", 1), ("b", 1), ("c", 1)]);
        let c = AtomicU32::new(0);
        let faults = LatencyFaultTolerance::new();
        let t0 = Instant::now();
        faults.record("a", Duration::from_millis(1), true, false, t0);
        faults.record("b", Duration::from_millis(1), true, true, t0);
        faults.record("c", Duration::from_millis(1), true, false, t0);
        // All isolated: the reachable one (b) wins.
        for _ in 0..6 {
            let mq = select_queue(&qs, NONE, &c, None, Some((&faults, t0))).expect("q");
            assert_eq!(mq.broker_name, "b");
        }
        // b just failed: any other broker rather than b.
        for _ in 0..6 {
            let mq = select_queue(&qs, NONE, &c, Some("b"), Some((&faults, t0))).expect("q");
            assert_ne!(mq.broker_name, "b");
        }
        // Only b exists and it is isolated and avoided: still a queue.
        let only_b = queues(&[("b", 2)]);
        assert!(select_queue(&only_b, NONE, &c, Some("b"), Some((&faults, t0))).is_some());
    }

    #[test]
    fn hash_selector_is_deterministic_and_spreads() {
        let qs = queues(&[("a", 8)]);
        let msg = Message::new("T", "x");
        let picks: HashSet<_> = (0..64)
            .map(|k| {
                HashSelector::new(&format!("key-{k}"))
                    .select(&qs, &msg)
                    .expect("index")
            })
            .collect();
        assert!(picks.len() > 4, "{picks:?}");
        assert_eq!(
            HashSelector::new(&1u32).select(&qs, &msg),
            HashSelector::new(&1u32).select(&qs, &msg)
        );
        assert_eq!(HashSelector::new(&1u32).select(&[], &msg), None);
    }

    fn arb_queues() -> impl Strategy<Value = Vec<MessageQueue>> {
        prop::collection::vec((0u8..4, 0i32..4), 1..12).prop_map(|v| {
            v.into_iter()
                .map(|(b, q)| MessageQueue::new("T", format!("broker-{b}"), q))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn selection_is_from_the_list_and_skips_the_last_broker(
            qs in arb_queues(),
            seed in any::<u32>(),
            avoid_pick in any::<prop::sample::Index>(),
            isolated in prop::collection::vec(any::<bool>(), 4),
            with_faults in any::<bool>(),
        ) {
            let c = AtomicU32::new(seed);
            let avoid = qs[avoid_pick.index(qs.len())].broker_name.clone();
            let faults = LatencyFaultTolerance::new();
            let t0 = Instant::now();
            for (i, iso) in isolated.iter().enumerate() {
                if *iso {
                    faults.record(&format!("broker-{i}"), Duration::from_millis(1), true, i % 2 == 0, t0);
                }
            }
            let view = with_faults.then_some((&faults, t0));
            let mq = select_queue(&qs, NONE, &c, Some(&avoid), view).expect("non-empty list");
            prop_assert!(qs.contains(mq));
            let alternative = qs.iter().any(|q| q.broker_name != avoid);
            if alternative {
                prop_assert_ne!(&mq.broker_name, &avoid);
            }
            let first = select_queue(&qs, NONE, &c, None, view).expect("non-empty list");
            prop_assert!(qs.contains(first));
        }
    }
}
