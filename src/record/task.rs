//! The recorder's task: while recording is wanted and the disk has room, it takes frames
//! from the hubs and writes them into segments, starting the next one on a keyframe once the
//! length is reached or the camera pipeline was rebuilt; a failed segment is tried again later.

use super::writer::SegmentWriter;
use super::{SCAN_EVERY, Shared};
use crate::fanout::Hubs;
use crate::fanout::feed::{Feed, Media};
use crate::media::appsrc_push::Pushed;
use crate::media::bus::BusEvent;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// After the recording pipeline fails, the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// A segment ends at the first keyframe this close to its length: with a 2 s keyframe
/// interval and arrival jitter, 10 s segments end at 10 s, not 12.
const SEGMENT_SLACK: Duration = Duration::from_millis(250);

pub(super) async fn run(
    shared: Arc<Shared>,
    hubs: Hubs,
    audio: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut wanted = shared.wanted.subscribe();
    let mut tick = tokio::time::interval(SCAN_EVERY);
    let mut retry_at: Option<Instant> = None;
    shared.scan().await;
    while !*stop.borrow() {
        let may_record = *wanted.borrow_and_update()
            && !shared.view().disk_full
            && retry_at.is_none_or(|at| Instant::now() >= at);
        if may_record {
            retry_at = None;
            if let Err(error) = record(&shared, &hubs, audio, &mut wanted, &mut stop).await {
                let error = error.split_whitespace().collect::<Vec<_>>().join(" ");
                tracing::warn!(
                    "recording failed: {error}; next try in {} s",
                    RETRY_AFTER.as_secs()
                );
                shared.failed(error);
                retry_at = Some(Instant::now() + RETRY_AFTER);
            }
            continue;
        }
        tokio::select! {
            _ = tick.tick() => shared.scan().await,
            _ = wanted.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

/// Records until recording is turned off, the daemon stops or the disk is full (`Ok`), or
/// a segment cannot be written (`Err`).
async fn record(
    shared: &Arc<Shared>,
    hubs: &Hubs,
    audio: bool,
    wanted: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    std::fs::create_dir_all(&shared.dir)
        .map_err(|e| format!("cannot create {}: {e}", shared.dir.display()))?;
    let mut segments = Segments {
        shared,
        audio,
        current: None,
        closing: Vec::new(),
    };
    let result = feed_segments(&mut segments, hubs, audio, wanted, stop).await;
    segments.close(result.is_ok()).await;
    shared.view().recording = false;
    shared.scan().await;
    tracing::info!("recording stopped");
    result
}

/// The segment being written and the ones still being closed.
struct Segments<'a> {
    shared: &'a Arc<Shared>,
    audio: bool,
    current: Option<(SegmentWriter, Instant, u32)>,
    closing: Vec<JoinHandle<()>>,
}

impl Segments<'_> {
    /// Starts the next segment with a keyframe that arrived at `arrival` from the source
    /// `ssrc`; the last one is closed in the background.
    async fn start_next(&mut self, arrival: Instant, ssrc: u32) -> Result<(), String> {
        let shared = self.shared;
        let next =
            SegmentWriter::start(&shared.dir, &shared.title, SystemTime::now(), self.audio).await?;
        shared.set_current(Some(next.name.clone()));
        if let Some((last, _, _)) = self.current.replace((next, arrival, ssrc)) {
            self.closing.retain(|task| !task.is_finished());
            self.closing.push(tokio::spawn(last.finish(true)));
        }
        Ok(())
    }

    /// A new segment is due at this keyframe: the length is reached, or the camera pipeline
    /// was rebuilt (a new source).
    fn due(&self, arrival: Instant, ssrc: u32) -> bool {
        match &self.current {
            None => true,
            Some((_, started, source)) => {
                let length = self.shared.settings.segment.saturating_sub(SEGMENT_SLACK);
                *source != ssrc || arrival.saturating_duration_since(*started) >= length
            }
        }
    }

    async fn close(&mut self, clean: bool) {
        if let Some((last, _, _)) = self.current.take() {
            last.finish(clean).await;
        }
        for task in self.closing.drain(..) {
            let _ = task.await;
        }
        self.shared.set_current(None);
    }
}

async fn feed_segments(
    segments: &mut Segments<'_>,
    hubs: &Hubs,
    audio: bool,
    wanted: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let shared = segments.shared;
    let mut feed = Feed::new(hubs, audio);
    if let Some(dropped) = feed.join() {
        let mut drops = shared.hub_drops.lock().unwrap_or_else(|e| e.into_inner());
        let before = drops.1.replace(dropped);
        drops.0 += before.map_or(0, |d| d.load(Ordering::Relaxed));
    }
    {
        let mut view = shared.view();
        view.recording = true;
        view.last_error = None;
    }
    let mut tick = tokio::time::interval(SCAN_EVERY);
    let mut source = None;
    loop {
        let events = async {
            match segments.current.as_mut() {
                Some((writer, _, _)) => writer.events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = wanted.changed() => if !*wanted.borrow_and_update() { return Ok(()) },
            _ = tick.tick() => {
                shared.scan().await;
                if shared.view().disk_full {
                    return Ok(());
                }
            }
            event = events => match event {
                Some(BusEvent::Error(error)) => return Err(error),
                Some(BusEvent::EndOfStream) => return Err("the recording pipeline ended".to_owned()),
                Some(_) => {}
                None => return Err("the recording pipeline is gone".to_owned()),
            },
            media = feed.next() => {
                let media = media.ok_or_else(|| "the stream ended".to_owned())?;
                if let Media::Video(queued) = &media {
                    let frame = &queued.frame;
                    let ssrc = frame.packets.first().map_or(0, |p| p.header.ssrc);
                    if source.replace(ssrc).is_some_and(|last| last != ssrc) {
                        tracing::info!("the camera pipeline restarted: recording goes on in a new segment");
                        feed.want_keyframe();
                    }
                    if frame.is_keyframe() && segments.due(frame.arrival, ssrc) {
                        segments.start_next(frame.arrival, ssrc).await?;
                    }
                }
                let Some((writer, _, _)) = segments.current.as_mut() else {
                    continue;
                };
                if writer.media.push(&media)? == Pushed::FrameDropped {
                    shared.dropped_here.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
