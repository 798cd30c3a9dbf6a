//! What each fuzz target does with one input, shared by the libFuzzer targets and by
//! `tests/fuzz_corpus.rs`, which replays the committed corpus in every test run.

use bytes::Bytes;
use fieldcast::media::rtp::{AccessUnitAssembler, NalTypes, RtpRewriter, parse};
use fieldcast::media::rtp_timeline::{MAX_DRIFT, VIDEO_CLOCK_RATE, ticks};
use std::time::Instant;

/// Any text as a viewer's SDP offer: checked, never a panic.
pub fn offer(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fieldcast::webrtc::offer::check_offer(text, true);
        let _ = fieldcast::webrtc::offer::check_offer(text, false);
    }
}

/// Any text as a trickle-ice-sdpfrag PATCH body.
pub fn sdpfrag(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fieldcast::webrtc::sdpfrag::SdpFrag::parse(text);
    }
}

/// Any bytes as RTCP from a viewer.
pub fn rtcp(data: &[u8]) {
    let _ = fieldcast::webrtc::feedback::read_bytes(data);
}

/// Any bytes as a run of RTP packets (each prefixed by its length byte) from the encoder:
/// rewritten for a viewer without changing payloads or order, with timestamps that carry on
/// when the source jumps, and grouped into frames without a panic.
pub fn rtp(data: &[u8]) {
    let mut assembler = AccessUnitAssembler::new();
    let mut rewriter = RtpRewriter::new(0x1234_5678, 109, 65_530, 1, VIDEO_CLOCK_RATE);
    let arrival = Instant::now();
    let mut frames = Vec::new();
    let mut rest = data;
    let mut last_sequence: Option<u16> = None;
    let mut previous: Option<(u32, u32, u32)> = None;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (raw, next) = tail.split_at(len);
        rest = next;
        let Ok(packet) = parse(&Bytes::copy_from_slice(raw)) else {
            continue;
        };
        let _ = NalTypes::of_payload(&packet.payload);
        let out = rewriter.rewrite(&packet, arrival);
        assert_eq!(out.header.ssrc, 0x1234_5678);
        assert_eq!(out.header.payload_type, 109);
        assert_eq!(out.payload, packet.payload);
        if let Some(previous) = last_sequence {
            assert_eq!(out.header.sequence_number, previous.wrapping_add(1));
        }
        last_sequence = Some(out.header.sequence_number);
        // All at one instant: timestamps move as the source's while they stay within
        // MAX_DRIFT of each other, and by one tick when the source jumps or changes SSRC.
        if let Some((previous_in, previous_out, previous_ssrc)) = previous {
            let source_step: u32 = packet.header.timestamp.wrapping_sub(previous_in);
            let viewer_step = out.header.timestamp.wrapping_sub(previous_out);
            let steady = previous_ssrc == packet.header.ssrc
                && (source_step as i32).unsigned_abs() <= ticks(MAX_DRIFT, VIDEO_CLOCK_RATE);
            assert_eq!(viewer_step, if steady { source_step } else { 1 });
        }
        previous = Some((
            packet.header.timestamp,
            out.header.timestamp,
            packet.header.ssrc,
        ));
        assembler.push(packet, Instant::now(), &mut frames);
    }
}
