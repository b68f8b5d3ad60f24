//! The tracing a send leaves, through a captured subscriber (a custom layer recording span
//! names, fields and parents, and events with their levels): one `send` span per send with
//! the fields an operator filters on, one child `attempt` span per attempt, per-message detail
//! at debug and connection events at info.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rmq_common::{Message, ResponseCode};
use rmq_producer::{Producer, SendOptions};
use rmq_testkit::{MockCluster, Reply};
use tokio::time::timeout;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const T: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
struct SpanRec {
    id: u64,
    name: &'static str,
    level: Level,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct EventRec {
    level: Level,
    span: Option<u64>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SpanRec>,
    events: Vec<EventRec>,
}

/// The layer: everything it sees, in order.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

impl Capture {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.id().into_u64());
        self.seen().spans.push(SpanRec {
            id: id.into_u64(),
            name: attrs.metadata().name(),
            level: *attrs.metadata().level(),
            parent,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut seen = self.seen();
        // Ids are reused once a span closes: the newest span with this id.
        if let Some(s) = seen.spans.iter_mut().rev().find(|s| s.id == id.into_u64()) {
            values.record(&mut Fields(&mut s.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = ctx.event_span(event).map(|s| s.id().into_u64());
        self.seen().events.push(EventRec {
            level: *event.metadata().level(),
            span,
            fields,
        });
    }
}

fn field<'a>(s: &'a SpanRec, name: &str) -> &'a str {
    s.fields
        .get(name)
        .map_or_else(|| panic!("{} has no {name}: {s:?}", s.name), String::as_str)
}

/// A capture of everything at debug and above, installed as this thread's default subscriber
/// while the guard lives.
fn capture_debug() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
    );
    let guard = tracing::subscriber::set_default(subscriber);
    (capture, guard)
}

async fn cluster(brokers: usize, topic: &str) -> MockCluster {
    let c = timeout(T, MockCluster::start(brokers))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 1);
    c
}

// A current-thread runtime: every task runs on this thread, under the default subscriber.
#[tokio::test]
async fn a_send_is_one_span_and_its_attempts_are_children() {
    let (capture, _default) = capture_debug();

    let c = cluster(2, "SpanTopic").await;
    let p = timeout(
        T,
        Producer::builder("SpanGroup")
            .name_server(c.namesrv_addr())
            .busy_backoff(Duration::from_millis(10))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    // Warm both brokers' connections and the route (round-robin: two sends each), then make
    // broker-a busy once: the next send that picks it retries on broker-b.
    let mut brokers = Vec::new();
    for i in 0..4 {
        let r = timeout(T, p.send(Message::new("SpanTopic", format!("warm{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        brokers.push(r.queue.broker_name);
    }
    assert!(brokers.iter().any(|b| b == "broker-a") && brokers.iter().any(|b| b == "broker-b"));
    c.broker("broker-a")
        .expect("broker")
        .faults()
        .script_codes([ResponseCode::SYSTEM_BUSY]);
    // Round-robin: one of the next two sends goes to broker-a first.
    let mut retried = None;
    for i in 0..2 {
        let r = timeout(T, p.send(Message::new("SpanTopic", format!("busy{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        if c.broker("broker-a")
            .expect("broker")
            .faults()
            .scripted_left()
            == 0
            && retried.is_none()
        {
            retried = Some(r);
        }
    }
    let retried = retried.expect("a send met the busy broker");
    let f = p
        .send_async(Message::new("SpanTopic", "async"), SendOptions::new())
        .await
        .expect("admitted");
    let async_result = timeout(T, f).await.expect("in time").expect("sent");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;

    let seen = capture.seen();
    let sends: Vec<&SpanRec> = seen.spans.iter().filter(|s| s.name == "send").collect();
    assert_eq!(sends.len(), 4 + 2 + 1, "one span per send");
    for s in &sends {
        assert_eq!(s.level, Level::INFO);
        assert_eq!(field(s, "topic"), "SpanTopic");
        assert_eq!(field(s, "outcome"), "SEND_OK");
        assert!(field(s, "latency_ms").parse::<u64>().is_ok(), "{s:?}");
        assert!(field(s, "queue").parse::<i32>().is_ok(), "{s:?}");
    }
    let attempts_of = |send: &SpanRec| -> Vec<&SpanRec> {
        seen.spans
            .iter()
            .filter(|a| a.name == "attempt" && a.parent == Some(send.id))
            .collect()
    };
    // The retried send: two attempts, a (busy) then b, each a child of the send span.
    let span = sends
        .iter()
        .find(|s| field(s, "msg_id") == retried.msg_id)
        .expect("the retried send's span, by message id");
    assert_eq!(field(span, "attempts"), "2");
    assert_eq!(field(span, "broker"), "broker-b");
    let attempts = attempts_of(span);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0].level, Level::DEBUG);
    assert_eq!(
        (
            field(attempts[0], "attempt"),
            field(attempts[0], "broker"),
            field(attempts[0], "outcome")
        ),
        ("1", "broker-a", "broker")
    );
    assert_eq!(
        (
            field(attempts[1], "attempt"),
            field(attempts[1], "broker"),
            field(attempts[1], "outcome")
        ),
        ("2", "broker-b", "SEND_OK")
    );
    assert!(field(attempts[1], "latency_ms").parse::<u64>().is_ok());
    // The async send: its span, with one attempt as a child, and its message id.
    let span = sends
        .iter()
        .find(|s| field(s, "msg_id") == async_result.msg_id)
        .expect("the async send's span");
    assert_eq!(field(span, "attempts"), "1");
    assert_eq!(attempts_of(span).len(), 1);
    // Per-message detail at debug, in the send's span.
    let sent: Vec<&EventRec> = seen
        .events
        .iter()
        .filter(|e| e.fields.get("message").is_some_and(|m| m == "sent"))
        .collect();
    assert_eq!(sent.len(), sends.len());
    assert!(sent.iter().all(|e| e.level == Level::DEBUG));
    assert!(sent
        .iter()
        .all(|e| sends.iter().any(|s| Some(s.id) == e.span)));
    // Connection events at info: the name server and both brokers connected.
    let connected = seen
        .events
        .iter()
        .filter(|e| e.fields.get("message").is_some_and(|m| m == "connected"))
        .inspect(|e| assert_eq!(e.level, Level::INFO))
        .count();
    assert!(connected >= 3, "{connected}");
    let closed = seen
        .events
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m == "connection closed")
        })
        .inspect(|e| assert_eq!(e.level, Level::INFO))
        .count();
    assert!(closed >= 1, "{closed}");
}

// The review of issue 13's ninth pass: a send that waited for back-pressure room made its first
// attempt with a deadline counted from the send's start, already past after a long wait, so
// that attempt timed out at once and a retry did the work. Seen here as the attempts it makes.
#[tokio::test]
async fn a_send_that_waited_for_room_makes_its_first_attempt_with_its_whole_cap() {
    let (capture, _default) = capture_debug();

    let c = cluster(1, "WaitTopic").await;
    // One room; an attempt with another after it is capped at 800 ms.
    let p = timeout(
        T,
        Producer::builder("WaitGroup")
            .name_server(c.namesrv_addr())
            .async_backpressure(1, 1 << 20)
            .send_timeout(Duration::from_secs(10))
            .attempt_timeout(Duration::from_millis(800))
            .retries_async(1)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("WaitTopic", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    // `first` holds the room ~1.2 s: its first attempt is swallowed (800 ms), its second
    // answered 400 ms late. `waited` waits for the room all that time.
    let faults = c.broker("broker-a").expect("broker").faults();
    faults.script([Reply::NoReply]);
    faults.set_delay(Duration::from_millis(400));
    let first = p
        .send_async(Message::new("WaitTopic", "first"), SendOptions::new())
        .await
        .expect("admitted: the one room");
    let waited = {
        let p = p.clone();
        tokio::spawn(async move {
            let f = p
                .send_async(Message::new("WaitTopic", "waited"), SendOptions::new())
                .await
                .expect("admitted after the wait");
            f.await
        })
    };
    timeout(T, first)
        .await
        .expect("in time")
        .expect("sent by its second attempt");
    timeout(T, waited)
        .await
        .expect("in time")
        .expect("task")
        .expect("sent");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;

    let seen = capture.seen();
    let sends: Vec<&SpanRec> = seen.spans.iter().filter(|s| s.name == "send").collect();
    assert_eq!(sends.len(), 3, "warm, first, waited");
    let attempts_of = |send: &SpanRec| -> usize {
        seen.spans
            .iter()
            .filter(|a| a.name == "attempt" && a.parent == Some(send.id))
            .count()
    };
    assert_eq!(attempts_of(sends[1]), 2, "first: swallowed, then answered");
    // Its 800 ms count from the end of the wait: the answer, 400 ms late, is in time.
    assert_eq!(attempts_of(sends[2]), 1, "waited: one attempt");
    assert_eq!(field(sends[2], "outcome"), "SEND_OK");
}
