//! What a careless or hostile client sends gets a clear problem+json answer, leaves nothing
//! behind, and the daemon goes on serving real viewers.

use fieldcast_test_support as support;

use fieldcast::webrtc::api::IceServer;
use reqwest::{Client, Response, StatusCode};
use std::time::Duration;
use support::{WhepViewer, base_url, start_daemon_with, status_json, wait_for_status};

/// An offer that parses but has only audio: nothing fieldcast can answer with video.
const AUDIO_ONLY_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
    a=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
    a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
    a=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n";

async fn expect_problem(response: Response, status: StatusCode, what: &str) -> serde_json::Value {
    assert_eq!(response.status(), status, "{what}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{what}: errors are problem+json"
    );
    let body: serde_json::Value = response.json().await.expect("a JSON problem body");
    assert_eq!(body["status"], status.as_u16(), "{what}: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{what}: {body}"
    );
    body
}

fn post_offer(
    client: &Client,
    base: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/whep"))
        .header("content-type", content_type)
        .body(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problem_json_and_leave_nothing_behind() {
    // Without sound, an offer for sound only cannot be answered.
    let daemon = start_daemon_with(|config| config.media.audio.source = "none".into()).await;
    let base = base_url(&daemon);
    let client = Client::new();

    let r = post_offer(&client, &base, "text/plain", "v=0")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "offer as text/plain").await;

    let r = client
        .post(format!("{base}/whep"))
        .body("v=0")
        .send()
        .await
        .unwrap();
    expect_problem(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "offer without content type",
    )
    .await;

    let r = post_offer(&client, &base, "application/sdp", "this is not sdp")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::BAD_REQUEST, "garbage offer").await;

    let r = post_offer(&client, &base, "application/sdp", vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::BAD_REQUEST, "binary offer").await;

    let r = post_offer(&client, &base, "application/sdp", AUDIO_ONLY_OFFER)
        .send()
        .await
        .unwrap();
    let body = expect_problem(r, StatusCode::BAD_REQUEST, "audio-only offer").await;
    assert!(
        body["detail"].as_str().unwrap().contains("no sound"),
        "{body}"
    );

    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(20_000));
    let r = post_offer(&client, &base, "application/sdp", huge)
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "100 KiB offer").await;

    let r = client
        .patch(format!("{base}/whep/no-such-session"))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=ice-ufrag:x\r\n")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND, "PATCH of an unknown session").await;

    let r = client
        .delete(format!("{base}/whep/no-such-session"))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND, "DELETE of an unknown session").await;

    // Nothing above created a session, and the daemon still serves a real viewer.
    let status = status_json(&base).await;
    assert_eq!(status["viewer_count"], 0, "{status}");
    let mut viewer = WhepViewer::connect(&base).await;
    assert!(
        viewer
            .next_frame(Duration::from_secs(5))
            .await
            .starts_decoding()
    );

    // Requests against a live session: wrong type, stale ETag, malformed fragment.
    let session = format!("{base}{}", viewer.location);
    let r = client
        .patch(&session)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "PATCH as text/plain").await;
    let r = client
        .patch(&session)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "\"not-the-etag\"")
        .body("a=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    expect_problem(
        r,
        StatusCode::PRECONDITION_FAILED,
        "PATCH with a stale ETag",
    )
    .await;
    let r = client
        .patch(&session)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header(
            "if-match",
            viewer.etag.clone().expect("the 201 carried an ETag"),
        )
        .body("a=candidate:not a candidate\r\n")
        .send()
        .await
        .unwrap();
    expect_problem(
        r,
        StatusCode::BAD_REQUEST,
        "PATCH with a malformed candidate",
    )
    .await;
    let r = client
        .patch(&session)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "a well-formed fragment is accepted"
    );

    // The session survived the bad PATCHes and still streams.
    viewer.next_frame(Duration::from_secs(5)).await;
    assert_eq!(status_json(&base).await["viewer_count"], 1);
    assert_eq!(viewer.delete(&base).await, 200);
    assert_eq!(viewer.delete(&base).await, 404, "a session is deleted once");
    viewer.close().await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_pages() {
    let daemon = start_daemon_with(|config| {
        config.peer.ice_servers = vec![IceServer {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            username: Some("club".into()),
            credential: Some("secret".into()),
            ..IceServer::stun("")
        }];
    })
    .await;
    let base = base_url(&daemon);
    let client = Client::new();

    let r = client
        .request(reqwest::Method::OPTIONS, format!("{base}/whep"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["accept-post"], "application/sdp");
    let link = r.headers()["link"].to_str().unwrap();
    assert!(
        link.contains("<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\"")
            && link.contains("username=\"club\"")
            && link.contains("credential=\"secret\""),
        "{link}"
    );

    // A browser's CORS preflight from another origin is allowed, and Location is readable.
    let r = client
        .request(reqwest::Method::OPTIONS, format!("{base}/whep"))
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("<video"));
    let script = client
        .get(format!("{base}/viewer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        health.status(),
        200,
        "the test pipeline is producing frames"
    );
    let status = wait_for_status(
        &base,
        "a measured frame rate",
        Duration::from_secs(5),
        |s| s["stream"]["fps"].as_f64().unwrap_or(0.0) > 20.0,
    )
    .await;
    assert_eq!(status["pipeline"]["state"], "playing", "{status}");
    assert_eq!(status["pipeline"]["preset"], "test", "{status}");
    assert_eq!(status["pipeline"]["width"], 1280, "{status}");
    assert!(status["pipeline"]["encoder"].is_string(), "{status}");
    assert!(status["stream"]["fps"].as_f64().unwrap() > 20.0, "{status}");
    assert!(
        status["stream"]["bitrate_kbps"].as_f64().unwrap() > 0.0,
        "{status}"
    );
    daemon.shutdown().await;
}
