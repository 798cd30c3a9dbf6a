//! One measurement: N viewers join one server at the same moment, the bench waits until all
//! receive video, lets things settle, then measures a fixed window, and everyone leaves.

use crate::feed::FrameClock;
use crate::janus::{self, JanusSession};
use crate::peer::ViewerPeer;
use crate::procstat::{self, Sample, WindowUsage};
use crate::report::{Distribution, percentiles};
use crate::servers::{Kind, Server};
use crate::stats::{Snapshot, WindowCounts};
use crate::whep;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct RoundSettings {
    pub viewers: usize,
    /// Between the last viewer receiving video and the start of the window.
    pub settle: Duration,
    pub window: Duration,
    /// How long all viewers together may take to receive video.
    pub join_timeout: Duration,
    pub aes128_gcm_only: bool,
}

enum Signalling {
    Whep(String),
    Janus(JanusSession),
}

pub struct Viewer {
    pub peer: ViewerPeer,
    signalling: Signalling,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RoundResult {
    pub server: Kind,
    pub viewers: usize,
    pub joined: usize,
    pub join_errors: Vec<String>,
    /// Viewers that joined but had no decodable frame by the join timeout.
    pub without_video: usize,
    /// From the joins' start until every viewer had a decodable frame.
    pub all_video_s: Option<f64>,
    pub signalling_all_s: f64,
    /// SRTP protection profile of the first viewer.
    pub srtp_cipher: Option<String>,
    pub ttff_ms: Distribution,
    pub window_s: f64,
    pub cpu_pct: Option<f64>,
    pub cpu_per_viewer_pct: Option<f64>,
    pub rss_before_mib: Option<f64>,
    pub rss_mib: Option<f64>,
    pub packets_per_viewer_s: f64,
    pub packets_lost: u64,
    pub frames: u64,
    pub frames_lost: u64,
    pub incomplete_frames: u64,
    /// Every frame.
    pub latency_ms: Distribution,
    /// Frames other than keyframes.
    pub delta_latency_ms: Distribution,
    pub keyframe_latency_ms: Distribution,
    pub client_cpu_pct: Option<f64>,
    pub machine: WindowUsage,
}

pub async fn join_one(
    kind: Kind,
    base: String,
    http: reqwest::Client,
    clock: Arc<FrameClock>,
    aes128_gcm_only: bool,
) -> Result<Viewer, String> {
    let joined_at = Instant::now();
    let (peer, signalling) = match kind {
        Kind::Fieldcast | Kind::Baseline => {
            let mut peer = ViewerPeer::new(
                clock,
                joined_at,
                Ipv4Addr::LOCALHOST.into(),
                aes128_gcm_only,
            )
            .await?;
            let location = whep::join(&http, &base, &mut peer).await;
            (peer, location.map(Signalling::Whep))
        }
        Kind::Janus => {
            let watching = janus::watch(&http, &base).await?;
            let ip = janus::offered_ipv4(&watching.offer)
                .ok_or("no IPv4 host candidate in Janus's offer")?;
            let mut peer = ViewerPeer::new(clock, joined_at, ip, aes128_gcm_only).await?;
            let session = watching.start(&http, &base, &mut peer).await;
            (peer, session.map(Signalling::Janus))
        }
    };
    match signalling {
        Ok(signalling) => Ok(Viewer { peer, signalling }),
        Err(e) => {
            peer.close().await;
            Err(e)
        }
    }
}

pub async fn leave(viewer: Viewer, http: reqwest::Client, base: String) {
    match viewer.signalling {
        Signalling::Whep(location) => whep::leave(&http, &base, &location).await,
        Signalling::Janus(session) => session.leave(&http, &base).await,
    }
    viewer.peer.close().await;
}

pub async fn run(
    server: &Server,
    clock: &Arc<FrameClock>,
    http: &reqwest::Client,
    settings: &RoundSettings,
    ticks_per_s: f64,
) -> RoundResult {
    let pid = server.pid();
    let rss_before_mib = procstat::rss_mib(pid);
    let batch_start = Instant::now();
    let joins: Vec<_> = (0..settings.viewers)
        .map(|_| {
            tokio::spawn(join_one(
                server.kind,
                server.base.clone(),
                http.clone(),
                Arc::clone(clock),
                settings.aes128_gcm_only,
            ))
        })
        .collect();
    let mut viewers = Vec::new();
    let mut join_errors = Vec::new();
    for join in joins {
        match join.await {
            Ok(Ok(viewer)) => viewers.push(viewer),
            Ok(Err(e)) => join_errors.push(e),
            Err(e) => join_errors.push(e.to_string()),
        }
    }
    let signalling_all_s = batch_start.elapsed().as_secs_f64();

    let deadline = batch_start + settings.join_timeout;
    let with_video = || {
        viewers
            .iter()
            .filter(|v| v.peer.stats.lock().unwrap().first_decodable.is_some())
            .count()
    };
    while with_video() < viewers.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let without_video = viewers.len() - with_video();
    if without_video > 0 {
        let mut what: std::collections::BTreeMap<String, usize> = Default::default();
        for viewer in &viewers {
            let stats = viewer.peer.stats.lock().unwrap();
            if stats.first_decodable.is_none() {
                *what.entry(stats.describe()).or_default() += 1;
            }
        }
        eprintln!(
            "{} of {} viewers had no decodable frame within {:?}: {what:?}",
            without_video,
            viewers.len(),
            settings.join_timeout
        );
    }
    let all_video_s = (without_video == 0 && join_errors.is_empty()).then(|| {
        viewers
            .iter()
            .filter_map(|v| v.peer.stats.lock().unwrap().first_decodable)
            .max()
            .map_or(0.0, |last| last.duration_since(batch_start).as_secs_f64())
    });
    let mut ttff: Vec<f64> = viewers
        .iter()
        .filter_map(|v| v.peer.stats.lock().unwrap().time_to_first_frame())
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();

    tokio::time::sleep(settings.settle).await;
    let srtp_cipher = match viewers.first() {
        Some(viewer) => viewer.peer.srtp_cipher().await,
        None => None,
    };

    let pids = [pid, std::process::id()];
    let start: Vec<Snapshot> = viewers
        .iter()
        .map(|v| {
            let mut stats = v.peer.stats.lock().unwrap();
            stats.measuring = true;
            stats.snapshot()
        })
        .collect();
    let sample = Sample::take(&pids);
    tokio::time::sleep(settings.window).await;
    let usage = sample.until_now(&pids, ticks_per_s);
    let rss_mib = procstat::rss_mib(pid);
    let mut counts = Vec::new();
    let mut delta: Vec<f64> = Vec::new();
    let mut key: Vec<f64> = Vec::new();
    for (viewer, start) in viewers.iter().zip(&start) {
        let mut stats = viewer.peer.stats.lock().unwrap();
        stats.measuring = false;
        counts.push(WindowCounts::between(start, &stats.snapshot()));
        delta.extend(
            stats
                .latencies_us
                .drain(..)
                .map(|us| f64::from(us) / 1000.0),
        );
        key.extend(
            stats
                .keyframe_latencies_us
                .drain(..)
                .map(|us| f64::from(us) / 1000.0),
        );
    }

    let leaves: Vec<_> = viewers
        .into_iter()
        .map(|viewer| tokio::spawn(leave(viewer, http.clone(), server.base.clone())))
        .collect();
    for leave in leaves {
        let _ = leave.await;
    }

    let cpu_pct = usage.process_cpu_pct[0];
    let joined = counts.len();
    let sum = |f: fn(&WindowCounts) -> u64| counts.iter().map(f).sum::<u64>();
    RoundResult {
        server: server.kind,
        viewers: settings.viewers,
        joined,
        join_errors,
        without_video,
        all_video_s,
        signalling_all_s,
        srtp_cipher,
        ttff_ms: percentiles(&mut ttff),
        window_s: usage.seconds,
        cpu_pct,
        cpu_per_viewer_pct: cpu_pct.map(|c| c / settings.viewers as f64),
        rss_before_mib,
        rss_mib,
        packets_per_viewer_s: sum(|c| c.packets) as f64 / joined.max(1) as f64 / usage.seconds,
        packets_lost: sum(|c| c.packets_lost),
        frames: sum(|c| c.frames),
        frames_lost: sum(|c| c.frames_lost),
        incomplete_frames: sum(|c| c.incomplete_frames),
        latency_ms: percentiles(&mut [delta.as_slice(), key.as_slice()].concat()),
        delta_latency_ms: percentiles(&mut delta),
        keyframe_latency_ms: percentiles(&mut key),
        client_cpu_pct: usage.process_cpu_pct[1],
        machine: usage,
    }
}
