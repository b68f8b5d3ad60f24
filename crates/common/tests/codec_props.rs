//! Property tests: properties and batch bodies round-trip.

use bytes::Bytes;
use proptest::prelude::*;
use rmq_common::{decode_batch, encode_batch, Message, Properties};

/// Names and values Java can carry: non-empty, without the \x01 / \x02 separators.
fn token() -> impl Strategy<Value = String> {
    "[^\u{1}\u{2}]{1,12}"
}

proptest! {
    #[test]
    fn properties_round_trip(entries in proptest::collection::vec((token(), token()), 0..12)) {
        let p: Properties = entries.into_iter().collect();
        let encoded = p.encode();
        prop_assert_eq!(Properties::decode(&encoded), p.clone());
        // The 4.9.1 – 5.1.4 form without the trailing separator decodes the same.
        let trimmed = encoded.strip_suffix('\u{2}').unwrap_or(&encoded);
        prop_assert_eq!(Properties::decode(trimmed), p);
    }

    #[test]
    fn decode_never_keeps_empty_names_or_values(s in "[a-c\u{1}\u{2}]{0,40}") {
        let p = Properties::decode(&s);
        for (k, v) in p.iter() {
            prop_assert!(!k.is_empty() && !v.is_empty());
            let clean = !k.contains(['\u{1}', '\u{2}']) && !v.contains('\u{2}');
            prop_assert!(clean, "separator kept in {:?}={:?}", k, v);
        }
    }

    #[test]
    fn batch_round_trips(
        items in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..64), any::<i32>(), proptest::option::of(token())),
            1..8,
        )
    ) {
        let msgs: Vec<Message> = items
            .into_iter()
            .map(|(body, flag, tag)| {
                let m = Message::new("BatchTopic", Bytes::from(body)).with_flag(flag);
                match tag { Some(t) => m.with_tags(t), None => m }
            })
            .collect();
        let wire = encode_batch(&msgs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut back = decode_batch(wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for m in &mut back {
            prop_assert_eq!(m.topic(), "");
            m.set_topic("BatchTopic");
        }
        prop_assert_eq!(back, msgs);
    }
}
