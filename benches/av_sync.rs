//! Sound-to-picture offset, end to end: the `test` pipeline flashes a box in the picture and
//! beeps at the same instant, once a second (`media::sync_marks`). A real WebRTC viewer receives
//! both tracks; each is decoded (GStreamer's Opus and H.264 decoders) and stamped with the
//! arrival time of its packets, which is the timeline the daemon's RTCP sender reports map
//! RTP time onto. For every flash, the nearest beep onset gives one offset.
//!
//! Run: `cargo bench --bench av_sync` (SECONDS=N to listen longer). Positive offsets mean the
//! sound comes after the picture. Target: |offset| <= 45 ms.

use fieldcast_test_support as support;

use std::time::{Duration, Instant};
use support::{VIEWER_H264_PT, VIEWER_OPUS_PT, Wants, WhepViewer, base_url, start_daemon};

/// The flash box turns on when its mean luma rises past this (black 16, white 235).
const FLASH_LUMA: f64 = 128.0;
/// A beep starts where the signal first exceeds this after a quiet stretch.
const BEEP_THRESHOLD: f32 = 0.05;

/// Mean luma of the middle of the flash box (bottom-left; see `media::sync_marks`).
fn box_luma(gray: &[u8]) -> f64 {
    use support::decode::{GRAY_HEIGHT, GRAY_WIDTH};
    let side = GRAY_HEIGHT / 8;
    let (x0, y1) = (side / 2, GRAY_HEIGHT - side / 2);
    let rows = (y1 - side + 2)..(y1 - 2);
    let pixels: Vec<f64> = rows
        .flat_map(|y| (x0 + 2..x0 + side - 2).map(move |x| f64::from(gray[y * GRAY_WIDTH + x])))
        .collect();
    pixels.iter().sum::<f64>() / pixels.len() as f64
}

/// Arrival times of the pictures where the box turns white.
fn flashes(pictures: &[(Duration, Vec<u8>)]) -> Vec<Duration> {
    let lit: Vec<(Duration, bool)> = pictures
        .iter()
        .map(|(t, gray)| (*t, box_luma(gray) > FLASH_LUMA))
        .collect();
    lit.windows(2)
        .filter(|w| !w[0].1 && w[1].1)
        .map(|w| w[1].0)
        .collect()
}

fn beep_onsets(sound: &[(Duration, Vec<f32>)]) -> Vec<Duration> {
    let mut onsets = Vec::new();
    let mut quiet_since: Option<Duration> = None;
    for (start, samples) in sound {
        for (i, sample) in samples.iter().enumerate() {
            let at = *start + Duration::from_secs_f64(i as f64 / 48_000.0);
            if sample.abs() > BEEP_THRESHOLD {
                if quiet_since.is_none_or(|q| at.saturating_sub(q) > Duration::from_millis(300)) {
                    onsets.push(at);
                }
                quiet_since = Some(at);
            }
        }
    }
    onsets
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let wants = Wants {
        video: true,
        audio: true,
    };
    let mut viewer = WhepViewer::connect_with(&base, wants).await;
    let epoch = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut video = Vec::new();
    while let Ok(p) = viewer.raw_video.try_recv() {
        video.push(p);
    }
    let mut sound = Vec::new();
    while let Ok(p) = viewer.sound.try_recv() {
        sound.push(p);
    }
    viewer.delete(&base).await;
    viewer.close().await;
    daemon.shutdown().await;

    let pictures = support::decode::h264_gray(&video, VIEWER_H264_PT, epoch);
    let pcm = support::decode::opus(&sound, VIEWER_OPUS_PT, epoch);
    let flashes = flashes(&pictures);
    let beeps = beep_onsets(&pcm);
    let mut offsets: Vec<f64> = flashes
        .iter()
        .filter_map(|flash| {
            beeps
                .iter()
                .map(|beep| beep.as_secs_f64() * 1000.0 - flash.as_secs_f64() * 1000.0)
                .filter(|offset| offset.abs() < 500.0)
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
        })
        .collect();
    println!(
        "A/V offset: beep onset minus flash, by arrival at a WebRTC viewer (loopback, test pipeline)"
    );
    println!(
        "  decoded {} pictures ({} flashes), {} sound packets ({} beeps)",
        pictures.len(),
        flashes.len(),
        pcm.len(),
        beeps.len()
    );
    if offsets.is_empty() {
        println!("  no flash had a beep within 500 ms: cannot measure");
        std::process::exit(1);
    }
    offsets.sort_by(f64::total_cmp);
    let median = offsets[offsets.len() / 2];
    println!("  pairs  {}", offsets.len());
    println!("  min    {:+7.1} ms", offsets[0]);
    println!("  median {:+7.1} ms", median);
    println!("  max    {:+7.1} ms", offsets[offsets.len() - 1]);
    println!("  target |offset| <= 45 ms (positive: sound after picture)");
}
