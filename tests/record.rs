//! Recording on the board, with real GStreamer and real files: segments of the configured
//! length that ffprobe reads as the encoder's H.264 plus Opus with nothing lost at the joins,
//! a file that plays after kill -9, retention, and downloads with Range behind the admin token.

use fieldcast_test_support as support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{ENDING_PIPELINE, TEST_ADMIN_TOKEN, base_url, wait_for_status};

/// A directory of its own under the system's temporary directory, emptied first.
fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fieldcast-record-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The segments in `dir`, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "mp4"));
    files.sort();
    files
}

/// ffprobe's streams, format and packets of `file`.
fn probe(file: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json"])
        .args(["-show_format", "-show_streams", "-show_packets"])
        .arg(file)
        .output()
        .expect("ffprobe runs (Debian package ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe cannot read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn number(value: &Value) -> f64 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| value.as_f64())
        .unwrap_or(f64::NAN)
}

fn stream<'a>(probe: &'a Value, codec: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_name"] == codec)
        .unwrap_or_else(|| panic!("no {codec} stream in {}", probe["streams"]))
}

/// Presentation times of one stream's packets, in order.
fn packet_times(probe: &Value, index: u64) -> Vec<f64> {
    let mut times: Vec<f64> = probe["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stream_index"] == index)
        .map(|p| number(&p["pts_time"]))
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// The longest step between two packets of a stream: a gap shows as one much longer than a
/// frame (33 ms) or an Opus packet (20 ms).
fn longest_step(times: &[f64]) -> f64 {
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

async fn admin_post(base: &str, path: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(TEST_ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_seconds_make_three_ten_second_segments_without_gaps() {
    let dir = temp_dir("segments");
    let daemon = support::start_daemon_with(|config| {
        config.record.enabled = true;
        config.record.dir = Some(dir.clone());
        config.record.segment = Duration::from_secs(10);
        config.title = "Under 11s: Final".to_owned();
    })
    .await;
    let base = base_url(&daemon);
    let status = wait_for_status(
        &base,
        "a segment being written",
        Duration::from_secs(10),
        |s| s["recording"]["current_file"].is_string(),
    )
    .await;
    let (width, height) = (&status["pipeline"]["width"], &status["pipeline"]["height"]);
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(admin_post(&base, "/api/admin/recordings/stop").await, 200);
    wait_for_status(&base, "recording stopped", Duration::from_secs(5), |s| {
        s["recording"]["recording"] == false
    })
    .await;
    daemon.shutdown().await;

    let files = segment_files(&dir);
    let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap()).collect();
    assert_eq!(files.len(), 3, "three segments: {names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.to_string_lossy().ends_with("Z-under-11s-final.mp4")),
        "named by UTC start time and title: {names:?}"
    );
    let mut total = 0.0;
    for (i, file) in files.iter().enumerate() {
        let probe = probe(file);
        let video = stream(&probe, "h264");
        let audio = stream(&probe, "opus");
        assert_eq!(
            (&video["width"], &video["height"]),
            (width, height),
            "{names:?}"
        );
        let rate = video["avg_frame_rate"].as_str().unwrap();
        let (n, d) = rate.split_once('/').unwrap();
        let fps = number(&n.into()) / number(&d.into());
        assert!(
            (fps - 30.0).abs() < 1.0,
            "30 fps like the encoder, not {rate}"
        );
        let duration = number(&probe["format"]["duration"]);
        if i < 2 {
            assert!(
                (duration - 10.0).abs() < 0.6,
                "segment {i} lasts {duration} s"
            );
        }
        total += duration;
        let video_times = packet_times(&probe, video["index"].as_u64().unwrap());
        let audio_times = packet_times(&probe, audio["index"].as_u64().unwrap());
        // Nothing missing inside, and both start with the file and end together.
        assert!(
            longest_step(&video_times) < 0.1,
            "a video gap in {}",
            names[i].display()
        );
        assert!(
            longest_step(&audio_times) < 0.1,
            "a sound gap in {}",
            names[i].display()
        );
        assert!(
            video_times[0] < 0.05 && audio_times[0] < 0.05,
            "{names:?} starts late"
        );
        let ends = (video_times.last().unwrap() - audio_times.last().unwrap()).abs();
        assert!(
            ends < 0.1,
            "picture and sound end {ends} s apart in segment {i}"
        );
    }
    assert!((total - 25.0).abs() <= 1.0, "25 s recorded, not {total}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_segments_go_to_keep_within_max_bytes_and_downloads_need_the_token() {
    let dir = temp_dir("retention");
    let daemon = support::start_daemon_with(|config| {
        config.record.enabled = true;
        config.record.dir = Some(dir.clone());
        config.record.segment = Duration::from_secs(2);
        config.record.limits.max_bytes = Some(250_000);
    })
    .await;
    let base = base_url(&daemon);
    let client = reqwest::Client::new();
    let list = || async {
        let listing: Value = client
            .get(format!("{base}/api/admin/recordings"))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listing
    };
    // The first segment's name, then enough recording for retention to delete it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let listing = list().await;
        if let Some(name) = listing["segments"][0]["name"].as_str() {
            break name.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no segment within 10 s: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let listing = loop {
        let listing = list().await;
        let names: Vec<&str> = listing["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        if !names.contains(&first.as_str()) && names.len() >= 2 {
            break listing;
        }
        assert!(
            Instant::now() < deadline,
            "{first} never deleted: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let segments = listing["segments"].as_array().unwrap();
    let kept: u64 = segments.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    // Retention runs every second: the segment being written may have grown since.
    let writing = segments[0]["bytes"].as_u64().unwrap();
    assert!(kept <= 250_000 + writing, "{kept} bytes kept: {listing}");
    assert_eq!(
        segments[0]["writing"], true,
        "the newest is kept: {listing}"
    );
    assert!(!std::path::Path::new(&dir).join(&first).exists());

    // A finished segment: whole, a range of it, and not without the token.
    let name = segments[1]["name"].as_str().unwrap();
    let url = format!("{base}/api/admin/recordings/{name}");
    let whole = std::fs::read(dir.join(name)).unwrap();
    let ranged = client
        .get(&url)
        .bearer_auth(TEST_ADMIN_TOKEN)
        .header("Range", "bytes=100-1123")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    let expected_range = format!("bytes 100-1123/{}", whole.len());
    assert_eq!(ranged.headers()["content-range"], expected_range.as_str());
    assert_eq!(ranged.bytes().await.unwrap(), whole[100..1124]);
    let full = client
        .get(&url)
        .bearer_auth(TEST_ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "video/mp4");
    assert_eq!(full.bytes().await.unwrap().len(), whole.len());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let wrong = client
        .get(&url)
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    for bad in ["..%2Fadmin-token", "admin-token", "nothing.mp4"] {
        let response = client
            .get(format!("{base}/api/admin/recordings/{bad}"))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{bad}");
    }

    // Deleting: a finished segment goes, the one being written stays.
    let delete = |name: String| {
        client
            .delete(format!("{base}/api/admin/recordings/{name}"))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .send()
    };
    assert_eq!(delete(name.to_owned()).await.unwrap().status(), 204);
    assert!(!dir.join(name).exists());
    let writing = list().await["status"]["current_file"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(delete(writing.clone()).await.unwrap().status(), 409);
    assert!(dir.join(&writing).exists());
    daemon.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_pipeline_goes_on_in_a_new_segment() {
    let dir = temp_dir("restart");
    let daemon = support::start_daemon_with(|config| {
        config.media.pipeline = ENDING_PIPELINE.to_owned();
        config.record.enabled = true;
        config.record.dir = Some(dir.clone());
    })
    .await;
    let base = base_url(&daemon);
    wait_for_status(
        &base,
        "a pipeline rebuilt twice",
        Duration::from_secs(20),
        |s| s["pipeline"]["restarts"].as_u64().unwrap_or(0) >= 2 && s["healthy"] == true,
    )
    .await;
    // Half a second of the third run, then the files closed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.shutdown().await;
    let files = segment_files(&dir);
    assert!(
        files.len() >= 3,
        "a segment per run of the source: {files:?}"
    );
    for file in &files {
        let probe = probe(file);
        let video = stream(&probe, "h264");
        assert_eq!(
            (&video["width"], &video["height"]),
            (&320.into(), &240.into())
        );
        let times = packet_times(&probe, video["index"].as_u64().unwrap());
        assert!(
            longest_step(&times) < 0.1,
            "a gap inside {}",
            file.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills the daemon with SIGKILL when dropped, so a failed test leaves no process behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_cut_by_kill_9_plays_up_to_within_two_seconds_of_the_kill() {
    let dir = temp_dir("kill");
    std::fs::write(dir.join("admin-token"), format!("{TEST_ADMIN_TOKEN}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_fieldcast"))
            .args([
                "run",
                "--pipeline",
                "test",
                "--record",
                "--rtc-addr",
                "127.0.0.1:0",
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the fieldcast binary starts"),
    );
    let status = || async {
        let response = reqwest::Client::new()
            .get(format!("{base}/api/admin/status"))
            .bearer_auth(TEST_ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        response.json::<Value>().await.ok()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let (file_opened, frames_at_open) = loop {
        if let Some(status) = status().await
            && status["recording"]["current_file"].is_string()
        {
            break (Instant::now(), status["stream"]["frames"].as_u64().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never started recording"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let frames_at_kill = status().await.expect("status")["stream"]["frames"]
        .as_u64()
        .unwrap();
    child.0.kill().unwrap();
    let recorded_for = file_opened.elapsed().as_secs_f64();
    child.0.wait().unwrap();

    let files = segment_files(&dir.join("recordings"));
    assert_eq!(
        files.len(),
        1,
        "one segment (10 minutes by default): {files:?}"
    );
    let probe = probe(&files[0]);
    stream(&probe, "opus");
    let video = stream(&probe, "h264");
    let video_times = packet_times(&probe, video["index"].as_u64().unwrap());
    let playable = video_times.last().copied().unwrap_or(0.0);
    // Counted in frames the encoder had made, so a starved encoder on a busy machine (frames
    // made late) does not count against the recorder.
    let made = frames_at_kill - frames_at_open;
    let lost = made.saturating_sub(video_times.len() as u64);
    assert!(
        lost <= 60,
        "the file has {} of the {made} frames made before kill -9, {lost} lost (2 s is 60); \
         it plays {playable:.2} s of the {recorded_for:.2} s since it was opened",
        video_times.len()
    );
    // Decodes to the end without errors.
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&files[0])
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success(),
        "ffmpeg cannot decode the cut file: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
