//! Message trace: `cargo run --example trace`.
//!
//! With `ProducerBuilder::enable_trace`, every stored send leaves a `Pub` record (in Java's
//! format) in the trace topic, `RMQ_SYS_TRACE_TOPIC` by default, sent in batches off the send
//! path; the RocketMQ dashboard finds a message's trace by its id.

mod support;

use std::error::Error;

use rmq::common::Message;
use rmq::producer::{Producer, TraceConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = Producer::builder("example_trace")
        .name_server(&target.namesrv)
        .enable_trace(TraceConfig::default())
        .start()
        .await?;
    for i in 0..5 {
        let r = producer
            .send(
                Message::new("ExampleTrace", format!("order {i}"))
                    .with_keys([format!("order-{i}")]),
            )
            .await?;
        println!(
            "{} msgId={} (its trace is keyed by this id)",
            r.status, r.msg_id
        );
    }
    producer.shutdown().await; // sends the trace records still queued, then stops
    if let Some(stats) = producer.trace_stats() {
        println!(
            "trace: {} records in {} messages to {}, {} dropped",
            stats.records_sent, stats.messages_sent, stats.topic, stats.dropped
        );
    }
    target.shutdown().await;
    Ok(())
}
