//! The mock broker refuses a properties string over 32,767 bytes as a real broker does
//! (`MESSAGE_ILLEGAL`), without decoding it.

use std::future::Future;
use std::time::Duration;

use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_common::{RequestCode, ResponseCode};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use rmq_testkit::{MockBroker, MAX_PROPERTIES_BYTES};

const T: Duration = Duration::from_secs(10);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

/// A send whose properties string is `props`.
fn send(props: String) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "T".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        properties: Some(props),
        ..SendMessageRequestHeader::default()
    });
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &header).with_body(&b"x"[..])
}

/// One property `k` whose value pads the string to exactly `len` bytes.
fn props_of_len(len: usize) -> String {
    let s = format!("k\u{1}{}\u{2}", "v".repeat(len - 3));
    assert_eq!(s.len(), len);
    s
}

#[tokio::test]
async fn properties_over_32767_bytes_are_message_illegal_and_not_stored() {
    let b = within(MockBroker::start("broker-a")).await.unwrap();
    let c = RemotingClient::new(RemotingConfig::default());
    let addr = b.addr();

    let resp = within(c.invoke_sync(&addr, send(props_of_len(MAX_PROPERTIES_BYTES)), T))
        .await
        .unwrap();
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "{:?}",
        resp.remark
    );
    assert_eq!(b.message_count(), 1);
    assert_eq!(
        b.messages()[0].property("k").map(str::len),
        Some(MAX_PROPERTIES_BYTES - 3)
    );

    let resp = within(c.invoke_sync(&addr, send(props_of_len(MAX_PROPERTIES_BYTES + 1)), T))
        .await
        .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::MESSAGE_ILLEGAL);
    let remark = resp.remark.unwrap_or_default();
    assert!(remark.contains("properties length limit 32k"), "{remark}");
    assert_eq!(b.message_count(), 1);

    // 4 MiB of one-byte properties (over a million entries) is refused just as well: the string is
    // never decoded.
    let many = "a\u{1}b\u{2}".repeat(1 << 20);
    let resp = within(c.invoke_sync(&addr, send(many), T)).await.unwrap();
    assert_eq!(resp.response_code(), ResponseCode::MESSAGE_ILLEGAL);
    assert_eq!(b.message_count(), 1);
    within(b.shutdown()).await;
}
