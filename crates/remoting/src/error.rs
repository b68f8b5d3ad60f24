//! Error types of the remoting layer: [`EncodeError`], [`DecodeError`] and [`RemotingError`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A command could not be encoded into a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The request code does not fit the ROCKETMQ header's signed 16-bit field.
    #[error("code {code} does not fit the ROCKETMQ header (i16)")]
    CodeOutOfRange {
        /// The code.
        code: i32,
    },
    /// The version does not fit the ROCKETMQ header's signed 16-bit field.
    #[error("version {version} does not fit the ROCKETMQ header (i16)")]
    VersionOutOfRange {
        /// The version.
        version: i32,
    },
    /// An ext-field key is longer than the ROCKETMQ header's 16-bit key length allows.
    #[error("ext-field key of {len} bytes is too long for the ROCKETMQ header (max 32767)")]
    KeyTooLong {
        /// Key length in bytes.
        len: usize,
    },
    /// The header is longer than the 24-bit header length field allows.
    #[error("header of {len} bytes exceeds the 24-bit header length (max 16777215)")]
    HeaderTooLarge {
        /// Header length in bytes.
        len: usize,
    },
    /// The whole frame is longer than the configured (or the absolute `i32`) maximum.
    #[error("frame of {len} bytes exceeds the maximum frame length {max}")]
    FrameTooLarge {
        /// Frame length including the 4-byte length field.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// Writing the frame failed.
    #[error("i/o error while encoding")]
    Io(#[from] io::Error),
}

/// A frame could not be decoded. The connection it came from cannot be trusted any more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length field announces a frame longer than the maximum (Java: `length + 4 > max`).
    #[error("frame of {len} bytes (length field + 4) exceeds the maximum frame length {max}")]
    FrameTooLarge {
        /// The announced frame length including the 4-byte length field.
        len: u64,
        /// The maximum allowed.
        max: usize,
    },
    /// The length field is smaller than the 4-byte header-length word that must follow it.
    #[error("frame length {len} is shorter than the 4-byte header length word")]
    FrameTooShort {
        /// The length field value.
        len: u32,
    },
    /// The high byte of the header-length word is neither JSON (0) nor ROCKETMQ (1).
    #[error("unknown serialize type {0}")]
    UnknownSerializeType(u8),
    /// The header length is larger than the frame (Java: "bad header length").
    #[error("header length {header_len} exceeds the frame's {available} bytes after the header length word")]
    HeaderTooLong {
        /// The 24-bit header length.
        header_len: usize,
        /// Bytes available for header and body.
        available: usize,
    },
    /// The JSON header is not valid.
    #[error("bad JSON header: {0}")]
    Json(String),
    /// The ROCKETMQ binary header is not valid.
    #[error("bad ROCKETMQ header: {0}")]
    Binary(String),
    /// The peer ended the connection inside a frame: `received` bytes of a frame of
    /// `expected` bytes (length field included; 4 when not even the length field was complete).
    #[error("the connection ended inside a frame ({received} of {expected} bytes received)")]
    Truncated {
        /// Bytes of the frame received before the end of the stream.
        received: usize,
        /// The frame's length, length field included (4 when the length field was cut).
        expected: usize,
    },
    /// Reading failed.
    #[error("i/o error while decoding")]
    Io(#[from] io::Error),
}

impl DecodeError {
    /// The same error again, for each waiter of a connection closed over it (an I/O error
    /// keeps its OS code, or its kind and text).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::FrameTooLarge { len, max } => Self::FrameTooLarge {
                len: *len,
                max: *max,
            },
            Self::FrameTooShort { len } => Self::FrameTooShort { len: *len },
            Self::UnknownSerializeType(t) => Self::UnknownSerializeType(*t),
            Self::HeaderTooLong {
                header_len,
                available,
            } => Self::HeaderTooLong {
                header_len: *header_len,
                available: *available,
            },
            Self::Json(m) => Self::Json(m.clone()),
            Self::Binary(m) => Self::Binary(m.clone()),
            Self::Truncated { received, expected } => Self::Truncated {
                received: *received,
                expected: *expected,
            },
            Self::Io(e) => Self::Io(match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            }),
        }
    }
}

/// The error of a remote call ([`RemotingClient`](crate::RemotingClient) and connection handles).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemotingError {
    /// Connecting to `addr` failed.
    #[error("connect to {addr} failed")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Connecting to `addr` did not finish in time.
    #[error("connect to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// The address.
        addr: String,
        /// The time spent.
        after: Duration,
    },
    /// No reply arrived before the deadline.
    #[error("request {opaque} to {addr} timed out after {after:?} (written: {written})")]
    Timeout {
        /// The address.
        addr: String,
        /// The request's opaque.
        opaque: i32,
        /// The timeout.
        after: Duration,
        /// Whether the frame was handed to the socket before the deadline.
        written: bool,
    },
    /// The connection closed before a reply arrived.
    #[error("connection to {addr} closed (request written: {written})")]
    ConnectionClosed {
        /// The address.
        addr: String,
        /// Whether the frame was handed to the socket before the connection closed.
        written: bool,
    },
    /// The peer broke the protocol: it sent a frame this side cannot decode (a length over the
    /// maximum or below 4, a header longer than its frame, a header that does not parse) or ended
    /// the connection inside a frame, so the connection was closed under the call. The
    /// connection-level cousin of [`ConnectionClosed`](Self::ConnectionClosed), with the cause
    /// as the source (also [`protocol_cause`](Self::protocol_cause)).
    #[error("connection to {addr} closed on a protocol error from the peer (request written: {written})")]
    Protocol {
        /// The address.
        addr: String,
        /// Whether the frame was handed to the socket before the connection closed.
        written: bool,
        /// What could not be decoded.
        #[source]
        source: DecodeError,
    },
    /// Connecting to `addr` failed recently and the client is backing off
    /// ([`RemotingConfig::reconnect_backoff`](crate::RemotingConfig::reconnect_backoff)): the
    /// call failed at once, without a connect attempt. The first call after `retry_in` tries
    /// again. Never delivered.
    #[error("connect to {addr} is backed off for {retry_in:?} more after a failed connect")]
    Backoff {
        /// The address.
        addr: String,
        /// Time left until the next connect attempt is allowed.
        retry_in: Duration,
        /// The failure of the last connect attempt ([`Connect`](Self::Connect),
        /// [`ConnectTimeout`](Self::ConnectTimeout) or [`Tls`](Self::Tls)), shared by the calls
        /// failed in its window. It is the [`source`](std::error::Error::source) (as an
        /// `Arc<RemotingError>`: downcast to that type, or read this field).
        #[source]
        last: Arc<RemotingError>,
    },
    /// Too many async or oneway calls in flight, or the connection's queue of unwritten frames
    /// is over its byte budget: at once with [`OverloadPolicy::Fail`](crate::OverloadPolicy::Fail),
    /// at the call's deadline with [`OverloadPolicy::Wait`](crate::OverloadPolicy::Wait).
    /// Nothing was queued.
    #[error("too many requests in flight to {addr}")]
    Overloaded {
        /// The address.
        addr: String,
    },
    /// The request frame is larger than the configured maximum frame length.
    #[error("frame of {len} bytes exceeds the maximum frame length {max}")]
    FrameTooLarge {
        /// Frame length including the 4-byte length field.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The peer sent a frame that cannot be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The request cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The client or server was shut down.
    #[error("remoting client shut down")]
    Shutdown,
    /// TLS with `addr` failed before any request reached it: the handshake failed (a
    /// certificate not trusted or not valid for the name, a plain server that dropped the
    /// connection, no client certificate where one is required), the peer refused the session
    /// right after it, or the peer answered a plain connection with TLS.
    ///
    /// [`is_certificate_error`](Self::is_certificate_error) tells certificate failures apart;
    /// a rustls reason is the source's inner error (`source.get_ref()`, a [`rustls::Error`]).
    #[error("TLS with {addr} failed")]
    Tls {
        /// The address.
        addr: String,
        /// The cause: a [`rustls::Error`] inside an [`io::Error`], or the I/O failure.
        #[source]
        source: io::Error,
    },
}

impl RemotingError {
    /// Whether this is a reply or connect timeout.
    #[must_use]
    pub const fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::ConnectTimeout { .. })
    }

    /// Whether this is a connection-level failure (connect failed, timed out or is backed off,
    /// the connection closed, also on a protocol error, or TLS failed).
    #[must_use]
    pub const fn is_connection(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ConnectTimeout { .. }
                | Self::ConnectionClosed { .. }
                | Self::Protocol { .. }
                | Self::Backoff { .. }
                | Self::Tls { .. }
        )
    }

    /// What the peer sent that could not be decoded, when the connection closed over it
    /// ([`RemotingError::Protocol`]).
    ///
    /// ```
    /// use rmq_remoting::{DecodeError, RemotingError};
    /// let cause = DecodeError::FrameTooShort { len: 0 };
    /// let e = RemotingError::Protocol { addr: "127.0.0.1:9876".into(), written: true, source: cause };
    /// assert!(matches!(e.protocol_cause(), Some(DecodeError::FrameTooShort { len: 0 })));
    /// assert!(e.is_connection() && e.maybe_delivered());
    /// ```
    #[must_use]
    pub fn protocol_cause(&self) -> Option<&DecodeError> {
        match self {
            Self::Protocol { source, .. } | Self::Decode(source) => Some(source),
            _ => None,
        }
    }

    /// Whether this is a TLS failure ([`RemotingError::Tls`]).
    #[must_use]
    pub const fn is_tls(&self) -> bool {
        matches!(self, Self::Tls { .. })
    }

    /// Whether this is a TLS failure over a certificate: the server's was not trusted, had
    /// expired or did not match the name, or the peer refused ours (or its absence). A
    /// [`Backoff`](Self::Backoff) after such a failure is one too.
    ///
    /// ```
    /// use rmq_remoting::RemotingError;
    /// let closed = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
    /// let e = RemotingError::Tls { addr: "127.0.0.1:10911".into(), source: closed };
    /// assert!(e.is_tls() && !e.is_certificate_error() && !e.maybe_delivered());
    /// ```
    #[must_use]
    pub fn is_certificate_error(&self) -> bool {
        let source = match self {
            Self::Tls { source, .. } => source,
            Self::Backoff { last, .. } => return last.is_certificate_error(),
            _ => return false,
        };
        source
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .is_some_and(crate::tls::is_certificate_error)
    }

    /// Whether the request may have reached the peer.
    ///
    /// `false` when the request certainly never reached the socket: connect failure, timeout
    /// or backoff, overload, shutdown, encode failure or oversize frame, or a frame that was still
    /// queued when the connection died or the deadline passed; and when TLS failed (the peer
    /// took no request). `true` otherwise.
    ///
    /// ```
    /// use rmq_remoting::RemotingError;
    /// let e = RemotingError::ConnectionClosed { addr: "127.0.0.1:1".into(), written: false };
    /// assert!(!e.maybe_delivered());
    /// assert!(RemotingError::Timeout {
    ///     addr: "a".into(), opaque: 1, after: std::time::Duration::from_secs(1), written: true
    /// }.maybe_delivered());
    /// ```
    #[must_use]
    pub const fn maybe_delivered(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Overloaded { .. }
            | Self::Shutdown
            | Self::Encode(_)
            | Self::FrameTooLarge { .. }
            | Self::Backoff { .. }
            | Self::Tls { .. } => false,
            Self::Timeout { written, .. }
            | Self::ConnectionClosed { written, .. }
            | Self::Protocol { written, .. } => *written,
            Self::Decode(_) => true,
        }
    }
}

#[allow(dead_code)]
const fn assert_send_sync<T: Send + Sync + 'static>() {}
const _: () = assert_send_sync::<RemotingError>();
const _: () = assert_send_sync::<DecodeError>();
const _: () = assert_send_sync::<EncodeError>();
