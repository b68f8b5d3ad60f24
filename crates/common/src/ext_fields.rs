//! `ExtFields`: the string map that carries a command's custom header on the wire.

use std::fmt;

use bytestring::ByteString;

/// The `extFields` of a remoting command: string keys to string values.
///
/// Kept as a small vector in insertion order (headers have about a dozen entries, where a linear
/// scan beats hashing). Keys and values are [`ByteString`]s, so a decoder can hand out slices of
/// the received frame without copying, and static key names cost no allocation.
///
/// Duplicate keys can arrive from Java's ROCKETMQ encoding (fast-codes headers written twice);
/// as in Java's `HashMap::put`, the **last** one wins: [`get`](Self::get) searches from the end.
///
/// ```
/// use rmq_common::ExtFields;
/// let mut ext = ExtFields::new();
/// ext.insert("topic", "TopicTest");
/// ext.insert("topic", "Other"); // replaces
/// assert_eq!(ext.get("topic"), Some("Other"));
/// assert_eq!(ext.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct ExtFields {
    entries: Vec<(ByteString, ByteString)>,
}

impl ExtFields {
    /// An empty map.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `n` entries.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Sets `key` to `value`, replacing an existing value of the same key.
    pub fn insert(&mut self, key: impl Into<ByteString>, value: impl Into<ByteString>) {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.entries.iter_mut().rev().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }

    /// Appends an entry without looking for an existing key (decoders use this; a later
    /// duplicate shadows an earlier one for [`get`](Self::get)).
    pub fn push(&mut self, key: ByteString, value: ByteString) {
        self.entries.push((key, value));
    }

    /// The value of `key` (the last one if the key is duplicated).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// Removes every entry of `key`, returning the value that [`get`](Self::get) would have returned.
    pub fn remove(&mut self, key: &str) -> Option<ByteString> {
        let found = self
            .entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        self.entries.retain(|(k, _)| k != key);
        found
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Number of stored entries (duplicates included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over the entries in insertion order (duplicates included).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Iterates over the raw entries.
    pub fn entries(&self) -> impl Iterator<Item = &(ByteString, ByteString)> + '_ {
        self.entries.iter()
    }

    /// The effective entries (last value per key), sorted by key: what a map-semantics reader sees.
    #[must_use]
    pub fn to_sorted(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(self.entries.len());
        for (k, v) in self.entries.iter().rev() {
            if !out.iter().any(|(ok, _)| *ok == &**k) {
                out.push((k, v));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }
}

impl PartialEq for ExtFields {
    /// Map equality: the same effective value for every key, whatever the order or duplicates.
    fn eq(&self, other: &Self) -> bool {
        self.to_sorted() == other.to_sorted()
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<ByteString>, V: Into<ByteString>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut ext = Self::new();
        for (k, v) in iter {
            ext.insert(k, v);
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_duplicate_wins() {
        let mut ext = ExtFields::new();
        ext.push("a".into(), "1".into());
        ext.push("a".into(), "2".into());
        assert_eq!(ext.get("a"), Some("2"));
        assert_eq!(ext.to_sorted(), vec![("a", "2")]);
        assert_eq!(ext.remove("a").as_deref(), Some("2"));
        assert!(ext.is_empty());
    }

    #[test]
    fn equality_is_map_equality() {
        let a: ExtFields = [("x", "1"), ("y", "2")].into_iter().collect();
        let mut b = ExtFields::new();
        b.push("y".into(), "2".into());
        b.push("x".into(), "0".into());
        b.push("x".into(), "1".into());
        assert_eq!(a, b);
    }
}
