//! Sound beside the picture: Opus from the pipeline reaches viewers that ask for it, decodes
//! to something audible, and a viewer may take sound only, video only, or both.

use fieldcast_test_support as support;

use fieldcast::daemon;
use fieldcast::media::PipelineError;
use std::time::{Duration, Instant};
use support::{VIEWER_OPUS_PT, Wants, WhepViewer, base_url, start_daemon_with, status_json};

const BOTH: Wants = Wants {
    video: true,
    audio: true,
};
const SOUND_ONLY: Wants = Wants {
    video: false,
    audio: true,
};

/// Collects `duration` of Opus packets, or says what did not arrive.
async fn collect_sound(
    viewer: &mut WhepViewer,
    duration: Duration,
) -> Vec<(rtc::rtp::Packet, Instant)> {
    let mut packets = Vec::new();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        let packet = tokio::time::timeout(Duration::from_secs(5), viewer.sound.recv())
            .await
            .expect("an Opus packet within 5 s")
            .expect("the sound channel stays open");
        packets.push(packet);
    }
    packets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_hears_the_test_tone_beside_the_picture() {
    let daemon = start_daemon_with(|_| {}).await;
    let base = base_url(&daemon);
    let mut viewer = WhepViewer::connect_with(&base, BOTH).await;
    assert!(
        viewer
            .next_frame(Duration::from_secs(5))
            .await
            .starts_decoding()
    );
    let packets = collect_sound(&mut viewer, Duration::from_millis(2500)).await;
    assert!(
        packets
            .iter()
            .all(|(p, _)| p.header.payload_type == VIEWER_OPUS_PT)
    );
    for pair in packets.windows(2) {
        assert_eq!(
            pair[1].0.header.sequence_number,
            pair[0].0.header.sequence_number.wrapping_add(1),
            "audio sequence numbers continue"
        );
    }
    let samples: Vec<f32> = support::decode::opus(&packets, VIEWER_OPUS_PT, Instant::now())
        .into_iter()
        .flat_map(|(_, samples)| samples)
        .collect();
    assert!(
        samples.len() > 48_000 * 2,
        "2.5 s of packets decode to at least 2 s of sound, got {} samples",
        samples.len()
    );
    let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt();
    assert!(peak > 0.1, "the ticks are audible: peak {peak}");
    assert!(rms > 0.001, "not silence: rms {rms}");

    let status = status_json(&base).await;
    let audio = &status["pipeline"]["audio"];
    assert_eq!(audio["codec"], "opus", "{status}");
    assert!(
        audio["level_dbfs"].is_number(),
        "the level meter runs: {status}"
    );
    let me = &status["viewers"][0];
    assert_eq!(
        (me["video"].as_bool(), me["audio"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(me["audio_packets_sent"].as_u64().unwrap() > 50, "{status}");
    viewer.delete(&base).await;
    viewer.close().await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sound_only_viewer_gets_sound_and_no_picture() {
    let daemon = start_daemon_with(|_| {}).await;
    let base = base_url(&daemon);
    let mut viewer = WhepViewer::connect_with(&base, SOUND_ONLY).await;
    let packets = collect_sound(&mut viewer, Duration::from_millis(500)).await;
    assert!(!packets.is_empty());
    assert!(viewer.frames.try_recv().is_err(), "no video was asked for");
    let status = status_json(&base).await;
    assert_eq!(status["viewers"][0]["video"], false, "{status}");
    assert_eq!(
        status["stream"]["hub_viewers"], 0,
        "no video queue: {status}"
    );
    viewer.delete(&base).await;
    viewer.close().await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_none_streams_video_only() {
    let daemon = start_daemon_with(|config| config.media.audio.source = "none".into()).await;
    let base = base_url(&daemon);
    let status = status_json(&base).await;
    assert!(status["pipeline"]["audio"].is_null(), "{status}");

    // Offering both gets the picture; the sound section is declined.
    let mut viewer = WhepViewer::connect_with(&base, BOTH).await;
    let answer = viewer.peer.remote_description().await.unwrap().sdp;
    let sound_section = answer.split("m=audio").nth(1).expect("an audio section");
    assert!(
        sound_section.contains("a=inactive"),
        "the sound section promises nothing: {sound_section}"
    );
    viewer.next_frame(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        viewer.sound.try_recv().is_err(),
        "no sound when sound is off"
    );
    viewer.delete(&base).await;
    viewer.close().await;

    // Asking for sound only is answered with why not.
    let peer_offer = support::offer_for(SOUND_ONLY).await;
    let response = support::post_offer(&reqwest::Client::new(), &base, peer_offer).await;
    assert_eq!(response.status(), 400);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("no sound"),
        "{problem}"
    );
    assert_eq!(status_json(&base).await["viewer_count"], 0);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_microphone_is_a_clear_error_not_a_silent_half_start() {
    let mut config = fieldcast::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    config.media.pipeline = "test".to_owned();
    config.media.audio.source = "hw:fieldcast-no-such-card".into();
    match daemon::start(config).await {
        Err(daemon::DaemonError::Pipeline(
            e @ (PipelineError::Start { .. } | PipelineError::Parse { .. }),
        )) => {
            let text = e.to_string();
            assert!(
                text.contains("fieldcast-no-such-card") || text.contains("alsasrc"),
                "the error names the device: {text}"
            );
        }
        Err(other) => panic!("expected a pipeline start error, got {other}"),
        Ok(_) => panic!("a missing microphone must not start video-only without saying so"),
    }
}
