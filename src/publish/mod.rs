//! The same encode to existing engines: each configured target takes frames from the hub like
//! a viewer (its own bounded queue, dropping whole frames when behind) and is restarted with
//! a backoff when it fails. Targets never slow the local viewers or the pipeline.

pub mod backoff;
pub mod rtmp;
pub mod rtp;
pub mod state;
pub mod target;
pub mod whip;
pub mod whip_http;
pub mod whip_links;
pub(crate) mod whip_track;

use crate::fanout::Hubs;
pub use crate::fanout::feed;
use crate::webrtc::api::PeerSettings;
use backoff::{Backoff, Ending};
use feed::Feed;
use state::{TargetState, TargetStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
pub use target::{Kind, PublishTarget};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How an attempt ended, when it did not end because the daemon is stopping.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The engine could not be reached, or went away: try again soon.
    #[error("{0}")]
    Lost(String),
    /// The engine said no (a 4xx, a bad token): try again, but not often.
    #[error("{0}")]
    Refused(String),
}

impl PublishError {
    fn ending(&self) -> Ending {
        match self {
            PublishError::Lost(_) => Ending::Lost,
            PublishError::Refused(_) => Ending::Refused,
        }
    }
}

/// What an attempt is given: the target, its feed from the hubs, where to count, and the
/// daemon's stop signal (an attempt ends cleanly on it, e.g. WHIP's DELETE).
pub struct Attempt<'a> {
    pub target: &'a PublishTarget,
    pub feed: Feed,
    pub state: &'a TargetState,
    pub stop: watch::Receiver<bool>,
    pub peer: &'a PeerSettings,
    pub has_audio: bool,
}

impl Attempt<'_> {
    /// Marks the target live, logging it once per attempt.
    pub fn live(&self, detail: &str) {
        if self.state.live() {
            tracing::info!(target = %self.target.name, "publishing live: {detail}");
        }
    }

    /// Takes the target's place on the hubs (once); frames lost from here on are counted.
    pub fn join_feed(&mut self) {
        if let Some(dropped) = self.feed.join() {
            self.state.count_drops(dropped);
        }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

struct Running {
    target: Arc<PublishTarget>,
    state: Arc<TargetState>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Every target the daemon publishes to.
#[derive(Clone)]
pub struct Publishers {
    running: Arc<Vec<Running>>,
    stop: Arc<watch::Sender<bool>>,
}

impl Default for Publishers {
    fn default() -> Self {
        Self {
            running: Arc::default(),
            stop: Arc::new(watch::channel(false).0),
        }
    }
}

impl Publishers {
    pub fn start(
        targets: &[PublishTarget],
        hubs: &Hubs,
        has_audio: bool,
        peer: &PeerSettings,
    ) -> Publishers {
        let (stop, _) = watch::channel(false);
        let running = targets
            .iter()
            .map(|target| {
                let target = Arc::new(target.clone());
                let state = Arc::new(TargetState::default());
                let task = tokio::spawn(supervise(
                    Arc::clone(&target),
                    hubs.clone(),
                    Arc::clone(&state),
                    stop.subscribe(),
                    peer.clone(),
                    has_audio && target.audio,
                ));
                tracing::info!(target = %target.name, kind = %target.kind, url = %target.shown_url(), "publish target added");
                Running {
                    target,
                    state,
                    task: Mutex::new(Some(task)),
                }
            })
            .collect();
        Publishers {
            running: Arc::new(running),
            stop: Arc::new(stop),
        }
    }

    /// Targets configured: each takes one stream's worth of the uplink.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn status(&self) -> Vec<TargetStatus> {
        self.running
            .iter()
            .map(|r| {
                r.state
                    .status(&r.target.name, r.target.kind.name(), r.target.shown_url())
            })
            .collect()
    }

    /// Ends every target (WHIP sessions are deleted), waiting at most `deadline`.
    pub async fn stop(&self, deadline: Duration) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = self
            .running
            .iter()
            .filter_map(|r| r.task.lock().unwrap_or_else(|e| e.into_inner()).take())
            .collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// One target's life: attempt, and after a failure wait (longer each time) and try again,
/// until the daemon stops.
async fn supervise(
    target: Arc<PublishTarget>,
    hubs: Hubs,
    state: Arc<TargetState>,
    mut stop: watch::Receiver<bool>,
    peer: PeerSettings,
    audio: bool,
) {
    let mut backoff = Backoff::default();
    while !*stop.borrow() {
        let feed = Feed::new(&hubs, audio);
        state.connecting();
        let started = Instant::now();
        let attempt = Attempt {
            target: &target,
            feed,
            state: &state,
            stop: stop.clone(),
            peer: &peer,
            has_audio: audio,
        };
        let result = match target.kind {
            Kind::Rtp => rtp::run(attempt).await,
            Kind::Whip => whip::run(attempt).await,
            Kind::Rtmp => rtmp::run(attempt).await,
        };
        if *stop.borrow() {
            break;
        }
        let error = result
            .err()
            .unwrap_or_else(|| PublishError::Lost("the engine ended the stream".to_owned()));
        let wait = backoff.after(started.elapsed(), error.ending());
        // GStreamer's debug text spans lines: one log line per failure.
        let error = error
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        tracing::warn!(target = %target.name, "publishing failed: {error}; next try in {} s", wait.as_secs_f32());
        state.failed(error, SystemTime::now() + wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    state.stopped();
    tracing::info!(target = %target.name, "publishing stopped");
}
