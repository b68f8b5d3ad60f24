//! [`ProducerBuilder`]: consuming setters over [`ProducerConfig`], then `start().await`.

use std::time::Duration;

use rmq_common::compression::CompressionType;
use rmq_common::{LanguageCode, ResponseCode};
use rmq_remoting::acl::Credentials;
use rmq_remoting::{RemotingConfig, SerializeType, TlsConfig};

use crate::auto_batch::AutoBatchConfig;
use crate::config::{ConfigError, ProducerConfig};
use crate::transaction::{TransactionConfig, TransactionListener, TransactionProducer};
use crate::Producer;

/// Builds and starts a [`Producer`]. There is no "created but not started" producer: a
/// configuration is validated, then [`ProducerBuilder::start`] returns a running one.
///
/// ```
/// use std::time::Duration;
/// use rmq_producer::ProducerBuilder;
///
/// let cfg = ProducerBuilder::new("orders")
///     .name_server("10.0.0.1:9876")
///     .send_timeout(Duration::from_secs(5))
///     .retries(3)
///     .build_config()?;
/// assert_eq!(cfg.retries, 3);
/// assert!(ProducerBuilder::new("orders").build_config().is_err(), "no name server");
/// # Ok::<(), rmq_producer::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct ProducerBuilder {
    cfg: ProducerConfig,
}

impl ProducerBuilder {
    /// A builder for a producer of `group`, with Java's defaults.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            cfg: ProducerConfig::new(group),
        }
    }

    /// A builder starting from a whole configuration.
    pub fn from_config(cfg: ProducerConfig) -> Self {
        Self { cfg }
    }

    /// Adds a name-server address (`host:port`); a `;`-separated list is split.
    pub fn name_server(mut self, addr: impl AsRef<str>) -> Self {
        for a in rmq_nameserver_client::parse_addr_list(addr.as_ref()) {
            if !self.cfg.name_server.addrs.contains(&a) {
                self.cfg.name_server.addrs.push(a);
            }
        }
        self
    }

    /// Sends through a RocketMQ 5 gRPC proxy at `endpoint` (`host:port`) instead of the
    /// remoting protocol: the same sends, results and errors, only the endpoint differs (no
    /// name server is needed). The proxy's settings (its retry policy's attempts and backoff,
    /// its maximum body size) replace the producer's on start. [`tls`](Self::tls) and
    /// [`credentials`](Self::credentials) apply to the proxy too (TLS with ALPN `h2`; the
    /// `authorization` signature of the 5.x clients). See the README's "gRPC proxy" section for
    /// what differs on the wire.
    ///
    /// ```no_run
    /// use rmq_common::Message;
    /// use rmq_producer::Producer;
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let producer = Producer::builder("my_group").proxy("127.0.0.1:8081").start().await?;
    /// producer.send(Message::new("TopicTest", "hello")).await?;
    /// producer.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, endpoint: impl Into<String>) -> Self {
        self.cfg.proxy = Some(endpoint.into());
        self
    }

    /// The send deadline (route lookup + every attempt; default 3 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.send_timeout = timeout;
        self
    }

    /// Retries of a synchronous send (default 2).
    pub fn retries(mut self, retries: u32) -> Self {
        self.cfg.retries = retries;
        self
    }

    /// Retries of an asynchronous send (default 2).
    pub fn retries_async(mut self, retries: u32) -> Self {
        self.cfg.retries_async = retries;
        self
    }

    /// A fixed cap for an attempt that is not the last (default: the time left split over the
    /// brokers not yet tried).
    pub fn attempt_timeout(mut self, cap: Duration) -> Self {
        self.cfg.attempt_timeout = Some(cap);
        self
    }

    /// Retry on another broker after a non-OK stored status (default false).
    pub fn retry_another_broker_when_not_store_ok(mut self, on: bool) -> Self {
        self.cfg.retry_another_broker_when_not_store_ok = on;
        self
    }

    /// The broker codes retried on another broker (default: Java's set).
    pub fn retry_response_codes(mut self, codes: impl IntoIterator<Item = ResponseCode>) -> Self {
        self.cfg.retry_response_codes = codes.into_iter().collect();
        self
    }

    /// Pause before retrying after `SYSTEM_BUSY` (default 50 ms).
    pub fn busy_backoff(mut self, pause: Duration) -> Self {
        self.cfg.busy_backoff = pause;
        self
    }

    /// Compress bodies of at least `bytes` (default 4096) at `level` (default 5; see
    /// [`compression_type`](Self::compression_type)).
    pub fn compression(mut self, bytes: usize, level: u32) -> Self {
        self.cfg.compress_threshold = bytes;
        self.cfg.compress_level = level;
        self
    }

    /// The algorithm of compressed bodies (default zlib; Java 5.3 `compressType`). The level
    /// of [`compression`](Self::compression) is zlib's (0..=9) or zstd's (0..=22); LZ4 has none.
    pub fn compression_type(mut self, ty: CompressionType) -> Self {
        self.cfg.compress_type = ty;
        self
    }

    /// How far ahead a timer message may be due (default 3 days, a broker's default
    /// `timerMaxDelaySec`); later ones are refused before sending.
    pub fn timer_max_delay(mut self, max: Duration) -> Self {
        self.cfg.timer_max_delay = max;
        self
    }

    /// Largest body accepted (default 4 MiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.cfg.max_message_size = bytes;
        self
    }

    /// Latency fault tolerance on or off (default on).
    pub fn latency_fault_tolerance(mut self, on: bool) -> Self {
        self.cfg.latency_fault_tolerance = on;
        self
    }

    /// Heartbeat period (default 30 s).
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.cfg.heartbeat_interval = every;
        self
    }

    /// Bounds of asynchronous sends in flight (default 1024 sends, 100 MiB).
    pub fn async_backpressure(mut self, max_in_flight: usize, max_bytes: usize) -> Self {
        self.cfg.async_backpressure = true;
        self.cfg.async_max_in_flight = max_in_flight;
        self.cfg.async_max_bytes = max_bytes;
        self
    }

    /// No bound on asynchronous sends in flight.
    pub fn without_async_backpressure(mut self) -> Self {
        self.cfg.async_backpressure = false;
        self
    }

    /// How long shutdown waits for sends in flight (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.shutdown_timeout = timeout;
        self
    }

    /// The instance name in the client id (default `pid#nanos`). Producers given the same name
    /// (and connection settings) share one client instance: its connections, its routes and
    /// each topic's queue rotation (Java keeps one rotation per producer).
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.cfg.instance_name = Some(name.into());
        self
    }

    /// The IP in the client id (default: the first non-loopback address).
    pub fn client_ip(mut self, ip: impl Into<String>) -> Self {
        self.cfg.client_ip = Some(ip.into());
        self
    }

    /// The language announced in requests (default `JAVA`).
    pub fn language(mut self, language: LanguageCode) -> Self {
        self.cfg.language = language;
        self
    }

    /// The header serialization of requests (default JSON).
    pub fn serialize_type(mut self, serialize_type: SerializeType) -> Self {
        self.cfg.serialize_type = serialize_type;
        self
    }

    /// Signs every request with these ACL credentials (clusters with `aclEnable=true`; Java's
    /// `new DefaultMQProducer(group, new AclClientRPCHook(credentials))`).
    ///
    /// ```
    /// use rmq_producer::{Credentials, Producer};
    /// let builder = Producer::builder("OrderProducers")
    ///     .name_server("127.0.0.1:9876")
    ///     .credentials(Credentials::new("RocketMQ", "12345678"));
    /// assert_eq!(
    ///     builder.config().credentials.as_ref().map(Credentials::access_key),
    ///     Some("RocketMQ")
    /// );
    /// ```
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.cfg.credentials = Some(credentials);
        self
    }

    /// Connects to name servers and brokers over TLS (Java's `useTLS`), verified as `tls`
    /// says: the system-independent web roots by default, a CA of your own, mutual TLS with a
    /// client certificate, or (for test clusters only) no verification at all.
    ///
    /// ```no_run
    /// use rmq_producer::{Producer, TlsConfig};
    /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let builder = Producer::builder("OrderProducers")
    ///     .name_server("mq.example.com:9876")
    ///     .tls(TlsConfig::new().with_ca_file("/etc/rocketmq/ca.pem")?);
    /// # drop(builder); Ok(()) }
    /// ```
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.cfg.remoting.tls = Some(tls);
        self
    }

    /// Transport settings.
    pub fn remoting(mut self, remoting: RemotingConfig) -> Self {
        self.cfg.remoting = remoting;
        self
    }

    /// The namespace (Java `setNamespace`): topics and the group go on the wire as `ns%name`;
    /// results and errors name the plain topic. An empty one is none.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        let ns: String = namespace.into();
        self.cfg.namespace = (!ns.is_empty()).then_some(ns);
        self
    }

    /// Route refresh period (default 30 s).
    pub fn route_poll_interval(mut self, every: Duration) -> Self {
        self.cfg.name_server.poll_interval = every;
        self
    }

    /// Settings of a transactional producer: the listener's budgets and the check pool (see
    /// [`TransactionConfig`]; used by [`start_transactional`](Self::start_transactional)).
    pub fn transaction(mut self, cfg: TransactionConfig) -> Self {
        self.cfg.transaction = cfg;
        self
    }

    /// Turns auto-batching on (Java 5.1.4+ `setAutoBatch(true)`): `send` and `send_async` of one
    /// message are held up to `cfg.hold_time` and sent with the other sends of the same topic
    /// (and queue, for a queue target or a selector) as one `SEND_BATCH_MESSAGE`; each caller
    /// still gets its own result or error. See [`AutoBatchConfig`] for what is never held.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rmq_producer::{AutoBatchConfig, Producer};
    /// let builder = Producer::builder("OrderProducers")
    ///     .name_server("127.0.0.1:9876")
    ///     .auto_batch(AutoBatchConfig::default().with_hold_time(Duration::from_millis(2)));
    /// assert!(builder.config().auto_batch.is_some());
    /// ```
    pub fn auto_batch(mut self, cfg: AutoBatchConfig) -> Self {
        self.cfg.auto_batch = Some(cfg);
        self
    }

    /// Turns message trace on with `cfg` (Java `new DefaultMQProducer(group, true,
    /// customizedTraceTopic)`): every stored send leaves a `Pub` record, every transaction end
    /// an `EndTransaction` record, in the trace topic, sent off the send path by an internal
    /// producer on its own client instance (one per process, as in Java). Off by default.
    ///
    /// ```
    /// use rmq_producer::{Producer, TraceConfig};
    /// let builder = Producer::builder("OrderProducers")
    ///     .name_server("127.0.0.1:9876")
    ///     .enable_trace(TraceConfig::default().with_topic("OrderTrace"));
    /// assert_eq!(builder.config().trace.as_ref().map(|t| t.topic.as_str()), Some("OrderTrace"));
    /// ```
    pub fn enable_trace(mut self, cfg: crate::TraceConfig) -> Self {
        self.cfg.trace = Some(cfg);
        self
    }

    /// Records the producer's client metrics through `meter` (feature `metrics`; names and
    /// attributes in [`crate::metrics`]). Without it they go to OpenTelemetry's global meter
    /// provider as installed when the producer starts. The library only records: the
    /// application builds the provider and its exporter.
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider as _;
    /// # let provider = opentelemetry::metrics::noop::NoopMeterProvider::new();
    /// let builder = rmq_producer::Producer::builder("OrderProducers")
    ///     .name_server("127.0.0.1:9876")
    ///     .meter(provider.meter("rmq"));
    /// assert!(builder.config().meter.is_some());
    /// ```
    #[cfg(feature = "metrics")]
    pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.cfg.meter = Some(meter);
        self
    }

    /// The configuration so far.
    #[must_use]
    pub fn config(&self) -> &ProducerConfig {
        &self.cfg
    }

    /// The validated configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first unusable setting.
    pub fn build_config(self) -> Result<ProducerConfig, ConfigError> {
        self.cfg.validate()?;
        Ok(self.cfg)
    }

    /// Validates the configuration and starts the producer (background heartbeat and route
    /// refresh tasks on the current tokio runtime). No network call is made until the first send.
    ///
    /// Producers of this process with the same client id and connection settings share one
    /// [`ClientInstance`](crate::ClientInstance) (connections, routes, heartbeat).
    ///
    /// # Errors
    /// A [`ConfigError`] when the configuration is unusable.
    pub async fn start(self) -> Result<Producer, ConfigError> {
        Producer::start(self.cfg).await
    }

    /// Starts a transactional producer with `listener` (Java's `TransactionMQProducer`): as
    /// [`start`](Self::start), and the client instance routes the broker's check-backs for this
    /// group to the listener. The group should be used by one transactional producer per
    /// process: a check goes to the group's first transactional producer on the instance.
    ///
    /// # Errors
    /// A [`ConfigError`] when the configuration is unusable.
    pub async fn start_transactional<L: TransactionListener>(
        self,
        listener: L,
    ) -> Result<TransactionProducer<L>, ConfigError> {
        let tx = self.cfg.transaction.clone();
        let producer = Producer::start(self.cfg).await?;
        Ok(TransactionProducer::start(producer, listener, tx))
    }
}
