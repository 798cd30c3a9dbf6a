//! Any bytes as RTCP from a viewer: parsed and read for keyframe requests and reports.
#![no_main]

// Each target uses one of the shared functions.
#[allow(dead_code)]
#[path = "../exercise.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::rtcp(data));
