//! Namespaces (Java's `NamespaceUtil`): a client with a namespace `ns` names every topic and
//! group `ns%name` on the wire. The `%RETRY%` and `%DLQ%` prefixes stay in front
//! (`%RETRY%ns%group`); system topics (`TBW102`, `rmq_sys_*`, ...) and system groups
//! (`CID_RMQ_SYS_*`) are never wrapped, and a name already in the namespace is left as it is.
//!
//! ```
//! use rmq_common::namespace::{unwrap, wrap};
//!
//! assert_eq!(wrap(Some("ns"), "Orders"), "ns%Orders");
//! assert_eq!(wrap(Some("ns"), "%RETRY%group"), "%RETRY%ns%group");
//! assert_eq!(wrap(Some("ns"), "ns%Orders"), "ns%Orders");
//! assert_eq!(wrap(Some("ns"), "TBW102"), "TBW102");
//! assert_eq!(wrap(None, "Orders"), "Orders");
//! assert_eq!(unwrap(Some("ns"), "ns%Orders"), "Orders");
//! assert_eq!(unwrap(Some("other"), "ns%Orders"), "ns%Orders");
//! ```

use std::borrow::Cow;

use crate::validate::is_system_topic;

/// Separates the namespace from the name (`NamespaceUtil.NAMESPACE_SEPARATOR`).
pub const SEPARATOR: char = '%';

/// Prefix of retry topics (`MixAll.RETRY_GROUP_TOPIC_PREFIX`).
pub const RETRY_PREFIX: &str = "%RETRY%";

/// Prefix of dead-letter topics (`MixAll.DLQ_GROUP_TOPIC_PREFIX`).
pub const DLQ_PREFIX: &str = "%DLQ%";

/// Prefix of system consumer groups (`MixAll.CID_RMQ_SYS_PREFIX`).
pub const SYSTEM_GROUP_PREFIX: &str = "CID_RMQ_SYS_";

/// Whether `resource` is a system topic or group, never namespaced
/// (`NamespaceUtil.isSystemResource`).
#[must_use]
pub fn is_system_resource(resource: &str) -> bool {
    !resource.is_empty() && (is_system_topic(resource) || resource.starts_with(SYSTEM_GROUP_PREFIX))
}

/// Whether `resource` is a retry topic (`%RETRY%...`; `NamespaceUtil.isRetryTopic`).
#[must_use]
pub fn is_retry_topic(resource: &str) -> bool {
    !resource.trim().is_empty() && resource.starts_with(RETRY_PREFIX)
}

/// Whether `resource` is a dead-letter topic (`%DLQ%...`; `NamespaceUtil.isDLQTopic`).
#[must_use]
pub fn is_dlq_topic(resource: &str) -> bool {
    !resource.trim().is_empty() && resource.starts_with(DLQ_PREFIX)
}

/// `resource` without its `%RETRY%` or `%DLQ%` prefix (`NamespaceUtil.withOutRetryAndDLQ`).
#[must_use]
pub fn without_retry_and_dlq(resource: &str) -> &str {
    if is_retry_topic(resource) {
        &resource[RETRY_PREFIX.len()..]
    } else if is_dlq_topic(resource) {
        &resource[DLQ_PREFIX.len()..]
    } else {
        resource
    }
}

/// The `%RETRY%` or `%DLQ%` prefix of `resource`, or `""`.
fn prefix_of(resource: &str) -> &'static str {
    if is_retry_topic(resource) {
        RETRY_PREFIX
    } else if is_dlq_topic(resource) {
        DLQ_PREFIX
    } else {
        ""
    }
}

/// Whether `resource` is already in `namespace` (`NamespaceUtil.isAlreadyWithNamespace`).
#[must_use]
pub fn is_already_with_namespace(resource: &str, namespace: &str) -> bool {
    if namespace.is_empty() || resource.is_empty() || is_system_resource(resource) {
        return false;
    }
    in_namespace(without_retry_and_dlq(resource), namespace)
}

/// Whether `name` (prefix removed) starts with `namespace%`.
fn in_namespace(name: &str, namespace: &str) -> bool {
    name.strip_prefix(namespace)
        .is_some_and(|rest| rest.starts_with(SEPARATOR))
}

/// `resource` in `namespace` (`NamespaceUtil.wrapNamespace`): `ns%name`, `%RETRY%ns%name`,
/// `%DLQ%ns%name`. Unchanged without a namespace (`None` or empty), for an empty or system
/// resource, and for one already in the namespace.
#[must_use]
pub fn wrap<'a>(namespace: Option<&str>, resource: &'a str) -> Cow<'a, str> {
    let Some(ns) = namespace.filter(|ns| !ns.is_empty()) else {
        return Cow::Borrowed(resource);
    };
    if resource.is_empty()
        || is_system_resource(resource)
        || is_already_with_namespace(resource, ns)
    {
        return Cow::Borrowed(resource);
    }
    let prefix = prefix_of(resource);
    let name = without_retry_and_dlq(resource);
    Cow::Owned(format!("{prefix}{ns}{SEPARATOR}{name}"))
}

/// The retry topic of `group` in `namespace` (`NamespaceUtil.wrapNamespaceAndRetry`):
/// `%RETRY%ns%group`; `None` for an empty group.
#[must_use]
pub fn wrap_retry(namespace: Option<&str>, group: &str) -> Option<String> {
    (!group.is_empty()).then(|| format!("{RETRY_PREFIX}{}", wrap(namespace, group)))
}

/// `resource` out of whatever namespace it is in (`NamespaceUtil.withoutNamespace(String)`):
/// the part after the first `%` (past a `%RETRY%`/`%DLQ%` prefix, which is kept). Unchanged for
/// system resources and names with no namespace.
#[must_use]
pub fn without_any(resource: &str) -> Cow<'_, str> {
    if resource.is_empty() || is_system_resource(resource) {
        return Cow::Borrowed(resource);
    }
    let prefix = prefix_of(resource);
    let name = without_retry_and_dlq(resource);
    match name.find(SEPARATOR) {
        Some(i) if i > 0 => Cow::Owned(format!("{prefix}{}", &name[i + 1..])),
        _ => Cow::Borrowed(resource),
    }
}

/// `resource` out of `namespace` (`NamespaceUtil.withoutNamespace(String, String)`, what
/// Java's `ClientConfig.withoutNamespace` uses): unchanged unless it is in that namespace.
#[must_use]
pub fn unwrap<'a>(namespace: Option<&str>, resource: &'a str) -> Cow<'a, str> {
    let Some(ns) = namespace.filter(|ns| !ns.is_empty()) else {
        return Cow::Borrowed(resource);
    };
    if resource.is_empty() || !in_namespace(without_retry_and_dlq(resource), ns) {
        return Cow::Borrowed(resource);
    }
    without_any(resource)
}

/// The namespace `resource` is in, or `""` (`NamespaceUtil.getNamespaceFromResource`).
#[must_use]
pub fn namespace_of(resource: &str) -> &str {
    if resource.is_empty() || is_system_resource(resource) {
        return "";
    }
    let name = without_retry_and_dlq(resource);
    match name.find(SEPARATOR) {
        Some(i) if i > 0 => &name[..i],
        _ => "",
    }
}

/// What a namespace may contain: the characters of a topic except `%` (it would be read back
/// as the separator), at least one.
///
/// ```
/// use rmq_common::namespace::is_valid_namespace;
/// assert!(is_valid_namespace("MQ_INST_xxx-1"));
/// assert!(!is_valid_namespace("a%b"));
/// assert!(!is_valid_namespace(""));
/// ```
#[must_use]
pub fn is_valid_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '|')
}

#[cfg(test)]
mod tests;
