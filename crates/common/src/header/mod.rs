//! Custom command headers: plain structs that encode to and decode from [`ExtFields`].
//!
//! Each header follows Java's `makeCustomHeaderToNet` / `decodeCommandCustomHeader` rules:
//! numbers and booleans travel as decimal / `"true"`/`"false"` strings, `None` fields are
//! absent, and a missing or unparsable required field is a [`HeaderError`] naming the field.

use std::str::FromStr;

use bytestring::ByteString;

use crate::ExtFields;

pub mod client;
pub mod recall;
pub mod reply;
pub mod route;
pub mod send;
pub mod transaction;
pub mod view;

pub use client::UnregisterClientRequestHeader;
pub use reply::ReplyMessageRequestHeader;
pub use route::GetRouteInfoRequestHeader;
pub use send::{SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader};
pub use transaction::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
pub use view::ViewMessageRequestHeader;

/// A header that maps to and from a command's ext fields.
pub trait CommandHeader: Sized {
    /// Writes every present field into `ext` (replacing existing keys).
    fn write_to(&self, ext: &mut ExtFields);

    /// Reads the header from `ext`; required fields must be present and well formed.
    ///
    /// # Errors
    /// [`HeaderError::Missing`] or [`HeaderError::Invalid`] naming the offending field.
    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError>;

    /// The header as a fresh [`ExtFields`].
    fn to_ext_fields(&self) -> ExtFields {
        let mut ext = ExtFields::with_capacity(16);
        self.write_to(&mut ext);
        ext
    }
}

/// A header field was missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A required field is absent.
    #[error("header field `{field}` is missing")]
    Missing {
        /// The wire name of the field.
        field: &'static str,
    },
    /// A field is present but cannot be parsed.
    #[error("header field `{field}` has an invalid value {value:?} (expected {expected})")]
    Invalid {
        /// The wire name of the field.
        field: &'static str,
        /// The value received.
        value: String,
        /// What was expected (`"i32"`, `"i64"`, `"bool"`, ...).
        expected: &'static str,
    },
}

/// Reads a required string field.
///
/// # Errors
/// [`HeaderError::Missing`] when absent.
pub fn required_str(ext: &ExtFields, field: &'static str) -> Result<String, HeaderError> {
    ext.get(field)
        .map(str::to_owned)
        .ok_or(HeaderError::Missing { field })
}

/// Reads an optional string field.
#[must_use]
pub fn optional_str(ext: &ExtFields, field: &'static str) -> Option<String> {
    ext.get(field).map(str::to_owned)
}

/// Reads a required number (Java `Integer.parseInt` / `Long.parseLong` rules: optional sign, digits).
///
/// # Errors
/// [`HeaderError::Missing`] or [`HeaderError::Invalid`].
pub fn required_num<T: FromStr>(
    ext: &ExtFields,
    field: &'static str,
    expected: &'static str,
) -> Result<T, HeaderError> {
    optional_num(ext, field, expected)?.ok_or(HeaderError::Missing { field })
}

/// Reads an optional number; present but malformed is an error.
///
/// # Errors
/// [`HeaderError::Invalid`].
pub fn optional_num<T: FromStr>(
    ext: &ExtFields,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<T>, HeaderError> {
    match ext.get(field) {
        None => Ok(None),
        Some(v) => v.parse::<T>().map(Some).map_err(|_| HeaderError::Invalid {
            field,
            value: v.to_owned(),
            expected,
        }),
    }
}

/// Reads an optional boolean with Java's `Boolean.parseBoolean` rule: case-insensitive `"true"`
/// is true, anything else false.
#[must_use]
pub fn optional_bool(ext: &ExtFields, field: &'static str) -> Option<bool> {
    ext.get(field).map(|v| v.eq_ignore_ascii_case("true"))
}

/// A static field name as an ext-field key, without copying it.
pub(crate) const fn key(name: &'static str) -> ByteString {
    ByteString::from_static(name)
}

/// Java's `Boolean.toString`.
#[must_use]
pub const fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}
