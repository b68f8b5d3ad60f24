//! The `rmq` binary against the real cluster from `scripts/rocketmq-dev.sh` (skipped locally
//! when it is not running, a failure under CI): `send` output and exit codes, `bench --count`,
//! `route` showing both real brokers, and `send --transaction unknown` answered by the real
//! brokers' check-back.

mod support;

use std::collections::HashSet;

use support::{closed_addr, real_cluster, run, unique_topic};

#[test]
fn send_to_the_real_cluster_prints_stored_results() {
    let Some(cluster) = real_cluster("send_to_the_real_cluster_prints_stored_results") else {
        return;
    };
    let topic = unique_topic("CliInterop");
    let r = run(&[
        "send",
        "--namesrv",
        &cluster.namesrv,
        "--topic",
        &topic,
        "--tag",
        "TagA",
        "--keys",
        "K1,K2",
        "--property",
        "a=1",
        "--count",
        "4",
        "--timeout-ms",
        "10000",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 4, "{r:?}");
    let brokers: HashSet<&str> = cluster.brokers.iter().map(|(n, _)| n.as_str()).collect();
    let mut offsets = HashSet::new();
    for v in &lines {
        assert_eq!(v["status"], "SEND_OK", "{v}");
        assert_eq!(v["topic"], topic.as_str());
        assert!(
            brokers.contains(v["brokerName"].as_str().unwrap_or("")),
            "{v}"
        );
        assert!(v["queueId"].as_i64().is_some_and(|q| q >= 0), "{v}");
        assert!(v["queueOffset"].as_i64().is_some_and(|o| o >= 0), "{v}");
        assert!(v["msgId"].as_str().is_some_and(|s| s.len() == 32), "{v}");
        // The offset id encodes the storing broker's address and a commit-log offset.
        let off = v["offsetMsgId"].as_str().unwrap_or("");
        assert_eq!(off.len(), 32, "{v}");
        assert!(offsets.insert(off.to_owned()), "distinct offset ids");
    }

    let r = run(&[
        "send",
        "--namesrv",
        &cluster.namesrv,
        "--topic",
        "bad topic!",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    let v = &r.json_lines()[0];
    assert_eq!(
        (
            v["error"]["kind"].as_str(),
            v["error"]["maybeStored"].as_bool()
        ),
        (Some("InvalidMessage"), Some(false))
    );
}

#[test]
fn send_transaction_unknown_is_committed_at_the_real_brokers_check_back() {
    let Some(cluster) =
        real_cluster("send_transaction_unknown_is_committed_at_the_real_brokers_check_back")
    else {
        return;
    };
    // Unique group too: no other run's half messages are checked with this one.
    let topic = unique_topic("CliInteropTx");
    let group = unique_topic("CliInteropTxGroup");
    // The dev cluster's brokers check every 1 s once a half message is 3 s old.
    let r = run(&[
        "send",
        "--namesrv",
        &cluster.namesrv,
        "--topic",
        &topic,
        "--group",
        &group,
        "--transaction",
        "unknown",
        "--check-wait",
        "30",
        "--timeout-ms",
        "10000",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    let sent = &lines[0];
    assert_eq!(sent["status"], "SEND_OK", "{r:?}");
    assert_eq!(sent["transactionState"], "UNKNOW", "{r:?}");
    assert_eq!(sent["endWritten"], true, "{r:?}");
    let id = sent["msgId"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 32, "{r:?}");
    let answered = lines.iter().skip(1).any(|v| {
        v["status"] == "CHECK_ANSWERED"
            && v["msgId"] == id
            && v["transactionState"] == "COMMIT_MESSAGE"
            && v["sentHere"] == true
            && v["topic"] == topic.as_str()
    });
    assert!(answered, "{r:?}");
    assert!(
        lines.iter().skip(1).all(|v| v["sentHere"] == true),
        "a unique group has no other half messages: {r:?}"
    );
}

#[test]
fn bench_count_against_the_real_cluster() {
    let Some(cluster) = real_cluster("bench_count_against_the_real_cluster") else {
        return;
    };
    let topic = unique_topic("CliInteropBench");
    for (mode, count) in [("sync", 200u64), ("async", 500), ("batch", 100)] {
        let r = run(&[
            "bench",
            "--namesrv",
            &cluster.namesrv,
            "--topic",
            &topic,
            "--mode",
            mode,
            "--count",
            &count.to_string(),
            "--concurrency",
            "4",
            "--size",
            "256",
            "--timeout-ms",
            "10000",
        ]);
        assert_eq!(r.code, Some(0), "{mode}: {r:?}");
        let s = r.json();
        assert_eq!(
            (s["sent"].as_u64(), s["failed"].as_u64()),
            (Some(count), Some(0)),
            "{mode}: {s}"
        );
        assert!(s["tps"].as_f64().is_some_and(|t| t > 0.0), "{s}");
    }
}

#[test]
fn route_shows_both_real_brokers() {
    let Some(cluster) = real_cluster("route_shows_both_real_brokers") else {
        return;
    };
    let r = run(&["route", "--namesrv", &cluster.namesrv, "TBW102"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let doc = r.json();
    let names: HashSet<&str> = doc["route"]["brokerDatas"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["brokerName"].as_str()).collect())
        .unwrap_or_default();
    for (name, addr) in &cluster.brokers {
        assert!(names.contains(name.as_str()), "{name} in {doc}");
        assert_eq!(
            doc["publishInfo"]["masterAddrs"][name],
            addr.as_str(),
            "{doc}"
        );
    }
    assert!(
        cluster.brokers.len() >= 2,
        "the dev cluster has two brokers"
    );
}

#[test]
fn an_unknown_name_server_is_a_clean_failure_even_with_a_cluster_up() {
    // Independent of the real cluster: a closed port on 127.0.0.1.
    let r = run(&[
        "send",
        "--namesrv",
        &closed_addr(),
        "--topic",
        "CliNoNs",
        "--timeout-ms",
        "1000",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.json_lines()[0]["error"]["maybeStored"], false, "{r:?}");
}
