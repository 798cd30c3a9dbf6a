//! The HTTP face of fieldcast: WHEP signalling, the viewer page, status and health.

pub(crate) mod access;
mod error;
pub(crate) mod events;
pub(crate) mod limits;
mod metrics;
pub mod openapi;
mod recordings;
pub(crate) mod redirect;
pub(crate) mod serve;
mod share;
mod status;
#[cfg(test)]
mod tests;
pub(crate) mod tls;
mod viewer;
mod whep;

use crate::fanout::Hubs;
use crate::media::pipeline::{MediaPipeline, PipelineStatus};
use crate::webrtc::api::PeerSettings;
use crate::webrtc::registry::SessionRegistry;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tower_http::cors::{Any, CorsLayer};

/// Longest a client may take to send a request body (an offer is a few KiB).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What HTTP asks of the media pipeline. The daemon hands over its GStreamer pipeline; the
/// router's own tests a fixed stand-in, so they run without one.
pub(crate) trait PipelineView: Send + Sync {
    /// State, preset, encoder, picture and sound, as status shows them.
    fn status(&self) -> PipelineStatus;
    /// The stream has sound: offers are answered with it and viewers cost more uplink.
    fn has_audio(&self) -> bool;
}

impl PipelineView for MediaPipeline {
    fn status(&self) -> PipelineStatus {
        MediaPipeline::status(self)
    }

    fn has_audio(&self) -> bool {
        MediaPipeline::has_audio(self)
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub registry: SessionRegistry,
    pub hubs: Hubs,
    pub pipeline: Arc<dyn PipelineView>,
    pub peer_settings: Arc<PeerSettings>,
    pub title: Arc<str>,
    pub access: Arc<access::Access>,
    pub admission: Arc<limits::Admission>,
    pub keyframe_requests_sent: Arc<AtomicU64>,
    pub started: Instant,
    /// Live or not and how many watch, as the viewer pages hear it (`/api/events`).
    pub summary: tokio::sync::watch::Receiver<events::LiveSummary>,
    /// The engines that get the same encode.
    pub publishers: crate::publish::Publishers,
    pub recorder: crate::record::Recorder,
}

pub(crate) fn router(state: AppState) -> Router {
    // Any origin may watch: a WHEP player on another page is a legitimate viewer.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_MATCH,
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LINK,
            HeaderName::from_static("accept-post"),
        ]);
    Router::new()
        .merge(viewer::routes())
        .route("/share.svg", get(share::qr_svg))
        .route("/whep", post(whep::create))
        .route(
            "/whep/{id}",
            axum::routing::patch(whep::patch).delete(whep::delete),
        )
        .route("/api/status", get(status::status))
        .route("/api/events", get(events::events))
        .route("/api/admin/status", get(status::admin_status))
        .route("/api/admin/recordings", get(recordings::list))
        .route("/api/admin/recordings/start", post(recordings::start))
        .route("/api/admin/recordings/stop", post(recordings::stop))
        .route(
            "/api/admin/recordings/{name}",
            get(recordings::download).delete(recordings::delete),
        )
        .route("/healthz", get(status::healthz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::metrics))
        .layer(DefaultBodyLimit::max(whep::MAX_BODY_BYTES))
        // A body that trickles in slower than this is abandoned (slowloris on the body).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            whep::discovery,
        ))
        .with_state(state)
}
