//! A proxy's `RecoverOrphanedTransactionCommand` as a transaction check-back: the orphaned half
//! message becomes the [`CheckJob`] a broker's `CHECK_TRANSACTION_STATE` would have made, routed
//! to the transactional producer of the group, whose listener answers it through
//! `EndTransaction` (source `SOURCE_SERVER_CHECK`) — the same user API as on remoting.

use std::sync::Arc;

use rmq_common::header::transaction::CheckTransactionStateRequestHeader;
use rmq_common::stored::MessageExt;
use rmq_common::{property, Message};
use rmq_grpc::{pb, TelemetryHandler};

use crate::transaction::check::{CheckJob, CheckRouter};

/// Routes the proxy's orphaned-transaction commands to the group's check queue.
#[derive(Debug)]
pub(crate) struct OrphanRouter {
    pub(crate) router: Arc<CheckRouter>,
    pub(crate) group: String,
    pub(crate) endpoint: String,
}

/// The check job of `cmd` for `group`, answered through `endpoint`.
pub(crate) fn check_job(
    cmd: pb::RecoverOrphanedTransactionCommand,
    group: &str,
    endpoint: &str,
) -> Option<CheckJob> {
    let m = cmd.message?;
    let sys = m.system_properties.unwrap_or_default();
    let topic = m.topic.map(|t| t.name).unwrap_or_default();
    let mut msg = Message::new(topic.clone(), m.body);
    {
        let props = msg.properties_mut();
        for (k, v) in m.user_properties {
            props.insert(k, v);
        }
        if let Some(tag) = sys.tag.filter(|t| !t.is_empty()) {
            props.insert(property::TAGS, tag);
        }
        if !sys.keys.is_empty() {
            props.insert(property::KEYS, sys.keys.join(property::KEY_SEPARATOR));
        }
        props.insert(property::UNIQ_KEY, sys.message_id.clone());
        props.insert(property::TRAN_MSG, "true");
        props.insert(property::PGROUP, group);
        props.insert(property::TRANSACTION_ID, cmd.transaction_id.clone());
    }
    let ext = MessageExt {
        message: msg,
        queue_id: sys.queue_id.unwrap_or_default(),
        queue_offset: sys.queue_offset.unwrap_or_default(),
        ..MessageExt::default()
    };
    Some(CheckJob {
        addr: endpoint.to_owned(),
        header: CheckTransactionStateRequestHeader {
            topic: Some(topic),
            msg_id: Some(sys.message_id),
            transaction_id: Some(cmd.transaction_id),
            ..CheckTransactionStateRequestHeader::default()
        },
        msg: ext,
        group: group.to_owned(),
    })
}

impl TelemetryHandler for OrphanRouter {
    fn recover_orphaned_transaction(&self, cmd: pb::RecoverOrphanedTransactionCommand) {
        let transaction_id = cmd.transaction_id.clone();
        match check_job(cmd, &self.group, &self.endpoint) {
            Some(job) => {
                let routed = self.router.route(job);
                tracing::debug!(%transaction_id, ?routed, "orphaned transaction from the proxy");
            }
            None => {
                tracing::warn!(%transaction_id, "orphaned transaction command without a message; ignored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orphan_becomes_the_check_of_its_group() {
        let cmd = pb::RecoverOrphanedTransactionCommand {
            message: Some(pb::Message {
                topic: Some(pb::Resource {
                    resource_namespace: String::new(),
                    name: "T".into(),
                }),
                user_properties: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
                system_properties: Some(pb::SystemProperties {
                    tag: Some("TagA".into()),
                    message_id: "ID1".into(),
                    queue_id: Some(2),
                    ..Default::default()
                }),
                body: bytes::Bytes::from_static(b"half"),
            }),
            transaction_id: "TX1".into(),
        };
        let job = check_job(cmd, "g", "127.0.0.1:8081").unwrap();
        assert_eq!(job.group, "g");
        assert_eq!(job.addr, "127.0.0.1:8081");
        assert_eq!(job.header.msg_id.as_deref(), Some("ID1"));
        assert_eq!(job.header.transaction_id.as_deref(), Some("TX1"));
        assert_eq!(job.header.topic.as_deref(), Some("T"));
        let m = &job.msg.message;
        assert_eq!(m.property(property::UNIQ_KEY), Some("ID1"));
        assert_eq!(m.property("k"), Some("v"));
        assert_eq!(m.tags(), Some("TagA"));
        assert_eq!(&m.body()[..], b"half");
        assert_eq!(job.msg.queue_id, 2);
        assert!(check_job(
            pb::RecoverOrphanedTransactionCommand {
                message: None,
                transaction_id: "x".into()
            },
            "g",
            "e"
        )
        .is_none());
    }
}
