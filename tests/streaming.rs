//! The core path end to end: the real daemon on the `test` pipeline, real WebRTC viewers
//! over loopback UDP.

use fieldcast_test_support as support;

use std::collections::HashSet;
use std::time::Duration;
use support::{WhepViewer, base_url, start_daemon, status_json, wait_for_status};

const VIEWERS: usize = 10;
const FRAMES_EACH: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_viewers_each_get_a_decodable_continuous_stream() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);

    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        viewers.push(WhepViewer::connect(&base).await);
    }
    let status = wait_for_status(&base, "10 viewers", Duration::from_secs(5), |s| {
        s["viewer_count"] == VIEWERS
    })
    .await;
    assert_eq!(status["viewers"].as_array().unwrap().len(), VIEWERS);

    let receivers = viewers.into_iter().map(|mut viewer| {
        tokio::spawn(async move {
            let mut frames = Vec::new();
            while frames.len() < FRAMES_EACH {
                frames.push(viewer.next_frame(Duration::from_secs(5)).await);
            }
            (viewer, frames)
        })
    });
    let mut viewers = Vec::new();
    let mut ssrcs = HashSet::new();
    for receiver in receivers {
        let (viewer, frames) = tokio::time::timeout(Duration::from_secs(20), receiver)
            .await
            .expect("every viewer receives 60 frames within 20 s")
            .unwrap();
        let first = &frames[0];
        assert!(
            first.starts_decoding(),
            "the first frame must be an IDR preceded by SPS and PPS, got {first:?}"
        );
        assert_eq!(
            first.payload_type, 109,
            "the viewer's own payload type is used"
        );
        let sequence: Vec<u16> = frames
            .iter()
            .flat_map(|f| f.sequence_numbers.iter().copied())
            .collect();
        for pair in sequence.windows(2) {
            assert_eq!(
                pair[1],
                pair[0].wrapping_add(1),
                "sequence numbers continue without gaps"
            );
        }
        assert!(frames.iter().all(|f| f.ssrc == first.ssrc));
        ssrcs.insert(first.ssrc);
        viewers.push(viewer);
    }
    assert_eq!(ssrcs.len(), VIEWERS, "each viewer has its own SSRC");

    for viewer in &viewers {
        assert_eq!(viewer.delete(&base).await, 200);
    }
    let status = status_json(&base).await;
    assert_eq!(
        status["viewer_count"], 0,
        "DELETE frees every session: {status}"
    );
    assert_eq!(
        daemon_hub_viewers(&status),
        0,
        "no queue is left on the hub: {status}"
    );
    for viewer in viewers {
        viewer.close().await;
    }
    daemon.shutdown().await;
}

fn daemon_hub_viewers(status: &serde_json::Value) -> u64 {
    status["stream"]["hub_viewers"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_that_vanishes_is_reaped() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let mut viewer = WhepViewer::connect(&base).await;
    viewer.next_frame(Duration::from_secs(5)).await;
    // Closing without DELETE: the daemon must notice on its own.
    viewer.close().await;
    wait_for_status(
        &base,
        "the vanished viewer removed",
        Duration::from_secs(30),
        |s| s["viewer_count"] == 0 && daemon_hub_viewers(s) == 0,
    )
    .await;
    daemon.shutdown().await;
}
