//! Ordered sends with a queue selector: `cargo run --example ordered_selector`.
//!
//! Messages of one order must be consumed in the order they were sent, so they must all go to
//! the same queue. `SendOptions::selector` lets a selector pick the queue; here the built-in
//! `JavaHashSelector` of the order id, which picks the queue Java's `SelectMessageQueueByHash`
//! picks for the same id, so Java and Rust producers of one topic keep an order on one queue.
//! The producer never moves such a send to another queue.

mod support;

use std::collections::BTreeMap;
use std::error::Error;

use rmq::common::{Message, MessageQueue};
use rmq::producer::{JavaHashSelector, SendOptions};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target.builder("example_ordered").start().await?;

    let mut queue_of: BTreeMap<i64, Vec<(String, i32)>> = BTreeMap::new();
    // `i64`: the hash of a Java `Long` order id.
    for order_id in [1001_i64, 1002, 1003] {
        for step in ["created", "paid", "shipped"] {
            let msg = Message::new("ExampleOrdered", format!("order {order_id}: {step}"))
                .with_tags(step)
                .with_keys([order_id.to_string()]);
            let r = producer
                .send_with(
                    msg,
                    SendOptions::new().selector(JavaHashSelector::new(&order_id)),
                )
                .await?;
            println!("order {order_id} {step:<8} -> {}", support::short(&r));
            queue_of
                .entry(order_id)
                .or_default()
                .push((r.queue.broker_name, r.queue.queue_id));
        }
    }
    for (order_id, queues) in &queue_of {
        let first = &queues[0];
        if queues.iter().any(|q| q != first) {
            return Err(format!("order {order_id} was spread over {queues:?}").into());
        }
    }
    println!("every order kept to one queue");

    // A custom selector is any closure over (queues, message); what Java passes as the
    // selector's argument is whatever the closure captures.
    let last_queue = |queues: &[MessageQueue], _: &Message| queues.len().checked_sub(1);
    let r = producer
        .send_with(
            Message::new("ExampleOrdered", "to the last queue"),
            SendOptions::new().selector(last_queue),
        )
        .await?;
    println!("custom selector -> {}", support::short(&r));

    producer.shutdown().await;
    target.shutdown().await;
    Ok(())
}
