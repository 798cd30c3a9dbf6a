//! The media edge with real GStreamer: presets resolve and parse, the `test` pipeline produces
//! H.264 every browser can start on, keyframe requests reach the encoder, failures are clear
//! errors, and a pipeline that stops is rebuilt.

use bytes::Bytes;
use fieldcast::media::audio::AudioSettings;
use fieldcast::media::encoders::{DEFAULT_BITRATE_KBPS, Encoder};
use fieldcast::media::pipeline::{MediaPipeline, MediaSinks, PipelineState};
use fieldcast::media::presets::{self, RTP_TAIL, ResolvedPipeline, strip_comments};
use fieldcast::media::rtp::{AccessUnit, AccessUnitAssembler, NAL_PPS, NAL_SPS, parse};
use fieldcast::media::{MediaSettings, PipelineError};
use gstreamer as gst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn resolve(spec: &str) -> Result<ResolvedPipeline, PipelineError> {
    presets::resolve(&MediaSettings {
        pipeline: spec.to_owned(),
        ..MediaSettings::default()
    })
}

/// Starts `resolved` and returns its frames as they are assembled.
async fn run(
    resolved: ResolvedPipeline,
) -> Result<(MediaPipeline, mpsc::UnboundedReceiver<AccessUnit>), PipelineError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let assembler = Mutex::new(AccessUnitAssembler::new());
    let sink = Arc::new(move |raw: Bytes| {
        let packet = parse(&raw).expect("the appsink yields RTP");
        let mut done = Vec::new();
        assembler
            .lock()
            .unwrap()
            .push(packet, Instant::now(), &mut done);
        for frame in done {
            let _ = tx.send(frame);
        }
    });
    let pipeline = MediaPipeline::start(resolved, MediaSinks::video_only(sink)).await?;
    Ok((pipeline, rx))
}

async fn next(frames: &mut mpsc::UnboundedReceiver<AccessUnit>, what: &str) -> AccessUnit {
    tokio::time::timeout(Duration::from_secs(5), frames.recv())
        .await
        .unwrap_or_else(|_| panic!("no frame within 5 s while waiting for {what}"))
        .expect("the pipeline's sink was dropped")
}

/// `profile_idc` and constraint flags of the first SPS in a frame (single NAL or STAP-A).
fn sps_profile(frame: &AccessUnit) -> Option<(u8, u8)> {
    for packet in &frame.packets {
        let p = &packet.payload;
        match p.first().map(|b| b & 0x1f) {
            Some(7) if p.len() > 2 => return Some((p[1], p[2])),
            Some(24) => {
                let mut at = 1;
                while at + 2 < p.len() {
                    let size = usize::from(u16::from_be_bytes([p[at], p[at + 1]]));
                    let nal = &p[at + 2..(at + 2 + size).min(p.len())];
                    if nal.len() > 2 && nal[0] & 0x1f == 7 {
                        return Some((nal[1], nal[2]));
                    }
                    at += 2 + size;
                }
            }
            _ => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pipeline_makes_h264_any_browser_can_start_on() {
    let resolved = resolve("test").expect("the test preset resolves");
    assert_eq!(resolved.preset.as_deref(), Some("test"));
    assert!(
        resolved.encoder.is_some(),
        "an encoder was chosen: {resolved:?}"
    );
    let (pipeline, mut frames) = run(resolved).await.expect("the test pipeline starts");

    let mut keyframe_times = Vec::new();
    let mut previous_ts: Option<u32> = None;
    let deadline = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < deadline {
        let frame = next(&mut frames, "4.5 s of video").await;
        if let Some(previous) = previous_ts {
            let step = frame.rtp_timestamp.wrapping_sub(previous);
            assert!(
                step > 0 && step < 90_000,
                "timestamps only move forward (no B-frames), step {step}"
            );
        }
        previous_ts = Some(frame.rtp_timestamp);
        if frame.is_keyframe() {
            assert!(
                frame.nal_types.contains(NAL_SPS) && frame.nal_types.contains(NAL_PPS),
                "SPS and PPS travel with every IDR"
            );
            let (profile, constraints) = sps_profile(&frame).expect("the keyframe carries an SPS");
            assert_eq!(profile, 66, "baseline profile");
            assert!(
                constraints & 0x40 != 0,
                "constrained baseline (constraint_set1)"
            );
            keyframe_times.push(frame.rtp_timestamp);
        }
    }
    assert!(
        keyframe_times.len() >= 2,
        "at least two IDRs in 4.5 s, saw {}",
        keyframe_times.len()
    );
    for pair in keyframe_times.windows(2) {
        let gap = pair[1].wrapping_sub(pair[0]);
        assert!(gap <= 2 * 90_000, "IDR at most every 2 s, gap {gap} ticks");
    }
    let status = pipeline.status();
    assert_eq!(status.state, PipelineState::Playing);
    assert_eq!((status.width, status.height), (Some(1280), Some(720)));
    assert_eq!(status.fps, Some(30.0));
    pipeline.stop().await;
    assert_eq!(pipeline.status().state, PipelineState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_request_reaches_the_encoder() {
    let (pipeline, mut frames) = run(resolve("test").unwrap()).await.unwrap();
    // Right after an IDR the next natural one is 2 s away.
    while !next(&mut frames, "a first IDR").await.is_keyframe() {}
    let asked = Instant::now();
    pipeline.request_keyframe();
    loop {
        let frame = next(&mut frames, "the requested IDR").await;
        if frame.is_keyframe() {
            assert!(
                frame.nal_types.contains(NAL_SPS),
                "forced IDR comes with SPS"
            );
            break;
        }
    }
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_millis(1000),
        "the forced IDR came {waited:?} after the request; the natural one is 2 s away"
    );
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_that_ends_is_rebuilt() {
    // 20 frames then end of stream: the supervisor must restart it and frames resume.
    let description = format!(
        "videotestsrc is-live=true num-buffers=20 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! {} ! {RTP_TAIL}",
        Encoder::by_element("x264enc")
            .unwrap()
            .fragment(DEFAULT_BITRATE_KBPS)
    );
    let resolved = resolve(&description).unwrap();
    let (pipeline, mut frames) = run(resolved).await.unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(8);
    while pipeline.status().restarts == 0 || seen <= 20 {
        assert!(
            Instant::now() < deadline,
            "no restart with fresh frames within 8 s (restarts {}, frames {seen})",
            pipeline.status().restarts
        );
        if tokio::time::timeout(Duration::from_millis(200), frames.recv())
            .await
            .is_ok()
        {
            seen += 1;
        }
    }
    assert!(pipeline.status().last_error.unwrap().contains("ended"));
    pipeline.stop().await;
}

#[tokio::test]
async fn broken_pipeline_string_is_a_clear_error() {
    let resolved = resolve("videotestsrc ! no-such-element ! appsink name=video").unwrap();
    match run(resolved).await {
        Err(PipelineError::Parse { message, .. }) => {
            assert!(message.contains("no-such-element"), "{message}")
        }
        other => panic!("expected a parse error, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn pipeline_without_video_appsink_is_refused() {
    let resolved = resolve("videotestsrc ! fakesink").unwrap();
    assert!(matches!(
        run(resolved).await,
        Err(PipelineError::NoVideoSink)
    ));
}

#[tokio::test]
async fn missing_camera_is_a_clear_error() {
    let resolved = resolve(
        "v4l2src device=/dev/fieldcast-no-camera ! image/jpeg ! jpegdec ! {encoder} ! h264parse \
         ! rtph264pay ! appsink name=video",
    )
    .unwrap();
    match run(resolved).await {
        Err(PipelineError::Start { message }) => {
            assert!(message.contains("/dev/fieldcast-no-camera"), "{message}")
        }
        other => panic!("expected a start error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn unknown_preset_names_the_known_ones() {
    match resolve("webcam") {
        Err(e @ PipelineError::UnknownPreset { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("usb-mjpeg") && text.contains("test"),
                "{text}"
            );
        }
        other => panic!("expected unknown preset, got {other:?}"),
    }
}

#[test]
fn auto_without_camera_streams_the_test_pattern_with_the_best_encoder() {
    let resolved = resolve("auto").unwrap();
    assert_eq!(resolved.preset.as_deref(), Some("test"), "{resolved:?}");
    gst::init().unwrap();
    // This machine has no hardware encoder, so software x264 is first in line.
    if gst::ElementFactory::find("v4l2h264enc").is_none()
        && gst::ElementFactory::find("vaapih264enc").is_none()
    {
        assert_eq!(resolved.encoder.as_deref(), Some("x264enc"));
        assert!(
            resolved.reason.contains("no camera found"),
            "{}",
            resolved.reason
        );
        assert!(
            resolved.reason.contains("v4l2h264enc"),
            "{}",
            resolved.reason
        );
    }
}

#[test]
fn every_preset_parses_with_the_elements_this_machine_has() {
    gst::init().unwrap();
    let x264 = Encoder::by_element("x264enc")
        .unwrap()
        .fragment(DEFAULT_BITRATE_KBPS);
    for name in presets::preset_names() {
        // Stand-ins only for what cannot exist here: the Pi's camera stack and encoder.
        let text = strip_comments(presets::preset(name).unwrap())
            .replace("{rtp}", RTP_TAIL)
            .replace("{device}", "/dev/video0")
            .replace("{encoder:v4l2h264enc}", &x264)
            .replace("{encoder:x264enc}", &x264)
            .replace("{encoder}", &x264)
            .replace("libcamerasrc", "videotestsrc")
            .replace("{microphone}", "audiotestsrc")
            .replace("{audio}", &AudioSettings::default().tail());
        gst::parse::launch(&text).unwrap_or_else(|e| panic!("preset {name} does not parse: {e}"));
    }
    // The Pi 4 encoder's caps (level is required by its driver) are valid caps.
    let v4l2 = Encoder::by_element("v4l2h264enc")
        .unwrap()
        .fragment(DEFAULT_BITRATE_KBPS);
    let caps = v4l2.rsplit("! ").next().unwrap();
    assert!(caps.parse::<gst::Caps>().is_ok(), "{caps}");
    assert!(caps.contains("level=(string)4"));
    if gst::ElementFactory::find("v4l2h264enc").is_none() {
        assert!(matches!(
            resolve("rpi-csi"),
            Err(PipelineError::EncoderMissing { ref element }) if element == "v4l2h264enc"
        ));
    }
}
