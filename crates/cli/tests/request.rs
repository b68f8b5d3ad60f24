//! `rmq request`: a request answered by the in-process echo replier, on the embedded dev broker
//! and (when it runs; skipped locally otherwise, a failure under CI) on the real cluster; its
//! errors and exit codes.

mod support;

use serde_json::Value;
use support::{real_cluster, run, unique_topic};

/// Checks a reply line: the echoed body, the reply topic, the matching correlation id.
fn check_reply(v: &Value, body: &str) {
    assert_eq!(v["body"], body, "{v}");
    assert_eq!(v["bodyBytes"], body.len(), "{v}");
    assert_eq!(v["topic"], "DefaultCluster_REPLY_TOPIC", "{v}");
    assert_eq!(v["properties"]["MSG_TYPE"], "reply", "{v}");
    assert_eq!(v["properties"]["CORRELATION_ID"], v["correlationId"], "{v}");
    assert!(v["properties"]["ARRIVE_TIME"].is_string(), "{v}");
    assert!(
        v["requestMsgId"].as_str().is_some_and(|id| id.len() == 32),
        "{v}"
    );
    assert!(v["latencyMs"].is_u64(), "{v}");
}

#[test]
fn embedded_request_is_answered_by_the_echo_replier() {
    let r = run(&[
        "request",
        "--embedded",
        "--topic",
        "Prices",
        "--body",
        "SKU-1",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 1, "{r:?}");
    check_reply(&lines[0], "SKU-1");

    // Over the compression threshold both ways.
    let big = "0123456789".repeat(1_000);
    let r = run(&["request", "--embedded", "--topic", "Prices", "--body", &big]);
    assert_eq!(r.code, Some(0), "{r:?}");
    check_reply(&r.json(), &big);
}

#[test]
fn request_errors_are_json_lines_with_exit_codes() {
    // No such broker: certainly not stored, exit 1.
    let r = run(&[
        "request",
        "--embedded",
        "--topic",
        "Prices",
        "--queue",
        "broker-z:0",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["kind"], "RetriesExhausted", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no master address known for broker broker-z"),
        "{v}"
    );
    assert_eq!(v["error"]["maybeStored"], false, "{v}");
    // Bad usage: exit 2.
    let r = run(&[
        "request",
        "--embedded",
        "--topic",
        "Prices",
        "--timeout-ms",
        "0",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
}

#[test]
fn request_to_the_real_cluster_gets_the_echo_and_times_out_without_it() {
    let Some(cluster) =
        real_cluster("request_to_the_real_cluster_gets_the_echo_and_times_out_without_it")
    else {
        return;
    };
    let topic = unique_topic("CliRequest");
    let ns = cluster.namesrv.as_str();
    let r = run(&[
        "request",
        "--namesrv",
        ns,
        "--topic",
        &topic,
        "--body",
        "ping",
        "--echo",
        "--timeout-ms",
        "10000",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    check_reply(&r.json(), "ping");

    // Nobody answers: stored, no reply, exit 3.
    let r = run(&[
        "request",
        "--namesrv",
        ns,
        "--topic",
        &topic,
        "--timeout-ms",
        "1000",
    ]);
    assert_eq!(r.code, Some(3), "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["kind"], "ReplyTimeout", "{v}");
    assert_eq!(v["error"]["maybeStored"], true, "{v}");
}
