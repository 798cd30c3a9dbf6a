//! Hub media into a GStreamer pipeline of fieldcast's own (the RTMP push, the recorder): RTP
//! re-stamped onto one continuous timeline, and whole frames dropped up to the next keyframe
//! when that pipeline falls behind, so it never holds up the hub. Buffers are timed by their
//! RTP timestamps (the capture clock), not by when they were pushed, so a busy moment on the
//! board does not show as a stutter in the file.

use crate::fanout::feed::Media;
use crate::media::rtp::RtpRewriter;
use crate::media::rtp_timeline::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
use gstreamer as gst;
use gstreamer_app as gst_app;
use rtc::shared::marshal::Marshal;
use std::time::{Duration, Instant};

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;

/// The gst-launch text of the video appsrc named `name`, taking the pushed RTP.
pub fn video_appsrc(name: &str) -> String {
    format!(
        "appsrc name={name} is-live=true format=time block=false \
         caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate={VIDEO_CLOCK_RATE},payload={VIDEO_PT}\""
    )
}

/// The gst-launch text of the audio appsrc named `name`, taking the pushed Opus RTP.
pub fn audio_appsrc(name: &str) -> String {
    format!(
        "appsrc name={name} is-live=true format=time block=false \
         caps=\"application/x-rtp,media=audio,encoding-name=OPUS,clock-rate={AUDIO_CLOCK_RATE},payload={AUDIO_PT}\""
    )
}

/// What became of one piece of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Frame,
    /// A frame was dropped: the pipeline is behind, or waits for a keyframe.
    FrameDropped,
    Sound,
    /// Sound dropped (the pipeline is behind, or takes no sound).
    SoundDropped,
}

/// Running time from RTP timestamps: the first packet's arrival, then the clock rate.
#[derive(Debug, Clone)]
pub struct RunningTime {
    clock_rate: u32,
    /// The first packet's running time.
    origin: Option<Duration>,
    last_timestamp: u32,
    /// Ticks since the first packet, unwrapped.
    ticks: i64,
}

impl RunningTime {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            origin: None,
            last_timestamp: 0,
            ticks: 0,
        }
    }

    /// The running time of a packet stamped `timestamp` that arrived at running time `at`.
    pub fn of(&mut self, timestamp: u32, at: Duration) -> Duration {
        let origin = match self.origin {
            Some(origin) => {
                self.ticks += i64::from(timestamp.wrapping_sub(self.last_timestamp) as i32);
                origin
            }
            None => *self.origin.insert(at),
        };
        self.last_timestamp = timestamp;
        let nanos = self.ticks * 1_000_000_000 / i64::from(self.clock_rate);
        match u64::try_from(nanos) {
            Ok(after) => origin + Duration::from_nanos(after),
            Err(_) => origin.saturating_sub(Duration::from_nanos(nanos.unsigned_abs())),
        }
    }
}

pub struct AppsrcPush {
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    video_stamps: RtpRewriter,
    audio_stamps: RtpRewriter,
    /// Roughly the pipeline's running time 0: it is built just before it plays.
    started: Instant,
    video_time: RunningTime,
    audio_time: RunningTime,
    /// Bytes waiting in an appsrc beyond which media is dropped rather than queued.
    max_queued_bytes: u64,
    /// The pipeline starts, and restarts after drops, on a keyframe.
    skipping_to_keyframe: bool,
}

impl AppsrcPush {
    pub fn new(
        video: gst_app::AppSrc,
        audio: Option<gst_app::AppSrc>,
        max_queued_bytes: u64,
    ) -> Self {
        let stamps =
            |pt, rate| RtpRewriter::new(rand::random(), pt, rand::random(), rand::random(), rate);
        Self {
            video,
            audio,
            video_stamps: stamps(VIDEO_PT, VIDEO_CLOCK_RATE),
            audio_stamps: stamps(AUDIO_PT, AUDIO_CLOCK_RATE),
            started: Instant::now(),
            video_time: RunningTime::new(VIDEO_CLOCK_RATE),
            audio_time: RunningTime::new(AUDIO_CLOCK_RATE),
            max_queued_bytes,
            skipping_to_keyframe: true,
        }
    }

    /// Pushes one frame or sound packet; an error means the pipeline stopped taking buffers.
    pub fn push(&mut self, media: &Media) -> Result<Pushed, String> {
        match media {
            Media::Video(queued) => {
                let frame = &queued.frame;
                let behind = self.video.current_level_bytes() > self.max_queued_bytes;
                if behind || (self.skipping_to_keyframe && !frame.is_keyframe()) {
                    self.skipping_to_keyframe = true;
                    return Ok(Pushed::FrameDropped);
                }
                self.skipping_to_keyframe = false;
                let at = frame.arrival.saturating_duration_since(self.started);
                for packet in &frame.packets {
                    let packet = match queued.replay_timestamp {
                        Some(ts) => self.video_stamps.rewrite_replayed(packet, ts),
                        None => self.video_stamps.rewrite(packet, frame.arrival),
                    };
                    let pts = self.video_time.of(packet.header.timestamp, at);
                    push_rtp(&self.video, &packet, pts)?;
                }
                Ok(Pushed::Frame)
            }
            Media::Audio(packet) => match self.audio.as_ref() {
                Some(src) if src.current_level_bytes() <= self.max_queued_bytes => {
                    let now = Instant::now();
                    let packet = self.audio_stamps.rewrite(packet, now);
                    let at = now.saturating_duration_since(self.started);
                    let pts = self.audio_time.of(packet.header.timestamp, at);
                    push_rtp(src, &packet, pts)?;
                    Ok(Pushed::Sound)
                }
                _ => Ok(Pushed::SoundDropped),
            },
        }
    }
}

fn push_rtp(src: &gst_app::AppSrc, packet: &rtc::rtp::Packet, pts: Duration) -> Result<(), String> {
    let bytes = packet
        .marshal()
        .map_err(|e| format!("cannot write RTP: {e}"))?;
    let mut buffer = gst::Buffer::from_slice(bytes);
    if let Some(buffer) = buffer.get_mut() {
        buffer.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
    }
    match src.push_buffer(buffer) {
        Ok(_) => Ok(()),
        // Flushing: the pipeline is stopping after an error the bus is about to report.
        Err(gst::FlowError::Flushing) => Ok(()),
        Err(e) => Err(format!("the pipeline stopped taking media: {e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn packets_are_timed_by_their_timestamps_from_the_first_arrival() {
        let mut time = RunningTime::new(90_000);
        assert_eq!(time.of(1000, 500 * MS), 500 * MS);
        // Arrived late (a busy moment): still 33 ms after the first.
        assert_eq!(
            time.of(1000 + 3000, 800 * MS),
            500 * MS + Duration::from_nanos(33_333_333)
        );
        assert_eq!(
            time.of(1000 + 3000, 800 * MS),
            500 * MS + Duration::from_nanos(33_333_333)
        );
    }

    #[test]
    fn timestamps_wrap_around_without_a_jump() {
        let mut time = RunningTime::new(48_000);
        time.of(u32::MAX - 479, Duration::ZERO);
        assert_eq!(time.of(480, Duration::ZERO), 20 * MS);
    }

    #[test]
    fn a_timestamp_before_the_first_is_not_before_zero() {
        let mut time = RunningTime::new(90_000);
        time.of(90_000, 100 * MS);
        assert_eq!(time.of(0, Duration::ZERO), Duration::ZERO);
    }
}
