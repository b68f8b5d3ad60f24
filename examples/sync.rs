//! Synchronous sends: `cargo run --example sync` (uses `NAMESRV_ADDR`, or the embedded dev broker).
//!
//! Each `send` waits for the broker's answer. A failure tells whether the message may have been
//! stored (`maybe_stored`), and hands the message back when it certainly was not (`into_message`),
//! so it can be sent again without risking a duplicate.

mod support;

use std::error::Error;
use std::time::Duration;

use rmq::common::Message;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target
        .builder("example_sync")
        .send_timeout(Duration::from_secs(3)) // one deadline per send, retries included
        .retries(2)
        .start()
        .await?;

    let mut failed = 0;
    for i in 0..5 {
        let msg = Message::new("ExampleSync", format!("order {i} created"))
            .with_tags("created")
            .with_keys([format!("order-{i}")])
            .with_user_property("region", "eu-west")?;
        match producer.send(msg).await {
            Ok(r) => println!("stored: {}", support::short(&r)),
            Err(e) if e.maybe_stored() => {
                failed += 1;
                println!(
                    "unknown outcome (the broker may have stored it): {}",
                    support::with_causes(&e)
                );
            }
            Err(e) => {
                failed += 1;
                println!("not stored: {}", support::with_causes(&e));
                if let Some(msg) = e.into_message() {
                    println!(
                        "  the message came back (body {} bytes); it can be resent",
                        msg.body().len()
                    );
                }
            }
        }
    }

    producer.shutdown().await;
    target.shutdown().await;
    if failed > 0 {
        return Err(format!("{failed} send(s) failed").into());
    }
    Ok(())
}
