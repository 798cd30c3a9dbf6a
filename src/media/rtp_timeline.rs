//! One viewer's RTP timestamps, continuous whatever the source does. A rebuilt pipeline
//! starts a new stream (its payloader picks a new SSRC and a random timestamp base); the
//! viewer must see its own timestamps carry on from the last one by the time that really
//! passed, or its jitter buffer holds or drops the frames that follow. Pure: no IO, and
//! arrival times are passed in.

use std::time::{Duration, Instant};

/// A timestamp further than this from where the source's clock should be (given the time
/// that passed since its last packet) starts another stream. Far above encoder and queue
/// jitter, far below any timestamp base a restarted payloader picks at random.
pub const MAX_DRIFT: Duration = Duration::from_secs(1);

/// RTP clock rates of what fieldcast sends.
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
pub const AUDIO_CLOCK_RATE: u32 = 48_000;

/// Maps a source's timestamps onto one viewer's timeline, re-basing when the source changes.
#[derive(Debug, Clone)]
pub struct ViewerTimeline {
    clock_rate: u32,
    /// The viewer's first timestamp.
    base: u32,
    anchor: Option<Anchor>,
    rebases: u64,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    source_ssrc: u32,
    /// viewer timestamp = source timestamp + offset (mod 2^32).
    offset: u32,
    last_source: u32,
    /// When the last live packet arrived; replayed packets carry no time of their own.
    last_at: Option<Instant>,
}

impl ViewerTimeline {
    pub fn new(clock_rate: u32, base: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            base,
            anchor: None,
            rebases: 0,
        }
    }

    /// The viewer's timestamp for a source packet. `arrival` is when a live packet left the
    /// pipeline; `None` for a replayed packet, which is on the current source's timeline by
    /// construction and can only be checked for a new SSRC.
    pub fn map(
        &mut self,
        source_ssrc: u32,
        source_timestamp: u32,
        arrival: Option<Instant>,
    ) -> u32 {
        let Some(anchor) = self.anchor.as_mut() else {
            self.anchor = Some(Anchor {
                source_ssrc,
                offset: self.base.wrapping_sub(source_timestamp),
                last_source: source_timestamp,
                last_at: arrival,
            });
            return self.base;
        };
        let elapsed = match (anchor.last_at, arrival) {
            (Some(last), Some(now)) => {
                Some(ticks(now.saturating_duration_since(last), self.clock_rate))
            }
            _ => None,
        };
        // A source that stalled and then delivers what it captured meanwhile in a burst moves
        // less than the time that passed, never more: only a step far outside [0, elapsed]
        // is another stream. Re-basing a late burst would push every later frame back by
        // the stall, and that delay would stay.
        let drifted = elapsed.is_some_and(|elapsed| {
            let step = i64::from(source_timestamp.wrapping_sub(anchor.last_source) as i32);
            let slack = i64::from(ticks(MAX_DRIFT, self.clock_rate));
            step < -slack || step > i64::from(elapsed) + slack
        });
        if anchor.source_ssrc != source_ssrc || drifted {
            let last_viewer = anchor.last_source.wrapping_add(anchor.offset);
            // Never the previous timestamp again: that would merge two frames.
            let next = last_viewer.wrapping_add(elapsed.unwrap_or(0).max(1));
            anchor.offset = next.wrapping_sub(source_timestamp);
            anchor.source_ssrc = source_ssrc;
            self.rebases += 1;
        }
        anchor.last_source = source_timestamp;
        if arrival.is_some() {
            anchor.last_at = arrival;
        }
        source_timestamp.wrapping_add(anchor.offset)
    }

    /// Times the source was found to have started another stream.
    pub fn rebases(&self) -> u64 {
        self.rebases
    }
}

/// `duration` in RTP ticks of `clock_rate`, wrapping like RTP timestamps do.
pub fn ticks(duration: Duration, clock_rate: u32) -> u32 {
    (duration.as_micros() * u128::from(clock_rate) / 1_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u32 = 90; // video ticks per millisecond

    fn at(start: Instant, ms: u64) -> Option<Instant> {
        Some(start + Duration::from_millis(ms))
    }

    #[test]
    fn a_steady_source_moves_the_viewer_by_what_the_source_moved() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(VIDEO_CLOCK_RATE, 1000);
        assert_eq!(timeline.map(7, 500_000, at(t0, 0)), 1000);
        // Encoder and queue jitter: the frames arrive a little early or late.
        assert_eq!(timeline.map(7, 503_000, at(t0, 20)), 4000);
        assert_eq!(timeline.map(7, 506_000, at(t0, 90)), 7000);
        assert_eq!(timeline.rebases(), 0);
    }

    #[test]
    fn a_new_ssrc_continues_from_the_last_timestamp_plus_the_time_passed() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(VIDEO_CLOCK_RATE, 1000);
        timeline.map(7, 500_000, at(t0, 0));
        timeline.map(7, 503_000, at(t0, 33));
        // The pipeline was rebuilt: 1.5 s later a new SSRC whose timestamps start near ours.
        let after = timeline.map(8, 503_100, at(t0, 1533));
        assert_eq!(after, 4000 + 1500 * MS);
        assert_eq!(
            timeline.map(8, 506_100, at(t0, 1566)),
            4000 + 1500 * MS + 3000
        );
        assert_eq!(timeline.rebases(), 1);
    }

    #[test]
    fn a_timestamp_jump_on_the_same_ssrc_is_another_stream() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(VIDEO_CLOCK_RATE, u32::MAX - 100);
        timeline.map(7, 10, at(t0, 0));
        let jumped = timeline.map(7, 3_000_000_000, at(t0, 2000));
        assert_eq!(jumped, (u32::MAX - 100).wrapping_add(2000 * MS));
        let backwards = timeline.map(7, 5, at(t0, 2100));
        assert_eq!(
            backwards,
            jumped.wrapping_add(100 * MS),
            "a step back is a jump too"
        );
        assert_eq!(timeline.rebases(), 2);
    }

    #[test]
    fn a_pause_with_timestamps_that_kept_up_is_the_same_stream() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(VIDEO_CLOCK_RATE, 0);
        timeline.map(7, 0, at(t0, 0));
        // An external sender paused 5 s; its clock kept running.
        assert_eq!(
            timeline.map(7, 5000 * MS + 200 * MS, at(t0, 5000)),
            5200 * MS
        );
        assert_eq!(timeline.rebases(), 0);
    }

    #[test]
    fn frames_that_arrive_late_in_a_burst_after_a_stall_are_the_same_stream() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(VIDEO_CLOCK_RATE, 0);
        timeline.map(7, 0, at(t0, 0));
        // The encoder stalled 1.5 s, then hands over the frames it owed at once.
        assert_eq!(timeline.map(7, 3000, at(t0, 1500)), 3000);
        assert_eq!(timeline.map(7, 6000, at(t0, 1501)), 6000);
        assert_eq!(timeline.rebases(), 0, "no delay added to every later frame");
    }

    #[test]
    fn audio_continues_on_its_48_khz_clock() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(AUDIO_CLOCK_RATE, 0);
        timeline.map(1, 77_000, at(t0, 0));
        assert_eq!(timeline.map(1, 77_960, at(t0, 20)), 960);
        assert_eq!(timeline.map(2, 12, at(t0, 2020)), 960 + 96_000);
        assert_eq!(timeline.map(2, 972, at(t0, 2040)), 960 + 96_000 + 960);
    }

    #[test]
    fn replayed_packets_stay_on_the_timeline_and_only_a_new_ssrc_rebases_them() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(VIDEO_CLOCK_RATE, 100);
        // A joiner's replay: squeezed timestamps, no arrival times.
        assert_eq!(timeline.map(7, 9_998, None), 100);
        assert_eq!(timeline.map(7, 9_999, None), 101);
        assert_eq!(timeline.map(7, 13_000, at(t0, 0)), 3102);
        assert_eq!(timeline.map(9, 40, None), 3103, "at least one tick on");
        assert_eq!(timeline.rebases(), 1);
    }

    #[test]
    fn a_source_stamping_the_same_instant_twice_never_repeats_a_viewer_timestamp() {
        let t0 = Instant::now();
        let mut timeline = ViewerTimeline::new(VIDEO_CLOCK_RATE, 0);
        timeline.map(7, 0, at(t0, 0));
        assert_eq!(timeline.map(8, 0, at(t0, 0)), 1);
    }

    #[test]
    fn ticks_follow_the_clock_rate() {
        assert_eq!(
            ticks(Duration::from_millis(1500), VIDEO_CLOCK_RATE),
            135_000
        );
        assert_eq!(ticks(Duration::from_millis(20), AUDIO_CLOCK_RATE), 960);
    }
}
