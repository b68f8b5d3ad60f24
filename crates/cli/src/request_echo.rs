//! `rmq request --echo`: a replier in the same process that answers a request with its own body.
//!
//! There is no consumer in rmq, so the replier reads the request back from the broker that
//! stored it (`VIEW_MESSAGE_BY_ID` at the request's offset message id: the broker's address and
//! the commit-log offset), builds the reply from what the broker stored (its `CLUSTER` names the
//! reply topic) and sends it with `SEND_REPLY_MESSAGE_V2`; the broker pushes it to the requester.

use std::time::Duration;

use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::{decode_stored_message, MessageExt};
use rmq_common::{RequestCode, ResponseCode, ViewMessageRequestHeader};
use rmq_producer::{Producer, SendOptions, SendResult};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig, TlsConfig};

use crate::output;

/// Reads a stored message by its offset message id (`VIEW_MESSAGE_BY_ID`), within `timeout`.
pub(crate) async fn view(
    client: &RemotingClient,
    offset_msg_id: &str,
    timeout: Duration,
) -> Result<MessageExt, String> {
    let id = OffsetMessageId::decode(offset_msg_id)
        .map_err(|e| format!("offset message id {offset_msg_id}: {e}"))?;
    let header = ViewMessageRequestHeader {
        topic: None,
        offset: id.commit_log_offset,
    };
    let req = RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &header);
    let addr = id.addr.to_string();
    let resp = client
        .invoke_sync(&addr, req, timeout)
        .await
        .map_err(|e| format!("view message at {addr}: {}", output::one_line(&e)))?;
    if resp.response_code() != ResponseCode::SUCCESS {
        return Err(format!(
            "view message at {addr}: {} {}",
            resp.response_code(),
            resp.remark.unwrap_or_default()
        ));
    }
    decode_stored_message(&mut resp.body.clone())
        .map_err(|e| format!("view message at {addr}: {}", output::one_line(&e)))
}

/// Answers the request stored as `request` with its own body, within `timeout`; returns the
/// reply's send result.
pub(crate) async fn echo(
    replier: &Producer,
    tls: Option<TlsConfig>,
    request: &SendResult,
    timeout: Duration,
) -> Result<SendResult, String> {
    let client = RemotingClient::new(RemotingConfig {
        tls,
        ..RemotingConfig::default()
    });
    let stored = view(&client, &request.offset_msg_id, timeout).await;
    client.shutdown().await;
    let stored = stored?;
    let body = stored.message.body().clone();
    replier
        .send_reply(&stored.message, body, SendOptions::new().timeout(timeout))
        .await
        .map_err(|e| format!("echo reply: {}", output::one_line(&e)))
}
