//! `rmq send --transaction` and `rmq bench --mode transaction` against the testkit's in-process
//! cluster and `--embedded`: what the brokers stored, the `END_TRANSACTION` requests received,
//! the check-backs answered, exit codes and usage errors.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rmq_testkit::{MockCluster, TransactionCheck};
use serde_json::Value;
use support::{rmq, run, wait_bounded, Background, Run, RUN_TIMEOUT};

const T: Duration = Duration::from_secs(10);

/// The keys of a transactional send line without a note.
const TX_SEND_KEYS: [&str; 9] = [
    "status",
    "msgId",
    "offsetMsgId",
    "topic",
    "brokerName",
    "queueId",
    "queueOffset",
    "transactionState",
    "endWritten",
];

/// Runs `rmq args...` off the runtime's threads (the mock servers keep running), bounded.
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

/// One broker with `topic` (4 queues); no automatic transaction check.
async fn cluster(topic: &str) -> MockCluster {
    let c = tokio::time::timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 4);
    c
}

/// A check pass every 200 ms for half messages older than `min_age`.
fn fast_check(min_age: Duration) -> TransactionCheck {
    TransactionCheck {
        interval: Duration::from_millis(200),
        min_age,
        max_checks: 15,
    }
}

/// Polls `cond` every 20 ms for at most 10 s.
async fn poll(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// The stdout lines whose `status` is `status`.
fn with_status(r: &Run, status: &str) -> Vec<Value> {
    r.json_lines()
        .into_iter()
        .filter(|v| v["status"] == status)
        .collect()
}

/// Checks a transactional send line: stored, in `state`, its end written, no note.
fn assert_tx_line(v: &Value, topic: &str, state: &str) {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want = TX_SEND_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "{v}");
    assert_eq!(v["status"], "SEND_OK", "{v}");
    assert_eq!(v["topic"], topic, "{v}");
    assert_eq!(v["transactionState"], state, "{v}");
    assert_eq!(v["endWritten"], true, "{v}");
}

fn msg_ids(lines: &[Value]) -> HashSet<String> {
    lines
        .iter()
        .filter_map(|v| v["msgId"].as_str().map(str::to_owned))
        .collect()
}

/// The `UNIQ_KEY`s of the messages of `topic` the cluster stored (visible to consumers).
fn visible(c: &MockCluster, topic: &str) -> HashSet<String> {
    c.messages_of(topic)
        .iter()
        .filter_map(|m| m.property("UNIQ_KEY").map(str::to_owned))
        .collect()
}

/// The `UNIQ_KEY`s of the pending half messages.
fn halves(c: &MockCluster) -> HashSet<String> {
    c.half_messages()
        .iter()
        .filter_map(|m| m.property("UNIQ_KEY").map(str::to_owned))
        .collect()
}

/// `(commitOrRollback, fromTransactionCheck)` of the `END_TRANSACTION`s of `group`.
fn ends(c: &MockCluster, group: &str) -> Vec<(i32, bool)> {
    c.brokers()[0]
        .end_transactions()
        .iter()
        .filter(|e| e.header.producer_group == group)
        .map(|e| (e.header.commit_or_rollback, e.header.from_transaction_check))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_visible_and_rollback_is_not() {
    let topic = "CliTxEnd";
    let c = cluster(topic).await;
    let ns = c.namesrv_addr();
    let send = |group: &'static str, state: &'static str| {
        let ns = ns.clone();
        async move {
            rmq_run(&[
                "send",
                "--namesrv",
                &ns,
                "--topic",
                topic,
                "--group",
                group,
                "--body",
                "hi",
                "--count",
                "2",
                "--transaction",
                state,
            ])
            .await
        }
    };

    let r = send("CliTxCommit", "commit").await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2, "{r:?}");
    lines
        .iter()
        .for_each(|v| assert_tx_line(v, topic, "COMMIT_MESSAGE"));
    let committed = msg_ids(&lines);
    assert!(poll(|| visible(&c, topic) == committed).await, "{r:?}");
    assert!(c
        .messages_of(topic)
        .iter()
        .all(|m| m.body().as_ref() == b"hi"));
    assert_eq!(ends(&c, "CliTxCommit"), vec![(8, false); 2]);

    let r = send("CliTxRollback", "rollback").await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2, "{r:?}");
    lines
        .iter()
        .for_each(|v| assert_tx_line(v, topic, "ROLLBACK_MESSAGE"));
    assert!(poll(|| ends(&c, "CliTxRollback").len() == 2).await);
    assert_eq!(ends(&c, "CliTxRollback"), vec![(12, false); 2]);
    // Rolled back: never visible, and no half message left.
    assert_eq!(visible(&c, topic), committed);
    assert!(halves(&c).is_empty(), "{:?}", halves(&c));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_is_committed_when_the_broker_checks_back() {
    let topic = "CliTxCheck";
    let c = cluster(topic).await;
    let ns = c.namesrv_addr();
    let job = tokio::spawn(async move {
        rmq_run(&[
            "send",
            "--namesrv",
            &ns,
            "--topic",
            topic,
            "--group",
            "CliTxCheck",
            "--count",
            "2",
            "--transaction",
            "unknown",
            "--check-wait",
            "30",
        ])
        .await
    });
    // Both half messages stored, the producer's connection known to the broker: check now.
    let ready = poll(|| {
        halves(&c).len() == 2 && !c.brokers()[0].producer_connections("CliTxCheck").is_empty()
    })
    .await;
    assert!(ready, "halves: {:?}", halves(&c));
    assert!(visible(&c, topic).is_empty(), "undecided: not visible");
    assert_eq!(c.check_transactions().await, 2);
    let r = tokio::time::timeout(RUN_TIMEOUT + T, job)
        .await
        .expect("bounded")
        .expect("joined");
    assert_eq!(r.code, Some(0), "{r:?}");
    let sends = with_status(&r, "SEND_OK");
    assert_eq!(sends.len(), 2, "{r:?}");
    sends
        .iter()
        .for_each(|v| assert_tx_line(v, topic, "UNKNOW"));
    let checks = with_status(&r, "CHECK_ANSWERED");
    assert_eq!(checks.len(), 2, "{r:?}");
    for v in &checks {
        assert_eq!(v["transactionState"], "COMMIT_MESSAGE", "{v}");
        assert_eq!(v["sentHere"], true, "{v}");
        assert_eq!(v["topic"], topic, "{v}");
    }
    let ids = msg_ids(&sends);
    assert_eq!(msg_ids(&checks), ids);
    assert!(r.stderr.contains("waiting up to 30s"), "{r:?}");
    // The answers committed both.
    assert!(poll(|| visible(&c, topic) == ids).await, "{r:?}");
    assert!(halves(&c).is_empty());
    let mut e = ends(&c, "CliTxCheck");
    e.sort_unstable();
    assert_eq!(e, vec![(0, false), (0, false), (8, true), (8, true)]);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecided_transactions_exit_3_at_the_bound_or_on_ctrl_c() {
    let topic = "CliTxWait";
    let c = cluster(topic).await;
    let ns = c.namesrv_addr();
    let t = Instant::now();
    let r = rmq_run(&[
        "send",
        "--namesrv",
        &ns,
        "--topic",
        topic,
        "--transaction",
        "unknown",
        "--check-wait",
        "1",
    ])
    .await;
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(t.elapsed() < T, "{:?}", t.elapsed());
    assert_eq!(with_status(&r, "SEND_OK").len(), 1, "{r:?}");
    assert!(with_status(&r, "CHECK_ANSWERED").is_empty(), "{r:?}");
    assert!(
        r.stderr.contains("1 transaction(s) still undecided"),
        "{r:?}"
    );

    // Ctrl-C ends the wait at once, with the same exit code.
    let (code, waited) = tokio::task::spawn_blocking(move || {
        let mut p = Background::start(rmq(&[
            "send",
            "--namesrv",
            &ns,
            "--topic",
            topic,
            "--transaction",
            "unknown",
            "--check-wait",
            "60",
        ]));
        p.wait_line("waiting up to 60s", T);
        let t = Instant::now();
        p.signal("-INT");
        let status = wait_bounded(&mut p.child, T);
        (status.and_then(|s| s.code()), t.elapsed())
    })
    .await
    .expect("joined");
    assert_eq!(code, Some(3));
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Both half messages are still there, undecided.
    assert_eq!(halves(&c).len(), 2);
    assert!(visible(&c, topic).is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_of_another_runs_half_messages_are_answered_unknown() {
    let topic = "CliTxForeign";
    let c = cluster(topic).await;
    // Old enough after 1 s: the first run is gone by then.
    c.set_transaction_check(Some(fast_check(Duration::from_secs(1))));
    let ns = c.namesrv_addr();
    let send = |wait: &'static str| {
        let ns = ns.clone();
        async move {
            rmq_run(&[
                "send",
                "--namesrv",
                &ns,
                "--topic",
                topic,
                "--group",
                "CliTxForeign",
                "--transaction",
                "unknown",
                "--check-wait",
                wait,
            ])
            .await
        }
    };
    // A first run leaves its half message undecided...
    let first = send("0").await;
    assert_eq!(first.code, Some(3), "{first:?}");
    let old = msg_ids(&first.json_lines());
    // ...a second run of the same group gets its check too: UNKNOW, nothing decided.
    let second = send("20").await;
    assert_eq!(second.code, Some(0), "{second:?}");
    let own = msg_ids(&with_status(&second, "SEND_OK"));
    let checks = with_status(&second, "CHECK_ANSWERED");
    let answered = |ids: &HashSet<String>, state: &str, sent_here: bool| {
        checks.iter().any(|v| {
            ids.contains(v["msgId"].as_str().unwrap_or_default())
                && v["transactionState"] == state
                && v["sentHere"] == sent_here
        })
    };
    assert!(answered(&own, "COMMIT_MESSAGE", true), "{second:?}");
    assert!(answered(&old, "UNKNOW", false), "{second:?}");
    assert!(
        !answered(&old, "COMMIT_MESSAGE", true) && !answered(&old, "COMMIT_MESSAGE", false),
        "{second:?}"
    );
    assert!(poll(|| visible(&c, topic) == own).await);
    assert!(old.is_subset(&halves(&c)), "still pending");
    c.shutdown().await;
}

#[test]
fn embedded_unknown_is_checked_back_within_seconds() {
    let t = Instant::now();
    let r = run(&[
        "send",
        "--embedded",
        "--topic",
        "CliTxEmbedded",
        "--count",
        "2",
        "--transaction",
        "unknown",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let sends = with_status(&r, "SEND_OK");
    let checks = with_status(&r, "CHECK_ANSWERED");
    assert_eq!((sends.len(), checks.len()), (2, 2), "{r:?}");
    assert_eq!(msg_ids(&sends), msg_ids(&checks));
    assert!(checks
        .iter()
        .all(|v| v["transactionState"] == "COMMIT_MESSAGE" && v["sentHere"] == true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_transaction_counts_add_up() {
    let topic = "CliTxBench";
    let c = cluster(topic).await;
    c.set_transaction_check(Some(fast_check(Duration::from_millis(300))));
    let ns = c.namesrv_addr();
    let r = rmq_run(&[
        "bench",
        "--namesrv",
        &ns,
        "--topic",
        topic,
        "--group",
        "CliTxBench",
        "--mode",
        "transaction",
        "--count",
        "200",
        "--concurrency",
        "4",
        "--tx-rollback-rate",
        "0.25",
        "--tx-unknown-rate",
        "0.25",
        "--check-wait",
        "30",
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let s = r.json();
    assert_eq!(s["mode"], "transaction", "{s}");
    assert_eq!(
        (
            s["sent"].as_u64(),
            s["failed"].as_u64(),
            s["abandoned"].as_u64()
        ),
        (Some(200), Some(0), Some(0)),
        "{s}"
    );
    let tx = &s["transaction"];
    let n = |k: &str| tx[k].as_u64().unwrap_or_else(|| panic!("no {k} in {s}"));
    assert_eq!(n("commit") + n("rollback") + n("unknown"), 200, "{s}");
    // 200 draws at 25 %: none of them all but impossible.
    assert!(
        n("commit") > 0 && n("rollback") > 0 && n("unknown") > 0,
        "{s}"
    );
    assert_eq!(n("end_not_written"), 0, "{s}");
    assert_eq!((n("checked"), n("unchecked")), (n("unknown"), 0), "{s}");
    assert!(n("checks") >= n("checked"), "{s}");
    assert_eq!(n("foreign_checks"), 0, "{s}");
    assert!(tx["check_wait_secs"].as_f64().is_some(), "{s}");
    // The broker agrees: committed and checked-back ones are visible, nothing is pending.
    let want = usize::try_from(n("commit") + n("unknown")).expect("small");
    assert!(poll(|| c.messages_of(topic).len() == want).await, "{s}");
    assert!(poll(|| c.half_messages().is_empty()).await, "{s}");

    // Nobody answers in time: every unknown one is reported unchecked, exit code 3.
    let r = rmq_run(&[
        "bench",
        "--namesrv",
        &ns,
        "--topic",
        topic,
        "--group",
        "CliTxBenchNoWait",
        "--mode",
        "transaction",
        "--count",
        "10",
        "--tx-unknown-rate",
        "1",
        "--check-wait",
        "0",
    ])
    .await;
    assert_eq!(r.code, Some(3), "{r:?}");
    let s = r.json();
    assert_eq!(s["sent"], 10, "{s}");
    assert_eq!(
        (&s["transaction"]["unknown"], &s["transaction"]["unchecked"]),
        (&Value::from(10), &Value::from(10)),
        "{s}"
    );
    assert!(
        r.stderr.contains("10 transaction(s) not checked back"),
        "{r:?}"
    );
    c.shutdown().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_ctrl_c_ends_the_wait_for_check_backs() {
    let topic = "CliTxBenchStop";
    // No check service: nothing would be checked back within the wait.
    let c = cluster(topic).await;
    let ns = c.namesrv_addr();
    let (code, waited, out) = tokio::task::spawn_blocking(move || {
        let mut p = Background::start(rmq(&[
            "bench",
            "--namesrv",
            &ns,
            "--topic",
            topic,
            "--mode",
            "transaction",
            "--count",
            "5",
            "--tx-unknown-rate",
            "1",
            "--check-wait",
            "60",
        ]));
        p.wait_line("waiting up to 60s for the broker's check-back of 5", T);
        let t = Instant::now();
        p.signal("-INT");
        let status = wait_bounded(&mut p.child, T);
        (status.and_then(|s| s.code()), t.elapsed(), p.stdout())
    })
    .await
    .expect("joined");
    assert_eq!(code, Some(3), "{out}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let s: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(s["interrupted"], true, "{s}");
    assert_eq!(s["sent"], 5, "{s}");
    assert_eq!(
        (&s["transaction"]["unknown"], &s["transaction"]["unchecked"]),
        (&Value::from(5), &Value::from(5)),
        "{s}"
    );
    assert_eq!(c.half_messages().len(), 5);
    c.shutdown().await;
}

#[test]
fn transaction_usage_errors_exit_2_before_anything_starts() {
    let send = ["send", "--embedded", "--topic", "T"];
    let bench = ["bench", "--embedded", "--count", "1"];
    for args in [
        [&send[..], &["--transaction", "commit", "--mode", "async"]].concat(),
        [&send[..], &["--transaction", "unknown", "--mode", "oneway"]].concat(),
        [&send[..], &["--transaction", "rollback", "--batch", "2"]].concat(),
        [&send[..], &["--transaction", "maybe"]].concat(),
        [&send[..], &["--check-wait", "5"]].concat(),
        [&bench[..], &["--tx-unknown-rate", "0.5"]].concat(),
        [&bench[..], &["--mode", "async", "--check-wait", "5"]].concat(),
        [
            &bench[..],
            &["--mode", "transaction", "--tx-unknown-rate", "2"],
        ]
        .concat(),
        [
            &bench[..],
            &[
                "--mode",
                "transaction",
                "--tx-rollback-rate",
                "0.6",
                "--tx-unknown-rate",
                "0.6",
            ],
        ]
        .concat(),
    ] {
        let r = run(&args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
        let err = r.stderr.trim_end();
        assert!(
            err.starts_with("rmq: error: ") && !err.contains('\n'),
            "one line, and no embedded broker started: {args:?}: {err:?}"
        );
    }
    let r = run(&[&send[..], &["--transaction", "commit", "--mode", "async"]].concat());
    assert!(
        r.stderr
            .contains("--transaction cannot be combined with --mode async|oneway"),
        "{r:?}"
    );
}
