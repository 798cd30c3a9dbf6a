//! What one viewer received: packets and their sequence gaps, frames and their counter gaps,
//! when decoding could start, and how late each frame arrived. Pure: arrival times and send
//! times are passed in.

use crate::sei;
use fieldcast::media::rtp::{NAL_IDR, NAL_PPS, NAL_SPS, NalTypes};
use std::time::{Duration, Instant};

/// Counters at one moment, to difference over the measurement window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub packets: u64,
    pub highest_sequence: i64,
    pub frames_counted: u64,
    pub highest_counter: i64,
    pub incomplete_frames: u64,
}

#[derive(Debug, Default)]
struct FrameInProgress {
    timestamp: u32,
    types: NalTypes,
    counter: Option<u64>,
    /// No sequence gap since the frame's first packet.
    complete: bool,
}

#[derive(Debug)]
pub struct ReceiveStats {
    pub joined_at: Instant,
    /// When the first complete frame with SPS, PPS and IDR arrived.
    pub first_decodable: Option<Instant>,
    packets: u64,
    /// Extended (unwrapped) sequence number of the newest packet, -1 before any.
    highest_sequence: i64,
    frame: Option<FrameInProgress>,
    frames_counted: u64,
    highest_counter: i64,
    incomplete_frames: u64,
    pub reordered: u64,
    /// Frame send → frame receive (last packet each), while `measuring`: keyframes, and the
    /// rest. Keyframes are ~8 times larger, so their fan-out takes longer.
    pub keyframe_latencies_us: Vec<u32>,
    pub latencies_us: Vec<u32>,
    pub measuring: bool,
    /// The viewer's last connection state and whether its video track arrived, to say what
    /// happened to a viewer that never had a decodable frame.
    pub connection: String,
    pub has_track: bool,
}

impl ReceiveStats {
    pub fn new(joined_at: Instant) -> ReceiveStats {
        ReceiveStats {
            joined_at,
            first_decodable: None,
            packets: 0,
            highest_sequence: -1,
            frame: None,
            frames_counted: 0,
            highest_counter: -1,
            incomplete_frames: 0,
            reordered: 0,
            keyframe_latencies_us: Vec::new(),
            latencies_us: Vec::new(),
            measuring: false,
            connection: "new".to_owned(),
            has_track: false,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            packets: self.packets,
            highest_sequence: self.highest_sequence,
            frames_counted: self.frames_counted,
            highest_counter: self.highest_counter,
            incomplete_frames: self.incomplete_frames,
        }
    }

    /// What a viewer without video got: its connection state, its track, packets and frames.
    pub fn describe(&self) -> String {
        format!(
            "{}, track {}, {} packets, {} frames ({} incomplete)",
            self.connection,
            if self.has_track { "yes" } else { "no" },
            self.packets,
            self.frames_counted,
            self.incomplete_frames
        )
    }

    pub fn time_to_first_frame(&self) -> Option<Duration> {
        self.first_decodable
            .map(|at| at.duration_since(self.joined_at))
    }

    /// One video packet. `sent_at` finds when the feeder sent frame `counter`.
    pub fn on_packet(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now: Instant,
        sent_at: impl Fn(u64) -> Option<Instant>,
    ) {
        self.packets += 1;
        let mut gap = false;
        if self.highest_sequence < 0 {
            self.highest_sequence = i64::from(sequence);
        } else {
            let delta = i64::from(sequence.wrapping_sub(self.highest_sequence as u16) as i16);
            if delta > 0 {
                gap = delta > 1;
                self.highest_sequence += delta;
            } else {
                self.reordered += 1;
            }
        }
        if self.frame.as_ref().is_none_or(|f| f.timestamp != timestamp) {
            // A frame whose marker never came is lost in part.
            if self.frame.take().is_some() {
                self.incomplete_frames += 1;
            }
            self.frame = Some(FrameInProgress {
                timestamp,
                complete: true,
                ..Default::default()
            });
        } else if gap {
            self.frame.as_mut().unwrap().complete = false;
        }
        let frame = self.frame.as_mut().unwrap();
        frame.types = frame.types.union(NalTypes::of_payload(payload));
        if frame.counter.is_none() {
            frame.counter = sei::counter_in_payload(payload);
        }
        if !marker {
            return;
        }
        let frame = self.frame.take().unwrap();
        if !frame.complete {
            self.incomplete_frames += 1;
            return;
        }
        let keyframe = frame.types.contains(NAL_SPS)
            && frame.types.contains(NAL_PPS)
            && frame.types.contains(NAL_IDR);
        if self.first_decodable.is_none() && keyframe {
            self.first_decodable = Some(now);
        }
        if let Some(counter) = frame.counter {
            self.frames_counted += 1;
            self.highest_counter = self.highest_counter.max(counter as i64);
            if self.measuring
                && let Some(sent) = sent_at(counter)
            {
                let micros = now.saturating_duration_since(sent).as_micros();
                let micros = micros.min(u128::from(u32::MAX)) as u32;
                if frame.types.contains(NAL_IDR) {
                    self.keyframe_latencies_us.push(micros);
                } else {
                    self.latencies_us.push(micros);
                }
            }
        }
    }
}

/// Losses between two snapshots of one viewer.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowCounts {
    pub packets: u64,
    pub packets_lost: u64,
    pub frames: u64,
    pub frames_lost: u64,
    pub incomplete_frames: u64,
}

impl WindowCounts {
    pub fn between(start: &Snapshot, end: &Snapshot) -> WindowCounts {
        let packets = end.packets - start.packets;
        let expected = (end.highest_sequence - start.highest_sequence).max(0) as u64;
        let frames = end.frames_counted - start.frames_counted;
        let frames_expected = if start.highest_counter < 0 {
            frames
        } else {
            (end.highest_counter - start.highest_counter).max(0) as u64
        };
        WindowCounts {
            packets,
            packets_lost: expected.saturating_sub(packets),
            frames,
            frames_lost: frames_expected.saturating_sub(frames),
            incomplete_frames: end.incomplete_frames - start.incomplete_frames,
        }
    }
}
