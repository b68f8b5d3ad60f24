//! `rmq send`'s timer and compression options: `--deliver-after-ms`, `--deliver-at-ms`,
//! `--compress`.

use clap::{Args, ValueEnum};
use rmq_common::compression::CompressionType;
use rmq_common::Message;
use rmq_producer::ProducerBuilder;

/// A compression algorithm, as `--compress` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompressArg {
    /// zlib (the Java default).
    Zlib,
    /// LZ4 frame.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl From<CompressArg> for CompressionType {
    fn from(c: CompressArg) -> Self {
        match c {
            CompressArg::Zlib => Self::Zlib,
            CompressArg::Lz4 => Self::Lz4,
            CompressArg::Zstd => Self::Zstd,
        }
    }
}

/// Timer (scheduled) delivery and the compression of bodies of at least 4 KiB.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SendExtras {
    /// Deliver each message this many milliseconds after the broker receives it (a timer
    /// message, `TIMER_DELAY_MS`; 5.x brokers, at most 3 days).
    #[arg(long, value_name = "MS", conflicts_with = "deliver_at_ms")]
    pub(crate) deliver_after_ms: Option<u64>,

    /// Deliver each message at this time, in epoch milliseconds (`TIMER_DELIVER_MS`).
    #[arg(long, value_name = "EPOCH_MS")]
    pub(crate) deliver_at_ms: Option<u64>,

    /// The algorithm of compressed bodies.
    #[arg(long, value_enum, value_name = "ALG")]
    pub(crate) compress: Option<CompressArg>,
}

impl SendExtras {
    /// `msg` with the timer property asked for.
    pub(crate) fn apply(&self, mut msg: Message) -> Message {
        if let Some(ms) = self.deliver_after_ms {
            msg = msg.with_delay_time_ms(ms);
        }
        if let Some(at) = self.deliver_at_ms {
            msg = msg.with_deliver_time_ms(at);
        }
        msg
    }

    /// `builder` with the compression asked for.
    pub(crate) fn configure(&self, builder: ProducerBuilder) -> ProducerBuilder {
        match self.compress {
            Some(c) => builder.compression_type(c.into()),
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        extras: SendExtras,
    }

    fn parse(args: &[&str]) -> Result<SendExtras, clap::Error> {
        let mut all = vec!["probe"];
        all.extend_from_slice(args);
        Probe::try_parse_from(all).map(|p| p.extras)
    }

    #[test]
    fn options_set_the_timer_property_and_the_compression() {
        let e = parse(&["--deliver-after-ms", "5000", "--compress", "zstd"]).expect("parse");
        let msg = e.apply(Message::new("T", "x"));
        assert_eq!(msg.property("TIMER_DELAY_MS"), Some("5000"));
        let cfg = e
            .configure(ProducerBuilder::new("g").name_server("127.0.0.1:9876"))
            .build_config()
            .expect("config");
        assert_eq!(cfg.compress_type, CompressionType::Zstd);
        let at = parse(&["--deliver-at-ms", "1700000000000"]).expect("parse");
        assert_eq!(
            at.apply(Message::new("T", "x")).deliver_time_ms(),
            Some(1_700_000_000_000)
        );
        assert!(parse(&["--deliver-after-ms", "1", "--deliver-at-ms", "2"]).is_err());
        assert!(parse(&["--compress", "gzip"]).is_err());
        let none = parse(&[]).expect("parse");
        assert_eq!(
            none.apply(Message::new("T", "x")).properties().len(),
            1,
            "WAIT only"
        );
    }
}
