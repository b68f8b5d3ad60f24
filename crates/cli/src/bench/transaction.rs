//! `rmq bench --mode transaction`, after Java's benchmark `TransactionProducer`: each task sends
//! transactional messages (half message, local transaction, `END_TRANSACTION`) one after the
//! other. The local transaction of each message decides by the configured rates: ROLLBACK at
//! `--tx-rollback-rate`, UNKNOW at `--tx-unknown-rate`, COMMIT otherwise. The broker checks the
//! unknown ones back; this process answers COMMIT.
//!
//! Latency is that of `send_in_transaction`: the half message's send, the local transaction
//! and the write of `END_TRANSACTION`. Once the sends are done, the bench waits (at most
//! `--check-wait`; a stop signal ends the wait) for the check-back of every transaction left
//! undecided; those still undecided then are reported as `unchecked` and make the exit code 3.
//! The summary's `secs` and `tps` cover the sends only; the wait is `check_wait_secs`.
//!
//! Each message carries its run and decision in the user property [`DECISION_PROPERTY`], so a
//! repeated or unexpected check-back is answered what the local transaction decided, without a
//! table of every message sent; a check about a half message of another run (the same group's
//! earlier or concurrent benches) is answered UNKNOW: that run decides its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmq_common::stored::MessageExt;
use rmq_common::{property, Message};
use rmq_producer::{
    ConfigError, ListenerError, Producer, ProducerBuilder, SendError, TransactionListener,
    TransactionProducer, TransactionState,
};
use serde::Serialize;

use crate::cli::{BenchArgs, BenchMode, DEFAULT_CHECK_WAIT_SECS};
use crate::fatal::Fatal;
use crate::tx_ledger::{check_answer, Ledger};

/// The user property with the run id and the decision: `<run>:<C|R|U>`.
pub(crate) const DECISION_PROPERTY: &str = "rmqBenchTx";

/// The transaction settings of a bench run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TxPlan {
    /// The share of local transactions that roll back.
    pub(crate) rollback_rate: f64,
    /// The share of local transactions that answer unknown.
    pub(crate) unknown_rate: f64,
    /// How long to wait for the check-backs at the end.
    pub(crate) check_wait: Duration,
}

impl TxPlan {
    /// The transaction settings of `args`: `None` outside transaction mode.
    ///
    /// # Errors
    /// A usage error when a transaction option is given in another mode, or when the rates add
    /// up to more than 1.
    pub(crate) fn from_args(args: &BenchArgs) -> Result<Option<Self>, Fatal> {
        if args.mode != BenchMode::Transaction {
            if args.tx_rollback_rate.is_some()
                || args.tx_unknown_rate.is_some()
                || args.check_wait.is_some()
            {
                return Err(Fatal::usage(
                    "--tx-rollback-rate, --tx-unknown-rate and --check-wait need --mode transaction",
                ));
            }
            return Ok(None);
        }
        let rollback_rate = args.tx_rollback_rate.unwrap_or(0.0);
        let unknown_rate = args.tx_unknown_rate.unwrap_or(0.0);
        if rollback_rate + unknown_rate > 1.0 + 1e-9 {
            return Err(Fatal::usage(format!(
                "--tx-rollback-rate {rollback_rate} and --tx-unknown-rate {unknown_rate} add up to more than 1"
            )));
        }
        Ok(Some(Self {
            rollback_rate,
            unknown_rate,
            check_wait: Duration::from_secs(args.check_wait.unwrap_or(DEFAULT_CHECK_WAIT_SECS)),
        }))
    }
}

/// What the transactions of a run came to (the `"transaction"` object of the summary).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct TxSummary {
    /// Transactions reported COMMIT_MESSAGE (`commit + rollback + unknown` is `sent`).
    pub(crate) commit: u64,
    /// Transactions reported ROLLBACK_MESSAGE.
    pub(crate) rollback: u64,
    /// Transactions reported UNKNOW (left to the broker's check-back).
    pub(crate) unknown: u64,
    /// Transactions whose `END_TRANSACTION` could not be written (also left to the check-back).
    pub(crate) end_not_written: u64,
    /// Undecided transactions whose check-back was answered.
    pub(crate) checked: u64,
    /// Undecided transactions not checked back when the bench stopped waiting: their half
    /// messages wait on the broker (exit code 3).
    pub(crate) unchecked: u64,
    /// Check-backs answered in all, repeated ones and other runs' included.
    pub(crate) checks: u64,
    /// Check-backs about half messages of other runs, answered UNKNOW.
    pub(crate) foreign_checks: u64,
    /// Seconds spent waiting for check-backs after the sends (not in the summary's `secs`).
    pub(crate) check_wait_secs: f64,
}

/// The counters behind [`TxSummary`].
#[derive(Debug, Default)]
struct Counts {
    commit: AtomicU64,
    rollback: AtomicU64,
    unknown: AtomicU64,
    end_not_written: AtomicU64,
    checks: AtomicU64,
    foreign_checks: AtomicU64,
}

/// The bench's listener: `execute` answers the decision drawn for the message, `check` answers
/// COMMIT for the unknown ones of this run.
#[derive(Debug)]
pub(crate) struct BenchListener {
    run: String,
    ledger: Ledger,
    counts: Counts,
}

impl BenchListener {
    /// The decision a message of this run carries (`None`: not this run's).
    fn own_decision(&self, msg: &Message) -> Option<TransactionState> {
        let (run, decision) = msg.user_property(DECISION_PROPERTY)?.rsplit_once(':')?;
        if run != self.run {
            return None;
        }
        match decision {
            "C" => Some(TransactionState::Commit),
            "R" => Some(TransactionState::Rollback),
            "U" => Some(TransactionState::Unknown),
            _ => None,
        }
    }
}

impl TransactionListener for BenchListener {
    /// The decision drawn for the message.
    type Arg = TransactionState;

    async fn execute(
        &self,
        msg: &Message,
        decision: TransactionState,
    ) -> Result<TransactionState, ListenerError> {
        if let Some(id) = msg.property(property::UNIQ_KEY) {
            self.ledger.executed(id, decision);
        }
        Ok(decision)
    }

    async fn check(&self, msg: &MessageExt) -> Result<TransactionState, ListenerError> {
        self.counts.checks.fetch_add(1, Ordering::Relaxed);
        if let Some((answer, _)) = self.ledger.check(msg.uniq_key().unwrap_or_default()) {
            return Ok(answer);
        }
        // A repeated or unexpected check of this run's message: what it decided.
        if let Some(decision) = self.own_decision(&msg.message) {
            tracing::debug!(msg_id = ?msg.uniq_key(), %decision, "check-back of a transaction already answered");
            return Ok(check_answer(decision));
        }
        self.counts.foreign_checks.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(msg_id = ?msg.uniq_key(), "check-back of another run's half message: answered UNKNOW");
        Ok(TransactionState::Unknown)
    }
}

/// The transactional side of a bench run: the producer and how it decides.
#[derive(Debug, Clone)]
pub(crate) struct Tx {
    producer: TransactionProducer<BenchListener>,
    plan: TxPlan,
    seed: u64,
    seq: Arc<AtomicU64>,
}

/// Starts the transactional producer of a bench run.
///
/// # Errors
/// The builder's settings are unusable.
pub(crate) async fn start(builder: ProducerBuilder, plan: TxPlan) -> Result<Tx, ConfigError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let pid = std::process::id();
    // The low 64 bits of the time, mixed with the process id: distinct per run.
    let seed = splitmix64((nanos as u64) ^ (u64::from(pid) << 32));
    let listener = BenchListener {
        run: format!("{pid:x}-{seed:x}"),
        ledger: Ledger::new(false),
        counts: Counts::default(),
    };
    let producer = builder.start_transactional(listener).await?;
    Ok(Tx {
        producer,
        plan,
        seed,
        seq: Arc::new(AtomicU64::new(0)),
    })
}

impl Tx {
    /// The producer (for the route warm-up and the settings).
    pub(crate) fn producer(&self) -> &Producer {
        self.producer.producer()
    }

    fn listener(&self) -> &BenchListener {
        self.producer.listener()
    }

    /// The decision of the next message.
    fn decide(&self) -> TransactionState {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        decision(
            unit(splitmix64(self.seed.wrapping_add(n))),
            self.plan.rollback_rate,
            self.plan.unknown_rate,
        )
    }

    /// Sends `msg` in a transaction whose local transaction decides by the rates.
    ///
    /// # Errors
    /// The half message's send failed.
    pub(crate) async fn send(&self, mut msg: Message) -> Result<(), SendError> {
        let decision = self.decide();
        let code = match decision {
            TransactionState::Commit => "C",
            TransactionState::Rollback => "R",
            TransactionState::Unknown => "U",
        };
        let listener = self.listener();
        msg.properties_mut()
            .insert(DECISION_PROPERTY, format!("{}:{code}", listener.run));
        let r = self.producer.send_in_transaction(msg, decision).await?;
        listener
            .ledger
            .ended(&r.send.msg_id, r.state, r.end_written);
        let counts = &listener.counts;
        let counter = match r.state {
            TransactionState::Commit => &counts.commit,
            TransactionState::Rollback => &counts.rollback,
            TransactionState::Unknown => &counts.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !r.end_written {
            counts.end_not_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Waits for the check-backs of the undecided transactions, at most the plan's check wait,
    /// or until `stop` completes (a stop signal: check-backs are not sends in flight).
    pub(crate) async fn wait_checks(&self, stop: impl std::future::Future<Output = ()>) {
        let undecided = self.listener().ledger.undecided();
        if undecided == 0 {
            return;
        }
        if !self.plan.check_wait.is_zero() {
            eprintln!(
                "rmq bench: waiting up to {}s for the broker's check-back of {undecided} undecided transaction(s)",
                self.plan.check_wait.as_secs()
            );
        }
        let left = self
            .listener()
            .ledger
            .wait(self.plan.check_wait, stop)
            .await;
        if left > 0 {
            eprintln!("rmq bench: {left} transaction(s) not checked back: their half messages wait on the broker");
        }
    }

    /// The transactions so far; `check_wait` is how long the bench waited for check-backs.
    pub(crate) fn summary(&self, check_wait: Duration) -> TxSummary {
        let l = self.listener();
        let c = &l.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (checked, unchecked) = l.ledger.decided_undecided();
        TxSummary {
            commit: get(&c.commit),
            rollback: get(&c.rollback),
            unknown: get(&c.unknown),
            end_not_written: get(&c.end_not_written),
            checked,
            unchecked: unchecked as u64,
            checks: get(&c.checks),
            foreign_checks: get(&c.foreign_checks),
            check_wait_secs: (check_wait.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }

    /// Stops answering check-backs and shuts the producer down.
    pub(crate) async fn shutdown(&self) {
        self.producer.shutdown().await;
    }
}

/// The decision for a uniform draw `u` in [0, 1): ROLLBACK below `rollback`, UNKNOW in the
/// next `unknown`, COMMIT above.
fn decision(u: f64, rollback: f64, unknown: f64) -> TransactionState {
    if u < rollback {
        TransactionState::Rollback
    } else if u < rollback + unknown {
        TransactionState::Unknown
    } else {
        TransactionState::Commit
    }
}

/// SplitMix64: a well-mixed 64-bit value of `x` (consecutive inputs give independent-looking
/// outputs).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A value in [0, 1) from the high 53 bits of `x`.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn bench_args(args: &[&str]) -> BenchArgs {
        let all = ["rmq", "bench", "--embedded", "--count", "1"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(all).map(|c| c.command) {
            Ok(Command::Bench(b)) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_plan_takes_the_rates_in_transaction_mode_only() {
        assert_eq!(TxPlan::from_args(&bench_args(&[])).unwrap(), None);
        let p = TxPlan::from_args(&bench_args(&["--mode", "transaction"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.rollback_rate, p.unknown_rate, p.check_wait),
            (0.0, 0.0, Duration::from_secs(DEFAULT_CHECK_WAIT_SECS))
        );
        let p = TxPlan::from_args(&bench_args(&[
            "--mode",
            "transaction",
            "--tx-rollback-rate",
            "0.25",
            "--tx-unknown-rate",
            "0.75",
            "--check-wait",
            "5",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.rollback_rate, p.unknown_rate, p.check_wait),
            (0.25, 0.75, Duration::from_secs(5))
        );
        for bad in [
            &["--tx-unknown-rate", "0.5"][..],
            &["--mode", "sync", "--tx-rollback-rate", "0.5"],
            &["--mode", "async", "--check-wait", "5"],
            &[
                "--mode",
                "transaction",
                "--tx-rollback-rate",
                "0.6",
                "--tx-unknown-rate",
                "0.5",
            ],
        ] {
            let err = TxPlan::from_args(&bench_args(bad)).unwrap_err();
            assert_eq!(err.code, crate::output::exit::USAGE, "{bad:?}");
        }
    }

    #[test]
    fn rates_out_of_range_are_refused_by_the_parser() {
        for bad in ["-0.1", "1.5", "NaN", "inf", "x"] {
            let args = [
                "rmq",
                "bench",
                "--embedded",
                "--count",
                "1",
                "--mode",
                "transaction",
                "--tx-unknown-rate",
                bad,
            ];
            assert!(Cli::try_parse_from(args).is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions_follow_the_rates() {
        use TransactionState::{Commit, Rollback, Unknown};
        assert_eq!(decision(0.0, 0.0, 0.0), Commit);
        assert_eq!(decision(0.999, 1.0, 0.0), Rollback);
        assert_eq!(decision(0.0, 0.0, 1.0), Unknown);
        assert_eq!(decision(0.3, 0.2, 0.2), Unknown);
        assert_eq!(decision(0.5, 0.2, 0.2), Commit);
        // Over many draws, the shares come close to the rates.
        let n = 100_000u64;
        let mut counts = [0u64; 3];
        for i in 0..n {
            match decision(unit(splitmix64(42 + i)), 0.1, 0.3) {
                Rollback => counts[0] += 1,
                Unknown => counts[1] += 1,
                Commit => counts[2] += 1,
            }
        }
        let share = |c: u64| c as f64 / n as f64;
        assert!((share(counts[0]) - 0.1).abs() < 0.01, "{counts:?}");
        assert!((share(counts[1]) - 0.3).abs() < 0.01, "{counts:?}");
        assert!((share(counts[2]) - 0.6).abs() < 0.01, "{counts:?}");
        assert!((0..1000)
            .map(|i| unit(splitmix64(i)))
            .all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn a_message_carries_its_run_and_decision() {
        let l = BenchListener {
            run: "1a-2b".into(),
            ledger: Ledger::new(false),
            counts: Counts::default(),
        };
        let with = |v: &str| {
            let mut m = Message::new("T", "b");
            m.properties_mut().insert(DECISION_PROPERTY, v.to_owned());
            m
        };
        assert_eq!(
            l.own_decision(&with("1a-2b:U")),
            Some(TransactionState::Unknown)
        );
        assert_eq!(
            l.own_decision(&with("1a-2b:R")),
            Some(TransactionState::Rollback)
        );
        assert_eq!(l.own_decision(&with("other:C")), None);
        assert_eq!(l.own_decision(&with("1a-2b:X")), None);
        assert_eq!(l.own_decision(&Message::new("T", "b")), None);
    }
}
