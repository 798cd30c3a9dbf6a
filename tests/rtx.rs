//! A viewer whose offer has RTX (RFC 4588) gets lost packets again on the RTX stream: its own
//! SSRC (paired with the video SSRC in `a=ssrc-group:FID`), the RTX payload type whose `apt`
//! is the viewer's H.264 type, its own sequence numbers, and the original sequence number in
//! the payload, which the viewer's own stack reads to put the packet back in place. The real
//! daemon on the `test` pipeline, a real webrtc-rs viewer that sends the NACKs, and a relay
//! between them that loses packets and sees the (unencrypted) RTP headers. Every resend
//! leaves twice (`repeat_resends.rs`).

use fieldcast_test_support as support;

use fieldcast::webrtc::repeat_resends::{COPIES_PER_RESEND, COPY_AFTER};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::lossy_relay::{LossyRelay, RtpSeen, only_candidate, udp_candidate};
use support::{VIEWER_H264_PT, VIEWER_RTX_PT, Wants, WhepViewer, base_url, start_daemon};

/// The video and RTX SSRCs of the answer's `a=ssrc-group:FID` line.
fn fid_group(answer: &str) -> Option<(u32, u32)> {
    answer.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=ssrc-group:FID ")?;
        let mut ssrcs = rest.split(' ').map(|s| s.parse::<u32>().ok());
        Some((ssrcs.next()??, ssrcs.next()??))
    })
}

/// Joins with RTX offered or not, behind a relay losing the RTP packets at `lose_at`; returns
/// the viewer, the relay and the answer.
async fn viewer_behind_lossy_relay(
    base: &str,
    rtx: bool,
    lose_at: &'static [usize],
) -> (WhepViewer, Arc<Mutex<Option<LossyRelay>>>, String) {
    let relay: Arc<Mutex<Option<LossyRelay>>> = Arc::default();
    let answer_seen: Arc<Mutex<String>> = Arc::default();
    let (answer_relay, answer_copy) = (Arc::clone(&relay), Arc::clone(&answer_seen));
    let viewer = WhepViewer::connect_full(
        base,
        Wants {
            video: true,
            audio: false,
        },
        None,
        rtx,
        // The daemon learns the relay's address from the viewer's checks, and nothing else.
        |offer| only_candidate(&offer, None),
        move |answer| {
            *answer_copy.lock().unwrap() = answer.clone();
            let daemon = udp_candidate(&answer).expect("the answer has a UDP host candidate");
            let relay = LossyRelay::start(daemon, lose_at);
            let rewritten = only_candidate(&answer, Some(relay.viewer_side));
            *answer_relay.lock().unwrap() = Some(relay);
            rewritten
        },
    )
    .await;
    let answer = answer_seen.lock().unwrap().clone();
    (viewer, relay, answer)
}

/// Waits until every packet the relay lost has reached the viewer's track; returns the video
/// packets the track got (ssrc, payload type, sequence number).
async fn wait_for_repairs(
    viewer: &mut WhepViewer,
    relay: &Arc<Mutex<Option<LossyRelay>>>,
    wanted_losses: usize,
) -> Vec<RtpSeen> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = Vec::new();
    loop {
        let dropped = relay.lock().unwrap().as_ref().unwrap().dropped();
        let got: HashSet<u16> = received
            .iter()
            .map(|p: &RtpSeen| p.sequence_number)
            .collect();
        if dropped.len() == wanted_losses && dropped.iter().all(|s| got.contains(s)) {
            return received;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((packet, _))) = tokio::time::timeout(left, viewer.raw_video.recv()).await
        else {
            panic!(
                "the relay lost {dropped:?}; within 10 s only {:?} of them reached the track",
                dropped
                    .iter()
                    .filter(|s| got.contains(*s))
                    .collect::<Vec<_>>()
            );
        };
        received.push(RtpSeen {
            ssrc: packet.header.ssrc,
            payload_type: packet.header.payload_type,
            sequence_number: packet.header.sequence_number,
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_rtx_gets_lost_packets_again_on_the_rtx_ssrc() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    const LOSE_AT: &[usize] = &[40, 41, 70, 100];
    let (mut viewer, relay, answer) = viewer_behind_lossy_relay(&base, true, LOSE_AT).await;

    assert!(
        answer.contains(&format!("a=rtpmap:{VIEWER_RTX_PT} rtx/90000"))
            && answer.contains(&format!("a=fmtp:{VIEWER_RTX_PT} apt={VIEWER_H264_PT}")),
        "the answer takes the offered RTX with apt={VIEWER_H264_PT}:\n{answer}"
    );
    let (video_ssrc, rtx_ssrc) =
        fid_group(&answer).unwrap_or_else(|| panic!("no a=ssrc-group:FID in\n{answer}"));
    assert_ne!(video_ssrc, rtx_ssrc);

    let received = wait_for_repairs(&mut viewer, &relay, LOSE_AT.len()).await;
    let (dropped, passed) = {
        let relay = relay.lock().unwrap();
        let relay = relay.as_ref().unwrap();
        (relay.dropped(), relay.passed())
    };
    // The viewer may still be asking for packets it has by now: resends seen so far have
    // their copies (due COPY_AFTER later) on the wire well within this, on a busy machine too.
    tokio::time::sleep(COPY_AFTER * 25).await;
    let passed_later = relay.lock().unwrap().as_ref().unwrap().passed();
    // Every lost packet reached the track as itself: the viewer's stack found the original
    // sequence number in the RTX payload and the stream it belongs to.
    for lost in &dropped {
        let repaired = received
            .iter()
            .find(|p| p.sequence_number == *lost)
            .unwrap();
        assert_eq!(
            (repaired.ssrc, repaired.payload_type),
            (video_ssrc, VIEWER_H264_PT),
            "packet {lost} repaired onto the video stream"
        );
    }
    // On the wire the resends came on the RTX SSRC with the RTX payload type, and not again
    // on the video SSRC.
    let resends: Vec<&RtpSeen> = passed.iter().filter(|p| p.ssrc == rtx_ssrc).collect();
    assert!(
        resends.len() >= COPIES_PER_RESEND * dropped.len(),
        "{} packets on the RTX SSRC for {} lost, each sent {COPIES_PER_RESEND} times",
        resends.len(),
        dropped.len()
    );
    assert!(resends.iter().all(|p| p.payload_type == VIEWER_RTX_PT));
    let video_again = passed
        .iter()
        .filter(|p| p.ssrc == video_ssrc && dropped.contains(&p.sequence_number))
        .count();
    assert_eq!(video_again, 0, "a lost packet was resent on the video SSRC");
    // The RTX stream numbers its own packets, one after another, and each leaves twice: the
    // copy follows its resend a moment later.
    let rtx_sequence: Vec<u16> = resends.iter().map(|p| p.sequence_number).collect();
    let first = rtx_sequence[0];
    let distinct: HashSet<u16> = rtx_sequence.iter().copied().collect();
    let expected: HashSet<u16> = (0..distinct.len() as u16)
        .map(|i| first.wrapping_add(i))
        .collect();
    assert_eq!(distinct, expected, "RTX sequence numbers {rtx_sequence:?}");
    let rtx_later: Vec<u16> = passed_later
        .iter()
        .filter(|p| p.ssrc == rtx_ssrc)
        .map(|p| p.sequence_number)
        .collect();
    for sequence in &distinct {
        let copies = rtx_later.iter().filter(|s| *s == sequence).count();
        assert_eq!(
            copies, COPIES_PER_RESEND,
            "RTX packet {sequence} sent {copies} times: {rtx_later:?}"
        );
    }
    let viewer_status = only_viewer(&base).await;
    assert_eq!(viewer_status["rtx"], true, "{viewer_status}");
    assert!(
        viewer_status["nacked_packets"].as_u64() >= Some(dropped.len() as u64),
        "{viewer_status}"
    );
    viewer.close().await;
    daemon.shutdown().await;
}

/// The one viewer's entry in the daemon's status.
async fn only_viewer(base: &str) -> serde_json::Value {
    let status = support::status_json(base).await;
    status["viewers"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_rtx_gets_lost_packets_again_on_the_video_ssrc() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    const LOSE_AT: &[usize] = &[40, 70];
    let (mut viewer, relay, answer) = viewer_behind_lossy_relay(&base, false, LOSE_AT).await;
    assert!(
        !answer.contains("rtx/90000") && fid_group(&answer).is_none(),
        "no RTX in an answer to an offer without it:\n{answer}"
    );

    wait_for_repairs(&mut viewer, &relay, LOSE_AT.len()).await;
    tokio::time::sleep(COPY_AFTER * 5).await;
    let (dropped, passed) = {
        let relay = relay.lock().unwrap();
        let relay = relay.as_ref().unwrap();
        (relay.dropped(), relay.passed())
    };
    let ssrcs: HashSet<u32> = passed.iter().map(|p| p.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "one SSRC on the wire: {ssrcs:?}");
    for lost in &dropped {
        let copies = passed.iter().filter(|p| p.sequence_number == *lost).count();
        assert!(
            copies >= COPIES_PER_RESEND,
            "packet {lost} was resent {copies} times on the video SSRC as itself"
        );
    }
    let viewer_status = only_viewer(&base).await;
    assert_eq!(viewer_status["rtx"], false, "{viewer_status}");
    viewer.close().await;
    daemon.shutdown().await;
}
