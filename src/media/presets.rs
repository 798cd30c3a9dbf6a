//! Turns `--pipeline` (`auto`, a preset name, or a whole gst-launch string) into the
//! pipeline description to run, choosing camera and encoder and saying why.

use super::audio::{AudioSettings, AudioSource};
use super::devices::{self, Camera};
use super::encoders::{self, DEFAULT_BITRATE_KBPS, Encoder};
use super::{MediaSettings, PipelineError};
use gstreamer as gst;
use gstreamer::prelude::*;

/// Every pipeline ends by packetising H.264 for the fan-out: parameter sets in front of every
/// IDR, packets small enough for any path, and an RTP packet as soon as a NAL is ready.
pub const RTP_TAIL: &str = "h264parse config-interval=-1 \
    ! rtph264pay mtu=1200 config-interval=-1 aggregate-mode=zero-latency pt=96 \
    ! appsink name=video";

/// The presets in `pipelines/`, built into the binary.
pub const PRESETS: &[(&str, &str)] = &[
    ("test", include_str!("../../pipelines/test.pipeline")),
    ("rpi-csi", include_str!("../../pipelines/rpi-csi.pipeline")),
    (
        "rpi5-csi",
        include_str!("../../pipelines/rpi5-csi.pipeline"),
    ),
    (
        "usb-mjpeg",
        include_str!("../../pipelines/usb-mjpeg.pipeline"),
    ),
    ("usb-raw", include_str!("../../pipelines/usb-raw.pipeline")),
    (
        "usb-h264",
        include_str!("../../pipelines/usb-h264.pipeline"),
    ),
    ("rtp-in", include_str!("../../pipelines/rtp-in.pipeline")),
];

/// V4L2 device used when a USB preset is named but no camera was seen.
const DEFAULT_DEVICE: &str = "/dev/video0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPipeline {
    /// Preset name, or `None` for a custom pipeline string.
    pub preset: Option<String>,
    /// gst-launch description, ready to parse.
    pub description: String,
    /// Encoder element in use, when fieldcast chose or the preset names one.
    pub encoder: Option<String>,
    /// The sound source, or `None` for video only.
    pub audio: Option<String>,
    /// Why this pipeline and encoder, in a sentence for the log.
    pub reason: String,
}

pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(name, _)| *name).collect()
}

/// Resolves `spec` against this machine's cameras, microphones and encoders.
pub fn resolve(settings: &MediaSettings) -> Result<ResolvedPipeline, PipelineError> {
    gst::init().map_err(|e| PipelineError::Init(e.to_string()))?;
    let audio = &settings.audio;
    audio.validate().map_err(PipelineError::Audio)?;
    let kbps = settings.video_bitrate_kbps;
    let spec = settings.pipeline.trim();
    let (name, device, why) = if spec == "auto" {
        let (name, device, why) = choose_preset(&devices::detect(), has_v4l2_encoder());
        (name.to_owned(), device, why)
    } else if looks_like_pipeline(spec) {
        return resolve_custom(spec, kbps, audio);
    } else if preset(spec).is_some() {
        let device = devices::detect().into_iter().find_map(|c| match c {
            Camera::Usb { device, .. } => Some(device),
            Camera::Csi { .. } => None,
        });
        (
            spec.to_owned(),
            device,
            format!("preset {spec} was asked for"),
        )
    } else {
        return Err(PipelineError::UnknownPreset {
            name: spec.to_owned(),
            known: preset_names().join(", "),
        });
    };
    let template = preset(&name).expect("choose_preset returns known presets");
    let device = device.unwrap_or_else(|| DEFAULT_DEVICE.to_owned());
    let (chains, audio_source, audio_why) =
        choose_audio(chains(template), &audio.source(), devices::first_microphone);
    let text = chains.join(" ").replace("{audio}", &audio.tail());
    let (description, encoder, encoder_why) = expand(&text, &device, kbps)?;
    Ok(ResolvedPipeline {
        preset: Some(name),
        description,
        encoder,
        audio: audio_source,
        reason: format!("{why}; {encoder_why}; {audio_why}"),
    })
}

fn resolve_custom(
    spec: &str,
    kbps: u32,
    audio: &AudioSettings,
) -> Result<ResolvedPipeline, PipelineError> {
    let text = spec.replace("{audio}", &audio.tail());
    let (description, encoder, encoder_why) = expand(&text, DEFAULT_DEVICE, kbps)?;
    let has_audio = contains_element(&description, "name=audio");
    Ok(ResolvedPipeline {
        preset: None,
        description,
        encoder,
        audio: has_audio.then(|| "as the pipeline says".to_owned()),
        reason: format!("a custom pipeline was given; {encoder_why}"),
    })
}

/// A preset's chains: a line that does not start with `!` begins a new chain.
pub fn chains(template: &str) -> Vec<String> {
    let mut chains: Vec<String> = Vec::new();
    for line in strip_comments_lines(template) {
        match chains.last_mut() {
            Some(chain) if line.starts_with('!') => {
                chain.push(' ');
                chain.push_str(line);
            }
            _ => chains.push(line.to_owned()),
        }
    }
    chains
}

/// Applies `--audio` to a preset's chains: keeps, replaces or drops the one ending in
/// `{audio}`. Returns the chains, the sound source in use, and why. Pure but for `microphone`.
pub fn choose_audio(
    mut chains: Vec<String>,
    source: &AudioSource,
    microphone: impl FnOnce() -> Option<String>,
) -> (Vec<String>, Option<String>, String) {
    let Some(index) = chains.iter().position(|c| c.contains("{audio}")) else {
        return (chains, None, "this pipeline has no sound".to_owned());
    };
    let chain_source = |chain: &str| chain.split(" ! ").next().unwrap_or_default().to_owned();
    match source {
        AudioSource::Off => {
            chains.remove(index);
            (chains, None, "sound is off".to_owned())
        }
        AudioSource::Fragment(fragment) => {
            chains[index] = format!("{fragment} ! {{audio}}");
            (
                chains,
                Some(fragment.clone()),
                format!("sound from {fragment}"),
            )
        }
        AudioSource::Auto if chains[index].contains("{microphone}") => match microphone() {
            Some(mic) => {
                chains[index] = chains[index].replace("{microphone}", &mic);
                (chains, Some(mic.clone()), format!("sound from {mic}"))
            }
            None => {
                chains.remove(index);
                (chains, None, "no microphone found, video only".to_owned())
            }
        },
        AudioSource::Auto => {
            let source = chain_source(&chains[index]);
            let why = format!("sound from {source}");
            (chains, Some(source), why)
        }
    }
}

/// Preset names are single words; anything with a `!` or a space is a pipeline.
fn looks_like_pipeline(spec: &str) -> bool {
    spec.contains('!') || spec.contains(char::is_whitespace)
}

/// Which preset suits the cameras found. Pure, so every case is tested.
pub fn choose_preset(
    cameras: &[Camera],
    has_v4l2_encoder: bool,
) -> (&'static str, Option<String>, String) {
    if let Some(Camera::Csi { name }) = cameras.iter().find(|c| matches!(c, Camera::Csi { .. })) {
        return if has_v4l2_encoder {
            (
                "rpi-csi",
                None,
                format!("CSI camera {name} found and the board has an H.264 encoder"),
            )
        } else {
            (
                "rpi5-csi",
                None,
                format!("CSI camera {name} found, no H.264 encoder block"),
            )
        };
    }
    for camera in cameras {
        if let Camera::Usb {
            name,
            device,
            formats,
        } = camera
        {
            let preset = if formats.mjpeg {
                "usb-mjpeg"
            } else if formats.raw {
                "usb-raw"
            } else {
                "usb-h264"
            };
            return (
                preset,
                Some(device.clone()),
                format!("USB camera {name} found at {device}"),
            );
        }
    }
    (
        "test",
        None,
        "no camera found, streaming the test pattern".to_owned(),
    )
}

/// Drops `#` comment lines so preset files can explain themselves.
pub fn strip_comments(text: &str) -> String {
    strip_comments_lines(text).collect::<Vec<_>>().join(" ")
}

fn strip_comments_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Fills `{rtp}`, `{device}`, `{encoder}` (best available) and `{encoder:NAME}` (that one).
fn expand(
    template: &str,
    device: &str,
    kbps: u32,
) -> Result<(String, Option<String>, String), PipelineError> {
    let mut text = template
        .replace("{rtp}", RTP_TAIL)
        .replace("{device}", device);
    let mut chosen = None;
    let mut why = "the pipeline encodes as written".to_owned();
    if let Some(start) = text.find("{encoder:") {
        let end = start + text[start..].find('}').ok_or(PipelineError::Placeholder)?;
        let name = text[start + "{encoder:".len()..end].to_owned();
        let encoder = Encoder::by_element(&name).ok_or(PipelineError::Placeholder)?;
        if !usable(encoder) {
            return Err(PipelineError::EncoderMissing { element: name });
        }
        text.replace_range(start..=end, &encoder.fragment(kbps));
        why = format!("the preset needs {name}");
        chosen = Some(name);
    }
    if text.contains("{encoder}") {
        let encoder = encoders::pick(usable).ok_or(PipelineError::NoEncoder)?;
        text = text.replace("{encoder}", &encoder.fragment(kbps));
        let skipped: Vec<_> = encoders::ENCODERS
            .iter()
            .take_while(|e| e.element != encoder.element)
            .map(|e| e.element)
            .collect();
        why = match (encoder.hardware, skipped.is_empty()) {
            (true, _) => format!("encoding with hardware encoder {}", encoder.element),
            (false, true) => format!("encoding in software with {}", encoder.element),
            (false, false) => format!(
                "encoding in software with {} ({} not usable here)",
                encoder.element,
                skipped.join(", ")
            ),
        };
        chosen = Some(encoder.element.to_owned());
    } else if chosen.is_none() {
        chosen = encoders::ENCODERS
            .iter()
            .find(|e| contains_element(&text, e.element))
            .map(|e| e.element.to_owned());
    }
    if text.contains('{') && text.contains("{encoder") {
        return Err(PipelineError::Placeholder);
    }
    Ok((text, chosen, why))
}

fn contains_element(description: &str, element: &str) -> bool {
    description
        .split(|c: char| c == '!' || c.is_whitespace())
        .any(|word| word == element)
}

fn has_v4l2_encoder() -> bool {
    Encoder::by_element("v4l2h264enc").is_some_and(usable)
}

/// An encoder is usable when its elements exist and open (hardware ones open a device).
pub fn usable(encoder: &Encoder) -> bool {
    if gst::ElementFactory::find(encoder.element).is_none() {
        return false;
    }
    // A trailing caps filter needs an element after it to parse.
    let trial = format!("{} ! fakesink", encoder.fragment(DEFAULT_BITRATE_KBPS));
    let Ok(bin) = gst::parse::bin_from_description(&trial, false) else {
        return false;
    };
    let ready = bin.set_state(gst::State::Ready).is_ok();
    let _ = bin.set_state(gst::State::Null);
    ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::devices::UsbFormats;

    fn usb(device: &str, mjpeg: bool, raw: bool, h264: bool) -> Camera {
        Camera::Usb {
            name: "cam".into(),
            device: device.into(),
            formats: UsbFormats { mjpeg, raw, h264 },
        }
    }

    #[test]
    fn no_camera_means_test_pattern() {
        assert_eq!(choose_preset(&[], true).0, "test");
    }

    #[test]
    fn csi_camera_uses_the_encoder_block_when_present() {
        let csi = [Camera::Csi {
            name: "imx708".into(),
        }];
        assert_eq!(choose_preset(&csi, true).0, "rpi-csi");
        assert_eq!(choose_preset(&csi, false).0, "rpi5-csi");
        let both = [usb("/dev/video0", true, true, false), csi[0].clone()];
        assert_eq!(choose_preset(&both, true).0, "rpi-csi");
    }

    #[test]
    fn usb_camera_prefers_mjpeg_then_raw_then_h264() {
        let (name, device, _) = choose_preset(&[usb("/dev/video2", true, true, true)], false);
        assert_eq!(
            (name, device.as_deref()),
            ("usb-mjpeg", Some("/dev/video2"))
        );
        assert_eq!(
            choose_preset(&[usb("/dev/video0", false, true, true)], false).0,
            "usb-raw"
        );
        assert_eq!(
            choose_preset(&[usb("/dev/video0", false, false, true)], false).0,
            "usb-h264"
        );
    }

    #[test]
    fn chains_follow_leading_bangs() {
        let text = "# video\na\n  ! b\n# sound\nc ! {audio}\n";
        assert_eq!(chains(text), vec!["a ! b", "c ! {audio}"]);
    }

    fn audio(source: AudioSource, mic: Option<&str>) -> (Vec<String>, Option<String>, String) {
        let preset = vec!["cam ! enc".to_owned(), "{microphone} ! {audio}".to_owned()];
        choose_audio(preset, &source, || mic.map(str::to_owned))
    }

    #[test]
    fn audio_auto_uses_the_microphone_or_goes_video_only() {
        let (chains, source, _) = audio(AudioSource::Auto, Some("alsasrc device=hw:1"));
        assert_eq!(chains[1], "alsasrc device=hw:1 ! {audio}");
        assert_eq!(source.as_deref(), Some("alsasrc device=hw:1"));
        let (chains, source, why) = audio(AudioSource::Auto, None);
        assert_eq!((chains.len(), source), (1, None));
        assert!(why.contains("video only"));
    }

    #[test]
    fn audio_none_drops_and_a_device_replaces_the_source() {
        let (chains, source, _) = audio(AudioSource::Off, Some("mic"));
        assert_eq!((chains, source), (vec!["cam ! enc".to_owned()], None));
        let fragment = AudioSource::Fragment("alsasrc device=hw:2".into());
        let (chains, _, _) = audio(fragment, None);
        assert_eq!(chains[1], "alsasrc device=hw:2 ! {audio}");
        let test = vec!["audiotestsrc wave=ticks ! {audio}".to_owned()];
        let (_, source, _) = choose_audio(test, &AudioSource::Auto, || panic!("no lookup"));
        assert_eq!(source.as_deref(), Some("audiotestsrc wave=ticks"));
    }

    #[test]
    fn comments_and_line_breaks_are_dropped() {
        let text = "# a comment\nvideotestsrc\n  ! fakesink\n\n";
        assert_eq!(strip_comments(text), "videotestsrc ! fakesink");
    }

    #[test]
    fn sources_that_encode_themselves_have_no_encoder_to_ask_for_keyframes() {
        for name in ["rtp-in", "usb-h264"] {
            let video = &chains(preset(name).unwrap())[0];
            let (_, encoder, _) = expand(video, DEFAULT_DEVICE, 2000).unwrap();
            assert_eq!(encoder, None, "{name}");
        }
    }

    #[test]
    fn every_preset_ends_in_the_rtp_tail_and_is_a_single_word() {
        for (name, text) in PRESETS {
            assert!(!looks_like_pipeline(name));
            assert!(text.contains("{rtp}"), "{name} does not end in {{rtp}}");
        }
    }

    #[test]
    fn pipeline_strings_are_told_from_names() {
        assert!(looks_like_pipeline("videotestsrc ! fakesink"));
        assert!(looks_like_pipeline("videotestsrc!fakesink"));
        assert!(!looks_like_pipeline("usb-mjpeg"));
    }

    #[test]
    fn contains_element_matches_whole_words() {
        assert!(contains_element("a ! x264enc bitrate=1 ! b", "x264enc"));
        assert!(!contains_element("a ! x264enc2 ! b", "x264enc"));
    }
}
