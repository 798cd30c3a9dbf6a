//! One viewer as the HTTP side sees it: its id, ETag and status, and its handle in the egress
//! loop that sends it media.

use crate::config::secrets::Credential;
use crate::egress::demux::ViewerKey;
use crate::egress::worker::{EgressLoop, EndReason};
use crate::webrtc::connection::Connection;
use crate::webrtc::feedback;
use crate::webrtc::offer::OfferSummary;
use crate::webrtc::sdpfrag::SdpFrag;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, oneshot};

/// A viewer that has not connected by then is given up and forgotten.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the loop may take to let a closed viewer go before we stop waiting for it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Our side failed (a server fault), whatever the viewer sent.
    #[error("could not set up a connection: {0}")]
    Setup(String),
    #[error("the offer could not be answered: {0}")]
    Negotiation(String),
    #[error("the viewer's H.264 offer was not accepted by the WebRTC stack")]
    NoCodec,
    #[error("bad ICE candidate: {0}")]
    Candidate(String),
}

/// The viewer's side of the session, for status.
#[derive(Debug, Default)]
pub struct ViewerStats {
    pub packets_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    pub keyframe_requests: AtomicU64,
    /// Packets the viewer asked for again (NACK).
    pub nacked_packets: AtomicU64,
    pub send_errors: AtomicU64,
    pub audio_packets_sent: AtomicU64,
    pub(crate) audio_dropped: Mutex<Option<Arc<AtomicU64>>>,
    pub(crate) frames_dropped: Mutex<Option<Arc<AtomicU64>>>,
    pub(crate) state: Mutex<Connection>,
    pub(crate) first_frame_after: Mutex<Option<Duration>>,
    /// Loss fraction (0..=255 of 256) and jitter (RTP units) from the last receiver report.
    pub(crate) last_report: Mutex<Option<(u8, u32)>>,
    /// The ICE candidate pair in use, e.g. `host -> prflx (udp)`.
    pub(crate) candidate_pair: Mutex<Option<String>>,
}

impl ViewerStats {
    /// Counts what the viewer's RTCP said; true when it asked for a keyframe.
    pub(crate) fn record(&self, feedback: &feedback::Feedback) -> bool {
        self.nacked_packets
            .fetch_add(feedback.nacked_packets, Ordering::Relaxed);
        if let Some(report) = feedback.report {
            *self.last_report.lock().unwrap() = Some(report);
        }
        if feedback.wants_keyframe {
            self.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        }
        feedback.wants_keyframe
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerStatus {
    pub id: String,
    pub remote: Option<String>,
    pub state: &'static str,
    pub joined_unix_ms: u128,
    pub connected_for_s: f64,
    pub first_frame_ms: Option<u128>,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub keyframe_requests: u64,
    /// Packets the viewer asked for again (NACK), and whether they go back on RTX.
    pub nacked_packets: u64,
    pub rtx: bool,
    pub fraction_lost: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub video: bool,
    pub audio: bool,
    /// Local and remote candidate types of the ICE pair in use (host, srflx, prflx, relay).
    pub candidate_pair: Option<String>,
    pub audio_packets_sent: u64,
    pub audio_packets_dropped: u64,
}

/// A negotiated viewer, shared by the registry and the HTTP handlers. Its media is the
/// egress loop's; the session is its handle there.
pub struct ViewerSession {
    pub id: String,
    /// Changes when the session's ICE restarts (RFC 9725 §4.4).
    etag: Mutex<String>,
    pub remote: Option<SocketAddr>,
    joined: Instant,
    joined_wall: SystemTime,
    egress: EgressLoop,
    key: ViewerKey,
    /// The viewer's ICE username fragment, to tell a trickle PATCH from a restart.
    remote_ufrag: Mutex<Option<String>>,
    stats: Arc<ViewerStats>,
    close: Notify,
    has_video: bool,
    has_audio: bool,
    /// Resends go on an RTX stream (the offer had RTX for H.264).
    rtx: bool,
    /// What the creating request showed; later requests on the session must show the same.
    pub credential: Credential,
}

/// What the session's task waits on: resolves when the loop has let the viewer go.
pub struct ViewerStream(oneshot::Receiver<EndReason>);

fn new_etag() -> String {
    format!("\"{}\"", random_token())
}

fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl ViewerSession {
    /// Answers the viewer's offer in the egress loop. Returns the session, its stream half
    /// and the SDP answer.
    pub async fn negotiate(
        egress: &EgressLoop,
        offer: String,
        wanted: &OfferSummary,
        remote: Option<SocketAddr>,
        credential: Credential,
    ) -> Result<(Arc<ViewerSession>, ViewerStream, String), SessionError> {
        let stats = Arc::new(ViewerStats::default());
        let joined = egress
            .join(offer, wanted.clone(), Arc::clone(&stats), remote)
            .await?;
        let session = Arc::new(ViewerSession {
            id: random_token(),
            etag: Mutex::new(new_etag()),
            remote,
            joined: Instant::now(),
            joined_wall: SystemTime::now(),
            egress: egress.clone(),
            key: joined.key,
            remote_ufrag: Mutex::new(joined.remote_ufrag),
            stats,
            close: Notify::new(),
            has_video: joined.has_video,
            has_audio: joined.has_audio,
            rtx: joined.rtx,
            credential,
        });
        Ok((session, ViewerStream(joined.ended), joined.answer))
    }

    /// Adds candidates the viewer found after its offer (trickle ICE).
    pub fn etag(&self) -> String {
        self.etag.lock().unwrap().clone()
    }

    /// Adds candidates the viewer found after its offer (trickle ICE).
    pub async fn add_candidates(&self, frag: &SdpFrag) -> Result<(), SessionError> {
        self.egress.add_candidates(self.key, frag.clone()).await
    }

    /// Restarts ICE with the viewer's new credentials (RFC 9725 §4.4) and returns our new
    /// credentials and candidates as an SDP fragment; the session's ETag changes.
    pub async fn restart_ice(&self, frag: &SdpFrag) -> Result<String, SessionError> {
        let fragment = self.egress.restart_ice(self.key, frag.clone()).await?;
        *self.remote_ufrag.lock().unwrap() = frag.ice_ufrag.clone();
        *self.etag.lock().unwrap() = new_etag();
        tracing::info!(viewer = %self.id, "ICE restarted");
        Ok(fragment)
    }

    /// The ICE username fragment the viewer offered, to tell trickle from restart.
    pub fn remote_ice_ufrag(&self) -> Option<String> {
        self.remote_ufrag.lock().unwrap().clone()
    }

    /// Asks the session's task to end; the loop lets the viewer go.
    pub fn close(&self) {
        self.close.notify_one();
    }

    pub fn status(&self) -> ViewerStatus {
        let stats = &self.stats;
        let dropped = stats
            .frames_dropped
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |d| d.load(Ordering::Relaxed));
        let report = *stats.last_report.lock().unwrap();
        ViewerStatus {
            id: self.id.clone(),
            remote: self.remote.map(|a| a.to_string()),
            state: stats.state.lock().unwrap().as_str(),
            joined_unix_ms: self
                .joined_wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            connected_for_s: self.joined.elapsed().as_secs_f64(),
            first_frame_ms: stats
                .first_frame_after
                .lock()
                .unwrap()
                .map(|d| d.as_millis()),
            packets_sent: stats.packets_sent.load(Ordering::Relaxed),
            bytes_sent: stats.bytes_sent.load(Ordering::Relaxed),
            frames_sent: stats.frames_sent.load(Ordering::Relaxed),
            frames_dropped: dropped,
            keyframe_requests: stats.keyframe_requests.load(Ordering::Relaxed),
            nacked_packets: stats.nacked_packets.load(Ordering::Relaxed),
            rtx: self.rtx,
            fraction_lost: report.map(|(lost, _)| lost as f64 / 256.0),
            jitter_ms: report.map(|(_, jitter)| jitter as f64 / 90.0),
            video: self.has_video,
            audio: self.has_audio,
            candidate_pair: stats.candidate_pair.lock().unwrap().clone(),
            audio_packets_sent: stats.audio_packets_sent.load(Ordering::Relaxed),
            audio_packets_dropped: stats
                .audio_dropped
                .lock()
                .unwrap()
                .as_ref()
                .map_or(0, |d| d.load(Ordering::Relaxed)),
        }
    }

    pub fn is_connecting(&self) -> bool {
        *self.stats.state.lock().unwrap() == Connection::Connecting
    }

    /// The session's life: until the loop lets the viewer go (it left, failed or never
    /// connected) or the session is closed, which asks the loop to let it go.
    pub async fn run(self: Arc<Self>, stream: ViewerStream) {
        let mut ended = stream.0;
        let reason = tokio::select! {
            reason = &mut ended => reason.unwrap_or("the egress loop stopped"),
            _ = self.close.notified() => {
                self.egress.leave(self.key);
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut ended).await;
                "closed by request"
            }
        };
        tracing::info!(viewer = %self.id, remote = ?self.remote, reason, "viewer left");
    }
}
