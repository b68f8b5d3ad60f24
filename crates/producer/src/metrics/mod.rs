//! Client metrics through the OpenTelemetry metrics API (cargo feature `metrics`).
//!
//! The producer only records: the application installs a meter provider and its exporter
//! (Prometheus, OTLP, stdout) and hands the producer an `opentelemetry::metrics::Meter` with
//! `ProducerBuilder::meter`; without one, the producer records through OpenTelemetry's global
//! meter provider (scope `rmq`), taken when it starts — so a global provider must be installed
//! before `start`; with none installed, nothing is recorded (OpenTelemetry's no-op provider).
//! A producer's gauges hold it weakly: once it is dropped they report nothing (the provider
//! keeps their callbacks, as OpenTelemetry has no unregistration).
//!
//! Names follow RocketMQ 5.x clients (`ClientMeterManager`, `MetricName`, `MetricLabels`) where
//! one exists; the others carry the same `rocketmq_` prefix and the `client_id` attribute:
//!
//! | instrument | kind | unit | attributes |
//! |---|---|---|---|
//! | [`SEND_COST_TIME`] | histogram (Java's buckets 1, 5, 10, 20, 50, 200, 500 ms) | milliseconds (no unit attached, as Java's) | `topic`, `client_id`, `invocation_status` |
//! | [`SENDS`] | counter | message sends | `topic`, `client_id`, `invocation_status`, `error_kind` (failures) |
//! | [`SEND_RETRIES`] | counter | attempts after the first | `topic`, `client_id` |
//! | [`BROKER_ISOLATIONS`] | counter | attempts that isolated their broker (fault table) | `broker`, `client_id` |
//! | [`BACKPRESSURE_WAITS`] | counter | async sends that found no room at once | `client_id`, `result` (`admitted`, `timed_out`, `refused`) |
//! | [`SENDS_IN_FLIGHT`] | gauge | sends not resolved | `client_id`, `producer_group` |
//! | [`ASYNC_IN_FLIGHT`] | gauge | async sends holding back-pressure room | `client_id`, `producer_group` |
//! | [`ASYNC_IN_FLIGHT_BYTES`] | gauge | By | `client_id`, `producer_group` |
//! | [`CONNECTIONS_OPEN`] | gauge | connections of the client instance | `client_id` |
//! | [`CONNECTS`] | counter | connects, with `reconnect` = `true` for an address connected before | `client_id`, `reconnect` |
//! | [`CONNECT_FAILURES`] | counter | failed connects | `client_id` |
//! | [`ROUTE_REFRESHES`] | counter | route fetches from the name servers | `client_id`, `kind` (`load`, `refresh`), `result` (`ok`, `changed`, `failed`; refreshes) |
//!
//! A Prometheus exporter appends the unit, when there is one, and `_total` to these names
//! (`rocketmq_send_cost_time_bucket` as Java's, `rocketmq_producer_sends_total`,
//! `rocketmq_producer_async_in_flight_size_bytes`).
//!
//! `invocation_status` is `success` when the send returned a result (any [`SendStatus`]) and
//! `failure` when it returned an error, as in Java. A send is every call (a batch counts once).
//! The gauges and the connection and route counters are observed when the exporter collects;
//! the others are recorded as sends end. With the feature off none of this is compiled.
//!
//! [`SendStatus`]: crate::SendStatus

#[cfg(feature = "metrics")]
mod on;
#[cfg(feature = "metrics")]
pub(crate) use on::{observe, Metrics};

/// The meter a producer of `cfg` records through: its own, else the global provider's.
#[cfg(feature = "metrics")]
pub(crate) fn meter_of(cfg: &crate::ProducerConfig) -> opentelemetry::metrics::Meter {
    match &cfg.meter {
        Some(meter) => meter.clone(),
        None => opentelemetry::global::meter_with_scope(
            opentelemetry::InstrumentationScope::builder("rmq")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        ),
    }
}

#[cfg(not(feature = "metrics"))]
mod off;
#[cfg(not(feature = "metrics"))]
pub(crate) use off::Metrics;

/// `rocketmq_send_cost_time`: the time of a send, from the call to its result or error, in ms
/// (Java `HistogramEnum.SEND_COST_TIME`).
pub const SEND_COST_TIME: &str = "rocketmq_send_cost_time";
/// `rocketmq_send_cost_time`'s bucket boundaries in ms (Java `HistogramEnum.SEND_COST_TIME`).
pub const SEND_COST_TIME_BUCKETS: [f64; 7] = [1.0, 5.0, 10.0, 20.0, 50.0, 200.0, 500.0];
/// Sends that ended, by outcome and error kind.
pub const SENDS: &str = "rocketmq_producer_sends";
/// Attempts after a send's first (retries).
pub const SEND_RETRIES: &str = "rocketmq_producer_send_retries";
/// Attempts whose outcome isolated their broker in the latency fault table.
pub const BROKER_ISOLATIONS: &str = "rocketmq_producer_broker_isolations";
/// Asynchronous sends that found the back-pressure bounds reached.
pub const BACKPRESSURE_WAITS: &str = "rocketmq_producer_backpressure_waits";
/// Sends of any kind not yet resolved.
pub const SENDS_IN_FLIGHT: &str = "rocketmq_producer_sends_in_flight";
/// Asynchronous sends holding back-pressure room.
pub const ASYNC_IN_FLIGHT: &str = "rocketmq_producer_async_in_flight";
/// Body bytes of the asynchronous sends holding back-pressure room.
pub const ASYNC_IN_FLIGHT_BYTES: &str = "rocketmq_producer_async_in_flight_size";
/// Connections of the client instance open now.
pub const CONNECTIONS_OPEN: &str = "rocketmq_client_connections_open";
/// Connects of the client instance (attribute `reconnect`).
pub const CONNECTS: &str = "rocketmq_client_connects";
/// Failed connects of the client instance.
pub const CONNECT_FAILURES: &str = "rocketmq_client_connect_failures";
/// Route fetches of the client instance from the name servers.
pub const ROUTE_REFRESHES: &str = "rocketmq_client_route_refreshes";

/// Whether a producer records metrics: as its configuration says (a meter given, else the
/// global provider), or not at all — the explicit off switch of internal producers (the trace's),
/// since `meter: None` means the global provider, not "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// Through the configured meter, else the global provider.
    AsConfigured,
    /// Nothing recorded, no instrument registered.
    Off,
}

/// How an asynchronous send that found no room ended its wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Room freed before the deadline.
    Admitted,
    /// The deadline passed first.
    TimedOut,
    /// `try_send_async`: refused at once.
    Refused,
}

impl Wait {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Admitted => "admitted",
            Self::TimedOut => "timed_out",
            Self::Refused => "refused",
        }
    }
}

/// The `error_kind` attribute of a failed send: the [`ErrorKind`](crate::ErrorKind) variant, in
/// snake case.
pub(crate) fn error_label(e: &crate::ErrorKind) -> &'static str {
    use crate::ErrorKind as K;
    match e {
        K::InvalidMessage(_) => "invalid_message",
        K::InvalidBatch(_) => "invalid_batch",
        K::NotRunning => "not_running",
        K::NoRoute { .. } => "no_route",
        K::NameServer(_) => "name_server",
        K::QueueUnavailable { .. } => "queue_unavailable",
        K::BrokerNotFound { .. } => "broker_not_found",
        K::Broker { .. } => "broker",
        K::Transport { .. } => "transport",
        K::InvalidResponse { .. } => "invalid_response",
        K::Timeout { .. } => "timeout",
        K::RetriesExhausted { .. } => "retries_exhausted",
        K::Overloaded { .. } => "overloaded",
        K::Cancelled { .. } => "cancelled",
        K::ReplyTimeout { .. } => "reply_timeout",
        K::InvalidReply { .. } => "invalid_reply",
        K::CannotReply(_) => "cannot_reply",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}
