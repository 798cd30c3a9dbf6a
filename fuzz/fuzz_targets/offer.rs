//! Any text as a viewer's SDP offer: checked, never a panic.
#![no_main]

// Each target uses one of the shared functions.
#[allow(dead_code)]
#[path = "../exercise.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::offer(data));
