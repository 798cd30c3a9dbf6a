//! One track the WHIP connection sends to the engine: its negotiated payload type and SSRC,
//! and the rewriter that makes the hub's shared packets its own.

use super::PublishError;
use crate::fanout::Queued;
use crate::media::rtp::RtpRewriter;
use crate::media::rtp_timeline::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::sync::Arc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;

/// One track sent to the engine, and the rewriter that makes the shared packets its own.
pub(crate) struct Outbound {
    pub(crate) track: Arc<TrackLocalStaticRTP>,
    pub(crate) rewriter: RtpRewriter,
}

/// A frame handed to the connection: packets and bytes, or why the stack refused it.
pub(crate) type Delivery = Result<(u64, u64), webrtc::error::Error>;

impl Outbound {
    /// Hands a frame's packets, rewritten as this track's, to the connection. One connection
    /// takes them one by one at little cost; the rest of a frame the stack refused is dropped.
    pub(crate) async fn send_frame(&mut self, queued: &Queued) -> Delivery {
        let (mut packets, mut bytes) = (0u64, 0u64);
        for packet in &queued.frame.packets {
            let packet = match queued.replay_timestamp {
                Some(timestamp) => self.rewriter.rewrite_replayed(packet, timestamp),
                None => self.rewriter.rewrite(packet, queued.frame.arrival),
            };
            let size = packet.payload.len() as u64;
            self.track.write_rtp(packet).await?;
            packets += 1;
            bytes += size;
        }
        Ok((packets, bytes))
    }
}

pub(crate) async fn poll_rtcp(out: Option<&Outbound>) -> Option<TrackLocalEvent> {
    match out {
        Some(out) => out.track.poll().await,
        None => std::future::pending().await,
    }
}

/// A track added to the PeerConnection, before negotiation settles its payload type.
pub(crate) struct PendingTrack {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    ssrc: u32,
    kind: RtpCodecKind,
}

pub(crate) async fn add_track(
    peer: &Arc<dyn PeerConnection>,
    stream_id: &str,
    kind: RtpCodecKind,
) -> Result<PendingTrack, PublishError> {
    let (track, ssrc) = crate::webrtc::api::send_track(stream_id, kind);
    let track = Arc::new(TrackLocalStaticRTP::new(track));
    let sender = peer
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .map_err(|e| PublishError::Lost(format!("cannot add a track: {e}")))?;
    Ok(PendingTrack {
        track,
        sender,
        ssrc,
        kind,
    })
}

impl PendingTrack {
    /// The outbound track with the payload type the engine's answer chose.
    pub(crate) async fn negotiated(self) -> Result<Outbound, PublishError> {
        let codecs = self
            .sender
            .get_parameters()
            .await
            .map_err(|e| PublishError::Lost(format!("the track's parameters: {e}")))?
            .rtp_parameters
            .codecs;
        let payload_type = codecs
            .iter()
            .find(|codec| !crate::webrtc::api::is_rtx(&codec.rtp_codec))
            .map(|codec| codec.payload_type)
            .ok_or_else(|| {
                let codec = match self.kind {
                    RtpCodecKind::Audio => "Opus",
                    _ => "H.264",
                };
                PublishError::Refused(format!("the engine took no {codec}"))
            })?;
        let clock_rate = match self.kind {
            RtpCodecKind::Audio => AUDIO_CLOCK_RATE,
            _ => VIDEO_CLOCK_RATE,
        };
        Ok(Outbound {
            track: self.track,
            rewriter: RtpRewriter::new(
                self.ssrc,
                payload_type,
                rand::random::<u16>(),
                rand::random::<u32>(),
                clock_rate,
            ),
        })
    }
}
