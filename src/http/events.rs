//! `GET /api/events`: Server-Sent Events carrying what a viewer page shows that changes —
//! live or offline, how many watch. One task samples both once a second and wakes listeners
//! only when something changed, so a page costs a few bytes per change instead of a full
//! status document every few seconds.

use crate::fanout::FanoutHub;
use crate::http::AppState;
use crate::media::HEALTHY_FRAME_AGE;
use crate::webrtc::registry::SessionRegistry;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the summary is sampled: the most often a listener hears of a change.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A comment line this often keeps proxies and NAT tables from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// How long a browser waits before reconnecting a dropped stream.
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LiveSummary {
    pub live: bool,
    pub viewer_count: usize,
}

/// Starts the sampling task; it ends when every receiver is gone.
pub fn start_summary(
    registry: SessionRegistry,
    hub: Arc<FanoutHub>,
) -> (watch::Receiver<LiveSummary>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(LiveSummary::default());
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !tx.is_closed() {
            tick.tick().await;
            let now = Instant::now();
            let last_frame = hub.stats(now).last_frame_at;
            let summary = LiveSummary {
                live: last_frame.is_some_and(|at| now.duration_since(at) <= HEALTHY_FRAME_AGE),
                viewer_count: registry.counts().await.0,
            };
            tx.send_if_modified(|current| {
                let changed = *current != summary;
                *current = summary;
                changed
            });
        }
    });
    (rx, task)
}

fn event(summary: LiveSummary) -> Event {
    let data = serde_json::to_string(&summary).unwrap_or_default();
    Event::default().event("summary").data(data)
}

/// The current summary at once, then one event per change.
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut summaries = state.summary.clone();
    let first = event(*summaries.borrow_and_update()).retry(RETRY);
    let changes = futures_util::stream::unfold(summaries, |mut summaries| async move {
        summaries.changed().await.ok()?;
        let summary = *summaries.borrow_and_update();
        Some((Ok(event(summary)), summaries))
    });
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(first) }),
        changes,
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
