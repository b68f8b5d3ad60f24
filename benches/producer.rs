//! rmq-producer benchmarks against the testkit broker, each next to the remoting baseline (the
//! same SEND_MESSAGE_V2 request through a bare `RemotingClient`) in the same run:
//!
//! - `producer_sync_1_task`: `Producer::send` vs `invoke_sync`, one task;
//! - `producer_sync_64_tasks`: the same with 64 tasks sharing one producer / client;
//! - `producer_async_pipeline`: `send_async` with 256 in flight vs pipelined `invoke_async`;
//!
//! each with 128 B and 4 KiB bodies (4 KiB both uncompressed, like the baseline, and with the
//! producer's default zlib compression). After criterion, a fixed-count pass prints
//! messages/s and p50/p99/p999 latency per scenario on stderr, against the testkit broker and,
//! when `RMQ_INTEROP_NAMESRV` / `RMQ_INTEROP_BROKERS` are set (`scripts/rocketmq-dev.sh start`),
//! against the real cluster too (fewer sends there: a real broker writes them all to disk).
//!
//! `cargo bench --bench producer -- --warm-up-time 1 --measurement-time 3`
//! (numbers in `benches/README.md`, section "producer").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rmq::common::{
    CommandHeader, Message, RequestCode, SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use rmq::producer::Producer;
use rmq::remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use rmq_testkit::MockCluster;
use tokio::runtime::Runtime;

const TOPIC: &str = "BenchTopic";
const TIMEOUT: Duration = Duration::from_secs(10);
const PIPELINE: usize = 256;
const TASKS: usize = 64;
const SIZES: [(&str, usize); 2] = [("128B", 128), ("4KiB", 4096)];

struct Fixture {
    rt: Runtime,
    /// `testkit` or `real`.
    name: &'static str,
    topic: String,
    /// The broker the baseline talks to.
    addr: String,
    client: RemotingClient,
    /// Compression off: the same bytes on the wire as the baseline.
    plain: Producer,
    /// Default configuration: bodies of 4 KiB and more are zlib-compressed.
    zlib: Producer,
    /// The testkit cluster (its broker keeps what it stores: cleared between measurements).
    cluster: Option<MockCluster>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The two producers of a fixture, warmed up (route known, connection open).
async fn producers(namesrv: &str, topic: &str) -> (Producer, Producer) {
    let start =
        |b: rmq::producer::ProducerBuilder| async move { b.start().await.expect("producer") };
    let plain = start(
        Producer::builder("BenchGroup")
            .name_server(namesrv)
            .compression(usize::MAX, 5)
            .async_backpressure(PIPELINE, 256 << 20),
    )
    .await;
    let zlib = start(Producer::builder("BenchGroupZ").name_server(namesrv)).await;
    for p in [&plain, &zlib] {
        p.send(Message::new(topic, "warm"))
            .await
            .expect("warm-up send");
    }
    (plain, zlib)
}

fn fixture() -> Fixture {
    let rt = runtime();
    let (cluster, plain, zlib) = rt.block_on(async {
        let cluster = MockCluster::start(1).await.expect("cluster");
        cluster.create_topic(TOPIC, 4);
        let (plain, zlib) = producers(&cluster.namesrv_addr(), TOPIC).await;
        (cluster, plain, zlib)
    });
    let addr = cluster.brokers()[0].addr();
    let client = RemotingClient::new(RemotingConfig::default());
    rt.block_on(client.invoke_sync(&addr, raw_request(TOPIC, 128), TIMEOUT))
        .expect("warm-up call");
    Fixture {
        rt,
        name: "testkit",
        topic: TOPIC.to_owned(),
        addr,
        client,
        plain,
        zlib,
        cluster: Some(cluster),
    }
}

/// The real cluster of `scripts/rocketmq-dev.sh`, when its environment is set. The baseline
/// talks to the first broker; the producer spreads over every broker, as it would.
fn real_fixture() -> Option<Fixture> {
    let namesrv = std::env::var("RMQ_INTEROP_NAMESRV")
        .ok()
        .filter(|s| !s.is_empty())?;
    let brokers = std::env::var("RMQ_INTEROP_BROKERS").ok()?;
    let addr = brokers
        .split(';')
        .find_map(|pair| pair.split_once('=').map(|(_, a)| a.trim().to_owned()))?;
    let topic = format!("RmqBench_{}", std::process::id());
    let rt = runtime();
    let (plain, zlib) = rt.block_on(producers(&namesrv, &topic));
    let client = RemotingClient::new(RemotingConfig::default());
    // The first raw send creates the topic on that broker from TBW102, as a producer's would.
    rt.block_on(client.invoke_sync(&addr, raw_request(&topic, 128), TIMEOUT))
        .expect("warm-up call");
    Some(Fixture {
        rt,
        name: "real",
        topic,
        addr,
        client,
        plain,
        zlib,
        cluster: None,
    })
}

/// The request the producer would send for a `size`-byte body (queue 0 of broker-a).
fn raw_request(topic: &str, size: usize) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2(SendMessageRequestHeader {
        producer_group: "BenchGroup".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        sys_flag: 0,
        born_timestamp: 1_763_942_400_000,
        flag: 0,
        properties: Some(
            "WAIT\u{1}true\u{2}UNIQ_KEY\u{1}7F0000010F2C18B4AAC2000000000000\u{2}".into(),
        ),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: None,
        broker_name: Some("broker-a".into()),
    });
    RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, header.to_ext_fields())
        .with_body(body(size))
}

fn body(size: usize) -> Bytes {
    // Varied bytes, so that compression has real work to do.
    Bytes::from(
        (0..size)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8)
            .collect::<Vec<u8>>(),
    )
}

impl Fixture {
    /// The broker keeps what it stores; forget it between measurements.
    fn clear(&self) {
        if let Some(c) = &self.cluster {
            c.brokers()[0].clear_messages();
        }
    }
}

/// `iters` calls of `one` split over `tasks` tasks; the elapsed time scaled to exactly `iters`.
async fn run_tasks<F, Fut>(iters: u64, tasks: usize, one: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per = iters.div_ceil(tasks as u64).max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    one().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (per * tasks as u64) as f64)
}

fn sync_sends(c: &mut Criterion, f: &Fixture, tasks: usize, group: &str) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for (label, size) in SIZES {
        g.bench_function(BenchmarkId::new("invoke_sync", label), |b| {
            b.to_async(&f.rt).iter_custom(|iters| {
                let one = raw_sync(f, size);
                async move {
                    let elapsed = run_tasks(iters, tasks, one).await;
                    f.clear();
                    elapsed
                }
            });
        });
        let producers: &[(&str, &Producer)] = if size >= 4096 {
            &[("producer_send", &f.plain), ("producer_send_zlib", &f.zlib)]
        } else {
            &[("producer_send", &f.plain)]
        };
        for (name, p) in producers {
            g.bench_function(BenchmarkId::new(*name, label), |b| {
                b.to_async(&f.rt).iter_custom(|iters| {
                    let one = producer_sync(p, &f.topic, size);
                    async move {
                        let elapsed = run_tasks(iters, tasks, one).await;
                        f.clear();
                        elapsed
                    }
                });
            });
        }
    }
    g.finish();
}

/// One raw `invoke_sync` of the baseline request.
fn raw_sync(f: &Fixture, size: usize) -> impl Fn() -> BoxedUnit + Clone + Send + 'static {
    let (client, addr, req) = (
        f.client.clone(),
        f.addr.clone(),
        raw_request(&f.topic, size),
    );
    move || {
        let (client, addr, req) = (client.clone(), addr.clone(), req.clone());
        Box::pin(async move {
            client
                .invoke_sync(&addr, req, TIMEOUT)
                .await
                .expect("reply");
        })
    }
}

/// One `Producer::send` of a `size`-byte body.
fn producer_sync(
    p: &Producer,
    topic: &str,
    size: usize,
) -> impl Fn() -> BoxedUnit + Clone + Send + 'static {
    let (p, topic, body) = (p.clone(), topic.to_owned(), body(size));
    move || {
        let (p, msg) = (p.clone(), Message::new(topic.as_str(), body.clone()));
        Box::pin(async move {
            p.send(msg).await.expect("sent");
        })
    }
}

type BoxedUnit = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn sync_1_task(c: &mut Criterion) {
    let f = fixture();
    sync_sends(c, &f, 1, "producer_sync_1_task");
}

fn sync_64_tasks(c: &mut Criterion) {
    let f = fixture();
    sync_sends(c, &f, TASKS, "producer_sync_64_tasks");
}

/// `n` pipelined calls (at most `PIPELINE` in flight, the oldest awaited first) on one task; the
/// latency of each and the total time.
async fn pipelined<S, Fut, R>(n: u64, start: S) -> (Vec<Duration>, Duration)
where
    S: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = R> + Send,
    R: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut window: VecDeque<(Instant, std::pin::Pin<Box<R>>)> =
            VecDeque::with_capacity(PIPELINE);
        let mut lat = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let begin = Instant::now();
        for _ in 0..n {
            if window.len() == PIPELINE {
                let (t0, oldest) = window.pop_front().expect("full");
                oldest.await;
                lat.push(t0.elapsed());
            }
            let t0 = Instant::now();
            window.push_back((t0, Box::pin(start().await)));
        }
        for (t0, f) in window {
            f.await;
            lat.push(t0.elapsed());
        }
        (lat, begin.elapsed())
    })
    .await
    .expect("task")
}

/// Starts one pipelined raw `invoke_async`; the returned future awaits its reply.
fn raw_async(
    f: &Fixture,
    size: usize,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxedUnit> + Send>> + Send + 'static
{
    let (client, addr, req) = (
        f.client.clone(),
        f.addr.clone(),
        raw_request(&f.topic, size),
    );
    move || {
        let (client, addr, req) = (client.clone(), addr.clone(), req.clone());
        Box::pin(start_raw(client, addr, req))
    }
}

/// Hands one request to the transport; the returned future awaits the reply.
async fn start_raw(client: RemotingClient, addr: String, req: RemotingCommand) -> BoxedUnit {
    let reply = client
        .invoke_async(&addr, req, TIMEOUT)
        .await
        .expect("accepted");
    Box::pin(async move {
        reply.await.expect("reply");
    })
}

/// Admits one asynchronous send; the returned future awaits its outcome.
async fn start_send_async(p: Producer, msg: Message) -> BoxedUnit {
    let fut = p.send_async(msg).await.expect("admitted");
    Box::pin(async move {
        fut.await.expect("sent");
    })
}

/// Starts one pipelined `send_async`; the returned future awaits its outcome.
fn producer_async(
    f: &Fixture,
    size: usize,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = BoxedUnit> + Send>> + Send + 'static
{
    let (p, topic, body) = (f.plain.clone(), f.topic.clone(), body(size));
    move || {
        let (p, msg) = (p.clone(), Message::new(topic.as_str(), body.clone()));
        Box::pin(start_send_async(p, msg))
    }
}

fn async_pipeline(c: &mut Criterion) {
    let fixture = fixture();
    let f = &fixture;
    let mut g = c.benchmark_group("producer_async_pipeline");
    g.throughput(Throughput::Elements(1));
    for (label, size) in SIZES {
        g.bench_function(BenchmarkId::new("invoke_async", label), |b| {
            b.to_async(&f.rt).iter_custom(|iters| {
                let start = raw_async(f, size);
                async move {
                    let (_, elapsed) = pipelined(iters, start).await;
                    f.clear();
                    elapsed
                }
            });
        });
        g.bench_function(BenchmarkId::new("producer_send_async", label), |b| {
            b.to_async(&f.rt).iter_custom(|iters| {
                let start = producer_async(f, size);
                async move {
                    let (_, elapsed) = pipelined(iters, start).await;
                    f.clear();
                    elapsed
                }
            });
        });
    }
    g.finish();
}

/// Messages/s and latency percentiles from a fixed number of sends per scenario (stderr), against
/// the testkit broker and, when configured, the real cluster.
fn latency_report(_: &mut Criterion) {
    let benching = std::env::args().any(|a| a == "--bench");
    latency_pass(&fixture(), if benching { 20_000 } else { 200 });
    if let Some(real) = real_fixture() {
        latency_pass(&real, if benching { 5_000 } else { 50 });
    }
}

fn latency_pass(f: &Fixture, n: usize) {
    let report = |name: String, mut lat: Vec<Duration>, elapsed: Duration| {
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        eprintln!(
            "{:<8} {name:<40} {:>9.0} msg/s   p50 {:>8.1} us   p99 {:>8.1} us   p999 {:>8.1} us",
            f.name,
            lat.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
            pct(0.999).as_secs_f64() * 1e6,
        );
    };
    for (label, size) in SIZES {
        for tasks in [1usize, TASKS] {
            let (lat, el) = f.rt.block_on(timed(n, tasks, raw_sync(f, size)));
            report(format!("invoke_sync {label} {tasks} task(s)"), lat, el);
            let (lat, el) =
                f.rt.block_on(timed(n, tasks, producer_sync(&f.plain, &f.topic, size)));
            report(format!("producer send {label} {tasks} task(s)"), lat, el);
            f.clear();
        }
        let (lat, el) = f.rt.block_on(pipelined(n as u64, raw_async(f, size)));
        report(format!("invoke_async {label} pipeline {PIPELINE}"), lat, el);
        let (lat, el) = f.rt.block_on(pipelined(n as u64, producer_async(f, size)));
        report(
            format!("producer send_async {label} pipeline {PIPELINE}"),
            lat,
            el,
        );
        f.clear();
    }
}

/// `n` calls of `one` over `tasks` tasks, each call timed.
async fn timed<F, Fut>(n: usize, tasks: usize, one: F) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per = n.div_ceil(tasks);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t0 = Instant::now();
                    one().await;
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    (all, start.elapsed())
}

criterion_group!(
    benches,
    sync_1_task,
    sync_64_tasks,
    async_pipeline,
    latency_report
);
criterion_main!(benches);
