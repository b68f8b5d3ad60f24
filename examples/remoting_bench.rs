//! `RemotingClient::invoke_async` pipelined against a broker port, for `scripts/bench-ratios.sh`:
//!
//! ```text
//! cargo run --release --example remoting_bench -- ADDR COUNT WINDOW
//! ```
//!
//! Sends COUNT SEND_MESSAGE_V2 requests (JSON header, the producer's 13 V2 fields, 128-byte
//! body) to ADDR (e.g. nullbroker's broker port) keeping WINDOW `ResponseFuture`s in flight
//! (the oldest awaited, then replaced), and prints `mode=invoke_async count=… secs=… tps=…`
//! like `rawping`. Every reply must be SUCCESS; anything else ends the run with an error.

use std::collections::VecDeque;
use std::error::Error;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq::common::{ExtFields, RequestCode};
use rmq::remoting::{RemotingClient, RemotingCommand, RemotingConfig};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A SEND_MESSAGE_V2 request as the producer sends it, with a 128-byte body.
fn send_request(body: &Bytes) -> RemotingCommand {
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
        ("n", "nullbroker-a"),
    ]
    .into_iter()
    .collect();
    RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, ext).with_body(body.clone())
}

fn arg(args: &[String], i: usize, name: &str) -> Result<String, Box<dyn Error>> {
    args.get(i)
        .cloned()
        .ok_or_else(|| format!("usage: remoting_bench ADDR COUNT WINDOW (missing {name})").into())
}

/// Keeps `window` requests in flight until `count` replies came; (replies, seconds).
async fn pipeline(
    client: &RemotingClient,
    addr: &str,
    req: &RemotingCommand,
    count: usize,
    window: usize,
) -> Result<(usize, f64), String> {
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    let mut sent = 0;
    let mut done = 0;
    while done < count {
        while sent < count && in_flight.len() < window {
            let fut = client
                .invoke_async(addr, req.clone(), TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            in_flight.push_back(fut);
            sent += 1;
        }
        let Some(oldest) = in_flight.pop_front() else {
            break;
        };
        let resp = oldest.await.map_err(|e| e.to_string())?;
        if resp.code != 0 {
            return Err(format!("reply code {} ({:?})", resp.code, resp.remark));
        }
        done += 1;
    }
    Ok((done, started.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = arg(&args, 1, "ADDR")?;
    let count: usize = arg(&args, 2, "COUNT")?.parse()?;
    let window: usize = arg(&args, 3, "WINDOW")?.parse::<usize>()?.max(1);
    let client = RemotingClient::new(RemotingConfig::default());
    let req = send_request(&Bytes::from(vec![b'x'; 128]));
    // Warm up: connect and one round trip.
    client.invoke_sync(&addr, req.clone(), TIMEOUT).await?;
    // On a runtime worker, as an application's task would be (not the main thread).
    let (c, a) = (client.clone(), addr.clone());
    let (done, secs) = tokio::spawn(async move { pipeline(&c, &a, &req, count, window).await })
        .await
        .map_err(|e| e.to_string())??;
    println!(
        "mode=invoke_async count={done} secs={secs:.3} tps={:.0}",
        done as f64 / secs
    );
    client.shutdown().await;
    Ok(())
}
