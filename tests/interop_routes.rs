//! Interop: routes from the real name server and two brokers of `scripts/rocketmq-dev.sh`.
//!
//! A topic auto-created by one raw `SEND_MESSAGE_V2` to each broker (default topic `TBW102`)
//! must come back from the name server with both brokers and their writable queues, and the
//! route cache must serve it (first through the `TBW102` fallback, then through its own route).

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_common::message_id::OffsetMessageId;
use rmq_common::route::{perm, TopicRouteData};
use rmq_common::{
    property, CommandHeader, Properties, RequestCode, ResponseCode, SendMessageResponseHeader,
};
use rmq_nameserver_client::{
    NameServerClient, NameServerConfig, RouteCache, TopicPublishInfo, DEFAULT_TOPIC,
    DEFAULT_TOPIC_QUEUE_NUMS,
};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig};

const CALL: Duration = Duration::from_secs(10);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(support::INTEROP_TIMEOUT, f)
        .await
        .expect("interop step timed out")
}

fn send_request(topic: &str, broker: &str, n: usize) -> RemotingCommand {
    let mut props = Properties::new();
    props.insert(property::UNIQ_KEY, format!("{:032X}", n + 1));
    props.insert(property::WAIT, "true");
    let born = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let header = SendMessageRequestHeaderV2(SendMessageRequestHeader {
        producer_group: "rmq_interop_routes".into(),
        topic: topic.into(),
        default_topic: DEFAULT_TOPIC.into(),
        default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
        queue_id: 0,
        sys_flag: 0,
        born_timestamp: born,
        flag: 0,
        properties: Some(props.encode()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        broker_name: Some(broker.into()),
        ..SendMessageRequestHeader::default()
    });
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &header)
        .with_body(format!("route interop {n}").into_bytes())
}

/// Whether every broker of the cluster has a writable queue data and a master in the route.
fn lists_all(route: &TopicRouteData, cluster: &support::RealCluster) -> bool {
    cluster.brokers.iter().all(|(name, _)| {
        route
            .queue_datas
            .iter()
            .any(|q| &q.broker_name == name && perm::is_writeable(q.perm) && q.write_queue_nums > 0)
            && route.broker(name).and_then(|b| b.master_addr()).is_some()
    })
}

fn brokers_of(info: &TopicPublishInfo) -> BTreeSet<String> {
    info.queues.iter().map(|q| q.broker_name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_created_topic_route_lists_both_brokers_with_writable_queues() {
    let Some(cluster) = support::real_cluster("interop_routes") else {
        return;
    };
    assert!(cluster.brokers.len() >= 2, "{cluster:?}");
    let topic = support::unique_topic("RmqInteropRoutes");
    let remoting = RemotingClient::new(RemotingConfig::default());
    let names: BTreeSet<String> = cluster.brokers.iter().map(|(n, _)| n.clone()).collect();

    // Not created yet: the cache falls back to TBW102, capped at defaultTopicQueueNums.
    let cache = RouteCache::new(
        remoting.clone(),
        NameServerConfig::new([cluster.namesrv.clone()]),
    );
    let client = NameServerClient::new(remoting.clone(), vec![cluster.namesrv.clone()]);
    let err = within(client.topic_route(&topic, CALL)).await.unwrap_err();
    assert!(err.is_topic_not_exist(), "{err:?}");
    let via_default = within(cache.publish_info(&topic, true, CALL))
        .await
        .unwrap();
    assert_eq!(brokers_of(&via_default), names);
    for name in &names {
        let n = via_default
            .queues
            .iter()
            .filter(|q| &q.broker_name == name)
            .count();
        assert!(
            (1..=4).contains(&n),
            "{name}: {n} queues from the capped TBW102 route"
        );
    }

    // One raw send per broker: each broker creates the topic and registers it.
    for (i, (name, addr)) in cluster.brokers.iter().enumerate() {
        let resp = within(remoting.invoke_sync(addr, send_request(&topic, name, i), CALL))
            .await
            .unwrap();
        assert_eq!(
            resp.response_code(),
            ResponseCode::SUCCESS,
            "{name}: {:?}",
            resp.remark
        );
        let header = SendMessageResponseHeader::read_from(&resp.ext_fields).unwrap();
        assert_eq!(header.queue_id, 0);
        let id = OffsetMessageId::decode(&header.msg_id).unwrap();
        assert_eq!(
            id.addr.port(),
            addr.rsplit(':').next().unwrap().parse::<u16>().unwrap()
        );
    }

    // The name server learns the route from the brokers' registration: poll, bounded.
    let mut route = None;
    for _ in 0..120 {
        match within(client.topic_route(&topic, CALL)).await {
            Ok(r) if lists_all(&r, &cluster) => {
                route = Some(r);
                break;
            }
            Ok(_) => {}
            Err(e) if e.is_topic_not_exist() => {}
            Err(e) => panic!("route of {topic}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let route = route.unwrap_or_else(|| panic!("{topic}: not every broker appeared in its route"));

    let info = TopicPublishInfo::from_route(&topic, &route);
    assert!(!info.order_topic);
    assert_eq!(brokers_of(&info), names);
    for (name, addr) in &cluster.brokers {
        assert_eq!(info.master_addr(name), Some(addr.as_str()), "{name}");
        let qd = route
            .queue_datas
            .iter()
            .find(|q| &q.broker_name == name)
            .unwrap();
        let ids: Vec<i32> = info
            .queues
            .iter()
            .filter(|q| &q.broker_name == name)
            .map(|q| q.queue_id)
            .collect();
        // One queue per write queue; the broker took min(defaultTopicQueueNums, TBW102's).
        assert_eq!(ids, (0..qd.write_queue_nums).collect::<Vec<_>>(), "{name}");
        assert!(
            (1..=DEFAULT_TOPIC_QUEUE_NUMS).contains(&qd.write_queue_nums),
            "{qd:?}"
        );
    }

    // The cache now follows the topic's own route.
    within(cache.refresh(&topic)).await.unwrap();
    let cached = cache.cached(&topic).unwrap();
    assert_eq!(cached.queues, info.queues);
    let mut masters: Vec<String> = cluster.brokers.iter().map(|(_, a)| a.clone()).collect();
    masters.sort();
    assert_eq!(cache.all_master_addrs(), masters);
    within(cache.shutdown()).await;
    within(remoting.shutdown()).await;
}
