//! The process-wide table of [`ClientInstance`]s (Java's `MQClientManager`): producers started
//! with the same client id and connection settings share one instance. As in Java, the client
//! id holds the instance name, which is new for every producer unless one is given
//! ([`ProducerBuilder::instance_name`](crate::ProducerBuilder::instance_name)): producers share
//! an instance when they are given the same instance name (and settings).
//!
//! "The same settings" is checked in two steps: a key of every plain setting an instance is
//! built from (client id, name servers and their settings, transport settings, serialization,
//! language, heartbeat period), then, among the instances of that key, equal credentials (secret
//! and token included) and the same TLS configuration (the same [`TlsConfig`] or a clone of it).
//!
//! Joining and leaving happen under the table's lock, so a producer never joins an instance
//! that its last producer is closing. An instance runs its background tasks on the runtime of
//! the producer that started it; once they are gone (that runtime shut down) the instance is not
//! handed out again and the next producer of the key starts a new one.
//!
//! [`TlsConfig`]: rmq_remoting::TlsConfig

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use crate::config::ProducerConfig;
use crate::identity;

use super::ClientInstance;

type Table = Mutex<HashMap<String, Vec<Weak<ClientInstance>>>>;

fn table() -> MutexGuard<'static, HashMap<String, Vec<Weak<ClientInstance>>>> {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE
        .get_or_init(Table::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The client id of a producer with `cfg` (`ip@instance[@unit]`, Java's `buildMQClientId`).
pub(crate) fn client_id(cfg: &ProducerConfig) -> String {
    let ip = cfg
        .client_ip
        .clone()
        .unwrap_or_else(|| identity::local_ip().to_string());
    let instance = cfg
        .instance_name
        .clone()
        .unwrap_or_else(identity::default_instance_name);
    identity::client_id(cfg, &ip, &instance)
}

/// The key of the plain settings of an instance for `cfg` with `client_id` (secrets and TLS
/// material are compared apart, see [`same_secrets`]).
pub(crate) fn key(cfg: &ProducerConfig, client_id: &str) -> String {
    format!(
        "{client_id}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        cfg.name_server,
        cfg.remoting,
        cfg.credentials
            .as_ref()
            .map(rmq_remoting::acl::Credentials::access_key),
        cfg.serialize_type,
        cfg.language,
        cfg.heartbeat_interval,
    )
}

/// Whether an instance built with `a` may serve a producer with `b`: the same credentials and
/// the same TLS configuration.
fn same_secrets(a: &ProducerConfig, b: &ProducerConfig) -> bool {
    let tls = match (&a.remoting.tls, &b.remoting.tls) {
        (None, None) => true,
        (Some(x), Some(y)) => x.is_same(y),
        _ => false,
    };
    tls && a.credentials == b.credentials
}

/// The running instance for `cfg` (validated), started on the current runtime when there is
/// none, with the producer's group registered on it.
pub(crate) fn join(cfg: &ProducerConfig) -> Arc<ClientInstance> {
    let client_id = client_id(cfg);
    let key = key(cfg, &client_id);
    let mut table = table();
    let entries = table.entry(key.clone()).or_default();
    entries.retain(|weak| weak.upgrade().is_some_and(|i| i.is_alive()));
    let found = entries
        .iter()
        .filter_map(Weak::upgrade)
        .find(|i| same_secrets(&i.cfg, cfg));
    let instance = match found {
        Some(instance) => {
            tracing::debug!(client_id = %instance.client_id(), "sharing the client instance");
            instance
        }
        None => {
            let instance = ClientInstance::start(key, client_id, cfg);
            entries.push(Arc::downgrade(&instance));
            instance
        }
    };
    instance.register_group(&cfg.group);
    instance
}

/// What leaving an instance left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Left {
    /// The group has no producer on the instance any more: unregister it from the brokers.
    pub(crate) last_of_group: bool,
    /// The instance has no producer any more: it is out of the table and must be closed.
    pub(crate) unused: bool,
}

/// Takes a producer of `group` off `instance`; the instance's last producer also takes it out
/// of the table, so that no producer joins it while it closes.
pub(crate) fn leave(instance: &ClientInstance, group: &str) -> Left {
    let mut table = table();
    let last_of_group = instance.deregister_group(group);
    let unused = instance.is_unused();
    if unused {
        if let Some(entries) = table.get_mut(&instance.key) {
            entries.retain(|weak| !std::ptr::eq(weak.as_ptr(), instance));
            if entries.is_empty() {
                table.remove(&instance.key);
            }
        }
    }
    Left {
        last_of_group,
        unused,
    }
}
