//! A full device sends new viewers to the overflow WHEP URL with a 307 (RFC 9725 allows the
//! POST to be redirected); the redirected POST leaves nothing behind here.

use fieldcast_test_support as support;

use reqwest::StatusCode;
use std::time::Duration;
use support::{Wants, WhepViewer, base_url, offer_for, post_offer, start_daemon_with, status_json};

const OVERFLOW: &str = "https://overflow.example/whep/stream";
const VIDEO: Wants = Wants {
    video: true,
    audio: false,
};

async fn post(base: &str, offer: String) -> reqwest::Response {
    // Not followed: the test looks at the redirect itself.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    post_offer(&client, base, offer).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_device_redirects_to_the_overflow_url() {
    let daemon = start_daemon_with(|config| {
        config.limits.max_viewers = 1;
        config.limits.overflow_url = Some(OVERFLOW.to_owned());
    })
    .await;
    let base = base_url(&daemon);
    let mut first = WhepViewer::connect(&base).await;
    first.next_frame(Duration::from_secs(5)).await;

    let redirected = post(&base, offer_for(VIDEO).await).await;
    assert_eq!(redirected.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(redirected.headers()["location"], OVERFLOW);
    let status = status_json(&base).await;
    assert_eq!(
        status["viewer_count"], 1,
        "the redirected viewer left no session"
    );
    assert_eq!(status["stream"]["overflow_redirects"], 1);

    // A seat frees: the next viewer is served here again.
    first.delete(&base).await;
    first.close().await;
    let here = post(&base, offer_for(VIDEO).await).await;
    assert_eq!(here.status(), StatusCode::CREATED);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_device_without_whep_overflow_names_the_player_page() {
    let page = "https://www.youtube.example/watch?v=cupfinal";
    let daemon = start_daemon_with(|config| {
        config.limits.max_viewers = 1;
        config.limits.overflow_page = Some(page.to_owned());
    })
    .await;
    let base = base_url(&daemon);
    let mut first = WhepViewer::connect(&base).await;
    first.next_frame(Duration::from_secs(5)).await;

    let full = post(&base, offer_for(VIDEO).await).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.headers()["retry-after"], "30");
    assert_eq!(
        full.headers()["link"],
        format!("<{page}>; rel=\"alternate\"").as_str()
    );
    first.close().await;
    daemon.shutdown().await;
}
