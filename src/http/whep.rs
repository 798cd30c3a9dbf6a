//! WHEP signalling (RFC 9725 semantics, receive side): POST an offer, get an answer and a
//! session URL; PATCH it with late candidates; DELETE it to leave.

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::webrtc::api::IceServer;
use crate::webrtc::offer::check_offer;
use crate::webrtc::sdpfrag::SdpFrag;
use crate::webrtc::session::{SessionError, ViewerSession};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// Largest offer or fragment accepted; a browser's offer is a few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// A viewer's sound with its packet overhead (48 kbit/s Opus by default), for the uplink budget.
const SOUND_KBPS_ESTIMATE: f64 = 64.0;

fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(found) if found.eq_ignore_ascii_case(expected) => Ok(()),
        _ => Err(ApiError::unsupported_media_type(expected)),
    }
}

fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request(format!("the body could not be read: {rejection}"))
        }
    })?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))
}

/// What the viewer got wrong is a 400; what failed on our side is a 500, logged as an error.
fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Setup(detail) => ApiError::internal(detail),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// One `Link: <url>; rel="ice-server"` value per URL (RFC 9725 §4.6).
pub fn ice_server_links(servers: &[IceServer]) -> Vec<HeaderValue> {
    let quote = |s: &str| s.replace(['"', '\\'], "");
    servers
        .iter()
        .flat_map(|server| {
            server.urls.iter().filter_map(move |url| {
                let mut link = format!("<{url}>; rel=\"ice-server\"");
                if let (Some(user), Some(credential)) = (&server.username, &server.credential) {
                    link.push_str(&format!(
                        "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        quote(user),
                        quote(credential)
                    ));
                }
                HeaderValue::from_str(&link).ok()
            })
        })
        .collect()
}

/// `OPTIONS /whep`: the CORS layer answers first (a browser's preflight and a plain OPTIONS
/// alike); this adds what a WHEP client discovers there, as 204 No Content.
pub async fn discovery(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let is_discovery =
        request.method() == axum::http::Method::OPTIONS && request.uri().path() == "/whep";
    let mut response = next.run(request).await;
    if is_discovery && response.status().is_success() {
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert("accept-post", HeaderValue::from_static(SDP));
        let servers = state.peer_settings.for_viewer(std::time::SystemTime::now());
        for link in ice_server_links(&servers.ice_servers) {
            headers.append(header::LINK, link);
        }
    }
    response
}

/// What one viewer receives, in kbit/s: the measured video bitrate plus the sound's.
fn stream_kbps(state: &AppState) -> f64 {
    let video = state
        .hubs
        .video
        .stats(std::time::Instant::now())
        .rates
        .bitrate_kbps;
    let audio = if state.pipeline.has_audio() {
        SOUND_KBPS_ESTIMATE
    } else {
        0.0
    };
    video + audio
}

/// `307 Temporary Redirect`: the client repeats its POST, offer and all, at `url`.
fn redirect_to(url: &str) -> Response {
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(location) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let credential = state.access.viewer(&headers)?;
    require_content_type(&headers, SDP)?;
    let offer = body_text(body)?;
    state.admission.rate(remote.ip())?;
    let wanted = check_offer(&offer, state.pipeline.has_audio())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (viewers, connecting) = state.registry.counts().await;
    let targets = state.publishers.len();
    let stream_kbps = stream_kbps(&state);
    // Full, with an engine to send viewers to: RFC 9725 lets the POST be redirected.
    if let Some(url) = state.admission.overflow(viewers, targets, stream_kbps) {
        // Per viewer this would flood the log on a big day: counted in status and metrics.
        tracing::debug!(%remote, "stream full: viewer sent to the overflow URL");
        return Ok(redirect_to(url));
    }
    let _negotiating = state
        .admission
        .begin(viewers, connecting, targets, stream_kbps)?;
    let (session, stream, answer) = ViewerSession::negotiate(
        state.registry.egress(),
        offer,
        &wanted,
        Some(remote),
        credential,
    )
    .await
    .map_err(session_error)?;
    tracing::info!(viewer = %session.id, %remote, "viewer joining");
    let location = format!("/whep/{}", session.id);
    let etag = session.etag();
    state.registry.insert(session, stream);

    let mut response = (StatusCode::CREATED, answer).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    for (name, value) in [(header::LOCATION, location), (header::ETAG, etag)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    // TURN credentials made for this viewer (Link headers, RFC 9725 §4.6).
    let settings = state.peer_settings.for_viewer(std::time::SystemTime::now());
    for link in ice_server_links(&settings.ice_servers) {
        headers.append(header::LINK, link);
    }
    Ok(response)
}

pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.access.viewer(&headers)?;
    require_content_type(&headers, SDPFRAG)?;
    let session = state
        .registry
        .get(&id)
        .await
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    state.access.same_viewer(&headers, session.credential)?;
    if let Some(wanted) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && wanted.trim() != "*"
        && wanted.trim() != session.etag()
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "Precondition failed",
            "If-Match does not match the session's ETag",
        ));
    }
    let frag =
        SdpFrag::parse(&body_text(body)?).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let restart = match (&frag.ice_ufrag, session.remote_ice_ufrag()) {
        (Some(new), Some(current)) => *new != current,
        _ => false,
    };
    if restart {
        let fragment = session.restart_ice(&frag).await.map_err(session_error)?;
        let mut response = (StatusCode::OK, fragment).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDPFRAG));
        if let Ok(etag) = HeaderValue::from_str(&session.etag()) {
            headers.insert(header::ETAG, etag);
        }
        return Ok(response);
    }
    session.add_candidates(&frag).await.map_err(session_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.access.viewer(&headers)?;
    let session = state
        .registry
        .get(&id)
        .await
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    state.access.same_viewer(&headers, session.credential)?;
    if state.registry.remove(&id).await {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found(format!("no session {id}")))
    }
}
