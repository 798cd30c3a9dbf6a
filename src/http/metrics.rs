//! `GET /metrics` (admin token): what the hubs, the sessions and the pipeline say now, in the
//! Prometheus/OpenMetrics text format of [`crate::metrics`].

use crate::http::AppState;
use crate::metrics::{CONTENT_TYPE, Scrape, render};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.access.require_admin(&headers) {
        return e.into_response();
    }
    let scrape = Scrape {
        viewers: state.registry.list().await.len(),
        totals: state.registry.totals(),
        video: state.hubs.video.stats(Instant::now()),
        audio: state.hubs.audio.stats(),
        pipeline: state.pipeline.status(),
        keyframe_requests_sent: state.keyframe_requests_sent.load(Ordering::Relaxed),
        overflow_redirects: state.admission.redirected(),
        publish: state.publishers.status(),
        recording: state.recorder.status(),
    };
    let mut response = render(&scrape).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
