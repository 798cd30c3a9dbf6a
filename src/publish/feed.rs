//! A target's place on the hubs: one bounded video queue (whole frames dropped when it falls
//! behind, like a slow viewer) and, when it sends sound, one audio queue. A target joins once
//! it can send (a WHIP target once connected), so nothing piles up while it connects; joining
//! asks the encoder for a keyframe through the same rate-limited request viewers use.

use super::state::TargetState;
use crate::fanout::audio::{AudioPacket, AudioQueue};
use crate::fanout::{Hubs, Queued, ViewerQueue};

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

    /// Takes a place on the hubs (once); frames lost from here on are counted in `state`.
    pub fn join(&mut self, state: &TargetState) {
        if self.queues.is_some() {
            return;
        }
        let video = self.hubs.video.subscribe();
        state.count_drops(video.dropped());
        let audio = self.audio.then(|| self.hubs.audio.subscribe());
        self.queues = Some((video, audio));
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

    /// The engine lost its picture (PLI/FIR): the same coalesced encoder request as a viewer's.
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
