//! Any text as a viewer's SDP offer: checked, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fieldcast::webrtc::offer::check_offer(text, true);
        let _ = fieldcast::webrtc::offer::check_offer(text, false);
    }
});
