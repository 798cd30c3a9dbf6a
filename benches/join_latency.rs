//! Time from `POST /whep` to the first complete, decodable frame at a real WebRTC viewer,
//! over loopback, with the `test` pipeline (2 s GOP). Prints the distribution of many joins.
//!
//! Run: `cargo bench --bench join_latency` (JOINS=N to change the number of joins).

use fieldcast_test_support as support;

use std::time::Duration;
use support::{WhepViewer, base_url, start_daemon};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let joins: usize = std::env::var("JOINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    // Let the encoder settle past its first GOP so joins land at random points in it.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut millis = Vec::with_capacity(joins);
    for i in 0..joins {
        let mut viewer = WhepViewer::connect(&base).await;
        let frame = viewer.next_frame(Duration::from_secs(10)).await;
        assert!(
            frame.starts_decoding(),
            "join {i}: first frame is not decodable"
        );
        millis.push(
            frame
                .completed_at
                .duration_since(viewer.posted_at)
                .as_secs_f64()
                * 1000.0,
        );
        viewer.delete(&base).await;
        viewer.close().await;
        // Spread joins across the GOP rather than in step with it.
        tokio::time::sleep(Duration::from_millis(137 + 61 * (i as u64 % 7))).await;
    }
    daemon.shutdown().await;

    millis.sort_by(f64::total_cmp);
    println!(
        "join latency: POST /whep -> first decodable frame at the viewer (loopback, test pipeline)"
    );
    println!("  joins  {joins}");
    println!("  min    {:7.1} ms", millis[0]);
    println!("  p50    {:7.1} ms", percentile(&millis, 0.50));
    println!("  p90    {:7.1} ms", percentile(&millis, 0.90));
    println!("  max    {:7.1} ms", millis[millis.len() - 1]);
    println!("  target p50 <= 300 ms");
}
