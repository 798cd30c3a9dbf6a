//! H.264 RTP as it leaves the pipeline: parsing, keyframe detection and grouping of packets
//! into access units (one frame each). Pure: no IO, no clock — arrival times are passed in.

use super::rtp_timeline::ViewerTimeline;
use bytes::Bytes;
use rtc::rtp;
use rtc::shared::marshal::Unmarshal;
use std::time::Instant;

/// H.264 NAL unit types that matter for starting a decoder (ITU-T H.264 table 7-1).
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
/// RTP aggregation and fragmentation units (RFC 6184 §5.7, §5.8).
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RtpError {
    #[error("not an RTP packet: {0}")]
    Malformed(String),
}

/// Parses one RTP packet; the payload shares `raw`'s memory (no copy).
pub fn parse(raw: &Bytes) -> Result<rtp::Packet, RtpError> {
    let mut buf = raw.clone();
    rtp::Packet::unmarshal(&mut buf).map_err(|e| RtpError::Malformed(e.to_string()))
}

/// The set of NAL unit types carried by one H.264 RTP payload, as a bit mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NalTypes(u32);

impl NalTypes {
    /// Reads the NAL types in a payload, looking inside STAP-A aggregates and at the
    /// first fragment of an FU-A. Truncated input yields what could be read.
    pub fn of_payload(payload: &[u8]) -> NalTypes {
        let mut set = NalTypes::default();
        let Some(&first) = payload.first() else {
            return set;
        };
        match first & 0x1f {
            NAL_STAP_A => {
                let mut rest = &payload[1..];
                while rest.len() >= 3 {
                    let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                    if size == 0 || rest.len() < 2 + size {
                        break;
                    }
                    set.insert(rest[2] & 0x1f);
                    rest = &rest[2 + size..];
                }
            }
            NAL_FU_A => {
                if let Some(&fu_header) = payload.get(1) {
                    let is_start = fu_header & 0x80 != 0;
                    if is_start {
                        set.insert(fu_header & 0x1f);
                    }
                }
            }
            nal_type => set.insert(nal_type),
        }
        set
    }

    fn insert(&mut self, nal_type: u8) {
        self.0 |= 1 << (nal_type & 0x1f);
    }

    pub fn contains(self, nal_type: u8) -> bool {
        self.0 & (1 << (nal_type & 0x1f)) != 0
    }

    pub fn union(self, other: NalTypes) -> NalTypes {
        NalTypes(self.0 | other.0)
    }
}

/// One encoded frame: every RTP packet sharing a timestamp, in order.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub packets: Vec<rtp::Packet>,
    pub rtp_timestamp: u32,
    pub nal_types: NalTypes,
    /// When the first packet of the frame left the pipeline.
    pub arrival: Instant,
}

impl AccessUnit {
    /// A frame a decoder can start on: an IDR picture.
    pub fn is_keyframe(&self) -> bool {
        self.nal_types.contains(NAL_IDR)
    }

    /// Payload bytes, for bitrate accounting.
    pub fn payload_len(&self) -> usize {
        self.packets.iter().map(|p| p.payload.len()).sum()
    }
}

/// Groups packets into access units. A frame ends at the marker bit, or — if a marker was
/// lost — when a packet with a new timestamp arrives.
#[derive(Debug, Default)]
pub struct AccessUnitAssembler {
    current: Option<AccessUnit>,
}

impl AccessUnitAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one packet; completed frames are appended to `out` (zero, one or two).
    pub fn push(&mut self, packet: rtp::Packet, arrival: Instant, out: &mut Vec<AccessUnit>) {
        if let Some(current) = &self.current
            && current.rtp_timestamp != packet.header.timestamp
            && let Some(done) = self.current.take()
        {
            out.push(done);
        }
        let marker = packet.header.marker;
        let nal_types = NalTypes::of_payload(&packet.payload);
        match &mut self.current {
            Some(current) => {
                current.nal_types = current.nal_types.union(nal_types);
                current.packets.push(packet);
            }
            None => {
                self.current = Some(AccessUnit {
                    rtp_timestamp: packet.header.timestamp,
                    packets: vec![packet],
                    nal_types,
                    arrival,
                });
            }
        }
        if marker && let Some(done) = self.current.take() {
            out.push(done);
        }
    }
}

/// Rewrites shared packets into one viewer's stream: its own SSRC and negotiated payload
/// type, sequence numbers continuous from a random start whatever frames were skipped, and
/// timestamps from a random base that carry on across a rebuilt pipeline ([`ViewerTimeline`]).
#[derive(Debug, Clone)]
pub struct RtpRewriter {
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    timeline: ViewerTimeline,
}

impl RtpRewriter {
    pub fn new(
        ssrc: u32,
        payload_type: u8,
        first_sequence: u16,
        timestamp_base: u32,
        clock_rate: u32,
    ) -> Self {
        Self {
            ssrc,
            payload_type,
            next_sequence: first_sequence,
            timeline: ViewerTimeline::new(clock_rate, timestamp_base),
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Times the source started another stream under this viewer (a rebuilt pipeline).
    pub fn rebases(&self) -> u64 {
        self.timeline.rebases()
    }

    /// Returns this viewer's copy of a live `packet` that left the pipeline at `arrival`; the
    /// payload is shared, not copied.
    pub fn rewrite(&mut self, packet: &rtp::Packet, arrival: Instant) -> rtp::Packet {
        let timestamp =
            self.timeline
                .map(packet.header.ssrc, packet.header.timestamp, Some(arrival));
        self.stamp(packet, timestamp)
    }

    /// As [`rewrite`](Self::rewrite), for a frame replayed to a viewer as if the source had
    /// stamped it `source_timestamp`.
    pub fn rewrite_replayed(&mut self, packet: &rtp::Packet, source_timestamp: u32) -> rtp::Packet {
        let timestamp = self
            .timeline
            .map(packet.header.ssrc, source_timestamp, None);
        self.stamp(packet, timestamp)
    }

    fn stamp(&mut self, packet: &rtp::Packet, timestamp: u32) -> rtp::Packet {
        let mut out = packet.clone();
        out.header.ssrc = self.ssrc;
        out.header.payload_type = self.payload_type;
        out.header.sequence_number = self.next_sequence;
        out.header.timestamp = timestamp;
        // Source-side extensions carry ids this viewer never negotiated.
        out.header.extension = false;
        out.header.extensions.clear();
        self.next_sequence = self.next_sequence.wrapping_add(1);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> rtp::Packet {
        rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                payload_type: 96,
                sequence_number: seq,
                timestamp: ts,
                ssrc: 0x1234,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![NAL_STAP_A];
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn single_nal_idr_is_keyframe() {
        let types = NalTypes::of_payload(&[0x65, 0x88, 0x84]);
        assert!(types.contains(NAL_IDR));
        assert!(!types.contains(NAL_SPS));
    }

    #[test]
    fn stap_a_reports_every_inner_nal() {
        let payload = stap_a(&[&[0x67, 0x42, 0xe0, 0x1f], &[0x68, 0xce], &[0x65, 0x88]]);
        let types = NalTypes::of_payload(&payload);
        assert!(types.contains(NAL_SPS));
        assert!(types.contains(NAL_PPS));
        assert!(types.contains(NAL_IDR));
        assert!(!types.contains(NAL_STAP_A));
    }

    #[test]
    fn truncated_stap_a_yields_what_was_read() {
        let mut payload = stap_a(&[&[0x67, 0x42]]);
        payload.extend_from_slice(&[0x00, 0x40, 0x65]);
        let types = NalTypes::of_payload(&payload);
        assert!(types.contains(NAL_SPS));
        assert!(!types.contains(NAL_IDR));
    }

    #[test]
    fn fu_a_start_fragment_carries_its_type() {
        let start = NalTypes::of_payload(&[0x7c, 0x85, 0x00]);
        assert!(start.contains(NAL_IDR));
        let middle = NalTypes::of_payload(&[0x7c, 0x05, 0x00]);
        assert!(!middle.contains(NAL_IDR));
    }

    #[test]
    fn p_frame_is_not_keyframe() {
        assert!(!NalTypes::of_payload(&[0x41, 0x9a]).contains(NAL_IDR));
        assert_eq!(NalTypes::of_payload(&[]), NalTypes::default());
    }

    #[test]
    fn marker_bit_closes_access_unit() {
        let now = Instant::now();
        let mut assembler = AccessUnitAssembler::new();
        let mut out = Vec::new();
        assembler.push(packet(1, 100, false, &[0x7c, 0x85]), now, &mut out);
        assembler.push(packet(2, 100, false, &[0x7c, 0x05]), now, &mut out);
        assert!(out.is_empty());
        assembler.push(packet(3, 100, true, &[0x7c, 0x45]), now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].packets.len(), 3);
        assert!(out[0].is_keyframe());
        assert_eq!(out[0].rtp_timestamp, 100);
    }

    #[test]
    fn new_timestamp_closes_frame_with_lost_marker() {
        let now = Instant::now();
        let mut assembler = AccessUnitAssembler::new();
        let mut out = Vec::new();
        assembler.push(packet(1, 100, false, &[0x41]), now, &mut out);
        assembler.push(packet(2, 3100, true, &[0x41]), now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].rtp_timestamp, 100);
        assert_eq!(out[1].rtp_timestamp, 3100);
    }

    #[test]
    fn rewriter_numbers_packets_continuously_from_its_start() {
        let now = Instant::now();
        let mut rewriter = RtpRewriter::new(0xabcd, 102, 65534, 1000, 90_000);
        let a = rewriter.rewrite(&packet(10, 90_000, false, &[1]), now);
        // A gap in the source (skipped frames) is not a gap for the viewer.
        let b = rewriter.rewrite(&packet(50, 93_000, true, &[2]), now);
        let c = rewriter.rewrite(&packet(51, 96_000, true, &[3]), now);
        assert_eq!(
            [
                a.header.sequence_number,
                b.header.sequence_number,
                c.header.sequence_number
            ],
            [65534, 65535, 0]
        );
        assert!(
            [a.clone(), b.clone(), c.clone()]
                .iter()
                .all(|p| p.header.ssrc == 0xabcd && p.header.payload_type == 102)
        );
        assert_eq!(a.header.timestamp, 1000);
        assert_eq!(b.header.timestamp, 4000);
        assert_eq!(c.header.timestamp, 7000);
        assert!(b.header.marker);
        assert_eq!(&c.payload[..], &[3]);
    }

    #[test]
    fn rewriter_timestamps_wrap() {
        let now = Instant::now();
        let mut rewriter = RtpRewriter::new(1, 96, 0, u32::MAX - 10, 90_000);
        rewriter.rewrite(&packet(0, 5, false, &[]), now);
        let later = rewriter.rewrite(&packet(1, 25, false, &[]), now);
        assert_eq!(later.header.timestamp, 9);
    }

    #[test]
    fn replayed_packets_take_the_given_timestamp_on_the_same_timeline() {
        let mut rewriter = RtpRewriter::new(1, 96, 0, 500, 90_000);
        let replayed = rewriter.rewrite_replayed(&packet(0, 90_000, true, &[]), 95_999);
        let live = rewriter.rewrite(&packet(1, 99_000, true, &[]), Instant::now());
        assert_eq!(replayed.header.timestamp, 500);
        assert_eq!(live.header.timestamp, 500 + 3001);
        assert_eq!(live.header.sequence_number, 1);
    }

    #[test]
    fn rewriter_carries_on_across_a_rebuilt_pipeline() {
        let t0 = Instant::now();
        let mut rewriter = RtpRewriter::new(0xabcd, 102, 100, 1000, 90_000);
        let before = rewriter.rewrite(&packet(10, 90_000, true, &[1]), t0);
        let mut restarted = packet(7, 2_000_000_000, false, &[2]);
        restarted.header.ssrc = 0x9999;
        let after = t0 + std::time::Duration::from_millis(1200);
        let first = rewriter.rewrite(&restarted, after);
        restarted.header.marker = true;
        let second = rewriter.rewrite(&restarted, after);
        assert_eq!(before.header.timestamp, 1000);
        assert_eq!(first.header.timestamp, 1000 + 1200 * 90);
        assert_eq!(second.header.timestamp, first.header.timestamp);
        assert_eq!(
            [first.header.sequence_number, second.header.sequence_number],
            [101, 102]
        );
        assert!([first, second].iter().all(|p| p.header.ssrc == 0xabcd));
        assert_eq!(rewriter.rebases(), 1);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse(&Bytes::from_static(&[0x80])).is_err());
        let raw = Bytes::from_static(&[0x80, 0x60, 0, 1, 0, 0, 0, 100, 0, 0, 0, 7, 0x65]);
        let parsed = parse(&raw).unwrap();
        assert_eq!(parsed.header.sequence_number, 1);
        assert_eq!(parsed.header.timestamp, 100);
        assert_eq!(&parsed.payload[..], &[0x65]);
    }
}
