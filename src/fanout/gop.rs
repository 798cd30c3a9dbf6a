//! The frames since the last keyframe, kept for sources that cannot make a keyframe on
//! request (an external encoder sending RTP, a camera that encodes H.264 itself). A new
//! viewer is sent them at once, so it has a picture now instead of at the sender's next IDR;
//! so is a viewer that lost its picture.
//!
//! The replayed frames get timestamps squeezed together just before the newest one: the
//! viewer decodes them as fast as they arrive, shows the newest, and its jitter buffer sees
//! no backlog that would hold later frames back. Pure: no IO, no clock.

use super::Frame;

/// Frames kept at most: 10 s at 30 fps. A sender with a longer GOP gets no fast start.
pub const MAX_FRAMES: usize = 300;
/// Bytes kept at most; also the largest burst one joiner is sent: 4 s at 6 Mbit/s.
pub const MAX_BYTES: usize = 3 << 20;
/// A frame further than this from the previous one (or before it) is another stream, as
/// after the pipeline restarted: 5 s at 90 kHz.
const MAX_STEP_TICKS: u32 = 5 * 90_000;
/// RTP ticks (90 kHz) between two replayed frames: far below a frame interval, so the
/// replay takes no room on the viewer's timeline, yet every frame keeps its own timestamp.
pub const REPLAY_TICKS: u32 = 1;

#[derive(Debug, Default)]
pub struct GopCache {
    frames: Vec<Frame>,
    bytes: usize,
}

impl GopCache {
    /// Adds a frame the hub is publishing. A keyframe starts a new GOP; frames before the
    /// first keyframe, past the limits, or from another stream (a new SSRC, a timestamp
    /// jump) leave the cache empty until the next keyframe.
    pub fn push(&mut self, frame: &Frame) {
        if let Some(last) = self.frames.last()
            && !continues(last, frame)
        {
            self.clear();
        }
        if frame.is_keyframe() {
            self.clear();
        } else if self.frames.is_empty() {
            return;
        }
        let bytes = frame.payload_len();
        if self.frames.len() >= MAX_FRAMES || self.bytes + bytes > MAX_BYTES {
            self.clear();
            return;
        }
        self.bytes += bytes;
        self.frames.push(Frame::clone(frame));
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// What a viewer joining now is sent first, keyframe first, each with the source
    /// timestamp to send it under: squeezed just before the newest frame's own timestamp, so
    /// live frames follow on. Empty when there is no usable GOP.
    pub fn replay(&self) -> Vec<(Frame, u32)> {
        let Some(newest) = self.frames.last() else {
            return Vec::new();
        };
        let span = (self.frames.len() - 1) as u32 * REPLAY_TICKS;
        self.stamped(newest.rtp_timestamp.wrapping_sub(span))
    }

    /// The same frames for a viewer that has already had everything up to the newest and lost
    /// its picture: squeezed just after the newest frame's timestamp, so they are new to it
    /// and still come before the next live frame.
    pub fn replay_after_newest(&self) -> Vec<(Frame, u32)> {
        match self.frames.last() {
            Some(newest) => self.stamped(newest.rtp_timestamp.wrapping_add(REPLAY_TICKS)),
            None => Vec::new(),
        }
    }

    fn stamped(&self, first: u32) -> Vec<(Frame, u32)> {
        self.frames
            .iter()
            .enumerate()
            .map(|(i, frame)| {
                let at = first.wrapping_add(i as u32 * REPLAY_TICKS);
                (Frame::clone(frame), at)
            })
            .collect()
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Whether `next` can follow `previous` in one GOP: same source, a small step forward.
fn continues(previous: &Frame, next: &Frame) -> bool {
    let ssrc = |frame: &Frame| frame.packets.first().map(|p| p.header.ssrc);
    let step = next.rtp_timestamp.wrapping_sub(previous.rtp_timestamp);
    ssrc(previous) == ssrc(next) && step <= MAX_STEP_TICKS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{AccessUnit, NalTypes};
    use bytes::Bytes;
    use rtc::rtp;
    use std::sync::Arc;
    use std::time::Instant;

    fn frame(ts: u32, keyframe: bool, size: usize) -> Frame {
        let mut payload = vec![0u8; size.max(1)];
        payload[0] = if keyframe { 0x65 } else { 0x41 };
        let packet = rtp::Packet {
            header: rtp::header::Header {
                timestamp: ts,
                marker: true,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        Arc::new(AccessUnit {
            nal_types: NalTypes::of_payload(&packet.payload),
            packets: vec![packet],
            rtp_timestamp: ts,
            arrival: Instant::now(),
        })
    }

    fn timestamps(replay: &[(Frame, u32)]) -> Vec<(u32, u32)> {
        replay
            .iter()
            .map(|(f, ts)| (f.rtp_timestamp, *ts))
            .collect()
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut gop = GopCache::default();
        gop.push(&frame(0, false, 10));
        gop.push(&frame(3000, false, 10));
        assert!(gop.replay().is_empty());
    }

    #[test]
    fn replay_starts_at_the_last_keyframe_and_ends_at_the_newest_timestamp() {
        let mut gop = GopCache::default();
        gop.push(&frame(0, true, 10));
        gop.push(&frame(3000, false, 10));
        gop.push(&frame(6000, true, 10));
        gop.push(&frame(9000, false, 10));
        gop.push(&frame(12000, false, 10));
        let replay = gop.replay();
        assert!(replay[0].0.is_keyframe());
        assert_eq!(
            timestamps(&replay),
            vec![(6000, 11998), (9000, 11999), (12000, 12000)]
        );
    }

    #[test]
    fn a_repair_replay_comes_after_the_newest_frame() {
        let mut gop = GopCache::default();
        gop.push(&frame(6000, true, 10));
        gop.push(&frame(9000, false, 10));
        assert_eq!(
            timestamps(&gop.replay_after_newest()),
            vec![(6000, 9001), (9000, 9002)]
        );
        assert!(GopCache::default().replay_after_newest().is_empty());
    }

    #[test]
    fn squeezed_timestamps_wrap() {
        let mut gop = GopCache::default();
        gop.push(&frame(u32::MAX - 5000, true, 10));
        gop.push(&frame(1000, false, 10));
        assert_eq!(
            timestamps(&gop.replay()),
            vec![(u32::MAX - 5000, 999), (1000, 1000)]
        );
    }

    #[test]
    fn another_stream_empties_the_cache_until_its_keyframe() {
        let mut gop = GopCache::default();
        gop.push(&frame(0, true, 10));
        gop.push(&frame(3000, false, 10));
        gop.push(&frame(1_000_000, false, 10));
        assert!(gop.is_empty(), "a jump forward of 11 s");
        gop.push(&frame(2_000_000, true, 10));
        gop.push(&frame(1_000, false, 10));
        assert!(gop.is_empty(), "a step backwards");
        gop.push(&frame(5_000, true, 10));
        let mut other = AccessUnit::clone(&frame(8_000, false, 10));
        other.packets[0].header.ssrc = 77;
        gop.push(&Arc::new(other));
        assert!(gop.is_empty(), "a new SSRC, as from a restarted pipeline");
    }

    #[test]
    fn a_gop_too_big_is_dropped_until_the_next_keyframe() {
        let mut gop = GopCache::default();
        gop.push(&frame(0, true, MAX_BYTES - 100));
        gop.push(&frame(3000, false, 200));
        assert!(gop.is_empty(), "over the byte limit");
        gop.push(&frame(6000, false, 10));
        assert!(gop.is_empty(), "no keyframe to start from");
        gop.push(&frame(9000, true, 10));
        assert_eq!(gop.len(), 1);
        for i in 1..MAX_FRAMES as u32 {
            gop.push(&frame(9000 + i * 3000, false, 10));
        }
        assert_eq!(gop.len(), MAX_FRAMES);
        gop.push(&frame(1_000_000_000, false, 10));
        assert!(gop.is_empty(), "over the frame limit");
    }
}
