//! Runs the GStreamer pipeline: builds it, hands every RTP packet from `appsink name=video` to
//! the data path, forwards keyframe requests to the encoder, and rebuilds it with backoff when
//! it fails or stops producing frames.

use super::PipelineError;
use super::bus::{self, BusEvent, BusEvents};
use super::packages;
use super::presets::ResolvedPipeline;
use super::sync_marks;
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Where the pipeline's RTP packets go. Called on GStreamer's streaming thread: must not block.
pub type PacketSink = Arc<dyn Fn(Bytes) + Send + Sync>;

/// One sink per appsink: `video` (required) and `audio` (when the pipeline has sound).
#[derive(Clone)]
pub struct MediaSinks {
    pub video: PacketSink,
    pub audio: PacketSink,
}

impl MediaSinks {
    /// Video to `video`; any sound is discarded.
    pub fn video_only(video: PacketSink) -> Self {
        Self {
            video,
            audio: Arc::new(|_| {}),
        }
    }
}

/// How long a first start may take to show a first packet or an error before we stop waiting.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(5);
/// No packet for this long from a running pipeline means the source is stuck: rebuild.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks for a stall, or for frames from a rebuilt pipeline.
const HEALTH_CHECK_EVERY: Duration = Duration::from_millis(200);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineState {
    Starting,
    Playing,
    Restarting,
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    pub state: PipelineState,
    pub preset: Option<String>,
    pub encoder: Option<String>,
    pub reason: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub fps: Option<f64>,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub audio: Option<AudioStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AudioStatus {
    pub source: String,
    pub codec: &'static str,
    /// Loudness of the last 100 ms in dBFS (0 is full scale; below -60 is near silence).
    pub level_dbfs: Option<f64>,
    pub packets: u64,
}

#[derive(Clone)]
pub struct MediaPipeline {
    inner: Arc<Inner>,
}

struct Inner {
    resolved: ResolvedPipeline,
    sinks: MediaSinks,
    running: Mutex<Option<Running>>,
    health: Mutex<Health>,
    /// Milliseconds since `epoch` at the last packet.
    last_packet_ms: Arc<AtomicU64>,
    audio_packets: Arc<AtomicU64>,
    audio_level: Mutex<Option<f64>>,
    epoch: Instant,
    stop: Notify,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

struct Health {
    state: PipelineState,
    restarts: u64,
    last_error: Option<String>,
}

struct Running {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
}

impl Running {
    fn teardown(self) {
        if let Some(bus) = self.pipeline.bus() {
            bus::unwatch(&bus);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl MediaPipeline {
    /// Builds and starts the pipeline. A pipeline that cannot start at all (bad string, missing
    /// camera) is an error here; later failures are retried in the background.
    pub async fn start(
        resolved: ResolvedPipeline,
        sinks: MediaSinks,
    ) -> Result<Self, PipelineError> {
        gst::init().map_err(|e| PipelineError::Init(e.to_string()))?;
        tracing::info!(
            preset = resolved.preset.as_deref().unwrap_or("custom"),
            encoder = resolved.encoder.as_deref().unwrap_or("none"),
            "pipeline chosen: {}",
            resolved.reason
        );
        tracing::debug!("pipeline: {}", resolved.description);
        let inner = Arc::new(Inner {
            resolved,
            sinks,
            running: Mutex::new(None),
            health: Mutex::new(Health {
                state: PipelineState::Starting,
                restarts: 0,
                last_error: None,
            }),
            last_packet_ms: Arc::new(AtomicU64::new(0)),
            audio_packets: Arc::new(AtomicU64::new(0)),
            audio_level: Mutex::new(None),
            epoch: Instant::now(),
            stop: Notify::new(),
            supervisor: Mutex::new(None),
        });
        let (running, mut events) = launch_off_runtime(&inner).await?;
        *lock(&inner.running) = Some(running);
        if let Err(message) = inner.await_first_packet(&mut events).await {
            if let Some(running) = inner.take_running() {
                running.teardown();
            }
            return Err(PipelineError::Start { message });
        }
        let supervisor = tokio::spawn(supervise(Arc::clone(&inner), events));
        *lock(&inner.supervisor) = Some(supervisor);
        Ok(Self { inner })
    }

    /// Whether the pipeline sends sound to the `audio` appsink.
    pub fn has_audio(&self) -> bool {
        self.inner.resolved.audio.is_some()
    }

    /// Asks the encoder for an IDR with SPS/PPS in front. Cheap; callers rate-limit.
    pub fn request_keyframe(&self) {
        let running = lock(&self.inner.running);
        if let Some(running) = running.as_ref() {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            if !running.appsink.send_event(event) {
                tracing::debug!("no element upstream handled the keyframe request");
            }
        }
    }

    pub fn status(&self) -> PipelineStatus {
        let health = lock(&self.inner.health);
        let (width, height, fps) = lock(&self.inner.running)
            .as_ref()
            .map(|r| video_format(&r.pipeline))
            .unwrap_or_default();
        PipelineStatus {
            state: health.state,
            preset: self.inner.resolved.preset.clone(),
            encoder: self.inner.resolved.encoder.clone(),
            reason: self.inner.resolved.reason.clone(),
            width,
            height,
            fps,
            restarts: health.restarts,
            last_error: health.last_error.clone(),
            audio: self
                .inner
                .resolved
                .audio
                .as_ref()
                .map(|source| AudioStatus {
                    source: source.clone(),
                    codec: "opus",
                    level_dbfs: *lock(&self.inner.audio_level),
                    packets: self.inner.audio_packets.load(Ordering::Relaxed),
                }),
        }
    }

    /// Stops the pipeline and its supervisor; idempotent.
    pub async fn stop(&self) {
        self.inner.stop.notify_one();
        let supervisor = lock(&self.inner.supervisor).take();
        if let Some(supervisor) = supervisor
            && tokio::time::timeout(Duration::from_secs(3), supervisor)
                .await
                .is_err()
        {
            tracing::warn!("pipeline supervisor did not stop within 3 s");
        }
        let running = self.inner.take_running();
        if let Some(running) = running {
            let _ = tokio::task::spawn_blocking(move || running.teardown()).await;
        }
        lock(&self.inner.health).state = PipelineState::Stopped;
        tracing::info!("pipeline stopped");
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn take_running(&self) -> Option<Running> {
        lock(&self.running).take()
    }

    /// Parses the description, wires the appsink and sets the pipeline playing.
    fn launch(&self) -> Result<(Running, BusEvents), PipelineError> {
        let description = &self.resolved.description;
        let element = gst::parse::launch(description).map_err(|e| PipelineError::Parse {
            description: description.clone(),
            message: packages::explain(e.to_string()),
        })?;
        let pipeline = match element.downcast::<gst::Pipeline>() {
            Ok(pipeline) => pipeline,
            Err(element) => {
                let pipeline = gst::Pipeline::new();
                pipeline.add(&element).map_err(|e| PipelineError::Parse {
                    description: description.clone(),
                    message: e.to_string(),
                })?;
                pipeline
            }
        };
        let appsink = pipeline
            .by_name("video")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or(PipelineError::NoVideoSink)?;
        let epoch = self.epoch;
        let last_packet_ms = Arc::clone(&self.last_packet_ms);
        wire(&appsink, Arc::clone(&self.sinks.video), move || {
            last_packet_ms.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        });
        if let Some(audio) = pipeline
            .by_name("audio")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        {
            let packets = Arc::clone(&self.audio_packets);
            wire(&audio, Arc::clone(&self.sinks.audio), move || {
                packets.fetch_add(1, Ordering::Relaxed);
            });
        }
        if sync_marks::attach(&pipeline) {
            tracing::debug!("flash and beep sync marks on");
        }
        let bus = pipeline.bus().expect("a pipeline always has a bus");
        let mut events = bus::watch(&bus);
        self.last_packet_ms.store(self.now_ms(), Ordering::Relaxed);
        let running = Running { pipeline, appsink };
        if running.pipeline.set_state(gst::State::Playing).is_err() {
            let message = first_error(&mut events)
                .unwrap_or_else(|| "the pipeline refused to start playing".to_owned());
            running.teardown();
            return Err(PipelineError::Start { message });
        }
        Ok((running, events))
    }

    /// Waits until the first packet arrives, an error is posted, or [`FIRST_FRAME_WAIT`] passes.
    async fn await_first_packet(&self, events: &mut BusEvents) -> Result<(), String> {
        let started = self.now_ms();
        let deadline = tokio::time::Instant::now() + FIRST_FRAME_WAIT;
        loop {
            if self.last_packet_ms.load(Ordering::Relaxed) > started {
                lock(&self.health).state = PipelineState::Playing;
                return Ok(());
            }
            match tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(20)),
                events.recv(),
            )
            .await
            {
                Ok(Some(BusEvent::Error(message))) => return Err(message),
                Ok(Some(BusEvent::EndOfStream)) => {
                    return Err("the source ended before sending a frame".to_owned());
                }
                Ok(Some(BusEvent::Warning(w))) => tracing::warn!("pipeline: {w}"),
                Ok(Some(BusEvent::Playing | BusEvent::AudioLevel(_))) | Err(_) => {}
                Ok(None) => return Err("the pipeline's bus closed".to_owned()),
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "no frame from the pipeline after {} s; carrying on",
                    FIRST_FRAME_WAIT.as_secs()
                );
                return Ok(());
            }
        }
    }

    fn record_failure(&self, reason: String) {
        tracing::warn!("pipeline failed: {reason}");
        let mut health = lock(&self.health);
        health.state = PipelineState::Restarting;
        health.last_error = Some(reason);
    }
}

/// Watches the running pipeline; rebuilds it with growing backoff when it fails or stalls.
async fn supervise(inner: Arc<Inner>, mut events: BusEvents) {
    let mut backoff = FIRST_BACKOFF;
    let mut check = tokio::time::interval(HEALTH_CHECK_EVERY);
    let mut launched_ms = 0;
    loop {
        let failure = tokio::select! {
            _ = inner.stop.notified() => return,
            event = events.recv() => match event {
                Some(BusEvent::Error(message)) => Some(message),
                Some(BusEvent::EndOfStream) => Some("the source ended".to_owned()),
                Some(BusEvent::Warning(warning)) => {
                    tracing::warn!("pipeline: {warning}");
                    None
                }
                Some(BusEvent::Playing) => None,
                Some(BusEvent::AudioLevel(db)) => {
                    // Digital silence reads as -700 dB; nothing below -100 means anything.
                    *lock(&inner.audio_level) = Some(((db * 10.0).round() / 10.0).max(-100.0));
                    None
                }
                None => Some("the pipeline's bus closed".to_owned()),
            },
            _ = check.tick() => {
                let idle = inner.now_ms().saturating_sub(inner.last_packet_ms.load(Ordering::Relaxed));
                if idle > STALL_TIMEOUT.as_millis() as u64 {
                    Some(format!("no frame for {} s", idle / 1000))
                } else {
                    let mut health = lock(&inner.health);
                    let fresh = inner.last_packet_ms.load(Ordering::Relaxed) > launched_ms;
                    if health.state != PipelineState::Playing && fresh && idle < 1000 {
                        health.state = PipelineState::Playing;
                        backoff = FIRST_BACKOFF;
                        if health.restarts > 0 {
                            tracing::info!("pipeline playing again");
                        }
                    }
                    None
                }
            }
        };
        let Some(reason) = failure else { continue };
        inner.record_failure(reason);
        loop {
            if let Some(running) = inner.take_running() {
                let _ = tokio::task::spawn_blocking(move || running.teardown()).await;
            }
            tokio::select! {
                _ = inner.stop.notified() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            lock(&inner.health).restarts += 1;
            match launch_off_runtime(&inner).await {
                Ok((running, new_events)) => {
                    tracing::info!("pipeline restarted");
                    launched_ms = inner.now_ms();
                    *lock(&inner.running) = Some(running);
                    events = new_events;
                    break;
                }
                Err(e) => inner.record_failure(e.to_string()),
            }
        }
    }
}

/// [`Inner::launch`] on a blocking thread: parsing loads plugins and opens devices, and
/// setting the state waits on them, none of which may stall the async workers.
async fn launch_off_runtime(inner: &Arc<Inner>) -> Result<(Running, BusEvents), PipelineError> {
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || inner.launch())
        .await
        .unwrap_or_else(|e| {
            Err(PipelineError::Start {
                message: format!("building the pipeline panicked: {e}"),
            })
        })
}

/// Builds the pipeline and takes it to PAUSED, then tears it down: proves the elements exist,
/// the caps link and the devices open, without streaming. For `fieldcast check`.
pub fn dry_run(resolved: &ResolvedPipeline) -> Result<(), PipelineError> {
    gst::init().map_err(|e| PipelineError::Init(e.to_string()))?;
    let description = &resolved.description;
    let pipeline = gst::parse::launch(description).map_err(|e| PipelineError::Parse {
        description: description.clone(),
        message: packages::explain(e.to_string()),
    })?;
    let bin = pipeline
        .downcast_ref::<gst::Bin>()
        .ok_or(PipelineError::NoVideoSink)?;
    if bin.by_name("video").is_none() {
        return Err(PipelineError::NoVideoSink);
    }
    let bus = pipeline.bus().expect("a pipeline always has a bus");
    let changed = pipeline.set_state(gst::State::Paused);
    let settled = pipeline.state(gst::ClockTime::from_seconds(5)).0;
    let error = bus.iter_filtered(&[gst::MessageType::Error]).next();
    let _ = pipeline.set_state(gst::State::Null);
    match (error, changed, settled) {
        (Some(message), _, _) => Err(PipelineError::Start {
            message: match bus::classify(&message) {
                Some(BusEvent::Error(text)) => text,
                _ => "the pipeline failed".to_owned(),
            },
        }),
        (None, Err(_), _) | (None, _, Err(_)) => Err(PipelineError::Start {
            message: "the pipeline refused to pause".to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Hands every buffer of `appsink` to `sink`, calling `seen` first; never blocks.
fn wire(appsink: &gst_app::AppSink, sink: PacketSink, seen: impl Fn() + Send + Sync + 'static) {
    appsink.set_sync(false);
    appsink.set_drop(true);
    appsink.set_max_buffers(64);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer()
                    && let Ok(map) = buffer.map_readable()
                {
                    seen();
                    sink(Bytes::copy_from_slice(map.as_slice()));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

fn first_error(events: &mut BusEvents) -> Option<String> {
    while let Ok(event) = events.try_recv() {
        if let BusEvent::Error(message) = event {
            return Some(message);
        }
    }
    None
}

/// Width, height and frame rate of the H.264 going into the payloader.
fn video_format(pipeline: &gst::Pipeline) -> (Option<i32>, Option<i32>, Option<f64>) {
    let is_payloader = |e: &gst::Element| {
        e.factory().is_some_and(|f| {
            f.metadata(gst::ELEMENT_METADATA_KLASS)
                .is_some_and(|k| k.contains("Payloader"))
        })
    };
    let caps = pipeline
        .iterate_recurse()
        .into_iter()
        .flatten()
        .filter(is_payloader)
        .filter_map(|p| p.static_pad("sink")?.current_caps())
        .find(|caps| {
            caps.structure(0)
                .is_some_and(|s| s.name().starts_with("video/"))
        });
    let Some(structure) = caps.as_ref().and_then(|c| c.structure(0)) else {
        return (None, None, None);
    };
    let fps = structure
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.denom() != 0)
        .map(|f| f64::from(f.numer()) / f64::from(f.denom()));
    (
        structure.get("width").ok(),
        structure.get("height").ok(),
        fps,
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
