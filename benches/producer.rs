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
//! against the real cluster too (fewer sends there: a real broker writes them all to disk). The
//! pass also runs sync sends with 1 and 64 tasks while the testkit broker answers 1 ms late
//! (lines marked `+1ms`), where the round trip rather than this machine's CPU bounds one task.
//!
//! `cargo bench --bench producer -- --warm-up-time 1 --measurement-time 3`
//! (numbers in `benches/README.md`, section "producer").

// `RUSTFLAGS="--cfg rmq_bench_mimalloc"`: the same benches with mimalloc as the global allocator
// (an application's choice; the libraries never set one).
#[cfg(rmq_bench_mimalloc)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rmq::common::{
    CommandHeader, Message, RequestCode, SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use rmq::producer::{Producer, SendOptions};
use rmq::remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use rmq_testkit::interop::RealCluster;
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
    let cluster = RealCluster::from_vars(|k| std::env::var(k).ok())?;
    let (namesrv, addr) = (cluster.namesrv, cluster.brokers.first()?.1.clone());
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
async fn run_tasks<C: Call>(iters: u64, tasks: usize, one: C) -> Duration {
    let per = iters.div_ceil(tasks as u64).max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    one.call().await;
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

/// One call of a scenario. The future of each call is awaited in place, as an application
/// would (not boxed): the same for the baseline and the producer.
trait Call: Clone + Send + Sync + 'static {
    fn call(&self) -> impl std::future::Future<Output = ()> + Send;
}

/// One raw `invoke_sync` of the baseline request.
#[derive(Clone)]
struct RawSync {
    client: RemotingClient,
    addr: String,
    req: RemotingCommand,
}

fn raw_sync(f: &Fixture, size: usize) -> RawSync {
    RawSync {
        client: f.client.clone(),
        addr: f.addr.clone(),
        req: raw_request(&f.topic, size),
    }
}

impl Call for RawSync {
    fn call(&self) -> impl std::future::Future<Output = ()> + Send {
        let req = self.req.clone();
        async move {
            self.client
                .invoke_sync(&self.addr, req, TIMEOUT)
                .await
                .expect("reply");
        }
    }
}

/// One `Producer::send` of a `size`-byte body.
#[derive(Clone)]
struct ProducerSync {
    p: Producer,
    topic: String,
    body: Bytes,
}

fn producer_sync(p: &Producer, topic: &str, size: usize) -> ProducerSync {
    ProducerSync {
        p: p.clone(),
        topic: topic.to_owned(),
        body: body(size),
    }
}

impl Call for ProducerSync {
    fn call(&self) -> impl std::future::Future<Output = ()> + Send {
        let msg = Message::new(self.topic.as_str(), self.body.clone());
        async move {
            self.p.send(msg).await.expect("sent");
        }
    }
}

/// The second half of a pipelined call (awaiting its reply), kept in the window.
type BoxedUnit = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn sync_1_task(c: &mut Criterion) {
    let f = fixture();
    sync_sends(c, &f, 1, "producer_sync_1_task");
}

fn sync_64_tasks(c: &mut Criterion) {
    let f = fixture();
    sync_sends(c, &f, TASKS, "producer_sync_64_tasks");
}

/// The first half of a pipelined call: hands the request over (awaited in place) and returns
/// the second half, which awaits the answer.
trait Start: Send + Sync + 'static {
    fn start(&self) -> impl std::future::Future<Output = BoxedUnit> + Send;
}

/// `n` pipelined calls (at most `PIPELINE` in flight, the oldest awaited first) on one task; the
/// latency of each and the total time.
async fn pipelined<S: Start>(n: u64, start: S) -> (Vec<Duration>, Duration) {
    tokio::spawn(async move {
        let mut window: VecDeque<(Instant, BoxedUnit)> = VecDeque::with_capacity(PIPELINE);
        let mut lat = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let begin = Instant::now();
        for _ in 0..n {
            if window.len() == PIPELINE {
                let (t0, oldest) = window.pop_front().expect("full");
                oldest.await;
                lat.push(t0.elapsed());
            }
            let t0 = Instant::now();
            window.push_back((t0, start.start().await));
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

/// Pipelined raw `invoke_async` calls.
fn raw_async(f: &Fixture, size: usize) -> RawSync {
    raw_sync(f, size)
}

impl Start for RawSync {
    fn start(&self) -> impl std::future::Future<Output = BoxedUnit> + Send {
        start_raw(&self.client, &self.addr, self.req.clone())
    }
}

/// Hands one request to the transport; the returned future awaits the reply.
async fn start_raw(client: &RemotingClient, addr: &str, req: RemotingCommand) -> BoxedUnit {
    let reply = client
        .invoke_async(addr, req, TIMEOUT)
        .await
        .expect("accepted");
    Box::pin(async move {
        reply.await.expect("reply");
    })
}

/// Pipelined `send_async` calls.
fn producer_async(f: &Fixture, size: usize) -> ProducerSync {
    producer_sync(&f.plain, &f.topic, size)
}

impl Start for ProducerSync {
    fn start(&self) -> impl std::future::Future<Output = BoxedUnit> + Send {
        start_send_async(
            &self.p,
            Message::new(self.topic.as_str(), self.body.clone()),
        )
    }
}

/// Admits one asynchronous send; the returned future awaits its outcome.
async fn start_send_async(p: &Producer, msg: Message) -> BoxedUnit {
    let fut = p
        .send_async(msg, SendOptions::new())
        .await
        .expect("admitted");
    Box::pin(async move {
        fut.await.expect("sent");
    })
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
    let testkit = fixture();
    latency_pass(&testkit, if benching { 20_000 } else { 200 });
    let n = |full: usize| if benching { full } else { 64 };
    delayed_pass(&testkit, BROKER_DELAY, n(2_000), n(20_000));
    if let Some(real) = real_fixture() {
        latency_pass(&real, if benching { 5_000 } else { 50 });
    }
}

/// Prints one line: messages/s and latency percentiles of `lat`.
fn report(f: &Fixture, name: &str, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    eprintln!(
        "{:<8} {name:<56} {:>9.0} msg/s   p50 {:>8.1} us   p99 {:>8.1} us   p999 {:>8.1} us",
        f.name,
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        pct(0.999).as_secs_f64() * 1e6,
    );
}

fn latency_pass(f: &Fixture, n: usize) {
    for (label, size) in SIZES {
        for tasks in [1usize, TASKS] {
            let (lat, el) = f.rt.block_on(timed(n, tasks, raw_sync(f, size)));
            report(f, &format!("invoke_sync {label} {tasks} task(s)"), lat, el);
            let (lat, el) =
                f.rt.block_on(timed(n, tasks, producer_sync(&f.plain, &f.topic, size)));
            report(
                f,
                &format!("producer send {label} {tasks} task(s)"),
                lat,
                el,
            );
            f.clear();
        }
        // The pipelined lines swing most from run to run (allocator and scheduler state): each
        // is the median of three runs, interleaved with the other's.
        let (mut raw, mut prod) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            raw.push(f.rt.block_on(pipelined(n as u64, raw_async(f, size))));
            f.clear();
            prod.push(f.rt.block_on(pipelined(n as u64, producer_async(f, size))));
            f.clear();
        }
        let (lat, el) = median_run(raw);
        report(
            f,
            &format!("invoke_async {label} pipeline {PIPELINE} (median of 3)"),
            lat,
            el,
        );
        let (lat, el) = median_run(prod);
        report(
            f,
            &format!("producer send_async {label} pipeline {PIPELINE} (median of 3)"),
            lat,
            el,
        );
    }
}

/// The run of median throughput (all runs send the same count: the median elapsed time).
fn median_run(mut runs: Vec<(Vec<Duration>, Duration)>) -> (Vec<Duration>, Duration) {
    runs.sort_by_key(|(_, elapsed)| *elapsed);
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

/// How long the testkit broker waits before each answer in [`delayed_pass`]: about the
/// round trip of a real broker on this machine (p50 1.35 ms), and of a broker across a network.
const BROKER_DELAY: Duration = Duration::from_millis(1);

/// Sync sends, 1 and 64 tasks, while the testkit broker answers each request `delay` late (the
/// requests still run concurrently, as on a real broker): how concurrent sends scale once the
/// round trip, not this machine's CPU, bounds one task. `n1` sends for one task, `n64` for 64.
fn delayed_pass(f: &Fixture, delay: Duration, n1: usize, n64: usize) {
    let Some(cluster) = &f.cluster else { return };
    let faults = cluster.brokers()[0].faults();
    faults.set_delay(delay);
    let ms = delay.as_secs_f64() * 1e3;
    for (tasks, n) in [(1, n1), (TASKS, n64)] {
        let (lat, el) = f.rt.block_on(timed(n, tasks, raw_sync(f, 128)));
        report(
            f,
            &format!("+{ms}ms invoke_sync 128B {tasks} task(s)"),
            lat,
            el,
        );
        let (lat, el) =
            f.rt.block_on(timed(n, tasks, producer_sync(&f.plain, &f.topic, 128)));
        report(
            f,
            &format!("+{ms}ms producer send 128B {tasks} task(s)"),
            lat,
            el,
        );
        f.clear();
    }
    faults.set_delay(Duration::ZERO);
}

/// `n` calls of `one` over `tasks` tasks, each call timed.
async fn timed<C: Call>(n: usize, tasks: usize, one: C) -> (Vec<Duration>, Duration) {
    let per = n.div_ceil(tasks);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t0 = Instant::now();
                    one.call().await;
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
