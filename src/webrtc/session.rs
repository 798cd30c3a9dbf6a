//! One viewer: its PeerConnection, its queue on the hub, and the task that turns shared
//! frames into its own RTP stream and reads its RTCP.

use crate::config::secrets::Credential;
use crate::egress::demux::ViewerKey;
use crate::egress::worker::{EgressLoop, EndReason};
use crate::fanout::audio::{AudioPacket, AudioQueue};
use crate::fanout::{FanoutHub, Hubs, Queued, ViewerQueue};
use crate::webrtc::api::{PeerSettings, build_peer};
use crate::webrtc::connection::Connection;
use crate::webrtc::feedback;
use crate::webrtc::frame_batch::Outbox;
use crate::webrtc::offer::OfferSummary;
use crate::webrtc::outbound::{Outbound, add_track, poll_rtcp};
use crate::webrtc::sdpfrag::SdpFrag;
use crate::webrtc::totals::Totals;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, oneshot, watch};
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RTCRtpTransceiverDirection;

/// A viewer that has not connected by then is given up and forgotten.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for our own ICE candidates before answering with those gathered so far.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long closing a PeerConnection may take before we stop waiting for it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a frame waits for the connection to take the packets before it; past that they
/// are dropped.
const OUTBOX_WAIT: Duration = Duration::from_secs(1);

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

/// A negotiated viewer, shared by the registry and the HTTP handlers.
pub struct ViewerSession {
    pub id: String,
    /// Changes when the session's ICE restarts (RFC 9725 §4.4).
    etag: Mutex<String>,
    pub remote: Option<SocketAddr>,
    joined: Instant,
    joined_wall: SystemTime,
    link: Link,
    stats: Arc<ViewerStats>,
    close: Notify,
    has_video: bool,
    has_audio: bool,
    /// Resends go on an RTX stream (the offer had RTX for H.264).
    rtx: bool,
    /// What the creating request showed; later requests on the session must show the same.
    pub credential: Credential,
}

/// How the session reaches its viewer.
enum Link {
    /// A PeerConnection of its own, driven by webrtc-rs's tasks.
    Peer(Arc<dyn PeerConnection>),
    /// A viewer in the egress loop.
    Loop {
        egress: EgressLoop,
        key: ViewerKey,
        /// The viewer's ICE username fragment, to tell a trickle PATCH from a restart.
        remote_ufrag: Mutex<Option<String>>,
    },
}

/// What the session's task needs besides the shared part.
pub struct ViewerStream(Stream);

enum Stream {
    Peer {
        video: Option<Outbound>,
        audio: Option<Outbound>,
        events: watch::Receiver<PeerEvents>,
    },
    /// Resolves when the loop has let the viewer go.
    Loop(oneshot::Receiver<EndReason>),
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct PeerEvents {
    pub(crate) state: Option<RTCPeerConnectionState>,
    pub(crate) gathering_complete: bool,
}

/// Forwards PeerConnection events into a watch channel the session task reads.
pub(crate) struct EventForwarder(pub(crate) watch::Sender<PeerEvents>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EventForwarder {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.0.send_modify(|events| events.state = Some(state));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.0
                .send_modify(|events| events.gathering_complete = true);
        }
    }
}

fn new_etag() -> String {
    format!("\"{}\"", random_token())
}

fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl ViewerSession {
    /// Answers the viewer's offer. Returns the session, its stream half and the SDP answer.
    pub async fn negotiate(
        settings: &PeerSettings,
        egress: Option<&EgressLoop>,
        offer: String,
        wanted: &OfferSummary,
        remote: Option<SocketAddr>,
        credential: Credential,
    ) -> Result<(Arc<ViewerSession>, ViewerStream, String), SessionError> {
        if let Some(egress) = egress {
            return Self::join_loop(egress, offer, wanted, remote, credential).await;
        }
        let (events_tx, mut events) = watch::channel(PeerEvents::default());
        let outbox = Arc::new(Outbox::default());
        let peer = build_peer(
            settings,
            Arc::new(EventForwarder(events_tx)),
            Arc::clone(&outbox),
        )
        .await
        .map_err(|e| SessionError::Setup(e.to_string()))?;
        let result = Self::answer(&peer, settings, offer, wanted, &mut events, outbox).await;
        let (video, audio, answer) = match result {
            Ok(parts) => parts,
            Err(e) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, peer.close()).await;
                return Err(e);
            }
        };
        let session = Arc::new(ViewerSession {
            id: random_token(),
            etag: Mutex::new(new_etag()),
            remote,
            joined: Instant::now(),
            joined_wall: SystemTime::now(),
            link: Link::Peer(peer),
            stats: Arc::default(),
            close: Notify::new(),
            has_video: video.is_some(),
            has_audio: audio.is_some(),
            rtx: video.as_ref().is_some_and(|video| video.rtx),
            credential,
        });
        *session.stats.state.lock().unwrap() = Connection::Connecting;
        let stream = ViewerStream(Stream::Peer {
            video,
            audio,
            events,
        });
        Ok((session, stream, answer))
    }

    /// Answers the viewer's offer in the egress loop.
    async fn join_loop(
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
            link: Link::Loop {
                egress: egress.clone(),
                key: joined.key,
                remote_ufrag: Mutex::new(joined.remote_ufrag),
            },
            stats,
            close: Notify::new(),
            has_video: joined.has_video,
            has_audio: joined.has_audio,
            rtx: joined.rtx,
            credential,
        });
        Ok((
            session,
            ViewerStream(Stream::Loop(joined.ended)),
            joined.answer,
        ))
    }

    /// The session's PeerConnection, on the path that has one.
    fn peer(&self) -> Result<&Arc<dyn PeerConnection>, SessionError> {
        match &self.link {
            Link::Peer(peer) => Ok(peer),
            Link::Loop { .. } => Err(SessionError::Setup(
                "no PeerConnection of its own".to_owned(),
            )),
        }
    }

    async fn answer(
        peer: &Arc<dyn PeerConnection>,
        settings: &PeerSettings,
        offer: String,
        wanted: &OfferSummary,
        events: &mut watch::Receiver<PeerEvents>,
        outbox: Arc<Outbox>,
    ) -> Result<(Option<Outbound>, Option<Outbound>, String), SessionError> {
        // One stream id for both tracks: browsers align sound and picture within a stream.
        let stream_id = format!("fieldcast-{}", random_token());
        let mut video = None;
        if wanted.video() {
            video = Some(add_track(peer, &stream_id, RtpCodecKind::Video).await?);
        }
        let mut audio = None;
        if wanted.audio {
            audio = Some(add_track(peer, &stream_id, RtpCodecKind::Audio).await?);
        }
        let offer = RTCSessionDescription::offer(offer).map_err(negotiation)?;
        peer.set_remote_description(offer)
            .await
            .map_err(negotiation)?;
        // A section we have nothing for (sound when the stream has none) is answered
        // inactive, not with a promise of media that never comes.
        for transceiver in peer.get_transceivers().await {
            if matches!(transceiver.sender().await, Ok(None)) {
                transceiver
                    .set_direction(RTCRtpTransceiverDirection::Inactive)
                    .await
                    .map_err(setup)?;
            }
        }
        let answer = peer.create_answer(None).await.map_err(setup)?;
        peer.set_local_description(answer).await.map_err(setup)?;
        let video = match video {
            Some(pending) => {
                outbox.set_ssrc(pending.ssrc);
                let mut video = pending.negotiated().await?;
                video.outbox = Some(outbox);
                Some(video)
            }
            None => None,
        };
        let audio = match audio {
            Some(pending) => Some(pending.negotiated().await?),
            None => None,
        };
        // Non-trickle answer (WHEP has no way to trickle ours): it must hold every candidate,
        // including the server-reflexive and relayed ones that STUN and TURN bring later.
        let _ = tokio::time::timeout(
            GATHER_TIMEOUT,
            events.wait_for(|events| events.gathering_complete),
        )
        .await;
        let wanted = expected_candidate_types(settings);
        let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
        let answer = loop {
            let answer = peer
                .local_description()
                .await
                .ok_or_else(|| SessionError::Setup("no local description".to_owned()))?;
            let missing: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|typ| !answer.sdp.contains(&format!(" typ {typ}")))
                .collect();
            if missing.is_empty() || tokio::time::Instant::now() >= deadline {
                if !missing.is_empty() {
                    tracing::warn!(
                        "answering without {} candidates: STUN/TURN did not answer within {} s",
                        missing.join(" or "),
                        GATHER_TIMEOUT.as_secs()
                    );
                }
                break answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        Ok((video, audio, answer.sdp))
    }

    /// Adds candidates the viewer found after its offer (trickle ICE).
    pub fn etag(&self) -> String {
        self.etag.lock().unwrap().clone()
    }

    /// Adds candidates the viewer found after its offer (trickle ICE). mDNS names are skipped:
    /// the viewer's checks will reach us from that address anyway.
    pub async fn add_candidates(&self, frag: &SdpFrag) -> Result<(), SessionError> {
        if let Link::Loop { egress, key, .. } = &self.link {
            return egress.add_candidates(*key, frag.clone()).await;
        }
        let peer = self.peer()?;
        for candidate in &frag.candidates {
            if crate::webrtc::sdpfrag::is_mdns_candidate(&candidate.candidate) {
                tracing::debug!(viewer = %self.id, "skipping an mDNS candidate");
                continue;
            }
            let init = RTCIceCandidateInit {
                candidate: candidate.candidate.clone(),
                sdp_mid: candidate.mid.clone(),
                username_fragment: frag.ice_ufrag.clone(),
                ..Default::default()
            };
            peer.add_ice_candidate(init)
                .await
                .map_err(|e| SessionError::Candidate(e.to_string()))?;
        }
        Ok(())
    }

    /// Restarts ICE with the viewer's new credentials (RFC 9725 §4.4) and returns our new
    /// credentials and candidates as an SDP fragment; the session's ETag changes.
    pub async fn restart_ice(&self, frag: &SdpFrag) -> Result<String, SessionError> {
        if let Link::Loop {
            egress,
            key,
            remote_ufrag,
        } = &self.link
        {
            let fragment = egress.restart_ice(*key, frag.clone()).await?;
            *remote_ufrag.lock().unwrap() = frag.ice_ufrag.clone();
            *self.etag.lock().unwrap() = new_etag();
            tracing::info!(viewer = %self.id, "ICE restarted");
            return Ok(fragment);
        }
        let peer = self.peer()?;
        let (Some(ufrag), Some(pwd)) = (&frag.ice_ufrag, &frag.ice_pwd) else {
            return Err(SessionError::Candidate(
                "an ICE restart needs both a=ice-ufrag and a=ice-pwd".to_owned(),
            ));
        };
        let previous = peer
            .remote_description()
            .await
            .ok_or_else(|| SessionError::Negotiation("no offer to restart from".to_owned()))?;
        let offer = crate::webrtc::sdpfrag::restart_offer(&previous.sdp, ufrag, pwd);
        let offer = RTCSessionDescription::offer(offer).map_err(negotiation)?;
        peer.set_remote_description(offer)
            .await
            .map_err(negotiation)?;
        let answer = peer.create_answer(None).await.map_err(setup)?;
        peer.set_local_description(answer).await.map_err(setup)?;
        // Our new candidates come with the answer, as in the first one.
        let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
        let local = loop {
            let local = peer.local_description().await;
            let gathered = local
                .as_ref()
                .is_some_and(|d| d.sdp.contains("a=candidate:"));
            if gathered || tokio::time::Instant::now() >= deadline {
                break local;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let local = local.ok_or_else(|| SessionError::Setup("no answer".to_owned()))?;
        self.add_candidates(frag).await?;
        *self.etag.lock().unwrap() = new_etag();
        tracing::info!(viewer = %self.id, "ICE restarted");
        Ok(crate::webrtc::sdpfrag::answer_fragment(&local.sdp))
    }

    /// The ICE username fragment the viewer offered, to tell trickle from restart.
    pub async fn remote_ice_ufrag(&self) -> Option<String> {
        let peer = match &self.link {
            Link::Peer(peer) => peer,
            Link::Loop { remote_ufrag, .. } => return remote_ufrag.lock().unwrap().clone(),
        };
        let description = peer.remote_description().await?;
        description
            .sdp
            .lines()
            .find_map(|line| line.trim().strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned)
    }

    /// Asks the session's task to end; it closes the PeerConnection and leaves the hub.
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

    fn set_state(&self, state: Connection) {
        *self.stats.state.lock().unwrap() = state;
    }

    /// The session's life: wait for the connection, then stream until the viewer leaves,
    /// fails, never connects, or is closed. Everything it holds is released on return.
    pub async fn run(
        self: Arc<Self>,
        stream: ViewerStream,
        hubs: Hubs,
        connect_timeout: Duration,
        totals: Arc<Totals>,
    ) {
        let (mut video, mut audio, mut events) = match (stream.0, &self.link) {
            (
                Stream::Peer {
                    video,
                    audio,
                    events,
                },
                Link::Peer(_),
            ) => (video, audio, events),
            (Stream::Loop(mut ended), Link::Loop { egress, key, .. }) => {
                let reason = tokio::select! {
                    reason = &mut ended => reason.unwrap_or("the egress loop stopped"),
                    _ = self.close.notified() => {
                        egress.leave(*key);
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut ended).await;
                        "closed by request"
                    }
                };
                tracing::info!(viewer = %self.id, remote = ?self.remote, reason, "viewer left");
                return;
            }
            _ => unreachable!("a session's stream always matches its link"),
        };
        let Link::Peer(peer) = &self.link else {
            return;
        };
        let connect_deadline = tokio::time::Instant::now() + connect_timeout;
        let mut connected = false;
        let mut frames: Option<ViewerQueue> = None;
        let mut sound: Option<AudioQueue> = None;
        let reason = loop {
            tokio::select! {
                biased;
                _ = self.close.notified() => break "closed by request",
                changed = events.changed() => {
                    if changed.is_err() {
                        break "connection gone";
                    }
                    let state = events.borrow_and_update().state;
                    match state {
                        Some(RTCPeerConnectionState::Connected) => {
                            self.set_state(Connection::Connected);
                            if !connected {
                                connected = true;
                                tracing::info!(viewer = %self.id, remote = ?self.remote, "viewer connected");
                                frames = video.is_some().then(|| self.join_video(&hubs.video));
                                if let Some(out) = video.as_ref().or(audio.as_ref()) {
                                    let pair = selected_pair(&out.sender).await;
                                    tracing::info!(viewer = %self.id, pair = pair.as_deref().unwrap_or("?"), "ICE pair");
                                    *self.stats.candidate_pair.lock().unwrap() = pair;
                                }
                                sound = audio.is_some().then(|| {
                                    let queue = hubs.audio.subscribe();
                                    *self.stats.audio_dropped.lock().unwrap() = Some(queue.dropped());
                                    queue
                                });
                            }
                        }
                        Some(RTCPeerConnectionState::Disconnected) => self.set_state(Connection::Disconnected),
                        Some(RTCPeerConnectionState::Failed) => break "connection failed",
                        Some(RTCPeerConnectionState::Closed) => break "connection closed",
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(connect_deadline), if !connected => {
                    break "never connected";
                }
                rtcp = poll_rtcp(video.as_ref()), if video.is_some() => match rtcp {
                    Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                        self.on_rtcp(&packets, &hubs.video, frames.as_mut());
                    }
                    Some(_) => {}
                    None => break "track ended",
                },
                // Sound needs no feedback acted on, but its events must not pile up.
                rtcp = poll_rtcp(audio.as_ref()), if audio.is_some() => {
                    if rtcp.is_none() {
                        break "track ended";
                    }
                }
                frame = async { frames.as_mut().unwrap().next_frame().await }, if frames.is_some() => {
                    let Some(queued) = frame else { break "left the hub" };
                    if let Some(out) = video.as_mut() {
                        self.send_frame(out, &queued, &totals).await;
                    }
                }
                packet = async { sound.as_mut().unwrap().next_packet().await }, if sound.is_some() => {
                    let Some(packet) = packet else { break "left the hub" };
                    if let Some(out) = audio.as_mut() {
                        self.send_audio(out, &packet, &totals).await;
                    }
                }
            }
        };
        self.set_state(Connection::Closed);
        drop(frames);
        drop(sound);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, peer.close()).await;
        tracing::info!(viewer = %self.id, remote = ?self.remote, reason, "viewer left");
    }

    fn join_video(&self, hub: &Arc<FanoutHub>) -> ViewerQueue {
        let queue = hub.subscribe();
        *self.stats.frames_dropped.lock().unwrap() = Some(queue.dropped());
        queue
    }

    /// Hands the frame's packets to the connection a few at a time (`frame_batch.rs`).
    async fn send_frame(&self, out: &mut Outbound, queued: &Queued, totals: &Totals) {
        let stats = &self.stats;
        let Some(delivery) = out.send_frame(queued, OUTBOX_WAIT).await else {
            return;
        };
        if delivery.stalled > 0 {
            stats
                .send_errors
                .fetch_add(delivery.stalled as u64, Ordering::Relaxed);
            tracing::debug!(viewer = %self.id, dropped = delivery.stalled, "the connection took no packets for {OUTBOX_WAIT:?}");
        }
        match delivery.failed {
            None => {
                stats
                    .packets_sent
                    .fetch_add(delivery.packets, Ordering::Relaxed);
                stats
                    .bytes_sent
                    .fetch_add(delivery.bytes, Ordering::Relaxed);
                Totals::add(&totals.video_packets, delivery.packets);
                Totals::add(&totals.bytes, delivery.bytes);
            }
            Some((e, dropped)) => {
                stats
                    .send_errors
                    .fetch_add(dropped as u64, Ordering::Relaxed);
                tracing::debug!(viewer = %self.id, dropped, "RTP not sent: {e}");
            }
        }
        if stats.frames_sent.fetch_add(1, Ordering::Relaxed) == 0 {
            *stats.first_frame_after.lock().unwrap() = Some(self.joined.elapsed());
        }
    }

    async fn send_audio(&self, out: &mut Outbound, packet: &AudioPacket, totals: &Totals) {
        // Opus packets carry no arrival time; their queue holds at most half a second.
        let packet = out.rewriter.rewrite(packet, Instant::now());
        let size = packet.payload.len() as u64;
        match out.track.write_rtp(packet).await {
            Ok(()) => {
                self.stats
                    .audio_packets_sent
                    .fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_sent.fetch_add(size, Ordering::Relaxed);
                Totals::add(&totals.audio_packets, 1);
                Totals::add(&totals.bytes, size);
            }
            Err(e) => {
                self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(viewer = %self.id, "RTP not sent: {e}");
            }
        }
    }

    fn on_rtcp(
        &self,
        packets: &[Box<dyn rtc::rtcp::Packet>],
        hub: &FanoutHub,
        frames: Option<&mut ViewerQueue>,
    ) {
        if self.stats.record(&feedback::read(packets)) {
            hub.repair(frames, Instant::now());
        }
    }
}

/// The viewer's description was refused: the client's fault (400).
fn negotiation(e: webrtc::error::Error) -> SessionError {
    SessionError::Negotiation(e.to_string())
}

/// A step that only our side takes failed: a server fault (500).
pub(crate) fn setup(e: webrtc::error::Error) -> SessionError {
    SessionError::Setup(e.to_string())
}

/// `local -> remote (protocol)` candidate types of the pair ICE selected.
async fn selected_pair(sender: &Arc<dyn webrtc::rtp_transceiver::RtpSender>) -> Option<String> {
    let dtls = sender.transport().await.ok()??;
    let pair = dtls
        .ice_transport()
        .get_selected_candidate_pair()
        .await
        .ok()??;
    Some(format!(
        "{} -> {} ({})",
        pair.local().typ,
        pair.remote().typ,
        pair.local().protocol
    ))
}

/// Candidate types the answer should carry given the ICE servers: srflx for STUN, relay for
/// TURN over UDP (the only TURN transport the server side uses).
fn expected_candidate_types(settings: &PeerSettings) -> Vec<&'static str> {
    let urls = || settings.ice_servers.iter().flat_map(|s| s.urls.iter());
    let mut types = Vec::new();
    if urls().any(|u| u.starts_with("stun:")) && !settings.relay_only {
        types.push("srflx");
    }
    if urls().any(|u| u.starts_with("turn:") && !u.contains("transport=tcp")) {
        types.push("relay");
    }
    types
}
