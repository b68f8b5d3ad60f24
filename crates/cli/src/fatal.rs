//! [`Fatal`]: an error that ends a command, printed on stderr in one line with its exit code.

use std::fmt;

use crate::output::exit;

/// An error that ends the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fatal {
    /// The process exit code.
    pub(crate) code: u8,
    /// One readable line.
    pub(crate) message: String,
}

impl Fatal {
    /// Bad usage (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: exit::USAGE,
            message: one_line(message.into()),
        }
    }

    /// The command failed (exit code 1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            code: exit::FAILED,
            message: one_line(message.into()),
        }
    }
}

/// A producer that did not start: its settings (e.g. `--group`) are unusable, a usage error.
/// The message names the setting and its cause.
pub(crate) fn producer_start(e: &rmq_producer::ConfigError) -> Fatal {
    Fatal::usage(format!(
        "cannot start the producer: {}",
        crate::output::one_line(e)
    ))
}

fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rmq: error: {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_readable_line_with_its_code() {
        let f = Fatal::failed("cannot connect\n  to 127.0.0.1:1\n");
        assert_eq!(f.to_string(), "rmq: error: cannot connect to 127.0.0.1:1");
        assert_eq!(f.code, exit::FAILED);
        assert_eq!(Fatal::usage("bad").code, exit::USAGE);
    }

    #[test]
    fn a_producer_that_did_not_start_is_a_usage_error_with_its_cause() {
        let config = rmq_producer::ConfigError::NoNameServer;
        let f = producer_start(&config);
        assert_eq!(f.code, exit::USAGE);
        assert_eq!(
            f.to_string(),
            "rmq: error: cannot start the producer: no name server address configured"
        );
        // A bad group: the setting, then the rule it breaks.
        let err = rmq_producer::ProducerBuilder::new("bad group!")
            .name_server("127.0.0.1:9876")
            .build_config()
            .expect_err("illegal group");
        let f = producer_start(&err);
        assert_eq!(f.code, exit::USAGE);
        assert!(
            f.message
                .starts_with("cannot start the producer: invalid producer group: "),
            "{f}"
        );
        assert!(
            f.message.contains("illegal character ' '"),
            "the illegal character is named: {f}"
        );
        // A malformed name-server address: refused at start, named, exit code 2.
        for bad in [
            "127.0.0.1:99999",
            "not-an-address",
            ":9876",
            "http://127.0.0.1:9876",
        ] {
            let err = rmq_producer::ProducerBuilder::new("pg")
                .name_server(bad)
                .build_config()
                .expect_err(bad);
            let f = producer_start(&err);
            assert_eq!(f.code, exit::USAGE, "{bad}");
            assert!(f.message.contains(bad), "{bad}: {f}");
        }
    }
}
