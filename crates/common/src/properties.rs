//! `Properties`: a message's string properties and their `\x01`/`\x02` wire form.
//!
//! Java (`MessageDecoder.messageProperties2String`) writes each entry as `name \x01 value \x02`.
//! Versions 4.9.1 – 5.1.4 dropped the last `\x02`; 5.2+ (and the real-server fixture) keep it.
//! [`Properties::encode`] writes the trailing separator; [`Properties::decode`] accepts both
//! forms and drops malformed segments exactly like Java's `string2messageProperties`.

use std::borrow::Cow;
use std::fmt;

/// Separator between a property name and its value (`(char) 1`).
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Separator after each property entry (`(char) 2`).
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// An insertion-ordered string map with replace semantics: the properties of a message.
///
/// Setting an existing name replaces its value in place. Equality is map equality (the order
/// of entries does not matter), as for Java's `HashMap`.
///
/// ```
/// use rmq_common::Properties;
/// let mut p = Properties::new();
/// p.insert("WAIT", "true");
/// p.insert("TAGS", "TagA");
/// assert_eq!(p.encode(), "WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}");
/// assert_eq!(Properties::decode(&p.encode()), p);
/// ```
#[derive(Clone, Default)]
pub struct Properties {
    /// Names and values; constants (`WAIT`, `true`) are borrowed, not allocated per message.
    entries: Vec<(Text, Text)>,
}

/// A property name or value.
type Text = Cow<'static, str>;

impl Properties {
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

    /// The value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &**v)
    }

    /// Sets `name` to `value`, returning the previous value. An existing entry keeps its position.
    ///
    /// No check is made here: names and values containing `\x01`/`\x02`, or empty values, are
    /// stored as given (and would not survive a [`decode`](Self::decode), as in Java).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.put(Cow::Owned(name.into()), Cow::Owned(value.into()))
            .map(Cow::into_owned)
    }

    /// [`insert`](Self::insert) under a constant name (such as a [`crate::property`] name),
    /// without allocating the name.
    ///
    /// ```
    /// use rmq_common::{property, Properties};
    /// let mut p = Properties::new();
    /// assert_eq!(p.insert_named(property::UNIQ_KEY, "id-1"), None);
    /// assert_eq!(p.insert_named(property::UNIQ_KEY, "id-2"), Some("id-1".to_owned()));
    /// assert_eq!(p.get(property::UNIQ_KEY), Some("id-2"));
    /// ```
    pub fn insert_named(&mut self, name: &'static str, value: impl Into<String>) -> Option<String> {
        self.put(Cow::Borrowed(name), Cow::Owned(value.into()))
            .map(Cow::into_owned)
    }

    /// [`insert`](Self::insert) of constant text, without allocating.
    pub(crate) fn insert_static(&mut self, name: &'static str, value: &'static str) {
        self.put(Cow::Borrowed(name), Cow::Borrowed(value));
    }

    fn put(&mut self, name: Text, value: Text) -> Option<Text> {
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some(std::mem::replace(&mut slot.1, value))
        } else {
            self.entries.push((name, value));
            None
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let pos = self.entries.iter().position(|(k, _)| k == name)?;
        Some(self.entries.remove(pos).1.into_owned())
    }

    /// Whether `name` is present.
    #[must_use]
    pub fn contains_key(&self, name: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == name)
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over `(name, value)` in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The byte length of [`encode`](Self::encode)'s result, without building it.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum()
    }

    /// The wire form: `name \x01 value \x02` per entry, in insertion order, **with** the
    /// trailing `\x02` (Java 5.2+). An empty map encodes to `""`.
    ///
    /// ```
    /// use rmq_common::Properties;
    /// let p: Properties = [("KEYS", "k1 k2")].into_iter().collect();
    /// assert_eq!(p.encode(), "KEYS\u{1}k1 k2\u{2}");
    /// assert_eq!(Properties::new().encode(), "");
    /// ```
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the wire form to `out`.
    pub fn encode_into(&self, out: &mut String) {
        for (k, v) in &self.entries {
            out.push_str(k);
            out.push(NAME_VALUE_SEPARATOR);
            out.push_str(v);
            out.push(PROPERTY_SEPARATOR);
        }
    }

    /// Parses the wire form exactly like Java's `string2messageProperties` (4.9.1+ / 5.x):
    /// segments end at `\x02` or at the end of the string (so a missing trailing separator is
    /// fine); in each segment the name ends at the first `\x01`; a segment whose name or value
    /// would be empty (no `\x01`, `\x01` first, or `\x01` last) is silently dropped; a later
    /// duplicate name replaces an earlier one.
    ///
    /// ```
    /// use rmq_common::Properties;
    /// let p = Properties::decode("A\u{1}1\u{2}\u{1}x\u{2}B\u{1}\u{2}C\u{1}3");
    /// assert_eq!(p.iter().collect::<Vec<_>>(), [("A", "1"), ("C", "3")]);
    /// ```
    #[must_use]
    pub fn decode(s: &str) -> Self {
        let mut props = Self::with_capacity(s.bytes().filter(|&b| b == 2).count() + 1);
        for segment in s.split(PROPERTY_SEPARATOR) {
            // Java: `newIndex - index >= 3` and `index < kvSep < newIndex - 1`: a non-empty name
            // and a non-empty value, split at the first separator (the value may hold more \x01).
            if let Some((name, value)) = segment.split_once(NAME_VALUE_SEPARATOR) {
                if !name.is_empty() && !value.is_empty() {
                    props.insert(name, value);
                }
            }
        }
        props
    }
}

impl PartialEq for Properties {
    /// Map equality: same names with the same values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Properties {}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = Self::new();
        for (k, v) in iter {
            p.insert(k, v);
        }
        p
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Properties {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &Properties) -> Vec<(&str, &str)> {
        p.iter().collect()
    }

    #[test]
    fn constant_and_owned_text_behave_the_same() {
        let mut p = Properties::new();
        p.insert_static("WAIT", "true");
        assert_eq!(p.get("WAIT"), Some("true"));
        assert_eq!(
            p.insert("WAIT", String::from("false")),
            Some("true".to_owned())
        );
        p.insert_static("TAGS", "a");
        assert_eq!(pairs(&p), [("WAIT", "false"), ("TAGS", "a")]);
        assert_eq!(p.encode(), "WAIT\u{1}false\u{2}TAGS\u{1}a\u{2}");
        let owned: Properties = [("WAIT", "false"), ("TAGS", "a")].into_iter().collect();
        assert_eq!(p, owned);
        assert_eq!(p.remove("TAGS"), Some("a".to_owned()));
        assert_eq!(pairs(&p), [("WAIT", "false")]);
    }

    #[test]
    fn decode_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("WAIT\u{1}true\u{2}", &[("WAIT", "true")]),
            ("WAIT\u{1}true", &[("WAIT", "true")]),
            ("A\u{1}1\u{2}B\u{1}2\u{2}", &[("A", "1"), ("B", "2")]),
            ("A\u{1}1\u{2}B\u{1}2", &[("A", "1"), ("B", "2")]),
            // segments shorter than 3 chars are skipped
            ("A\u{1}\u{2}B\u{1}2", &[("B", "2")]),
            ("\u{2}\u{2}A\u{1}1", &[("A", "1")]),
            ("ab\u{2}A\u{1}1", &[("A", "1")]),
            // no name/value separator in the segment: dropped (Java's indexOf finds a later one)
            ("abc\u{2}A\u{1}1", &[("A", "1")]),
            // empty name
            ("\u{1}abc\u{2}A\u{1}1", &[("A", "1")]),
            // empty value
            ("ab\u{1}\u{2}A\u{1}1\u{2}", &[("A", "1")]),
            // value keeps later \x01
            ("A\u{1}x\u{1}y\u{2}", &[("A", "x\u{1}y")]),
            // duplicate: last wins, first position kept
            (
                "A\u{1}1\u{2}B\u{1}2\u{2}A\u{1}3\u{2}",
                &[("A", "3"), ("B", "2")],
            ),
            // double trailing separator
            ("A\u{1}1\u{2}\u{2}", &[("A", "1")]),
            // non-ASCII survives
            (
                "K\u{1}h\u{e9}llo \u{4e16}\u{2}",
                &[("K", "h\u{e9}llo \u{4e16}")],
            ),
            // spaces are ordinary characters
            ("KEYS\u{1}k1 k2\u{2}", &[("KEYS", "k1 k2")]),
        ];
        for (input, want) in cases {
            let got = Properties::decode(input);
            assert_eq!(pairs(&got), *want, "input {input:?}");
        }
    }

    #[test]
    fn encode_table() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], ""),
            (&[("WAIT", "true")], "WAIT\u{1}true\u{2}"),
            (
                &[("TAGS", "TagA"), ("KEYS", "k1 k2")],
                "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}",
            ),
        ];
        for (entries, want) in cases {
            let p: Properties = entries.iter().copied().collect();
            assert_eq!(p.encode(), *want);
            assert_eq!(p.encoded_len(), want.len());
        }
    }

    #[test]
    fn insert_replaces_in_place_and_remove() {
        let mut p = Properties::new();
        assert_eq!(p.insert("A", "1"), None);
        p.insert("B", "2");
        assert_eq!(p.insert("A", "9").as_deref(), Some("1"));
        assert_eq!(pairs(&p), [("A", "9"), ("B", "2")]);
        assert_eq!(p.remove("A").as_deref(), Some("9"));
        assert_eq!(p.remove("A"), None);
        assert_eq!(pairs(&p), [("B", "2")]);
        assert!(p.contains_key("B"));
    }

    #[test]
    fn equality_ignores_order() {
        let a: Properties = [("A", "1"), ("B", "2")].into_iter().collect();
        let b: Properties = [("B", "2"), ("A", "1")].into_iter().collect();
        let c: Properties = [("B", "2"), ("A", "2")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, Properties::new());
    }
}
