//! Replays the committed fuzz corpus (`fuzz/corpus/`) through what each fuzz target does, so
//! every input that once found a new path is checked again on each test run, on stable Rust.

#[path = "../fuzz/exercise.rs"]
mod exercise;

use std::path::Path;

fn replay(target: &str, exercise: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| exercise(&data));
        assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        inputs += 1;
    }
    assert!(
        inputs > 100,
        "{target}: only {inputs} corpus inputs in {}",
        dir.display()
    );
}

#[test]
fn offer_corpus() {
    replay("offer", exercise::offer);
}

#[test]
fn sdpfrag_corpus() {
    replay("sdpfrag", exercise::sdpfrag);
}

#[test]
fn rtcp_corpus() {
    replay("rtcp", exercise::rtcp);
}

#[test]
fn rtp_corpus() {
    replay("rtp", exercise::rtp);
}
