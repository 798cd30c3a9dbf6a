//! /metrics parses as Prometheus text and its counters move when a viewer watches.

use fieldcast_test_support as support;

use std::time::Duration;
use support::{TEST_ADMIN_TOKEN, WhepViewer, base_url, start_daemon};

async fn scrape(base: &str) -> prometheus_parse::Scrape {
    let response = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(TEST_ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "every sample line parses:\n{text}"
    );
    scrape
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    use prometheus_parse::Value;
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {metric} {label:?}"));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{metric} is not a plain number"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_when_a_viewer_watches() {
    let daemon = start_daemon().await;
    let base = base_url(&daemon);
    let before = scrape(&base).await;
    assert_eq!(value(&before, "fieldcast_viewers", None), 0.0);
    assert_eq!(value(&before, "fieldcast_viewer_joins_total", None), 0.0);
    assert!(value(&before, "process_resident_memory_bytes", None) > 0.0);

    let mut viewer = WhepViewer::connect(&base).await;
    for _ in 0..10 {
        viewer.next_frame(Duration::from_secs(5)).await;
    }
    let during = scrape(&base).await;
    assert_eq!(value(&during, "fieldcast_viewers", None), 1.0);
    assert_eq!(value(&during, "fieldcast_viewer_joins_total", None), 1.0);
    let video = ("kind", "video");
    assert!(value(&during, "fieldcast_sent_packets_total", Some(video)) >= 10.0);
    assert!(value(&during, "fieldcast_sent_bytes_total", None) > 1000.0);
    assert!(
        value(&during, "fieldcast_encoded_frames_total", None)
            > value(&before, "fieldcast_encoded_frames_total", None)
    );
    assert!(value(&during, "fieldcast_encoder_fps", None) > 20.0);

    viewer.delete(&base).await;
    viewer.close().await;
    let after = scrape(&base).await;
    assert_eq!(value(&after, "fieldcast_viewers", None), 0.0);
    assert_eq!(value(&after, "fieldcast_viewer_leaves_total", None), 1.0);
    daemon.shutdown().await;
}
