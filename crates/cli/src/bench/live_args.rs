//! `rmq bench --quiet` and `--metrics`: what the bench prints while it runs and at the end
//! besides its summary. The producer's client metrics (feature `metrics` of `rmq-producer`, on
//! in the CLI's default build) are read through OpenTelemetry's Prometheus exporter into a registry
//! of this process, and printed in Prometheus's text format.

use clap::Args;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::Snapshot;
#[cfg(feature = "metrics")]
pub(crate) use on::Snapshot;

/// What `rmq bench` prints on stderr besides the summary.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct LiveArgs {
    /// No live lines on stderr (neither rmq's nor Java's `Current Time:` line); the summary and
    /// the `[Complete]` line are still printed.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,

    /// At the end, print the producer's client metrics (OpenTelemetry, `rocketmq_*`) on stderr
    /// in Prometheus's text format.
    #[arg(long)]
    pub(crate) metrics: bool,
}

#[cfg(feature = "metrics")]
mod on {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use prometheus::{Encoder, Registry, TextEncoder};
    use rmq_producer::ProducerBuilder;

    use crate::fatal::Fatal;

    /// The producer's metrics, kept in a registry of this process.
    #[derive(Debug)]
    pub(crate) struct Snapshot {
        provider: SdkMeterProvider,
        registry: Registry,
    }

    impl Snapshot {
        /// A meter provider exporting into a new registry.
        pub(crate) fn new() -> Result<Self, Fatal> {
            let registry = Registry::new();
            let exporter = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()
                .map_err(|e| Fatal::failed(format!("--metrics: {e}")))?;
            let provider = SdkMeterProvider::builder().with_reader(exporter).build();
            Ok(Self { provider, registry })
        }

        /// `builder` recording through this snapshot's provider.
        pub(crate) fn apply(&self, builder: ProducerBuilder) -> ProducerBuilder {
            builder.meter(self.provider.meter("rmq"))
        }

        /// A meter of the provider.
        #[cfg(test)]
        pub(crate) fn meter(&self) -> opentelemetry::metrics::Meter {
            self.provider.meter("rmq")
        }

        /// The `rocketmq_*` metrics now, in Prometheus's text format (with their `# HELP` and
        /// `# TYPE` lines).
        pub(crate) fn render(&self) -> String {
            let mut body = Vec::new();
            if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut body) {
                return format!("# metrics could not be encoded: {e}\n");
            }
            let text = String::from_utf8_lossy(&body);
            let mut out = String::new();
            for line in text.lines() {
                let name = line
                    .strip_prefix("# HELP ")
                    .or_else(|| line.strip_prefix("# TYPE "))
                    .unwrap_or(line);
                if name.starts_with("rocketmq_") {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out
        }
    }
}

/// Without the `metrics` feature: `--metrics` is refused.
#[cfg(not(feature = "metrics"))]
mod off {
    use rmq_producer::ProducerBuilder;

    use crate::fatal::Fatal;

    /// Nothing to keep.
    #[derive(Debug)]
    pub(crate) struct Snapshot;

    impl Snapshot {
        /// Refused: no metrics in this build.
        pub(crate) fn new() -> Result<Self, Fatal> {
            Err(Fatal::usage(
                "--metrics: this rmq was built without the `metrics` feature",
            ))
        }

        pub(crate) fn apply(&self, builder: ProducerBuilder) -> ProducerBuilder {
            builder
        }

        pub(crate) fn render(&self) -> String {
            String::new()
        }
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn renders_only_the_rocketmq_metrics() {
        let s = Snapshot::new().unwrap();
        let meter = s.meter();
        meter.u64_counter("rocketmq_test_sends").build().add(3, &[]);
        meter.u64_counter("other_thing").build().add(1, &[]);
        let text = s.render();
        assert!(
            text.contains("# TYPE rocketmq_test_sends_total counter"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("rocketmq_test_sends_total") && l.ends_with(" 3")),
            "{text}"
        );
        assert!(!text.contains("other_thing"), "{text}");
    }
}
