//! The router without a socket or a pipeline: what it answers where no WebRTC session is
//! needed — refusals, discovery, status, the admin gate, health.

use super::events::LiveSummary;
use super::{AppState, PipelineView, access, limits, router};
use crate::config::Limits;
use crate::fanout::audio::AudioHub;
use crate::fanout::{DEFAULT_VIEWER_QUEUE_FRAMES, FanoutHub, Hubs, JoinStart};
use crate::media::pipeline::{PipelineState, PipelineStatus};
use crate::publish::Publishers;
use crate::record::{RecordSettings, Recorder};
use crate::webrtc::api::{IceServer, PeerSettings};
use crate::webrtc::registry::SessionRegistry;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "router-test-admin";
/// On loopback, where nobody answers: the loop's STUN requests stay on this machine.
const STUN: &str = "stun:127.0.0.1:3478";
const UNKNOWN_SESSION: &str = "/whep/0123456789abcdef";

/// A pipeline that has not produced anything yet.
struct NotStarted;

impl PipelineView for NotStarted {
    fn status(&self) -> PipelineStatus {
        PipelineStatus {
            state: PipelineState::Starting,
            preset: Some("test".to_owned()),
            encoder: Some("x264enc".to_owned()),
            reason: "chosen by the test".to_owned(),
            width: None,
            height: None,
            fps: None,
            restarts: 0,
            last_error: None,
            audio: None,
        }
    }

    fn has_audio(&self) -> bool {
        false
    }
}

/// Everything the router needs, with no pipeline behind it and no frame on the hub.
fn state(viewer_tokens: Vec<String>) -> AppState {
    let (video, _keyframe_requests) =
        FanoutHub::new(DEFAULT_VIEWER_QUEUE_FRAMES, JoinStart::Keyframe);
    let hubs = Hubs {
        video,
        audio: AudioHub::new(),
    };
    let peer_settings = PeerSettings {
        ice_servers: vec![IceServer::stun(STUN)],
        udp_addrs: vec!["127.0.0.1:0".to_owned()],
        ..PeerSettings::default()
    };
    // Never created: recording is off, so the recorder only finds no segments there.
    let recordings = std::env::temp_dir().join("fieldcast-router-tests-no-recordings");
    let registry = SessionRegistry::start(hubs.clone(), Duration::from_secs(15), &peer_settings)
        .expect("the egress loop binds a loopback socket");
    AppState {
        registry,
        recorder: Recorder::start(&RecordSettings::default(), recordings, "Live", &hubs, false),
        hubs,
        pipeline: Arc::new(NotStarted),
        peer_settings: Arc::new(peer_settings),
        title: Arc::from("Match day"),
        access: Arc::new(access::Access::new(viewer_tokens, ADMIN_TOKEN.to_owned())),
        admission: Arc::new(limits::Admission::new(Limits::default())),
        keyframe_requests_sent: Arc::new(AtomicU64::new(0)),
        started: Instant::now(),
        summary: tokio::sync::watch::channel(LiveSummary::default()).1,
        publishers: Publishers::default(),
    }
}

fn request(method: Method, uri: &str) -> axum::http::request::Builder {
    let remote: SocketAddr = "192.0.2.7:50000".parse().unwrap();
    Request::builder()
        .method(method)
        .uri(uri)
        .extension(ConnectInfo(remote))
}

async fn send(state: AppState, request: Request<Body>) -> Response {
    router(state)
        .oneshot(request)
        .await
        .expect("the router always answers")
}

async fn body_json(response: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("the body is read");
    serde_json::from_slice(&bytes).expect("the body is JSON")
}

fn header_of(response: &Response, name: header::HeaderName) -> Option<&str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// The response is `status` as problem+json whose `status` field agrees; returns the body.
async fn problem(response: Response, status: StatusCode) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        header_of(&response, header::CONTENT_TYPE),
        Some("application/problem+json")
    );
    let body = body_json(response).await;
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["type"], "about:blank", "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

#[tokio::test]
async fn offer_in_the_wrong_content_type_is_415() {
    let post = request(Method::POST, "/whep")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("v=0\r\n"))
        .unwrap();
    let body = problem(
        send(state(Vec::new()), post).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert_eq!(body["detail"], "the body must be application/sdp");
}

#[tokio::test]
async fn offer_larger_than_the_limit_is_413() {
    let post = request(Method::POST, "/whep")
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from("a".repeat(super::whep::MAX_BODY_BYTES + 1)))
        .unwrap();
    problem(
        send(state(Vec::new()), post).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
}

#[tokio::test]
async fn offer_that_is_not_sdp_is_400() {
    let post = request(Method::POST, "/whep")
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from("hello"))
        .unwrap();
    problem(send(state(Vec::new()), post).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn offer_without_a_token_is_401_when_viewers_need_one() {
    let post = request(Method::POST, "/whep")
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from("v=0\r\n"))
        .unwrap();
    let response = send(state(vec!["class-7b".to_owned()]), post).await;
    assert_eq!(
        header_of(&response, header::WWW_AUTHENTICATE),
        Some("Bearer realm=\"fieldcast\"")
    );
    problem(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn patch_of_an_unknown_session_is_404() {
    let patch = request(Method::PATCH, UNKNOWN_SESSION)
        .header(header::CONTENT_TYPE, "application/trickle-ice-sdpfrag")
        .body(Body::from("a=ice-ufrag:abcd\r\n"))
        .unwrap();
    let body = problem(send(state(Vec::new()), patch).await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["detail"], "no session 0123456789abcdef");
}

#[tokio::test]
async fn delete_of_an_unknown_session_is_404() {
    let delete = request(Method::DELETE, UNKNOWN_SESSION)
        .body(Body::empty())
        .unwrap();
    problem(send(state(Vec::new()), delete).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn options_whep_says_what_to_post_and_which_ice_servers() {
    let options = request(Method::OPTIONS, "/whep")
        .header(header::ORIGIN, "https://player.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let response = send(state(Vec::new()), options).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_of(&response, "accept-post".parse().unwrap()),
        Some("application/sdp")
    );
    let links: Vec<&str> = response
        .headers()
        .get_all(header::LINK)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(links, [format!("<{STUN}>; rel=\"ice-server\"")]);
    assert_eq!(
        header_of(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("*"),
        "a WHEP player on another page may watch"
    );
}

#[tokio::test]
async fn public_status_tells_title_and_liveness_and_nothing_per_viewer() {
    let get = request(Method::GET, "/api/status")
        .body(Body::empty())
        .unwrap();
    let response = send(state(Vec::new()), get).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_of(&response, header::CONTENT_TYPE),
        Some("application/json")
    );
    let body = body_json(response).await;
    assert_eq!(
        body,
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "title": "Match day",
            "live": false,
            "viewer_count": 0,
            "width": null,
            "height": null,
            "fps": null,
            "bitrate_kbps": null,
            "audio": false,
        })
    );
}

#[tokio::test]
async fn admin_routes_are_401_without_the_token_and_403_with_another() {
    for path in ["/api/admin/status", "/api/admin/recordings", "/metrics"] {
        let anonymous = request(Method::GET, path).body(Body::empty()).unwrap();
        let response = send(state(Vec::new()), anonymous).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            header_of(&response, header::WWW_AUTHENTICATE).is_some(),
            "{path} asks for a bearer token"
        );
        problem(response, StatusCode::UNAUTHORIZED).await;

        let guess = request(Method::GET, path)
            .header(header::AUTHORIZATION, "Bearer not-the-admin")
            .body(Body::empty())
            .unwrap();
        problem(send(state(Vec::new()), guess).await, StatusCode::FORBIDDEN).await;
    }
    let post = request(Method::POST, "/api/admin/recordings/start")
        .body(Body::empty())
        .unwrap();
    problem(
        send(state(Vec::new()), post).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn admin_status_with_the_token_shows_the_pipeline_and_no_viewers() {
    let get = request(Method::GET, "/api/admin/status")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = send(state(Vec::new()), get).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(response).await;
    assert_eq!(body["healthy"], false, "{body}");
    assert_eq!(body["pipeline"]["state"], "starting", "{body}");
    assert_eq!(body["pipeline"]["encoder"], "x264enc", "{body}");
    assert_eq!(body["viewers"], serde_json::json!([]), "{body}");
    assert_eq!(body["stream"]["join_start"], "keyframe", "{body}");
    assert_eq!(body["stream"]["last_frame_age_ms"], serde_json::Value::Null);
    assert_eq!(body["publish"], serde_json::json!([]), "{body}");
}

#[tokio::test]
async fn metrics_with_the_token_are_openmetrics_text() {
    let get = request(Method::GET, "/metrics")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = send(state(Vec::new()), get).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_of(&response, header::CONTENT_TYPE),
        Some(crate::metrics::CONTENT_TYPE)
    );
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("\nfieldcast_viewers 0.0\n"), "{text}");
    assert!(
        text.contains("\nfieldcast_encoded_frames_total 0\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[tokio::test]
async fn healthz_is_503_before_the_first_frame() {
    let get = request(Method::GET, "/healthz")
        .body(Body::empty())
        .unwrap();
    let body = problem(
        send(state(Vec::new()), get).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["title"], "Pipeline not producing");
}
