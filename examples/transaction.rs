//! Transactional messages: `cargo run --example transaction` (uses `NAMESRV_ADDR`, or the
//! embedded dev broker).
//!
//! Three orders, three outcomes. Each message is first stored as a *half* message, invisible to
//! consumers; then the listener's `execute` runs the local transaction and decides:
//!
//! - order 1 commits: the message becomes visible;
//! - order 2 rolls back: the message is discarded;
//! - order 3 answers "unknown" (say, the local database timed out): the broker keeps the half
//!   message and later asks the producer group (`check`), which finds the order written and
//!   commits.
//!
//! The example exits 0 once all three ended as intended: the third one needs the broker's
//! check-back, which comes after the broker's transaction timeout and check interval (seconds
//! on the embedded broker and on `scripts/rocketmq-dev.sh`'s cluster; Java's broker defaults are
//! 6 s and 60 s). It waits for it at most `CHECK_WAIT_SECS` (default 120).

mod support;

use std::collections::HashMap;
use std::error::Error;
use std::sync::Mutex;
use std::time::Duration;

use rmq::common::stored::MessageExt;
use rmq::common::Message;
use rmq::producer::{ListenerError, TransactionListener, TransactionState};
use tokio::sync::Notify;

/// The local "database": order id → whether the order was written, keyed by message id.
#[derive(Default)]
struct Orders {
    /// Message id (`UNIQ_KEY`) → the decision the local transaction came to.
    written: Mutex<HashMap<String, TransactionState>>,
    /// Message ids the broker asked about.
    checked: Mutex<Vec<String>>,
    check_arrived: Notify,
}

impl TransactionListener for Orders {
    /// What the local transaction should decide (a stand-in for real business logic).
    type Arg = TransactionState;

    async fn execute(
        &self,
        msg: &Message,
        decision: TransactionState,
    ) -> Result<TransactionState, ListenerError> {
        let id = msg.property("UNIQ_KEY").unwrap_or_default().to_owned();
        let body = String::from_utf8_lossy(msg.body()).into_owned();
        // "Unknown" stands for a local transaction that did commit, but whose outcome the
        // producer could not learn in time: the check-back finds it written.
        let stored = match decision {
            TransactionState::Unknown => TransactionState::Commit,
            other => other,
        };
        self.written
            .lock()
            .map_err(|_| "poisoned")?
            .insert(id, stored);
        println!("execute: {body:<10} -> {decision}");
        Ok(decision)
    }

    async fn check(&self, msg: &MessageExt) -> Result<TransactionState, ListenerError> {
        let id = msg.uniq_key().unwrap_or_default().to_owned();
        let state = self
            .written
            .lock()
            .map_err(|_| "poisoned")?
            .get(&id)
            .copied()
            .unwrap_or(TransactionState::Rollback);
        println!(
            "check:   {:<10} -> {state} (asked by the broker)",
            String::from_utf8_lossy(msg.message.body())
        );
        self.checked.lock().map_err(|_| "poisoned")?.push(id);
        self.check_arrived.notify_waiters();
        Ok(state)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    let producer = target
        .builder("example_transaction")
        .start_transactional(Orders::default())
        .await?;

    let mut unknown_id = None;
    for (order, decision) in [
        ("order 1", TransactionState::Commit),
        ("order 2", TransactionState::Rollback),
        ("order 3", TransactionState::Unknown),
    ] {
        let msg = Message::new("ExampleTransaction", order).with_keys([order.replace(' ', "-")]);
        let r = producer.send_in_transaction(msg, decision).await?;
        println!(
            "ended:   {order:<10} -> {} ({})",
            r.state,
            support::short(&r.send)
        );
        if r.state != decision || !r.end_written {
            return Err(format!("{order}: expected {decision}, got {r}").into());
        }
        if decision == TransactionState::Unknown {
            unknown_id = Some(r.send.msg_id.clone());
        }
    }

    let wait = std::env::var("CHECK_WAIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs);
    println!("waiting up to {wait:?} for the broker to check order 3 back...");
    let orders = producer.listener();
    let asked = |id: &str| {
        orders
            .checked
            .lock()
            .is_ok_and(|c| c.iter().any(|x| x == id))
    };
    let id = unknown_id.unwrap_or_default();
    let checked = tokio::time::timeout(wait, async {
        loop {
            let arrived = orders.check_arrived.notified();
            if asked(&id) {
                break;
            }
            arrived.await;
        }
    })
    .await
    .is_ok();
    // Let the answer to the check go out before stopping.
    tokio::time::sleep(Duration::from_millis(200)).await;
    producer.shutdown().await;
    target.shutdown().await;
    if !checked {
        return Err(format!("no check-back for order 3 within {wait:?}").into());
    }
    println!("all three transactions ended as intended");
    Ok(())
}
