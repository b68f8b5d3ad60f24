//! `rmq bench --metrics` against the real cluster from `scripts/rocketmq-dev.sh` (skipped locally
//! when it is not running, a failure under CI): the producer's OpenTelemetry metrics at the end
//! count every send, by outcome, with the instance's connections and route load.
#![cfg(feature = "metrics")]

mod support;

use support::{real_cluster, run, unique_topic};

/// The sum of the values of the Prometheus sample lines that start with `name{` and contain
/// every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn bench_metrics_count_every_send_to_the_real_cluster() {
    let Some(cluster) = real_cluster("bench_metrics_count_every_send_to_the_real_cluster") else {
        return;
    };
    let topic = unique_topic("CliMetrics");
    let r = run(&[
        "bench",
        "--namesrv",
        &cluster.namesrv,
        "--topic",
        &topic,
        "--mode",
        "sync",
        "--concurrency",
        "4",
        "--count",
        "200",
        "--timeout-ms",
        "10000",
        "--metrics",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.json()["sent"], 200, "{r:?}");
    let text = &r.stderr;
    let ok = [
        "invocation_status=\"success\"",
        &format!("topic=\"{topic}\""),
    ];
    assert_eq!(
        sample(text, "rocketmq_send_cost_time_count", &ok),
        200.0,
        "{text}"
    );
    assert_eq!(sample(text, "rocketmq_producer_sends_total", &ok), 200.0);
    assert_eq!(
        sample(
            text,
            "rocketmq_producer_sends_total",
            &["invocation_status=\"failure\""]
        ),
        0.0
    );
    // The name server and at least one broker; the route was loaded once.
    assert!(
        sample(text, "rocketmq_client_connections_open", &[]) >= 2.0,
        "{text}"
    );
    assert!(
        sample(
            text,
            "rocketmq_client_route_refreshes_total",
            &["kind=\"load\""]
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(text, "rocketmq_producer_sends_in_flight", &[]),
        0.0,
        "{text}"
    );
}
