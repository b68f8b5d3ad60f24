//! rmq-producer benchmarks against the testkit broker, each next to the remoting baseline (the
//! same SEND_MESSAGE_V2 request through a bare `RemotingClient`) in the same run:
//!
//! - `producer_sync_1_task`: `Producer::send` vs `invoke_sync`, one task;
//! - `producer_sync_64_tasks`: the same with 64 tasks sharing one producer / client;
//! - `producer_async_pipeline`: `send_async` with 256 in flight vs pipelined `invoke_async`;
//!
//! each with 128 B and 4 KiB bodies (4 KiB both uncompressed, like the baseline, and with the
//! producer's default zlib compression). After criterion, a fixed-count pass prints
//! messages/s and p50/p99/p999 latency per scenario on stderr.
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
    cluster: MockCluster,
    addr: String,
    client: RemotingClient,
    /// Compression off: the same bytes on the wire as the baseline.
    plain: Producer,
    /// Default configuration: bodies of 4 KiB and more are zlib-compressed.
    zlib: Producer,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (cluster, plain, zlib) = rt.block_on(async {
        let cluster = MockCluster::start(1).await.expect("cluster");
        cluster.create_topic(TOPIC, 4);
        let start =
            |b: rmq::producer::ProducerBuilder| async move { b.start().await.expect("producer") };
        let plain = start(
            Producer::builder("BenchGroup")
                .name_server(cluster.namesrv_addr())
                .compression(usize::MAX, 5)
                .async_backpressure(PIPELINE, 256 << 20),
        )
        .await;
        let zlib =
            start(Producer::builder("BenchGroupZ").name_server(cluster.namesrv_addr())).await;
        for p in [&plain, &zlib] {
            p.send(Message::new(TOPIC, "warm"))
                .await
                .expect("warm-up send");
        }
        (cluster, plain, zlib)
    });
    let addr = cluster.brokers()[0].addr();
    let client = RemotingClient::new(RemotingConfig::default());
    rt.block_on(client.invoke_sync(&addr, raw_request(128), TIMEOUT))
        .expect("warm-up call");
    Fixture {
        rt,
        cluster,
        addr,
        client,
        plain,
        zlib,
    }
}

/// The request the producer would send for a `size`-byte body (queue 0 of broker-a).
fn raw_request(size: usize) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2(SendMessageRequestHeader {
        producer_group: "BenchGroup".into(),
        topic: TOPIC.into(),
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
        self.cluster.brokers()[0].clear_messages();
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
                let (client, addr, req) = (f.client.clone(), f.addr.clone(), raw_request(size));
                async move {
                    let elapsed = run_tasks(iters, tasks, move || {
                        let (client, addr, req) = (client.clone(), addr.clone(), req.clone());
                        async move {
                            client
                                .invoke_sync(&addr, req, TIMEOUT)
                                .await
                                .expect("reply");
                        }
                    })
                    .await;
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
                    let (p, body) = ((*p).clone(), body(size));
                    async move {
                        let elapsed = run_tasks(iters, tasks, move || {
                            let (p, body) = (p.clone(), body.clone());
                            async move {
                                p.send(Message::new(TOPIC, body)).await.expect("sent");
                            }
                        })
                        .await;
                        f.clear();
                        elapsed
                    }
                });
            });
        }
    }
    g.finish();
}

fn sync_1_task(c: &mut Criterion) {
    let f = fixture();
    sync_sends(c, &f, 1, "producer_sync_1_task");
}

fn sync_64_tasks(c: &mut Criterion) {
    let f = fixture();
    sync_sends(c, &f, TASKS, "producer_sync_64_tasks");
}

fn async_pipeline(c: &mut Criterion) {
    let fixture = fixture();
    let f = &fixture;
    let mut g = c.benchmark_group("producer_async_pipeline");
    g.throughput(Throughput::Elements(1));
    for (label, size) in SIZES {
        g.bench_function(BenchmarkId::new("invoke_async", label), |b| {
            b.to_async(&f.rt).iter_custom(|iters| {
                let (client, addr, req) = (f.client.clone(), f.addr.clone(), raw_request(size));
                let run = async move {
                    tokio::spawn(async move {
                        let mut window = VecDeque::with_capacity(PIPELINE);
                        let start = Instant::now();
                        for _ in 0..iters {
                            if window.len() == PIPELINE {
                                let oldest: rmq::remoting::ResponseFuture =
                                    window.pop_front().expect("full");
                                oldest.await.expect("reply");
                            }
                            window.push_back(
                                client
                                    .invoke_async(&addr, req.clone(), TIMEOUT)
                                    .await
                                    .expect("accepted"),
                            );
                        }
                        for f in window {
                            f.await.expect("reply");
                        }
                        start.elapsed()
                    })
                    .await
                    .expect("task")
                };
                async move {
                    let elapsed = run.await;
                    f.clear();
                    elapsed
                }
            });
        });
        g.bench_function(BenchmarkId::new("producer_send_async", label), |b| {
            b.to_async(&f.rt).iter_custom(|iters| {
                let (p, body) = (f.plain.clone(), body(size));
                let run = async move {
                    tokio::spawn(async move {
                        let mut window = VecDeque::with_capacity(PIPELINE);
                        let start = Instant::now();
                        for _ in 0..iters {
                            if window.len() == PIPELINE {
                                let oldest: rmq::producer::SendFuture =
                                    window.pop_front().expect("full");
                                oldest.await.expect("sent");
                            }
                            window.push_back(
                                p.send_async(Message::new(TOPIC, body.clone()))
                                    .await
                                    .expect("admitted"),
                            );
                        }
                        for f in window {
                            f.await.expect("sent");
                        }
                        start.elapsed()
                    })
                    .await
                    .expect("task")
                };
                async move {
                    let elapsed = run.await;
                    f.clear();
                    elapsed
                }
            });
        });
    }
    g.finish();
}

/// Messages/s and latency percentiles from a fixed number of sends (stderr).
fn latency_report(_: &mut Criterion) {
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = if benching { 20_000 } else { 200 };
    let f = fixture();
    let report = |name: &str, mut lat: Vec<Duration>, elapsed: Duration| {
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        eprintln!(
            "{name:<44} {:>9.0} msg/s   p50 {:>7.1} us   p99 {:>7.1} us   p999 {:>7.1} us",
            lat.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
            pct(0.999).as_secs_f64() * 1e6,
        );
    };
    for (label, size) in SIZES {
        for tasks in [1usize, TASKS] {
            let (client, addr, req) = (f.client.clone(), f.addr.clone(), raw_request(size));
            let (lat, el) = f.rt.block_on(timed(n, tasks, move || {
                let (client, addr, req) = (client.clone(), addr.clone(), req.clone());
                async move {
                    client
                        .invoke_sync(&addr, req, TIMEOUT)
                        .await
                        .expect("reply");
                }
            }));
            report(&format!("invoke_sync {label} {tasks} task(s)"), lat, el);
            let (p, b) = (f.plain.clone(), body(size));
            let (lat, el) = f.rt.block_on(timed(n, tasks, move || {
                let (p, b) = (p.clone(), b.clone());
                async move {
                    p.send(Message::new(TOPIC, b)).await.expect("sent");
                }
            }));
            report(&format!("producer send {label} {tasks} task(s)"), lat, el);
            f.clear();
        }
        let (p, b) = (f.plain.clone(), body(size));
        let (lat, el) = f.rt.block_on(async move {
            tokio::spawn(async move {
                let mut window: VecDeque<(Instant, rmq::producer::SendFuture)> = VecDeque::new();
                let mut lat = Vec::with_capacity(n);
                let start = Instant::now();
                for _ in 0..n {
                    if window.len() == PIPELINE {
                        let (t0, fut) = window.pop_front().expect("full");
                        fut.await.expect("sent");
                        lat.push(t0.elapsed());
                    }
                    let t0 = Instant::now();
                    window.push_back((
                        t0,
                        p.send_async(Message::new(TOPIC, b.clone()))
                            .await
                            .expect("admitted"),
                    ));
                }
                for (t0, fut) in window {
                    fut.await.expect("sent");
                    lat.push(t0.elapsed());
                }
                (lat, start.elapsed())
            })
            .await
            .expect("task")
        });
        report(
            &format!("producer send_async {label} pipeline {PIPELINE}"),
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
