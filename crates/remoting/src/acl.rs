//! ACL request signing: Java's `AclClientRPCHook` (RocketMQ ACL 1.0, brokers and name servers
//! with `aclEnable=true`).
//!
//! Before a request is encoded, the hook adds `AccessKey` (and `SecurityToken` when set) to its
//! ext fields, then signs: the values of every ext field except `Signature`, in key order (Java's
//! `TreeMap`), concatenated as UTF-8, followed by the body, HMAC-SHA1 with the secret key,
//! Base64-encoded (standard alphabet, padded) into the `Signature` ext field.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rmq_common::ExtFields;
use sha1::Sha1;

use crate::command::RemotingCommand;
use crate::processor::RpcHook;

/// Ext field carrying the access key.
pub const ACCESS_KEY: &str = "AccessKey";
/// Ext field carrying the signature.
pub const SIGNATURE: &str = "Signature";
/// Ext field carrying the security token (temporary credentials).
pub const SECURITY_TOKEN: &str = "SecurityToken";

/// An access key / secret key pair, with an optional security token (Java `SessionCredentials`).
/// `Debug` never shows the secret key or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key: String,
    secret_key: String,
    security_token: Option<String>,
}

impl Credentials {
    /// Credentials of `access_key` signed with `secret_key`.
    #[must_use]
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }

    /// The same credentials, also sending `token` as `SecurityToken`.
    #[must_use]
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }

    /// The access key.
    #[must_use]
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The security token, when set.
    #[must_use]
    pub fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }

    /// The `authorization` metadata value of a RocketMQ 5 gRPC request sent at `date_time` (the
    /// request's `x-mq-date-time` value), as the 5.x clients' `Signature`:
    /// `MQv2-HMAC-SHA1 Credential=<access key>, SignedHeaders=x-mq-date-time,
    /// Signature=<HMAC-SHA1(secret, date_time), upper-case hex>`.
    ///
    /// ```
    /// use rmq_remoting::acl::Credentials;
    /// let auth = Credentials::new("ak", "secret").grpc_authorization("20240101T000000Z");
    /// assert!(auth.starts_with("MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature="));
    /// assert_eq!(auth.len(), "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=".len() + 40);
    /// ```
    #[must_use]
    pub fn grpc_authorization(&self, date_time: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(self.secret_key.as_bytes()) else {
            unreachable!("HMAC-SHA1 takes keys of any length")
        };
        mac.update(date_time.as_bytes());
        let mut out = format!(
            "MQv2-HMAC-SHA1 Credential={}, SignedHeaders=x-mq-date-time, Signature=",
            self.access_key
        );
        for b in mac.finalize().into_bytes() {
            out.push_str(&format!("{b:02X}"));
        }
        out
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The signature of a request with these ext fields and body: Base64(HMAC-SHA1(secret, values
/// of every ext field but `Signature`, in key order, then the body)). Keys are ordered by their
/// bytes, which is Java's `String` order for the ASCII keys of the protocol.
///
/// ```
/// use rmq_common::ExtFields;
/// use rmq_remoting::acl::signature;
///
/// let mut ext = ExtFields::new();
/// ext.insert("b", "2");
/// ext.insert("a", "1");
/// ext.insert("AccessKey", "ak");
/// // Signs "ak" + "1" + "2" + body ("AccessKey" < "a" < "b").
/// let sig = signature(&ext, b"hello", "secret");
/// assert_eq!(sig, "QmLgsmjuC3YR3h9U4NilQ3nvl9g=");
/// ```
#[must_use]
pub fn signature(ext: &ExtFields, body: &[u8], secret_key: &str) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()) else {
        unreachable!("HMAC-SHA1 takes keys of any length")
    };
    for (key, value) in ext.to_sorted() {
        if key != SIGNATURE {
            mac.update(value.as_bytes());
        }
    }
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Signs every request with [`Credentials`] (Java's `AclClientRPCHook`); install it with
/// [`RemotingClient::set_hook`](crate::RemotingClient::set_hook).
#[derive(Debug, Clone)]
pub struct AclHook {
    credentials: Credentials,
}

impl AclHook {
    /// A hook signing with `credentials`.
    #[must_use]
    pub fn new(credentials: Credentials) -> Self {
        Self { credentials }
    }

    /// Adds `AccessKey` (and `SecurityToken`) to `req` and signs it. Entries of
    /// [`RemotingCommand::encoded_ext`] are first moved into the ext fields
    /// ([`RemotingCommand::materialize_ext`]): every field sent is signed.
    pub fn sign(&self, req: &mut RemotingCommand) {
        req.materialize_ext_in_place();
        let c = &self.credentials;
        req.ext_fields.insert(ACCESS_KEY, c.access_key.as_str());
        if let Some(token) = &c.security_token {
            req.ext_fields.insert(SECURITY_TOKEN, token.as_str());
        }
        let sig = signature(&req.ext_fields, &req.body, &c.secret_key);
        req.ext_fields.insert(SIGNATURE, sig);
    }
}

impl RpcHook for AclHook {
    fn before_request(&self, _addr: &str, req: &mut RemotingCommand) {
        self.sign(req);
    }

    fn after_response(&self, _addr: &str, _resp: &mut RemotingCommand) {}
}

#[cfg(test)]
mod tests;
