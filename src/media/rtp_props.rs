//! Property tests for the RTP logic: whatever the pipeline sends, each viewer's stream keeps
//! the promises the browser relies on.

use super::rtp::{AccessUnitAssembler, RtpRewriter};
use super::rtp_timeline::{MAX_DRIFT, VIDEO_CLOCK_RATE, ticks};
use bytes::Bytes;
use proptest::prelude::*;
use rtc::rtp;
use std::time::{Duration, Instant};

fn packet(seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: 96,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 0xfeed,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

fn packets() -> impl Strategy<Value = Vec<rtp::Packet>> {
    prop::collection::vec(
        (
            any::<u16>(),
            any::<u32>(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..40),
        ),
        1..60,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(seq, ts, marker, payload)| packet(seq, ts, marker, payload))
            .collect()
    })
}

proptest! {
    #[test]
    fn rewritten_streams_are_continuous_and_faithful(
        input in packets(),
        gaps_ms in prop::collection::vec(0u64..3000, 60),
        ssrc in any::<u32>(),
        pt in 96u8..128,
        first in any::<u16>(),
        base in any::<u32>(),
    ) {
        let mut rewriter = RtpRewriter::new(ssrc, pt, first, base, VIDEO_CLOCK_RATE);
        let mut arrival = Instant::now();
        let mut arrivals = Vec::new();
        let out: Vec<rtp::Packet> = input
            .iter()
            .zip(&gaps_ms)
            .map(|(p, gap)| {
                arrival += Duration::from_millis(*gap);
                arrivals.push(arrival);
                rewriter.rewrite(p, arrival)
            })
            .collect();
        prop_assert_eq!(out[0].header.timestamp, base);
        let max_drift = ticks(MAX_DRIFT, VIDEO_CLOCK_RATE);
        for (i, (o, p)) in out.iter().zip(&input).enumerate() {
            prop_assert_eq!(o.header.ssrc, ssrc);
            prop_assert_eq!(o.header.payload_type, pt);
            prop_assert_eq!(o.header.sequence_number, first.wrapping_add(i as u16));
            prop_assert_eq!(&o.payload, &p.payload);
            prop_assert_eq!(o.header.marker, p.header.marker);
            prop_assert!(o.header.extensions.is_empty());
            if i == 0 {
                continue;
            }
            // The viewer moves as the source did while the source steps within [-MAX_DRIFT,
            // elapsed + MAX_DRIFT] (a late burst moves less than the time that passed), and by
            // the time that passed when it jumps outside: never more than MAX_DRIFT ahead of
            // the clock nor back.
            let elapsed = ticks(arrivals[i] - arrivals[i - 1], VIDEO_CLOCK_RATE);
            let source_step = p.header.timestamp.wrapping_sub(input[i - 1].header.timestamp);
            let viewer_step = o.header.timestamp.wrapping_sub(out[i - 1].header.timestamp);
            let within = |step: u32| {
                let step = i64::from(step as i32);
                step >= -i64::from(max_drift) && step <= i64::from(elapsed) + i64::from(max_drift)
            };
            if within(source_step) {
                prop_assert_eq!(viewer_step, source_step);
            } else {
                prop_assert_eq!(viewer_step, elapsed.max(1));
            }
            prop_assert!(within(viewer_step));
        }
    }

    #[test]
    fn frames_keep_every_packet_in_order_and_share_a_timestamp(input in packets()) {
        let mut assembler = AccessUnitAssembler::new();
        let mut frames = Vec::new();
        let now = Instant::now();
        for p in input.clone() {
            assembler.push(p, now, &mut frames);
        }
        let emitted: Vec<u16> = frames
            .iter()
            .flat_map(|f| f.packets.iter().map(|p| p.header.sequence_number))
            .collect();
        let sent: Vec<u16> = input.iter().map(|p| p.header.sequence_number).collect();
        prop_assert_eq!(&emitted[..], &sent[..emitted.len()], "frames are a prefix of the input");
        for frame in &frames {
            prop_assert!(frame.packets.iter().all(|p| p.header.timestamp == frame.rtp_timestamp));
            // Only the last packet of a frame may carry the marker.
            let markers = frame.packets.iter().filter(|p| p.header.marker).count();
            prop_assert!(markers <= 1);
            prop_assert!(markers == 0 || frame.packets.last().unwrap().header.marker);
        }
        // Whatever is held back is the unfinished last frame: no marker, one timestamp.
        let held = &input[emitted.len()..];
        prop_assert!(held.iter().all(|p| !p.header.marker));
        prop_assert!(held.windows(2).all(|w| w[0].header.timestamp == w[1].header.timestamp));
    }
}
