//! Batch sends: `cargo run --example batch`.
//!
//! `send_batch` sends several messages of one topic in one request (`SEND_BATCH_MESSAGE`). The
//! result's `msg_id` lists every message's id, comma-separated. Batches must share a topic and
//! cannot carry a delay; the producer checks this before sending.

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
    let producer = target.builder("example_batch").start().await?;

    let batch: Vec<Message> = (0..10)
        .map(|i| Message::new("ExampleBatch", format!("item {i}")).with_keys([format!("item-{i}")]))
        .collect();
    let r = producer.send_batch(batch, SendOptions::new()).await?;
    println!(
        "batch stored: {} on {}/{}",
        r.status, r.queue.broker_name, r.queue.queue_id
    );
    for (i, id) in r.msg_id.split(',').enumerate() {
        println!("  item {i}: msgId={id}");
    }

    // A batch mixing topics is refused before anything is sent, and handed back.
    let mixed = vec![
        Message::new("ExampleBatch", "a"),
        Message::new("OtherTopic", "b"),
    ];
    match producer.send_batch(mixed, SendOptions::new()).await {
        Ok(_) => return Err("a mixed batch must be refused".into()),
        Err(e) => {
            println!("mixed batch refused: {}", support::with_causes(&e));
            let back = e.into_batch().map_or(0, |msgs| msgs.len());
            println!("  {back} messages handed back, unsent");
        }
    }

    producer.shutdown().await;
    target.shutdown().await;
    Ok(())
}
