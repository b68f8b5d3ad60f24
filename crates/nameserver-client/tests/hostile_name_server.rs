//! A name server that answers garbage, and one the remoting client is backing off from: the
//! route request fails (or fails over) at once, and the error chain names the cause.

use std::future::Future;
use std::time::Duration;

use rmq_nameserver_client::{NameServerClient, NameServerError};
use rmq_remoting::{BackoffConfig, RemotingClient, RemotingCommand, RemotingConfig, RemotingError};
use rmq_testkit::{MockNameServer, RouteBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(6);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

use rmq_testkit::error_chain as chain;

/// A peer that reads one whole request frame and answers it with a frame whose JSON header
/// does not parse, then waits for the client to close.
async fn garbage_name_server() -> (String, tokio::task::JoinHandle<()>) {
    let l = within(TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let (mut s, _) = within(l.accept()).await.expect("accept");
        let len = within(s.read_u32()).await.expect("length");
        let mut frame = vec![0; usize::try_from(len).expect("fits")];
        within(s.read_exact(&mut frame)).await.expect("frame");
        // length 9: header length word (JSON, 5 bytes), then "{bad}"
        let garbage = [0, 0, 0, 9, 0, 0, 0, 5, b'{', b'b', b'a', b'd', b'}'];
        within(s.write_all(&garbage)).await.expect("write");
        let mut rest = Vec::new();
        let _ = within(s.read_to_end(&mut rest)).await;
    });
    (addr, task)
}

#[tokio::test]
async fn a_garbage_answer_is_unreachable_with_the_protocol_cause_in_the_chain() {
    let (addr, peer) = garbage_name_server().await;
    let client = NameServerClient::new(
        RemotingClient::new(RemotingConfig::default()),
        vec![addr.clone()],
    );
    let err = within(client.topic_route("T", DEADLINE)).await.unwrap_err();
    let NameServerError::Unreachable { tried, last } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(tried, std::slice::from_ref(&addr));
    assert!(
        matches!(last, RemotingError::Protocol { written: true, .. }),
        "{last:?}"
    );
    let texts = chain(&err);
    assert!(
        texts.iter().skip(2).any(|t| t.contains("bad JSON header")),
        "the chain names the cause: {texts:?}"
    );
    assert!(
        !texts[0].contains("JSON") && !texts[1].contains("JSON"),
        "the cause is not repeated above its source: {texts:?}"
    );
    within(peer).await.expect("peer task");
}

#[tokio::test]
async fn a_backed_off_name_server_is_skipped_at_once() {
    let good = within(MockNameServer::start()).await.unwrap();
    good.set_route(
        "T",
        RouteBuilder::new()
            .broker("broker-a", "127.0.0.1:10911")
            .queues("broker-a", 4)
            .build(),
    );
    let dead = {
        let l = within(TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let remoting = RemotingClient::new(RemotingConfig {
        reconnect_backoff: BackoffConfig {
            initial: Duration::from_secs(60),
            ..BackoffConfig::default()
        },
        ..RemotingConfig::default()
    });
    // One failed connect opens the window.
    let probe = RemotingCommand::request(
        rmq_common::RequestCode::GET_ROUTEINFO_BY_TOPIC,
        rmq_common::ExtFields::new(),
    );
    let r = within(remoting.invoke_sync(&dead, probe, DEADLINE)).await;
    assert!(matches!(r, Err(RemotingError::Connect { .. })), "{r:?}");

    // Alone, it fails at once with the typed backoff error as the last one.
    let only = NameServerClient::new(remoting.clone(), vec![dead.clone()]);
    let t0 = Instant::now();
    let err = within(only.topic_route("T", DEADLINE)).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let NameServerError::Unreachable { last, .. } = &err else {
        panic!("unexpected {err:?}");
    };
    assert!(matches!(last, RemotingError::Backoff { .. }), "{last:?}");
    assert!(
        chain(&err).iter().any(|t| t.contains("connect to")),
        "{:?}",
        chain(&err)
    );

    // Either first: the next name server answers, without waiting.
    for addrs in [
        vec![dead.clone(), good.addr()],
        vec![good.addr(), dead.clone()],
    ] {
        let client = NameServerClient::new(remoting.clone(), addrs);
        for _ in 0..3 {
            let t0 = Instant::now();
            let route = within(client.topic_route("T", DEADLINE)).await.unwrap();
            assert_eq!(route.queue_datas[0].write_queue_nums, 4);
            assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        }
    }
    assert_eq!(good.request_count("T"), 6);
}
