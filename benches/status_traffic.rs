//! Status bytes leaving the device with many viewers: what each viewer page costs the uplink
//! to keep its count and live/offline state current.
//!
//! Every page holds one `/api/events` stream (counted byte for byte on raw TCP, headers and
//! chunk framing included) while N real WebRTC viewers join, watch and leave. The figure it
//! replaces is the earlier design's: every page fetching the whole status document (which is
//! now `/api/admin/status`, byte for byte the same) every 5 s.
//!
//! Run: `cargo bench --bench status_traffic` (VIEWERS=200 WINDOW_S=30 by default).

use fieldcast_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{TEST_ADMIN_TOKEN, WhepViewer, base_url, start_daemon_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often the earlier viewer page fetched the full status.
const OLD_POLL_S: f64 = 5.0;
/// Viewers joining at once.
const JOIN_BATCH: usize = 10;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One GET on raw TCP; returns every byte the server sent (headers and body).
async fn raw_get(addr: &str, path: &str, token: Option<&str>) -> usize {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.expect("read");
    assert!(all.starts_with(b"HTTP/1.1 200"), "GET {path} was not 200");
    all.len()
}

/// A page's event stream: counts every byte the server sends on it.
async fn listen(addr: String, received: Arc<AtomicU64>) {
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let request = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        received.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Keeps a viewer's receive channels empty so it can watch for minutes.
fn drain(mut viewer: WhepViewer) -> (String, tokio::task::JoinHandle<WhepViewer>) {
    let location = viewer.location.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                f = viewer.frames.recv() => if f.is_none() { break },
                p = viewer.raw_video.recv() => if p.is_none() { break },
                s = viewer.sound.recv() => if s.is_none() { break },
            }
        }
        viewer
    });
    (location, task)
}

struct Phase {
    name: &'static str,
    seconds: f64,
    bytes: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let viewers: usize = env_or("VIEWERS", 200);
    let window: f64 = env_or("WINDOW_S", 30.0);
    let daemon = start_daemon_with(|config| {
        config.limits.max_viewers = viewers + 10;
        config.limits.max_pending_joins = viewers + 10;
    })
    .await;
    let base = base_url(&daemon);
    let addr = daemon.local_addr.to_string();
    let received = Arc::new(AtomicU64::new(0));
    for _ in 0..viewers {
        tokio::spawn(listen(addr.clone(), Arc::clone(&received)));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut phases = Vec::new();
    let mut mark = (Instant::now(), received.load(Ordering::Relaxed));
    let mut close_phase = |name, phases: &mut Vec<Phase>| {
        let now = (Instant::now(), received.load(Ordering::Relaxed));
        phases.push(Phase {
            name,
            seconds: now.0.duration_since(mark.0).as_secs_f64(),
            bytes: now.1 - mark.1,
        });
        mark = now;
    };

    let mut watching = Vec::with_capacity(viewers);
    while watching.len() < viewers {
        let batch = JOIN_BATCH.min(viewers - watching.len());
        let joined = futures_util::future::join_all((0..batch).map(|_| async {
            let mut viewer = WhepViewer::connect(&base).await;
            viewer.next_frame(Duration::from_secs(30)).await;
            drain(viewer)
        }))
        .await;
        watching.extend(joined);
    }
    close_phase("joins", &mut phases);
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    close_phase("watching", &mut phases);
    // The full document, as the earlier page fetched it, with every viewer in it.
    let full = raw_get(&addr, "/api/admin/status", Some(TEST_ADMIN_TOKEN)).await;
    let public = raw_get(&addr, "/api/status", None).await;
    let start_leaves = Instant::now();
    let client = reqwest::Client::new();
    for (location, task) in watching {
        let status = client
            .delete(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "DELETE {location}");
        task.abort();
    }
    let leave_s = start_leaves.elapsed().as_secs_f64();
    // The last count reaches the pages within a sample period.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    close_phase("leaves", &mut phases);

    let pages = viewers as f64;
    let before = pages * full as f64 / OLD_POLL_S;
    println!("status traffic with {viewers} viewer pages (each also holding a WebRTC session)");
    println!(
        "  before: every page fetched the full status ({full} B with {viewers} viewers, headers included) every {OLD_POLL_S} s"
    );
    println!(
        "          = {:.0} B/s = {:.2} Mbit/s, whatever happens",
        before,
        before * 8.0 / 1e6
    );
    println!(
        "  after:  one event stream per page, an event only on change (at most 1/s), plus /api/status once per page load ({public} B)"
    );
    for phase in &phases {
        let rate = phase.bytes as f64 / phase.seconds;
        println!(
            "    {:<9} {:>6.1} s  {:>9} B  {:>9.0} B/s = {:.4} Mbit/s",
            phase.name,
            phase.seconds,
            phase.bytes,
            rate,
            rate * 8.0 / 1e6
        );
    }
    println!("  (the {viewers} leaves themselves took {leave_s:.1} s)");
    let watching = phases.iter().find(|p| p.name == "watching").unwrap();
    println!(
        "  while watching: {:.0}x less than before",
        before / (watching.bytes as f64 / watching.seconds).max(1.0)
    );
    daemon.shutdown().await;
}
