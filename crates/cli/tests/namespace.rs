//! `rmq send|bench --namespace NS` against the testkit: the broker stores `NS%Topic`, the
//! printed lines name the plain topic.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_bench_with_a_namespace() {
    let c = tokio::time::timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("NS1%CliNs", 2);
    let ns = c.namesrv_addr();
    let r = rmq_run(&[
        "send",
        "--namesrv",
        &ns,
        "--namespace",
        "NS1",
        "--topic",
        "CliNs",
        "--body",
        "hi",
        "--count",
        "2",
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2, "{r:?}");
    for v in &lines {
        assert_eq!(v["topic"], "CliNs", "the plain topic is printed: {v}");
    }
    let stored = c.messages();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|m| m.topic() == "NS1%CliNs"));
    let r = rmq_run(&[
        "bench",
        "--namesrv",
        &ns,
        "--namespace",
        "NS1",
        "--topic",
        "CliNs",
        "--count",
        "5",
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(c.messages_of("NS1%CliNs").len(), 7);
    c.shutdown().await;
}
