//! Replays the checked-in fuzz corpus (`fuzz/corpus/decode_frame/`) through the decoder
//! invariants of the `decode_frame` fuzz target, so they run in every `cargo test`.

use rmq_remoting::fuzzing::check_decode;

#[test]
fn corpus_holds_the_decoder_invariants() {
    let dir = format!(
        "{}/../../fuzz/corpus/decode_frame",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus is checked in ({} files)",
        files.len()
    );
    for path in &files {
        let bytes = std::fs::read(path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| check_decode(&bytes));
        assert!(outcome.is_ok(), "invariant broken by {}", path.display());
    }
}

#[test]
fn a_split_frame_holds_the_invariants() {
    // A frame split in two: the first piece alone must not be consumed; the whole must decode.
    let frame = [0, 0, 0, 8, 0, 0, 0, 2, b'{', b'}'];
    check_decode(&frame);
    check_decode(&frame[..6]);
}
