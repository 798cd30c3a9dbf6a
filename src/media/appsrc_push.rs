//! Hub media into a GStreamer pipeline of fieldcast's own (the RTMP push, the recorder): RTP
//! re-stamped onto one continuous timeline, and whole frames dropped up to the next keyframe
//! when that pipeline falls behind, so it never holds up the hub.

use crate::fanout::feed::Media;
use crate::media::rtp::RtpRewriter;
use crate::media::rtp_timeline::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
use gstreamer as gst;
use gstreamer_app as gst_app;
use rtc::shared::marshal::Marshal;
use std::time::Instant;

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;

/// The gst-launch text of the video appsrc named `name`, taking the pushed RTP.
pub fn video_appsrc(name: &str) -> String {
    format!(
        "appsrc name={name} is-live=true format=time do-timestamp=true block=false \
         caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate={VIDEO_CLOCK_RATE},payload={VIDEO_PT}\""
    )
}

/// The gst-launch text of the audio appsrc named `name`, taking the pushed Opus RTP.
pub fn audio_appsrc(name: &str) -> String {
    format!(
        "appsrc name={name} is-live=true format=time do-timestamp=true block=false \
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

pub struct AppsrcPush {
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    video_stamps: RtpRewriter,
    audio_stamps: RtpRewriter,
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
                for packet in &frame.packets {
                    let packet = match queued.replay_timestamp {
                        Some(ts) => self.video_stamps.rewrite_replayed(packet, ts),
                        None => self.video_stamps.rewrite(packet, frame.arrival),
                    };
                    push_rtp(&self.video, &packet)?;
                }
                Ok(Pushed::Frame)
            }
            Media::Audio(packet) => match self.audio.as_ref() {
                Some(src) if src.current_level_bytes() <= self.max_queued_bytes => {
                    let packet = self.audio_stamps.rewrite(packet, Instant::now());
                    push_rtp(src, &packet)?;
                    Ok(Pushed::Sound)
                }
                _ => Ok(Pushed::SoundDropped),
            },
        }
    }
}

fn push_rtp(src: &gst_app::AppSrc, packet: &rtc::rtp::Packet) -> Result<(), String> {
    let bytes = packet
        .marshal()
        .map_err(|e| format!("cannot write RTP: {e}"))?;
    match src.push_buffer(gst::Buffer::from_slice(bytes)) {
        Ok(_) => Ok(()),
        // Flushing: the pipeline is stopping after an error the bus is about to report.
        Err(gst::FlowError::Flushing) => Ok(()),
        Err(e) => Err(format!("the pipeline stopped taking media: {e:?}")),
    }
}
