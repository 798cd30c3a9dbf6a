//! Wires the data path together — pipeline → access units → hub → viewer sessions — and
//! serves HTTP until asked to stop.

use crate::config::Config;
use crate::fanout::audio::AudioHub;
use crate::fanout::keyframe::KeyframeGate;
use crate::fanout::{FanoutHub, Hubs, run_keyframe_requests};
use crate::http::access::Access;
use crate::http::limits::Admission;
use crate::http::{AppState, router};
use crate::media::PipelineError;
use crate::media::pipeline::{MediaPipeline, MediaSinks, PacketSink};
use crate::media::presets;
use crate::media::rtp::{AccessUnit, AccessUnitAssembler, parse};
use crate::webrtc::registry::SessionRegistry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Viewers get this long to be told goodbye when the daemon stops.
const VIEWER_CLOSE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct RunningDaemon {
    pub local_addr: SocketAddr,
    pub pipeline: MediaPipeline,
    registry: SessionRegistry,
    stop_http: oneshot::Sender<()>,
    http: JoinHandle<()>,
    notifier: JoinHandle<()>,
}

/// Turns the appsink's RTP packets into frames on the hub. Runs on the streaming thread.
fn video_sink(hub: Arc<FanoutHub>) -> PacketSink {
    let assembler = Mutex::new((AccessUnitAssembler::new(), Vec::<AccessUnit>::new()));
    Arc::new(move |raw| {
        let packet = match parse(&raw) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::debug!("pipeline produced a non-RTP buffer: {e}");
                return;
            }
        };
        let mut guard = assembler.lock().unwrap_or_else(|e| e.into_inner());
        let (assembler, done) = &mut *guard;
        assembler.push(packet, Instant::now(), done);
        for frame in done.drain(..) {
            hub.publish(frame);
        }
    })
}

/// Hands the appsink's Opus packets to the audio hub. Runs on the streaming thread.
fn audio_sink(hub: Arc<AudioHub>) -> PacketSink {
    Arc::new(move |raw| match parse(&raw) {
        Ok(packet) => hub.publish(Arc::new(packet)),
        Err(e) => tracing::debug!("pipeline produced a non-RTP audio buffer: {e}"),
    })
}

pub async fn start(config: Config) -> Result<RunningDaemon, DaemonError> {
    let tokens = config
        .access
        .load()
        .map_err(|(key, problem)| DaemonError::Config(format!("{key}: {problem}")))?;
    if !tokens.viewers.is_empty() {
        tracing::info!(
            "{} viewer token(s): only links with a token can watch",
            tokens.viewers.len()
        );
    }
    let access = Access::new(tokens.viewers, tokens.admin);
    let resolved = presets::resolve(&config.media)?;
    let (hub, keyframe_events) = FanoutHub::new(config.viewer_queue_frames);
    let audio_hub = AudioHub::new();
    let sinks = MediaSinks {
        video: video_sink(Arc::clone(&hub)),
        audio: audio_sink(Arc::clone(&audio_hub)),
    };
    let pipeline = MediaPipeline::start(resolved, sinks).await?;
    let hubs = Hubs {
        video: hub,
        audio: audio_hub,
    };

    let keyframe_requests_sent = Arc::new(AtomicU64::new(0));
    let encoder = pipeline.clone();
    tokio::spawn(run_keyframe_requests(
        keyframe_events,
        KeyframeGate::default(),
        move || encoder.request_keyframe(),
        Arc::clone(&keyframe_requests_sent),
    ));

    let registry = SessionRegistry::start(hubs.clone(), config.connect_timeout);
    let hubs_for_systemd = Arc::clone(&hubs.video);
    let state = AppState {
        registry: registry.clone(),
        hubs,
        pipeline: pipeline.clone(),
        peer_settings: Arc::new(config.peer.clone()),
        title: Arc::from(config.title.as_str()),
        access: Arc::new(access),
        admission: Arc::new(Admission::new(config.limits.clone())),
        keyframe_requests_sent,
        started: Instant::now(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.listen,
            source,
        });
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            pipeline.stop().await;
            return Err(e);
        }
    };
    let local_addr = listener.local_addr().unwrap_or(config.listen);
    let (stop_http, stopped) = oneshot::channel::<()>();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let http = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!("HTTP server failed: {e}");
        }
    });
    tracing::info!(%local_addr, "serving viewers");
    let notifier = tokio::spawn(crate::systemd::supervise(
        Arc::clone(&hubs_for_systemd),
        pipeline.clone(),
    ));
    Ok(RunningDaemon {
        local_addr,
        pipeline,
        registry,
        stop_http,
        http,
        notifier,
    })
}

impl RunningDaemon {
    /// Says goodbye to viewers, stops HTTP and the pipeline; bounded by a few seconds.
    pub async fn shutdown(self) {
        self.notifier.abort();
        crate::systemd::stopping();
        self.registry.close_all(VIEWER_CLOSE_DEADLINE).await;
        let _ = self.stop_http.send(());
        // Open keep-alive connections must not hold the shutdown hostage.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.http).await;
        self.pipeline.stop().await;
    }
}
