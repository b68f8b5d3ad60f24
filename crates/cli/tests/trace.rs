//! `rmq send --trace` and `rmq bench --trace` against the testkit's in-process cluster: the
//! trace topic holds one `Pub` record per stored message, keyed by its id, and the command says
//! what the trace did on stderr.

mod support;

use std::time::Duration;

use rmq_testkit::MockCluster;
use support::{run, Run, RUN_TIMEOUT};

const T: Duration = Duration::from_secs(10);

async fn rmq_run(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let job = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    });
    tokio::time::timeout(RUN_TIMEOUT + T, job)
        .await
        .expect("bounded")
        .expect("joined")
}

/// The ids (field 6) of the `Pub` records stored in `topic`, and every trace message's keys.
fn traced(c: &MockCluster, topic: &str) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    for m in c.messages_of(topic) {
        let body = std::str::from_utf8(m.body()).expect("utf-8");
        for rec in body.split_terminator('\u{2}') {
            let f: Vec<&str> = rec.split('\u{1}').collect();
            assert_eq!((f[0], f.len()), ("Pub", 14), "{f:?}");
            ids.push(f[5].to_owned());
        }
        keys.extend(
            m.property("KEYS")
                .unwrap_or_default()
                .split(' ')
                .map(str::to_owned),
        );
    }
    (ids, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_bench_with_trace_fill_the_trace_topic() {
    let c = tokio::time::timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    for t in ["CliTraced", "RMQ_SYS_TRACE_TOPIC", "CliTrace2"] {
        c.create_topic(t, 2);
    }
    let ns = c.namesrv_addr();
    let r = rmq_run(&[
        "send",
        "--namesrv",
        &ns,
        "--topic",
        "CliTraced",
        "--count",
        "3",
        "--trace",
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let mut sent: Vec<String> = r
        .json_lines()
        .iter()
        .map(|v| v["msgId"].as_str().expect("msgId").to_owned())
        .collect();
    assert!(r.stderr.contains("trace: 3 records"), "{}", r.stderr);
    let (mut ids, keys) = traced(&c, "RMQ_SYS_TRACE_TOPIC");
    sent.sort();
    ids.sort();
    assert_eq!(ids, sent);
    assert!(sent.iter().all(|id| keys.contains(id)), "{keys:?}");

    let r = rmq_run(&[
        "bench",
        "--namesrv",
        &ns,
        "--topic",
        "CliTraced",
        "--count",
        "50",
        "--trace-topic",
        "CliTrace2",
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("trace: 50 records"), "{}", r.stderr);
    assert_eq!(traced(&c, "CliTrace2").0.len(), 50);

    let r = rmq_run(&[
        "send",
        "--namesrv",
        &ns,
        "--topic",
        "CliTraced",
        "--count",
        "1",
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(!r.stderr.contains("trace:"), "off by default: {}", r.stderr);
    assert_eq!(traced(&c, "RMQ_SYS_TRACE_TOPIC").0.len(), 3);
    c.shutdown().await;
}
