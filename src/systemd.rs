//! Talking to systemd (`Type=notify`): READY once HTTP is bound and the first frame is out,
//! WATCHDOG only while frames flow (so a wedged pipeline gets the service restarted), a
//! one-line STATUS for `systemctl status`, and STOPPING on the way out. Without
//! `NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use crate::fanout::FanoutHub;
use crate::media::HEALTHY_FRAME_AGE;
use crate::media::pipeline::MediaPipeline;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often STATUS is refreshed when no watchdog asks for more.
const STATUS_EVERY: Duration = Duration::from_secs(5);

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// `3 viewers · 1280x720@30 · 2.1 Mbit/s · x264enc`
pub fn status_line(viewers: usize, pipeline: &MediaPipeline, kbps: f64) -> String {
    let status = pipeline.status();
    let picture = match (status.width, status.height, status.fps) {
        (Some(w), Some(h), Some(fps)) => format!("{w}x{h}@{}", fps.round()),
        _ => "no picture yet".to_owned(),
    };
    let noun = if viewers == 1 { "viewer" } else { "viewers" };
    format!(
        "{viewers} {noun} · {picture} · {:.1} Mbit/s · {}",
        kbps / 1000.0,
        status.encoder.as_deref().unwrap_or("camera H.264")
    )
}

/// Runs for the daemon's life: READY after the first frame, then WATCHDOG and STATUS.
pub async fn supervise(hub: Arc<FanoutHub>, pipeline: MediaPipeline) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let flowing = |hub: &FanoutHub| {
        let now = Instant::now();
        hub.stats(now)
            .last_frame_at
            .is_some_and(|at| now.saturating_duration_since(at) <= HEALTHY_FRAME_AGE)
    };
    while !flowing(&hub) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    notify(&[NotifyState::Ready, NotifyState::Status("streaming")]);
    tracing::info!("told systemd we are ready");
    // systemd asks for a ping within WatchdogSec; ping at a third of it to be safe.
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 3).min(STATUS_EVERY));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let stats = hub.stats(Instant::now());
        let line = status_line(stats.viewers, &pipeline, stats.rates.bitrate_kbps);
        if watchdog.is_some() && flowing(&hub) {
            notify(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
        } else {
            notify(&[NotifyState::Status(&line)]);
        }
    }
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}
