//! Reply intake (Java's `ClientRemotingProcessor.receiveReplyMessage` / `processReplyMessage`):
//! the client instance's processor of `PUSH_REPLY_MESSAGE_TO_CLIENT` (326) reads the reply
//! (header, body decompressed, `ARRIVE_TIME` added) and hands it to the request waiting under its
//! `CORRELATION_ID`.
//!
//! Answers, as Java's: `SUCCESS` once the reply is read, also when no request waits for it
//! (unknown id, or one that timed out; logged) and when its body cannot be inflated (the waiting
//! request then fails with [`ErrorKind::InvalidReply`](crate::ErrorKind)); `SYSTEM_ERROR` when
//! the header cannot be decoded.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rmq_common::header::reply::ReplyMessageRequestHeader;
use rmq_common::stored::DEFAULT_INFLATE_LIMIT;
use rmq_common::{property, reply, Properties, ResponseCode};
use rmq_remoting::{BoxFuture, RemotingCommand, RequestContext, RequestProcessor};

use super::table::{Completed, ReplyTable};

/// The instance's processor of `PUSH_REPLY_MESSAGE_TO_CLIENT`.
#[derive(Debug)]
pub(crate) struct ReplyProcessor {
    pub(crate) table: Arc<ReplyTable>,
}

impl RequestProcessor for ReplyProcessor {
    fn process(
        &self,
        ctx: RequestContext,
        req: RemotingCommand,
    ) -> BoxFuture<'static, Option<RemotingCommand>> {
        let resp = receive(&self.table, &ctx.peer_addr().to_string(), &req, now_ms());
        Box::pin(std::future::ready(Some(resp)))
    }
}

/// Reads one pushed reply from `peer` and completes its request; returns the answer.
pub(crate) fn receive(
    table: &ReplyTable,
    peer: &str,
    req: &RemotingCommand,
    now_ms: i64,
) -> RemotingCommand {
    let header = match req.decode_header::<ReplyMessageRequestHeader>() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(peer, error = %e, "undecodable reply message");
            return req.response_to(
                ResponseCode::SYSTEM_ERROR,
                Some(format!("process reply message fail: {e}")),
            );
        }
    };
    let props = Properties::decode(header.properties.as_deref().unwrap_or(""));
    let Some(id) = props
        .get(property::CORRELATION_ID)
        .filter(|id| !id.is_empty())
    else {
        tracing::warn!(peer, born_host = %header.born_host, topic = %header.topic, "reply message without CORRELATION_ID; dropped");
        return req.response_to(ResponseCode::SUCCESS, None);
    };
    let outcome =
        reply::reply_message_ext(&header, req.body.clone(), now_ms, DEFAULT_INFLATE_LIMIT);
    if let Err(e) = &outcome {
        tracing::warn!(correlation_id = id, error = %e, "reply body cannot be read");
    }
    match table.complete(id, outcome) {
        Completed::Delivered => {
            tracing::debug!(correlation_id = id, peer, "reply received");
        }
        Completed::Unknown => {
            tracing::warn!(correlation_id = id, born_host = %header.born_host, "reply message matches no request (unknown, timed out or cancelled); dropped");
        }
    }
    req.response_to(ResponseCode::SUCCESS, None)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_common::{CommandHeader, RequestCode};

    fn push(correlation_id: Option<&str>, sys_flag: i32, body: &[u8]) -> RemotingCommand {
        let mut props = Properties::new();
        props.insert(property::MSG_TYPE, "reply");
        if let Some(id) = correlation_id {
            props.insert(property::CORRELATION_ID, id);
        }
        let header = ReplyMessageRequestHeader {
            producer_group: "replier".into(),
            topic: "DefaultCluster_REPLY_TOPIC".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            sys_flag,
            properties: Some(props.encode()),
            born_host: "127.0.0.1:5000".into(),
            store_host: "127.0.0.1:10911".into(),
            ..Default::default()
        };
        RemotingCommand::request(
            RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT,
            header.to_ext_fields(),
        )
        .with_body(body.to_vec())
    }

    #[tokio::test]
    async fn replies_are_matched_and_every_push_is_answered() {
        let table = Arc::new(ReplyTable::default());
        let mut waiting = table.register();
        let id = waiting.id().to_owned();

        // Unknown id, and no id at all: SUCCESS (Java answers SUCCESS and logs), nothing delivered.
        for req in [push(Some("unknown-id"), 0, b"x"), push(None, 0, b"x")] {
            let resp = receive(&table, "peer", &req, 5);
            assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
            assert_eq!(resp.opaque, req.opaque);
        }
        assert!(waiting.try_reply().is_none());

        let body: Vec<u8> = (0..8000u32).map(|i| (i % 13) as u8).collect();
        let z = rmq_common::compression::compress(&body, 5);
        let resp = receive(&table, "peer", &push(Some(&id), 0x301, &z), 7);
        assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
        let reply = waiting.reply().await.expect("delivered").expect("inflated");
        assert_eq!(reply.message.body().as_ref(), body.as_slice());
        assert_eq!(reply.message.property(property::ARRIVE_TIME), Some("7"));
        assert_eq!(table.len(), 0);

        // A body that does not inflate reaches the request as an error; the broker gets SUCCESS.
        let mut bad = table.register();
        let resp = receive(&table, "peer", &push(Some(bad.id()), 0x301, b"nope"), 1);
        assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
        assert!(bad.reply().await.expect("delivered").is_err());

        // A header missing a required field: SYSTEM_ERROR naming it.
        let mut req = push(Some("x"), 0, b"");
        req.ext_fields.remove("storeHost");
        let resp = receive(&table, "peer", &req, 1);
        assert_eq!(resp.response_code(), ResponseCode::SYSTEM_ERROR);
        assert!(resp.remark.unwrap_or_default().contains("storeHost"));
    }
}
