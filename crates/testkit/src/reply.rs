//! The broker side of request/reply (Java's `ReplyMessageProcessor`): a reply sent with
//! `SEND_REPLY_MESSAGE(_V2)` is stored like a send and pushed with `PUSH_REPLY_MESSAGE_TO_CLIENT`
//! to the connection whose heartbeat carried the client id in its `REPLY_TO_CLIENT` property.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rmq_common::header::reply::ReplyMessageRequestHeader;
use rmq_common::header::send::SendMessageRequestHeader;
use rmq_common::{property, CommandHeader, Properties, RequestCode, ResponseCode};
use rmq_remoting::RemotingCommand;

use crate::store::now_ms;
use crate::transaction::Transactions;

/// How long the requester may take to answer a push (a broker waits 10 s; tests need less).
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Java's `ip:port` form of a host (`getHostAddress() + ":" + port`: IPv6 unbracketed).
fn host(addr: SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}

/// The push of a reply sent with `send` (the send header, V1 names) from `born_host`: the
/// reply's header fields, `PUSH_REPLY_TIME` added to its properties, the broker's address and
/// time (Java's `pushReplyMessage`).
pub(crate) fn push_request(
    send: &SendMessageRequestHeader,
    body: Bytes,
    born_host: SocketAddr,
    store_host: SocketAddr,
) -> RemotingCommand {
    let mut props = Properties::decode(send.properties.as_deref().unwrap_or(""));
    let now = now_ms();
    props.insert(property::PUSH_REPLY_TIME, now.to_string());
    let header = ReplyMessageRequestHeader {
        producer_group: send.producer_group.clone(),
        topic: send.topic.clone(),
        default_topic: send.default_topic.clone(),
        default_topic_queue_nums: send.default_topic_queue_nums,
        queue_id: send.queue_id,
        sys_flag: send.sys_flag,
        born_timestamp: send.born_timestamp,
        flag: send.flag,
        properties: Some(props.encode()),
        reconsume_times: send.reconsume_times,
        unit_mode: send.unit_mode.unwrap_or(false),
        born_host: host(born_host),
        store_host: host(store_host),
        store_timestamp: now,
    };
    RemotingCommand::request(
        RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT,
        header.to_ext_fields(),
    )
    .with_body(body)
}

/// Pushes `push` to the client named by the reply's `REPLY_TO_CLIENT` (from `props`) and
/// returns the client's answer code; `Err` is the remark a broker answers with `SYSTEM_ERROR`
/// (no `REPLY_TO_CLIENT`, no connection of that client, the push failed).
pub(crate) async fn push(
    tx: &Transactions,
    props: &Properties,
    push: RemotingCommand,
) -> Result<ResponseCode, String> {
    let Some(client_id) = props.get(property::REPLY_TO_CLIENT) else {
        return Err(format!(
            "reply message properties[{}] is null",
            property::REPLY_TO_CLIENT
        ));
    };
    let Some(conn) = tx.connection_of_client(client_id) else {
        return Err(format!(
            "push reply message fail, channel of <{client_id}> not found."
        ));
    };
    let correlation_id = props.get(property::CORRELATION_ID).unwrap_or_default();
    match conn.invoke(push, PUSH_TIMEOUT).await {
        Ok(resp) => {
            let code = resp.response_code();
            tracing::debug!(client_id, correlation_id, %code, "reply pushed");
            Ok(code)
        }
        Err(e) => {
            tracing::warn!(client_id, correlation_id, error = %e, "reply push failed");
            Err(format!("push reply message to {client_id}fail."))
        }
    }
}

/// A `SEND_REPLY_MESSAGE(_V2)` whose store step answered `stored`: pushes the reply when it was
/// stored and answers as a broker (`SYSTEM_ERROR` with the reason when the push failed or the
/// client answered anything but `SUCCESS`; the reply stays stored, as Java stores it anyway).
pub(crate) async fn after_store(
    tx: &Transactions,
    req: &RemotingCommand,
    born_host: SocketAddr,
    store_host: SocketAddr,
    stored: RemotingCommand,
) -> RemotingCommand {
    if !stored.response_code().is_stored() {
        return stored;
    }
    let Ok(send) = SendMessageRequestHeader::read_for_code(req.request_code(), &req.ext_fields)
    else {
        return stored; // unreachable: the store step decoded the same header
    };
    let props = Properties::decode(send.properties.as_deref().unwrap_or(""));
    let request = push_request(&send, req.body.clone(), born_host, store_host);
    match push(tx, &props, request).await {
        Ok(ResponseCode::SUCCESS) => stored,
        Ok(_) => {
            let client = props.get(property::REPLY_TO_CLIENT).unwrap_or_default();
            req.response_to(
                ResponseCode::SYSTEM_ERROR,
                Some(format!("push reply message to {client}fail.")),
            )
        }
        Err(remark) => {
            tracing::warn!(remark, "reply not pushed");
            req.response_to(ResponseCode::SYSTEM_ERROR, Some(remark))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_carries_the_reply_header_hosts_and_push_time() {
        let mut props = Properties::new();
        props.insert(property::CORRELATION_ID, "c-1");
        props.insert(property::REPLY_TO_CLIENT, "127.0.0.1@1");
        let send = SendMessageRequestHeader {
            producer_group: "replier".into(),
            topic: "DefaultCluster_REPLY_TOPIC".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 0,
            sys_flag: 0x301,
            born_timestamp: 5,
            flag: 2,
            properties: Some(props.encode()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            ..Default::default()
        };
        let born: SocketAddr = "[::1]:5000".parse().unwrap();
        let store: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let before = now_ms();
        let req = push_request(&send, Bytes::from_static(b"z"), born, store);
        assert_eq!(
            req.request_code(),
            RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT
        );
        let h: ReplyMessageRequestHeader = req.decode_header().unwrap();
        assert_eq!(
            (h.born_host.as_str(), h.store_host.as_str()),
            ("::1:5000", "127.0.0.1:10911")
        );
        assert_eq!((h.sys_flag, h.flag, h.born_timestamp), (0x301, 2, 5));
        assert!(h.store_timestamp >= before);
        let p = Properties::decode(h.properties.as_deref().unwrap());
        assert_eq!(p.get(property::CORRELATION_ID), Some("c-1"));
        assert_eq!(
            p.get(property::PUSH_REPLY_TIME),
            Some(h.store_timestamp.to_string().as_str())
        );
        assert_eq!(req.body.as_ref(), b"z");
    }
}
