//! Asynchronous sends with back-pressure: `cargo run --example async_backpressure`.
//!
//! `send_async` returns a future per message and lets many sends be in flight at once. The
//! producer bounds how many (and how many bytes): when the bound is reached, `send_async` waits
//! for room, and `try_send_async` returns an `Overloaded` error (with the message) instead.

mod support;

use std::error::Error;
use std::time::Instant;

use rmq::common::Message;
use rmq::producer::SendOptions;

const SENDS: usize = 2_000;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target
        .builder("example_async")
        .async_backpressure(64, 1024 * 1024) // at most 64 sends / 1 MiB of bodies in flight
        .start()
        .await?;

    // Waits for room whenever 64 sends are in flight; each future resolves exactly once.
    let started = Instant::now();
    let mut futures = Vec::with_capacity(SENDS);
    for i in 0..SENDS {
        let msg = Message::new("ExampleAsync", format!("event {i}"));
        futures.push(producer.send_async(msg, SendOptions::new()).await?);
        let stats = producer.stats();
        assert!(stats.async_in_flight <= 64, "the bound holds: {stats:?}");
    }
    let (mut ok, mut failed) = (0, 0);
    for fut in futures {
        match fut.await {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                eprintln!(
                    "failed (maybe stored: {}): {}",
                    e.maybe_stored(),
                    support::with_causes(&e)
                );
            }
        }
    }
    println!(
        "{ok} stored, {failed} failed in {:?} (at most 64 in flight)",
        started.elapsed()
    );

    // Without waiting: fill the window, then see the typed refusal.
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        match producer.try_send_async(
            Message::new("ExampleAsync", format!("burst {i}")),
            SendOptions::new(),
        ) {
            Ok(fut) => held.push(fut),
            Err(e) if e.is_overloaded() => {
                refused += 1;
                // The message comes back, unsent; a real service would retry it later.
                let _unsent = e.into_message();
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "burst: {} admitted, {refused} refused as overloaded",
        held.len()
    );
    for fut in held {
        if let Err(e) = fut.await {
            failed += 1;
            eprintln!("burst send failed: {}", support::with_causes(&e));
        }
    }

    producer.shutdown().await;
    target.shutdown().await;
    if failed > 0 {
        return Err(format!("{failed} send(s) failed").into());
    }
    Ok(())
}
