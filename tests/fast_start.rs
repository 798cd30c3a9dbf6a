//! A source fieldcast cannot ask for keyframes (an external encoder sending RTP with a 2 s
//! GOP): a viewer joining mid-GOP, or one that lost its picture, is sent the frames since the
//! last keyframe at once, complete and in order, on a timeline that then carries on live.

use fieldcast_test_support as support;

use fieldcast::daemon::RunningDaemon;
use gstreamer as gst;
use gstreamer::prelude::*;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use std::time::{Duration, Instant};
use support::{WhepViewer, base_url, start_daemon_with, status_json, wait_for_status};

/// The external encoder: H.264 RTP to `port`, an IDR every 60 frames.
fn start_sender(port: u16) -> gst::Element {
    gst::init().unwrap();
    let sender = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=60 \
         ! rtph264pay pt=96 mtu=1200 config-interval=-1 ! udpsink host=127.0.0.1 port={port}"
    ))
    .expect("the sender pipeline parses");
    sender.set_state(gst::State::Playing).unwrap();
    sender
}

/// The sender, and the daemon reading it with a `udpsrc` pipeline (no encoder of its own).
async fn start_with_external_sender() -> (gst::Element, RunningDaemon, String) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sender = start_sender(port);
    let daemon = start_daemon_with(|config| {
        config.media.pipeline = format!(
            "udpsrc address=127.0.0.1 port={port} \
             caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96\" \
             ! rtph264depay ! {{rtp}}"
        );
        config.media.audio.source = "none".to_owned();
    })
    .await;
    let base = base_url(&daemon);
    (sender, daemon, base)
}

/// Consecutive timestamp steps (RTP ticks) of `frames`, from the packets the viewer kept.
fn timestamp_steps(viewer: &mut WhepViewer, frames: &[support::ReceivedFrame]) -> Vec<u32> {
    viewer_timestamps(viewer, frames)
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        .collect()
}

fn assert_no_gap(frames: &[support::ReceivedFrame]) {
    let sequence: Vec<u16> = frames
        .iter()
        .flat_map(|f| f.sequence_numbers.iter().copied())
        .collect();
    for pair in sequence.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1), "a gap in {sequence:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_mid_gop_gets_the_gop_at_once_then_live_frames() {
    let (sender, daemon, base) = start_with_external_sender().await;
    let status = status_json(&base).await;
    assert_eq!(status["stream"]["join_start"], "cached_gop");

    // Join about 1.5 s after a keyframe: some 45 frames into the GOP.
    let keyframes = status["stream"]["keyframes"].as_u64().unwrap();
    wait_for_status(&base, "the next keyframe", Duration::from_secs(5), |s| {
        s["stream"]["keyframes"].as_u64().unwrap() > keyframes
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let joined = Instant::now();
    let mut viewer = WhepViewer::connect(&base).await;

    let mut frames = Vec::new();
    while frames.len() < 60 {
        frames.push(viewer.next_frame(Duration::from_secs(5)).await);
    }
    let first = &frames[0];
    assert!(
        first.starts_decoding(),
        "the first frame is SPS, PPS and an IDR"
    );
    let first_after = first.completed_at - joined;
    assert!(
        first_after < Duration::from_millis(1000),
        "the first frame took {first_after:?} from the join (the next keyframe is ~500 ms away, a GOP 2 s)"
    );
    // Nothing of the burst is lost: sequence numbers run on without a gap.
    assert_no_gap(&frames);
    // Replayed frames come a tick apart and quickly; live ones 3000 ticks (33 ms) apart.
    let steps = timestamp_steps(&mut viewer, &frames);
    let replayed = steps.iter().take_while(|&&step| step == 1).count() + 1;
    assert!(
        (30..=60).contains(&replayed),
        "about 45 frames replayed a tick apart, not {replayed} (steps {steps:?})"
    );
    assert!(
        steps[replayed..]
            .iter()
            .all(|&s| (2000..=4500).contains(&s)),
        "then live frames about 3000 ticks apart: {steps:?}"
    );
    let replay_took = frames[replayed - 1].completed_at - first.completed_at;
    assert!(
        replay_took < Duration::from_millis(300),
        "the replay took {replay_took:?}"
    );
    println!(
        "first frame {first_after:?} after the join; {replayed} frames replayed in {replay_took:?}"
    );
    let status = status_json(&base).await;
    assert_eq!(status["stream"]["replayed_joins"], 1);
    viewer.close().await;
    daemon.shutdown().await;
    sender.set_state(gst::State::Null).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_lost_its_picture_gets_the_gop_again_at_once() {
    let (sender, daemon, base) = start_with_external_sender().await;
    let mut viewer = WhepViewer::connect(&base).await;
    let track = tokio::time::timeout(Duration::from_secs(5), viewer.tracks.recv())
        .await
        .expect("the video track arrived within 5 s")
        .expect("the viewer is still there");
    let mut frames = Vec::new();
    while frames.len() < 20 {
        frames.push(viewer.next_frame(Duration::from_secs(5)).await);
    }
    // The viewer says it lost its picture, as a browser does when it cannot decode.
    let asked = Instant::now();
    let pli = PictureLossIndication {
        sender_ssrc: 1,
        media_ssrc: frames[0].ssrc,
    };
    track.write_rtcp(vec![Box::new(pli)]).await.unwrap();
    let before = frames.len();
    let keyframe_at = loop {
        let frame = viewer.next_frame(Duration::from_secs(5)).await;
        let starts = frame.starts_decoding();
        let at = frame.completed_at;
        frames.push(frame);
        if starts && frames.len() > before {
            break at;
        }
        assert!(
            asked.elapsed() < Duration::from_millis(1500),
            "no keyframe within 1.5 s of the PLI (the sender's own come every 2 s)"
        );
    };
    while frames.len() < before + 70 {
        frames.push(viewer.next_frame(Duration::from_secs(5)).await);
    }
    println!("keyframe {:?} after the PLI", keyframe_at - asked);
    assert!(
        keyframe_at - asked < Duration::from_millis(500),
        "the replayed keyframe came {:?} after the PLI",
        keyframe_at - asked
    );
    assert_no_gap(&frames);
    let steps = timestamp_steps(&mut viewer, &frames);
    assert!(
        steps.iter().all(|&s| (1..=4500).contains(&s)),
        "timestamps only move forward, by a tick in a replay or a frame live: {steps:?}"
    );
    assert_eq!(status_json(&base).await["stream"]["replayed_repairs"], 1);
    viewer.close().await;
    daemon.shutdown().await;
    sender.set_state(gst::State::Null).unwrap();
}

/// Each frame's RTP timestamp, from the packets the viewer kept.
fn viewer_timestamps(viewer: &mut WhepViewer, frames: &[support::ReceivedFrame]) -> Vec<u32> {
    let mut by_sequence = std::collections::HashMap::new();
    while let Ok((packet, _)) = viewer.raw_video.try_recv() {
        by_sequence.insert(packet.header.sequence_number, packet.header.timestamp);
    }
    frames
        .iter()
        .map(|f| by_sequence[&f.sequence_numbers[0]])
        .collect()
}
