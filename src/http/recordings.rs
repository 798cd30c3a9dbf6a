//! The admin's recordings: list, start/stop, download (with Range, so a player can seek) and
//! delete. Every route needs the admin token.

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::record::{RecordError, RecordStatus, SegmentInfo};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

#[derive(Serialize)]
pub struct Listing {
    status: RecordStatus,
    /// Newest first.
    segments: Vec<SegmentInfo>,
}

/// `GET /api/admin/recordings`
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Listing>, ApiError> {
    state.access.require_admin(&headers)?;
    Ok(Json(Listing {
        status: state.recorder.status(),
        segments: state.recorder.segments(),
    }))
}

/// `POST /api/admin/recordings/start`
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<RecordStatus>, ApiError> {
    switch(&state, &headers, true)
}

/// `POST /api/admin/recordings/stop`
pub async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<RecordStatus>, ApiError> {
    switch(&state, &headers, false)
}

fn switch(state: &AppState, headers: &HeaderMap, on: bool) -> Result<Json<RecordStatus>, ApiError> {
    state.access.require_admin(headers)?;
    state.recorder.set_enabled(on);
    Ok(Json(state.recorder.status()))
}

/// `GET /api/admin/recordings/{name}`: the file, whole or the range asked for (206).
pub async fn download(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    state.access.require_admin(request.headers())?;
    let path = state
        .recorder
        .path_of(&name)
        .ok_or_else(|| ApiError::not_found(format!("no recording called {name:?}")))?;
    let response = match ServeFile::new(path).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let mut response = response.map(Body::new);
    // The name is one of ours (time and slug): safe inside quotes.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `DELETE /api/admin/recordings/{name}`: 204; 409 for the file being written.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.access.require_admin(&headers)?;
    match state.recorder.delete(&name).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e @ RecordError::NotFound(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ RecordError::Writing(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            e.to_string(),
        )),
        Err(e @ RecordError::Io { .. }) => Err(ApiError::internal(e.to_string())),
    }
}
