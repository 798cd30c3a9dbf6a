//! Any bytes as packets from the pipeline: split into packets by a length prefix, parsed,
//! grouped into frames and rewritten for a viewer, checking the rewriter's promises.
#![no_main]

use bytes::Bytes;
use fieldcast::media::rtp::{AccessUnitAssembler, NalTypes, RtpRewriter, parse};
use std::time::Instant;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut assembler = AccessUnitAssembler::new();
    let mut rewriter = RtpRewriter::new(0x1234_5678, 109, 65_530, 1);
    let mut frames = Vec::new();
    let mut rest = data;
    let mut last_sequence: Option<u16> = None;
    let mut first_timestamps: Option<(u32, u32)> = None;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (raw, next) = tail.split_at(len);
        rest = next;
        let Ok(packet) = parse(&Bytes::copy_from_slice(raw)) else { continue };
        let _ = NalTypes::of_payload(&packet.payload);
        let out = rewriter.rewrite(&packet);
        assert_eq!(out.header.ssrc, 0x1234_5678);
        assert_eq!(out.header.payload_type, 109);
        assert_eq!(out.payload, packet.payload);
        if let Some(previous) = last_sequence {
            assert_eq!(out.header.sequence_number, previous.wrapping_add(1));
        }
        last_sequence = Some(out.header.sequence_number);
        // Timestamps move by exactly what the source moved by.
        let (first_in, first_out) =
            *first_timestamps.get_or_insert((packet.header.timestamp, out.header.timestamp));
        assert_eq!(
            out.header.timestamp.wrapping_sub(first_out),
            packet.header.timestamp.wrapping_sub(first_in)
        );
        assembler.push(packet, Instant::now(), &mut frames);
    }
});
