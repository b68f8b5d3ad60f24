//! `rmq send --transaction STATE`: each message is sent in a transaction (a half message, the
//! local transaction, `END_TRANSACTION`), one at a time; the local transaction decides STATE.
//!
//! Transactions left undecided on the broker (`unknown`, or an `END_TRANSACTION` that could not
//! be written) are answered when the broker checks back: the process stays up for that, at
//! most `--check-wait`, and ends as soon as each got its answer (COMMIT for `unknown`). A
//! check about a half message this run did not send (the same group's earlier runs) is
//! answered UNKNOW: nothing is decided for a transaction this process knows nothing about.

use std::sync::Arc;
use std::time::Duration;

use rmq_common::stored::MessageExt;
use rmq_common::{property, Message, MessageQueue};
use rmq_producer::{ListenerError, ProducerBuilder, TransactionListener, TransactionState};

use crate::cli::{SendArgs, DEFAULT_CHECK_WAIT_SECS};
use crate::fatal::Fatal;
use crate::output::{
    print_stdout, to_json, CheckLine, ErrorLine, Tally, TxSendLine, CHECK_ANSWERED,
};
use crate::tx_ledger::Ledger;

/// The listener of `rmq send --transaction`: `execute` answers the chosen state, `check`
/// answers what the run decided for its own messages and UNKNOW for the others, printing one
/// line per check.
#[derive(Debug)]
struct SendListener {
    ledger: Arc<Ledger>,
}

impl TransactionListener for SendListener {
    /// The state chosen with `--transaction`.
    type Arg = TransactionState;

    async fn execute(
        &self,
        msg: &Message,
        decision: TransactionState,
    ) -> Result<TransactionState, ListenerError> {
        match msg.property(property::UNIQ_KEY) {
            Some(id) => self.ledger.executed(id, decision),
            // The producer always sets it; without, a check could not be matched.
            None => tracing::warn!("transactional message without a message id"),
        }
        Ok(decision)
    }

    async fn check(&self, msg: &MessageExt) -> Result<TransactionState, ListenerError> {
        let id = msg.uniq_key().unwrap_or_default();
        let (state, sent_here) = match self.ledger.check(id) {
            Some((state, _)) => (state, true),
            None => {
                tracing::warn!(
                    msg_id = id,
                    topic = msg.message.topic(),
                    commit_log_offset = msg.commit_log_offset,
                    "check-back of a half message this run did not send: answered UNKNOW"
                );
                (TransactionState::Unknown, false)
            }
        };
        print_stdout(&to_json(&CheckLine {
            status: CHECK_ANSWERED,
            msg_id: id,
            topic: msg.message.topic(),
            transaction_state: state.as_str(),
            sent_here,
        }));
        Ok(state)
    }
}

/// Sends `args.count` copies of `template` in transactions deciding `decision` (to `queue` when
/// given), then waits for the check-backs of those left undecided; returns the exit code.
pub(crate) async fn run(
    args: &SendArgs,
    builder: ProducerBuilder,
    template: &Message,
    decision: TransactionState,
    queue: Option<MessageQueue>,
) -> Result<u8, Fatal> {
    let ledger = Arc::new(Ledger::new(true));
    let producer = builder
        .start_transactional(SendListener {
            ledger: Arc::clone(&ledger),
        })
        .await
        .map_err(|e| crate::fatal::producer_start(&e))?;
    let mut tally = Tally::default();
    for _ in 0..args.count {
        let sent = producer
            .send_in_transaction_with(
                template.clone(),
                decision,
                crate::send::options(queue.clone()),
            )
            .await;
        let line = match sent {
            Ok(r) => {
                ledger.ended(&r.send.msg_id, r.state, r.end_written);
                tally.ok();
                to_json(&TxSendLine::from(&r))
            }
            Err(e) => {
                if e.maybe_stored() {
                    if let Some(id) = e.msg_id() {
                        ledger.failed(id);
                    }
                }
                tally.failed(e.maybe_stored());
                to_json(&ErrorLine::from(&e))
            }
        };
        print_stdout(&line);
    }
    let wait = Duration::from_secs(args.check_wait.unwrap_or(DEFAULT_CHECK_WAIT_SECS));
    let undecided = wait_for_checks(&ledger, wait, &args.group).await;
    // Each undecided transaction is a message that may still become visible (or not).
    for _ in 0..undecided {
        tally.failed(true);
    }
    producer.shutdown().await;
    crate::trace_args::report("send", producer.producer());
    Ok(tally.exit_code())
}

/// Waits for the check-backs of the undecided transactions, at most `wait` (a stop signal
/// ends the wait); returns how many are still undecided, after saying so on stderr.
async fn wait_for_checks(ledger: &Ledger, wait: Duration, group: &str) -> usize {
    let undecided = ledger.undecided();
    if undecided == 0 {
        return 0;
    }
    // Listening before saying so: Ctrl-C then stops the wait, never the process.
    let signal = crate::signals::listen();
    if !wait.is_zero() {
        eprintln!(
            "rmq send: {undecided} transaction(s) undecided (UNKNOW, or END_TRANSACTION not written); \
             waiting up to {}s for the broker's check-back (Ctrl-C stops waiting)",
            wait.as_secs()
        );
    }
    let stopped = async {
        let signal = signal.await;
        eprintln!("rmq send: {signal}: not waiting longer");
    };
    let left = ledger.wait(wait, stopped).await;
    if left > 0 {
        eprintln!(
            "rmq send: {left} transaction(s) still undecided: their half messages stay on the \
             broker, which checks group {group} again later (and discards them after its \
             transactionCheckMax checks)"
        );
    }
    left
}
