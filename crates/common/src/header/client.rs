//! `UNREGISTER_CLIENT` (35) request header.

use super::{key, optional_str, required_str};
use crate::{CommandHeader, ExtFields, HeaderError};

/// Header of `UNREGISTER_CLIENT` (Java's `UnregisterClientRequestHeader`).
///
/// ```
/// use rmq_common::header::client::UnregisterClientRequestHeader;
/// use rmq_common::CommandHeader;
/// let h = UnregisterClientRequestHeader {
///     client_id: "10.0.0.1@1#2".into(),
///     producer_group: Some("pg".into()),
///     consumer_group: None,
/// };
/// let ext = h.to_ext_fields();
/// assert_eq!(ext.get("clientID"), Some("10.0.0.1@1#2"));
/// assert_eq!(ext.get("consumerGroup"), None);
/// assert_eq!(UnregisterClientRequestHeader::read_from(&ext)?, h);
/// # Ok::<(), rmq_common::HeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnregisterClientRequestHeader {
    /// `clientID` (required).
    pub client_id: String,
    /// `producerGroup`.
    pub producer_group: Option<String>,
    /// `consumerGroup`.
    pub consumer_group: Option<String>,
}

impl CommandHeader for UnregisterClientRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        ext.insert(key("clientID"), self.client_id.as_str());
        if let Some(v) = &self.producer_group {
            ext.insert(key("producerGroup"), v.as_str());
        }
        if let Some(v) = &self.consumer_group {
            ext.insert(key("consumerGroup"), v.as_str());
        }
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            client_id: required_str(ext, "clientID")?,
            producer_group: optional_str(ext, "producerGroup"),
            consumer_group: optional_str(ext, "consumerGroup"),
        })
    }
}
