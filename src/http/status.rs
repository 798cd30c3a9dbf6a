//! What the daemon is doing: `/api/status` for people and tools, `/healthz` for supervisors.

use crate::fanout::JoinStart;
use crate::http::AppState;
use crate::http::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// No frame for this long means the pipeline is not producing.
pub const HEALTHY_FRAME_AGE: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct StreamStatus {
    fps: f64,
    bitrate_kbps: f64,
    frames: u64,
    keyframes: u64,
    dropped_frames: u64,
    keyframe_requests_sent: u64,
    /// `keyframe` (new viewers get a keyframe made for them) or `cached_gop` (they are sent
    /// the frames since the source's last keyframe).
    join_start: &'static str,
    /// Viewers that started on the cached GOP.
    replayed_joins: u64,
    /// Times a viewer that lost its picture was sent the cached GOP again.
    replayed_repairs: u64,
    /// Queues on the hub; equals the connected viewers unless one is leaking.
    hub_viewers: usize,
    last_frame_age_ms: Option<u128>,
}

#[derive(Serialize)]
pub struct Status {
    version: &'static str,
    title: String,
    uptime_s: u64,
    healthy: bool,
    pipeline: crate::media::pipeline::PipelineStatus,
    stream: StreamStatus,
    viewer_count: usize,
    viewers: Vec<crate::webrtc::session::ViewerStatus>,
}

fn frame_age(state: &AppState, now: Instant) -> Option<Duration> {
    state
        .hubs
        .video
        .stats(now)
        .last_frame_at
        .map(|at| now.saturating_duration_since(at))
}

/// What anyone may see when an admin token is set: is it live, and how many watch.
#[derive(Serialize)]
pub struct PublicStatus {
    version: &'static str,
    title: String,
    healthy: bool,
    viewer_count: usize,
}

pub async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.access.is_admin(&headers) {
        return full_status(&state).await.into_response();
    }
    let age = frame_age(&state, Instant::now());
    Json(PublicStatus {
        version: env!("CARGO_PKG_VERSION"),
        title: state.title.to_string(),
        healthy: age.is_some_and(|a| a <= HEALTHY_FRAME_AGE),
        viewer_count: state.registry.counts().await.0,
    })
    .into_response()
}

async fn full_status(state: &AppState) -> Json<Status> {
    let now = Instant::now();
    let hub = state.hubs.video.stats(now);
    let viewers = state.registry.list().await;
    let age = frame_age(state, now);
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        title: state.title.to_string(),
        uptime_s: state.started.elapsed().as_secs(),
        healthy: age.is_some_and(|a| a <= HEALTHY_FRAME_AGE),
        pipeline: state.pipeline.status(),
        stream: StreamStatus {
            fps: (hub.rates.fps * 10.0).round() / 10.0,
            bitrate_kbps: hub.rates.bitrate_kbps.round(),
            frames: hub.frames_in,
            keyframes: hub.keyframes_in,
            dropped_frames: hub.dropped_frames,
            keyframe_requests_sent: state.keyframe_requests_sent.load(Ordering::Relaxed),
            join_start: match state.hubs.video.join_start() {
                JoinStart::Keyframe => "keyframe",
                JoinStart::CachedGop => "cached_gop",
            },
            replayed_joins: hub.replayed_joins,
            replayed_repairs: hub.replayed_repairs,
            hub_viewers: hub.viewers,
            last_frame_age_ms: age.map(|a| a.as_millis()),
        },
        viewer_count: viewers.len(),
        viewers,
    })
}

pub async fn healthz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    match frame_age(&state, Instant::now()) {
        Some(age) if age <= HEALTHY_FRAME_AGE => Ok("ok\n"),
        Some(age) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Pipeline stalled",
            format!("no frame for {} ms", age.as_millis()),
        )),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Pipeline not producing",
            "no frame has been produced yet",
        )),
    }
}
