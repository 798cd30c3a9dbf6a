//! What the daemon is doing: `/api/status` for people and tools, `/healthz` for supervisors.

use crate::fanout::JoinStart;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::media::HEALTHY_FRAME_AGE;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
    /// Viewers a full device sent to the overflow URL (307).
    overflow_redirects: u64,
    /// Queues on the hub; equals the connected viewers plus the publish targets unless one
    /// is leaking.
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
    /// Engines that get the same encode: state, since when, bytes, reconnects, last error.
    publish: Vec<crate::publish::state::TargetStatus>,
    /// On or off, the file being written, bytes and segments kept, free space, last error.
    recording: crate::record::RecordStatus,
}

fn frame_age(state: &AppState, now: Instant) -> Option<Duration> {
    state
        .hubs
        .video
        .stats(now)
        .last_frame_at
        .map(|at| now.saturating_duration_since(at))
}

/// What anyone may see: is it live, what it looks like, how many watch. Nothing about any
/// other viewer: their session ids would let anyone end their sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicStatus {
    version: &'static str,
    pub title: String,
    /// Frames are flowing.
    pub live: bool,
    pub viewer_count: usize,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub audio: bool,
}

pub async fn public_status(state: &AppState) -> PublicStatus {
    let now = Instant::now();
    let live = frame_age(state, now).is_some_and(|a| a <= HEALTHY_FRAME_AGE);
    let pipeline = state.pipeline.status();
    let rates = state.hubs.video.stats(now).rates;
    PublicStatus {
        version: env!("CARGO_PKG_VERSION"),
        title: state.title.to_string(),
        live,
        viewer_count: state.registry.counts().await.0,
        width: pipeline.width,
        height: pipeline.height,
        fps: live.then(|| (rates.fps * 10.0).round() / 10.0),
        bitrate_kbps: live.then(|| rates.bitrate_kbps.round()),
        audio: state.pipeline.has_audio(),
    }
}

/// `GET /api/status`: the public view, the same for everyone.
pub async fn status(State(state): State<AppState>) -> Json<PublicStatus> {
    Json(public_status(&state).await)
}

/// `GET /api/admin/status`: everything, per viewer; needs the admin token.
pub async fn admin_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Status>, ApiError> {
    state.access.require_admin(&headers)?;
    Ok(full_status(&state).await)
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
            overflow_redirects: state.admission.redirected(),
            hub_viewers: hub.viewers,
            last_frame_age_ms: age.map(|a| a.as_millis()),
        },
        viewer_count: viewers.len(),
        viewers,
        publish: state.publishers.status(),
        recording: state.recorder.status(),
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
