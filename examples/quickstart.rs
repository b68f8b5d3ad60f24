//! The first thing to run: `cargo run --example quickstart`.
//!
//! Uses the name server in `NAMESRV_ADDR` when it is set; otherwise starts the embedded dev
//! broker (in memory, in this process). Sends a few messages in each mode, sync, async, oneway
//! and batch, prints each result, and exits non-zero if any send failed.

mod support;

use std::error::Error;
use std::process::ExitCode;

use rmq::common::Message;
use rmq::producer::{SendError, SendOptions};

const TOPIC: &str = "QuickstartTopic";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(0) => {
            println!("done: every message was sent");
            ExitCode::SUCCESS
        }
        Ok(failed) => {
            eprintln!("{failed} send(s) failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", support::with_causes(&*e));
            ExitCode::FAILURE
        }
    }
}

/// Prints a failed send and counts it.
fn failed(mode: &str, e: &SendError, failures: &mut usize) {
    *failures += 1;
    println!(
        "{mode:<7} FAILED (maybe stored: {}): {}",
        e.maybe_stored(),
        support::with_causes(e)
    );
}

async fn run() -> Result<usize, Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target.builder("quickstart_group").start().await?;
    let mut failures = 0;

    // Sync: wait for the broker's answer.
    for i in 0..3 {
        let msg = Message::new(TOPIC, format!("sync message #{i}"))
            .with_tags("TagA")
            .with_keys([format!("order-{i}")]);
        match producer.send(msg).await {
            Ok(r) => println!("sync    {}", support::short(&r)),
            Err(e) => failed("sync", &e, &mut failures),
        }
    }

    // Async: start every send first, then collect the answers.
    let mut pending = Vec::new();
    for i in 0..3 {
        pending.push(
            producer
                .send_async(
                    Message::new(TOPIC, format!("async message #{i}")),
                    SendOptions::new(),
                )
                .await?,
        );
    }
    for fut in pending {
        match fut.await {
            Ok(r) => println!("async   {}", support::short(&r)),
            Err(e) => failed("async", &e, &mut failures),
        }
    }

    // Oneway: written to the broker, no answer awaited.
    for i in 0..3 {
        match producer
            .send_oneway(
                Message::new(TOPIC, format!("oneway message #{i}")),
                SendOptions::new(),
            )
            .await
        {
            Ok(()) => println!("oneway  written"),
            Err(e) => failed("oneway", &e, &mut failures),
        }
    }

    // Batch: several messages of one topic in one request.
    let batch = (0..3)
        .map(|i| Message::new(TOPIC, format!("batch message #{i}")))
        .collect();
    match producer.send_batch(batch, SendOptions::new()).await {
        Ok(r) => println!("batch   {}", support::short(&r)),
        Err(e) => failed("batch", &e, &mut failures),
    }

    producer.shutdown().await;
    target.shutdown().await;
    Ok(failures)
}
