//! `--tls*`: TLS to name servers and brokers (Java's `useTLS`), for every command that connects.

use clap::Args;
use rmq_remoting::TlsConfig;

use crate::fatal::Fatal;
use crate::output;

/// TLS options. Any of them turns TLS on.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TlsArgs {
    /// Connect over TLS, verifying servers against the public web roots (or --tls-ca).
    #[arg(long)]
    pub(crate) tls: bool,

    /// Trust only the CA certificate(s) in this PEM file (implies --tls).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_ca: Option<String>,

    /// Client certificate chain (PEM) for mutual TLS; needs --tls-key (implies --tls).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<String>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<String>,

    /// The name to verify the server certificate against (default: the host of each address).
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_server_name: Option<String>,

    /// DANGEROUS, for test clusters only: accept any server certificate (implies --tls).
    #[arg(long, conflicts_with = "tls_ca")]
    pub(crate) tls_insecure: bool,
}

impl TlsArgs {
    /// The TLS settings asked for, if any.
    ///
    /// # Errors
    /// A usage error naming the file that cannot be used and why.
    pub(crate) fn config(&self) -> Result<Option<TlsConfig>, Fatal> {
        let on = self.tls
            || self.tls_insecure
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_server_name.is_some();
        if !on {
            return Ok(None);
        }
        let bad = |e: &(dyn std::error::Error + 'static)| {
            Fatal::usage(format!("TLS: {}", output::one_line(e)))
        };
        let mut cfg = if self.tls_insecure {
            eprintln!("rmq: --tls-insecure: server certificates are NOT verified");
            TlsConfig::dangerous_insecure_no_verify()
        } else {
            TlsConfig::new()
        };
        if let Some(ca) = &self.tls_ca {
            cfg = cfg.with_ca_file(ca).map_err(|e| bad(&e))?;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            cfg = cfg.with_client_cert_files(cert, key).map_err(|e| bad(&e))?;
        }
        if let Some(name) = &self.tls_server_name {
            cfg = cfg.with_server_name(name.as_str());
        }
        Ok(Some(cfg))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        tls: TlsArgs,
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn off_unless_asked() {
        let t = parse(&[]).expect("parses");
        assert!(t.tls.config().expect("valid").is_none());
        for on in [
            &["--tls"][..],
            &["--tls-insecure"],
            &["--tls-server-name", "mq"],
        ] {
            let t = parse(on).expect("parses");
            assert!(t.tls.config().expect("valid").is_some(), "{on:?}");
        }
    }

    #[test]
    fn bad_files_and_combinations_are_usage_errors() {
        let t = parse(&["--tls-ca", "/nonexistent/ca.pem"]).expect("parses");
        let err = t.tls.config().expect_err("no such file");
        assert_eq!(err.code, output::exit::USAGE);
        assert!(
            err.message.contains("/nonexistent/ca.pem"),
            "{}",
            err.message
        );
        assert!(
            parse(&["--tls-cert", "c.pem"]).is_err(),
            "a key is required"
        );
        assert!(parse(&["--tls-insecure", "--tls-ca", "ca.pem"]).is_err());
    }
}
