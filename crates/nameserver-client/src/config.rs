//! Name-server configuration: addresses, timeouts, refresh interval, auto-create defaults.

use std::time::Duration;

/// The topic whose route stands in for auto-created topics (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const DEFAULT_TOPIC: &str = "TBW102";

/// Java's `defaultTopicQueueNums`: the queue cap of an auto-created topic.
pub const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;

/// Default of [`NameServerConfig::min_immediate_refresh_interval`].
pub const DEFAULT_MIN_IMMEDIATE_REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// Settings of the name-server client and the route cache. A plain struct with [`Default`].
///
/// ```
/// use std::time::Duration;
/// use rmq_nameserver_client::NameServerConfig;
///
/// let cfg = NameServerConfig::default().with_env_addrs(Some("10.0.0.1:9876; 10.0.0.2:9876"));
/// assert_eq!(cfg.addrs, ["10.0.0.1:9876", "10.0.0.2:9876"]);
/// assert_eq!(cfg.poll_interval, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServerConfig {
    /// Name-server addresses (`host:port`).
    pub addrs: Vec<String>,
    /// Deadline of one route request, failover included (Java `mqClientApiTimeout`, 3 s).
    pub request_timeout: Duration,
    /// Period of the route refresh of topics in use (Java `pollNameServerInterval`, 30 s).
    pub poll_interval: Duration,
    /// A topic not asked for during this long is dropped from the cache and no longer refreshed
    /// (10 min by default; Java has no such expiry).
    pub topic_idle_expiry: Duration,
    /// Least time between two immediate refreshes of one topic
    /// ([`RouteCache::refresh_now`](crate::RouteCache::refresh_now), after send failures), so a
    /// failure storm cannot hammer the name servers: a call within this time of the last one is
    /// served once it has passed (500 ms by default; zero: only one refresh in flight at a time).
    pub min_immediate_refresh_interval: Duration,
    /// The default topic used for auto-created topics (`TBW102`).
    pub default_topic: String,
    /// The queue cap of auto-created topics (Java `defaultTopicQueueNums`, 4).
    pub default_topic_queue_nums: i32,
}

impl Default for NameServerConfig {
    fn default() -> Self {
        Self {
            addrs: Vec::new(),
            request_timeout: Duration::from_secs(3),
            poll_interval: Duration::from_secs(30),
            topic_idle_expiry: Duration::from_secs(600),
            min_immediate_refresh_interval: DEFAULT_MIN_IMMEDIATE_REFRESH_INTERVAL,
            default_topic: DEFAULT_TOPIC.to_owned(),
            default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
        }
    }
}

impl NameServerConfig {
    /// A configuration with these addresses and every other setting at its default.
    #[must_use]
    pub fn new(addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            addrs: addrs.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds the addresses of a `NAMESRV_ADDR`-style string (`"a:9876;b:9876"`), skipping ones
    /// already present. The **caller** reads the environment; `None` changes nothing.
    #[must_use]
    pub fn with_env_addrs(mut self, value: Option<&str>) -> Self {
        for addr in value.map(parse_addr_list).unwrap_or_default() {
            if !self.addrs.contains(&addr) {
                self.addrs.push(addr);
            }
        }
        self
    }
}

/// Splits a semicolon-separated address list as Java does, trimming blanks and dropping empty
/// items.
///
/// ```
/// use rmq_nameserver_client::parse_addr_list;
/// assert_eq!(parse_addr_list("a:1;b:2; ;c:3;"), ["a:1", "b:2", "c:3"]);
/// assert!(parse_addr_list("").is_empty());
/// ```
#[must_use]
pub fn parse_addr_list(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
