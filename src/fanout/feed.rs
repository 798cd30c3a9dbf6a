//! A non-viewer consumer's place on the hubs (a publish target, the recorder): one bounded
//! video queue (whole frames dropped when it falls behind, like a slow viewer) and, when it
//! takes sound, one audio queue. It joins once it can take media, so nothing piles up while
//! it gets ready; joining asks the encoder for a keyframe through the same rate-limited
//! request viewers use.

use super::audio::{AudioPacket, AudioQueue};
use super::{Hubs, Queued, ViewerQueue};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub enum Media {
    Video(Queued),
    Audio(AudioPacket),
}

pub struct Feed {
    hubs: Hubs,
    audio: bool,
    queues: Option<(ViewerQueue, Option<AudioQueue>)>,
}

impl Feed {
    pub fn new(hubs: &Hubs, audio: bool) -> Feed {
        Feed {
            hubs: hubs.clone(),
            audio,
            queues: None,
        }
    }

    /// Takes a place on the hubs (once). Returns, the first time, the count of frames this
    /// queue loses from here on.
    pub fn join(&mut self) -> Option<Arc<AtomicU64>> {
        if self.queues.is_some() {
            return None;
        }
        let video = self.hubs.video.subscribe();
        let dropped = video.dropped();
        let audio = self.audio.then(|| self.hubs.audio.subscribe());
        self.queues = Some((video, audio));
        Some(dropped)
    }

    /// The next frame or sound packet; `None` when the hub is gone. Waits forever before
    /// [`join`](Self::join).
    pub async fn next(&mut self) -> Option<Media> {
        let Some((video, audio)) = self.queues.as_mut() else {
            return std::future::pending().await;
        };
        match audio.as_mut() {
            Some(audio) => tokio::select! {
                frame = video.next_frame() => frame.map(Media::Video),
                packet = audio.next_packet() => packet.map(Media::Audio),
            },
            None => video.next_frame().await.map(Media::Video),
        }
    }

    /// The consumer lost its picture (an engine's PLI/FIR, a new recording segment): the same
    /// coalesced encoder request as a viewer's.
    pub fn want_keyframe(&mut self) {
        let now = std::time::Instant::now();
        let replayed = match self.queues.as_mut() {
            Some((video, _)) => self.hubs.video.replay_for(video, now),
            None => false,
        };
        if !replayed {
            self.hubs.video.request_keyframe();
        }
    }
}
