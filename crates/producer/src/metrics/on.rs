//! The recorder with the `metrics` feature: OpenTelemetry instruments made once per producer.

use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue, Value};

use super::{error_label, Wait};
use crate::error::ErrorKind;
use crate::producer::Inner;

const TOPIC: &str = "topic";
const CLIENT_ID: &str = "client_id";
const INVOCATION_STATUS: &str = "invocation_status";
const ERROR_KIND: &str = "error_kind";
const BROKER: &str = "broker";
const GROUP: &str = "producer_group";

/// Topics whose `topic` attribute is kept (a producer sends to a handful; past this many, a
/// new topic's attribute is made per send).
const MAX_CACHED_TOPICS: usize = 1024;

thread_local! {
    /// The `topic` attribute made or found last on this thread (it depends on the topic only,
    /// not on the producer): the sends of one topic take it without hashing the name into the
    /// map and locking a shard.
    static LAST_TOPIC: RefCell<Option<KeyValue>> = const { RefCell::new(None) };
}

/// The instruments the send path records into.
#[derive(Debug)]
struct Instruments {
    client_id: StringValue,
    /// The `topic` attribute by topic, made once: no allocation per send (whatever the meter
    /// provider, OpenTelemetry's no-op one included).
    topics: DashMap<String, KeyValue>,
    cost: Histogram<f64>,
    sends: Counter<u64>,
    retries: Counter<u64>,
    isolations: Counter<u64>,
    waits: Counter<u64>,
}

/// A producer's recorder: off (no instruments, as in unit tests of the send loop) or on.
#[derive(Debug, Clone)]
pub(crate) struct Metrics(Option<Arc<Instruments>>);

impl Metrics {
    /// Recording nothing (until [`Metrics::new`] replaces it when the producer starts).
    pub(crate) const fn off() -> Self {
        Self(None)
    }

    /// Instruments of `meter` for the producer of `client_id`.
    pub(crate) fn new(meter: &Meter, client_id: &str) -> Self {
        let cost = meter
            .f64_histogram(super::SEND_COST_TIME)
            // No unit: Prometheus then names it `rocketmq_send_cost_time_*`, as Java's.
            .with_description(
                "The time of a send in milliseconds, from the call to its result or error",
            )
            .with_boundaries(super::SEND_COST_TIME_BUCKETS.to_vec())
            .build();
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        Self(Some(Arc::new(Instruments {
            // Reference-counted: cloned into the attributes of every send without a copy.
            client_id: StringValue::from(Arc::<str>::from(client_id)),
            topics: DashMap::new(),
            cost,
            sends: counter(super::SENDS, "Sends that ended, by outcome and error kind"),
            retries: counter(super::SEND_RETRIES, "Attempts after a send's first"),
            isolations: counter(
                super::BROKER_ISOLATIONS,
                "Attempts that isolated their broker in the latency fault table",
            ),
            waits: counter(
                super::BACKPRESSURE_WAITS,
                "Asynchronous sends that found the back-pressure bounds reached",
            ),
        })))
    }

    /// Whether anything is recorded (callers skip gathering what would be recorded when not).
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn client_id(i: &Instruments) -> KeyValue {
        KeyValue::new(CLIENT_ID, Value::String(i.client_id.clone()))
    }

    /// The `topic` attribute of `topic`: cached, cloned without a copy of the name.
    fn topic(i: &Instruments, topic: &str) -> KeyValue {
        // `try_with`: a send may settle while its thread's locals are being destroyed (a
        // future dropped in a thread-local destructor); the map serves it then.
        let last = LAST_TOPIC
            .try_with(|last| {
                last.borrow()
                    .as_ref()
                    .filter(|kv| matches!(&kv.value, Value::String(s) if s.as_str() == topic))
                    .cloned()
            })
            .ok()
            .flatten();
        if let Some(kv) = last {
            return kv;
        }
        let kv = match i.topics.get(topic) {
            Some(kv) => kv.clone(),
            None => {
                let kv = KeyValue::new(
                    TOPIC,
                    Value::String(StringValue::from(Arc::<str>::from(topic))),
                );
                if i.topics.len() < MAX_CACHED_TOPICS {
                    i.topics.insert(topic.to_owned(), kv.clone());
                }
                kv
            }
        };
        let _ = LAST_TOPIC.try_with(|last| *last.borrow_mut() = Some(kv.clone()));
        kv
    }

    /// A send of `topic` ended after `cost`, with `error` when it failed.
    pub(crate) fn send_done(&self, topic: &str, cost: Duration, error: Option<&ErrorKind>) {
        let Some(i) = &self.0 else { return };
        let status = if error.is_some() {
            "failure"
        } else {
            "success"
        };
        let attrs = [
            Self::topic(i, topic),
            Self::client_id(i),
            KeyValue::new(INVOCATION_STATUS, status),
        ];
        i.cost.record(cost.as_secs_f64() * 1000.0, &attrs);
        match error {
            None => i.sends.add(1, &attrs),
            Some(e) => {
                let [topic, client_id, status] = attrs;
                let attrs = [
                    topic,
                    client_id,
                    status,
                    KeyValue::new(ERROR_KIND, error_label(e)),
                ];
                i.sends.add(1, &attrs);
            }
        }
    }

    /// A send of `topic` makes another attempt.
    pub(crate) fn retry(&self, topic: &str) {
        let Some(i) = &self.0 else { return };
        i.retries
            .add(1, &[Self::topic(i, topic), Self::client_id(i)]);
    }

    /// An attempt isolated `broker` in the fault table.
    pub(crate) fn isolated(&self, broker: &str) {
        let Some(i) = &self.0 else { return };
        i.isolations.add(
            1,
            &[KeyValue::new(BROKER, broker.to_owned()), Self::client_id(i)],
        );
    }

    /// An asynchronous send found no room at once, and its wait ended so.
    pub(crate) fn backpressure(&self, how: Wait) {
        let Some(i) = &self.0 else { return };
        i.waits.add(
            1,
            &[Self::client_id(i), KeyValue::new("result", how.label())],
        );
    }
}

/// Registers the instruments observed at collection: the producer's in-flight gauges, and the
/// connection and route counts of its client instance. The callbacks hold the producer weakly:
/// once it is gone they report nothing.
pub(crate) fn observe(meter: &Meter, inner: &Arc<Inner>) {
    let client_id = StringValue::from(Arc::<str>::from(inner.instance().client_id()));
    let group = StringValue::from(Arc::<str>::from(inner.cfg().group.as_str()));
    let producer_attrs: Arc<[KeyValue]> = Arc::new([
        KeyValue::new(CLIENT_ID, Value::String(client_id.clone())),
        KeyValue::new(GROUP, Value::String(group)),
    ]);
    let instance_attrs: Arc<[KeyValue]> =
        Arc::new([KeyValue::new(CLIENT_ID, Value::String(client_id))]);
    let gauge = |name: &'static str,
                 unit: Option<&'static str>,
                 description: &'static str,
                 read: fn(&Inner) -> u64| {
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let attrs = Arc::clone(&producer_attrs);
        let mut b = meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |obs| {
                if let Some(inner) = weak.upgrade() {
                    obs.observe(read(&inner), &attrs);
                }
            });
        if let Some(unit) = unit {
            b = b.with_unit(unit);
        }
        // The provider keeps the callback; the handle is not needed.
        let _ = b.build();
    };
    fn n(v: usize) -> u64 {
        u64::try_from(v).unwrap_or(u64::MAX)
    }
    gauge(
        super::SENDS_IN_FLIGHT,
        None,
        "Sends of any kind not yet resolved",
        |i| n(i.stats().sends_in_flight),
    );
    gauge(
        super::ASYNC_IN_FLIGHT,
        None,
        "Asynchronous sends holding back-pressure room",
        |i| n(i.stats().async_in_flight),
    );
    gauge(
        super::ASYNC_IN_FLIGHT_BYTES,
        Some("By"),
        "Body bytes of the asynchronous sends holding back-pressure room",
        |i| n(i.stats().async_bytes_in_flight),
    );
    let weak = Arc::downgrade(inner);
    let attrs = Arc::clone(&instance_attrs);
    let _ = meter
        .u64_observable_gauge(super::CONNECTIONS_OPEN)
        .with_description("Connections of the client instance open now")
        .with_callback(move |obs| {
            if let Some(inner) = weak.upgrade() {
                obs.observe(inner.instance().remoting.connection_stats().open, &attrs);
            }
        })
        .build();
    let weak = Arc::downgrade(inner);
    let id = instance_attrs[0].clone();
    let _ = meter
        .u64_observable_counter(super::CONNECTS)
        .with_description(
            "Connects of the client instance; reconnect=true: to an address connected before",
        )
        .with_callback(move |obs| {
            if let Some(inner) = weak.upgrade() {
                let s = inner.instance().remoting.connection_stats();
                let first = s.connects.saturating_sub(s.reconnects);
                obs.observe(first, &[id.clone(), KeyValue::new("reconnect", false)]);
                obs.observe(
                    s.reconnects,
                    &[id.clone(), KeyValue::new("reconnect", true)],
                );
            }
        })
        .build();
    let weak = Arc::downgrade(inner);
    let attrs = Arc::clone(&instance_attrs);
    let _ = meter
        .u64_observable_counter(super::CONNECT_FAILURES)
        .with_description("Failed connects of the client instance")
        .with_callback(move |obs| {
            if let Some(inner) = weak.upgrade() {
                obs.observe(
                    inner
                        .instance()
                        .remoting
                        .connection_stats()
                        .connect_failures,
                    &attrs,
                );
            }
        })
        .build();
    let weak = Arc::downgrade(inner);
    let id = instance_attrs[0].clone();
    let _ = meter
        .u64_observable_counter(super::ROUTE_REFRESHES)
        .with_description("Route fetches of the client instance from the name servers")
        .with_callback(move |obs| {
            if let Some(inner) = weak.upgrade() {
                let s = inner.instance().routes.stats();
                let kv = |kind: &'static str, result: &'static str| {
                    [
                        id.clone(),
                        KeyValue::new("kind", kind),
                        KeyValue::new("result", result),
                    ]
                };
                let unchanged = s
                    .refreshes
                    .saturating_sub(s.refresh_failures)
                    .saturating_sub(s.refresh_changes);
                obs.observe(s.loads, &[id.clone(), KeyValue::new("kind", "load")]);
                obs.observe(unchanged, &kv("refresh", "ok"));
                obs.observe(s.refresh_changes, &kv("refresh", "changed"));
                obs.observe(s.refresh_failures, &kv("refresh", "failed"));
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;

    use super::*;

    fn instruments(m: &Metrics) -> &Instruments {
        m.0.as_deref().expect("on")
    }

    #[test]
    fn the_topic_attribute_is_made_once_per_topic_and_bounded() {
        // OpenTelemetry's no-op provider: what a producer records through with none installed.
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("rmq");
        let m = Metrics::new(&meter, "127.0.0.1@1");
        let i = instruments(&m);
        m.send_done("T", Duration::from_millis(3), None);
        m.send_done("T", Duration::from_millis(4), Some(&ErrorKind::NotRunning));
        m.retry("T");
        assert_eq!(i.topics.len(), 1);
        let a = Metrics::topic(i, "T");
        assert_eq!(a, KeyValue::new(TOPIC, "T"));
        // The cached value is shared, not copied: the same string.
        let (Value::String(x), Value::String(y)) = (&a.value, &Metrics::topic(i, "T").value) else {
            panic!("string attributes");
        };
        assert!(std::ptr::eq(x.as_str(), y.as_str()));
        for n in 0..MAX_CACHED_TOPICS + 5 {
            m.send_done(&format!("T{n}"), Duration::ZERO, None);
        }
        assert_eq!(i.topics.len(), MAX_CACHED_TOPICS);
        assert_eq!(Metrics::topic(i, "past the bound").key.as_str(), TOPIC);
    }

    #[test]
    fn the_last_topic_on_a_thread_is_reused_only_for_that_topic() {
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("rmq");
        let (m1, m2) = (Metrics::new(&meter, "a@1"), Metrics::new(&meter, "b@2"));
        for (m, topic) in [
            (&m1, "A"),
            (&m1, "A"),
            (&m2, "B"),
            (&m1, "A"),
            (&m2, "A"),
            (&m2, "B"),
        ] {
            assert_eq!(
                Metrics::topic(instruments(m), topic),
                KeyValue::new(TOPIC, topic)
            );
        }
        // The second producer's "A" came from the thread's last topic (the first producer's).
        assert_eq!(instruments(&m2).topics.len(), 1);
    }
}
