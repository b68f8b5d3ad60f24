//! `Message`: what a producer sends (topic, flag, body, properties).

use bytes::Bytes;

use crate::property;
use crate::Properties;

/// A user property was refused (`Message.putUserProperty` rules, plus the wire separators).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The name is a system property (Java's `MessageConst.STRING_HASH_SET`).
    #[error("the property name `{name}` is used by the system, choose another one")]
    ReservedProperty {
        /// The refused name.
        name: String,
    },
    /// The name is empty or only whitespace.
    #[error("a property name must not be blank")]
    BlankPropertyName,
    /// The value is empty or only whitespace.
    #[error("the value of property `{name}` must not be blank")]
    BlankPropertyValue {
        /// The property name.
        name: String,
    },
    /// The name or value contains `\x01` or `\x02`, which the wire format uses as separators.
    #[error("property `{name}` contains a \\x01 or \\x02 separator character")]
    SeparatorInProperty {
        /// The property name.
        name: String,
    },
}

/// A message to send: topic, user flag, body and properties.
///
/// [`Message::new`] sets `WAIT=true` as Java's constructors do. The `with_*` methods set the
/// well-known properties; [`with_user_property`](Self::with_user_property) refuses system names.
///
/// ```
/// use rmq_common::Message;
/// let msg = Message::new("TopicTest", "hello")
///     .with_tags("TagA")
///     .with_keys(["order-1", "user-7"])
///     .with_user_property("region", "eu")?;
/// assert_eq!(msg.tags(), Some("TagA"));
/// assert_eq!(msg.keys(), ["order-1", "user-7"]);
/// assert_eq!(msg.property("KEYS"), Some("order-1 user-7"));
/// assert!(msg.wait_store_msg_ok());
/// assert!(Message::new("T", "b").with_user_property("TAGS", "x").is_err());
/// # Ok::<(), rmq_common::MessageError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    topic: String,
    flag: i32,
    body: Bytes,
    properties: Properties,
}

impl Message {
    /// A message for `topic` with `body`, flag 0 and `WAIT=true`.
    #[must_use]
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        let mut properties = Properties::with_capacity(6);
        properties.insert_static(property::WAIT, "true");
        Self {
            topic: topic.into(),
            flag: 0,
            body: body.into(),
            properties,
        }
    }

    /// A message from its raw parts, with the properties exactly as given (no `WAIT` added).
    /// Decoders use this.
    #[must_use]
    pub fn from_parts(
        topic: impl Into<String>,
        flag: i32,
        body: Bytes,
        properties: Properties,
    ) -> Self {
        Self {
            topic: topic.into(),
            flag,
            body,
            properties,
        }
    }

    /// Splits the message into `(topic, flag, body, properties)`.
    #[must_use]
    pub fn into_parts(self) -> (String, i32, Bytes, Properties) {
        (self.topic, self.flag, self.body, self.properties)
    }

    /// Sets the tag (`TAGS`). An empty tag removes the property (Java's constructors skip it).
    #[must_use]
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.set_tags(tags);
        self
    }

    /// Sets the tag in place; see [`with_tags`](Self::with_tags).
    pub fn set_tags(&mut self, tags: impl Into<String>) {
        self.put_or_remove(property::TAGS, tags.into());
    }

    /// Sets the keys (`KEYS`), joined with a space as Java's `setKeys(Collection)` does. No key
    /// at all removes the property.
    ///
    /// ```
    /// let m = rmq_common::Message::new("T", "b").with_keys(["a", "b"]);
    /// assert_eq!(m.property("KEYS"), Some("a b"));
    /// ```
    #[must_use]
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut joined = String::new();
        for key in keys {
            if !joined.is_empty() {
                joined.push_str(property::KEY_SEPARATOR);
            }
            joined.push_str(key.as_ref());
        }
        self.put_or_remove(property::KEYS, joined);
        self
    }

    /// Sets the delay level (`DELAY`, 1 = 1 s ... 18 = 2 h on a default broker); 0 removes it.
    #[must_use]
    pub fn with_delay_level(mut self, level: u8) -> Self {
        if level == 0 {
            self.properties.remove(property::DELAY);
        } else {
            self.properties.insert(property::DELAY, level.to_string());
        }
        self
    }

    /// Sets the absolute delivery time in epoch milliseconds (`TIMER_DELIVER_MS`, 5.x brokers).
    #[must_use]
    pub fn with_deliver_time_ms(mut self, epoch_ms: u64) -> Self {
        self.properties
            .insert(property::TIMER_DELIVER_MS, epoch_ms.to_string());
        self
    }

    /// Sets a relative delay in milliseconds (`TIMER_DELAY_MS`, 5.x brokers).
    #[must_use]
    pub fn with_delay_time_ms(mut self, delay_ms: u64) -> Self {
        self.properties
            .insert(property::TIMER_DELAY_MS, delay_ms.to_string());
        self
    }

    /// Sets a relative delay in seconds (`TIMER_DELAY_SEC`, 5.x brokers).
    #[must_use]
    pub fn with_delay_time_sec(mut self, delay_sec: u64) -> Self {
        self.properties
            .insert(property::TIMER_DELAY_SEC, delay_sec.to_string());
        self
    }

    /// Sets whether the broker should answer only once the message is stored (`WAIT`).
    #[must_use]
    pub fn with_wait_store_msg_ok(mut self, wait: bool) -> Self {
        self.properties
            .insert_static(property::WAIT, if wait { "true" } else { "false" });
        self
    }

    /// Sets the user flag (an `int` carried untouched to consumers).
    #[must_use]
    pub fn with_flag(mut self, flag: i32) -> Self {
        self.flag = flag;
        self
    }

    /// Adds a user property.
    ///
    /// # Errors
    /// [`MessageError`] when `name` is reserved ([`property::is_reserved`]), `name` or `value`
    /// is blank, or either contains a wire separator.
    pub fn with_user_property(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MessageError> {
        self.put_user_property(name, value)?;
        Ok(self)
    }

    /// Adds a user property in place; see [`with_user_property`](Self::with_user_property).
    ///
    /// # Errors
    /// As [`with_user_property`](Self::with_user_property).
    pub fn put_user_property(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), MessageError> {
        let name = name.into();
        let value = value.into();
        if property::is_reserved(&name) {
            return Err(MessageError::ReservedProperty { name });
        }
        if name.trim().is_empty() {
            return Err(MessageError::BlankPropertyName);
        }
        if value.trim().is_empty() {
            return Err(MessageError::BlankPropertyValue { name });
        }
        let has_sep = |s: &str| s.contains(['\u{1}', '\u{2}']);
        if has_sep(&name) || has_sep(&value) {
            return Err(MessageError::SeparatorInProperty { name });
        }
        self.properties.insert(name, value);
        Ok(())
    }

    /// The topic.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The user flag.
    #[must_use]
    pub fn flag(&self) -> i32 {
        self.flag
    }

    /// The tag (`TAGS`).
    #[must_use]
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(property::TAGS)
    }

    /// The keys (`KEYS` split on spaces, empty pieces skipped).
    #[must_use]
    pub fn keys(&self) -> Vec<&str> {
        self.properties
            .get(property::KEYS)
            .map(|k| {
                k.split(property::KEY_SEPARATOR)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The delay level (`DELAY`), when present and numeric.
    #[must_use]
    pub fn delay_level(&self) -> Option<u8> {
        self.properties
            .get(property::DELAY)
            .and_then(|v| v.trim().parse().ok())
    }

    /// The absolute delivery time (`TIMER_DELIVER_MS`), when present and numeric.
    #[must_use]
    pub fn deliver_time_ms(&self) -> Option<u64> {
        self.properties
            .get(property::TIMER_DELIVER_MS)
            .and_then(|v| v.trim().parse().ok())
    }

    /// `WAIT` as Java's `isWaitStoreMsgOK`: true when absent, else `Boolean.parseBoolean`.
    #[must_use]
    pub fn wait_store_msg_ok(&self) -> bool {
        self.properties
            .get(property::WAIT)
            .is_none_or(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A user property (any property, as Java's `getUserProperty`).
    #[must_use]
    pub fn user_property(&self, name: &str) -> Option<&str> {
        self.properties.get(name)
    }

    /// The properties whose names are not reserved.
    pub fn user_properties(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.properties
            .iter()
            .filter(|(k, _)| !property::is_reserved(k))
    }

    /// Any property, system ones included.
    #[must_use]
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name)
    }

    /// All properties.
    #[must_use]
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// Raw, **unchecked** access to the properties: what the producer uses to set system
    /// properties such as `UNIQ_KEY`, `TRAN_MSG` or `PGROUP`. No reserved-name or separator check.
    pub fn properties_mut(&mut self) -> &mut Properties {
        &mut self.properties
    }

    /// Replaces the topic.
    pub fn set_topic(&mut self, topic: impl Into<String>) {
        self.topic = topic.into();
    }

    /// Replaces the body.
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = body.into();
    }

    /// Replaces the user flag.
    pub fn set_flag(&mut self, flag: i32) {
        self.flag = flag;
    }

    fn put_or_remove(&mut self, name: &'static str, value: String) {
        if value.is_empty() {
            self.properties.remove(name);
        } else {
            self.properties.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sets_wait_true() {
        let m = Message::new("T", "b");
        assert_eq!(m.property("WAIT"), Some("true"));
        assert_eq!(m.properties().len(), 1);
        assert_eq!(m.flag(), 0);
        assert_eq!(m.body().as_ref(), b"b");
        assert_eq!(m.topic(), "T");
    }

    #[test]
    fn typed_accessors_round_trip() {
        let m = Message::new("T", "b")
            .with_tags("TagA")
            .with_keys(["k1", "k2", "k3"])
            .with_delay_level(3)
            .with_deliver_time_ms(1_700_000_000_000)
            .with_wait_store_msg_ok(false)
            .with_flag(7);
        assert_eq!(m.tags(), Some("TagA"));
        assert_eq!(m.keys(), ["k1", "k2", "k3"]);
        assert_eq!(m.delay_level(), Some(3));
        assert_eq!(m.deliver_time_ms(), Some(1_700_000_000_000));
        assert!(!m.wait_store_msg_ok());
        assert_eq!(m.flag(), 7);
        let decoded = Properties::decode(&m.properties().encode());
        assert_eq!(&decoded, m.properties());
    }

    #[test]
    fn empty_values_remove_properties() {
        let m = Message::new("T", "b").with_tags("A").with_tags("");
        assert_eq!(m.tags(), None);
        let m = m.with_keys(["k"]).with_keys(Vec::<String>::new());
        assert!(m.keys().is_empty());
        let m = m.with_delay_level(4).with_delay_level(0);
        assert_eq!(m.delay_level(), None);
    }

    #[test]
    fn wait_store_msg_ok_follows_java() {
        let mut m = Message::new("T", "b");
        m.properties_mut().remove("WAIT");
        assert!(m.wait_store_msg_ok());
        m.properties_mut().insert("WAIT", "TRUE");
        assert!(m.wait_store_msg_ok());
        m.properties_mut().insert("WAIT", "yes");
        assert!(!m.wait_store_msg_ok());
    }

    #[test]
    fn user_property_rules() {
        let cases: &[(&str, &str, Option<MessageError>)] = &[
            ("region", "eu", None),
            (
                "TAGS",
                "x",
                Some(MessageError::ReservedProperty {
                    name: "TAGS".into(),
                }),
            ),
            (
                "UNIQ_KEY",
                "x",
                Some(MessageError::ReservedProperty {
                    name: "UNIQ_KEY".into(),
                }),
            ),
            ("", "x", Some(MessageError::BlankPropertyName)),
            ("  ", "x", Some(MessageError::BlankPropertyName)),
            (
                "a",
                "",
                Some(MessageError::BlankPropertyValue { name: "a".into() }),
            ),
            (
                "a",
                " \t",
                Some(MessageError::BlankPropertyValue { name: "a".into() }),
            ),
            (
                "a\u{1}b",
                "x",
                Some(MessageError::SeparatorInProperty {
                    name: "a\u{1}b".into(),
                }),
            ),
            (
                "a",
                "x\u{2}",
                Some(MessageError::SeparatorInProperty { name: "a".into() }),
            ),
        ];
        for (name, value, want) in cases {
            let got = Message::new("T", "b").with_user_property(*name, *value);
            match want {
                None => assert_eq!(got.expect("accepted").user_property(name), Some(*value)),
                Some(err) => assert_eq!(got.expect_err("refused"), *err, "{name:?}={value:?}"),
            }
        }
    }

    #[test]
    fn user_properties_skip_system_names() {
        let m = Message::new("T", "b")
            .with_tags("x")
            .with_user_property("a", "1")
            .expect("ok");
        assert_eq!(m.user_properties().collect::<Vec<_>>(), [("a", "1")]);
    }
}
