//! The producer's asynchronous send with a fixed window in flight, for measuring its cost per
//! send under `valgrind` (issue 13):
//!
//! ```text
//! cargo run --release --example producer_cost -- NAMESRV COUNT WINDOW
//! valgrind --tool=callgrind target/release/examples/producer_cost 127.0.0.1:29876 10000 32
//! ```
//!
//! Sends COUNT messages (topic `BenchTopic`, 128-byte body) through `Producer::send_async`,
//! keeping WINDOW `SendFuture`s in flight (the oldest awaited, then replaced), and prints
//! `mode=producer_async count=… secs=… tps=…`. Unlike `rmq bench --mode async` (whose window is
//! the producer's whole back-pressure bound), a small window keeps every answer far below the
//! fault table's latency thresholds even under valgrind, so a run takes the same path as a
//! healthy producer at full speed. Every send must succeed; anything else ends the run with an
//! error.

use std::collections::VecDeque;
use std::error::Error;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq::common::Message;
use rmq::producer::{Producer, SendFuture, SendOptions};

const TOPIC: &str = "BenchTopic";
/// The whole run ends after this, finished or not.
const LIMIT: Duration = Duration::from_secs(900);

fn arg(i: usize, name: &str) -> Result<String, Box<dyn Error>> {
    std::env::args()
        .nth(i)
        .ok_or_else(|| format!("usage: producer_cost NAMESRV COUNT WINDOW (missing {name})").into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let namesrv = arg(1, "NAMESRV")?;
    let count: usize = arg(2, "COUNT")?.parse()?;
    let window: usize = arg(3, "WINDOW")?.parse::<usize>()?.max(1);
    let producer = Producer::builder("CostGroup")
        .name_server(namesrv.as_str())
        .start()
        .await?;
    let body = Bytes::from(vec![b'c'; 128]);
    // The route is loaded before the clock starts.
    producer.send(Message::new(TOPIC, body.clone())).await?;
    let started = Instant::now();
    let mut in_flight: VecDeque<SendFuture> = VecDeque::with_capacity(window);
    let mut done = 0usize;
    for i in 0..count {
        if started.elapsed() > LIMIT {
            return Err(format!("time limit reached after {i} sends").into());
        }
        if in_flight.len() == window {
            if let Some(oldest) = in_flight.pop_front() {
                oldest.await?;
                done += 1;
            }
        }
        let fut = producer
            .send_async(Message::new(TOPIC, body.clone()), SendOptions::new())
            .await?;
        in_flight.push_back(fut);
    }
    for fut in in_flight {
        fut.await?;
        done += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    producer.shutdown().await;
    println!(
        "mode=producer_async count={done} secs={secs:.3} tps={:.0}",
        done as f64 / secs
    );
    Ok(())
}
