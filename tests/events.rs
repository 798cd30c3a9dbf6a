//! `/api/events` pushes live/offline and the viewer count to pages: the current summary at
//! once, a new one within 2 s of a join or a leave, and nothing while nothing changes.

use fieldcast_test_support as support;

use std::time::{Duration, Instant};
use support::{WhepViewer, base_url, start_daemon};

/// Reads a Server-Sent Events stream and hands back its `summary` events as JSON.
struct Listener {
    response: reqwest::Response,
    buffer: String,
}

impl Listener {
    async fn open(base: &str) -> Listener {
        let response = reqwest::get(format!("{base}/api/events")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Listener {
            response,
            buffer: String::new(),
        }
    }

    /// The next `summary` event, if one comes within `within`.
    async fn next(&mut self, within: Duration) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                // Keep-alive comments (": ...") carry no event.
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    assert!(block.contains("event: summary"), "{block}");
                    return Some(serde_json::from_str(data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits for an event with this many viewers; fails saying what did not happen.
    async fn expect_count(&mut self, count: u64, within: Duration, after: &str) -> Duration {
        let started = Instant::now();
        let deadline = started + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(event) if event["viewer_count"] == count => return started.elapsed(),
                Some(_) => continue,
                None => panic!("no event saying {count} watching within {within:?} of {after}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_count_is_pushed_within_two_seconds_of_a_join_and_a_leave() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let mut listener = Listener::open(&base).await;
    let first = listener
        .next(Duration::from_secs(2))
        .await
        .expect("the current summary at once");
    assert_eq!(first["viewer_count"], 0, "{first}");

    let mut viewer = WhepViewer::connect(&base).await;
    let join = listener
        .expect_count(1, Duration::from_secs(2), "the join")
        .await;
    viewer.next_frame(Duration::from_secs(5)).await;

    // Nothing changes, so nothing is sent (keep-alives come every 20 s).
    assert_eq!(
        listener.next(Duration::from_millis(2500)).await,
        None,
        "an event although nothing changed"
    );

    assert_eq!(viewer.delete(&base).await, 200);
    let leave = listener
        .expect_count(0, Duration::from_secs(2), "the leave")
        .await;
    println!("count pushed {join:?} after the join, {leave:?} after the leave");
    viewer.close().await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_says_live_and_a_second_listener_gets_the_same() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    // Frames flow a moment after start; the summary turns live within a second of that.
    let mut listener = Listener::open(&base).await;
    let mut live = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !live && Instant::now() < deadline {
        if let Some(event) = listener.next(Duration::from_secs(1)).await {
            live = event["live"] == true;
        }
    }
    assert!(live, "the summary never said live within 3 s");
    let mut second = Listener::open(&base).await;
    let event = second.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        event,
        serde_json::json!({"live": true, "viewer_count": 0}),
        "a new listener hears the current state at once"
    );
    daemon.shutdown().await;
}
