//! Route body decoding: strict JSON first, then the fastjson numeric-key fallback (§7.2).
//!
//! Name servers older than 4.9.4 (and newer ones answering a client that does not ask for
//! standard JSON) write `Map<Long, String>` keys without quotes: `{"brokerAddrs":{0:"host:port"}}`.
//! That is not JSON, so when the strict parse fails the body is rewritten with every such key
//! quoted and parsed again.

use std::borrow::Cow;

use rmq_common::route::TopicRouteData;

use crate::error::RouteDecodeError;
use crate::limits::check_route;

/// Decodes a `GET_ROUTEINFO_BY_TOPIC` response body into a [`TopicRouteData`].
///
/// Standard JSON is parsed as it is; when that fails, the fastjson form with unquoted numeric
/// map keys (`{0:"127.0.0.1:10911"}`) is accepted by quoting those keys first. Unknown fields
/// are ignored.
///
/// ```
/// use rmq_nameserver_client::decode_route;
///
/// let fastjson = br#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a",
///     "cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a",
///     "perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
/// let route = decode_route(fastjson).unwrap();
/// assert_eq!(route.broker_datas[0].broker_addrs[&0], "10.0.0.1:10911");
/// assert!(decode_route(b"{\"queueDatas\":[").is_err());
/// ```
///
/// The decoded route's queue counts are checked against
/// [`MAX_QUEUES_PER_BROKER`](crate::MAX_QUEUES_PER_BROKER) and
/// [`MAX_QUEUES_PER_ROUTE`](crate::MAX_QUEUES_PER_ROUTE).
///
/// # Errors
/// [`RouteDecodeError::Empty`] for an empty body, [`RouteDecodeError::Invalid`] when neither
/// form parses (with serde's description, line and column of the problem),
/// [`RouteDecodeError::TooManyQueues`] for a count above the limits.
pub fn decode_route(body: &[u8]) -> Result<TopicRouteData, RouteDecodeError> {
    let route = parse_route(body)?;
    check_route(&route)?;
    Ok(route)
}

/// Strict JSON, then the fastjson fallback.
fn parse_route(body: &[u8]) -> Result<TopicRouteData, RouteDecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RouteDecodeError::Empty);
    }
    let strict = match serde_json::from_slice::<TopicRouteData>(body) {
        Ok(route) => return Ok(route),
        Err(e) => e,
    };
    match quote_numeric_keys(body) {
        // Nothing to quote: the strict error is the accurate one.
        Cow::Borrowed(_) => Err(RouteDecodeError::invalid(&strict)),
        Cow::Owned(rewritten) => {
            serde_json::from_slice::<TopicRouteData>(&rewritten).map_err(|fallback| {
                tracing::debug!(strict = %strict, fallback = %fallback, "route body rejected");
                RouteDecodeError::invalid(&fallback)
            })
        }
    }
}

/// Quotes every unquoted `-?digits` object key (after `{` or `,`, outside strings).
///
/// Returns the input unchanged (borrowed) when there is nothing to quote.
pub(crate) fn quote_numeric_keys(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0usize; // input[..copied] is already in `out`
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0usize;
    while i < input.len() {
        let b = input[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'{' | b',' => {
                i += 1;
                if let Some((start, end)) = numeric_key_at(input, i) {
                    let buf = out.get_or_insert_with(|| Vec::with_capacity(input.len() + 16));
                    buf.extend_from_slice(&input[copied..start]);
                    buf.push(b'"');
                    buf.extend_from_slice(&input[start..end]);
                    buf.push(b'"');
                    copied = end;
                    i = end;
                }
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(input),
        Some(mut buf) => {
            buf.extend_from_slice(&input[copied..]);
            Cow::Owned(buf)
        }
    }
}

/// At `from` (just after `{` or `,`): optional whitespace, `-?digits`, optional whitespace, `:`.
/// Returns the span of the number.
fn numeric_key_at(input: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i < input.len() && input[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    if i < input.len() && input[i] == b'-' {
        i += 1;
    }
    let digits = i;
    while i < input.len() && input[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits {
        return None;
    }
    let end = i;
    while i < input.len() && input[i].is_ascii_whitespace() {
        i += 1;
    }
    (i < input.len() && input[i] == b':').then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        String::from_utf8(quote_numeric_keys(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn quotes_keys_after_brace_and_comma() {
        assert_eq!(quoted(r#"{0:"a",1:"b"}"#), r#"{"0":"a","1":"b"}"#);
        assert_eq!(quoted(r#"{ -12 : 3 , 4:5}"#), r#"{ "-12" : 3 , "4":5}"#);
    }

    #[test]
    fn leaves_values_strings_and_arrays_alone() {
        for s in [
            r#"{"a":1,"b":[1,2,3]}"#,
            r#"{"k":"{0:x}","j":",1:"}"#,
            r#"{"esc":"\"{0:1}"}"#,
            r#"[1,2]"#,
        ] {
            assert!(
                matches!(quote_numeric_keys(s.as_bytes()), Cow::Borrowed(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn escaped_backslash_before_quote_ends_the_string() {
        assert_eq!(quoted(r#"{"a":"x\\",1:2}"#), r#"{"a":"x\\","1":2}"#);
    }

    #[test]
    fn array_numbers_followed_by_colon_are_not_possible_but_handled() {
        // `[1,2:3]` is not JSON either way; the scanner only promises to quote `-?digits:`.
        assert_eq!(quoted("[1,2:3]"), r#"[1,"2":3]"#);
    }

    #[test]
    fn empty_and_broken_bodies_are_typed_errors() {
        assert!(matches!(decode_route(b""), Err(RouteDecodeError::Empty)));
        assert!(matches!(
            decode_route(b"  \n"),
            Err(RouteDecodeError::Empty)
        ));
        let err = decode_route(br#"{"queueDatas":[{"brokerName":"a","perm":"x"}]}"#).unwrap_err();
        assert!(matches!(err, RouteDecodeError::Invalid { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("line 1"), "{text}");
        let err = decode_route(br#"{"brokerDatas":[{"brokerAddrs":{0:}}]}"#).unwrap_err();
        assert!(matches!(err, RouteDecodeError::Invalid { .. }), "{err}");
    }
}
