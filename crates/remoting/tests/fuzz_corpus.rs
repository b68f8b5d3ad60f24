//! Replays the checked-in fuzz corpora (`fuzz/corpus/<target>/`) through the invariants of the
//! cargo-fuzz targets, so they run in every `cargo test` (on stable, without cargo-fuzz).

use std::path::PathBuf;

use rmq_remoting::fuzzing::{check_decode, check_header};

/// The files of `fuzz/corpus/<target>`, sorted; at least `min` of them (the corpus is checked in).
fn corpus(target: &str, min: usize) -> Vec<PathBuf> {
    let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "the {target} corpus is checked in ({} files)",
        files.len()
    );
    files
}

/// Runs `check` over every file of the corpus, naming the file that breaks an invariant;
/// returns what `check` returned for each file.
fn replay<T>(target: &str, min: usize, check: fn(&[u8]) -> T) -> Vec<T> {
    corpus(target, min)
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).expect("corpus file");
            std::panic::catch_unwind(|| check(&bytes))
                .unwrap_or_else(|_| panic!("invariant broken by {}", path.display()))
        })
        .collect()
}

#[test]
fn corpus_holds_the_decoder_invariants() {
    replay("decode_frame", 30, check_decode);
}

#[test]
fn corpus_holds_the_header_invariants() {
    let decoded = replay("decode_header", 20, check_header);
    // Both serializations stay covered: headers each decoder accepts (the round trips run).
    let json = decoded.iter().filter(|d| d.json).count();
    let binary = decoded.iter().filter(|d| d.binary).count();
    assert!(json >= 8, "{json} files decode as a JSON header");
    assert!(binary >= 5, "{binary} files decode as a ROCKETMQ header");
    // ... and the JSON fast path: inputs it takes (checked against the full decoder), and
    // JSON headers it leaves to the full decoder.
    let fast = decoded.iter().filter(|d| d.json_fast).count();
    assert!(fast >= 1, "no file takes the JSON fast path");
    assert!(fast < json, "every JSON file takes the fast path");
}

#[test]
fn a_split_frame_holds_the_invariants() {
    // A frame split in two: the first piece alone must not be consumed; the whole must decode.
    let frame = [0, 0, 0, 8, 0, 0, 0, 2, b'{', b'}'];
    check_decode(&frame);
    check_decode(&frame[..6]);
}

#[test]
fn both_header_serializations_hold_the_invariants() {
    // The same request in each serialization, and inputs each decoder rejects.
    let json = check_header(br#"{"code":105,"extFields":{"topic":"TopicTest"},"opaque":1}"#);
    assert!(json.json && json.json_fast && !json.binary);
    let spaced = check_header(br#"{"code": 105, "opaque": 1}"#);
    assert!(
        spaced.json && !spaced.json_fast,
        "whitespace takes the full decoder"
    );
    let mut binary = vec![0, 105, 0, 1, 0xDF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    binary.extend_from_slice(&[0, 0, 0, 20, 0, 5]);
    binary.extend_from_slice(b"topic");
    binary.extend_from_slice(&[0, 0, 0, 9]);
    binary.extend_from_slice(b"TopicTest");
    assert!(check_header(&binary).binary);
    for rejected in [&b""[..], b"{", &binary[..binary.len() - 1]] {
        let d = check_header(rejected);
        assert!(!d.json && !d.binary, "{rejected:?} decoded");
    }
}
