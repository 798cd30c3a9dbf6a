//! Packets lost on the way to a viewer are sent again when it asks (RTCP NACK, RFC 4585): the
//! real daemon on the `test` pipeline, a real viewer whose own stack sends the NACKs, and a
//! relay between them that loses packets.

use fieldcast_test_support as support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::lossy_relay::{LossyRelay, only_candidate, udp_candidate};
use support::{Wants, WhepViewer, base_url, start_daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_sent_again_when_the_viewer_asks() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let relay: Arc<Mutex<Option<LossyRelay>>> = Arc::default();
    let answer_relay = Arc::clone(&relay);
    let lose_at = [40, 41, 70, 100];
    let mut viewer = WhepViewer::connect_rewriting(
        &base,
        Wants {
            video: true,
            audio: false,
        },
        None,
        // The daemon learns the relay's address from the viewer's checks, and nothing else.
        |offer| only_candidate(&offer, None),
        move |answer| {
            let daemon = udp_candidate(&answer).expect("the answer has a UDP host candidate");
            let relay = LossyRelay::start(daemon, &lose_at);
            let rewritten = only_candidate(&answer, Some(relay.viewer_side));
            *answer_relay.lock().unwrap() = Some(relay);
            rewritten
        },
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = HashSet::new();
    loop {
        let dropped = relay.lock().unwrap().as_ref().unwrap().dropped();
        if dropped.len() == lose_at.len() && dropped.iter().all(|s| received.contains(s)) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((packet, _))) = tokio::time::timeout(left, viewer.raw_video.recv()).await
        else {
            panic!(
                "the relay lost {dropped:?}; within 10 s {:?} of them arrived again",
                dropped
                    .iter()
                    .filter(|s| received.contains(*s))
                    .collect::<Vec<_>>()
            );
        };
        received.insert(packet.header.sequence_number);
    }
    viewer.close().await;
    daemon.shutdown().await;
}
