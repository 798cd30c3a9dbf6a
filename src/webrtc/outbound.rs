//! One track a PeerConnection sends (to a viewer, or to a WHIP engine): its negotiated
//! payload type and SSRC, the rewriter that makes the shared packets its own, and how a
//! frame's packets reach the connection.

use crate::fanout::Queued;
use crate::media::rtp::RtpRewriter;
use crate::media::rtp_timeline::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
use crate::webrtc::frame_batch::{OUTBOX_PACKETS, Outbox};
use crate::webrtc::session::{SessionError, setup};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::sync::Arc;
use std::time::Duration;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;

/// One track sent to the viewer (or a WHIP engine), and the rewriter that makes the shared
/// packets its own.
pub(crate) struct Outbound {
    pub(crate) track: Arc<TrackLocalStaticRTP>,
    pub(crate) rewriter: RtpRewriter,
    pub(crate) sender: Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    /// Video only: where a frame's packets wait for the stack to take them, eight at a time.
    pub(crate) outbox: Option<Arc<Outbox>>,
    /// Resends go on an RTX stream.
    pub(crate) rtx: bool,
}

/// What became of a frame handed to the connection.
pub(crate) struct Delivery {
    /// Packets and bytes of the frame handed over.
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// Packets dropped before it because the connection had stopped taking them.
    pub(crate) stalled: usize,
    /// The stack refused the frame: why, and the packets dropped with it.
    pub(crate) failed: Option<(webrtc::error::Error, usize)>,
}

impl Outbound {
    /// Hands a frame's packets, rewritten as this track's, to the connection a few at a time
    /// (`frame_batch.rs`). Packets still waiting after `stall` are dropped rather than piled
    /// up. `None` when there is nothing to send: not a video track, or an empty frame.
    pub(crate) async fn send_frame(
        &mut self,
        queued: &Queued,
        stall: Duration,
    ) -> Option<Delivery> {
        let outbox = self.outbox.as_ref()?;
        let stalled = if outbox.wait_for_room(OUTBOX_PACKETS, stall).await {
            0
        } else {
            outbox.clear()
        };
        let (mut packets, mut bytes) = (0u64, 0u64);
        let rewriter = &mut self.rewriter;
        let rewritten = queued.frame.packets.iter().map(|packet| {
            let packet = match queued.replay_timestamp {
                Some(timestamp) => rewriter.rewrite_replayed(packet, timestamp),
                None => rewriter.rewrite(packet, queued.frame.arrival),
            };
            packets += 1;
            bytes += packet.payload.len() as u64;
            packet
        });
        let (doorbell, rings) = outbox.push_frame(rewritten)?;
        let mut failed = None;
        for _ in 0..rings {
            if let Err(e) = self.track.write_rtp(doorbell.clone()).await {
                // Without their doorbells the packets waiting would not all leave: drop them.
                failed = Some((e, outbox.clear()));
                break;
            }
        }
        Some(Delivery {
            packets,
            bytes,
            stalled,
            failed,
        })
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
    pub(crate) ssrc: u32,
    clock_rate: u32,
}

pub(crate) async fn add_track(
    peer: &Arc<dyn PeerConnection>,
    stream_id: &str,
    kind: RtpCodecKind,
) -> Result<PendingTrack, SessionError> {
    let clock_rate = match kind {
        RtpCodecKind::Audio => AUDIO_CLOCK_RATE,
        _ => VIDEO_CLOCK_RATE,
    };
    let (track, ssrc) = crate::webrtc::api::send_track(stream_id, kind);
    let track = Arc::new(TrackLocalStaticRTP::new(track));
    let sender = peer
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .map_err(setup)?;
    Ok(PendingTrack {
        track,
        sender,
        ssrc,
        clock_rate,
    })
}

impl PendingTrack {
    /// The outbound track with the payload type the viewer's offer chose.
    pub(crate) async fn negotiated(self) -> Result<Outbound, SessionError> {
        let codecs = self
            .sender
            .get_parameters()
            .await
            .map_err(setup)?
            .rtp_parameters
            .codecs;
        let payload_type = codecs
            .iter()
            .find(|codec| !crate::webrtc::api::is_rtx(&codec.rtp_codec))
            .map(|codec| codec.payload_type)
            .ok_or(SessionError::NoCodec)?;
        let rtx = codecs
            .iter()
            .any(|codec| crate::webrtc::api::is_rtx(&codec.rtp_codec));
        Ok(Outbound {
            sender: self.sender,
            track: self.track,
            outbox: None,
            rtx,
            rewriter: RtpRewriter::new(
                self.ssrc,
                payload_type,
                rand::random::<u16>(),
                rand::random::<u32>(),
                self.clock_rate,
            ),
        })
    }
}
