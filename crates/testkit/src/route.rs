//! `RouteBuilder`: topic routes for tests, as a name server would answer them.

use rmq_common::route::{perm, BrokerData, QueueData, TopicRouteData, MASTER_ID};

/// The cluster name the mocks use (`DefaultCluster`, as a default broker config).
pub const CLUSTER: &str = "DefaultCluster";

/// Builds a [`TopicRouteData`].
///
/// ```
/// use rmq_testkit::RouteBuilder;
///
/// let route = RouteBuilder::new()
///     .broker("broker-a", "127.0.0.1:10911")
///     .queues("broker-a", 4)
///     .build();
/// assert_eq!(route.queue_datas[0].write_queue_nums, 4);
/// assert_eq!(route.broker_datas[0].master_addr(), Some("127.0.0.1:10911"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouteBuilder {
    route: TopicRouteData,
}

impl RouteBuilder {
    /// An empty route.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a broker of [`CLUSTER`] with its master address (id 0).
    #[must_use]
    pub fn broker(self, name: &str, master_addr: &str) -> Self {
        self.broker_ids(name, &[(MASTER_ID, master_addr)])
    }

    /// Adds (or replaces) a broker with explicit ids (`&[(1, "host:port")]` is a broker without a
    /// master).
    #[must_use]
    pub fn broker_ids(mut self, name: &str, ids: &[(i64, &str)]) -> Self {
        let data = BrokerData {
            cluster: CLUSTER.to_owned(),
            broker_name: name.to_owned(),
            broker_addrs: ids.iter().map(|(id, a)| (*id, (*a).to_owned())).collect(),
            ..BrokerData::default()
        };
        self.route.broker_datas.retain(|b| b.broker_name != name);
        self.route.broker_datas.push(data);
        self
    }

    /// Adds (or replaces) read-write queue data: `nums` read and write queues, perm 6.
    #[must_use]
    pub fn queues(self, broker: &str, nums: i32) -> Self {
        self.queue_data(broker, nums, nums, perm::READ | perm::WRITE)
    }

    /// Adds (or replaces) queue data with explicit counts and permission.
    #[must_use]
    pub fn queue_data(mut self, broker: &str, read: i32, write: i32, perm: i32) -> Self {
        self.route.queue_datas.retain(|q| q.broker_name != broker);
        self.route.queue_datas.push(QueueData {
            broker_name: broker.to_owned(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_sys_flag: 0,
        });
        self
    }

    /// Sets `orderTopicConf` (`"broker-a:4;broker-b:4"`).
    #[must_use]
    pub fn order_topic_conf(mut self, conf: &str) -> Self {
        self.route.order_topic_conf = Some(conf.to_owned());
        self
    }

    /// Removes a broker and its queue data.
    #[must_use]
    pub fn without_broker(mut self, name: &str) -> Self {
        self.route.broker_datas.retain(|b| b.broker_name != name);
        self.route.queue_datas.retain(|q| q.broker_name != name);
        self
    }

    /// The route.
    #[must_use]
    pub fn build(self) -> TopicRouteData {
        self.route
    }
}

impl From<TopicRouteData> for RouteBuilder {
    fn from(route: TopicRouteData) -> Self {
        Self { route }
    }
}
