//! RTMP/RTMPS push (YouTube Live, Twitch, Facebook, nginx-rtmp): the hub's H.264 unchanged
//! into FLV, the sound decoded from Opus and re-encoded to AAC (FLV cannot carry Opus), in a
//! GStreamer pipeline of its own: appsrc (RTP) → depayloader → h264parse / opusdec → AAC →
//! flvmux → rtmp2sink.

use super::{Attempt, PublishError};
use crate::media::appsrc_push::{AppsrcPush, Pushed, audio_appsrc, video_appsrc};
use crate::media::bus::{self, BusEvent};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// AAC encoders in the order tried; Debian's gstreamer1.0-libav has avenc_aac.
const AAC_ENCODERS: [&str; 3] = ["fdkaacenc", "avenc_aac", "voaacenc"];
pub const AAC_BITRATE: u32 = 128_000;
/// Sending this long after the first FLV bytes without an error counts as live.
const LIVE_AFTER: Duration = Duration::from_millis(500);
/// Bytes waiting in an appsrc beyond which frames are dropped (up to the next keyframe)
/// rather than queued: the engine or the uplink is not keeping up.
const MAX_QUEUED_BYTES: u64 = 4 * 1024 * 1024;
/// How long the FLV end (EOS) may take to reach the engine when stopping.
const EOS_WAIT: Duration = Duration::from_secs(1);

/// The first AAC encoder this system has, or why there is none.
pub fn aac_encoder() -> Result<&'static str, String> {
    AAC_ENCODERS
        .into_iter()
        .find(|name| gst::ElementFactory::find(name).is_some())
        .ok_or_else(|| {
            format!(
                "no AAC encoder ({}): install gstreamer1.0-libav",
                AAC_ENCODERS.join(", ")
            )
        })
}

/// The gst-launch description of the push pipeline; `aac` is None without sound.
pub fn describe(url: &str, aac: Option<&str>) -> String {
    let quoted = url.replace('"', "%22");
    let mut text = format!(
        "flvmux name=mux streamable=true ! rtmp2sink name=sink location=\"{quoted}\" \
         {} ! rtph264depay ! h264parse ! video/x-h264,stream-format=avc,alignment=au \
         ! queue ! mux.video ",
        video_appsrc("video")
    );
    if let Some(aac) = aac {
        text.push_str(&format!(
            "{} ! rtpopusdepay ! opusdec plc=true ! audioconvert ! audioresample \
             ! {aac} bitrate={AAC_BITRATE} ! aacparse ! queue ! mux.audio",
            audio_appsrc("audio")
        ));
    }
    text
}

struct Push {
    pipeline: gst::Pipeline,
    media: AppsrcPush,
    /// Bytes out of flvmux, counted at the sink.
    flv_bytes: Arc<AtomicU64>,
    first_flv_at: Arc<std::sync::Mutex<Option<Instant>>>,
}

fn build(url: &str, audio: bool) -> Result<(Push, bus::BusEvents), PublishError> {
    let aac = match audio {
        true => Some(aac_encoder().map_err(PublishError::Refused)?),
        false => None,
    };
    let pipeline = gst::parse::launch(&describe(url, aac))
        .map_err(|e| PublishError::Refused(format!("cannot build the RTMP pipeline: {e}")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| PublishError::Refused("not a pipeline".to_owned()))?;
    let appsrc = |name: &str| {
        pipeline
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
    };
    let video =
        appsrc("video").ok_or_else(|| PublishError::Refused("no video appsrc".to_owned()))?;
    let audio = appsrc("audio");
    let flv_bytes = Arc::new(AtomicU64::new(0));
    let first_flv_at = Arc::new(std::sync::Mutex::new(None));
    if let Some(pad) = pipeline.by_name("sink").and_then(|s| s.static_pad("sink")) {
        let (bytes, first) = (Arc::clone(&flv_bytes), Arc::clone(&first_flv_at));
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                bytes.fetch_add(buffer.size() as u64, Ordering::Relaxed);
                let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(Instant::now);
            }
            gst::PadProbeReturn::Ok
        });
    }
    let events = bus::watch(&pipeline.bus().expect("a pipeline has a bus"));
    Ok((
        Push {
            pipeline,
            media: AppsrcPush::new(video, audio, MAX_QUEUED_BYTES),
            flv_bytes,
            first_flv_at,
        },
        events,
    ))
}

/// What an RTMP error means for the backoff: a refused stream key will not mend itself.
fn classify(error: String) -> PublishError {
    let lower = error.to_ascii_lowercase();
    if ["rejected", "badname", "unauthorized", "forbidden"]
        .iter()
        .any(|word| lower.contains(word))
    {
        PublishError::Refused(error)
    } else {
        PublishError::Lost(error)
    }
}

pub async fn run(mut attempt: Attempt<'_>) -> Result<(), PublishError> {
    let (mut push, mut events) = build(&attempt.target.url, attempt.has_audio)?;
    let result = match push.pipeline.set_state(gst::State::Playing) {
        Ok(_) => stream(&mut attempt, &mut push, &mut events).await,
        Err(_) => Err(PublishError::Lost(
            crate::media::bus::BusEvents::try_recv(&mut events)
                .ok()
                .and_then(|e| match e {
                    BusEvent::Error(text) => Some(text),
                    _ => None,
                })
                .unwrap_or_else(|| "the RTMP pipeline did not start".to_owned()),
        )),
    };
    let pipeline = push.pipeline.clone();
    if attempt.stopping() {
        // A clean end of the FLV stream, so the engine closes the recording or broadcast.
        pipeline.send_event(gst::event::Eos::new());
        let _ = tokio::time::timeout(EOS_WAIT, async {
            while let Some(event) = events.recv().await {
                if matches!(event, BusEvent::EndOfStream | BusEvent::Error(_)) {
                    break;
                }
            }
        })
        .await;
    }
    // Tearing down may wait on a socket: not on the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(bus) = pipeline.bus() {
            bus::unwatch(&bus);
        }
        let _ = pipeline.set_state(gst::State::Null);
    })
    .await;
    result
}

async fn stream(
    attempt: &mut Attempt<'_>,
    push: &mut Push,
    events: &mut bus::BusEvents,
) -> Result<(), PublishError> {
    attempt.join_feed();
    let mut counted_bytes = 0;
    let mut stop = attempt.stop.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            event = events.recv() => match event {
                Some(BusEvent::Error(error)) => return Err(classify(error)),
                Some(BusEvent::EndOfStream) => {
                    return Err(PublishError::Lost("the RTMP connection ended".to_owned()));
                }
                Some(BusEvent::Warning(warning)) => tracing::debug!(target = %attempt.target.name, "RTMP: {warning}"),
                Some(_) => {}
                None => return Err(PublishError::Lost("the RTMP pipeline is gone".to_owned())),
            },
            _ = tick.tick() => {
                let total = push.flv_bytes.load(Ordering::Relaxed);
                attempt.state.sent(0, total - counted_bytes);
                counted_bytes = total;
                let first = *push.first_flv_at.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_some_and(|at| at.elapsed() >= LIVE_AFTER) {
                    attempt.live(&format!("RTMP to {}", attempt.target.shown_url()));
                }
            }
            media = attempt.feed.next() => {
                let Some(media) = media else {
                    return Err(PublishError::Lost("the stream ended".to_owned()));
                };
                match push.media.push(&media).map_err(PublishError::Lost)? {
                    Pushed::Frame => {
                        attempt.state.frames_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Pushed::FrameDropped => {
                        attempt.state.dropped_here.fetch_add(1, Ordering::Relaxed);
                    }
                    Pushed::Sound | Pushed::SoundDropped => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_pipeline_parses_with_and_without_sound() {
        gst::init().unwrap();
        for aac in [None, aac_encoder().ok()] {
            let text = describe("rtmp://127.0.0.1:1/live/key", aac);
            gst::parse::launch(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn refusals_are_told_from_lost_connections() {
        assert!(matches!(
            classify("Publish rejected: NetStream.Publish.BadName".into()),
            PublishError::Refused(_)
        ));
        assert!(matches!(
            classify("Could not connect: Connection refused".into()),
            PublishError::Lost(_)
        ));
    }
}
