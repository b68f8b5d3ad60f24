//! The producer through a RocketMQ 5 gRPC proxy against a bare tonic `SendMessage` loop, in
//! one run:
//!
//! ```text
//! PROXY_ADDR=127.0.0.1:8081 NAMESRV_ADDR=127.0.0.1:9876 \
//!   cargo run --release --example proxy_bench -- [SECS] [SIZE]
//! ```
//!
//! For each mode, sync with 1 task, sync with 64 tasks, and pipelined (one task keeping 256
//! sends in flight), first the bare loop (pre-built `SendMessageRequest`s, signed with the same
//! metadata, over a channel of the same configuration: one HTTP/2 connection), then the
//! producer (`send`, `send_async`), each for SECS seconds (default 5) with SIZE-byte bodies
//! (default 128), and prints the producer's throughput as a share of the bare loop's. The topic
//! (`BENCH_TOPIC`, default a fresh one) is created first with a remoting send when
//! `NAMESRV_ADDR` is set (this proxy does not create topics).

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rmq::common::Message;
use rmq::producer::{Producer, SendOptions};
use rmq_grpc::{pb, ClientMeta, Session, SessionConfig};

const TIMEOUT: Duration = Duration::from_secs(10);
const WINDOW: usize = 256;
const POOL: usize = 4096;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Sync(usize),
    Pipelined,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sync(n) => write!(f, "sync x{n}"),
            Self::Pipelined => write!(f, "pipelined w{WINDOW}"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

/// Pre-built one-message requests, as the producer would build them (ids differ).
fn requests(topic: &str, body: &Bytes) -> Arc<Vec<pb::SendMessageRequest>> {
    let born = now_ms();
    Arc::new(
        (0..POOL)
            .map(|i| pb::SendMessageRequest {
                messages: vec![pb::Message {
                    topic: Some(pb::Resource {
                        resource_namespace: String::new(),
                        name: topic.to_owned(),
                    }),
                    user_properties: Default::default(),
                    system_properties: Some(pb::SystemProperties {
                        tag: Some("TagA".to_owned()),
                        message_id: format!("7F00000100{born:016X}{i:06X}"),
                        body_encoding: pb::Encoding::Identity as i32,
                        message_type: pb::MessageType::Normal as i32,
                        born_timestamp: Some(timestamp(born)),
                        born_host: "127.0.0.1".to_owned(),
                        ..Default::default()
                    }),
                    body: body.clone(),
                }],
            })
            .collect(),
    )
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms / 1000,
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

fn ok(resp: &pb::SendMessageResponse) -> bool {
    resp.entries
        .first()
        .and_then(|e| e.status.as_ref())
        .is_some_and(|s| rmq_grpc::code::is_ok(s.code))
}

/// The bare loop: messages acknowledged in `secs`.
async fn bare(
    session: &Session,
    reqs: &Arc<Vec<pb::SendMessageRequest>>,
    mode: Mode,
    secs: Duration,
) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + secs;
    match mode {
        Mode::Sync(tasks) => {
            let mut handles = Vec::new();
            for t in 0..tasks {
                let (session, reqs, done) = (session.clone(), Arc::clone(reqs), Arc::clone(&done));
                handles.push(tokio::spawn(async move {
                    let mut client = session.raw_client();
                    let mut i = t;
                    while Instant::now() < deadline {
                        let req = session.request(reqs[i % POOL].clone(), TIMEOUT);
                        if let Ok(resp) = client.send_message(req).await {
                            if ok(resp.get_ref()) {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        i += tasks;
                    }
                }));
            }
            for h in handles {
                let _ = h.await;
            }
        }
        Mode::Pipelined => {
            let (tx, mut rx) = tokio::sync::mpsc::channel(WINDOW);
            let collector = {
                let done = Arc::clone(&done);
                tokio::spawn(async move {
                    while let Some(h) = rx.recv().await {
                        let h: tokio::task::JoinHandle<bool> = h;
                        if h.await.unwrap_or(false) {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            };
            let mut i = 0;
            while Instant::now() < deadline {
                let mut client = session.raw_client();
                let req = session.request(reqs[i % POOL].clone(), TIMEOUT);
                let h = tokio::spawn(async move {
                    client
                        .send_message(req)
                        .await
                        .is_ok_and(|r| ok(r.get_ref()))
                });
                if tx.send(h).await.is_err() {
                    break;
                }
                i += 1;
            }
            drop(tx);
            let _ = collector.await;
        }
    }
    done.load(Ordering::Relaxed)
}

/// The producer: messages acknowledged in `secs`.
async fn producer(p: &Producer, topic: &str, body: &Bytes, mode: Mode, secs: Duration) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + secs;
    match mode {
        Mode::Sync(tasks) => {
            let mut handles = Vec::new();
            for _ in 0..tasks {
                let (p, topic, body, done) =
                    (p.clone(), topic.to_owned(), body.clone(), Arc::clone(&done));
                handles.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        if p.send(Message::new(topic.as_str(), body.clone()).with_tags("TagA"))
                            .await
                            .is_ok()
                        {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for h in handles {
                let _ = h.await;
            }
        }
        Mode::Pipelined => {
            let (tx, mut rx) = tokio::sync::mpsc::channel(WINDOW);
            let collector = {
                let done = Arc::clone(&done);
                tokio::spawn(async move {
                    while let Some(f) = rx.recv().await {
                        let f: rmq::producer::SendFuture = f;
                        if f.await.is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            };
            while Instant::now() < deadline {
                let msg = Message::new(topic, body.clone()).with_tags("TagA");
                match p.send_async(msg, SendOptions::new()).await {
                    Ok(f) => {
                        if tx.send(f).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        eprintln!("send_async refused: {e}");
                        break;
                    }
                }
            }
            drop(tx);
            let _ = collector.await;
        }
    }
    done.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let secs = Duration::from_secs(args.get(1).map_or(Ok(5), |s| s.parse())?);
    let size: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let proxy = std::env::var("PROXY_ADDR").map_err(|_| "PROXY_ADDR is not set")?;
    let topic =
        std::env::var("BENCH_TOPIC").unwrap_or_else(|_| format!("RmqProxyBench{}", now_ms()));
    let body = Bytes::from(vec![b'x'; size]);
    if let Ok(namesrv) = std::env::var("NAMESRV_ADDR") {
        let creator = Producer::builder("RmqProxyBenchCreate")
            .name_server(&namesrv)
            .start()
            .await?;
        for _ in 0..16 {
            creator.send(Message::new(topic.as_str(), "create")).await?;
        }
        creator.shutdown().await;
    }
    let p = Producer::builder("RmqProxyBench")
        .proxy(proxy.as_str())
        .async_backpressure(WINDOW * 4, 1 << 30)
        .start()
        .await?;
    // Warm-up: the route and the connection.
    p.send(Message::new(topic.as_str(), body.clone())).await?;
    let session = Session::new(SessionConfig {
        endpoint: proxy.parse()?,
        meta: ClientMeta::new(
            &format!("127.0.0.1@bench{}", std::process::id()),
            "0.1.0",
            "",
            None,
        )?,
        connect_timeout: Duration::from_secs(3),
        keep_alive: None,
        tls: None,
    })?;
    let reqs = requests(&topic, &body);
    println!("proxy {proxy}, topic {topic}, {size}-byte bodies, {secs:?} per run");
    println!(
        "{:<16} {:>12} {:>12} {:>8}",
        "mode", "bare msg/s", "rmq msg/s", "share"
    );
    for mode in [Mode::Sync(1), Mode::Sync(64), Mode::Pipelined] {
        let b = bare(&session, &reqs, mode, secs).await;
        let r = producer(&p, &topic, &body, mode, secs).await;
        let s = secs.as_secs_f64();
        let (bt, rt) = (b as f64 / s, r as f64 / s);
        println!(
            "{:<16} {:>12.0} {:>12.0} {:>7.1}%",
            mode.to_string(),
            bt,
            rt,
            100.0 * rt / bt.max(1.0)
        );
    }
    p.shutdown().await;
    Ok(())
}
