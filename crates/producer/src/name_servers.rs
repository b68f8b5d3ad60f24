//! Name servers at run time (Java's `updateNameServerAddressList`): the list of a running
//! producer's client instance can be replaced.

use crate::config::{check_addr, ConfigError};
use crate::instance::ClientInstance;
use crate::Producer;

/// Splits and checks a `"a:9876;b:9876"` list as [`ProducerBuilder::name_server`] and
/// [`ProducerConfig::validate`](crate::ProducerConfig::validate) do: not empty, every address
/// `host:port`, duplicates dropped.
///
/// [`ProducerBuilder::name_server`]: crate::ProducerBuilder::name_server
pub(crate) fn parse_name_servers(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut addrs: Vec<String> = Vec::new();
    for addr in rmq_nameserver_client::parse_addr_list(list) {
        check_addr(&addr).map_err(|reason| ConfigError::BadNameServer {
            addr: addr.clone(),
            reason,
        })?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(ConfigError::NoNameServer);
    }
    Ok(addrs)
}

impl ClientInstance {
    /// Replaces the name servers that this instance (every producer sharing it) asks for
    /// routes: `list` is `"host:port"` or a `;`-separated list, checked as the builder's
    /// `name_server`. Route lookups from now on ask only these; a removed name server is not
    /// asked again (a lookup under way skips it) and its connection is closed. Cached routes are
    /// kept and refreshed from the new name servers. Returns whether the list changed (the same
    /// addresses in another order change nothing).
    ///
    /// # Errors
    /// [`ConfigError::NoNameServer`] for an empty list, [`ConfigError::BadNameServer`] for an
    /// address that is not `host:port`; the list in use is then unchanged.
    pub fn update_name_servers(&self, list: impl AsRef<str>) -> Result<bool, ConfigError> {
        let addrs = parse_name_servers(list.as_ref())?;
        Ok(self.routes.client().update_addrs(addrs))
    }

    /// The name servers in use.
    #[must_use]
    pub fn name_servers(&self) -> Vec<String> {
        self.routes.client().addrs()
    }
}

impl Producer {
    /// Replaces the name servers of this producer's client instance (shared with the producers
    /// of the same instance), as Java's `updateNameServerAddressList`; see
    /// [`ClientInstance::update_name_servers`].
    ///
    /// ```no_run
    /// # async fn demo(producer: rmq_producer::Producer) -> Result<(), rmq_producer::ConfigError> {
    /// producer.update_name_servers("10.0.0.3:9876;10.0.0.4:9876")?;
    /// assert_eq!(producer.name_servers().len(), 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`ClientInstance::update_name_servers`].
    pub fn update_name_servers(&self, list: impl AsRef<str>) -> Result<bool, ConfigError> {
        self.instance().update_name_servers(list)
    }

    /// The name servers this producer's client instance asks for routes now.
    #[must_use]
    pub fn name_servers(&self) -> Vec<String> {
        self.instance().name_servers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_checked_like_the_builder() {
        let ok = |s: &str| parse_name_servers(s).expect(s);
        assert_eq!(ok("a:1"), ["a:1"]);
        assert_eq!(ok("a:1; b:2;a:1;"), ["a:1", "b:2"]);
        assert_eq!(ok("[::1]:9876"), ["[::1]:9876"]);
        for empty in ["", " ; ;"] {
            assert_eq!(parse_name_servers(empty), Err(ConfigError::NoNameServer));
        }
        for bad in ["nohost", "a:0", "a:99999", "http://a:1", "a:1;b"] {
            assert!(
                matches!(
                    parse_name_servers(bad),
                    Err(ConfigError::BadNameServer { .. })
                ),
                "{bad}"
            );
        }
    }
}
