//! The contract between `scripts/rocketmq-dev.sh` and the interop tests and benches: the
//! variables its `start` prints, parsed in one place.
//!
//! - `RMQ_INTEROP_NAMESRV`: the main cluster's name server, e.g. `127.0.0.1:9876`;
//! - `RMQ_INTEROP_BROKERS`: `name=addr` pairs separated by `;`;
//! - `RMQ_INTEROP_SCRIPT` (optional): the script, so a test can stop and restart a broker;
//! - `RMQ_INTEROP_ACL_NAMESRV` and `RMQ_INTEROP_ACL_CREDENTIALS` (`access:secret`): the name
//!   server of the broker that requires ACL authentication;
//! - `RMQ_INTEROP_TLS_NAMESRV`, `RMQ_INTEROP_TLS_BROKER`, `RMQ_INTEROP_TLS_CA` and
//!   `RMQ_INTEROP_TLS_OTHER_CA`: the name server speaking TLS, its broker that accepts TLS only, the
//!   PEM file of the CA that signed their certificate, and that of an unrelated CA.
//!
//! Nothing here reads the environment: callers pass a lookup (`|k| std::env::var(k).ok()`).
//! Interop tests skip locally when a cluster is not configured, and fail under CI
//! ([`require`]).

/// The main cluster's name server address.
pub const NAMESRV_VAR: &str = "RMQ_INTEROP_NAMESRV";
/// The main cluster's brokers, `name=addr;name=addr`.
pub const BROKERS_VAR: &str = "RMQ_INTEROP_BROKERS";
/// The path of the script that started the cluster.
pub const SCRIPT_VAR: &str = "RMQ_INTEROP_SCRIPT";
/// The name server of the ACL cluster.
pub const ACL_NAMESRV_VAR: &str = "RMQ_INTEROP_ACL_NAMESRV";
/// The ACL cluster's credentials, `access:secret`.
pub const ACL_CREDENTIALS_VAR: &str = "RMQ_INTEROP_ACL_CREDENTIALS";
/// The name server of the TLS cluster (it accepts TLS and plaintext).
pub const TLS_NAMESRV_VAR: &str = "RMQ_INTEROP_TLS_NAMESRV";
/// The address of the TLS cluster's broker, which accepts TLS only.
pub const TLS_BROKER_VAR: &str = "RMQ_INTEROP_TLS_BROKER";
/// The PEM file of the CA that signed the TLS cluster's server certificate.
pub const TLS_CA_VAR: &str = "RMQ_INTEROP_TLS_CA";
/// The PEM file of a CA unrelated to the TLS cluster (a client trusting only it must fail).
pub const TLS_OTHER_CA_VAR: &str = "RMQ_INTEROP_TLS_OTHER_CA";

/// Environment variable: the gRPC proxy's endpoint (`host:port`), printed by
/// `scripts/rocketmq-dev.sh env` when the dev cluster runs its proxy.
pub const PROXY_VAR: &str = "RMQ_INTEROP_PROXY";
/// Environment variable: `1` when the dev cluster was started without its gRPC proxy on purpose.
pub const NO_PROXY_VAR: &str = "RMQ_DEV_NO_PROXY";

/// A non-empty value of `key`.
fn non_empty(var: &impl Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    var(key).filter(|v| !v.trim().is_empty())
}

/// The real cluster started by `scripts/rocketmq-dev.sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealCluster {
    /// Name server address.
    pub namesrv: String,
    /// `(broker name, master address)` pairs.
    pub brokers: Vec<(String, String)>,
    /// The script that started the cluster, when known.
    pub script: Option<String>,
}

impl RealCluster {
    /// The cluster the variables describe, `None` when the name server or the brokers are
    /// missing or empty.
    ///
    /// ```
    /// use rmq_testkit::interop::RealCluster;
    /// let vars = |k: &str| match k {
    ///     "RMQ_INTEROP_NAMESRV" => Some("127.0.0.1:9876".to_owned()),
    ///     "RMQ_INTEROP_BROKERS" => Some("broker-a=127.0.0.1:10911; broker-b=127.0.0.1:10921".to_owned()),
    ///     _ => None,
    /// };
    /// let c = RealCluster::from_vars(vars).unwrap();
    /// assert_eq!(c.broker_addr("broker-b"), Some("127.0.0.1:10921"));
    /// assert_eq!(c.script, None);
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let namesrv = non_empty(&var, NAMESRV_VAR)?;
        let brokers: Vec<(String, String)> = non_empty(&var, BROKERS_VAR)?
            .split(';')
            .filter_map(|pair| {
                let (n, a) = pair.split_once('=')?;
                Some((n.trim().to_owned(), a.trim().to_owned()))
            })
            .filter(|(n, a)| !n.is_empty() && !a.is_empty())
            .collect();
        if brokers.is_empty() {
            return None;
        }
        Some(Self {
            namesrv,
            brokers,
            script: non_empty(&var, SCRIPT_VAR),
        })
    }

    /// Address of a broker by name.
    #[must_use]
    pub fn broker_addr(&self, name: &str) -> Option<&str> {
        self.brokers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
    }
}

/// The cluster of the broker that requires ACL authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclCluster {
    /// Its name server.
    pub namesrv: String,
    /// A user's access key.
    pub access_key: String,
    /// That user's secret key.
    pub secret_key: String,
}

impl AclCluster {
    /// The ACL cluster the variables describe, `None` when absent or malformed.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let namesrv = non_empty(&var, ACL_NAMESRV_VAR)?;
        let credentials = non_empty(&var, ACL_CREDENTIALS_VAR)?;
        let (ak, sk) = credentials.split_once(':')?;
        (!ak.is_empty() && !sk.is_empty()).then(|| Self {
            namesrv,
            access_key: ak.to_owned(),
            secret_key: sk.to_owned(),
        })
    }
}

/// The cluster whose name server speaks TLS (and plaintext) and whose broker accepts TLS only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCluster {
    /// Its name server.
    pub namesrv: String,
    /// Its broker's address.
    pub broker: String,
    /// The PEM file of the CA that signed the servers' certificate (for `127.0.0.1`).
    pub ca_file: String,
    /// The PEM file of an unrelated CA.
    pub other_ca_file: String,
}

impl TlsCluster {
    /// The TLS cluster the variables describe, `None` when one of them is absent or empty.
    ///
    /// ```
    /// use rmq_testkit::interop::TlsCluster;
    /// let vars = |k: &str| match k {
    ///     "RMQ_INTEROP_TLS_NAMESRV" => Some("127.0.0.1:9896".to_owned()),
    ///     "RMQ_INTEROP_TLS_BROKER" => Some("127.0.0.1:10941".to_owned()),
    ///     "RMQ_INTEROP_TLS_CA" => Some("/tmp/tls/ca.pem".to_owned()),
    ///     "RMQ_INTEROP_TLS_OTHER_CA" => Some("/tmp/tls/other-ca.pem".to_owned()),
    ///     _ => None,
    /// };
    /// let c = TlsCluster::from_vars(vars).unwrap();
    /// assert_eq!(c.broker, "127.0.0.1:10941");
    /// assert_eq!(c.other_ca_file, "/tmp/tls/other-ca.pem");
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let get = |key| non_empty(&var, key).map(|v| v.trim().to_owned());
        Some(Self {
            namesrv: get(TLS_NAMESRV_VAR)?,
            broker: get(TLS_BROKER_VAR)?,
            ca_file: get(TLS_CA_VAR)?,
            other_ca_file: get(TLS_OTHER_CA_VAR)?,
        })
    }
}

/// What an interop test through the gRPC proxy does, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyEndpoint {
    /// `RMQ_INTEROP_PROXY` is set: run through this endpoint.
    Run(String),
    /// Not set, outside CI or with `RMQ_DEV_NO_PROXY=1` (the cluster left its proxy out on
    /// purpose): skip with a note.
    Skip,
    /// Not set under CI (`CI` set) without `RMQ_DEV_NO_PROXY=1`: a failure, as for a missing
    /// cluster.
    Fail,
}

impl ProxyEndpoint {
    /// The decision the variables give (`CI` counts as set when present, as for [`require`]).
    ///
    /// ```
    /// use rmq_testkit::interop::ProxyEndpoint;
    /// let ci_without_proxy = |k: &str| (k == "CI").then(|| "true".to_owned());
    /// assert_eq!(ProxyEndpoint::from_vars(ci_without_proxy), ProxyEndpoint::Fail);
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(proxy) = non_empty(&var, PROXY_VAR) {
            return Self::Run(proxy.trim().to_owned());
        }
        let opted_out = var(NO_PROXY_VAR).is_some_and(|v| v.trim() == "1");
        if var("CI").is_some() && !opted_out {
            Self::Fail
        } else {
            Self::Skip
        }
    }
}

/// The interop contract: `found`, or, when it is `None`, a failure under CI (`ci`: the `CI`
/// variable is set; CI must never skip interop tests silently) and a skip note on stderr
/// elsewhere.
///
/// # Panics
/// When `found` is `None` and `ci` is set.
pub fn require<T>(test: &str, found: Option<T>, ci: bool) -> Option<T> {
    if found.is_some() {
        return found;
    }
    assert!(
        !ci,
        "{test}: CI is set but the real cluster is not configured: it must be started by \
         scripts/rocketmq-dev.sh (see .ci/run), which exports {NAMESRV_VAR}, {BROKERS_VAR}, \
         {ACL_NAMESRV_VAR}, {TLS_NAMESRV_VAR}, ..."
    );
    eprintln!(
        "{test}: skipped: no real cluster (run `eval \"$(scripts/rocketmq-dev.sh start)\"` first)"
    );
    None
}

/// A topic name unique to this test run (process id and clock), for tests sharing a cluster.
#[must_use]
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn real_cluster_table() {
        let full = RealCluster::from_vars(vars(&[
            (NAMESRV_VAR, "127.0.0.1:9876"),
            (
                BROKERS_VAR,
                "broker-a=127.0.0.1:10911;;junk; broker-b = 127.0.0.1:10921 ;x=",
            ),
            (SCRIPT_VAR, "/s.sh"),
        ]))
        .expect("configured");
        assert_eq!(
            full.brokers,
            [
                ("broker-a".to_owned(), "127.0.0.1:10911".to_owned()),
                ("broker-b".to_owned(), "127.0.0.1:10921".to_owned())
            ]
        );
        assert_eq!(full.script.as_deref(), Some("/s.sh"));
        assert_eq!(full.broker_addr("broker-c"), None);
        for missing in [
            vars(&[(NAMESRV_VAR, "127.0.0.1:9876")]),
            vars(&[(BROKERS_VAR, "a=b")]),
            vars(&[(NAMESRV_VAR, " "), (BROKERS_VAR, "a=b")]),
            vars(&[(NAMESRV_VAR, "n"), (BROKERS_VAR, "no-pairs")]),
        ] {
            assert_eq!(RealCluster::from_vars(missing), None);
        }
    }

    #[test]
    fn proxy_endpoint_table() {
        use ProxyEndpoint::{Fail, Run, Skip};
        let run = || Run("127.0.0.1:8081".to_owned());
        for (pairs, want) in [
            (&[(PROXY_VAR, " 127.0.0.1:8081 ")][..], run()),
            (&[(PROXY_VAR, "127.0.0.1:8081"), ("CI", "1")][..], run()),
            (
                &[(PROXY_VAR, "127.0.0.1:8081"), (NO_PROXY_VAR, "1")][..],
                run(),
            ),
            (&[][..], Skip),
            (&[(PROXY_VAR, " ")][..], Skip),
            (&[(NO_PROXY_VAR, "1")][..], Skip),
            (&[("CI", "true")][..], Fail),
            (&[("CI", "")][..], Fail),
            (&[("CI", "true"), (PROXY_VAR, "")][..], Fail),
            (&[("CI", "true"), (NO_PROXY_VAR, "0")][..], Fail),
            (&[("CI", "true"), (NO_PROXY_VAR, "1")][..], Skip),
            (&[("CI", "true"), (NO_PROXY_VAR, " 1 ")][..], Skip),
        ] {
            assert_eq!(ProxyEndpoint::from_vars(vars(pairs)), want, "{pairs:?}");
        }
    }

    #[test]
    fn acl_cluster_table() {
        let ok = vars(&[
            (ACL_NAMESRV_VAR, "127.0.0.1:9886"),
            (ACL_CREDENTIALS_VAR, "rocketmq:1234:5678"),
        ]);
        let c = AclCluster::from_vars(ok).expect("configured");
        assert_eq!(
            (c.access_key.as_str(), c.secret_key.as_str()),
            ("rocketmq", "1234:5678")
        );
        for bad in ["", "no-colon", ":secret", "user:"] {
            let v = vars(&[(ACL_NAMESRV_VAR, "n"), (ACL_CREDENTIALS_VAR, bad)]);
            assert_eq!(AclCluster::from_vars(v), None, "{bad:?}");
        }
    }

    #[test]
    fn tls_cluster_table() {
        let all = [
            (TLS_NAMESRV_VAR, "127.0.0.1:9896"),
            (TLS_BROKER_VAR, " 127.0.0.1:10941 "),
            (TLS_CA_VAR, "/s/tls/ca.pem"),
            (TLS_OTHER_CA_VAR, "/s/tls/other-ca.pem"),
        ];
        let c = TlsCluster::from_vars(vars(&all)).expect("configured");
        assert_eq!(
            c,
            TlsCluster {
                namesrv: "127.0.0.1:9896".to_owned(),
                broker: "127.0.0.1:10941".to_owned(),
                ca_file: "/s/tls/ca.pem".to_owned(),
                other_ca_file: "/s/tls/other-ca.pem".to_owned(),
            }
        );
        // Any one missing or blank: not configured.
        for i in 0..all.len() {
            let mut some = all.to_vec();
            some.remove(i);
            assert_eq!(
                TlsCluster::from_vars(vars(&some)),
                None,
                "without {}",
                all[i].0
            );
            let mut blank = all.to_vec();
            blank[i].1 = " ";
            assert_eq!(
                TlsCluster::from_vars(vars(&blank)),
                None,
                "blank {}",
                all[i].0
            );
        }
    }

    #[test]
    fn require_skips_locally_and_fails_under_ci() {
        assert_eq!(require("t", Some(1), true), Some(1));
        assert_eq!(require::<i32>("t", None, false), None);
        assert!(std::panic::catch_unwind(|| require::<i32>("t", None, true)).is_err());
    }
}
