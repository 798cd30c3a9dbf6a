//! A pipeline rebuilt under a watching viewer (the real path: the source ends, the supervisor
//! rebuilds): the viewer keeps its session, and its streams carry on — same SSRC, sequence
//! numbers without a gap, timestamps that move on by the time that really passed although the
//! new payloader starts its own elsewhere — and the new stream starts on a keyframe.

use fieldcast_test_support as support;

use fieldcast::media::rtp_timeline::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
use rtc::rtp;
use std::time::{Duration, Instant};
use support::{ENDING_PIPELINE, Wants, WhepViewer, status_json, wait_for_status};

/// How far a timestamp step may stray from the time between the packets' arrivals: network
/// and queue jitter on a loaded loopback, far below what a rebuild without re-basing shows.
const TOLERANCE_MS: f64 = 300.0;

/// Every step of `packets` moves the timestamp by the time that passed between them, one
/// SSRC throughout and no sequence gap. Returns the longest pause between two packets.
fn assert_timeline_follows_the_clock(
    packets: &[(rtp::Packet, Instant)],
    clock_rate: u32,
    what: &str,
) -> Duration {
    let ticks_per_ms = f64::from(clock_rate) / 1000.0;
    let mut longest = Duration::ZERO;
    for pair in packets.windows(2) {
        let ((a, a_at), (b, b_at)) = (&pair[0], &pair[1]);
        assert_eq!(a.header.ssrc, b.header.ssrc, "{what}: the SSRC changed");
        assert_eq!(
            b.header.sequence_number,
            a.header.sequence_number.wrapping_add(1),
            "{what}: sequence numbers jumped"
        );
        let wall = b_at.saturating_duration_since(*a_at);
        longest = longest.max(wall);
        let step_ms =
            f64::from(b.header.timestamp.wrapping_sub(a.header.timestamp) as i32) / ticks_per_ms;
        let wall_ms = wall.as_secs_f64() * 1000.0;
        assert!(
            (step_ms - wall_ms).abs() < TOLERANCE_MS,
            "{what}: the timestamp moved {step_ms:.0} ms while {wall_ms:.0} ms passed \
             (sequence {} -> {})",
            a.header.sequence_number,
            b.header.sequence_number
        );
    }
    longest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_keeps_its_session_and_continuous_timestamps_across_a_rebuilt_pipeline() {
    let daemon = support::start_daemon_with(|config| {
        config.media.pipeline = ENDING_PIPELINE.to_owned();
    })
    .await;
    let base = support::base_url(&daemon);
    let mut viewer = WhepViewer::connect_with(
        &base,
        Wants {
            video: true,
            audio: true,
        },
    )
    .await;
    while !viewer
        .next_frame(Duration::from_secs(5))
        .await
        .starts_decoding()
    {}
    let session = viewer.location.rsplit('/').next().unwrap().to_owned();
    let restarts = |s: &serde_json::Value| s["pipeline"]["restarts"].as_u64().unwrap_or(0);
    let before = restarts(&status_json(&base).await);

    // Record both streams until the pipeline has been rebuilt and has played for a while.
    let (mut video, mut sound) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut playing_again: Option<Instant> = None;
    while playing_again.is_none_or(|at| at.elapsed() < Duration::from_millis(1500)) {
        assert!(
            Instant::now() < deadline,
            "the pipeline was not rebuilt and playing 1.5 s within 15 s (restarts before: \
             {before}, status: {})",
            status_json(&base).await["pipeline"]
        );
        while let Ok(packet) = viewer.raw_video.try_recv() {
            video.push(packet);
        }
        while let Ok(packet) = viewer.sound.try_recv() {
            sound.push(packet);
        }
        if playing_again.is_none() {
            let status = status_json(&base).await;
            if restarts(&status) > before && status["pipeline"]["state"] == "playing" {
                playing_again = Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let playing_again = playing_again.unwrap();

    let video_pause = assert_timeline_follows_the_clock(&video, VIDEO_CLOCK_RATE, "video");
    let sound_pause = assert_timeline_follows_the_clock(&sound, AUDIO_CLOCK_RATE, "audio");
    println!("pause while rebuilt: video {video_pause:?}, audio {sound_pause:?}");
    assert!(
        video_pause > Duration::from_millis(700) && sound_pause > Duration::from_millis(700),
        "the streams never paused for the rebuild (video {video_pause:?}, audio {sound_pause:?})"
    );
    // The first frame of the new stream lets a decoder start again.
    let gap_end = video
        .windows(2)
        .find(|pair| pair[1].1.saturating_duration_since(pair[0].1) == video_pause)
        .map(|pair| pair[1].1)
        .unwrap();
    let mut resumed = None;
    while let Ok(frame) = viewer.frames.try_recv() {
        if resumed.is_none() && frame.completed_at >= gap_end {
            resumed = Some(frame);
        }
    }
    let resumed = resumed.expect("a frame after the rebuild");
    assert!(
        resumed.starts_decoding(),
        "the first frame after the rebuild is not SPS+PPS+IDR: {:?}",
        resumed.nal_types
    );
    println!(
        "video resumed {:?} before status said playing",
        playing_again.saturating_duration_since(resumed.completed_at)
    );

    let status = wait_for_status(
        &base,
        "the same viewer still there",
        Duration::from_secs(2),
        |s| s["viewer_count"] == 1,
    )
    .await;
    assert_eq!(
        status["viewers"][0]["id"],
        session.as_str(),
        "the same WHEP session"
    );
    assert!(
        status["pipeline"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("ended"))
    );
    viewer.close().await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_daemon_releases_its_hub_though_pipeline_callbacks_held_it() {
    let daemon = support::start_daemon().await;
    let viewer = WhepViewer::connect(&support::base_url(&daemon)).await;
    let hub = daemon.video_hub();
    assert!(hub.upgrade().is_some());
    viewer.close().await;
    daemon.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while hub.strong_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the video hub is still held {} times 5 s after shutdown",
            hub.strong_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
