//! The reconnect backoff per address: after a failed connect, calls to that address fail at
//! once with `RemotingError::Backoff` until the window passes; the first call after it probes;
//! a successful connect resets the backoff. Real loopback, closed ports.

mod common;

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{echo, listener, request, send, within};
use futures_util::StreamExt;
use rmq_common::RequestCode;
use rmq_remoting::{
    BackoffConfig, RemotingClient, RemotingCodec, RemotingConfig, RemotingError, TlsConfig,
};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::Framed;

const CODE: RequestCode = RequestCode::GET_ROUTEINFO_BY_TOPIC;
const T: Duration = Duration::from_secs(5);
/// A call that fails at once takes far less than this, even on a loaded machine.
const FAST: Duration = Duration::from_millis(500);

fn client(initial: Duration) -> RemotingClient {
    RemotingClient::new(RemotingConfig {
        reconnect_backoff: BackoffConfig {
            initial,
            multiplier: 2.0,
            jitter: 0.0,
            max: Duration::from_secs(30),
        },
        ..RemotingConfig::default()
    })
}

/// An address nothing listens on (bound, then closed).
async fn dead() -> String {
    let (l, addr) = listener().await;
    drop(l);
    addr.to_string()
}

/// Echoes requests on every connection of `l`, counting the connections accepted.
fn serve(l: TcpListener) -> Arc<AtomicUsize> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut f = Framed::new(s, RemotingCodec::new());
                while let Some(Ok(req)) = f.next().await {
                    send(&mut f, echo(&req)).await;
                }
            });
        }
    });
    accepted
}

fn backoff_of(r: Result<impl std::fmt::Debug, RemotingError>) -> (Duration, RemotingError) {
    match r {
        Err(e @ RemotingError::Backoff { retry_in, .. }) => (retry_in, e),
        other => panic!("expected Backoff, got {other:?}"),
    }
}

fn is_refused(r: &Result<impl std::fmt::Debug, RemotingError>) -> bool {
    matches!(r, Err(RemotingError::Connect { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_the_window_fail_fast_and_the_first_call_after_it_probes() {
    let c = client(Duration::from_millis(1500));
    let addr = dead().await;
    let (good, good_accepts) = {
        let (l, a) = listener().await;
        (a.to_string(), serve(l))
    };
    // Many concurrent calls: one connect attempt, the others wait for it and then fail at once.
    let started = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..16 {
        let (c, addr) = (c.clone(), addr.clone());
        set.spawn(async move { c.invoke_sync(&addr, request(CODE, format!("{i}")), T).await });
    }
    let (mut refused, mut backed_off) = (0, 0);
    while let Some(r) = within(set.join_next()).await {
        let r = r.expect("task");
        if is_refused(&r) {
            refused += 1;
        } else {
            let (retry_in, e) = backoff_of(r);
            assert!(retry_in <= Duration::from_millis(1500), "{retry_in:?}");
            assert!(e.is_connection(), "a transport failure for the producer");
            assert!(!e.maybe_delivered() && !e.is_timeout());
            let last = e.source().expect("the last connect failure");
            assert!(last.to_string().starts_with("connect to"), "{last}");
            assert!(last.source().is_some(), "with its OS cause");
            backed_off += 1;
        }
    }
    assert_eq!(
        (refused, backed_off),
        (1, 15),
        "exactly one connect attempt"
    );
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());

    // Still in the window: fast, typed, and no attempt.
    for _ in 0..20 {
        let t0 = Instant::now();
        let r = c.invoke_sync(&addr, request(CODE, "w"), T).await;
        backoff_of(r);
        assert!(t0.elapsed() < FAST);
    }
    // Async and oneway calls too.
    backoff_of(c.invoke_async(&addr, request(CODE, "a"), T).await);
    backoff_of(c.invoke_oneway(&addr, request(CODE, "o"), T).await);
    // Another address of the same client is not affected.
    let ok = within(c.invoke_sync(&good, request(CODE, "ok"), T))
        .await
        .expect("healthy");
    assert_eq!(&ok.body[..], b"ok");
    assert_eq!(good_accepts.load(Ordering::SeqCst), 1);

    // After the window: one attempt (the probe), refused again, and a window twice as long.
    tokio::time::sleep_until(started + Duration::from_millis(1600)).await;
    let probe = c.invoke_sync(&addr, request(CODE, "probe"), T).await;
    assert!(is_refused(&probe), "{probe:?}");
    let (retry_in, _) = backoff_of(c.invoke_sync(&addr, request(CODE, "w"), T).await);
    assert!(
        retry_in > Duration::from_millis(2500) && retry_in <= Duration::from_secs(3),
        "{retry_in:?}"
    );
    within(c.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_comes_back_is_used_after_the_window_and_the_backoff_resets() {
    let initial = Duration::from_millis(800);
    let c = client(initial);
    let addr = dead().await;
    let t0 = Instant::now();
    assert!(is_refused(
        &c.invoke_sync(&addr, request(CODE, "1"), T).await
    ));

    // Back up (same port), but within the window the client does not try yet.
    let l = within(TcpListener::bind(&addr)).await.expect("rebind");
    let accepted = serve(l);
    backoff_of(c.invoke_sync(&addr, request(CODE, "2"), T).await);
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    // The first call after the window connects and succeeds.
    tokio::time::sleep_until(t0 + initial + Duration::from_millis(100)).await;
    let ok = within(c.invoke_sync(&addr, request(CODE, "3"), T))
        .await
        .expect("recovered");
    assert_eq!(&ok.body[..], b"3");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    within(c.invoke_sync(&addr, request(CODE, "4"), T))
        .await
        .expect("same connection");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    within(c.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_starts_the_backoff_over() {
    let initial = Duration::from_millis(600);
    let c = client(initial);
    let addr = dead().await;
    // Two failures: the window is now twice the initial one.
    let t0 = Instant::now();
    assert!(is_refused(
        &c.invoke_sync(&addr, request(CODE, "1"), T).await
    ));
    tokio::time::sleep_until(t0 + initial + Duration::from_millis(50)).await;
    let t1 = Instant::now();
    assert!(is_refused(
        &c.invoke_sync(&addr, request(CODE, "2"), T).await
    ));
    let (retry_in, _) = backoff_of(c.invoke_sync(&addr, request(CODE, "w"), T).await);
    assert!(retry_in > initial, "grown: {retry_in:?}");

    // Back up; after the window the call connects.
    let l = within(TcpListener::bind(&addr)).await.expect("rebind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (s, _) = within(l.accept()).await.expect("accept");
        let mut f = Framed::new(s, RemotingCodec::new());
        let req = within(f.next()).await.expect("frame").expect("decodes");
        send(&mut f, echo(&req)).await;
        let _ = stopped.await;
        // Dropping the listener and the connection: the address is dead again.
    });
    tokio::time::sleep_until(t1 + 2 * initial + Duration::from_millis(50)).await;
    within(c.invoke_sync(&addr, request(CODE, "3"), T))
        .await
        .expect("recovered");
    let _ = stop.send(());
    within(server).await.expect("server task");

    // Dead again: the next failure opens the initial window, not a longer one.
    let r = within(async {
        loop {
            match c.invoke_sync(&addr, request(CODE, "4"), T).await {
                Err(RemotingError::ConnectionClosed { .. }) => tokio::task::yield_now().await,
                other => break other,
            }
        }
    })
    .await;
    assert!(is_refused(&r), "{r:?}");
    let (retry_in, _) = backoff_of(c.invoke_sync(&addr, request(CODE, "5"), T).await);
    assert!(retry_in <= initial, "started over: {retry_in:?}");
    within(c.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handshake_backs_off_too_counted_by_the_peer() {
    // The peer accepts and drops every connection: each attempt is one accepted connection
    // and a failed TLS handshake.
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    let c = RemotingClient::new(RemotingConfig {
        tls: Some(TlsConfig::dangerous_insecure_no_verify()),
        reconnect_backoff: BackoffConfig {
            initial: Duration::from_secs(1),
            jitter: 0.0,
            ..BackoffConfig::default()
        },
        ..RemotingConfig::default()
    });
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..10 {
        let (c, addr) = (c.clone(), addr.clone());
        set.spawn(async move { c.invoke_sync(&addr, request(CODE, "x"), T).await });
    }
    let mut tls = 0;
    while let Some(r) = within(set.join_next()).await {
        match r.expect("task") {
            Err(RemotingError::Tls { .. }) => tls += 1,
            other => {
                let (_, e) = backoff_of(other);
                let RemotingError::Backoff { last, .. } = &e else {
                    unreachable!()
                };
                assert!(matches!(**last, RemotingError::Tls { .. }), "{last:?}");
                assert!(matches!(
                    e.source().and_then(|s| s.downcast_ref::<Arc<RemotingError>>()),
                    Some(l) if l.is_tls()
                ));
            }
        }
    }
    assert_eq!(tls, 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connect attempt");
    tokio::time::sleep_until(t0 + Duration::from_millis(1100)).await;
    let r = within(c.invoke_sync(&addr, request(CODE, "probe"), T)).await;
    assert!(matches!(r, Err(RemotingError::Tls { .. })), "{r:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "the probe");
    backoff_of(c.invoke_sync(&addr, request(CODE, "w"), T).await);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    within(c.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_backoff_connects_on_every_call() {
    let c = RemotingClient::new(RemotingConfig {
        reconnect_backoff: BackoffConfig::DISABLED,
        ..RemotingConfig::default()
    });
    let addr = dead().await;
    for _ in 0..3 {
        let r = c.invoke_sync(&addr, request(CODE, "x"), T).await;
        assert!(is_refused(&r), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_backs_off_even_when_calls_end_before_the_connect_timeout() {
    // The peer accepts and never answers the TLS handshake: a connect that never finishes.
    // Each call's deadline (1.2 s) ends before the connect timeout (3 s).
    let (l, addr) = listener().await;
    let addr = addr.to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    let c = RemotingClient::new(RemotingConfig {
        tls: Some(TlsConfig::dangerous_insecure_no_verify()),
        reconnect_backoff: BackoffConfig {
            initial: Duration::from_secs(5),
            jitter: 0.0,
            ..BackoffConfig::default()
        },
        ..RemotingConfig::default()
    });
    let call = Duration::from_millis(1200);
    let first = within(c.invoke_sync(&addr, request(CODE, "x"), call)).await;
    assert!(
        first.as_ref().is_err_and(RemotingError::is_timeout),
        "{first:?}"
    );
    let t0 = Instant::now();
    let second = within(c.invoke_sync(&addr, request(CODE, "y"), call)).await;
    let (_, e) = backoff_of(second);
    assert!(t0.elapsed() < FAST, "failed at once: {e}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "no second connect inside the window"
    );
    within(c.shutdown()).await;
}
