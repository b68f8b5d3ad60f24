//! Memory check of asynchronous sends with back-pressure:
//! `cargo run --release --example producer_rss [-- COUNT]` (default 1,000,000 sends of 1 KiB).
//!
//! Sends COUNT 1 KiB messages with `send_async` (default bounds: 1024 sends / 100 MiB in flight)
//! to an in-process broker that answers every send without storing it, keeps at most 4096
//! outcome futures pending, counts every outcome, and prints the peak RSS (`VmHWM` of
//! `/proc/self/status`). Fails when a result is lost, an error occurs, or the run exceeds 10
//! minutes. Numbers are recorded in `benches/README.md`, section "producer".

mod support;

use std::collections::VecDeque;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq::common::{ExtFields, Message, RequestCode, ResponseCode};
use rmq::producer::{Producer, SendFuture, SendOptions};
use rmq::remoting::{
    BoxFuture, ProcessorTable, RemotingCommand, RemotingConfig, RemotingServer, RequestContext,
};
use rmq_testkit::{MockNameServer, RouteBuilder};

const TOPIC: &str = "RssTopic";
const WINDOW: usize = 4096;
const LIMIT: Duration = Duration::from_secs(600);

/// A broker that acknowledges every send (and heartbeat / unregister) without storing anything.
fn answer(_: RequestContext, req: RemotingCommand) -> BoxFuture<'static, Option<RemotingCommand>> {
    Box::pin(async move {
        let mut resp = req.response_to(ResponseCode::SUCCESS, None);
        if req.request_code() == RequestCode::SEND_MESSAGE_V2 {
            let ext: ExtFields = [
                ("msgId", "7F00000100002A9F00000000004988BA"),
                ("queueId", "0"),
                ("queueOffset", "0"),
            ]
            .into_iter()
            .collect();
            resp.ext_fields = ext;
        }
        Some(resp)
    })
}

/// Peak resident set size in KiB (`VmHWM`), when the platform reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let processor = Arc::new(answer);
    let table = ProcessorTable::new()
        .with(RequestCode::SEND_MESSAGE_V2, processor.clone())
        .with(RequestCode::HEART_BEAT, processor.clone())
        .with(RequestCode::UNREGISTER_CLIENT, processor);
    let broker = RemotingServer::bind("127.0.0.1:0", RemotingConfig::default(), table).await?;
    let namesrv = MockNameServer::start().await?;
    let addr = broker.local_addr().to_string();
    namesrv.set_route(
        TOPIC,
        RouteBuilder::new()
            .broker("broker-a", &addr)
            .queues("broker-a", 4)
            .build(),
    );

    let producer = Producer::builder("RssGroup")
        .name_server(namesrv.addr())
        .start()
        .await?;
    let body = Bytes::from(vec![b'r'; 1024]);
    let before = peak_rss_kib();
    let started = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut window: VecDeque<SendFuture> = VecDeque::with_capacity(WINDOW);
    let mut settle = |outcome: Result<_, _>| match outcome {
        Ok(_) => ok += 1,
        Err(e) => {
            failed += 1;
            eprintln!("send failed: {}", support::with_causes(&e));
        }
    };
    for i in 0..count {
        if started.elapsed() > LIMIT {
            return Err(format!("time limit reached after {i} sends").into());
        }
        if window.len() == WINDOW {
            if let Some(oldest) = window.pop_front() {
                settle(oldest.await);
            }
        }
        window.push_back(
            producer
                .send_async(Message::new(TOPIC, body.clone()), SendOptions::new())
                .await?,
        );
    }
    for f in window {
        settle(f.await);
    }
    let elapsed = started.elapsed();
    let stats = producer.stats();
    producer.shutdown().await;
    broker.shutdown().await;
    namesrv.shutdown().await;

    let peak = peak_rss_kib();
    println!(
        "{count} async sends of 1 KiB in {:.1} s ({:.0} msg/s): {ok} ok, {failed} failed, lost {}",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        count - ok - failed,
    );
    println!(
        "peak RSS: {} MiB (before sending: {} MiB); in flight at the end: {stats:?}",
        peak.map_or("n/a".into(), |k| (k / 1024).to_string()),
        before.map_or("n/a".into(), |k| (k / 1024).to_string()),
    );
    if ok != count {
        return Err(format!("{} of {count} sends did not succeed", count - ok).into());
    }
    if peak.is_some_and(|k| k > 256 * 1024) {
        return Err("peak RSS above 256 MiB".into());
    }
    Ok(())
}
