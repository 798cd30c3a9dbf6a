//! Tokens and limits against the real daemon: who may watch, who may look inside, and what
//! happens when the stream is full. Every refusal is problem+json and leaves no session.

use fieldcast_test_support as support;

use reqwest::{Client, StatusCode};
use std::time::Duration;
use support::{Wants, WhepViewer, base_url, offer_for, start_daemon_with, status_json};

const VIDEO: Wants = Wants {
    video: true,
    audio: false,
};
const PUPILS: &str = "class-7b-2026";
const PARENTS: &str = "parents-2026";
const TEACHER: &str = "teacher-secret-1";

async fn post_offer(base: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = Client::new()
        .post(format!("{base}/whep"))
        .header("content-type", "application/sdp")
        .body(offer_for(VIDEO).await);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn problem(response: reqwest::Response, status: StatusCode) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    response.json().await.unwrap()
}

async fn get(url: String, token: Option<&str>) -> reqwest::Response {
    let mut request = Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_watches_and_who_sees_inside() {
    let daemon = start_daemon_with(|config| {
        config.access.viewer_tokens = vec![PUPILS.into(), PARENTS.into()];
        config.access.admin_token = Some(TEACHER.into());
    })
    .await;
    let base = base_url(&daemon);

    let missing = post_offer(&base, None).await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"fieldcast\""
    );
    problem(missing, StatusCode::UNAUTHORIZED).await;
    problem(
        post_offer(&base, Some("guessed-token")).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let mut pupil = WhepViewer::connect_as(&base, VIDEO, Some(PUPILS)).await;
    pupil.next_frame(Duration::from_secs(5)).await;

    // Another token may not touch the pupil's session; no token is asked for one.
    let session = format!("{base}{}", pupil.location);
    let client = Client::new();
    let r = client
        .delete(&session)
        .bearer_auth(PARENTS)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let r = client
        .patch(&session)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;

    // Status says only whether it is live and how many watch; the details need the admin.
    let public: serde_json::Value = get(format!("{base}/api/status"), Some(PUPILS))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(public["viewer_count"], 1, "{public}");
    assert!(
        public.get("viewers").is_none() && public.get("pipeline").is_none(),
        "{public}"
    );
    problem(
        get(format!("{base}/api/admin/status"), Some(PUPILS)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let full: serde_json::Value = get(format!("{base}/api/admin/status"), Some(TEACHER))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        full["viewers"].is_array() && full["pipeline"].is_object(),
        "{full}"
    );
    problem(
        get(format!("{base}/metrics"), None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        get(format!("{base}/metrics"), Some(PUPILS)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        get(format!("{base}/metrics"), Some(TEACHER)).await.status(),
        200
    );

    let r = client
        .delete(&session)
        .bearer_auth(PUPILS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the owner may leave");
    pupil.close().await;
    let after: serde_json::Value = get(format!("{base}/api/admin/status"), Some(TEACHER))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["viewer_count"], 0, "no session left behind: {after}");
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_says_when_to_try_again() {
    let daemon = start_daemon_with(|config| config.limits.max_viewers = 1).await;
    let base = base_url(&daemon);
    let mut first = WhepViewer::connect(&base).await;
    first.next_frame(Duration::from_secs(5)).await;

    let full = post_offer(&base, None).await;
    assert_eq!(full.headers()["retry-after"], "30");
    let body = problem(full, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body["detail"].as_str().unwrap().contains("full"), "{body}");

    // The refused join left nothing; the first viewer still streams.
    first.next_frame(Duration::from_secs(5)).await;
    assert_eq!(status_json(&base).await["viewer_count"], 1);
    first.delete(&base).await;
    first.close().await;
    daemon.shutdown().await;
}
