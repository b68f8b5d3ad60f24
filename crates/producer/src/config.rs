//! [`ProducerConfig`]: every setting of a producer, with Java's defaults.

use std::time::Duration;

use rmq_common::compression::CompressionType;
use rmq_common::{LanguageCode, ResponseCode};
use rmq_nameserver_client::NameServerConfig;
use rmq_remoting::acl::Credentials;
use rmq_remoting::{RemotingConfig, SerializeType};

use crate::auto_batch::AutoBatchConfig;
use crate::transaction::TransactionConfig;

/// Java's `DefaultMQProducer.retryResponseCodes` (5.3.1+): the broker codes after which a send is
/// retried on another broker.
pub const JAVA_RETRY_RESPONSE_CODES: [ResponseCode; 8] = [
    ResponseCode::TOPIC_NOT_EXIST,
    ResponseCode::SERVICE_NOT_AVAILABLE,
    ResponseCode::SYSTEM_ERROR,
    ResponseCode::SYSTEM_BUSY,
    ResponseCode::NO_PERMISSION,
    ResponseCode::NO_BUYER_ID,
    ResponseCode::NOT_IN_CURRENT_UNIT,
    ResponseCode::GO_AWAY,
];

/// The longest accepted timeout or period (send and attempt timeouts, SYSTEM_BUSY pause,
/// heartbeat and route-refresh periods, shutdown timeout): one day. Longer values are refused by
/// [`ProducerConfig::validate`] ([`ConfigError::TooLong`]); `Producer::send_with_timeout` caps its
/// argument to it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The producer group Java refuses at start (`MixAll.DEFAULT_PRODUCER_GROUP`).
pub const DEFAULT_PRODUCER_GROUP: &str = "DEFAULT_PRODUCER";

/// The settings of a [`Producer`](crate::Producer). A plain struct with Java's defaults; build it
/// through [`ProducerBuilder`](crate::ProducerBuilder), which validates it.
///
/// ```
/// use std::time::Duration;
/// use rmq_producer::ProducerConfig;
///
/// let cfg = ProducerConfig::new("my_group");
/// assert_eq!(cfg.send_timeout, Duration::from_secs(3));
/// assert_eq!((cfg.retries, cfg.retries_async), (2, 2));
/// assert_eq!(cfg.compress_threshold, 4096);
/// assert!(cfg.latency_fault_tolerance);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// The producer group (required; Java's charset, at most 120 chars, not `DEFAULT_PRODUCER`).
    pub group: String,
    /// Name servers and route refresh settings (`NameServerConfig::addrs` must not be empty).
    pub name_server: NameServerConfig,
    /// Transport settings (connect timeout, frame limit, in-flight bounds, ...).
    pub remoting: RemotingConfig,
    /// One deadline per send covering the route lookup and every attempt (Java
    /// `sendMsgTimeout`, 3 s).
    pub send_timeout: Duration,
    /// Retries of a synchronous send after the first attempt (Java `retryTimesWhenSendFailed`, 2).
    pub retries: u32,
    /// Retries of an asynchronous send after the first attempt (Java
    /// `retryTimesWhenSendAsyncFailed`, 2). Unlike Java, async retries follow the same rules
    /// (codes, broker avoidance, deadline) as sync ones.
    pub retries_async: u32,
    /// Cap of one attempt while another attempt is still possible, so that one hung broker cannot
    /// eat the whole budget. `None` (default): the time left divided by the brokers not yet tried
    /// (at most the attempts left), so a single broker gets it all, as in Java. The last attempt
    /// always gets all the time left.
    pub attempt_timeout: Option<Duration>,
    /// Retry on another broker when the broker stored the message but reported a non-OK status
    /// (`FLUSH_DISK_TIMEOUT`, ...); this may store the message twice (Java
    /// `retryAnotherBrokerWhenNotStoreOK`, false).
    pub retry_another_broker_when_not_store_ok: bool,
    /// Broker response codes that are retried on another broker (Java 5.3.1+ set by default).
    pub retry_response_codes: Vec<ResponseCode>,
    /// Pause before retrying after `SYSTEM_BUSY` (at most a quarter of the time left).
    pub busy_backoff: Duration,
    /// Bodies of at least this many bytes are zlib-compressed (Java
    /// `compressMsgBodyOverHowmuch`, 4096). Batches are never compressed.
    pub compress_threshold: usize,
    /// Compression level (Java `rocketmq.message.compressLevel`, 5): zlib 0..=9, zstd 0..=22
    /// (0: zstd's default); LZ4 has none.
    pub compress_level: u32,
    /// The algorithm of compressed bodies (Java 5.3 `compressType`, ZLIB).
    pub compress_type: CompressionType,
    /// How far ahead a timer message may be due (the broker's `timerMaxDelaySec`, 3 days by
    /// default): a later one is refused before sending
    /// ([`ValidationError::TimerTooFar`](rmq_common::validate::ValidationError::TimerTooFar)).
    /// Raise it for brokers configured with a larger maximum.
    pub timer_max_delay: Duration,
    /// Largest body (before compression) and largest batch body accepted (Java `maxMessageSize`,
    /// 4 MiB).
    pub max_message_size: usize,
    /// Latency fault tolerance: isolate slow or failing brokers (Java's `MQFaultStrategy`,
    /// **on** by default here, off in Java).
    pub latency_fault_tolerance: bool,
    /// Period of the heartbeat to every broker in use (Java `heartbeatBrokerInterval`, 30 s).
    pub heartbeat_interval: Duration,
    /// Bound the asynchronous sends in flight (on by default, like Java 5's
    /// `enableBackpressureForAsyncMode` but enabled).
    pub async_backpressure: bool,
    /// Most asynchronous sends in flight (Java `backPressureForAsyncSendNum`, 1024).
    pub async_max_in_flight: usize,
    /// Most body bytes of asynchronous sends in flight (Java `backPressureForAsyncSendSize`,
    /// 100 MiB).
    pub async_max_bytes: usize,
    /// How long `shutdown` waits for in-flight sends before cancelling them (default 5 s).
    pub shutdown_timeout: Duration,
    /// Instance name in the client id (Java `rocketmq.client.name`); `None`: `pid#nanos`, as Java
    /// does for its `DEFAULT` instance name.
    pub instance_name: Option<String>,
    /// Client IP in the client id; `None`: the first non-loopback address found, else 127.0.0.1.
    pub client_ip: Option<String>,
    /// Unit name appended to the client id when set (Java `unitName`).
    pub unit_name: Option<String>,
    /// The language the requests announce (Java sends `JAVA`, the default here too).
    pub language: LanguageCode,
    /// Header serialization of requests (JSON, as Java's default).
    pub serialize_type: SerializeType,
    /// The `unitMode` header flag (Java `unitMode`, false).
    pub unit_mode: bool,
    /// ACL credentials: when set, every request (to brokers and name servers) is signed as
    /// Java's `AclClientRPCHook` signs it (default none).
    pub credentials: Option<Credentials>,
    /// Where the client metrics go (feature `metrics`; [`crate::metrics`]): `None` (the default)
    /// records through OpenTelemetry's global meter provider as it is when the producer starts.
    #[cfg(feature = "metrics")]
    pub meter: Option<opentelemetry::metrics::Meter>,
    /// Settings of a transactional producer
    /// ([`ProducerBuilder::start_transactional`](crate::ProducerBuilder::start_transactional)).
    pub transaction: TransactionConfig,
    /// Namespace (Java `namespace`, default none): the group and every topic go on the wire as
    /// `ns%name` (see [`rmq_common::namespace`]), results and errors name the plain topic. A
    /// running producer's [`group`](Self::group) is the wrapped one, as in Java. Letters,
    /// digits, `_`, `-`, `|`; an empty one is none.
    pub namespace: Option<String>,
    /// Auto-batching of `send` / `send_async` (off by default, as in Java;
    /// [`ProducerBuilder::auto_batch`](crate::ProducerBuilder::auto_batch)).
    pub auto_batch: Option<AutoBatchConfig>,
    /// Message trace (off by default, as in Java;
    /// [`ProducerBuilder::enable_trace`](crate::ProducerBuilder::enable_trace)).
    pub trace: Option<crate::TraceConfig>,
    /// A RocketMQ 5 gRPC proxy endpoint (`host:port`, default none;
    /// [`ProducerBuilder::proxy`](crate::ProducerBuilder::proxy)): when set, every send goes
    /// through the proxy's `MessagingService` instead of the remoting protocol, and no name
    /// server is needed.
    pub proxy: Option<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            group: String::new(),
            name_server: NameServerConfig::default(),
            remoting: RemotingConfig::default(),
            send_timeout: Duration::from_secs(3),
            retries: 2,
            retries_async: 2,
            attempt_timeout: None,
            retry_another_broker_when_not_store_ok: false,
            retry_response_codes: JAVA_RETRY_RESPONSE_CODES.to_vec(),
            busy_backoff: Duration::from_millis(50),
            compress_threshold: 4096,
            compress_level: 5,
            compress_type: CompressionType::Zlib,
            timer_max_delay: Duration::from_millis(rmq_common::timer::DEFAULT_MAX_DELAY_MS),
            max_message_size: 4 * 1024 * 1024,
            latency_fault_tolerance: true,
            heartbeat_interval: Duration::from_secs(30),
            async_backpressure: true,
            async_max_in_flight: 1024,
            async_max_bytes: 100 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(5),
            instance_name: None,
            client_ip: None,
            unit_name: None,
            language: LanguageCode::JAVA,
            serialize_type: SerializeType::Json,
            unit_mode: false,
            credentials: None,
            #[cfg(feature = "metrics")]
            meter: None,
            transaction: TransactionConfig::default(),
            namespace: None,
            auto_batch: None,
            trace: None,
            proxy: None,
        }
    }
}

impl ProducerConfig {
    /// Defaults with this producer group.
    #[must_use]
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ..Self::default()
        }
    }

    /// Whether a broker answering `code` is retried on another broker.
    #[must_use]
    pub fn is_retryable_code(&self, code: ResponseCode) -> bool {
        self.retry_response_codes.contains(&code)
    }

    /// Checks the settings that would make the producer unusable.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        rmq_common::validate::validate_group(&self.group).map_err(ConfigError::Group)?;
        crate::namespace::check(self)?;
        if self.group == DEFAULT_PRODUCER_GROUP {
            return Err(ConfigError::ReservedGroup);
        }
        if let Some(proxy) = &self.proxy {
            proxy
                .parse::<rmq_grpc::Endpoint>()
                .map_err(|e| ConfigError::BadProxy {
                    endpoint: proxy.clone(),
                    reason: e.to_string(),
                })?;
        } else if self.name_server.addrs.is_empty() {
            return Err(ConfigError::NoNameServer);
        }
        for addr in &self.name_server.addrs {
            check_addr(addr).map_err(|reason| ConfigError::BadNameServer {
                addr: addr.clone(),
                reason,
            })?;
        }
        let checks = [
            (self.send_timeout.is_zero(), "send_timeout must be positive"),
            (
                self.attempt_timeout.is_some_and(|d| d.is_zero()),
                "attempt_timeout must be positive",
            ),
            (
                self.compress_type == CompressionType::Zlib && self.compress_level > 9,
                "compress_level must be 0..=9 for zlib",
            ),
            (
                self.compress_type == CompressionType::Zstd
                    && self.compress_level > rmq_common::compression::ZSTD_MAX_LEVEL,
                "compress_level must be 0..=22 for zstd",
            ),
            (
                self.timer_max_delay.is_zero(),
                "timer_max_delay must be positive",
            ),
            (
                self.max_message_size == 0,
                "max_message_size must be positive",
            ),
            (
                self.heartbeat_interval.is_zero(),
                "heartbeat_interval must be positive",
            ),
            (
                self.async_backpressure && self.async_max_in_flight == 0,
                "async_max_in_flight must be positive",
            ),
            (
                self.async_backpressure && self.async_max_bytes == 0,
                "async_max_bytes must be positive",
            ),
            (
                self.retries > 64 || self.retries_async > 64,
                "retries must be at most 64",
            ),
        ];
        if let Some((_, reason)) = checks.iter().find(|(bad, _)| *bad) {
            return Err(ConfigError::Invalid(reason));
        }
        if let Some(reason) = self.transaction.invalid(MAX_TIMEOUT) {
            return Err(ConfigError::Invalid(reason));
        }
        if let Some(reason) = self.auto_batch.as_ref().and_then(AutoBatchConfig::invalid) {
            return Err(ConfigError::Invalid(reason));
        }
        let durations = [
            ("send_timeout", Some(self.send_timeout)),
            ("attempt_timeout", self.attempt_timeout),
            ("busy_backoff", Some(self.busy_backoff)),
            ("heartbeat_interval", Some(self.heartbeat_interval)),
            ("shutdown_timeout", Some(self.shutdown_timeout)),
            ("route_poll_interval", Some(self.name_server.poll_interval)),
        ];
        match durations
            .iter()
            .find(|(_, d)| d.is_some_and(|d| d > MAX_TIMEOUT))
        {
            Some((setting, _)) => Err(ConfigError::TooLong {
                setting,
                max: MAX_TIMEOUT,
            }),
            None => Ok(()),
        }
    }
}

/// A [`ProducerConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The producer group is blank, too long or has illegal characters.
    #[error("invalid producer group")]
    Group(#[source] rmq_common::validate::ValidationError),
    /// The producer group is Java's reserved `DEFAULT_PRODUCER`.
    #[error("the producer group DEFAULT_PRODUCER is reserved")]
    ReservedGroup,
    /// No name server address is configured.
    #[error("no name server address configured")]
    NoNameServer,
    /// A name-server address is not `host:port` (a host name, an IPv4 address or a bracketed
    /// IPv6 address, and a port 1..=65535).
    #[error("invalid name server address {addr:?}: {reason}")]
    #[non_exhaustive]
    BadNameServer {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The gRPC proxy endpoint cannot be used.
    #[error("invalid proxy endpoint {endpoint:?}: {reason}")]
    #[non_exhaustive]
    BadProxy {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
    /// A timeout or period is longer than [`MAX_TIMEOUT`].
    #[error("{setting} must be at most {max:?}")]
    #[non_exhaustive]
    TooLong {
        /// The setting.
        setting: &'static str,
        /// The bound.
        max: Duration,
    },
}

/// Checks that `addr` is `host:port` as RocketMQ clients dial it (Java's
/// `RemotingHelper.string2SocketAddress`): a host name or IPv4 address, or a bracketed IPv6
/// address, then a port 1..=65535. Nothing is resolved here.
pub(crate) fn check_addr(addr: &str) -> Result<(), &'static str> {
    if addr.contains("://") {
        return Err("a URL, expected host:port");
    }
    let (host, port) = addr.rsplit_once(':').ok_or("no port, expected host:port")?;
    let port: u32 = port.parse().map_err(|_| "the port is not a number")?;
    if !(1..=65_535).contains(&port) {
        return Err("the port is not in 1..=65535");
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(drop)
            .map_err(|_| "not an IPv6 address in brackets");
    }
    let host_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    if host.is_empty() {
        return Err("no host");
    }
    if !host.chars().all(host_char) {
        return Err("the host has a character a host name cannot have");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ProducerConfig {
        let mut cfg = ProducerConfig::new("pg");
        cfg.name_server.addrs = vec!["127.0.0.1:9876".to_owned()];
        cfg
    }

    #[test]
    fn java_defaults() {
        let cfg = ProducerConfig::default();
        assert_eq!(cfg.send_timeout, Duration::from_millis(3000));
        assert_eq!(cfg.max_message_size, 4 * 1024 * 1024);
        assert_eq!(cfg.compress_level, 5);
        assert_eq!(
            (cfg.async_max_in_flight, cfg.async_max_bytes),
            (1024, 100 << 20)
        );
        assert_eq!(cfg.heartbeat_interval, Duration::from_secs(30));
        assert!(!cfg.retry_another_broker_when_not_store_ok);
        for code in [1, 2, 14, 16, 17, 204, 205, 1500] {
            assert!(cfg.is_retryable_code(ResponseCode(code)), "{code}");
        }
        for code in [0, 3, 10, 13, 29, 215] {
            assert!(!cfg.is_retryable_code(ResponseCode(code)), "{code}");
        }
    }

    #[test]
    fn name_server_addresses_are_host_and_port() {
        for good in [
            "127.0.0.1:9876",
            "localhost:9876",
            "mq-1.example.com:9876",
            "name_srv:1",
            "[::1]:9876",
            "10.0.0.1:65535",
        ] {
            assert_eq!(check_addr(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("127.0.0.1:99999", "port"),
            ("127.0.0.1:0", "port"),
            ("127.0.0.1:", "port"),
            ("not-an-address", "no port"),
            (":9876", "no host"),
            ("http://127.0.0.1:9876", "URL"),
            ("a b:9876", "character"),
            ("::1:9876", "character"),
            ("[::g]:9876", "IPv6"),
        ] {
            let err = check_addr(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        let mut cfg = valid();
        cfg.name_server.addrs.push("not-an-address".into());
        let err = cfg.validate().expect_err("refused");
        assert!(
            matches!(&err, ConfigError::BadNameServer { addr, .. } if addr == "not-an-address"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "invalid name server address \"not-an-address\": no port, expected host:port"
        );
    }

    #[test]
    fn validation_rejects_unusable_settings() {
        assert_eq!(valid().validate(), Ok(()));
        type Mutation = Box<dyn Fn(&mut ProducerConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.group = String::new()), "group"),
            (Box::new(|c| c.group = "bad group!".into()), "group"),
            (
                Box::new(|c| c.group = DEFAULT_PRODUCER_GROUP.into()),
                "reserved",
            ),
            (Box::new(|c| c.name_server.addrs.clear()), "no name server"),
            (
                Box::new(|c| c.name_server.addrs.push("127.0.0.1:99999".into())),
                "127.0.0.1:99999",
            ),
            (
                Box::new(|c| c.send_timeout = Duration::ZERO),
                "send_timeout",
            ),
            (Box::new(|c| c.compress_level = 10), "compress_level"),
            (
                Box::new(|c| c.async_max_in_flight = 0),
                "async_max_in_flight",
            ),
            (
                Box::new(|c| c.attempt_timeout = Some(Duration::ZERO)),
                "attempt_timeout",
            ),
        ];
        for (mutate, what) in cases {
            let mut cfg = valid();
            mutate(&mut cfg);
            assert!(cfg.validate().is_err(), "{what} accepted");
        }
        let long: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.send_timeout = Duration::MAX), "send_timeout"),
            (
                Box::new(|c| c.attempt_timeout = Some(Duration::MAX)),
                "attempt_timeout",
            ),
            (Box::new(|c| c.busy_backoff = Duration::MAX), "busy_backoff"),
            (
                Box::new(|c| c.heartbeat_interval = Duration::MAX),
                "heartbeat_interval",
            ),
            (
                Box::new(|c| c.shutdown_timeout = MAX_TIMEOUT + Duration::from_nanos(1)),
                "shutdown_timeout",
            ),
            (
                Box::new(|c| c.name_server.poll_interval = Duration::MAX),
                "route_poll_interval",
            ),
        ];
        for (mutate, what) in long {
            let mut cfg = valid();
            mutate(&mut cfg);
            assert_eq!(
                cfg.validate(),
                Err(ConfigError::TooLong {
                    setting: what,
                    max: MAX_TIMEOUT
                })
            );
        }
        let mut at_bound = valid();
        at_bound.send_timeout = MAX_TIMEOUT;
        at_bound.heartbeat_interval = MAX_TIMEOUT;
        assert_eq!(at_bound.validate(), Ok(()));
        let mut off = valid();
        off.async_backpressure = false;
        off.async_max_in_flight = 0;
        assert_eq!(
            off.validate(),
            Ok(()),
            "bounds unused when back-pressure is off"
        );
    }
}
