//! A proxy endpoint (`host:port`): its URI for the HTTP/2 channel and its
//! `apache.rocketmq.v2.Endpoints` for `QueryRoute` and the settings.

use std::fmt;
use std::net::IpAddr;

use crate::pb;

/// Why an endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    endpoint: String,
    reason: &'static str,
}

/// A proxy endpoint: a host (IPv4, `[IPv6]` or a domain name) and a port.
///
/// ```
/// use rmq_grpc::Endpoint;
/// let ep: Endpoint = "127.0.0.1:8081".parse().unwrap();
/// assert_eq!(ep.host(), "127.0.0.1");
/// assert_eq!(ep.port(), 8081);
/// assert_eq!(ep.uri(false), "http://127.0.0.1:8081");
/// assert!("127.0.0.1".parse::<Endpoint>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// The host, without brackets for IPv6.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The channel URI: `http://host:port`, or `https://` with TLS.
    #[must_use]
    pub fn uri(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{self}")
    }

    /// The protobuf form (scheme from the host's kind).
    #[must_use]
    pub fn to_pb(&self) -> pb::Endpoints {
        let scheme = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => pb::AddressScheme::IPv4,
            Ok(IpAddr::V6(_)) => pb::AddressScheme::IPv6,
            Err(_) => pb::AddressScheme::DomainName,
        };
        pb::Endpoints {
            scheme: scheme as i32,
            addresses: vec![pb::Address {
                host: self.host.clone(),
                port: i32::from(self.port),
            }],
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| EndpointError {
            endpoint: s.to_owned(),
            reason,
        };
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| err("expected host:port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(err("empty host"));
        }
        if host.contains(['/', ' ', '@']) || (host.contains(':') && host.parse::<IpAddr>().is_err())
        {
            return Err(err("bad host"));
        }
        let port: u16 = port.parse().map_err(|_| err("bad port"))?;
        if port == 0 {
            return Err(err("port 0"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_or_fail() {
        let ok = [
            ("127.0.0.1:8081", "127.0.0.1", 8081, pb::AddressScheme::IPv4),
            ("[::1]:8081", "::1", 8081, pb::AddressScheme::IPv6),
            (
                "proxy.example:443",
                "proxy.example",
                443,
                pb::AddressScheme::DomainName,
            ),
        ];
        for (text, host, port, scheme) in ok {
            let ep: Endpoint = text.parse().unwrap();
            assert_eq!((ep.host(), ep.port()), (host, port), "{text}");
            assert_eq!(ep.to_string(), text);
            let pb = ep.to_pb();
            assert_eq!(pb.scheme, scheme as i32, "{text}");
            assert_eq!(pb.addresses[0].port, i32::from(port));
        }
        for bad in [
            "", "host", ":8081", "h:0", "h:x", "h:70000", "a/b:1", "a b:1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
