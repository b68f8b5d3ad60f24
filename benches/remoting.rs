//! rmq-remoting benchmarks: codec cost, and RPC round trips next to a raw TCP baseline against
//! the same in-process server.
//!
//! `cargo bench --bench remoting -- --warm-up-time 1 --measurement-time 3`
//! (numbers and analysis in `benches/README.md`).

// `RUSTFLAGS="--cfg rmq_bench_mimalloc"`: the same benches with mimalloc as the global allocator
// (an application's choice; the libraries never set one).
#[cfg(rmq_bench_mimalloc)]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rmq::common::{ExtFields, RequestCode, ResponseCode};
use rmq::remoting::{
    BoxFuture, ProcessorTable, RemotingClient, RemotingCommand, RemotingConfig, RemotingServer,
    RequestContext, SerializeType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Semaphore};

const TIMEOUT: Duration = Duration::from_secs(10);
const PIPELINE: usize = 256;
const CALLERS: usize = 64;

/// A SEND_MESSAGE_V2 request as the producer sends it, with a 128-byte body.
fn send_request(st: SerializeType) -> RemotingCommand {
    let ext: ExtFields = [
        ("a", "BenchProducerGroup"),
        ("b", "BenchTopic"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "3"),
        ("f", "0"),
        ("g", "1763942400000"),
        ("h", "0"),
        ("i", "TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}7F0000010F2C18B4AAC2000000000000\u{2}WAIT\u{1}true\u{2}"),
        ("j", "0"),
        ("k", "false"),
        ("m", "false"),
        ("n", "broker-a"),
    ]
    .into_iter()
    .collect();
    let mut req = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, ext)
        .with_serialize_type(st)
        .with_body(Bytes::from(vec![b'x'; 128]));
    req.opaque = 12345;
    req
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    for (name, st) in [
        ("json", SerializeType::Json),
        ("rocketmq", SerializeType::RocketMq),
    ] {
        let req = send_request(st);
        let mut buf = BytesMut::with_capacity(1024);
        req.encode(&mut buf).expect("encodes");
        let frame = buf.clone().freeze().slice(4..);

        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                buf.clear();
                req.encode(&mut buf).expect("encodes");
                buf.len()
            });
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| RemotingCommand::decode(frame.clone()).expect("decodes"));
        });
        g.bench_function(BenchmarkId::new("encode+decode", name), |b| {
            b.iter(|| {
                buf.clear();
                req.encode(&mut buf).expect("encodes");
                let f = buf.split().freeze().slice(4..);
                RemotingCommand::decode(f).expect("decodes")
            });
        });
    }
    g.finish();
}

/// The broker's answer to a send, as the server's processor builds it.
fn send_response(req: &RemotingCommand) -> RemotingCommand {
    let mut resp = req.response_to(ResponseCode::SUCCESS, None);
    resp.ext_fields
        .insert("msgId", "7F00000100002A9F00000000004988BA");
    resp.ext_fields.insert("queueId", "0");
    resp.ext_fields.insert("queueOffset", "42");
    resp
}

struct Fixture {
    rt: Runtime,
    addr: String,
    client: RemotingClient,
    frame: Bytes,
    _server: RemotingServer,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let processor =
        |_: RequestContext, req: RemotingCommand| -> BoxFuture<'static, Option<RemotingCommand>> {
            Box::pin(async move { Some(send_response(&req)) })
        };
    let table = ProcessorTable::new().with(RequestCode::SEND_MESSAGE_V2, Arc::new(processor));
    let server = rt
        .block_on(RemotingServer::bind(
            "127.0.0.1:0",
            RemotingConfig::default(),
            table,
        ))
        .expect("bind");
    let addr = server.local_addr().to_string();
    let client = RemotingClient::new(RemotingConfig::default());
    let mut buf = BytesMut::new();
    send_request(SerializeType::Json)
        .encode(&mut buf)
        .expect("encodes");
    Fixture {
        rt,
        addr,
        client,
        frame: buf.freeze(),
        _server: server,
    }
}

/// Reads one whole frame (length prefix + rest), without decoding it.
async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, scratch: &mut Vec<u8>) {
    let len = r.read_u32().await.expect("length");
    scratch.resize(len as usize, 0);
    r.read_exact(scratch).await.expect("frame");
}

fn rpc(c: &mut Criterion) {
    let f = fixture();
    let raw = Arc::new(Mutex::new(f.rt.block_on(async {
        let s = TcpStream::connect(&f.addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s
    })));
    // warm the client's connection
    f.rt.block_on(
        f.client
            .invoke_sync(&f.addr, send_request(SerializeType::Json), TIMEOUT),
    )
    .expect("warm-up call");

    let mut g = c.benchmark_group("rpc_1_caller");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_ping_pong", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            let (raw, frame) = (Arc::clone(&raw), f.frame.clone());
            async move {
                tokio::spawn(async move {
                    let mut s = raw.lock().await;
                    let mut scratch = Vec::with_capacity(512);
                    let start = Instant::now();
                    for _ in 0..iters {
                        s.write_all(&frame).await.expect("write");
                        read_frame(&mut *s, &mut scratch).await;
                    }
                    start.elapsed()
                })
                .await
                .expect("task")
            }
        });
    });
    g.bench_function("invoke_sync", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            let (client, addr) = (f.client.clone(), f.addr.clone());
            async move {
                tokio::spawn(async move {
                    let req = send_request(SerializeType::Json);
                    let start = Instant::now();
                    for _ in 0..iters {
                        client
                            .invoke_sync(&addr, req.clone(), TIMEOUT)
                            .await
                            .expect("reply");
                    }
                    start.elapsed()
                })
                .await
                .expect("task")
            }
        });
    });
    g.finish();

    let mut g = c.benchmark_group("rpc_64_callers");
    g.throughput(Throughput::Elements(1));
    g.bench_function("invoke_sync", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            let (client, addr) = (f.client.clone(), f.addr.clone());
            async move {
                let per = iters.div_ceil(CALLERS as u64);
                let start = Instant::now();
                let tasks: Vec<_> = (0..CALLERS)
                    .map(|_| {
                        let (client, addr) = (client.clone(), addr.clone());
                        tokio::spawn(async move {
                            let req = send_request(SerializeType::Json);
                            for _ in 0..per {
                                client
                                    .invoke_sync(&addr, req.clone(), TIMEOUT)
                                    .await
                                    .expect("reply");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per * CALLERS as u64) as f64)
            }
        });
    });
    g.finish();

    let mut g = c.benchmark_group("rpc_pipeline_256");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_pipeline", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            let (raw, frame) = (Arc::clone(&raw), f.frame.clone());
            async move {
                tokio::spawn(async move {
                    let mut s = raw.lock().await;
                    let (rd, mut wr) = s.split();
                    let mut rd = BufReader::with_capacity(64 * 1024, rd);
                    let window = Semaphore::new(PIPELINE);
                    let mut scratch = Vec::with_capacity(512);
                    let start = Instant::now();
                    let writer = async {
                        for _ in 0..iters {
                            window.acquire().await.expect("open").forget();
                            wr.write_all(&frame).await.expect("write");
                        }
                    };
                    let reader = async {
                        for _ in 0..iters {
                            read_frame(&mut rd, &mut scratch).await;
                            window.add_permits(1);
                        }
                    };
                    tokio::join!(writer, reader);
                    start.elapsed()
                })
                .await
                .expect("task")
            }
        });
    });
    g.bench_function("invoke_async", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            let (client, addr) = (f.client.clone(), f.addr.clone());
            async move {
                tokio::spawn(async move {
                    let req = send_request(SerializeType::Json);
                    let mut window = VecDeque::with_capacity(PIPELINE);
                    let start = Instant::now();
                    let mut sent = 0;
                    while sent < iters.min(PIPELINE as u64) {
                        window.push_back(
                            client
                                .invoke_async(&addr, req.clone(), TIMEOUT)
                                .await
                                .expect("accepted"),
                        );
                        sent += 1;
                    }
                    while let Some(oldest) = window.pop_front() {
                        oldest.await.expect("reply");
                        if sent < iters {
                            window.push_back(
                                client
                                    .invoke_async(&addr, req.clone(), TIMEOUT)
                                    .await
                                    .expect("accepted"),
                            );
                            sent += 1;
                        }
                    }
                    start.elapsed()
                })
                .await
                .expect("task")
            }
        });
    });
    g.finish();
}

criterion_group!(benches, codec, rpc);
criterion_main!(benches);
