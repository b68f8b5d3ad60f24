//! `ExtFields`: the string map that carries a command's custom header on the wire.

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use crate::ext_json::{self, JsonEntries};

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
/// A JSON decoder may keep the entries as the object text they arrived in instead
/// ([`from_plain_json`](Self::from_plain_json)), read on demand: a reply then costs no
/// allocation and no reference count per entry. Every method works the same on either form;
/// the first change (insert, push, remove) turns the text into ordinary entries.
#[derive(Clone)]
pub struct ExtFields {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Owned(Vec<(ByteString, ByteString)>),
    Json(JsonEntries),
}

impl Default for ExtFields {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtFields {
    /// An empty map.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            repr: Repr::Owned(Vec::new()),
        }
    }

    /// An empty map with room for `n` entries.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            repr: Repr::Owned(Vec::with_capacity(n)),
        }
    }

    /// The entries as a vector (offsets turned into shared slices), to change them.
    fn owned_mut(&mut self) -> &mut Vec<(ByteString, ByteString)> {
        if let Repr::Json(e) = &self.repr {
            let v = e.iter().map(|(k, v)| (e.share(k), e.share(v))).collect();
            self.repr = Repr::Owned(v);
        }
        match &mut self.repr {
            Repr::Owned(v) => v,
            Repr::Json(_) => unreachable!("turned into entries just above"),
        }
    }

    /// Sets `key` to `value`, replacing an existing value of the same key.
    pub fn insert(&mut self, key: impl Into<ByteString>, value: impl Into<ByteString>) {
        let key = key.into();
        let value = value.into();
        let entries = self.owned_mut();
        if let Some(slot) = entries.iter_mut().rev().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            entries.push((key, value));
        }
    }

    /// Appends an entry without looking for an existing key (decoders use this; a later
    /// duplicate shadows an earlier one for [`get`](Self::get)).
    pub fn push(&mut self, key: ByteString, value: ByteString) {
        self.owned_mut().push((key, value));
    }

    /// Reads the JSON object that starts at byte `at` of `src` (its `{`) when it is an object of
    /// plain strings as Java and brokers write it: no whitespace, no escapes, no control
    /// characters. The entries stay in `src`'s text, read when asked for (no allocation, no
    /// reference count per entry). Returns them and the index just past the object's `}`;
    /// `None` for anything else (it may still be valid JSON, for a full decoder to read).
    ///
    /// ```
    /// use bytestring::ByteString;
    /// use rmq_common::ExtFields;
    /// let src = ByteString::from_static(r#"{"queueId":"3","msgId":"AB"},"#);
    /// let (mut ext, end) = ExtFields::from_plain_json(&src, 0).unwrap();
    /// assert_eq!(end, src.len() - 1);
    /// assert_eq!(ext.get("queueId"), Some("3"));
    /// ext.insert("queueId", "4"); // becomes an ordinary map
    /// assert_eq!(ext.get("queueId"), Some("4"));
    /// assert!(ExtFields::from_plain_json(&ByteString::from_static(r#"{"a":1}"#), 0).is_none());
    /// ```
    #[must_use]
    pub fn from_plain_json(src: &ByteString, at: usize) -> Option<(Self, usize)> {
        let (entries, end) = JsonEntries::parse(src, at)?;
        Some((Self::from_entries(entries), end))
    }

    /// [`from_plain_json`](Self::from_plain_json) for a frame not known to be UTF-8: only the
    /// object's bytes are checked (once), for a decoder that checks the rest of the frame
    /// itself. `None` also when the object is not UTF-8.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use rmq_common::ExtFields;
    /// let src = Bytes::from_static(br#"{"x":{"queueId":"3"}}"#);
    /// let (ext, end) = ExtFields::from_plain_json_bytes(&src, 5).unwrap();
    /// assert_eq!(end, src.len() - 1);
    /// assert_eq!(ext.get("queueId"), Some("3"));
    /// let bad = Bytes::from_static(b"{\"a\":\"\xFF\"}");
    /// assert!(ExtFields::from_plain_json_bytes(&bad, 0).is_none());
    /// ```
    #[must_use]
    pub fn from_plain_json_bytes(src: &Bytes, at: usize) -> Option<(Self, usize)> {
        let (entries, end) = JsonEntries::parse_bytes(src, at)?;
        Some((Self::from_entries(entries), end))
    }

    /// The map of parsed entries (none: an ordinary empty map).
    fn from_entries(entries: JsonEntries) -> Self {
        let repr = if entries.len() == 0 {
            Repr::Owned(Vec::new())
        } else {
            Repr::Json(entries)
        };
        Self { repr }
    }

    /// The entries when they are still the JSON text they arrived in.
    pub(crate) const fn as_json(&self) -> Option<&JsonEntries> {
        match &self.repr {
            Repr::Json(e) => Some(e),
            Repr::Owned(_) => None,
        }
    }

    /// The value of `key` (the last one if the key is duplicated).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        match &self.repr {
            Repr::Owned(v) => v.iter().rev().find(|(k, _)| k == key).map(|(_, v)| &**v),
            Repr::Json(e) => e.get(key),
        }
    }

    /// Removes every entry of `key`, returning the value that [`get`](Self::get) would have returned.
    pub fn remove(&mut self, key: &str) -> Option<ByteString> {
        let entries = self.owned_mut();
        let found = entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        entries.retain(|(k, _)| k != key);
        found
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Number of stored entries (duplicates included).
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Owned(v) => v.len(),
            Repr::Json(e) => e.len(),
        }
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates over the entries in insertion order (duplicates included).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        match &self.repr {
            Repr::Owned(v) => Iter::Owned(v.iter()),
            Repr::Json(e) => Iter::Json(e.iter()),
        }
    }

    /// Iterates over the raw entries (shared slices: no copy of the text).
    pub fn entries(&self) -> impl Iterator<Item = (ByteString, ByteString)> + '_ {
        let (owned, json) = match &self.repr {
            Repr::Owned(v) => (&v[..], None),
            Repr::Json(e) => (&[][..], Some(e)),
        };
        let shared = json
            .into_iter()
            .flat_map(|e| e.iter().map(move |(k, v)| (e.share(k), e.share(v))));
        owned.iter().cloned().chain(shared)
    }

    /// The effective entries (last value per key), sorted by key: what a map-semantics reader sees.
    #[must_use]
    pub fn to_sorted(&self) -> Vec<(&str, &str)> {
        let all: Vec<(&str, &str)> = self.iter().collect();
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(all.len());
        for &(k, v) in all.iter().rev() {
            if !out.iter().any(|(ok, _)| *ok == k) {
                out.push((k, v));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// The iterator of [`ExtFields::iter`].
enum Iter<'a> {
    Owned(std::slice::Iter<'a, (ByteString, ByteString)>),
    Json(ext_json::Iter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match self {
            Self::Owned(it) => it.next().map(|(k, v)| (&**k, &**v)),
            Self::Json(it) => it.next(),
        }
    }

    /// One look at the form for the whole walk (`for_each` and the other internal iterations
    /// go through here): an encoder's loop over the entries runs over the slice itself.
    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, mut f: F) -> B {
        match self {
            Self::Owned(it) => it.fold(init, |acc, (k, v)| f(acc, (&**k, &**v))),
            Self::Json(it) => it.fold(init, f),
        }
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

    /// `{"k0":"v0",...}` with `n` entries, and the ext fields read from it.
    fn sliced(n: usize) -> (ByteString, ExtFields) {
        let body: Vec<String> = (0..n).map(|i| format!("\"k{i}\":\"v{i}\"")).collect();
        let src = ByteString::from(format!("{{{}}}", body.join(",")));
        let (ext, end) = ExtFields::from_plain_json(&src, 0).expect("plain");
        assert_eq!(end, src.len());
        (src, ext)
    }

    #[test]
    fn sliced_entries_behave_as_owned_ones() {
        for n in [0, 1, 7, 8, 9, 20] {
            let (src, ext) = sliced(n);
            let owned: ExtFields = (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
            assert_eq!(ext, owned, "{n}");
            assert_eq!(ext.len(), n);
            assert_eq!(format!("{ext:?}"), format!("{owned:?}"));
            assert!(ext.iter().eq(owned.iter()));
            assert!(ext.entries().eq(owned.entries()));
            for (k, v) in ext.entries() {
                let inside = src.as_ptr() as usize..src.as_ptr() as usize + src.len();
                assert!(inside.contains(&(k.as_ptr() as usize)), "{n}: {k} copied");
                assert!(inside.contains(&(v.as_ptr() as usize)), "{n}: {v} copied");
            }
            assert_eq!(ext.get("k0"), owned.get("k0"));
            assert!(!ext.contains_key("nope"));
        }
    }

    #[test]
    fn changing_sliced_entries_keeps_them() {
        let (_, mut ext) = sliced(3);
        let mut other = ext.clone();
        ext.insert("k1", "x");
        assert_eq!(ext.get("k1"), Some("x"));
        assert_eq!(ext.get("k2"), Some("v2"));
        assert_eq!(ext.len(), 3);
        assert_eq!(other.remove("k0").as_deref(), Some("v0"));
        assert_eq!(other.len(), 2);
        other.push("k2".into(), "again".into());
        assert_eq!(other.get("k2"), Some("again"));
        // duplicates: the last one wins, in both forms
        let src = ByteString::from(r#"{"a":"1","a":"2"}"#);
        let (mut ext, _) = ExtFields::from_plain_json(&src, 0).expect("plain");
        assert_eq!(ext.len(), 2);
        assert_eq!(ext.get("a"), Some("2"));
        assert_eq!(ext.to_sorted(), vec![("a", "2")]);
        ext.push("b".into(), "3".into());
        assert_eq!(ext.get("a"), Some("2"));
        assert_eq!(ext.to_sorted(), vec![("a", "2"), ("b", "3")]);
    }
}
