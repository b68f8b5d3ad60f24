//! Ordered sends with a queue selector: `cargo run --example ordered_selector`.
//!
//! Messages of one order must be consumed in the order they were sent, so they must all go to
//! the same queue. `send_with_selector` lets a selector pick the queue from an argument (here
//! the order id, with the built-in `HashSelector`); the producer never moves such a send to
//! another queue.

mod support;

use std::collections::BTreeMap;
use std::error::Error;

use rmq::common::{Message, MessageQueue};
use rmq::producer::{HashSelector, Producer};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = Producer::builder("example_ordered")
        .name_server(&target.namesrv)
        .start()
        .await?;

    let mut queue_of: BTreeMap<u64, Vec<(String, i32)>> = BTreeMap::new();
    for order_id in [1001_u64, 1002, 1003] {
        for step in ["created", "paid", "shipped"] {
            let msg = Message::new("ExampleOrdered", format!("order {order_id}: {step}"))
                .with_tags(step)
                .with_keys([order_id.to_string()]);
            let r = producer
                .send_with_selector(msg, &HashSelector, &order_id)
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

    // A custom selector is any closure over (queues, message, argument).
    let last_queue = |queues: &[MessageQueue], _: &Message, _: &()| queues.len().checked_sub(1);
    let r = producer
        .send_with_selector(
            Message::new("ExampleOrdered", "to the last queue"),
            &last_queue,
            &(),
        )
        .await?;
    println!("custom selector -> {}", support::short(&r));

    producer.shutdown().await;
    target.shutdown().await;
    Ok(())
}
