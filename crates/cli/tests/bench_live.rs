//! What `rmq bench` prints while it runs, against the embedded dev broker: Java's
//! `Current Time:` line every second beside rmq's own, nothing live with `--quiet`, and the
//! producer's OpenTelemetry metrics at the end with `--metrics`.

mod support;

use support::run;

/// Parses `Current Time: yyyy-MM-dd HH:mm:ss,SSS | Send TPS: N | Max RT(ms): N | Average
/// RT(ms): F | Send Failed: N | Response Failed: N` into its numbers; `None` if it is not one.
fn java_line(line: &str) -> Option<(String, u64, u64, f64, u64, u64)> {
    let rest = line.split("Current Time: ").nth(1)?;
    let parts: Vec<&str> = rest.split(" | ").collect();
    let [time, tps, max, avg, failed, refused] = parts.as_slice() else {
        return None;
    };
    fn num<'a>(p: &'a str, label: &str) -> Option<&'a str> {
        p.strip_prefix(label).map(str::trim)
    }
    let time = (*time).to_owned();
    // `2026-12-06 12:55:19,123`
    let shape = time.len() == 23
        && time.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            19 => c == ',',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    Some((
        time,
        num(tps, "Send TPS:")?.parse().ok()?,
        num(max, "Max RT(ms):")?.parse().ok()?,
        num(avg, "Average RT(ms):")?.parse().ok()?,
        num(failed, "Send Failed:")?.parse().ok()?,
        num(refused, "Response Failed:")?.parse().ok()?,
    ))
}

#[test]
fn bench_prints_javas_line_every_second_and_the_metrics_at_the_end() {
    let mut args = vec![
        "bench",
        "--embedded",
        "--mode",
        "sync",
        "--concurrency",
        "2",
        "--duration",
        "3",
    ];
    // A build without the `metrics` feature refuses `--metrics`.
    if cfg!(feature = "metrics") {
        args.push("--metrics");
    }
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "stdout: the JSON summary alone: {r:?}"
    );
    let sent = r.json()["sent"].as_u64().expect("sent");
    assert!(sent > 0, "{r:?}");
    let java: Vec<_> = r
        .stderr
        .lines()
        .filter(|l| l.contains("Current Time: "))
        .map(|l| java_line(l).unwrap_or_else(|| panic!("not Java's layout: {l}")))
        .collect();
    // One a second for three seconds (the last tick may race the end of the run).
    assert!((2..=4).contains(&java.len()), "{java:?}\n{r:?}");
    // Time goes on, something was sent each second, nothing failed.
    assert!(java.windows(2).all(|w| w[0].0 < w[1].0), "{java:?}");
    assert!(java.iter().skip(1).all(|l| l.1 > 0), "{java:?}");
    assert!(java.iter().all(|l| l.4 == 0 && l.5 == 0), "{java:?}");
    // rmq's own live line is still there, one per Java line.
    let own = r.stderr.lines().filter(|l| l.contains("sent/s")).count();
    assert_eq!(own, java.len(), "{r:?}");

    if !cfg!(feature = "metrics") {
        return;
    }
    // --metrics: the producer's OpenTelemetry metrics in Prometheus's text format.
    let metric = |prefix: &str| -> f64 {
        r.stderr
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains("invocation_status=\"success\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert!(
        r.stderr
            .contains("# TYPE rocketmq_send_cost_time histogram"),
        "{r:?}"
    );
    assert_eq!(
        metric("rocketmq_send_cost_time_count"),
        sent as f64,
        "{r:?}"
    );
    assert_eq!(
        metric("rocketmq_producer_sends_total"),
        sent as f64,
        "{r:?}"
    );
    assert!(
        r.stderr.contains("rocketmq_client_connections_open"),
        "{r:?}"
    );
}

#[test]
fn quiet_bench_prints_no_live_line() {
    let r = run(&["bench", "--embedded", "--quiet", "--duration", "2"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(!r.stderr.contains("Current Time:"), "{r:?}");
    assert!(!r.stderr.contains("sent/s"), "{r:?}");
    assert!(r.stderr.contains("[Complete] Send Total: "), "{r:?}");
    assert!(
        !r.stderr.contains("rocketmq_"),
        "no metrics without --metrics: {r:?}"
    );
}
