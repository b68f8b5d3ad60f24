//! The `rmq` binary against the testkit's in-process cluster: output format, exit codes, what
//! the brokers stored, `bench --count`, `route`, `--embedded`, `NAMESRV_ADDR` and `dev-broker`.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rmq_testkit::MockCluster;
use serde_json::Value;
use support::{closed_addr, rmq, run, run_with, wait_bounded, Background, Run, RUN_TIMEOUT};

const T: Duration = Duration::from_secs(10);

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

async fn cluster(brokers: usize, topic: &str) -> MockCluster {
    let c = tokio::time::timeout(T, MockCluster::start(brokers))
        .await
        .unwrap()
        .unwrap();
    c.create_topic(topic, 4);
    c
}

/// The keys of a stored-message line, exactly as documented.
const SEND_KEYS: [&str; 7] = [
    "status",
    "msgId",
    "offsetMsgId",
    "topic",
    "brokerName",
    "queueId",
    "queueOffset",
];

fn assert_send_line(v: &Value, topic: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = SEND_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "{v}");
    assert_eq!(v["status"], "SEND_OK", "{v}");
    assert_eq!(v["topic"], topic);
    assert!(v["msgId"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(
        v["offsetMsgId"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    assert!(v["queueId"].is_i64() && v["queueOffset"].is_i64(), "{v}");
}

fn assert_error_line(v: &Value, kind: &[&str], maybe_stored: bool) {
    let e = &v["error"];
    assert!(
        kind.contains(&e["kind"].as_str().unwrap_or("")),
        "kind not in {kind:?}: {v}"
    );
    assert_eq!(e["maybeStored"], maybe_stored, "{v}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty() && !m.contains('\n')),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_one_json_line_per_stored_message() {
    let c = cluster(2, "CliSend").await;
    let ns = c.namesrv_addr();
    let r = rmq_run(&[
        "send",
        "--namesrv",
        &ns,
        "--topic",
        "CliSend",
        "--tag",
        "TagA",
        "--keys",
        "K1,K2",
        "--property",
        "a=1",
        "--property",
        "b=x=y",
        "--body",
        "hello",
        "--count",
        "3",
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 3, "{r:?}");
    let stored = c.messages_of("CliSend");
    assert_eq!(stored.len(), 3);
    for v in &lines {
        assert_send_line(v, "CliSend");
        // Each line describes a message the broker really stored, where it says.
        let m = stored
            .iter()
            .find(|m| m.msg_id == v["offsetMsgId"].as_str().unwrap())
            .unwrap_or_else(|| panic!("no stored message for {v}"));
        assert_eq!(m.broker, v["brokerName"].as_str().unwrap());
        assert_eq!(i64::from(m.queue_id()), v["queueId"].as_i64().unwrap());
        assert_eq!(m.queue_offset(), v["queueOffset"].as_i64().unwrap());
        assert_eq!(m.property("UNIQ_KEY"), v["msgId"].as_str());
        assert_eq!(m.body().as_ref(), b"hello");
        assert_eq!(m.property("TAGS"), Some("TagA"));
        assert_eq!(m.property("KEYS"), Some("K1 K2"));
        assert_eq!(m.property("a"), Some("1"));
        assert_eq!(m.property("b"), Some("x=y"));
    }
    let ids: HashSet<&str> = lines.iter().map(|v| v["msgId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "distinct message ids");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_batch_oneway_and_queue_modes() {
    let c = cluster(2, "CliModes").await;
    let ns = c.namesrv_addr();
    let base = ["send", "--namesrv", ns.as_str(), "--topic", "CliModes"];

    let r = rmq_run(&[&base[..], &["--mode", "async", "--count", "5"]].concat()).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 5);
    lines.iter().for_each(|v| assert_send_line(v, "CliModes"));
    assert_eq!(c.messages_of("CliModes").len(), 5);

    // 5 messages in batches of 2: three lines, five stored messages.
    let r = rmq_run(&[&base[..], &["--count", "5", "--batch", "2"]].concat()).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 3, "{r:?}");
    let ids: Vec<usize> = lines
        .iter()
        .map(|v| v["msgId"].as_str().unwrap().split(',').count())
        .collect();
    assert_eq!(ids, vec![2, 2, 1]);
    assert_eq!(c.messages_of("CliModes").len(), 10);

    let r = rmq_run(&[&base[..], &["--mode", "oneway", "--count", "3"]].concat()).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 3);
    for v in &lines {
        assert_eq!(v["status"], "ONEWAY_WRITTEN", "{v}");
        assert_eq!(v["topic"], "CliModes");
    }
    // The printed ids are the stored messages' UNIQ_KEYs (oneway writes may land a bit later).
    let want: HashSet<String> = lines
        .iter()
        .map(|v| v["msgId"].as_str().unwrap().to_owned())
        .collect();
    let found = poll(|| {
        let got: HashSet<String> = c
            .messages_of("CliModes")
            .iter()
            .filter_map(|m| m.property("UNIQ_KEY").map(str::to_owned))
            .collect();
        want.is_subset(&got)
    })
    .await;
    assert!(found, "oneway messages stored with the printed ids");

    let r = rmq_run(
        &[
            &base[..],
            &["--queue", "broker-b:1", "--count", "3", "--mode", "async"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    for v in r.json_lines() {
        assert_eq!(
            (v["brokerName"].as_str(), v["queueId"].as_i64()),
            (Some("broker-b"), Some(1))
        );
    }
    c.shutdown().await;
}

/// Polls `cond` every 20 ms for at most 5 s.
async fn poll(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_topic_fails_with_exit_1_and_stores_nothing() {
    let c = cluster(1, "CliOk").await;
    let ns = c.namesrv_addr();
    let r = rmq_run(&[
        "send",
        "--namesrv",
        &ns,
        "--topic",
        "bad topic!",
        "--count",
        "2",
    ])
    .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2);
    lines
        .iter()
        .for_each(|v| assert_error_line(v, &["InvalidMessage"], false));
    assert!(c.messages().is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_broker_fails_with_exit_3_maybe_stored() {
    let c = cluster(1, "CliHole").await;
    c.brokers()[0].faults().set_black_hole(true);
    let ns = c.namesrv_addr();
    let started = Instant::now();
    let r = rmq_run(&[
        "send",
        "--namesrv",
        &ns,
        "--topic",
        "CliHole",
        "--timeout-ms",
        "800",
    ])
    .await;
    assert_eq!(r.code, Some(3), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 1, "{r:?}");
    assert_error_line(
        &lines[0],
        &["Timeout", "RetriesExhausted", "Transport"],
        true,
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by the send timeout"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_server_fails_with_exit_1_not_stored() {
    let dead = closed_addr();
    let r = rmq_run(&[
        "send",
        "--namesrv",
        &dead,
        "--topic",
        "CliNoNs",
        "--timeout-ms",
        "1000",
    ])
    .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 1, "{r:?}");
    assert_error_line(&lines[0], &["NameServer", "NoRoute", "Timeout"], false);

    let r = rmq_run(&[
        "route",
        "--namesrv",
        &dead,
        "CliNoNs",
        "--timeout-ms",
        "1000",
    ])
    .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    let err = r.stderr.trim_end();
    assert!(
        err.starts_with("rmq: error: ") && !err.contains('\n'),
        "one line: {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_on_one_line() {
    for args in [
        &["send", "--topic", "T"][..], // no name server anywhere
        &[
            "send",
            "--namesrv",
            "h:1",
            "--topic",
            "T",
            "--queue",
            "nocolon",
        ],
        &[
            "send",
            "--namesrv",
            "h:1",
            "--topic",
            "T",
            "--mode",
            "oneway",
            "--batch",
            "2",
        ],
        &[
            "send",
            "--namesrv",
            "h:1",
            "--topic",
            "T",
            "--property",
            "TAGS=x",
        ],
        &["bench", "--namesrv", "h:1", "--topic", "T"],
        &[
            "send",
            "--namesrv",
            "h:1",
            "--topic",
            "T",
            "--group",
            "DEFAULT_PRODUCER",
        ],
    ] {
        let r = rmq_run(args).await;
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
        let err = r.stderr.trim_end();
        assert!(
            err.starts_with("rmq: error: ") && !err.contains('\n'),
            "{args:?}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namesrv_addr_is_used_when_namesrv_is_absent() {
    let c = cluster(1, "CliEnv").await;
    let mut cmd = rmq(&["send", "--topic", "CliEnv"]);
    cmd.env("NAMESRV_ADDR", c.namesrv_addr());
    let r = tokio::task::spawn_blocking(move || run_with(cmd, RUN_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(c.messages_of("CliEnv").len(), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_count_sends_exactly_that_many_in_every_mode() {
    let c = cluster(2, "CliBench").await;
    let ns = c.namesrv_addr();
    let mut expected = 0;
    for (mode, count) in [
        ("sync", "300"),
        ("async", "500"),
        ("batch", "203"),
        ("oneway", "300"),
    ] {
        let r = rmq_run(&[
            "bench",
            "--namesrv",
            &ns,
            "--topic",
            "CliBench",
            "--mode",
            mode,
            "--count",
            count,
            "--concurrency",
            "4",
            "--size",
            "64",
            "--batch",
            "16",
        ])
        .await;
        assert_eq!(r.code, Some(0), "{mode}: {r:?}");
        let s = r.json();
        let n: u64 = count.parse().unwrap();
        assert_eq!(s["mode"], mode);
        assert_eq!(s["sent"], n, "{mode}: {s}");
        assert_eq!(s["failed"], 0, "{mode}: {s}");
        assert_eq!(
            (s["size"].as_u64(), s["concurrency"].as_u64()),
            (Some(64), Some(4))
        );
        for k in ["secs", "tps", "p50_us", "p99_us", "p999_us", "max_us"] {
            assert!(s[k].is_number(), "{mode}: {k} in {s}");
        }
        assert!(
            s["p50_us"].as_u64() <= s["p99_us"].as_u64()
                && s["p99_us"].as_u64() <= s["max_us"].as_u64()
        );
        expected += n as usize;
        // The brokers stored exactly that many (oneway writes may land a moment later).
        let stored = poll(|| c.messages_of("CliBench").len() >= expected).await;
        assert!(stored, "{mode}");
        assert_eq!(
            c.messages_of("CliBench").len(),
            expected,
            "{mode}: no more than asked"
        );
        assert!(c
            .messages_of("CliBench")
            .iter()
            .all(|m| m.body().len() == 64));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_with_failures_exits_non_zero_and_counts_them() {
    let c = cluster(1, "CliBenchFail").await;
    let ns = c.namesrv_addr();
    // Every send is refused (certainly not stored).
    let r = rmq_run(&[
        "bench",
        "--namesrv",
        &ns,
        "--topic",
        "bad topic!",
        "--count",
        "20",
        "--concurrency",
        "2",
    ])
    .await;
    assert_eq!(r.code, Some(1), "{r:?}");
    let s = r.json();
    assert_eq!(
        (s["sent"].as_u64(), s["failed"].as_u64()),
        (Some(0), Some(20)),
        "{s}"
    );
    assert!(
        r.stderr.contains("InvalidMessage"),
        "the first failure is shown: {r:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_shows_the_brokers_and_the_writable_queues() {
    let c = cluster(2, "CliRoute").await;
    let ns = c.namesrv_addr();
    let r = rmq_run(&["route", "--namesrv", &ns, "CliRoute"]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let doc = r.json();
    assert_eq!(doc["topic"], "CliRoute");
    let mut names: Vec<&str> = doc["route"]["brokerDatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["brokerName"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["broker-a", "broker-b"]);
    assert_eq!(doc["publishInfo"]["queues"].as_array().unwrap().len(), 8);
    for b in c.brokers() {
        assert_eq!(doc["publishInfo"]["masterAddrs"][b.name()], b.addr());
    }

    let r = rmq_run(&["route", "--namesrv", &ns, "NoSuchTopic"]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("NoSuchTopic"), "{r:?}");
    c.shutdown().await;
}

#[test]
fn embedded_send_and_bench_need_no_cluster() {
    let r = run(&[
        "send",
        "--embedded",
        "--topic",
        "CliEmbedded",
        "--count",
        "2",
        "-v",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2);
    lines
        .iter()
        .for_each(|v| assert_send_line(v, "CliEmbedded"));
    assert!(r.stderr.contains("embedded dev broker"), "{r:?}");
    assert!(r.stderr.contains("INFO"), "-v turns tracing on: {r:?}");

    let r = run(&["bench", "--embedded", "--mode", "async", "--count", "100"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.json()["sent"], 100);
    assert!(!r.stderr.contains("INFO"), "no tracing without -v: {r:?}");
}

#[test]
fn dev_broker_serves_until_sigterm() {
    let mut dev = Background::start(rmq(&["dev-broker", "--port", "0", "--brokers", "2"]));
    let line = dev.wait_line("NAMESRV_ADDR=", T);
    let addr = line
        .split("NAMESRV_ADDR=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let r = run(&[
        "send",
        "--namesrv",
        &addr,
        "--topic",
        "CliDev",
        "--count",
        "4",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    r.json_lines()
        .iter()
        .for_each(|v| assert_send_line(v, "CliDev"));

    let r = run(&["route", "--namesrv", &addr, "TBW102"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.json()["route"]["brokerDatas"].as_array().map(Vec::len),
        Some(2)
    );

    let status = dev.terminate(T);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "clean exit on SIGTERM"
    );
}

#[cfg(unix)]
#[test]
fn bench_stops_on_ctrl_c_and_still_prints_its_summary() {
    let mut bench = Background::start(rmq(&[
        "bench",
        "--embedded",
        "--mode",
        "async",
        "--size",
        "64",
        "--concurrency",
        "2",
        "--duration",
        "120",
    ]));
    // Running: the first live line.
    bench.wait_line("sent/s", T);
    let t = Instant::now();
    bench.signal("-INT");
    bench.wait_line("stopping: no new sends", T);
    let status = wait_bounded(&mut bench.child, T);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit after draining"
    );
    assert!(t.elapsed() < T, "stopped in {:?}", t.elapsed());
    let out = bench.stdout();
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["interrupted"], Value::Bool(true), "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["sent"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["secs"].as_f64().is_some_and(|s| s < 60.0), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_body_is_sent_as_is_without_the_terminal_hint() {
    let c = cluster(1, "CliStdin").await;
    let ns = c.namesrv_addr();
    let job = tokio::task::spawn_blocking(move || {
        let mut cmd = rmq(&[
            "send",
            "--namesrv",
            &ns,
            "--topic",
            "CliStdin",
            "--body-file",
            "-",
        ]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("start rmq");
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, b"piped \x01 body\n").expect("write stdin");
        }
        child.wait_with_output().expect("output")
    });
    let out = tokio::time::timeout(RUN_TIMEOUT, job)
        .await
        .expect("bounded")
        .expect("joined");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Ctrl-D"), "no hint for a pipe: {stderr}");
    let stored = c.messages_of("CliStdin");
    assert_eq!(stored.len(), 1);
    assert_eq!(&stored[0].body()[..], b"piped \x01 body\n");
}

/// Send requests (single, batch) the brokers of `c` received, answered or not.
fn sends_received(c: &MockCluster) -> usize {
    use rmq_common::RequestCode;
    c.brokers()
        .iter()
        .map(|b| {
            [
                RequestCode::SEND_MESSAGE,
                RequestCode::SEND_MESSAGE_V2,
                RequestCode::SEND_BATCH_MESSAGE,
            ]
            .iter()
            .map(|&code| b.request_count(code))
            .sum::<usize>()
        })
        .sum()
}

/// A `u64` field of a bench summary.
fn field(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// Sync sends whose answers take 1.5 s, stopped by two SIGTERMs while 200 wait for theirs: the
/// summary counts them as abandoned (outcome unknown) and the exit code says "may have been
/// stored".
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stopped_twice_counts_the_abandoned_sends_and_exits_3() {
    let c = cluster(1, "CliBenchAbandon").await;
    c.brokers()[0]
        .faults()
        .set_delay(Duration::from_millis(1500));
    let ns = c.namesrv_addr();
    let job = tokio::task::spawn_blocking(move || {
        let mut bench = Background::start(rmq(&[
            "bench",
            "--namesrv",
            &ns,
            "--topic",
            "CliBenchAbandon",
            "--mode",
            "sync",
            "--concurrency",
            "200",
            "--duration",
            "60",
        ]));
        // At 2 s: the first 200 answered (at ~1.5 s), the next 200 wait until ~3 s.
        bench.wait_line("sent/s", T);
        bench.wait_line("sent/s", T);
        bench.signal("-TERM");
        bench.wait_line("stopping: no new sends", T);
        bench.signal("-TERM");
        let status = wait_bounded(&mut bench.child, T);
        (status, bench.stdout())
    });
    let (status, out) = tokio::time::timeout(T + T, job)
        .await
        .expect("bounded")
        .expect("joined");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["interrupted"], Value::Bool(true), "{v}");
    let (sent, failed, abandoned) = (
        field(&v, "sent"),
        field(&v, "failed"),
        field(&v, "abandoned"),
    );
    assert!(abandoned > 0, "the sends still waiting: {v}");
    assert!(sent > 0, "{v}");
    // Every send the broker received is in the summary, as sent, failed or abandoned.
    let received = sends_received(&c) as u64;
    assert_eq!(sent + failed + abandoned, received, "{v}");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "abandoned sends may have been stored: {v}"
    );
    c.shutdown().await;
}

/// Async sends (3000 tasks, the producer's default bound of 1024 in flight) whose answers take
/// 2 s: after the first SIGTERM the tasks waiting for room give up, so the broker receives no
/// send after the signal, and the bench ends once the admitted ones are answered.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_first_signal_starts_no_more_async_sends() {
    let c = cluster(1, "CliBenchRoom").await;
    c.brokers()[0].faults().set_delay(Duration::from_secs(2));
    let ns = c.namesrv_addr();
    let mut bench = Background::start(rmq(&[
        "bench",
        "--namesrv",
        &ns,
        "--topic",
        "CliBenchRoom",
        "--mode",
        "async",
        "--concurrency",
        "3000",
        "--duration",
        "60",
    ]));
    let job = tokio::task::spawn_blocking(move || {
        bench.wait_line("sent/s", T);
        bench
    });
    let mut bench = tokio::time::timeout(T + T, job)
        .await
        .expect("bounded")
        .expect("joined");
    // The first 1024 are written; the other tasks wait for room.
    assert!(
        poll(|| sends_received(&c) >= 1024).await,
        "{}",
        sends_received(&c)
    );
    let job = tokio::task::spawn_blocking(move || {
        bench.signal("-TERM");
        bench.wait_line("stopping: no new sends", T);
        bench
    });
    let mut bench = tokio::time::timeout(T + T, job)
        .await
        .expect("bounded")
        .expect("joined");
    let at_signal = sends_received(&c);
    let t = Instant::now();
    let job = tokio::task::spawn_blocking(move || {
        let status = wait_bounded(&mut bench.child, T);
        (status, bench.stdout())
    });
    let (status, out) = tokio::time::timeout(T + T, job)
        .await
        .expect("bounded")
        .expect("joined");
    let received = sends_received(&c);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert!(
        received <= at_signal + 16,
        "no new sends after the signal: {at_signal} then {received}: {v}"
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the admitted sends were answered: {v}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(v["interrupted"], Value::Bool(true), "{v}");
    assert_eq!(field(&v, "failed"), 0, "{v}");
    assert_eq!(field(&v, "sent"), received as u64, "{v}");
    c.shutdown().await;
}
