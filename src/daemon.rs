//! Wires the data path together — pipeline → access units → hub → viewer sessions — and
//! serves HTTP until asked to stop.

use crate::config::Config;
use crate::config::admin_token::{self, AdminToken};
use crate::config::state_dir;
use crate::fanout::audio::AudioHub;
use crate::fanout::keyframe::KeyframeGate;
use crate::fanout::{FanoutHub, Hubs, JoinStart, run_keyframe_requests};
use crate::http::access::Access;
use crate::http::limits::Admission;
use crate::http::serve::{ConnectionLimits, serve};
use crate::http::{AppState, redirect, router, tls};
use crate::media::PipelineError;
use crate::media::pipeline::{MediaPipeline, MediaSinks, PacketSink};
use crate::media::presets;
use crate::media::rtp::{AccessUnit, AccessUnitAssembler, parse};
use crate::publish::Publishers;
use crate::record::Recorder;
use crate::webrtc::registry::SessionRegistry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Viewers get this long to be told goodbye when the daemon stops.
const VIEWER_CLOSE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot receive viewers: {0}")]
    Egress(String),
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
    /// Where HTTPS listens, when it is on.
    pub tls_addr: Option<SocketAddr>,
    /// This run's admin token and where it came from (the link is shown when it is new).
    pub admin: AdminToken,
    servers: Vec<Server>,
    notifier: JoinHandle<()>,
    summary: JoinHandle<()>,
    video_hub: Weak<FanoutHub>,
    publishers: Publishers,
    recorder: Recorder,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr, source })
}

type Server = (Option<oneshot::Sender<()>>, JoinHandle<()>);

fn spawn_server(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
) -> Server {
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(listener, app, tls, limits, stopped));
    (Some(stop), task)
}

/// Turns the appsink's RTP packets into frames on the hub. Runs on the streaming thread; holds
/// the hub weakly, so a pipeline still streaming does not keep a stopped daemon's hub alive.
fn video_sink(hub: Weak<FanoutHub>) -> PacketSink {
    let assembler = Mutex::new((AccessUnitAssembler::new(), Vec::<AccessUnit>::new()));
    Arc::new(move |raw| {
        let packet = match parse(&raw) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::debug!("pipeline produced a non-RTP buffer: {e}");
                return;
            }
        };
        let Some(hub) = hub.upgrade() else { return };
        let mut guard = assembler.lock().unwrap_or_else(|e| e.into_inner());
        let (assembler, done) = &mut *guard;
        assembler.push(packet, Instant::now(), done);
        for frame in done.drain(..) {
            hub.publish(frame);
        }
    })
}

/// Hands the appsink's Opus packets to the audio hub. Runs on the streaming thread; holds
/// the hub weakly, as [`video_sink`] does.
fn audio_sink(hub: Weak<AudioHub>) -> PacketSink {
    Arc::new(move |raw| match (parse(&raw), hub.upgrade()) {
        (Ok(packet), Some(hub)) => hub.publish(Arc::new(packet)),
        (Ok(_), None) => {}
        (Err(e), _) => tracing::debug!("pipeline produced a non-RTP audio buffer: {e}"),
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
    let state_dir = state_dir::choose(
        config.state_dir.as_deref(),
        &state_dir::Environment::of_process(),
    );
    let admin = admin_token::resolve(tokens.admin, &state_dir).map_err(DaemonError::Config)?;
    match &admin.origin {
        admin_token::Origin::Configured => {}
        admin_token::Origin::Kept(path) | admin_token::Origin::Generated(path) => {
            tracing::debug!("admin token kept in {}", path.display());
        }
        admin_token::Origin::Ephemeral(why) => {
            tracing::warn!("admin token only for this run: {why}");
        }
    }
    let access = Access::new(tokens.viewers, admin.token.clone());
    // Everything that can fail on the spot is tried before the camera starts.
    let https = match config.tls.listen {
        Some(addr) => {
            let certificate = tls::load(&config.tls).map_err(DaemonError::Config)?;
            tracing::info!(
                "HTTPS certificate SHA-256 fingerprint: {}",
                certificate.fingerprint
            );
            Some((bind(addr).await?, TlsAcceptor::from(certificate.config)))
        }
        None => None,
    };
    let http_listener = bind(config.listen).await?;
    let local_addr = http_listener.local_addr().unwrap_or(config.listen);
    let resolved = presets::resolve(&config.media)?;
    // Without an encoder of ours (RTP in, a camera that encodes itself) nothing can make a
    // keyframe on request: new viewers start from the frames since the last one instead.
    let join_start = if resolved.encoder.is_some() {
        JoinStart::Keyframe
    } else {
        tracing::info!("no encoder to ask for keyframes: new viewers start on the cached GOP");
        JoinStart::CachedGop
    };
    let (hub, keyframe_events) = FanoutHub::new(config.viewer_queue_frames, join_start);
    let audio_hub = AudioHub::new();
    let sinks = MediaSinks {
        video: video_sink(Arc::downgrade(&hub)),
        audio: audio_sink(Arc::downgrade(&audio_hub)),
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

    let registry = SessionRegistry::start(hubs.clone(), config.connect_timeout, &config.peer)
        .map_err(DaemonError::Egress)?;
    let publishers = Publishers::start(&config.publish, &hubs, pipeline.has_audio(), &config.peer);
    let recordings = match &config.record.dir {
        Some(dir) => dir.clone(),
        None => state_dir.join(crate::record::DEFAULT_SUBDIR),
    };
    let recorder = Recorder::start(
        &config.record,
        recordings,
        &config.title,
        &hubs,
        pipeline.has_audio(),
    );
    let hubs_for_systemd = Arc::clone(&hubs.video);
    let (summary, summary_task) =
        crate::http::events::start_summary(registry.clone(), Arc::clone(&hubs.video));
    let state = AppState {
        registry: registry.clone(),
        hubs,
        pipeline: Arc::new(pipeline.clone()),
        peer_settings: Arc::new(config.peer.clone()),
        title: Arc::from(config.title.as_str()),
        access: Arc::new(access),
        admission: Arc::new(Admission::new(config.limits.clone())),
        keyframe_requests_sent,
        started: Instant::now(),
        summary,
        publishers: publishers.clone(),
        recorder: recorder.clone(),
    };
    let app = router(state);
    let connection_limits = ConnectionLimits {
        header_timeout: config.limits.header_timeout,
        max_connections: config.limits.max_connections,
    };
    let mut servers = Vec::new();
    let mut tls_addr = None;
    if let Some((listener, acceptor)) = https {
        tls_addr = listener.local_addr().ok();
        servers.push(spawn_server(
            listener,
            app.clone(),
            Some(acceptor),
            connection_limits,
        ));
    }
    let plain = match (tls_addr, config.tls.redirect_http) {
        (Some(https), true) => redirect::router(https.port()),
        _ => app,
    };
    servers.push(spawn_server(http_listener, plain, None, connection_limits));
    tracing::info!(%local_addr, "serving viewers");
    if let Some(https) = tls_addr {
        tracing::info!(%https, "serving viewers over HTTPS");
    }
    let notifier = tokio::spawn(crate::systemd::supervise(
        Arc::clone(&hubs_for_systemd),
        pipeline.clone(),
    ));
    Ok(RunningDaemon {
        local_addr,
        tls_addr,
        pipeline,
        registry,
        admin,
        servers,
        notifier,
        summary: summary_task,
        video_hub: Arc::downgrade(&hubs_for_systemd),
        publishers,
        recorder,
    })
}

impl RunningDaemon {
    /// The video hub, weakly: it is gone once the daemon has stopped and released it.
    pub fn video_hub(&self) -> Weak<FanoutHub> {
        Weak::clone(&self.video_hub)
    }

    /// Says goodbye to viewers, stops HTTP and the pipeline; bounded by a few seconds.
    pub async fn shutdown(mut self) {
        self.notifier.abort();
        self.summary.abort();
        crate::systemd::stopping();
        let (_, (), ()) = tokio::join!(
            self.registry.close_all(VIEWER_CLOSE_DEADLINE),
            self.publishers.stop(VIEWER_CLOSE_DEADLINE),
            self.recorder
                .stop(VIEWER_CLOSE_DEADLINE + Duration::from_secs(2))
        );
        for (stop, _) in &mut self.servers {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
        }
        // Open keep-alive connections must not hold the shutdown hostage.
        for (_, server) in self.servers {
            let _ = tokio::time::timeout(Duration::from_millis(1500), server).await;
        }
        self.pipeline.stop().await;
    }
}
