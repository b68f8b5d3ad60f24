//! [`Producer::recall`](crate::Producer::recall) through a proxy: `RecallMessage` with the
//! topic and the handle as given (the proxy finds the broker the handle names), its outcome as
//! the same [`RecallError`]s as on remoting.

use std::time::Duration;

use rmq_grpc::pb;

use super::grpc::GrpcTransport;
use super::grpc_status::{call_error, status_error};
use crate::error::ErrorKind;
use crate::recall::RecallError;

impl GrpcTransport {
    /// Recalls the message of `handle` on `topic` (its broker `broker`) within `timeout`;
    /// the recalled message's id.
    pub(crate) async fn recall(
        &self,
        topic: &str,
        handle: &str,
        broker: &str,
        timeout: Duration,
    ) -> Result<String, RecallError> {
        let req = pb::RecallMessageRequest {
            topic: Some(pb::Resource {
                resource_namespace: String::new(),
                name: topic.to_owned(),
            }),
            recall_handle: handle.to_owned(),
        };
        let resp = self
            .session
            .recall_message(req, timeout)
            .await
            .map_err(|e| as_recall_error(call_error(e, broker, &self.endpoint)))?;
        match resp.status.filter(|s| !rmq_grpc::code::is_ok(s.code)) {
            Some(st) => Err(as_recall_error(status_error(
                st.code,
                &st.message,
                broker,
                &self.endpoint,
            ))),
            None => Ok(resp.message_id),
        }
    }
}

/// A send error kind as the recall error of the same meaning.
fn as_recall_error(kind: ErrorKind) -> RecallError {
    match kind {
        ErrorKind::Broker {
            code,
            remark,
            broker,
            addr,
        } => RecallError::Broker {
            code,
            remark,
            broker,
            addr,
        },
        ErrorKind::Transport { broker, source } => RecallError::Transport { broker, source },
        other => RecallError::Broker {
            code: rmq_common::ResponseCode::SYSTEM_ERROR,
            remark: Some(other.to_string()),
            broker: String::new(),
            addr: String::new(),
        },
    }
}
