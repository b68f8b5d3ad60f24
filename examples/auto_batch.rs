//! Auto-batching: `cargo run --example auto_batch`.
//!
//! With `ProducerBuilder::auto_batch`, `send` and `send_async` of one message are held for a
//! moment (10 ms by default) and sent with the other sends of the same topic as one
//! `SEND_BATCH_MESSAGE`. Every caller still gets its own result: its own message id, and the
//! queue offset its message was stored at.

mod support;

use std::error::Error;
use std::time::Duration;

use rmq::common::Message;
use rmq::producer::AutoBatchConfig;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target
        .builder("example_auto_batch")
        .auto_batch(AutoBatchConfig::default().with_hold_time(Duration::from_millis(20)))
        .start()
        .await?;

    // Eight tasks each send one message and wait for its answer, as many request handlers would.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            producer
                .send(Message::new("ExampleAutoBatch", format!("order {i}")))
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let r = task.await??;
        println!(
            "order {i}: {} msgId={} {}@{}",
            r.status, r.msg_id, r.queue, r.queue_offset
        );
    }

    producer.shutdown().await; // sends anything still held, then stops
    target.shutdown().await;
    Ok(())
}
