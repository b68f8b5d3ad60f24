//! Registration with the brokers: `HEART_BEAT` (34) with every producer group of the instance to
//! every broker in use, at start, on first use of a broker or group and every
//! `heartbeat_interval` (Java 30 s); and `UNREGISTER_CLIENT` (35) per group to every broker when
//! the group's last producer shuts down.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rmq_common::validate::CLIENT_INNER_PRODUCER_GROUP;
use rmq_common::{
    ExtFields, HeartbeatData, ProducerData, RequestCode, ResponseCode,
    UnregisterClientRequestHeader,
};
use rmq_remoting::RemotingCommand;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ProducerConfig;

use super::ClientInstance;

/// Java's `mqClientApiTimeout` for heartbeats and unregistration.
pub(crate) const CLIENT_API_TIMEOUT: Duration = Duration::from_secs(3);

/// The bound of `UNREGISTER_CLIENT` at shutdown: the broker also forgets a client whose
/// connection closes, so a hung broker is not worth more of the shutdown.
pub(crate) const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(1);

/// The `HEART_BEAT` request: an empty header (J5's `HeartbeatRequestHeader` has no non-null
/// field) and the JSON `HeartbeatData` body, whose producer set holds, as Java's, the client's
/// internal group `CLIENT_INNER_PRODUCER` and every producer group of the instance.
pub(crate) fn heartbeat_request(
    cfg: &ProducerConfig,
    client_id: &str,
    groups: &[String],
) -> RemotingCommand {
    let mut producers = vec![ProducerData::new(CLIENT_INNER_PRODUCER_GROUP.to_owned())];
    producers.extend(
        groups
            .iter()
            .filter(|g| *g != CLIENT_INNER_PRODUCER_GROUP)
            .map(|g| ProducerData::new(g.clone())),
    );
    let data = HeartbeatData {
        client_id: client_id.to_owned(),
        producer_data_set: producers,
        consumer_data_set: Vec::new(),
    };
    // Serializing plain strings and vectors cannot fail; an empty body would only be refused.
    let body = serde_json::to_vec(&data).unwrap_or_default();
    let mut req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new())
        .with_body(body)
        .with_serialize_type(cfg.serialize_type);
    req.language = cfg.language;
    req
}

/// The `UNREGISTER_CLIENT` request for producer `group`.
pub(crate) fn unregister_request(
    cfg: &ProducerConfig,
    client_id: &str,
    group: &str,
) -> RemotingCommand {
    let header = UnregisterClientRequestHeader {
        client_id: client_id.to_owned(),
        producer_group: Some(group.to_owned()),
        consumer_group: None,
    };
    let mut req = RemotingCommand::request_with_header(RequestCode::UNREGISTER_CLIENT, &header)
        .with_serialize_type(cfg.serialize_type);
    req.language = cfg.language;
    req
}

/// Sends one heartbeat to `addr`; failures are logged, never fatal. Nothing is sent while no
/// group is registered.
async fn heartbeat_one(instance: &ClientInstance, addr: &str) {
    let groups = instance.groups();
    if groups.is_empty() {
        return;
    }
    let req = heartbeat_request(&instance.cfg, instance.client_id(), &groups);
    match instance
        .remoting
        .invoke_sync(addr, req, CLIENT_API_TIMEOUT)
        .await
    {
        Ok(resp) if resp.response_code() == ResponseCode::SUCCESS => {
            tracing::trace!(addr, "heartbeat sent");
        }
        Ok(resp) => {
            tracing::warn!(addr, code = %resp.response_code(), remark = ?resp.remark, "heartbeat refused");
        }
        Err(err) => tracing::debug!(addr, error = %err, "heartbeat failed"),
    }
}

/// Heartbeats to every broker in use, concurrently; stops (abandoning those in flight) as soon
/// as `stop` is cancelled, and starts none after that.
async fn heartbeat_all(instance: &Arc<ClientInstance>, stop: &CancellationToken) {
    let _beat = instance.beat.lock().await;
    let mut set = JoinSet::new();
    for addr in instance.broker_addrs(false) {
        if stop.is_cancelled() {
            break;
        }
        let instance = Arc::clone(instance);
        set.spawn(async move { heartbeat_one(&instance, &addr).await });
    }
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                set.abort_all();
                break;
            }
            done = set.join_next() => if done.is_none() { break },
        }
    }
}

/// Heartbeats to every broker in use now, and returns once each answered or failed (Java's
/// `sendHeartbeatToAllBrokerWithLock`, which a request runs before its first send to a topic:
/// a broker pushes a reply only to a client whose heartbeat it has).
pub(crate) async fn heartbeat_now(instance: &Arc<ClientInstance>) {
    heartbeat_all(instance, &instance.stop).await;
}

/// The heartbeat task: once at start, then every interval, and at once for every broker
/// announced on `new_brokers` (its first use, or a new group). Ends as soon as `stop` is
/// cancelled (or the instance is gone), abandoning a heartbeat in flight, so that none starts
/// after shutdown's `UNREGISTER_CLIENT`.
pub(crate) async fn run(
    instance: Weak<ClientInstance>,
    mut new_brokers: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                let Some(instance) = instance.upgrade() else { break };
                heartbeat_all(&instance, &stop).await;
            }
            Some(addr) = new_brokers.recv() => {
                let Some(instance) = instance.upgrade() else { break };
                let beat = async {
                    let _beat = instance.beat.lock().await;
                    heartbeat_one(&instance, &addr).await;
                };
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    () = beat => {}
                }
            }
        }
    }
    tracing::debug!("heartbeat task stopped");
}

/// `UNREGISTER_CLIENT` for `group` (already deregistered) to every broker in use, concurrently,
/// all within `timeout` (at most Java's 3 s), once no heartbeat that may still list the group is
/// in flight (or `timeout` passed waiting for it); returns how many accepted.
pub(crate) async fn unregister_group(
    instance: &Arc<ClientInstance>,
    group: &str,
    timeout: Duration,
) -> usize {
    // One deadline for the wait for a heartbeat in flight and the requests themselves.
    let deadline = tokio::time::Instant::now() + timeout.min(CLIENT_API_TIMEOUT);
    let _beat = match tokio::time::timeout_at(deadline, instance.beat.lock()).await {
        Ok(beat) => Some(beat),
        Err(_) => {
            tracing::debug!("a heartbeat is still in flight; unregistering anyway");
            None
        }
    };
    let mut set = JoinSet::new();
    for addr in instance.broker_addrs(true) {
        let instance = Arc::clone(instance);
        let req = unregister_request(&instance.cfg, instance.client_id(), group);
        // What is left, but a round trip's chance even when the wait took it all.
        let timeout = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(100));
        set.spawn(async move {
            match instance.remoting.invoke_sync(&addr, req, timeout).await {
                Ok(resp) if resp.response_code() == ResponseCode::SUCCESS => true,
                Ok(resp) => {
                    tracing::warn!(addr, code = %resp.response_code(), "unregister refused");
                    false
                }
                Err(err) => {
                    tracing::warn!(addr, error = %err, "unregister failed");
                    false
                }
            }
        });
    }
    let mut ok = 0;
    while let Some(done) = set.join_next().await {
        ok += usize::from(matches!(done, Ok(true)));
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_body_has_java_names() {
        let cfg = ProducerConfig::new("pg");
        let req = heartbeat_request(&cfg, "10.0.0.1@1#2", &["pg".to_owned()]);
        assert_eq!(req.request_code(), RequestCode::HEART_BEAT);
        let json: serde_json::Value = serde_json::from_slice(&req.body).expect("json body");
        assert_eq!(json["clientID"], "10.0.0.1@1#2");
        assert_eq!(
            json["producerDataSet"],
            serde_json::json!([{"groupName": "CLIENT_INNER_PRODUCER"}, {"groupName": "pg"}]),
            "as the Java client's heartbeat"
        );
        assert_eq!(json["consumerDataSet"], serde_json::json!([]));
    }

    #[test]
    fn unregister_names_client_and_group() {
        let cfg = ProducerConfig::new("pg");
        let req = unregister_request(&cfg, "ip@i", "pg");
        assert_eq!(req.request_code(), RequestCode::UNREGISTER_CLIENT);
        assert_eq!(req.ext_fields.get("clientID"), Some("ip@i"));
        assert_eq!(req.ext_fields.get("producerGroup"), Some("pg"));
        assert_eq!(req.ext_fields.get("consumerGroup"), None);
    }
}
