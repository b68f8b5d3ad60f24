//! [`JavaHashSelector`]: Java's `SelectMessageQueueByHash`, with Java's `hashCode`, so that Java
//! and Rust producers of one topic send the messages of one order key to the same queue.

use rmq_common::{Message, MessageQueue};

use crate::select::QueueSelector;

/// A value with Java's `hashCode()` (the argument of a [`JavaHashSelector`]).
///
/// ```
/// use rmq_producer::JavaHashCode;
///
/// assert_eq!("hello".java_hash_code(), 99_162_322); // Java: "hello".hashCode()
/// assert_eq!(42i32.java_hash_code(), 42); // Integer.hashCode
/// assert_eq!((-1i64).java_hash_code(), 0); // Long.hashCode: (int) (v ^ (v >>> 32))
/// ```
pub trait JavaHashCode {
    /// What Java's `hashCode()` of the same value returns.
    fn java_hash_code(&self) -> i32;
}

/// `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over the UTF-16 code units, wrapping.
impl JavaHashCode for str {
    fn java_hash_code(&self) -> i32 {
        self.encode_utf16().fold(0i32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(i32::from(unit))
        })
    }
}

impl JavaHashCode for String {
    fn java_hash_code(&self) -> i32 {
        self.as_str().java_hash_code()
    }
}

/// `Integer.hashCode()`: the value.
impl JavaHashCode for i32 {
    fn java_hash_code(&self) -> i32 {
        *self
    }
}

/// `Long.hashCode()`: `(int) (value ^ (value >>> 32))`.
impl JavaHashCode for i64 {
    fn java_hash_code(&self) -> i32 {
        let bits = u64::from_ne_bytes(self.to_ne_bytes());
        let folded = bits ^ (bits >> 32);
        // The low 32 bits, as Java's (int) cast keeps them.
        i32::from_ne_bytes(u32::to_ne_bytes((folded & 0xFFFF_FFFF) as u32))
    }
}

impl<T: JavaHashCode + ?Sized> JavaHashCode for &T {
    fn java_hash_code(&self) -> i32 {
        (**self).java_hash_code()
    }
}

/// Picks the queue as Java's `SelectMessageQueueByHash` does: `value = arg.hashCode() % size`,
/// made positive with `abs`, with Java's `hashCode` ([`JavaHashCode`]) of the key. A Java producer
/// and a Rust producer with the same queue list send one order key to the same queue (unlike
/// [`HashSelector`](crate::HashSelector), whose hash is not Java's).
///
/// ```
/// use rmq_common::{Message, MessageQueue};
/// use rmq_producer::{JavaHashSelector, QueueSelector};
///
/// let queues: Vec<_> = (0..8).map(|i| MessageQueue::new("T", "broker-a", i)).collect();
/// let msg = Message::new("T", "x");
/// // Java: "hello".hashCode() == 99162322, 99162322 % 8 == 2.
/// assert_eq!(JavaHashSelector::new("hello").select(&queues, &msg), Some(2));
/// // A negative hash: "TopicTest-order-99".hashCode() == -1765096437, % 8 == -5, abs: 5.
/// assert_eq!(JavaHashSelector::new("TopicTest-order-99").select(&queues, &msg), Some(5));
/// assert_eq!(JavaHashSelector::new("hello").select(&[], &msg), None);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct JavaHashSelector {
    hash: i32,
}

impl JavaHashSelector {
    /// A selector of the queue of `key`, as Java selects it for an argument equal to `key`.
    pub fn new<K: JavaHashCode + ?Sized>(key: &K) -> Self {
        Self {
            hash: key.java_hash_code(),
        }
    }
}

impl QueueSelector for JavaHashSelector {
    fn select(&self, queues: &[MessageQueue], _msg: &Message) -> Option<usize> {
        // Java's `mqs.size()` is an int.
        let size = i32::try_from(queues.len()).ok().filter(|n| *n > 0)?;
        // `%` truncates toward zero as Java's does: |value| < size, so `abs` cannot overflow.
        let value = self.hash % size;
        usize::try_from(value.unsigned_abs()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_codes() {
        // Values from Java (and the same formula computed independently).
        let cases: &[(&str, i32)] = &[
            ("", 0),
            ("hello", 99_162_322),
            ("Aa", 2112),
            ("BB", 2112),
            ("é", 233),
            ("😀", 1_772_899), // a surrogate pair: two UTF-16 units
            ("polygenelubricants", i32::MIN),
            ("TopicTest-order-99", -1_765_096_437),
        ];
        for (s, want) in cases {
            assert_eq!(s.java_hash_code(), *want, "{s:?}");
            assert_eq!(s.to_string().java_hash_code(), *want, "{s:?}");
        }
        assert_eq!((-1_234_567_890_123i64).java_hash_code(), 1_912_276_437);
        assert_eq!((-7i32).java_hash_code(), -7);
    }

    #[test]
    fn selection_matches_java_remainder_then_abs() {
        let queues: Vec<_> = (0..5).map(|i| MessageQueue::new("T", "b", i)).collect();
        let msg = Message::new("T", "x");
        // (argument's hash, expected index) from Java's `Math.abs(hash % 5)`.
        let cases: &[(i32, usize)] = &[(-7, 2), (123_456_789, 4), (i32::MIN, 3), (0, 0)];
        for (hash, want) in cases {
            assert_eq!(
                JavaHashSelector::new(hash).select(&queues, &msg),
                Some(*want),
                "{hash}"
            );
        }
        assert_eq!(
            JavaHashSelector::new(&-1_234_567_890_123i64).select(&queues, &msg),
            Some(2)
        );
        assert_eq!(
            JavaHashSelector::new("order-1001").select(&queues, &msg),
            Some(3)
        );
    }
}
