//! Name-server configuration: addresses, timeouts, refresh interval, auto-create defaults.

use std::time::Duration;

use crate::limits::MAX_QUEUES_PER_BROKER;

/// The topic whose route stands in for auto-created topics (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const DEFAULT_TOPIC: &str = "TBW102";

/// Java's `defaultTopicQueueNums`: the queue cap of an auto-created topic.
pub const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;

/// Least [`NameServerConfig::poll_interval`]: a shorter one would make the refresher spin.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Default of [`NameServerConfig::min_immediate_refresh_interval`].
pub const DEFAULT_MIN_IMMEDIATE_REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// Settings of the name-server client and the route cache. A plain struct with [`Default`];
/// [`validate`](Self::validate) says what is wrong with one, and
/// [`RouteCache::new`](crate::RouteCache::new) uses it [`clamped`](Self::clamped) (or refuses it:
/// [`RouteCache::try_new`](crate::RouteCache::try_new)).
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

/// What is wrong with a [`NameServerConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration below its least value (zero request timeout or idle expiry, a poll interval
    /// under [`MIN_POLL_INTERVAL`]).
    #[error("{field} is {value:?}, below the least allowed {min:?}")]
    TooShort {
        /// The field.
        field: &'static str,
        /// Its value.
        value: Duration,
        /// The least allowed value.
        min: Duration,
    },
    /// `default_topic_queue_nums` outside `1..=MAX_QUEUES_PER_BROKER`.
    #[error("default_topic_queue_nums is {value}, outside 1..={max}")]
    DefaultTopicQueueNums {
        /// Its value.
        value: i32,
        /// The largest allowed value ([`MAX_QUEUES_PER_BROKER`]).
        max: i32,
    },
    /// `default_topic` is blank.
    #[error("default_topic is blank")]
    BlankDefaultTopic,
    /// An address of `addrs` is blank.
    #[error("name-server address #{index} is blank")]
    BlankAddress {
        /// Its position in `addrs`.
        index: usize,
    },
}

/// Least request timeout and idle expiry: anything above zero.
const MIN_NONZERO: Duration = Duration::from_millis(1);

impl NameServerConfig {
    /// Checks every setting: `request_timeout` and `topic_idle_expiry` above zero,
    /// `poll_interval` at least [`MIN_POLL_INTERVAL`], `default_topic_queue_nums` in
    /// `1..=`[`MAX_QUEUES_PER_BROKER`], `default_topic` and every address not blank. An empty
    /// address list is allowed (route requests then fail with
    /// [`NameServerError::NoNameServer`](crate::NameServerError::NoNameServer)), and so is a zero
    /// `min_immediate_refresh_interval`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rmq_nameserver_client::{ConfigError, NameServerConfig, MIN_POLL_INTERVAL};
    ///
    /// assert_eq!(NameServerConfig::default().validate(), Ok(()));
    /// let spin = NameServerConfig { poll_interval: Duration::ZERO, ..NameServerConfig::default() };
    /// assert!(matches!(spin.validate(), Err(ConfigError::TooShort { field: "poll_interval", .. })));
    /// assert_eq!(spin.clamped().poll_interval, MIN_POLL_INTERVAL);
    /// ```
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("request_timeout", self.request_timeout, MIN_NONZERO),
            ("poll_interval", self.poll_interval, MIN_POLL_INTERVAL),
            ("topic_idle_expiry", self.topic_idle_expiry, MIN_NONZERO),
        ];
        for (field, value, min) in durations {
            if value < min {
                return Err(ConfigError::TooShort { field, value, min });
            }
        }
        if !(1..=MAX_QUEUES_PER_BROKER).contains(&self.default_topic_queue_nums) {
            return Err(ConfigError::DefaultTopicQueueNums {
                value: self.default_topic_queue_nums,
                max: MAX_QUEUES_PER_BROKER,
            });
        }
        if self.default_topic.trim().is_empty() {
            return Err(ConfigError::BlankDefaultTopic);
        }
        if let Some(index) = self.addrs.iter().position(|a| a.trim().is_empty()) {
            return Err(ConfigError::BlankAddress { index });
        }
        Ok(())
    }

    /// This configuration with every invalid setting (see [`validate`](Self::validate)) brought
    /// to the nearest valid one: durations raised to their least value, the queue count into
    /// `1..=`[`MAX_QUEUES_PER_BROKER`], a blank default topic back to [`DEFAULT_TOPIC`], blank
    /// addresses removed. A valid configuration is returned unchanged.
    #[must_use]
    pub fn clamped(mut self) -> Self {
        self.request_timeout = self.request_timeout.max(MIN_NONZERO);
        self.poll_interval = self.poll_interval.max(MIN_POLL_INTERVAL);
        self.topic_idle_expiry = self.topic_idle_expiry.max(MIN_NONZERO);
        self.default_topic_queue_nums = self
            .default_topic_queue_nums
            .clamp(1, MAX_QUEUES_PER_BROKER);
        if self.default_topic.trim().is_empty() {
            DEFAULT_TOPIC.clone_into(&mut self.default_topic);
        }
        self.addrs.retain(|a| !a.trim().is_empty());
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
