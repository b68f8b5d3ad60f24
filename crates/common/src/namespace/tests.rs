//! Every case of Java's `NamespaceUtilTest` (and of the examples in `NamespaceUtil`'s docs), as
//! tables.

use super::*;

const NS: &str = "MQ_INST_XXX";
const NS_WRONG: &str = "MQ_INST_XXX1";

#[test]
fn wrap_as_java() {
    // (namespace, resource) -> wrapped
    let cases: &[(Option<&str>, &str, &str)] = &[
        (Some(NS), "TOPIC_XXX", "MQ_INST_XXX%TOPIC_XXX"),
        // already wrapped: unchanged
        (Some(NS), "MQ_INST_XXX%TOPIC_XXX", "MQ_INST_XXX%TOPIC_XXX"),
        (Some(NS), "%RETRY%GID_XXX", "%RETRY%MQ_INST_XXX%GID_XXX"),
        (
            Some(NS),
            "%RETRY%MQ_INST_XXX%GID_XXX",
            "%RETRY%MQ_INST_XXX%GID_XXX",
        ),
        (Some(NS), "%DLQ%GID_XXX", "%DLQ%MQ_INST_XXX%GID_XXX"),
        (
            Some(NS),
            "%DLQ%MQ_INST_XXX%GID_XXX",
            "%DLQ%MQ_INST_XXX%GID_XXX",
        ),
        // system topics and groups: unchanged
        (Some(NS), "rmq_sys_topic", "rmq_sys_topic"),
        (Some(NS), "TBW102", "TBW102"),
        (
            Some(NS),
            "RMQ_SYS_TRANS_HALF_TOPIC",
            "RMQ_SYS_TRANS_HALF_TOPIC",
        ),
        (Some(NS), "SCHEDULE_TOPIC_XXXX", "SCHEDULE_TOPIC_XXXX"),
        (Some(NS), "CID_RMQ_SYS_group", "CID_RMQ_SYS_group"),
        // no namespace, empty resource: unchanged
        (None, "TOPIC_XXX", "TOPIC_XXX"),
        (Some(""), "TOPIC_XXX", "TOPIC_XXX"),
        (Some(NS), "", ""),
        // in another namespace: wrapped again (Java only checks its own)
        (
            Some(NS),
            "MQ_INST_XXX1%TOPIC_XXX",
            "MQ_INST_XXX%MQ_INST_XXX1%TOPIC_XXX",
        ),
        // a namespace that is a prefix of another is not "already in it"
        (Some(NS), "MQ_INST_XXXY%T", "MQ_INST_XXX%MQ_INST_XXXY%T"),
    ];
    for &(ns, resource, want) in cases {
        assert_eq!(wrap(ns, resource), want, "wrap({ns:?}, {resource:?})");
    }
}

#[test]
fn unwrap_in_a_namespace_as_java() {
    // (namespace, resource) -> without it
    let cases: &[(Option<&str>, &str, &str)] = &[
        (Some(NS), "MQ_INST_XXX%TOPIC_XXX", "TOPIC_XXX"),
        (Some(NS), "MQ_INST_XXX%GID_XXX", "GID_XXX"),
        (Some(NS), "%RETRY%MQ_INST_XXX%GID_XXX", "%RETRY%GID_XXX"),
        (Some(NS), "%DLQ%MQ_INST_XXX%GID_XXX", "%DLQ%GID_XXX"),
        // another namespace, or none given: unchanged
        (
            Some(NS_WRONG),
            "%RETRY%MQ_INST_XXX%GID_XXX",
            "%RETRY%MQ_INST_XXX%GID_XXX",
        ),
        (
            Some(NS_WRONG),
            "MQ_INST_XXX%TOPIC_XXX",
            "MQ_INST_XXX%TOPIC_XXX",
        ),
        (
            None,
            "%RETRY%MQ_INST_XXX%GID_XXX",
            "%RETRY%MQ_INST_XXX%GID_XXX",
        ),
        (None, "MQ_INST_XX2%Topic_XXX2", "MQ_INST_XX2%Topic_XXX2"),
        // NamespaceUtil's doc examples
        (Some("MQ_INST_XX1"), "MQ_INST_XX1%Topic_XXX1", "Topic_XXX1"),
        (
            Some("MQ_INST_XX1"),
            "%RETRY%MQ_INST_XX1%GID_XXX1",
            "%RETRY%GID_XXX1",
        ),
        (
            Some("MQ_INST_XX3"),
            "%RETRY%MQ_INST_XX2%GID_XXX2",
            "%RETRY%MQ_INST_XX2%GID_XXX2",
        ),
        // plain names and system topics: unchanged
        (Some(NS), "TOPIC_XXX", "TOPIC_XXX"),
        (Some(NS), "TBW102", "TBW102"),
        (Some(NS), "", ""),
    ];
    for &(ns, resource, want) in cases {
        assert_eq!(unwrap(ns, resource), want, "unwrap({ns:?}, {resource:?})");
    }
}

#[test]
fn without_any_namespace_as_java() {
    let cases = [
        ("MQ_INST_XXX%TOPIC_XXX", "TOPIC_XXX"),
        ("MQ_INST_XXX%GID_XXX", "GID_XXX"),
        ("%RETRY%MQ_INST_XXX%GID_XXX", "%RETRY%GID_XXX"),
        ("%DLQ%MQ_INST_XXX%GID_XXX", "%DLQ%GID_XXX"),
        ("TOPIC_XXX", "TOPIC_XXX"),
        ("%RETRY%GID_XXX", "%RETRY%GID_XXX"),
        ("rmq_sys_topic", "rmq_sys_topic"),
        // a leading % is no namespace (index > 0)
        ("%TOPIC", "%TOPIC"),
        ("", ""),
    ];
    for (resource, want) in cases {
        assert_eq!(without_any(resource), want, "without_any({resource:?})");
    }
}

#[test]
fn namespace_of_a_resource_as_java() {
    let cases = [
        ("TOPIC_XXX", ""),
        ("MQ_INST_XXX%TOPIC_XXX", NS),
        ("%RETRY%MQ_INST_XXX%GID_XXX", NS),
        ("%DLQ%MQ_INST_XXX%GID_XXX", NS),
        ("rmq_sys_topic", ""),
        ("", ""),
    ];
    for (resource, want) in cases {
        assert_eq!(namespace_of(resource), want, "namespace_of({resource:?})");
    }
}

#[test]
fn retry_topic_of_a_group_as_java() {
    assert_eq!(
        wrap_retry(Some(NS), "GID_XXX").as_deref(),
        Some("%RETRY%MQ_INST_XXX%GID_XXX")
    );
    assert!(is_retry_topic(
        &wrap_retry(Some(NS), "GID_XXX").unwrap_or_default()
    ));
    assert_eq!(
        wrap_retry(None, "GID_XXX").as_deref(),
        Some("%RETRY%GID_XXX")
    );
    assert_eq!(wrap_retry(Some(NS), ""), None);
}

#[test]
fn wrap_then_unwrap_is_the_identity_for_user_names() {
    for name in ["T", "TOPIC_XXX", "%RETRY%g", "%DLQ%g", "a-b_c|d"] {
        let wrapped = wrap(Some(NS), name);
        assert_eq!(unwrap(Some(NS), &wrapped), name, "{name}");
        assert_eq!(without_any(&wrapped), name, "{name}");
        assert!(is_already_with_namespace(&wrapped, NS));
        assert!(!is_already_with_namespace(name, NS));
    }
}
