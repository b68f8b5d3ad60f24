//! Delayed messages: `cargo run --example delayed`.
//!
//! A delay level (1 = 1 s, 2 = 5 s, 3 = 10 s, ... 18 = 2 h with the broker's default
//! `messageDelayLevel`) or, on RocketMQ 5, an exact delivery time. The broker stores the message
//! at once and delivers it to consumers when the delay has passed; a timer message can be
//! recalled before then.

mod support;

use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmq::common::Message;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target.builder("example_delayed").start().await?;

    // Delay level 3: delivered about 10 s after it is stored.
    let msg = Message::new("ExampleDelayed", "reminder: 10 s later").with_delay_level(3);
    let r = producer.send(msg).await?;
    println!("delay level 3 stored: {}", support::short(&r));

    // RocketMQ 5 timer messages: deliver 30 s from now, to the millisecond.
    let at = SystemTime::now().duration_since(UNIX_EPOCH)? + Duration::from_secs(30);
    let msg = Message::new("ExampleDelayed", "reminder: in 30 s")
        .with_deliver_time_ms(u64::try_from(at.as_millis())?);
    let r = producer.send(msg).await?;
    println!("deliver-at stored:    {}", support::short(&r));

    // Changed your mind? A timer message is recalled before its time with its result's handle.
    let msg = Message::new("ExampleDelayed", "cancelled reminder").with_delay_time_sec(60);
    let r = producer.send(msg).await?;
    if let Some(handle) = &r.recall_handle {
        let id = producer.recall("ExampleDelayed", handle).await?;
        println!("recalled:             {id} (never delivered)");
    }

    producer.shutdown().await;
    target.shutdown().await;
    Ok(())
}
