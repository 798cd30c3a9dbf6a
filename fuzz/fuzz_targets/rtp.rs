//! Any bytes as a run of RTP packets from the pipeline; see `exercise::rtp`.
#![no_main]

// Each target uses one of the shared functions.
#[allow(dead_code)]
#[path = "../exercise.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::rtp(data));
