//! Value parsers for the options that carry structure: `--queue BROKER:ID`, `--property k=v`,
//! `--keys K1,K2`.

/// A queue named on the command line: `BROKER:ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueArg {
    /// The broker name.
    pub(crate) broker: String,
    /// The queue id.
    pub(crate) queue_id: i32,
}

/// Parses `BROKER:ID` (the last `:` splits, so a broker name may itself contain `:`).
pub(crate) fn parse_queue(s: &str) -> Result<QueueArg, String> {
    let (broker, id) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected BROKER:ID, got `{s}`"))?;
    let broker = broker.trim();
    if broker.is_empty() {
        return Err(format!("empty broker name in `{s}`"));
    }
    let queue_id: i32 = id
        .trim()
        .parse()
        .map_err(|_| format!("queue id `{id}` is not a number (expected BROKER:ID)"))?;
    if queue_id < 0 {
        return Err(format!("queue id {queue_id} is negative"));
    }
    Ok(QueueArg {
        broker: broker.to_owned(),
        queue_id,
    })
}

/// Parses `k=v` (the first `=` splits; the value may contain `=` and may not be empty, as a
/// RocketMQ property).
pub(crate) fn parse_property(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected K=V, got `{s}`"))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("empty property name in `{s}`"));
    }
    if v.trim().is_empty() {
        return Err(format!("empty value for property `{k}`"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Message keys named on the command line (`K1,K2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys(pub(crate) Vec<String>);

/// Parses `K1,K2,...`: trimmed, empty items skipped; at least one key, none with whitespace
/// (keys travel space-separated in the `KEYS` property).
pub(crate) fn parse_keys(s: &str) -> Result<Keys, String> {
    let keys: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(format!("no key in `{s}`"));
    }
    if let Some(k) = keys.iter().find(|k| k.chars().any(char::is_whitespace)) {
        return Err(format!("key `{k}` contains whitespace"));
    }
    Ok(Keys(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_broker_and_id() {
        let q = parse_queue("broker-a:3").unwrap();
        assert_eq!(
            q,
            QueueArg {
                broker: "broker-a".into(),
                queue_id: 3
            }
        );
        let q = parse_queue("ns:broker:0").unwrap();
        assert_eq!((q.broker.as_str(), q.queue_id), ("ns:broker", 0));
        for bad in ["broker-a", ":1", "b:", "b:x", "b:-1", "b:99999999999"] {
            assert!(parse_queue(bad).is_err(), "{bad}");
        }
        assert!(parse_queue("b:x").unwrap_err().contains("BROKER:ID"));
    }

    #[test]
    fn property_splits_at_the_first_equals() {
        assert_eq!(parse_property("a=1").unwrap(), ("a".into(), "1".into()));
        assert_eq!(
            parse_property("url=a=b").unwrap(),
            ("url".into(), "a=b".into())
        );
        assert_eq!(parse_property(" k = v").unwrap(), ("k".into(), " v".into()));
        for bad in ["a", "=1", "a=", "a=  "] {
            assert!(parse_property(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_comma_separated() {
        assert_eq!(parse_keys("K1,K2").unwrap().0, vec!["K1", "K2"]);
        assert_eq!(parse_keys(" K1 , ,K2,").unwrap().0, vec!["K1", "K2"]);
        assert_eq!(parse_keys("only").unwrap().0, vec!["only"]);
        for bad in ["", ",", " , ", "a b,c"] {
            assert!(parse_keys(bad).is_err(), "{bad:?}");
        }
    }
}
