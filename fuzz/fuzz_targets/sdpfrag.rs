//! Any text as a trickle-ICE PATCH body: parsed or refused, never a panic.
#![no_main]

// Each target uses one of the shared functions.
#[allow(dead_code)]
#[path = "../exercise.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::sdpfrag(data));
