//! `rmq bench --auto-batch`: the producer's auto-batching, with its hold time and sizes.

use std::time::Duration;

use clap::Args;
use rmq_producer::{AutoBatchConfig, ProducerBuilder};

/// Auto-batching options of `rmq bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AutoBatchArgs {
    /// Hold sync/async sends and send them together as batches (the producer's auto-batching,
    /// Java's `setAutoBatch(true)`).
    #[arg(long)]
    pub(crate) auto_batch: bool,

    /// With --auto-batch: how long a batch waits for more messages.
    #[arg(long, default_value_t = 10, value_name = "MS", requires = "auto_batch",
          value_parser = clap::value_parser!(u64).range(1..=30_000))]
    pub(crate) batch_hold_ms: u64,

    /// With --auto-batch: a batch goes as soon as it holds this many bytes.
    #[arg(long, default_value_t = 32 * 1024, value_name = "BYTES", requires = "auto_batch",
          value_parser = clap::value_parser!(u32).range(1..=2 * 1024 * 1024))]
    pub(crate) batch_max_bytes: u32,

    /// With --auto-batch: bytes held and in flight in batches, all together.
    #[arg(long, default_value_t = 32 * 1024 * 1024, value_name = "BYTES", requires = "auto_batch",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) batch_total_bytes: u32,

    /// With --auto-batch: send a batch at once when none of its key is in flight (rmq's
    /// `send_when_idle`), instead of always holding it.
    #[arg(long, requires = "auto_batch")]
    pub(crate) batch_when_idle: bool,
}

impl AutoBatchArgs {
    /// The settings, when on.
    pub(crate) fn config(&self) -> Option<AutoBatchConfig> {
        self.auto_batch.then(|| {
            AutoBatchConfig::default()
                .with_hold_time(Duration::from_millis(self.batch_hold_ms))
                .with_max_batch_bytes(self.batch_max_bytes as usize)
                .with_max_total_bytes(self.batch_total_bytes as usize)
                .with_send_when_idle(self.batch_when_idle)
        })
    }

    /// `builder` with auto-batching when on (announced on stderr).
    pub(crate) fn apply(&self, builder: ProducerBuilder) -> ProducerBuilder {
        match self.config() {
            Some(cfg) => {
                eprintln!(
                    "rmq bench: auto-batching on (hold {:?}, batch {} B, total {} B, when idle: {})",
                    cfg.hold_time, cfg.max_batch_bytes, cfg.max_total_bytes, cfg.send_when_idle
                );
                builder.auto_batch(cfg)
            }
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        ab: AutoBatchArgs,
    }

    #[test]
    fn flags() {
        let off = Cmd::try_parse_from(["t"]).expect("parse");
        assert_eq!(off.ab.config(), None);
        let on = Cmd::try_parse_from([
            "t",
            "--auto-batch",
            "--batch-hold-ms",
            "2",
            "--batch-max-bytes",
            "4096",
        ])
        .expect("parse");
        let cfg = on.ab.config().expect("on");
        assert_eq!(cfg.hold_time, Duration::from_millis(2));
        assert_eq!((cfg.max_batch_bytes, cfg.max_total_bytes), (4096, 32 << 20));
        assert!(!cfg.send_when_idle);
        let idle = Cmd::try_parse_from(["t", "--auto-batch", "--batch-when-idle"]).expect("parse");
        assert!(idle.ab.config().expect("on").send_when_idle);
        assert!(
            Cmd::try_parse_from(["t", "--batch-hold-ms", "2"]).is_err(),
            "hold time without --auto-batch"
        );
        assert!(Cmd::try_parse_from(["t", "--auto-batch", "--batch-hold-ms", "0"]).is_err());
    }
}
