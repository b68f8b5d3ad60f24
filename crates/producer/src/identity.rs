//! Who this client is: the local IP, the instance name, the client id (`ip@instance`, as Java's
//! `ClientConfig.buildMQClientId`), and the process-wide `UNIQ_KEY` generator.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use rmq_common::message_id::UniqIdGenerator;

use crate::config::ProducerConfig;

/// The first non-loopback address of this host, found without sending anything: connecting a UDP
/// socket only asks the kernel for a route, and the destination is in TEST-NET-1 (RFC 5737).
/// Falls back to 127.0.0.1 when there is no route.
pub(crate) fn local_ip() -> IpAddr {
    let probe = || -> Option<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Java 5's default instance name for a producer started with `DEFAULT`: `pid#nanos`, new for
/// every producer (`ClientConfig.changeInstanceNameToPID`), so that producers share a client
/// instance only when they are given the same instance name, as in Java.
pub(crate) fn default_instance_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}#{}", std::process::id(), nanos)
}

/// `clientIP@instanceName[@unitName]`.
pub(crate) fn client_id(cfg: &ProducerConfig, ip: &str, instance: &str) -> String {
    match cfg.unit_name.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(unit) => format!("{ip}@{instance}@{unit}"),
        None => format!("{ip}@{instance}"),
    }
}

/// The process-wide `UNIQ_KEY` generator (Java's static `MessageClientIDSetter`): one counter per
/// process, so that two producers of one process never produce the same id.
pub(crate) fn uniq_ids() -> &'static UniqIdGenerator {
    static IDS: OnceLock<UniqIdGenerator> = OnceLock::new();
    IDS.get_or_init(|| UniqIdGenerator::new(local_ip(), std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_ip_at_instance() {
        let mut cfg = ProducerConfig::new("pg");
        assert_eq!(client_id(&cfg, "10.0.0.1", "123#456"), "10.0.0.1@123#456");
        cfg.unit_name = Some("unitA".into());
        assert_eq!(client_id(&cfg, "10.0.0.1", "i"), "10.0.0.1@i@unitA");
        cfg.unit_name = Some("  ".into());
        assert_eq!(client_id(&cfg, "10.0.0.1", "i"), "10.0.0.1@i");
    }

    #[test]
    fn default_instance_name_is_pid_hash_nanos() {
        let name = default_instance_name();
        let (pid, nanos) = name.split_once('#').expect("pid#nanos");
        assert_eq!(pid, std::process::id().to_string());
        assert!(nanos.parse::<u128>().is_ok(), "{name}");
    }

    #[test]
    fn local_ip_is_never_unspecified() {
        assert!(!local_ip().is_unspecified());
    }

    #[test]
    fn uniq_ids_are_unique_and_32_hex_for_ipv4() {
        let a = uniq_ids().next_id();
        let b = uniq_ids().next_id();
        assert_ne!(a, b);
        assert!(a.len() == 32 || a.len() == 56, "{a}");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)),
            "{a}"
        );
    }
}
