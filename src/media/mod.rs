//! Media in: the GStreamer pipeline that captures and encodes once, and the pure RTP logic
//! that turns its packets into frames.

pub(crate) mod appsrc_push;
pub mod audio;
pub(crate) mod bus;
pub(crate) mod capture_stamp;
pub(crate) mod devices;
pub mod encoders;
pub mod inventory;
pub(crate) mod packages;
pub mod pipeline;
pub mod presets;
pub mod rtp;
#[cfg(test)]
mod rtp_props;
pub mod rtp_timeline;
pub(crate) mod sync_marks;

/// What the pipeline is asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    /// `auto`, a preset name from `pipelines/`, or a whole gst-launch pipeline.
    pub pipeline: String,
    pub video_bitrate_kbps: u32,
    pub audio: audio::AudioSettings,
}

pub const DEFAULT_PIPELINE: &str = "auto";

/// No frame for this long means the pipeline is not producing: not live, not healthy, no
/// watchdog ping.
pub const HEALTHY_FRAME_AGE: std::time::Duration = std::time::Duration::from_secs(2);

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            pipeline: DEFAULT_PIPELINE.to_owned(),
            video_bitrate_kbps: encoders::DEFAULT_BITRATE_KBPS,
            audio: audio::AudioSettings::default(),
        }
    }
}

/// Why a pipeline could not be chosen, built or started.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer could not start: {0}")]
    Init(String),
    #[error("no preset named {name:?}; presets are: {known}, or `auto`, or a whole pipeline")]
    UnknownPreset { name: String, known: String },
    #[error(
        "this pipeline needs the encoder {element}, which is missing or cannot open its device here"
    )]
    EncoderMissing { element: String },
    #[error(
        "no H.264 encoder found: install gstreamer1.0-plugins-ugly (x264enc) or gstreamer1.0-plugins-bad (openh264enc)"
    )]
    NoEncoder,
    #[error("a {{encoder}} placeholder in the pipeline is malformed or names an unknown encoder")]
    Placeholder,
    #[error("the pipeline does not parse: {message}\n  pipeline: {description}")]
    Parse {
        description: String,
        message: String,
    },
    #[error("the pipeline has no `appsink name=video` for fieldcast to read from")]
    NoVideoSink,
    #[error("bad audio setting: {0}")]
    Audio(String),
    #[error("the pipeline did not start: {message}")]
    Start { message: String },
}
