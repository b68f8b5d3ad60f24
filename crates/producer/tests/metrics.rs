//! Client metrics (feature `metrics`) against the testkit cluster, read back through
//! OpenTelemetry's in-memory exporter: the send histogram and counters move as sends succeed,
//! fail and retry, brokers are isolated, back-pressure refuses, and the instance's connections
//! and route fetches are observed.
#![cfg(feature = "metrics")]

use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use rmq_common::{Message, ResponseCode};
use rmq_producer::{
    metrics, ErrorKind, Producer, ProducerBuilder, SendOptions, TraceConfig, DEFAULT_TRACE_TOPIC,
};
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

/// A meter provider whose metrics are read with [`Collected::collect`].
struct Collected {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Collected {
    fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Self { provider, exporter }
    }

    fn builder(&self, c: &MockCluster, group: &str) -> ProducerBuilder {
        Producer::builder(group)
            .name_server(c.namesrv_addr())
            .busy_backoff(Duration::from_millis(10))
            .meter(self.provider.meter("rmq-test"))
    }

    /// Every metric point now (cumulative), as (name, attributes, value-or-count, bounds).
    fn collect(&self) -> Vec<Point> {
        self.exporter.reset();
        self.provider.force_flush().expect("flush");
        let all: Vec<ResourceMetrics> = self.exporter.get_finished_metrics().expect("metrics");
        let mut points = Vec::new();
        let last = all.last().expect("one export");
        for scope in last.scope_metrics() {
            for m in scope.metrics() {
                let name = m.name().to_owned();
                let first = points.len();
                let attrs = |it: &mut dyn Iterator<Item = &KeyValue>| -> Vec<(String, String)> {
                    it.map(|kv| (kv.key.to_string(), value(&kv.value)))
                        .collect()
                };
                match m.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        for p in s.data_points() {
                            points.push(Point::new(
                                &name,
                                attrs(&mut p.attributes()),
                                p.value() as f64,
                                vec![],
                            ));
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                        for p in g.data_points() {
                            points.push(Point::new(
                                &name,
                                attrs(&mut p.attributes()),
                                p.value() as f64,
                                vec![],
                            ));
                        }
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            points.push(Point::new(
                                &name,
                                attrs(&mut p.attributes()),
                                p.count() as f64,
                                p.bounds().collect(),
                            ));
                        }
                    }
                    other => panic!("unexpected data for {name}: {other:?}"),
                }
                for p in &mut points[first..] {
                    m.unit().clone_into(&mut p.unit);
                }
            }
        }
        points
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone)]
struct Point {
    name: String,
    attrs: Vec<(String, String)>,
    value: f64,
    bounds: Vec<f64>,
    /// The instrument's unit ("" when none).
    unit: String,
}

impl Point {
    fn new(name: &str, attrs: Vec<(String, String)>, value: f64, bounds: Vec<f64>) -> Self {
        Self {
            name: name.to_owned(),
            attrs,
            value,
            bounds,
            unit: String::new(),
        }
    }

    fn has(&self, key: &str, want: &str) -> bool {
        self.attrs.iter().any(|(k, v)| k == key && v == want)
    }
}

/// The sum of the points named `name` with every attribute of `want`.
fn total(points: &[Point], name: &str, want: &[(&str, &str)]) -> f64 {
    points
        .iter()
        .filter(|p| p.name == name && want.iter().all(|(k, v)| p.has(k, v)))
        .map(|p| p.value)
        .sum()
}

async fn cluster(brokers: usize, topic: &str) -> MockCluster {
    let c = timeout(T, MockCluster::start(brokers))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 1);
    c
}

async fn start(b: ProducerBuilder) -> Producer {
    timeout(T, b.start())
        .await
        .expect("in time")
        .expect("start")
}

async fn stop(p: Producer, c: MockCluster) {
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_sends_move_the_histogram_the_counter_and_the_instance_counts() {
    let c = cluster(1, "MetricsOk").await;
    let m = Collected::new();
    let p = start(m.builder(&c, "MetricsOkGroup")).await;
    let id = p.client_id().to_owned();
    // Nothing sent yet: no send point.
    assert_eq!(total(&m.collect(), metrics::SENDS, &[]), 0.0);
    for i in 0..5 {
        timeout(T, p.send(Message::new("MetricsOk", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent");
    }
    for i in 0..3 {
        let f = p
            .send_async(
                Message::new("MetricsOk", format!("a{i}")),
                SendOptions::new(),
            )
            .await
            .expect("admitted");
        timeout(T, f).await.expect("in time").expect("sent");
    }
    let points = m.collect();
    let ok = [
        ("topic", "MetricsOk"),
        ("client_id", id.as_str()),
        ("invocation_status", "success"),
    ];
    assert_eq!(
        total(&points, metrics::SEND_COST_TIME, &ok),
        8.0,
        "{points:#?}"
    );
    assert_eq!(total(&points, metrics::SENDS, &ok), 8.0);
    assert_eq!(
        total(&points, metrics::SENDS, &[("invocation_status", "failure")]),
        0.0
    );
    let hist = points
        .iter()
        .find(|p| p.name == metrics::SEND_COST_TIME)
        .expect("histogram");
    assert_eq!(
        hist.bounds,
        metrics::SEND_COST_TIME_BUCKETS.to_vec(),
        "Java's buckets"
    );
    // No unit: Prometheus names it `rocketmq_send_cost_time_bucket`, as Java's.
    assert_eq!(hist.unit, "", "{hist:?}");
    assert_eq!(total(&points, metrics::SEND_RETRIES, &[]), 0.0);
    // The name server and the broker.
    assert!(total(&points, metrics::CONNECTIONS_OPEN, &[("client_id", &id)]) >= 2.0);
    assert!(total(&points, metrics::CONNECTS, &[("reconnect", "false")]) >= 2.0);
    assert_eq!(
        total(&points, metrics::CONNECTS, &[("reconnect", "true")]),
        0.0
    );
    assert_eq!(
        total(&points, metrics::ROUTE_REFRESHES, &[("kind", "load")]),
        1.0
    );
    // Everything resolved: nothing in flight. A send leaves the in-flight count (what
    // `shutdown` waits for) just after its outcome is delivered, so the last one may still
    // count for a moment after its future resolved.
    let group = [("producer_group", "MetricsOkGroup")];
    let mut points = points;
    for _ in 0..200 {
        if total(&points, metrics::SENDS_IN_FLIGHT, &group) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        points = m.collect();
    }
    assert_eq!(total(&points, metrics::SENDS_IN_FLIGHT, &group), 0.0);
    assert_eq!(total(&points, metrics::ASYNC_IN_FLIGHT, &group), 0.0);
    assert!(points
        .iter()
        .any(|p| p.name == metrics::ASYNC_IN_FLIGHT_BYTES));
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_error_kind_with_their_retries() {
    let c = cluster(1, "MetricsFail").await;
    let b = c.broker("broker-a").expect("broker");
    let m = Collected::new();
    let p = start(m.builder(&c, "MetricsFailGroup").retries(2)).await;
    // Not retryable: one attempt, error kind `broker`.
    b.faults().script_codes([ResponseCode::MESSAGE_ILLEGAL]);
    let e = timeout(T, p.send(Message::new("MetricsFail", "x")))
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(matches!(e.kind(), ErrorKind::Broker { .. }), "{e}");
    // Busy three times: 1 + 2 retries, then `retries_exhausted`.
    b.faults().script_codes(vec![ResponseCode::SYSTEM_BUSY; 3]);
    let e = timeout(T, p.send(Message::new("MetricsFail", "y")))
        .await
        .expect("in time")
        .expect_err("busy");
    assert!(
        matches!(e.kind(), ErrorKind::RetriesExhausted { attempts: 3, .. }),
        "{e}"
    );
    // Then a good one.
    timeout(T, p.send(Message::new("MetricsFail", "z")))
        .await
        .expect("in time")
        .expect("sent");
    let points = m.collect();
    let fail = |kind: &'static str| {
        total(
            &points,
            metrics::SENDS,
            &[
                ("topic", "MetricsFail"),
                ("invocation_status", "failure"),
                ("error_kind", kind),
            ],
        )
    };
    assert_eq!(fail("broker"), 1.0, "{points:#?}");
    assert_eq!(fail("retries_exhausted"), 1.0);
    assert_eq!(
        total(&points, metrics::SENDS, &[("invocation_status", "success")]),
        1.0
    );
    assert_eq!(
        total(
            &points,
            metrics::SEND_COST_TIME,
            &[("invocation_status", "failure")]
        ),
        2.0
    );
    assert_eq!(
        total(&points, metrics::SEND_RETRIES, &[("topic", "MetricsFail")]),
        2.0
    );
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_broker_is_retried_elsewhere_and_its_isolation_counted() {
    let c = cluster(2, "MetricsBusy").await;
    c.broker("broker-a")
        .expect("broker")
        .faults()
        .script_codes(vec![ResponseCode::SYSTEM_BUSY; 100]);
    let m = Collected::new();
    let p = start(m.builder(&c, "MetricsBusyGroup")).await;
    for i in 0..10 {
        let r = timeout(T, p.send(Message::new("MetricsBusy", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b");
    }
    let points = m.collect();
    // broker-a was asked once (then isolated for 10 s): one retry, one isolation.
    assert_eq!(
        total(&points, metrics::SEND_RETRIES, &[]),
        1.0,
        "{points:#?}"
    );
    assert_eq!(
        total(
            &points,
            metrics::BROKER_ISOLATIONS,
            &[("broker", "broker-a")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &points,
            metrics::BROKER_ISOLATIONS,
            &[("broker", "broker-b")]
        ),
        0.0
    );
    assert_eq!(
        total(&points, metrics::SENDS, &[("invocation_status", "success")]),
        10.0
    );
    // Three connections: name server, broker-a, broker-b.
    assert!(total(&points, metrics::CONNECTIONS_OPEN, &[]) >= 3.0);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_refusals_and_in_flight_gauges_are_observed() {
    let c = cluster(1, "MetricsFlow").await;
    let b = c.broker("broker-a").expect("broker");
    let m = Collected::new();
    let p = start(
        m.builder(&c, "MetricsFlowGroup")
            .async_backpressure(1, 1 << 20),
    )
    .await;
    // Warm the route and connection, then hold the broker's answers.
    timeout(T, p.send(Message::new("MetricsFlow", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    b.faults().set_delay(Duration::from_millis(500));
    let first = p
        .try_send_async(Message::new("MetricsFlow", "12345"), SendOptions::new())
        .expect("room for one");
    let refused = p
        .try_send_async(Message::new("MetricsFlow", "second"), SendOptions::new())
        .expect_err("no room");
    assert!(matches!(refused.kind(), ErrorKind::Overloaded { .. }));
    let points = m.collect();
    assert_eq!(
        total(
            &points,
            metrics::BACKPRESSURE_WAITS,
            &[("result", "refused")]
        ),
        1.0
    );
    let group = [("producer_group", "MetricsFlowGroup")];
    assert_eq!(
        total(&points, metrics::ASYNC_IN_FLIGHT, &group),
        1.0,
        "{points:#?}"
    );
    assert_eq!(total(&points, metrics::ASYNC_IN_FLIGHT_BYTES, &group), 5.0);
    timeout(T, first).await.expect("in time").expect("sent");
    let points = m.collect();
    assert_eq!(total(&points, metrics::ASYNC_IN_FLIGHT, &group), 0.0);
    stop(p, c).await;
}

/// The trace producer's own sends (and its gauges) stay out of the user's metrics, although it
/// is configured from the user's producer, meter included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_messages_are_not_counted_as_the_users_sends() {
    let c = cluster(1, "MetricsTraced").await;
    c.create_topic(DEFAULT_TRACE_TOPIC, 1);
    let m = Collected::new();
    let p = start(
        m.builder(&c, "MetricsTracedGroup")
            .enable_trace(TraceConfig::default().with_max_delay(Duration::from_millis(10))),
    )
    .await;
    let id = p.client_id().to_owned();
    for i in 0..3 {
        timeout(T, p.send(Message::new("MetricsTraced", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent");
    }
    // Bounded wait for the trace messages of the 3 records.
    for _ in 0..200 {
        if p.trace_stats().is_some_and(|s| s.records_sent == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = p.trace_stats().expect("trace on");
    assert_eq!(stats.records_sent, 3, "{stats:?}");
    let points = m.collect();
    assert_eq!(total(&points, metrics::SENDS, &[]), 3.0, "{points:#?}");
    assert_eq!(total(&points, metrics::SEND_COST_TIME, &[]), 3.0);
    assert!(
        points.iter().all(|p| !p.has("topic", DEFAULT_TRACE_TOPIC)
            && p.attrs.iter().all(|(k, v)| k != "client_id" || *v == id)
            && !p.has("producer_group", &stats.group)),
        "{points:#?}"
    );
    stop(p, c).await;
}
