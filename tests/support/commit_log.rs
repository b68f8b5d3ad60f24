//! Reading a broker's commit log back over the remoting protocol (`VIEW_MESSAGE_BY_ID`), for
//! the interop tests that check what a real broker stored.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_common::stored::{decode_stored_message, MessageExt};
use rmq_common::{RequestCode, ResponseCode, ViewMessageRequestHeader};
use rmq_remoting::{RemotingClient, RemotingCommand};
use tokio::time::timeout;

use super::INTEROP_TIMEOUT as T;

/// A stored message read back: the raw record and its decoded form.
pub struct Stored {
    /// The record as stored.
    pub raw: Bytes,
    /// The record decoded.
    pub ext: MessageExt,
}

impl Stored {
    /// `sysFlag` as stored (byte 36 of the record), before the decoder clears the compression bit.
    pub fn raw_sys_flag(&self) -> i32 {
        i32::from_be_bytes([self.raw[36], self.raw[37], self.raw[38], self.raw[39]])
    }

    /// The body bytes exactly as stored (compressed when the producer compressed them).
    pub fn raw_body(&self) -> Bytes {
        let sys_flag = self.raw_sys_flag();
        let born_host = if sys_flag & 0x10 != 0 { 20 } else { 8 };
        let store_host = if sys_flag & 0x20 != 0 { 20 } else { 8 };
        // totalSize..sysFlag (40), bornTimestamp (8), bornHost, storeTimestamp (8), storeHost,
        // reconsumeTimes (4), preparedTransactionOffset (8), then bodyLen and the body.
        let at = 40 + 8 + born_host + 8 + store_host + 4 + 8;
        let len = i32::from_be_bytes([
            self.raw[at],
            self.raw[at + 1],
            self.raw[at + 2],
            self.raw[at + 3],
        ]);
        self.raw
            .slice(at + 4..at + 4 + usize::try_from(len).expect("body length"))
    }
}

/// `VIEW_MESSAGE_BY_ID` at `offset` on the broker at `addr`.
pub async fn view(client: &RemotingClient, addr: &str, topic: &str, offset: i64) -> Option<Stored> {
    let header = ViewMessageRequestHeader {
        topic: Some(topic.to_owned()),
        offset,
    };
    let req = RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &header);
    let resp = client
        .invoke_sync(addr, req, Duration::from_secs(5))
        .await
        .ok()?;
    if resp.response_code() != ResponseCode::SUCCESS || resp.body.is_empty() {
        return None;
    }
    let raw = resp.body.clone();
    let ext = decode_stored_message(&mut resp.body.clone()).ok()?;
    Some(Stored { raw, ext })
}

/// Every record of `topic` in the commit log of the broker at `addr`, from `start` to the end,
/// by commit-log offset (`VIEW_MESSAGE_BY_ID` record after record; the end is where three reads
/// in a row find nothing).
pub async fn walk_commit_log(
    client: &RemotingClient,
    addr: &str,
    topic: &str,
    start: i64,
) -> BTreeMap<i64, Stored> {
    let mut found = BTreeMap::new();
    let mut offset = start;
    let mut misses = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    for _ in 0..1_000_000 {
        if Instant::now() >= deadline {
            panic!("walking the commit log of {addr} took over 300 s");
        }
        match timeout(T, view(client, addr, topic, offset))
            .await
            .ok()
            .flatten()
        {
            Some(s) => {
                misses = 0;
                let len = i64::try_from(s.raw.len()).expect("record size");
                if s.ext.message.topic() == topic {
                    found.insert(offset, s);
                }
                offset += len;
            }
            None => {
                misses += 1;
                if misses >= 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    found
}
