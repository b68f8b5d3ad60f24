//! A `send_async` future dropped inside its launch (waiting for the connection's async permit)
//! leaves nothing in the producer's list of sends waiting for their answer: at shutdown's
//! deadline only the parked send is cancelled.
//!
//! Its own test binary: it observes shutdown's event through a thread-local subscriber, and
//! tracing caches each callsite's interest process-wide. In a binary whose other tests hit the
//! same callsite first, on their threads, the cached interest can miss this subscriber (seen
//! once in a fresh-clone CI run on a loaded machine: no event recorded).

mod callback_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callback_support::*;
use rmq_common::Message;
use rmq_producer::SendOptions;
use rmq_remoting::RemotingConfig;
use tokio::time::timeout;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Counts of `n` in the events that report sends cancelled while waiting for their answer.
#[derive(Clone, Default)]
struct CancelledWaits(Arc<Mutex<Vec<u64>>>);

struct N(Option<u64>, bool);

impl tracing::field::Visit for N {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "n" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.1 = format!("{value:?}").contains("waiting for their answer");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for CancelledWaits {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut n = N(None, false);
        event.record(&mut n);
        if let N(Some(n), true) = n {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(n);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_async_dropped_inside_its_launch_leaves_nothing_listed() {
    let c = cluster(1, "Launch").await;
    // One async request in flight per client: a second waits for the permit inside its launch,
    // listed for shutdown to cancel.
    let remoting = RemotingConfig {
        max_async_in_flight: 1,
        ..RemotingConfig::default()
    };
    let grace = Duration::from_millis(300);
    let p = start(builder(&c).remoting(remoting).shutdown_timeout(grace)).await;
    timeout(T, p.send(Message::new("Launch", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    let a = broker(&c, "broker-a");
    a.faults().set_black_hole(true);
    let options = SendOptions::new().timeout(Duration::from_secs(30));
    let parked = send_async(&p, "Launch", "parked", options.clone()).await;
    assert!(
        eventually(|| sends(a) == 2).await,
        "written, holds the permit"
    );
    for i in 0..5 {
        let launch = p.send_async(Message::new("Launch", format!("{i}")), options.clone());
        // Still waiting for the permit: dropped there.
        assert!(
            timeout(Duration::from_millis(100), launch).await.is_err(),
            "send {i} waits for the permit"
        );
    }
    assert_eq!(sends(a), 2, "the dropped sends wrote nothing");
    let s = p.stats();
    assert_eq!(
        (s.sends_in_flight, s.async_in_flight),
        (1, 1),
        "only the parked send left: {s:?}"
    );
    let seen = CancelledWaits::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    let t0 = Instant::now();
    {
        // Shutdown runs on this thread: its events come here.
        let _guard = tracing::subscriber::set_default(subscriber);
        timeout(T, p.shutdown()).await.expect("shutdown in time");
    }
    assert!(t0.elapsed() < grace + SLACK, "{:?}", t0.elapsed());
    assert_eq!(
        *seen.0.lock().expect("lock"),
        vec![1],
        "shutdown found only the parked send listed"
    );
    let err = timeout(Duration::ZERO, parked)
        .await
        .expect("resolved")
        .expect_err("cancelled");
    assert!(is_cancelled(err.kind(), true), "{err}");
    assert_idle(&p);
    c.shutdown().await;
}
