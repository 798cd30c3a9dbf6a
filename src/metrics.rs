//! Counters and gauges in the Prometheus/OpenMetrics text format (`GET /metrics`), read fresh
//! from the hubs, the sessions, the pipeline and /proc at each scrape.

use crate::fanout::HubStats;
use crate::fanout::audio::AudioStats;
use crate::media::pipeline::PipelineStatus;
use crate::publish::state::TargetStatus;
use crate::record::RecordStatus;
use crate::webrtc::totals::Totals;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ) on every architecture we run on.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds, and resident bytes, of this process.
pub fn process_usage() -> Option<(f64, u64)> {
    let (ticks, rss_kib) = crate::procfs::usage("self")?;
    Some((ticks as f64 / TICKS_PER_SECOND, rss_kib * 1024))
}

/// What one scrape reports, gathered at the moment of the scrape.
pub struct Scrape<'a> {
    /// Viewer sessions open now.
    pub viewers: usize,
    pub totals: &'a Totals,
    pub video: HubStats,
    pub audio: AudioStats,
    pub pipeline: PipelineStatus,
    pub keyframe_requests_sent: u64,
    /// Viewers a full device sent to the overflow WHEP URL.
    pub overflow_redirects: u64,
    pub publish: Vec<TargetStatus>,
    pub recording: RecordStatus,
}

pub fn render(scrape: &Scrape<'_>) -> String {
    let Scrape {
        viewers,
        totals,
        video,
        audio,
        pipeline,
        ..
    } = scrape;

    let mut registry = Registry::with_prefix("fieldcast");
    let counter = |r: &mut Registry, name: &str, help: &str, value: u64| {
        r.register(name, help, ConstCounter::new(value));
    };
    let gauge = |r: &mut Registry, name: &str, help: &str, value: f64| {
        r.register(name, help, ConstGauge::new(value));
    };
    gauge(
        &mut registry,
        "viewers",
        "Viewer sessions open now",
        *viewers as f64,
    );
    counter(
        &mut registry,
        "viewer_joins",
        "Viewer sessions created",
        Totals::get(&totals.joins),
    );
    counter(
        &mut registry,
        "viewer_leaves",
        "Viewer sessions ended",
        Totals::get(&totals.leaves),
    );
    counter(
        &mut registry,
        "sent_bytes",
        "RTP payload bytes sent to viewers",
        Totals::get(&totals.bytes),
    );
    let sent = Family::<Vec<(String, String)>, Counter>::default();
    for (kind, packets) in [
        ("video", &totals.video_packets),
        ("audio", &totals.audio_packets),
    ] {
        sent.get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc_by(Totals::get(packets));
    }
    registry.register("sent_packets", "RTP packets sent to viewers", sent);
    {
        let slow = registry.sub_registry_with_label(("reason".into(), "slow_viewer".into()));
        counter(
            slow,
            "dropped_frames",
            "Video frames not delivered to a viewer",
            video.dropped_frames,
        );
        counter(
            slow,
            "dropped_audio_packets",
            "Opus packets not delivered to a viewer",
            audio.dropped_packets,
        );
    }
    counter(
        &mut registry,
        "encoded_frames",
        "Frames the encoder produced",
        video.frames_in,
    );
    counter(
        &mut registry,
        "keyframes",
        "Keyframes the encoder produced",
        video.keyframes_in,
    );
    counter(
        &mut registry,
        "keyframe_requests",
        "Keyframe requests sent to the encoder",
        scrape.keyframe_requests_sent,
    );
    counter(
        &mut registry,
        "replayed_joins",
        "Viewers started on the frames since the last keyframe",
        video.replayed_joins,
    );
    counter(
        &mut registry,
        "replayed_repairs",
        "Times a viewer that lost its picture was sent the frames since the last keyframe again",
        video.replayed_repairs,
    );
    counter(
        &mut registry,
        "overflow_redirects",
        "Viewers a full device sent to the overflow WHEP URL",
        scrape.overflow_redirects,
    );
    counter(
        &mut registry,
        "pipeline_restarts",
        "Times the pipeline was rebuilt",
        pipeline.restarts,
    );
    gauge(
        &mut registry,
        "encoder_fps",
        "Frames per second out of the encoder",
        video.rates.fps,
    );
    gauge(
        &mut registry,
        "encoder_bitrate_bps",
        "Bits per second out of the encoder",
        video.rates.bitrate_kbps * 1000.0,
    );
    let frame_age = video
        .last_frame_at
        .map_or(f64::INFINITY, |at| at.elapsed().as_secs_f64());
    gauge(
        &mut registry,
        "last_frame_age_seconds",
        "Seconds since the last frame",
        frame_age,
    );
    if let Some(level) = pipeline.audio.as_ref().and_then(|a| a.level_dbfs) {
        gauge(
            &mut registry,
            "audio_level_dbfs",
            "Sound level of the last 100 ms",
            level,
        );
    }
    register_publish(&mut registry, &scrape.publish);
    register_recording(&mut registry, &scrape.recording);
    // The conventional process_* names, without the fieldcast_ prefix.
    let mut process = Registry::with_prefix("process");
    if let Some((cpu, rss)) = process_usage() {
        process.register(
            "cpu_seconds",
            "User and system CPU time",
            ConstCounter::new(cpu),
        );
        gauge(
            &mut process,
            "resident_memory_bytes",
            "Resident memory",
            rss as f64,
        );
    }
    let mut text = String::new();
    let encoded = encode_registry(&mut text, &registry)
        .and_then(|()| encode_registry(&mut text, &process))
        .and_then(|()| encode_eof(&mut text));
    if encoded.is_err() {
        text.clear();
    }
    text
}

/// The recorder: writing or not, what it keeps, the room left, what it lost.
fn register_recording(registry: &mut Registry, status: &RecordStatus) {
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let gauges = [
        (
            "recording",
            "1 while a segment is being written",
            flag(status.recording),
        ),
        (
            "recording_enabled",
            "1 while recording is wanted",
            flag(status.enabled),
        ),
        (
            "recording_disk_full",
            "1 while recording is paused for want of room",
            flag(status.disk_full),
        ),
        (
            "recording_bytes",
            "Bytes of the recordings kept",
            status.bytes as f64,
        ),
        (
            "recording_segments",
            "Recording segments kept",
            status.segments as f64,
        ),
    ];
    for (name, help, value) in gauges {
        registry.register(name, help, ConstGauge::new(value));
    }
    if let Some(free) = status.free_bytes {
        registry.register(
            "recording_free_bytes",
            "Bytes free on the recordings' file system",
            ConstGauge::new(free as f64),
        );
    }
    registry.register(
        "recording_dropped_frames",
        "Video frames the recorder lost for falling behind",
        ConstCounter::new(status.frames_dropped),
    );
}

/// Per publish target, labelled with its name: up, bytes, frames dropped, reconnects.
fn register_publish(registry: &mut Registry, targets: &[TargetStatus]) {
    if targets.is_empty() {
        return;
    }
    type Labels = Vec<(String, String)>;
    let up = Family::<Labels, prometheus_client::metrics::gauge::Gauge>::default();
    let bytes = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let reconnects = Family::<Labels, Counter>::default();
    let attempts = Family::<Labels, Counter>::default();
    for target in targets {
        let labels = vec![
            ("target".to_owned(), target.name.clone()),
            ("kind".to_owned(), target.kind.to_owned()),
        ];
        let live = target.state == crate::publish::state::Phase::Live;
        up.get_or_create(&labels).set(i64::from(live));
        bytes.get_or_create(&labels).inc_by(target.bytes_sent);
        dropped.get_or_create(&labels).inc_by(target.frames_dropped);
        reconnects.get_or_create(&labels).inc_by(target.reconnects);
        attempts.get_or_create(&labels).inc_by(target.attempts);
    }
    registry.register("publish_up", "1 while media flows to the target", up);
    registry.register(
        "publish_sent_bytes",
        "Bytes sent to the publish target",
        bytes,
    );
    registry.register(
        "publish_dropped_frames",
        "Video frames the publish target lost for falling behind",
        dropped,
    );
    registry.register(
        "publish_reconnects",
        "Times the target was live again after a failure",
        reconnects,
    );
    registry.register(
        "publish_attempts",
        "Connection attempts to the target, the first included",
        attempts,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let (cpu, rss) = process_usage().expect("/proc is readable");
        assert!(cpu >= 0.0);
        assert!(rss > 1024 * 1024, "at least a MiB resident: {rss}");
    }
}
