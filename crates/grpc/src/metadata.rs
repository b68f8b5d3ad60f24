//! The request metadata of every call (the 5.x clients' `Signature.sign`): who the client is,
//! which protocol it speaks, when the request was made, and the ACL signature over that time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rmq_remoting::acl::Credentials;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// `x-mq-language`: the 5.x clients' `Language` name of this client.
pub const LANGUAGE: &str = "RUST";
/// `x-mq-protocol`: the protocol version.
pub const PROTOCOL_VERSION: &str = "v2";

const CLIENT_ID: &str = "x-mq-client-id";
const REQUEST_ID: &str = "x-mq-request-id";
const LANGUAGE_KEY: &str = "x-mq-language";
const CLIENT_VERSION: &str = "x-mq-client-version";
const PROTOCOL: &str = "x-mq-protocol";
const DATE_TIME: &str = "x-mq-date-time";
const NAMESPACE: &str = "x-mq-namespace";
const SESSION_TOKEN: &str = "x-mq-session-token";
const AUTHORIZATION: &str = "authorization";

/// What a client announces on every request. The constant values are validated once, here;
/// each request then only adds its id, its date-time and the signature over it.
#[derive(Debug, Clone)]
pub struct ClientMeta {
    client_id: AsciiMetadataValue,
    version: AsciiMetadataValue,
    namespace: Option<AsciiMetadataValue>,
    token: Option<AsciiMetadataValue>,
    credentials: Option<Credentials>,
}

/// A value that is not valid ASCII metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not valid gRPC metadata (visible ASCII only): {value:?}")]
pub struct MetadataError {
    what: &'static str,
    value: String,
}

fn ascii(what: &'static str, value: &str) -> Result<AsciiMetadataValue, MetadataError> {
    AsciiMetadataValue::try_from(value).map_err(|_| MetadataError {
        what,
        value: value.to_owned(),
    })
}

impl ClientMeta {
    /// The metadata of a client: its id, version (`x-mq-client-version`), namespace (sent when
    /// not empty) and ACL credentials.
    ///
    /// # Errors
    /// A value that cannot be sent as gRPC metadata (not visible ASCII).
    pub fn new(
        client_id: &str,
        version: &str,
        namespace: &str,
        credentials: Option<Credentials>,
    ) -> Result<Self, MetadataError> {
        Ok(Self {
            client_id: ascii("client id", client_id)?,
            version: ascii("client version", version)?,
            namespace: if namespace.is_empty() {
                None
            } else {
                Some(ascii("namespace", namespace)?)
            },
            token: credentials
                .as_ref()
                .and_then(Credentials::security_token)
                .map(|t| ascii("security token", t))
                .transpose()?,
            credentials,
        })
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.client_id.to_str().unwrap_or_default()
    }

    /// Writes the metadata of one request made at `now` into `map`.
    pub fn apply(&self, map: &mut MetadataMap, now: SystemTime) {
        map.insert(CLIENT_ID, self.client_id.clone());
        map.insert(LANGUAGE_KEY, AsciiMetadataValue::from_static(LANGUAGE));
        map.insert(CLIENT_VERSION, self.version.clone());
        map.insert(PROTOCOL, AsciiMetadataValue::from_static(PROTOCOL_VERSION));
        if let Ok(id) = AsciiMetadataValue::try_from(next_request_id()) {
            map.insert(REQUEST_ID, id);
        }
        let date_time = date_time(now);
        if let Some(ns) = &self.namespace {
            map.insert(NAMESPACE, ns.clone());
        }
        if let Some(token) = &self.token {
            map.insert(SESSION_TOKEN, token.clone());
        }
        if let Some(credentials) = &self.credentials {
            if let Ok(auth) =
                AsciiMetadataValue::try_from(credentials.grpc_authorization(&date_time))
            {
                map.insert(AUTHORIZATION, auth);
            }
        }
        if let Ok(value) = AsciiMetadataValue::try_from(date_time) {
            map.insert(DATE_TIME, value);
        }
    }
}

/// A process-unique request id: a random 64-bit prefix drawn once and a counter.
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| fastrand::u64(..));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}-{n:x}")
}

/// `yyyyMMdd'T'HHmmss'Z'` in UTC, the 5.x clients' `x-mq-date-time` format.
pub(crate) fn date_time(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn date_time_is_utc_basic_iso() {
        let table = [
            (0, "19700101T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (1_704_067_199, "20231231T235959Z"),
            (1_709_210_096, "20240229T123456Z"),
        ];
        for (secs, want) in table {
            assert_eq!(date_time(UNIX_EPOCH + Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn every_header_is_set_and_signed_over_the_date() {
        let meta = ClientMeta::new(
            "127.0.0.1@1#rmq",
            "0.1.0",
            "ns1",
            Some(Credentials::new("ak", "sk")),
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        let mut map = MetadataMap::new();
        meta.apply(&mut map, now);
        let get = |k: &str| map.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(get("x-mq-client-id"), "127.0.0.1@1#rmq");
        assert_eq!(get("x-mq-language"), "RUST");
        assert_eq!(get("x-mq-protocol"), "v2");
        assert_eq!(get("x-mq-client-version"), "0.1.0");
        assert_eq!(get("x-mq-namespace"), "ns1");
        assert_eq!(get("x-mq-date-time"), "20240229T123456Z");
        assert!(!get("x-mq-request-id").is_empty());
        assert_eq!(
            get("authorization"),
            Credentials::new("ak", "sk").grpc_authorization("20240229T123456Z")
        );
        // HMAC-SHA1("sk", "20240229T123456Z"), checked with `openssl dgst -sha1 -hmac sk`.
        assert!(
            get("authorization").ends_with("Signature=8E5363CB9D36D07AC7656BFB68D9789F81F99367")
        );
        let mut other = MetadataMap::new();
        meta.apply(&mut other, now);
        assert_ne!(
            other.get("x-mq-request-id"),
            map.get("x-mq-request-id"),
            "request ids differ"
        );
    }

    #[test]
    fn no_credentials_no_authorization_and_bad_values_refused() {
        let meta = ClientMeta::new("c", "1", "", None).unwrap();
        let mut map = MetadataMap::new();
        meta.apply(&mut map, SystemTime::now());
        assert!(map.get("authorization").is_none());
        assert!(map.get("x-mq-namespace").is_none());
        assert!(ClientMeta::new("bad\nid", "1", "", None).is_err());
    }
}
