//! `--namespace NS`: the producer's namespace (Java `setNamespace`), for the commands that send.

use clap::Args;
use rmq_producer::ProducerBuilder;

/// Namespace option.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct NamespaceArgs {
    /// Namespace: topics and the group go to the cluster as `NS%name` (results print the plain
    /// topic).
    #[arg(long, value_name = "NS")]
    pub(crate) namespace: Option<String>,
}

impl NamespaceArgs {
    /// `builder` with the namespace, when one is given.
    pub(crate) fn apply(&self, builder: ProducerBuilder) -> ProducerBuilder {
        match &self.namespace {
            Some(ns) => builder.namespace(ns.as_str()),
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        ns: NamespaceArgs,
    }

    #[test]
    fn the_namespace_reaches_the_producer_config() {
        let t = T::try_parse_from(["t", "--namespace", "MQ_INST_1"]).expect("parses");
        let b = t.ns.apply(ProducerBuilder::new("g"));
        assert_eq!(b.config().namespace.as_deref(), Some("MQ_INST_1"));
        let none = T::try_parse_from(["t"]).expect("parses");
        assert_eq!(
            none.ns.apply(ProducerBuilder::new("g")).config().namespace,
            None
        );
    }
}
