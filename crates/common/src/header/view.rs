//! `VIEW_MESSAGE_BY_ID` (33) request header.

use super::{key, optional_str, required_num};
use crate::{CommandHeader, ExtFields, HeaderError};

/// Header of `VIEW_MESSAGE_BY_ID` (Java's `ViewMessageRequestHeader`): look a stored message
/// up by its commit-log offset.
///
/// ```
/// use rmq_common::header::view::ViewMessageRequestHeader;
/// use rmq_common::CommandHeader;
/// let h = ViewMessageRequestHeader { topic: None, offset: 4_819_130 };
/// assert_eq!(h.to_ext_fields().get("offset"), Some("4819130"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewMessageRequestHeader {
    /// `topic` (5.x).
    pub topic: Option<String>,
    /// `offset`: the commit-log offset (required).
    pub offset: i64,
}

impl CommandHeader for ViewMessageRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        if let Some(v) = &self.topic {
            ext.insert(key("topic"), v.as_str());
        }
        ext.insert(key("offset"), self.offset.to_string());
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            topic: optional_str(ext, "topic"),
            offset: required_num(ext, "offset", "i64")?,
        })
    }
}
