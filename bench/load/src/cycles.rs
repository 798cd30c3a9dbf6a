//! Join/leave cycles: does a server give back what each viewer took? Viewers join in
//! batches, wait until their DTLS is up, and leave; the server's RSS is read after a warm-up
//! batch and again after every cycle, once it has had a moment to let go.

use crate::feed::FrameClock;
use crate::round::{join_one, leave};
use crate::servers::Server;
use crate::{procstat, report};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Viewers joining at once in each cycle.
const BATCH: usize = 10;
/// Longest wait for one viewer's DTLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the server to drop the last batch before RSS is read.
const RELEASE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, serde::Serialize)]
pub struct Cycles {
    pub server: crate::servers::Kind,
    /// Viewers that joined and left.
    pub viewers: usize,
    pub failed: usize,
    pub seconds: f64,
    /// After one warm-up batch had joined and left.
    pub rss_start_mib: Option<f64>,
    pub rss_end_mib: Option<f64>,
    /// RSS after every tenth of the run, to tell a leak (a steady climb) from noise.
    pub rss_trace_mib: Vec<Option<f64>>,
    pub growth_mib_per_1000: Option<f64>,
    pub connect_ms: report::Distribution,
}

async fn one_batch(
    server: &Server,
    clock: &Arc<FrameClock>,
    http: &reqwest::Client,
    aes128_gcm_only: bool,
    connect_ms: &mut Vec<f64>,
) -> usize {
    let joins: Vec<_> = (0..BATCH)
        .map(|_| {
            let (base, http, clock) = (server.base.clone(), http.clone(), Arc::clone(clock));
            let kind = server.kind;
            tokio::spawn(async move {
                let started = Instant::now();
                let viewer = join_one(kind, base.clone(), http.clone(), clock, aes128_gcm_only)
                    .await
                    .ok()?;
                let deadline = started + CONNECT_TIMEOUT;
                let connected = loop {
                    if viewer.peer.srtp_cipher().await.is_some() {
                        break Some(started.elapsed());
                    }
                    if Instant::now() > deadline {
                        break None;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                leave(viewer, http, base).await;
                connected
            })
        })
        .collect();
    let mut failed = 0;
    for join in joins {
        match join.await {
            Ok(Some(took)) => connect_ms.push(took.as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
    }
    failed
}

pub async fn run(
    server: &Server,
    clock: &Arc<FrameClock>,
    http: &reqwest::Client,
    viewers: usize,
    aes128_gcm_only: bool,
) -> Cycles {
    let pid = server.pid();
    let mut connect_ms = Vec::new();
    one_batch(server, clock, http, aes128_gcm_only, &mut connect_ms).await;
    tokio::time::sleep(RELEASE).await;
    let rss_start_mib = procstat::rss_mib(pid);
    let batches = viewers.div_ceil(BATCH);
    let started = Instant::now();
    let mut failed = 0;
    let mut rss_trace_mib = Vec::new();
    connect_ms.clear();
    for index in 0..batches {
        failed += one_batch(server, clock, http, aes128_gcm_only, &mut connect_ms).await;
        if (index + 1) % (batches / 10).max(1) == 0 {
            rss_trace_mib.push(procstat::rss_mib(pid));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(RELEASE).await;
    let rss_end_mib = procstat::rss_mib(pid);
    let done = batches * BATCH;
    Cycles {
        server: server.kind,
        viewers: done,
        failed,
        seconds,
        rss_start_mib,
        rss_end_mib,
        rss_trace_mib,
        growth_mib_per_1000: rss_start_mib
            .zip(rss_end_mib)
            .map(|(start, end)| (end - start) * 1000.0 / done as f64),
        connect_ms: report::percentiles(&mut connect_ms),
    }
}
