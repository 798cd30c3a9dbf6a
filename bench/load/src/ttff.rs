//! Time to first frame as one viewer at a time sees it: joins one after another at random
//! points of the GOP, each waiting for its first decodable frame, then leaving. (N joins at
//! once all wait for the same keyframe, so a round's TTFF is one sample of the GOP phase.)

use crate::feed::FrameClock;
use crate::report::{Distribution, percentiles};
use crate::round::{join_one, leave};
use crate::servers::Server;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, serde::Serialize)]
pub struct SequentialJoins {
    pub server: crate::servers::Kind,
    pub joins: usize,
    pub failed: usize,
    pub ttff_ms: Distribution,
    pub samples_ms: Vec<f64>,
}

pub async fn run(
    server: &Server,
    clock: &Arc<FrameClock>,
    http: &reqwest::Client,
    joins: usize,
    timeout: Duration,
    aes128_gcm_only: bool,
) -> SequentialJoins {
    let mut samples = Vec::with_capacity(joins);
    let mut failed = 0;
    for _ in 0..joins {
        match join_one(
            server.kind,
            server.base.clone(),
            http.clone(),
            Arc::clone(clock),
            aes128_gcm_only,
        )
        .await
        {
            Ok(viewer) => {
                let deadline = Instant::now() + timeout;
                let ttff = loop {
                    if let Some(ttff) = viewer.peer.stats.lock().unwrap().time_to_first_frame() {
                        break Some(ttff);
                    }
                    if Instant::now() > deadline {
                        break None;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                };
                match ttff {
                    Some(ttff) => samples.push(ttff.as_secs_f64() * 1000.0),
                    None => failed += 1,
                }
                leave(viewer, http.clone(), server.base.clone()).await;
            }
            Err(_) => failed += 1,
        }
        // Land the next join somewhere else in the 2 s GOP.
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..1500))).await;
    }
    let mut sorted = samples.clone();
    SequentialJoins {
        server: server.kind,
        joins,
        failed,
        ttff_ms: percentiles(&mut sorted),
        samples_ms: samples,
    }
}
