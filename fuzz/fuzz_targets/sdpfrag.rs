//! Any text as a trickle-ICE PATCH body: parsed or refused, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fieldcast::webrtc::sdpfrag::SdpFrag::parse(text);
    }
});
