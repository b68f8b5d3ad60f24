//! Oneway sends: `cargo run --example oneway`.
//!
//! `send_oneway` resolves once the request is written; no answer is awaited and nothing is
//! retried. Use it for data where throughput matters more than knowing each message arrived
//! (logs, metrics).

mod support;

use std::error::Error;

use rmq::common::Message;
use rmq::producer::SendOptions;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target.builder("example_oneway").start().await?;

    let mut written = 0;
    for i in 0..10 {
        let line = format!("level=info msg=\"request served\" seq={i}");
        producer
            .send_oneway(
                Message::new("ExampleLogs", line).with_tags("info"),
                SendOptions::new(),
            )
            .await?;
        written += 1;
    }
    println!("{written} log lines written (oneway: no broker answer awaited)");

    producer.shutdown().await;
    target.shutdown().await;
    Ok(())
}
