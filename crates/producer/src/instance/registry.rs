//! The process-wide table of [`ClientInstance`]s (Java's `MQClientManager`): producers started
//! with the same client id and connection settings share one instance.
//!
//! The key is the client id plus every setting an instance is built from (name servers,
//! transport and TLS settings, credentials, serialization, heartbeat and route periods), so that
//! two producers share connections only when nothing about those connections differs. The
//! table holds weak references: an instance lives as long as a producer uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use crate::config::ProducerConfig;
use crate::identity;

use super::ClientInstance;

type Table = Mutex<HashMap<String, Weak<ClientInstance>>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Table::default)
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
        .unwrap_or_else(|| identity::default_instance_name().to_owned());
    identity::client_id(cfg, &ip, &instance)
}

/// The sharing key of an instance for `cfg` with `client_id`.
pub(crate) fn key(cfg: &ProducerConfig, client_id: &str) -> String {
    let mut addrs = cfg.name_server.addrs.clone();
    addrs.sort();
    format!(
        "{client_id}|{addrs:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
        cfg.remoting,
        cfg.credentials,
        cfg.serialize_type,
        cfg.language,
        cfg.heartbeat_interval,
        cfg.name_server.poll_interval,
        cfg.name_server.request_timeout,
        cfg.name_server.topic_idle_expiry,
        cfg.name_server.default_topic,
    )
}

/// The running instance for `cfg` (validated), started on the current runtime when there is
/// none.
pub(crate) fn acquire(cfg: &ProducerConfig) -> Arc<ClientInstance> {
    let client_id = client_id(cfg);
    let key = key(cfg, &client_id);
    let mut table = table().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(instance) = table.get(&key).and_then(Weak::upgrade) {
        if !instance.stop.is_cancelled() {
            tracing::debug!(client_id = %instance.client_id, "sharing the client instance");
            return instance;
        }
    }
    table.retain(|_, weak| weak.strong_count() > 0);
    let instance = ClientInstance::start(key.clone(), client_id, cfg);
    table.insert(key, Arc::downgrade(&instance));
    instance
}

/// Removes `instance` from the table (only that one: a newer instance of the same key stays).
pub(crate) fn forget(key: &str, instance: &ClientInstance) {
    let mut table = table().lock().unwrap_or_else(PoisonError::into_inner);
    if table
        .get(key)
        .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), instance))
    {
        table.remove(key);
    }
}
