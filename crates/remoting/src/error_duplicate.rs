//! [`RemotingError::duplicate`]: one failure reported to several waiters (the requests of one
//! connection, the members of one batch), each with its own copy.

use std::io;
use std::sync::Arc;

use crate::error::{EncodeError, RemotingError};

impl RemotingError {
    /// A copy of this error, for another caller that failed for the same reason. Everything a
    /// caller reads is kept (variant, addresses, flags such as `written`, durations); an
    /// [`io::Error`] inside keeps its OS error code, the [`rustls::Error`] it wraps, or else its
    /// kind and text.
    ///
    /// ```
    /// use rmq_remoting::RemotingError;
    /// let e = RemotingError::ConnectionClosed { addr: "127.0.0.1:10911".into(), written: true };
    /// let copy = e.duplicate();
    /// assert_eq!(copy.to_string(), e.to_string());
    /// assert_eq!(copy.maybe_delivered(), e.maybe_delivered());
    /// ```
    #[must_use]
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Connect { addr, source } => Self::Connect {
                addr: addr.clone(),
                source: copy_io(source),
            },
            Self::ConnectTimeout { addr, after } => Self::ConnectTimeout {
                addr: addr.clone(),
                after: *after,
            },
            Self::Timeout {
                addr,
                opaque,
                after,
                written,
            } => Self::Timeout {
                addr: addr.clone(),
                opaque: *opaque,
                after: *after,
                written: *written,
            },
            Self::ConnectionClosed { addr, written } => Self::ConnectionClosed {
                addr: addr.clone(),
                written: *written,
            },
            Self::Protocol {
                addr,
                written,
                source,
            } => Self::Protocol {
                addr: addr.clone(),
                written: *written,
                source: source.duplicate(),
            },
            Self::Backoff {
                addr,
                retry_in,
                last,
            } => Self::Backoff {
                addr: addr.clone(),
                retry_in: *retry_in,
                last: Arc::clone(last),
            },
            Self::Overloaded { addr } => Self::Overloaded { addr: addr.clone() },
            Self::FrameTooLarge { len, max } => Self::FrameTooLarge {
                len: *len,
                max: *max,
            },
            Self::Decode(e) => Self::Decode(e.duplicate()),
            Self::Encode(e) => Self::Encode(duplicate_encode(e)),
            Self::Shutdown => Self::Shutdown,
            Self::Tls { addr, source } => Self::Tls {
                addr: addr.clone(),
                source: copy_io(source),
            },
        }
    }
}

fn duplicate_encode(e: &EncodeError) -> EncodeError {
    match e {
        EncodeError::CodeOutOfRange { code } => EncodeError::CodeOutOfRange { code: *code },
        EncodeError::VersionOutOfRange { version } => {
            EncodeError::VersionOutOfRange { version: *version }
        }
        EncodeError::KeyTooLong { len } => EncodeError::KeyTooLong { len: *len },
        EncodeError::HeaderTooLarge { len } => EncodeError::HeaderTooLarge { len: *len },
        EncodeError::FrameTooLarge { len, max } => EncodeError::FrameTooLarge {
            len: *len,
            max: *max,
        },
        EncodeError::Io(e) => EncodeError::Io(copy_io(e)),
    }
}

/// An `io::Error` like `e`: the same OS error, the same rustls error inside, or the same kind
/// and text.
pub(crate) fn copy_io(e: &io::Error) -> io::Error {
    if let Some(code) = e.raw_os_error() {
        return io::Error::from_raw_os_error(code);
    }
    match e.get_ref() {
        Some(inner) => match inner.downcast_ref::<rustls::Error>() {
            Some(tls) => io::Error::new(e.kind(), tls.clone()),
            None => io::Error::new(e.kind(), inner.to_string()),
        },
        None => io::Error::from(e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::Duration;

    use super::*;
    use crate::error::DecodeError;

    /// Every variant: the copy prints the same, chains the same sources and answers the same
    /// predicates.
    #[test]
    fn copies_read_like_the_original() {
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let all = vec![
            RemotingError::Connect {
                addr: "a:1".into(),
                source: io::Error::from_raw_os_error(111),
            },
            RemotingError::ConnectTimeout {
                addr: "a:1".into(),
                after: Duration::from_millis(3),
            },
            RemotingError::Timeout {
                addr: "a:1".into(),
                opaque: 7,
                after: Duration::from_secs(1),
                written: true,
            },
            RemotingError::ConnectionClosed {
                addr: "a:1".into(),
                written: false,
            },
            RemotingError::Protocol {
                addr: "a:1".into(),
                written: true,
                source: DecodeError::FrameTooShort { len: 1 },
            },
            RemotingError::Backoff {
                addr: "a:1".into(),
                retry_in: Duration::from_millis(5),
                last: Arc::new(RemotingError::Shutdown),
            },
            RemotingError::Overloaded { addr: "a:1".into() },
            RemotingError::FrameTooLarge { len: 9, max: 8 },
            RemotingError::Decode(DecodeError::UnknownSerializeType(9)),
            RemotingError::Encode(EncodeError::Io(io::Error::other("disk"))),
            RemotingError::Shutdown,
            RemotingError::Tls {
                addr: "a:1".into(),
                source: tls,
            },
        ];
        for e in &all {
            let c = e.duplicate();
            assert_eq!(c.to_string(), e.to_string());
            assert_eq!(c.maybe_delivered(), e.maybe_delivered(), "{e}");
            assert_eq!(c.is_timeout(), e.is_timeout(), "{e}");
            assert_eq!(c.is_connection(), e.is_connection(), "{e}");
            assert_eq!(c.is_certificate_error(), e.is_certificate_error(), "{e}");
            assert_eq!(
                c.source().map(ToString::to_string),
                e.source().map(ToString::to_string),
                "{e}"
            );
        }
        assert!(all[all.len() - 1].duplicate().is_certificate_error());
    }
}
