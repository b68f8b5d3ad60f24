//! RemotingClient oneway calls resolve once queued (as Java's `invokeOneway`), their in-flight
//! permit bounds what is queued but unwritten, and shutdown writes what is queued before the
//! socket closes, without waiting forever on a peer that reads nothing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{accept, echo, listener, next, request, send, within};
use futures_util::StreamExt;
use rmq_common::RequestCode;
use rmq_remoting::{OverloadPolicy, RemotingClient, RemotingConfig, RemotingError};
use tokio::time::Instant;

const CODE: RequestCode = RequestCode::GET_ROUTEINFO_BY_TOPIC;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_oneway_call_resolves_once_queued_and_holds_its_permit_until_written() {
    // The server reads nothing until told, so frames queue up behind large ones.
    let (l, addr) = listener().await;
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        within(read_rx).await.expect("told to read");
        let mut seen = Vec::new();
        loop {
            let req = next(&mut f).await;
            if &req.body[..] == b"marker" {
                send(&mut f, echo(&req)).await;
                return seen;
            }
            seen.push((req.body.len(), req.is_oneway()));
        }
    });
    let c = RemotingClient::new(RemotingConfig {
        max_oneway_in_flight: 1,
        overload: OverloadPolicy::Fail,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    let body = Bytes::from(vec![5u8; 12 * 1024 * 1024]);
    let mut fillers = Vec::new();
    for _ in 0..3 {
        // 36 MiB: more than loopback socket buffers hold, so the writer is stuck in them.
        let f = within(c.invoke_async(&addr, request(CODE, body.clone()), Duration::from_secs(60)))
            .await
            .expect("accepted");
        fillers.push(f);
    }
    let t = Duration::from_secs(60);
    tokio::time::timeout(
        Duration::from_secs(5),
        c.invoke_oneway(&addr, request(CODE, "queued"), t),
    )
    .await
    .expect("resolves once queued, not once written")
    .expect("queued");
    // Its permit is held while it waits behind the fillers.
    let err = within(c.invoke_oneway(&addr, request(CODE, "refused"), t))
        .await
        .expect_err("the only oneway permit is taken");
    assert!(matches!(err, RemotingError::Overloaded { .. }), "{err:?}");
    assert!(!err.maybe_delivered());

    read_tx.send(()).expect("server waits");
    // Once written, the permit is free again.
    let deadline = Instant::now() + common::LIMIT;
    loop {
        match c.invoke_oneway(&addr, request(CODE, "after"), t).await {
            Ok(()) => break,
            Err(RemotingError::Overloaded { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the permit never came back: {e:?}"),
        }
    }
    let marker = c.invoke_sync(&addr, request(CODE, "marker"), Duration::from_secs(15));
    within(marker).await.expect("the marker is answered");
    let seen = within(server).await.expect("server");
    let oneway: Vec<usize> = seen.iter().filter(|s| s.1).map(|s| s.0).collect();
    assert_eq!(
        oneway,
        vec![b"queued".len(), b"after".len()],
        "written in order, the refused one not at all: {seen:?}"
    );
    drop(fillers);
    within(c.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_every_queued_oneway_frame_first() {
    const N: usize = 20_000;
    let (l, addr) = listener().await;
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        // Reads nothing until the client has shut down: the frames wait in the client's queue.
        within(read_rx).await.expect("told to read");
        let mut n = 0usize;
        // Until the client closes the socket (bounded by N + 1 frames).
        while let Some(frame) = within(f.next()).await {
            let req = frame.expect("decodes");
            assert!(req.is_oneway(), "{req:?}");
            n += 1;
            assert!(n <= N, "more frames than sent");
        }
        n
    });
    let c = RemotingClient::new(RemotingConfig::default());
    let addr = addr.to_string();
    // 1 KiB each, 20 MiB in all: more than loopback socket buffers hold.
    let body = Bytes::from(vec![1u8; 1024]);
    let t = Duration::from_secs(10);
    for _ in 0..N {
        within(c.invoke_oneway(&addr, request(CODE, body.clone()), t))
            .await
            .expect("queued");
    }
    let shutdown = tokio::spawn({
        let c = c.clone();
        async move { c.shutdown().await }
    });
    // Let shutdown close the connection before the peer reads anything.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the writer");
    read_tx.send(()).expect("server waits");
    within(shutdown).await.expect("shutdown");
    assert_eq!(
        within(server).await.expect("server"),
        N,
        "every frame queued is written"
    );
    let err = within(c.invoke_oneway(&addr, request(CODE, "late"), t))
        .await
        .expect_err("shut down");
    assert!(matches!(err, RemotingError::Shutdown), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_peer_that_reads_nothing() {
    let (l, addr) = listener().await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (s, _) = within(l.accept()).await.expect("accept");
        let _ = within(done_rx).await; // holds the socket open, never reads
        drop(s);
    });
    let c = RemotingClient::new(RemotingConfig::default());
    let addr = addr.to_string();
    let body = Bytes::from(vec![3u8; 4 * 1024 * 1024]);
    for _ in 0..8 {
        within(c.invoke_oneway(&addr, request(CODE, body.clone()), Duration::from_secs(10)))
            .await
            .expect("queued");
    }
    let started = Instant::now();
    within(c.shutdown()).await;
    let took = started.elapsed();
    // The writer gives up at the shutdown's bound (4 s), well before the 30 s write timeout.
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    assert!(took >= Duration::from_secs(3), "gave up early: {took:?}");
    done_tx.send(()).expect("server waits");
    within(server).await.expect("server");
}

#[tokio::test]
async fn a_caller_whose_oneway_calls_never_wait_still_lets_the_writer_run() {
    // One thread: the writer runs only when the caller yields. A caller whose calls all
    // resolve at once must yield now and then (its cooperative budget), or it would hold
    // every permit until the in-flight bound refused it.
    const N: usize = 10_000;
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut f = accept(&l).await;
        let mut n = 0usize;
        while n < N {
            let req = next(&mut f).await;
            assert!(req.is_oneway(), "{req:?}");
            n += 1;
        }
        n
    });
    let c = RemotingClient::new(RemotingConfig {
        max_oneway_in_flight: 1000,
        overload: OverloadPolicy::Fail,
        ..RemotingConfig::default()
    });
    let addr = addr.to_string();
    let t = Duration::from_secs(10);
    for i in 0..N {
        if let Err(e) = c.invoke_oneway(&addr, request(CODE, "x"), t).await {
            panic!("call {i}: the writer never ran: {e:?}");
        }
    }
    assert_eq!(within(server).await.expect("server"), N);
    within(c.shutdown()).await;
}
