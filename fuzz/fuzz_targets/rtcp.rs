//! Any bytes as RTCP from a viewer: parsed and read for keyframe requests and reports.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fieldcast::webrtc::feedback::read_bytes(data);
});
