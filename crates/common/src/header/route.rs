//! `GET_ROUTEINFO_BY_TOPIC` (105) request header.

use super::{bool_str, key, optional_bool, required_str};
use crate::{CommandHeader, ExtFields, HeaderError};

/// Header of `GET_ROUTEINFO_BY_TOPIC` (Java's `GetRouteInfoRequestHeader`).
///
/// ```
/// use rmq_common::header::route::GetRouteInfoRequestHeader;
/// use rmq_common::CommandHeader;
/// let h = GetRouteInfoRequestHeader::new("TBW102");
/// let ext = h.to_ext_fields();
/// assert_eq!(ext.get("topic"), Some("TBW102"));
/// assert!(!ext.contains_key("acceptStandardJsonOnly"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetRouteInfoRequestHeader {
    /// `topic` (required).
    pub topic: String,
    /// `acceptStandardJsonOnly`: ask a 4.9.4+ name server for standard JSON (quoted map keys).
    pub accept_standard_json_only: Option<bool>,
}

impl GetRouteInfoRequestHeader {
    /// A header for `topic` (the Java client never sets `acceptStandardJsonOnly`).
    #[must_use]
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            accept_standard_json_only: None,
        }
    }
}

impl CommandHeader for GetRouteInfoRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        ext.insert(key("topic"), self.topic.as_str());
        if let Some(v) = self.accept_standard_json_only {
            ext.insert(key("acceptStandardJsonOnly"), bool_str(v));
        }
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            topic: required_str(ext, "topic")?,
            accept_standard_json_only: optional_bool(ext, "acceptStandardJsonOnly"),
        })
    }
}
