//! One recording segment: the hub's RTP, depayloaded without re-encoding, into a fragmented
//! MP4 file: appsrc → rtph264depay → h264parse and appsrc → rtpopusdepay → opusparse → mp4mux
//! (a fragment a second, so a file cut by a power loss plays up to its last second) →
//! filesink. The recorder starts the next segment's pipeline on a keyframe and hands every
//! frame and sound packet to exactly one of them, so a boundary loses nothing.

use super::naming;
use crate::media::appsrc_push::{AppsrcPush, audio_appsrc, video_appsrc};
use crate::media::bus::{self, BusEvent, BusEvents};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// mp4mux writes a fragment this often: about the most a power cut can lose.
const FRAGMENT_MS: u32 = 1000;
/// Bytes waiting in an appsrc beyond which frames are dropped: the disk is not keeping up.
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;
/// Longest wait for a segment to be closed cleanly (its index written) before it is cut off.
const FINISH_WAIT: Duration = Duration::from_secs(3);

pub struct SegmentWriter {
    pipeline: gst::Pipeline,
    pub media: AppsrcPush,
    pub events: BusEvents,
    /// The file's name in the recordings directory.
    pub name: String,
}

/// The gst-launch text of one segment's pipeline, writing `location`.
pub fn describe(location: &Path, audio: bool) -> String {
    let location = location.display().to_string().replace('"', "");
    let mut text = format!(
        "mp4mux name=mux fragment-duration={FRAGMENT_MS} ! filesink location=\"{location}\" \
         {} ! rtph264depay ! h264parse ! queue ! mux.video_0 ",
        video_appsrc("video")
    );
    if audio {
        text.push_str(&format!(
            "{} ! rtpopusdepay ! opusparse ! queue ! mux.audio_0",
            audio_appsrc("audio")
        ));
    }
    text
}

impl SegmentWriter {
    /// Starts a segment under `dir`, named by `started` and `title`.
    pub async fn start(
        dir: &Path,
        title: &str,
        started: SystemTime,
        audio: bool,
    ) -> Result<SegmentWriter, String> {
        let path = free_path(dir, title, started);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pipeline = gst::parse::launch(&describe(&path, audio))
            .map_err(|e| format!("cannot build the recording pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "the recording pipeline is not a pipeline".to_owned())?;
        let appsrc = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        };
        let video = appsrc("video").ok_or_else(|| "no video appsrc".to_owned())?;
        let media = AppsrcPush::new(video, appsrc("audio"), MAX_QUEUED_BYTES);
        let events = bus::watch(&pipeline.bus().expect("a pipeline has a bus"));
        let writer = SegmentWriter {
            pipeline,
            media,
            events,
            name,
        };
        if writer.pipeline.set_state(gst::State::Playing).is_err() {
            let mut writer = writer;
            let error = first_error(&mut writer.events);
            writer.finish(false).await;
            return Err(error.unwrap_or_else(|| format!("cannot write {}", path.display())));
        }
        tracing::info!("recording to {}", path.display());
        Ok(writer)
    }

    /// Closes the file: after EOS (its index written, when `clean`) or at once.
    pub async fn finish(mut self, clean: bool) {
        if clean {
            self.pipeline.send_event(gst::event::Eos::new());
            let _ = tokio::time::timeout(FINISH_WAIT, async {
                while let Some(event) = self.events.recv().await {
                    if matches!(event, BusEvent::EndOfStream | BusEvent::Error(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        let pipeline = self.pipeline;
        // Tearing down waits on the card: not on the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(bus) = pipeline.bus() {
                bus::unwatch(&bus);
            }
            let _ = pipeline.set_state(gst::State::Null);
        })
        .await;
    }
}

fn first_error(events: &mut BusEvents) -> Option<String> {
    while let Ok(event) = events.try_recv() {
        if let BusEvent::Error(text) = event {
            return Some(text);
        }
    }
    None
}

/// A path for a segment starting at `started` that no other file has.
fn free_path(dir: &Path, title: &str, started: SystemTime) -> PathBuf {
    (0..)
        .map(|counter| dir.join(naming::segment_name(started, title, counter)))
        .find(|path| !path.exists())
        .expect("some counter is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_segment_pipeline_parses_with_and_without_sound() {
        gst::init().unwrap();
        for audio in [false, true] {
            let text = describe(Path::new("/tmp/x.mp4"), audio);
            gst::parse::launch(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }
}
