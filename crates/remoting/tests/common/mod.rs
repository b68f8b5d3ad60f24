//! Helpers shared by the loopback tests: bounded awaits (`within`, `eventually`) and raw
//! scripted peers on 127.0.0.1:0.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rmq_common::{ExtFields, RequestCode, ResponseCode};
use rmq_remoting::{RemotingCodec, RemotingCommand};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// Every await in a test runs under this bound.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// Awaits `f` within [`LIMIT`].
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test step timed out")
}

/// A listener on an ephemeral loopback port.
pub(crate) async fn listener() -> (TcpListener, SocketAddr) {
    let l = within(TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

/// Accepts one connection and frames it.
pub(crate) async fn accept(l: &TcpListener) -> Framed<TcpStream, RemotingCodec> {
    let (s, _) = within(l.accept()).await.expect("accept");
    Framed::new(s, RemotingCodec::new())
}

/// Connects a raw framed peer to `addr`.
pub(crate) async fn connect(addr: SocketAddr) -> Framed<TcpStream, RemotingCodec> {
    let s = within(TcpStream::connect(addr)).await.expect("connect");
    Framed::new(s, RemotingCodec::new())
}

/// Reads frames until none came for 5 s or the peer closed; how many were read.
pub(crate) async fn read_until_quiet(f: &mut Framed<TcpStream, RemotingCodec>) -> usize {
    let mut n = 0;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), f.next()).await {
        n += 1;
    }
    n
}

/// A request with a body.
pub(crate) fn request(code: RequestCode, body: impl Into<Bytes>) -> RemotingCommand {
    RemotingCommand::request(code, ExtFields::new()).with_body(body)
}

/// The echo answer: SUCCESS, same opaque, same body.
pub(crate) fn echo(req: &RemotingCommand) -> RemotingCommand {
    req.response_to(ResponseCode::SUCCESS, None)
        .with_body(req.body.clone())
}

/// Reads the next frame.
pub(crate) async fn next(f: &mut Framed<TcpStream, RemotingCodec>) -> RemotingCommand {
    within(f.next()).await.expect("a frame").expect("decodes")
}

/// Writes a frame.
pub(crate) async fn send(f: &mut Framed<TcpStream, RemotingCodec>, cmd: RemotingCommand) {
    within(f.send(cmd)).await.expect("write");
}

/// Polls `cond` every 10 ms until it holds, for up to [`LIMIT`]; whether it held.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A fixture of `tests/fixtures` (hex, `#` comments) as bytes.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "{name}: odd number of hex digits"
    );
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}
