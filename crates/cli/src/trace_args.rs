//! `--trace` / `--trace-topic`: message trace (Java `enableMsgTrace`, `customizedTraceTopic`)
//! for the commands that send, and the line reporting what the trace did.

use clap::Args;
use rmq_producer::{Producer, ProducerBuilder, TraceConfig};

/// Message trace options.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TraceArgs {
    /// Message trace on: every stored send (and transaction end) leaves a record, in Java's
    /// format, in the trace topic (RMQ_SYS_TRACE_TOPIC unless --trace-topic), sent off the send
    /// path by an internal producer.
    #[arg(long)]
    pub(crate) trace: bool,

    /// The trace topic (implies --trace).
    #[arg(long, value_name = "TOPIC")]
    pub(crate) trace_topic: Option<String>,
}

impl TraceArgs {
    /// The trace configuration asked for, if any.
    pub(crate) fn config(&self) -> Option<TraceConfig> {
        match &self.trace_topic {
            Some(topic) => Some(TraceConfig::default().with_topic(topic.as_str())),
            None if self.trace => Some(TraceConfig::default()),
            None => None,
        }
    }

    /// `builder` with message trace on, when asked for.
    pub(crate) fn apply(&self, builder: ProducerBuilder) -> ProducerBuilder {
        match self.config() {
            Some(cfg) => builder.enable_trace(cfg),
            None => builder,
        }
    }
}

/// What `producer`'s trace did, as one line for stderr (`None` when trace is off).
pub(crate) fn summary(producer: &Producer) -> Option<String> {
    let s = producer.trace_stats()?;
    Some(format!(
        "trace: {} records in {} messages to {} (from {}); {} dropped (queue full), {} trace messages failed, {} queued",
        s.records_sent, s.messages_sent, s.topic, s.group, s.dropped, s.messages_failed, s.queued
    ))
}

/// Prints [`summary`] on stderr for `command`, when trace is on.
pub(crate) fn report(command: &str, producer: &Producer) {
    if let Some(line) = summary(producer) {
        eprintln!("rmq {command}: {line}");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        trace: TraceArgs,
    }

    fn topic(args: &[&str]) -> Option<String> {
        let t = T::try_parse_from(args).expect("parses");
        let b = t.trace.apply(ProducerBuilder::new("g"));
        b.config().trace.as_ref().map(|c| c.topic.clone())
    }

    #[test]
    fn trace_is_off_unless_asked_for() {
        assert_eq!(topic(&["t"]), None);
        assert_eq!(
            topic(&["t", "--trace"]).as_deref(),
            Some("RMQ_SYS_TRACE_TOPIC")
        );
        assert_eq!(
            topic(&["t", "--trace-topic", "MyTrace"]).as_deref(),
            Some("MyTrace")
        );
        assert_eq!(
            topic(&["t", "--trace", "--trace-topic", "MyTrace"]).as_deref(),
            Some("MyTrace")
        );
    }
}
