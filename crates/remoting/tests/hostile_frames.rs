//! A peer that answers a request with a frame the client cannot decode: the call fails with a
//! typed error whose source chain names the cause (not a bare "connection closed"), nothing
//! panics, and the client's other connections carry on.

mod common;

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::{accept, echo, listener, next, request, send, within};
use futures_util::StreamExt;
use rmq_common::{RequestCode, ResponseCode};
use rmq_remoting::{
    DecodeError, RemotingClient, RemotingCodec, RemotingCommand, RemotingConfig, RemotingError,
};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Encoder;

const CODE: RequestCode = RequestCode::GET_ROUTEINFO_BY_TOPIC;
const T: Duration = Duration::from_secs(10);

/// `err` and every source below it, as text.
fn chain(err: &dyn Error) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

/// A frame: the length field, then `rest` (header-length word, header, body).
fn frame(rest: &[u8]) -> Vec<u8> {
    let len = u32::try_from(rest.len()).expect("small");
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(rest);
    v
}

/// The answer to `req` as a well-formed frame.
fn encoded(resp: &RemotingCommand) -> Vec<u8> {
    let mut b = BytesMut::new();
    RemotingCodec::new().encode(resp, &mut b).expect("encodes");
    b.to_vec()
}

/// What the hostile peer answers the request `req` with.
type Answer = fn(&RemotingCommand) -> Vec<u8>;

struct Case {
    name: &'static str,
    answer: Answer,
    /// The peer closes the connection after answering.
    close: bool,
    /// A text the error's source chain must hold.
    cause: &'static str,
    /// Whether the decode error is the expected one.
    is: fn(&DecodeError) -> bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "length 2147483651 (over the maximum, negative as a Java int)",
            answer: |_| vec![0x80, 0, 0, 3],
            close: false,
            cause: "exceeds the maximum frame length 16777216",
            is: |e| {
                matches!(
                    e,
                    DecodeError::FrameTooLarge {
                        max: 16_777_216,
                        ..
                    }
                )
            },
        },
        Case {
            name: "length 16 MiB (over the maximum by the length field)",
            answer: |_| vec![1, 0, 0, 0],
            close: false,
            cause: "frame of 16777220 bytes",
            is: |e| {
                matches!(
                    e,
                    DecodeError::FrameTooLarge {
                        len: 16_777_220,
                        ..
                    }
                )
            },
        },
        Case {
            name: "length -2",
            answer: |_| vec![0xFF, 0xFF, 0xFF, 0xFE],
            close: false,
            cause: "exceeds the maximum frame length",
            is: |e| matches!(e, DecodeError::FrameTooLarge { .. }),
        },
        Case {
            name: "length 0",
            answer: |_| vec![0, 0, 0, 0],
            close: false,
            cause: "frame length 0 is shorter than the 4-byte header length word",
            is: |e| matches!(e, DecodeError::FrameTooShort { len: 0 }),
        },
        Case {
            name: "header length over the frame",
            answer: |_| frame(&[0, 0, 0, 100, b'{', b'}']),
            close: false,
            cause: "header length 100 exceeds the frame's 2 bytes",
            is: |e| {
                matches!(
                    e,
                    DecodeError::HeaderTooLong {
                        header_len: 100,
                        available: 2
                    }
                )
            },
        },
        Case {
            name: "unknown serialize type",
            answer: |_| frame(&[7, 0, 0, 0]),
            close: false,
            cause: "unknown serialize type 7",
            is: |e| matches!(e, DecodeError::UnknownSerializeType(7)),
        },
        Case {
            name: "invalid JSON header",
            answer: |_| {
                frame(&[
                    0, 0, 0, 9, b'{', b'"', b'c', b'o', b'd', b'e', b'"', b':', b'}',
                ])
            },
            close: false,
            cause: "bad JSON header",
            is: |e| matches!(e, DecodeError::Json(_)),
        },
        Case {
            name: "truncated ROCKETMQ header",
            answer: |_| frame(&[1, 0, 0, 3, 0, 1, 2]),
            close: false,
            cause: "bad ROCKETMQ header",
            is: |e| matches!(e, DecodeError::Binary(_)),
        },
        Case {
            name: "half a frame, then the peer closes",
            answer: |req| {
                let whole = encoded(&req.response_to(ResponseCode::SUCCESS, None));
                whole[..whole.len() / 2].to_vec()
            },
            close: true,
            cause: "the connection ended inside a frame",
            is: |e| matches!(e, DecodeError::Truncated { .. }),
        },
    ]
}

/// A peer that reads one request, answers it with `answer`, then closes (when `close`) or
/// waits for the client to close.
async fn hostile_peer(answer: Answer, close: bool) -> (String, tokio::task::JoinHandle<()>) {
    let (l, addr) = listener().await;
    let task = tokio::spawn(async move {
        let mut f = accept(&l).await;
        let req = next(&mut f).await;
        let bytes = answer(&req);
        let s = f.get_mut();
        within(s.write_all(&bytes)).await.expect("write");
        within(s.flush()).await.expect("flush");
        if close {
            return;
        }
        // Until the client closes (bounded by `within`): no end of stream from this side.
        while let Some(Ok(_)) = within(f.next()).await {}
    });
    (addr.to_string(), task)
}

/// An echo server counting the connections it accepted.
async fn healthy() -> (String, Arc<AtomicUsize>) {
    let (l, addr) = listener().await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut f = tokio_util::codec::Framed::new(s, RemotingCodec::new());
                while let Some(Ok(req)) = f.next().await {
                    send(&mut f, echo(&req)).await;
                }
            });
        }
    });
    (addr.to_string(), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_frame_fails_the_call_with_its_cause_and_spares_other_connections() {
    let c = RemotingClient::new(RemotingConfig::default());
    let (good, accepted) = healthy().await;
    let ok = within(c.invoke_sync(&good, request(CODE, "before"), T))
        .await
        .expect("healthy");
    assert_eq!(&ok.body[..], b"before");
    for case in cases() {
        let (addr, peer) = hostile_peer(case.answer, case.close).await;
        let err = within(c.invoke_sync(&addr, request(CODE, case.name), T))
            .await
            .expect_err(case.name);
        let RemotingError::Protocol {
            addr: at, written, ..
        } = &err
        else {
            panic!("{}: expected Protocol, got {err:?}", case.name);
        };
        assert_eq!(at, &addr, "{}", case.name);
        assert!(*written, "{}", case.name);
        assert!(err.is_connection(), "{}: a transport failure", case.name);
        assert!(
            err.maybe_delivered(),
            "{}: written, so maybe delivered",
            case.name
        );
        assert!(!err.is_timeout(), "{}", case.name);
        let cause = err.protocol_cause().expect("a cause");
        assert!((case.is)(cause), "{}: {cause:?}", case.name);
        let source = err.source().and_then(|s| s.downcast_ref::<DecodeError>());
        assert!(source.is_some_and(case.is), "{}: {source:?}", case.name);
        let texts = chain(&err);
        assert!(
            texts.iter().skip(1).any(|t| t.contains(case.cause)),
            "{}: the chain {texts:?} does not name {:?}",
            case.name,
            case.cause
        );
        assert!(
            !texts[0].contains(case.cause),
            "{}: the cause is repeated in {:?}",
            case.name,
            texts[0]
        );
        within(peer).await.expect("peer task");
        // The same client's connection to a healthy server is untouched.
        let ok = within(c.invoke_sync(&good, request(CODE, case.name), T))
            .await
            .expect("healthy after a hostile peer");
        assert_eq!(&ok.body[..], case.name.as_bytes());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one healthy connection");
    assert_eq!(c.pending_len(), 0);
    within(c.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_of_the_broken_connection_gets_the_cause_async_too() {
    let (l, addr) = listener().await;
    let peer = tokio::spawn(async move {
        let mut f = accept(&l).await;
        // Two requests, then a bad JSON header.
        next(&mut f).await;
        next(&mut f).await;
        let s = f.get_mut();
        within(s.write_all(&frame(&[0, 0, 0, 1, b'x'])))
            .await
            .expect("write");
        while let Some(Ok(_)) = within(f.next()).await {}
    });
    let c = RemotingClient::new(RemotingConfig::default());
    let addr = addr.to_string();
    let a = within(c.invoke_async(&addr, request(CODE, "a"), T))
        .await
        .expect("queued");
    let b = within(c.invoke_async(&addr, request(CODE, "b"), T))
        .await
        .expect("queued");
    for r in [within(a).await, within(b).await] {
        let err = r.expect_err("broken");
        assert!(
            matches!(err.protocol_cause(), Some(DecodeError::Json(_))),
            "{err:?}"
        );
    }
    within(peer).await.expect("peer task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_an_unknown_opaque_is_ignored_not_fatal() {
    let (l, addr) = listener().await;
    let peer = tokio::spawn(async move {
        let mut f = accept(&l).await;
        let req = next(&mut f).await;
        let mut stray = echo(&req);
        stray.opaque = req.opaque.wrapping_add(1_000_000);
        stray.body = bytes::Bytes::from_static(b"stray");
        send(&mut f, stray).await;
        send(&mut f, echo(&req)).await;
        let again = next(&mut f).await;
        send(&mut f, echo(&again)).await;
    });
    let c = RemotingClient::new(RemotingConfig::default());
    let addr = addr.to_string();
    let resp = within(c.invoke_sync(&addr, request(CODE, "mine"), T))
        .await
        .expect("the stray answer is skipped");
    assert_eq!(&resp.body[..], b"mine");
    let resp = within(c.invoke_sync(&addr, request(CODE, "again"), T))
        .await
        .expect("the connection is still up");
    assert_eq!(&resp.body[..], b"again");
    within(peer).await.expect("peer task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_closes_between_frames_is_a_plain_close() {
    let (l, addr) = listener().await;
    let peer = tokio::spawn(async move {
        let mut f = accept(&l).await;
        next(&mut f).await;
    });
    let c = RemotingClient::new(RemotingConfig::default());
    let err = within(c.invoke_sync(&addr.to_string(), request(CODE, "x"), T))
        .await
        .expect_err("closed");
    assert!(
        matches!(err, RemotingError::ConnectionClosed { written: true, .. }),
        "{err:?}"
    );
    assert!(err.protocol_cause().is_none());
    within(peer).await.expect("peer task");
}
