//! One viewer as a plain state machine over the sans-IO `rtc` PeerConnection: datagrams,
//! timer ticks, frames and HTTP commands go in; datagrams, events and the next deadline come
//! out. No sockets, no tasks, no clock of its own: the egress loop (`worker.rs`) owns those.

use crate::egress::candidates::LocalCandidate;
use crate::egress::send_side::SendSide;
use crate::egress::transport;
use crate::fanout::Queued;
use crate::fanout::audio::AudioPacket;
use crate::media::rtp::RtpRewriter;
use crate::media::rtp_timeline::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
use crate::webrtc::api::{self, PeerSettings};
pub use crate::webrtc::connection::Connection;
use crate::webrtc::feedback::{self, Feedback};
use crate::webrtc::offer::OfferSummary;
use crate::webrtc::sdpfrag::{self, SdpFrag};
use crate::webrtc::session::SessionError;
use bytes::BytesMut;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportProtocol};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// Where the viewer's one interceptor sits: the chain has no other, so any slot would do.
const SEND_SIDE_SLOT: usize = 4_000;

/// What a viewer's connection tells the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    /// The connection state changed.
    State(Connection),
    /// The viewer's RTCP: keyframe requests, NACK counts, loss and jitter.
    Feedback(Feedback),
}

/// A datagram to send: from which of the loop's sockets, to where.
#[derive(Debug)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Over an ICE-TCP connection rather than a UDP socket.
    pub tcp: bool,
    pub bytes: BytesMut,
}

/// One media track sent to the viewer.
struct Track {
    sender: RTCRtpSenderId,
    rewriter: RtpRewriter,
}

/// What became of a frame or sound packet handed to the connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub packets: u64,
    pub bytes: u64,
    /// Packets the stack refused (the connection is not up, or is closing).
    pub refused: u64,
}

impl std::ops::AddAssign for Sent {
    fn add_assign(&mut self, other: Sent) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.refused += other.refused;
    }
}

pub struct ViewerPeer {
    pc: RTCPeerConnection,
    /// Our ICE username fragment: the first half of the USERNAME in every check sent to us.
    ufrag: String,
    /// The viewer's ICE username fragment, to tell a trickle PATCH from a restart.
    remote_ufrag: Option<String>,
    video: Option<Track>,
    audio: Option<Track>,
    /// Resends go on an RTX stream (the offer had RTX for H.264).
    rtx: bool,
    connection: Connection,
    events: VecDeque<PeerEvent>,
    /// The connection's next deadline as last asked, kept while only media has gone in since:
    /// asking walks every layer of the connection, and a frame moves no timer but the first
    /// sender report's.
    deadline: Option<Option<Instant>>,
    /// Media has gone in (and with it the sender reports' timer).
    media_started: bool,
}

impl ViewerPeer {
    /// Answers the viewer's offer with `candidates` (the loop's sockets, gathered once).
    /// Returns the viewer and the complete SDP answer: WHEP has no way to trickle ours.
    pub fn answer(
        now: Instant,
        settings: &PeerSettings,
        offer: String,
        wanted: &OfferSummary,
        candidates: &[LocalCandidate],
        certificate: &RTCCertificate,
    ) -> Result<(ViewerPeer, String), SessionError> {
        // ICE credentials are the stack's own (random, and new ones on a restart).
        let setting_engine = SettingEngineBuilder::new()
            // Browsers' `.local` names are not resolved: their checks reach us anyway and show
            // up as peer-reflexive, and no multicast query leaves the device.
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            // The DTLS client (RFC 5763's "active"): our handshake ends when the viewer's
            // has, so no media leaves before the viewer can decrypt it.
            .with_answering_dtls_role(RTCDtlsRole::Client)
            .with_ice_timeouts(
                Some(settings.ice_disconnected_timeout),
                Some(settings.ice_failed_timeout),
                None,
            )
            .build();
        let media_engine = api::media_engine().map_err(setup)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_certificates(vec![certificate.clone()])
                    .build(),
            )
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(Registry::new().with(
                Slot::from(SEND_SIDE_SLOT),
                SendSide::new(now, SystemTime::now()),
            ))
            .build(now)
            .map_err(setup)?;
        let offer = RTCSessionDescription::offer(offer).map_err(negotiation)?;
        pc.set_remote_description(now, offer).map_err(negotiation)?;
        // One stream id for both tracks: browsers align sound and picture within a stream.
        let stream_id = format!("fieldcast-{:032x}", rand::random::<u128>());
        let video = if wanted.video() {
            Some(add_track(&mut pc, &stream_id, RtpCodecKind::Video)?)
        } else {
            None
        };
        let audio = if wanted.audio {
            Some(add_track(&mut pc, &stream_id, RtpCodecKind::Audio)?)
        } else {
            None
        };
        // A section we have nothing for (sound when the stream has none) is answered
        // inactive, not with a promise of media that never comes.
        let transceivers: Vec<_> = pc.get_transceivers().collect();
        for id in transceivers {
            if let Some(mut transceiver) = pc.rtp_transceiver(id)
                && transceiver.sender().is_none()
            {
                transceiver.set_direction(RTCRtpTransceiverDirection::Inactive);
            }
        }
        for candidate in candidates {
            let init = candidate.to_init().map_err(setup)?;
            pc.add_local_candidate(init).map_err(setup)?;
        }
        let answer = pc.create_answer(None).map_err(setup)?;
        pc.set_local_description(now, answer).map_err(setup)?;
        let video = video
            .map(|(sender, ssrc)| negotiated(&mut pc, sender, ssrc, VIDEO_CLOCK_RATE))
            .transpose()?;
        let audio = audio
            .map(|(sender, ssrc)| negotiated(&mut pc, sender, ssrc, AUDIO_CLOCK_RATE))
            .transpose()?;
        let rtx = video.as_ref().is_some_and(|(_, rtx)| *rtx);
        let answer = pc
            .local_description()
            .ok_or_else(|| SessionError::Setup("no local description".to_owned()))?
            .sdp;
        let ufrag = ice_ufrag(&answer)
            .ok_or_else(|| SessionError::Setup("the answer has no ICE credentials".to_owned()))?;
        let remote_ufrag = pc
            .remote_description()
            .and_then(|offer| ice_ufrag(&offer.sdp));
        let peer = ViewerPeer {
            pc,
            ufrag,
            remote_ufrag,
            video: video.map(|(track, _)| track),
            audio: audio.map(|(track, _)| track),
            rtx,
            connection: Connection::Connecting,
            events: VecDeque::new(),
            deadline: None,
            media_started: false,
        };
        Ok((peer, answer))
    }

    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    pub fn remote_ufrag(&self) -> Option<&str> {
        self.remote_ufrag.as_deref()
    }

    #[cfg(test)]
    pub fn connection(&self) -> Connection {
        self.connection
    }

    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    pub fn rtx(&self) -> bool {
        self.rtx
    }

    /// A datagram from the viewer, received on the loop's socket at `local`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: BytesMut,
    ) {
        self.handle_read(now, local, remote, TransportProtocol::UDP, bytes);
    }

    /// A packet from an ICE-TCP connection; `local` is the address the viewer connected to.
    pub fn handle_tcp_frame(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: BytesMut,
    ) {
        self.handle_read(now, local, remote, TransportProtocol::TCP, bytes);
    }

    fn handle_read(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        protocol: TransportProtocol,
        bytes: BytesMut,
    ) {
        let message = TaggedBytesMut {
            now,
            transport: transport(local, remote, protocol),
            message: bytes,
        };
        if let Err(e) = self.pc.handle_read(message) {
            tracing::trace!("datagram from {remote} not taken: {e}");
        }
        self.deadline = None;
        self.collect();
    }

    /// Runs the connection's timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.pc.handle_timeout(now) {
            tracing::trace!("timer: {e}");
        }
        self.deadline = None;
        self.collect();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.connection.is_over() {
            return None;
        }
        *self.deadline.get_or_insert_with(|| self.pc.poll_timeout())
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let message = self.pc.poll_write()?;
        Some(Transmit {
            local: message.transport.local_addr,
            remote: message.transport.peer_addr,
            tcp: message.transport.transport_protocol == TransportProtocol::TCP,
            bytes: message.message,
        })
    }

    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// A frame's packets, rewritten as this viewer's (payload type, SSRC, sequence numbers,
    /// timestamps), into the connection. Their datagrams come out of
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn send_frame(&mut self, now: Instant, queued: &Queued) -> Sent {
        let mut sent = Sent::default();
        let Some(track) = self.video.as_mut() else {
            return sent;
        };
        for packet in &queued.frame.packets {
            let packet = match queued.replay_timestamp {
                Some(timestamp) => track.rewriter.rewrite_replayed(packet, timestamp),
                None => track.rewriter.rewrite(packet, queued.frame.arrival),
            };
            let size = packet.payload.len() as u64;
            let written = self
                .pc
                .rtp_sender(track.sender)
                .is_some_and(|mut sender| sender.write_rtp(now, packet).is_ok());
            if written {
                sent.packets += 1;
                sent.bytes += size;
            } else {
                sent.refused += 1;
            }
        }
        self.after_media(sent);
        sent
    }

    /// One sound packet into the connection.
    pub fn send_audio(&mut self, now: Instant, packet: &AudioPacket) -> Sent {
        let mut sent = Sent::default();
        let Some(track) = self.audio.as_mut() else {
            return sent;
        };
        // Opus packets carry no arrival time; their queue holds at most half a second.
        let packet = track.rewriter.rewrite(packet, now);
        let size = packet.payload.len() as u64;
        let written = self
            .pc
            .rtp_sender(track.sender)
            .is_some_and(|mut sender| sender.write_rtp(now, packet).is_ok());
        if written {
            sent.packets = 1;
            sent.bytes = size;
        } else {
            sent.refused = 1;
        }
        self.after_media(sent);
        sent
    }

    /// The first media arms the sender reports' timer: the deadline is asked again.
    fn after_media(&mut self, sent: Sent) {
        if sent.packets > 0 && !self.media_started {
            self.media_started = true;
            self.deadline = None;
        }
    }

    /// Candidates the viewer found after its offer (trickle ICE). mDNS names are skipped:
    /// the viewer's checks reach us from that address anyway.
    pub fn add_remote_candidates(&mut self, frag: &SdpFrag) -> Result<(), SessionError> {
        for candidate in &frag.candidates {
            if sdpfrag::is_mdns_candidate(&candidate.candidate) {
                continue;
            }
            let init = RTCIceCandidateInit {
                candidate: candidate.candidate.clone(),
                sdp_mid: candidate.mid.clone(),
                username_fragment: frag.ice_ufrag.clone(),
                ..Default::default()
            };
            self.pc
                .add_remote_candidate(init)
                .map_err(|e| SessionError::Candidate(e.to_string()))?;
            self.deadline = None;
        }
        Ok(())
    }

    /// Restarts ICE with the viewer's new credentials (RFC 9725 §4.4): returns our new
    /// credentials and candidates as an SDP fragment, and our new username fragment.
    pub fn restart_ice(
        &mut self,
        now: Instant,
        frag: &SdpFrag,
        candidates: &[LocalCandidate],
    ) -> Result<String, SessionError> {
        let (Some(ufrag), Some(pwd)) = (&frag.ice_ufrag, &frag.ice_pwd) else {
            return Err(SessionError::Candidate(
                "an ICE restart needs both a=ice-ufrag and a=ice-pwd".to_owned(),
            ));
        };
        let previous = self
            .pc
            .remote_description()
            .ok_or_else(|| SessionError::Negotiation("no offer to restart from".to_owned()))?
            .sdp
            .clone();
        let offer = sdpfrag::restart_offer(&previous, ufrag, pwd);
        let offer = RTCSessionDescription::offer(offer).map_err(negotiation)?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(negotiation)?;
        for candidate in candidates {
            // Already known from before the restart: the error says so and changes nothing.
            if let Ok(init) = candidate.to_init() {
                let _ = self.pc.add_local_candidate(init);
            }
        }
        let answer = self.pc.create_answer(None).map_err(setup)?;
        self.pc.set_local_description(now, answer).map_err(setup)?;
        let local = self
            .pc
            .local_description()
            .ok_or_else(|| SessionError::Setup("no answer".to_owned()))?
            .sdp;
        if let Some(ours) = ice_ufrag(&local) {
            self.ufrag = ours;
        }
        self.remote_ufrag = Some(ufrag.clone());
        self.deadline = None;
        self.add_remote_candidates(frag)?;
        self.collect();
        Ok(sdpfrag::answer_fragment(&local))
    }

    /// The ICE candidate pair in use, as `local -> remote (protocol)` candidate types.
    pub fn candidate_pair(&mut self) -> Option<String> {
        let sender = self.video.as_ref().or(self.audio.as_ref())?.sender;
        let sender = self.pc.rtp_sender(sender)?;
        let pair = sender
            .transport()?
            .ice_transport()
            .get_selected_candidate_pair()?;
        Some(format!(
            "{} -> {} ({})",
            pair.local().typ,
            pair.remote().typ,
            pair.local().protocol
        ))
    }

    /// Ends the connection (DTLS close alert to the viewer where it is up).
    pub fn close(&mut self) {
        if let Err(e) = self.pc.close() {
            tracing::trace!("close: {e}");
        }
        self.deadline = None;
        self.set_connection(Connection::Closed);
    }

    /// Turns what the connection produced into events: state changes and viewer RTCP.
    fn collect(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                let connection = match state {
                    RTCPeerConnectionState::Connected => Connection::Connected,
                    RTCPeerConnectionState::Disconnected => Connection::Disconnected,
                    RTCPeerConnectionState::Failed => Connection::Failed,
                    RTCPeerConnectionState::Closed => Connection::Closed,
                    _ => continue,
                };
                self.set_connection(connection);
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = message {
                let feedback = feedback::read(&packets);
                if feedback != Feedback::default() {
                    self.events.push_back(PeerEvent::Feedback(feedback));
                }
            }
        }
    }

    fn set_connection(&mut self, connection: Connection) {
        if self.connection != connection && !self.connection.is_over() {
            self.connection = connection;
            self.events.push_back(PeerEvent::State(connection));
        }
    }
}

/// Adds a send track; returns its sender and media SSRC.
fn add_track(
    pc: &mut RTCPeerConnection,
    stream_id: &str,
    kind: RtpCodecKind,
) -> Result<(RTCRtpSenderId, u32), SessionError> {
    let (track, ssrc) = api::send_track(stream_id, kind);
    let sender = pc.add_track(track).map_err(setup)?;
    Ok((sender, ssrc))
}

/// The track with the payload type the viewer's offer chose, and whether RTX was agreed.
fn negotiated(
    pc: &mut RTCPeerConnection,
    sender: RTCRtpSenderId,
    ssrc: u32,
    clock_rate: u32,
) -> Result<(Track, bool), SessionError> {
    let mut rtp_sender = pc
        .rtp_sender(sender)
        .ok_or_else(|| SessionError::Setup("the sender is gone".to_owned()))?;
    let codecs = &rtp_sender.get_parameters().rtp_parameters.codecs;
    let payload_type = codecs
        .iter()
        .find(|codec| !api::is_rtx(&codec.rtp_codec))
        .map(|codec| codec.payload_type)
        .ok_or(SessionError::NoCodec)?;
    let rtx = codecs.iter().any(|codec| api::is_rtx(&codec.rtp_codec));
    let track = Track {
        sender,
        rewriter: RtpRewriter::new(
            ssrc,
            payload_type,
            rand::random::<u16>(),
            rand::random::<u32>(),
            clock_rate,
        ),
    };
    Ok((track, rtx))
}

/// The first `a=ice-ufrag:` of a description.
pub fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

/// The viewer's description was refused: the client's fault (400).
fn negotiation(e: rtc::shared::error::Error) -> SessionError {
    SessionError::Negotiation(e.to_string())
}

/// A step that only our side takes failed: a server fault (500).
fn setup(e: impl std::fmt::Display) -> SessionError {
    SessionError::Setup(e.to_string())
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
