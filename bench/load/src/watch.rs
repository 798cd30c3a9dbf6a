//! Watching a daemon that is already running: N viewers join it and stay until the time is up
//! or the process is told to stop, as extra load beside a measurement made elsewhere (the
//! glass-to-glass tool and the soak drive this). One JSON line per report on stdout.

use crate::feed::FrameClock;
use crate::round::{self, Viewer};
use crate::servers::Kind;
use crate::stats::{Snapshot, WindowCounts};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct WatchSettings {
    pub base: String,
    pub viewers: usize,
    /// 0: until SIGTERM or Ctrl-C.
    pub seconds: f64,
    pub join_timeout: Duration,
    pub report_every: Duration,
}

/// What all viewers received since they had video.
#[derive(Debug, Default, serde::Serialize)]
struct Totals {
    packets: u64,
    packets_lost: u64,
    frames_lost: u64,
    /// Viewers that received nothing since the previous report.
    stalled_viewers: usize,
}

fn totals(viewers: &[Viewer], start: &[Snapshot], previous: &mut [Snapshot]) -> Totals {
    let mut totals = Totals::default();
    for ((viewer, start), previous) in viewers.iter().zip(start).zip(previous) {
        let now = viewer.peer.stats.lock().unwrap().snapshot();
        let counts = WindowCounts::between(start, &now);
        totals.packets += counts.packets;
        totals.packets_lost += counts.packets_lost;
        totals.frames_lost += counts.frames_lost;
        if now.packets == previous.packets {
            totals.stalled_viewers += 1;
        }
        *previous = now;
    }
    totals
}

fn emit(event: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({ "event": event });
    if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    println!("{line}");
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

pub async fn run(settings: WatchSettings, http: reqwest::Client) -> Result<(), String> {
    // Nothing is fed from here, so no frame has a send time: latency is measured elsewhere.
    let clock = Arc::new(FrameClock::unfed());
    let started = Instant::now();
    let joins: Vec<_> = (0..settings.viewers)
        .map(|_| {
            tokio::spawn(round::join_one(
                Kind::Fieldcast,
                settings.base.clone(),
                http.clone(),
                Arc::clone(&clock),
                false,
            ))
        })
        .collect();
    let mut viewers = Vec::new();
    for join in joins {
        match join.await {
            Ok(Ok(viewer)) => viewers.push(viewer),
            Ok(Err(e)) => return Err(format!("a viewer could not join: {e}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    let with_video = |viewers: &[Viewer]| {
        viewers
            .iter()
            .filter(|v| v.peer.stats.lock().unwrap().first_decodable.is_some())
            .count()
    };
    while with_video(&viewers) < viewers.len() {
        if started.elapsed() > settings.join_timeout {
            return Err(format!(
                "only {} of {} viewers received video within {:?}",
                with_video(&viewers),
                viewers.len(),
                settings.join_timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    emit(
        "watching",
        serde_json::json!({ "viewers": viewers.len(), "after_s": started.elapsed().as_secs_f64() }),
    );

    let start: Vec<Snapshot> = viewers
        .iter()
        .map(|v| v.peer.stats.lock().unwrap().snapshot())
        .collect();
    let mut previous = start.clone();
    let watching = Instant::now();
    let deadline = (settings.seconds > 0.0)
        .then(|| tokio::time::Instant::now() + Duration::from_secs_f64(settings.seconds));
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(settings.report_every);
    ticker.tick().await;
    loop {
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticker.tick() => {
                let totals = totals(&viewers, &start, &mut previous);
                emit("report", serde_json::json!({
                    "seconds": watching.elapsed().as_secs_f64(),
                    "totals": totals,
                }));
            }
            _ = until_deadline => break,
            _ = &mut stop => break,
        }
    }
    let totals = totals(&viewers, &start, &mut previous);
    emit(
        "done",
        serde_json::json!({
            "viewers": viewers.len(),
            "seconds": watching.elapsed().as_secs_f64(),
            "totals": totals,
        }),
    );
    let leaves: Vec<_> = viewers
        .into_iter()
        .map(|viewer| tokio::spawn(round::leave(viewer, http.clone(), settings.base.clone())))
        .collect();
    for leave in leaves {
        let _ = leave.await;
    }
    Ok(())
}
