//! What every connection fieldcast sends on is built from: one H.264 send-only codec (with
//! RTX when the peer offers it) and Opus, the send-side interceptors (NACK answers sent
//! twice, sender reports), viewer RTCP passed up to fieldcast, and the ICE settings.

use crate::webrtc::repeat_resends::RepeatResends;
use rtc::interceptor::{
    Attribute, Interceptor, NackResponderBuilder, Packet, SenderReportBuilder, Slot, StreamInfo,
    TaggedPacket,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use webrtc::peer_connection::Registry;

/// The one stream fieldcast sends: H.264 constrained baseline, as every preset encodes it.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// Our preferred payload type; the answer uses whatever the viewer's offer chose.
const H264_PAYLOAD_TYPE: u8 = 102;
/// Retransmissions of the H.264 stream on their own SSRC (RFC 4588), when the offer has them.
const RTX_PAYLOAD_TYPE: u8 = 103;
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Where viewer RTCP is marked for the application: after every interceptor that acts on it.
const RTCP_TO_APPLICATION_SLOT: usize = 14_000;
/// Where resends are doubled: between the NACK responder (4_000) and the wire.
const REPEAT_RESENDS_SLOT: usize = 3_500;

/// A STUN or TURN server, used by fieldcast's own connections and advertised to viewers.
pub use crate::webrtc::ice_servers::IceServer;

/// Everything needed to build a viewer's PeerConnection.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSettings {
    pub ice_servers: Vec<IceServer>,
    /// Local addresses to gather host candidates on; `0.0.0.0:0` means every interface
    /// except loopback.
    pub udp_addrs: Vec<String>,
    /// How long ICE may see no traffic before the viewer counts as gone.
    pub ice_disconnected_timeout: Duration,
    pub ice_failed_timeout: Duration,
    /// Ports for media sockets, so a router can forward exactly these.
    pub port_range: Option<(u16, u16)>,
    /// Also offer passive ICE-TCP candidates, for networks that block UDP.
    pub tcp_candidates: bool,
    /// Public addresses to advertise instead of the local ones (a router forwarding ports).
    pub nat_1to1_ips: Vec<String>,
    /// Only relay (TURN) candidates: hides the device's addresses, costs a relay.
    pub relay_only: bool,
}

impl PeerSettings {
    /// These settings as one viewer gets them: TURN credentials made fresh at `now`.
    pub fn for_viewer(&self, now: std::time::SystemTime) -> PeerSettings {
        PeerSettings {
            ice_servers: crate::webrtc::ice_servers::for_viewer(&self.ice_servers, now),
            ..self.clone()
        }
    }
}

pub const DEFAULT_UDP_ADDR: &str = "0.0.0.0:0";
pub const DEFAULT_ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_ICE_FAILED_TIMEOUT: Duration = Duration::from_secs(15);

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_addrs: vec![DEFAULT_UDP_ADDR.to_owned()],
            ice_disconnected_timeout: DEFAULT_ICE_DISCONNECTED_TIMEOUT,
            ice_failed_timeout: DEFAULT_ICE_FAILED_TIMEOUT,
            port_range: None,
            tcp_candidates: false,
            nat_1to1_ips: Vec::new(),
            relay_only: false,
        }
    }
}

pub fn h264_codec() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![
            feedback("nack", ""),
            feedback("nack", "pli"),
            feedback("ccm", "fir"),
        ],
    }
}

/// RTX for the H.264 stream (`apt` is our payload type; the stack maps it to the offer's).
pub fn rtx_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={H264_PAYLOAD_TYPE}"),
        rtcp_feedback: Vec::new(),
    }
}

/// Whether a negotiated codec is the RTX one, not a media codec.
pub fn is_rtx(codec: &RTCRtpCodec) -> bool {
    codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RTX)
}

pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: Vec::new(),
    }
}

/// The track a viewer is sent of `kind` in stream `stream_id`, under a random SSRC (returned
/// beside it); video also names an RTX SSRC, which the stack drops again when the offer has no
/// RTX for our H.264.
pub fn send_track(stream_id: &str, kind: RtpCodecKind) -> (MediaStreamTrack, u32) {
    let ssrc = rand::random::<u32>();
    let (label, codec, rtx) = match kind {
        RtpCodecKind::Audio => ("audio", opus_codec(), None),
        _ => (
            "video",
            h264_codec(),
            Some(RTCRtpRtxParameters {
                ssrc: other_ssrc(ssrc),
            }),
        ),
    };
    let track = MediaStreamTrack::new(
        stream_id.to_owned(),
        format!("{stream_id}-{label}"),
        label.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx,
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    (track, ssrc)
}

/// A random SSRC that is not `taken`.
fn other_ssrc(taken: u32) -> u32 {
    loop {
        let ssrc = rand::random::<u32>();
        if ssrc != taken {
            return ssrc;
        }
    }
}

/// The codecs a viewer's connection can answer with: H.264 (and its RTX) and Opus.
pub fn media_engine() -> Result<MediaEngine, rtc::shared::error::Error> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: H264_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    // Offered RTX is answered, and the NACK responder then resends on the RTX SSRC; an offer
    // without it gets plain resends on the media SSRC.
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: rtx_codec(),
            payload_type: RTX_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    Ok(media_engine)
}

/// The send-side interceptors of a connection fieldcast sends on: NACK answers (sent twice),
/// sender reports, and the peer's RTCP passed up to fieldcast.
pub fn interceptors() -> Registry {
    // Only what a send-only connection uses. The receive-side defaults (NACK generator, receiver
    // reports, transport-cc feedback, simulcast header extensions) would only run timers and
    // sit in every packet's path.
    Registry::new()
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(Slot::from(REPEAT_RESENDS_SLOT), RepeatResends::default())
        .with(Slot::SenderReport, SenderReportBuilder::new().build())
        .with(
            Slot::from(RTCP_TO_APPLICATION_SLOT),
            RtcpToApplication::default(),
        )
}

/// Passes every inbound RTCP packet on unchanged and marks it for the application, which
/// acts on keyframe requests and reads receiver reports.
#[derive(Default)]
struct RtcpToApplication {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, Packet::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtcpToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
