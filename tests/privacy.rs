//! The viewer list is the admin's: with no tokens configured (a fresh install), nothing a
//! viewer can fetch names another viewer's session or address, so no viewer can end or
//! restart another's session; the admin token — made at first start when none is set —
//! sees every session and may end any of them.

use fieldcast_test_support as support;

use reqwest::{Client, StatusCode};
use std::time::Duration;
use support::{WhepViewer, base_url, start_daemon_with};

async fn text(client: &Client, url: String) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// What `/api/events` sends a viewer page until it says `wanted` (within 3 s).
async fn events_until(base: &str, wanted: &str) -> String {
    let mut response = Client::new()
        .get(format!("{base}/api/events"))
        .send()
        .await
        .unwrap();
    let mut body = String::new();
    let read = tokio::time::timeout(Duration::from_secs(3), async {
        while !body.contains(wanted) {
            let Some(chunk) = response.chunk().await.unwrap() else {
                break;
            };
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no event with {wanted} within 3 s; got {body:?}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_see_or_end_another_viewers_session_but_the_admin_can() {
    let state_dir = std::env::temp_dir().join(format!(
        "fieldcast-privacy-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    // A fresh install: no token configured anywhere.
    let daemon = start_daemon_with(|config| {
        config.access.admin_token = None;
        config.state_dir = Some(state_dir.clone());
    })
    .await;
    let admin = daemon.admin.token.clone();
    assert!(daemon.admin.origin.announce(), "a new token is announced");
    let kept = std::fs::read_to_string(state_dir.join("admin-token")).unwrap();
    assert_eq!(
        kept.trim(),
        admin,
        "the token is kept in the state directory"
    );
    let base = base_url(&daemon);
    let client = Client::new();

    let mut alice = WhepViewer::connect(&base).await;
    let mut bob = WhepViewer::connect(&base).await;
    alice.next_frame(Duration::from_secs(5)).await;
    bob.next_frame(Duration::from_secs(5)).await;
    let bob_id = bob.location.trim_start_matches("/whep/").to_owned();
    assert!(
        bob_id.len() >= 32 && bob_id.chars().all(|c| c.is_ascii_hexdigit()),
        "a session id carries at least 128 random bits: {bob_id}"
    );

    // Everything a viewer can fetch without the admin token.
    let public = text(&client, format!("{base}/api/status")).await;
    let event = events_until(&base, "\"viewer_count\":2").await;
    let page = text(&client, format!("{base}/")).await;
    let admin_page = text(&client, format!("{base}/admin")).await;
    for (what, body) in [
        ("/api/status", &public),
        ("/api/events", &event),
        ("/", &page),
        ("/admin", &admin_page),
    ] {
        assert!(!body.contains(&bob_id), "{what} shows Bob's session id");
        assert!(!body.contains(&admin), "{what} shows the admin token");
    }
    let public: serde_json::Value = serde_json::from_str(&public).unwrap();
    assert_eq!(public["viewer_count"], 2, "{public}");
    assert_eq!(public["live"], true, "{public}");
    assert!(
        public.get("viewers").is_none() && public.get("stream").is_none(),
        "{public}"
    );
    assert!(
        event.contains("event: summary") && event.contains("\"viewer_count\":2"),
        "{event}"
    );

    // The details need the admin token; a viewer's guess is refused.
    let details = format!("{base}/api/admin/status");
    let none = client.get(&details).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = client
        .get(&details)
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::UNAUTHORIZED);

    // Alice ending a session she can only guess at gets nowhere; Bob still streams.
    let guess = format!("{base}/whep/{:032x}", rand::random::<u128>());
    assert_eq!(
        client.delete(&guess).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    bob.next_frame(Duration::from_secs(5)).await;

    // The admin sees both sessions, with addresses, and ends Bob's.
    let full: serde_json::Value = client
        .get(&details)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = full["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&bob_id.as_str()), "{full}");
    assert!(full["viewers"][0]["remote"].is_string(), "{full}");
    let ended = client
        .delete(format!("{base}/whep/{bob_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ended.status(),
        StatusCode::OK,
        "the admin may end any session"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let public: serde_json::Value =
            serde_json::from_str(&text(&client, format!("{base}/api/status")).await).unwrap();
        if public["viewer_count"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Bob's session was not gone within 5 s: {public}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.next_frame(Duration::from_secs(5)).await;

    alice.delete(&base).await;
    alice.close().await;
    bob.close().await;
    daemon.shutdown().await;

    // The next start keeps the same token and does not show it again.
    let again = start_daemon_with(|config| {
        config.access.admin_token = None;
        config.state_dir = Some(state_dir.clone());
    })
    .await;
    assert_eq!(again.admin.token, admin);
    assert!(!again.admin.origin.announce());
    again.shutdown().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}
