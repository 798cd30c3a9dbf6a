//! Plain RTP (or SRTP with a configured key) of the hub's packets to a host and port — the
//! input a Janus streaming mountpoint takes. Video goes to the URL's port, sound to
//! `audio_port` (default the next port but one). Each stream gets its own SSRC and sequence
//! numbers, continuous across dropped frames and pipeline rebuilds, like a viewer's.

use super::feed::Media;
use super::target::rtp_host_port;
use super::{Attempt, PublishError};
use crate::media::rtp::RtpRewriter;
use crate::media::rtp_timeline::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
use base64::Engine;
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Sending this long without the engine's host refusing (ICMP port unreachable) counts as
/// live: plain RTP has no handshake to tell.
const LIVE_AFTER: Duration = Duration::from_millis(500);
/// AES_CM_128_HMAC_SHA1_80: a 16-byte master key and a 14-byte salt.
const SRTP_KEY_LEN: usize = 16;
const SRTP_SALT_LEN: usize = 14;

struct Stream {
    socket: UdpSocket,
    to: SocketAddr,
    rewriter: RtpRewriter,
}

async fn connect(to: SocketAddr) -> Result<UdpSocket, PublishError> {
    let local: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| PublishError::Lost(format!("cannot open a UDP socket: {e}")))?;
    // Connected, so that a host with nothing listening is reported (ECONNREFUSED).
    socket
        .connect(to)
        .await
        .map_err(|e| PublishError::Lost(format!("cannot send to {to}: {e}")))?;
    Ok(socket)
}

fn srtp_context(key: &str) -> Result<Context, PublishError> {
    let refused = |why: String| PublishError::Refused(format!("srtp_key: {why}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|e| refused(format!("not base64 ({e})")))?;
    if bytes.len() != SRTP_KEY_LEN + SRTP_SALT_LEN {
        return Err(refused(format!(
            "{} bytes, expected {} (key and salt)",
            bytes.len(),
            SRTP_KEY_LEN + SRTP_SALT_LEN
        )));
    }
    let provider = rtc::crypto::default_provider().map_err(|e| refused(e.to_string()))?;
    let (master_key, salt) = bytes.split_at(SRTP_KEY_LEN);
    Context::new(
        master_key,
        salt,
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
        provider.crypto(),
    )
    .map_err(|e| refused(e.to_string()))
}

pub async fn run(mut attempt: Attempt<'_>) -> Result<(), PublishError> {
    let target = attempt.target;
    let (host, port) = rtp_host_port(&target.url).map_err(PublishError::Refused)?;
    let ip = tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| PublishError::Lost(format!("cannot resolve {host}")))?
        .ip();
    let video_to = SocketAddr::new(ip, port);
    let audio_to = SocketAddr::new(ip, target.audio_port.unwrap_or(port.wrapping_add(2)));
    let mut srtp = target.srtp_key.as_deref().map(srtp_context).transpose()?;
    let mut video = Stream {
        socket: connect(video_to).await?,
        to: video_to,
        rewriter: RtpRewriter::new(
            rand::random(),
            target.video_pt,
            rand::random(),
            rand::random(),
            VIDEO_CLOCK_RATE,
        ),
    };
    let mut audio = match attempt.has_audio {
        true => Some(Stream {
            socket: connect(audio_to).await?,
            to: audio_to,
            rewriter: RtpRewriter::new(
                rand::random(),
                target.audio_pt,
                rand::random(),
                rand::random(),
                AUDIO_CLOCK_RATE,
            ),
        }),
        false => None,
    };
    attempt.join_feed();
    let mut first_keyframe_sent: Option<Instant> = None;
    let mut stop = attempt.stop.clone();
    loop {
        let media = tokio::select! {
            _ = stop.changed() => return Ok(()),
            media = attempt.feed.next() => media,
        };
        let Some(media) = media else {
            return Err(PublishError::Lost("the stream ended".to_owned()));
        };
        match media {
            Media::Video(queued) => {
                let frame = &queued.frame;
                for packet in &frame.packets {
                    let packet = match queued.replay_timestamp {
                        Some(ts) => video.rewriter.rewrite_replayed(packet, ts),
                        None => video.rewriter.rewrite(packet, frame.arrival),
                    };
                    send(&video, &packet, srtp.as_mut(), attempt.state).await?;
                }
                attempt.state.frames_sent.fetch_add(1, Ordering::Relaxed);
                if frame.is_keyframe() && first_keyframe_sent.is_none() {
                    first_keyframe_sent = Some(Instant::now());
                }
            }
            Media::Audio(packet) => {
                if let Some(audio) = audio.as_mut() {
                    let packet = audio.rewriter.rewrite(&packet, Instant::now());
                    send(audio, &packet, srtp.as_mut(), attempt.state).await?;
                }
            }
        }
        if first_keyframe_sent.is_some_and(|at| at.elapsed() >= LIVE_AFTER) {
            attempt.live(&format!("RTP to {video_to}"));
        }
    }
}

async fn send(
    stream: &Stream,
    packet: &rtc::rtp::Packet,
    srtp: Option<&mut Context>,
    state: &super::state::TargetState,
) -> Result<(), PublishError> {
    let plain = packet
        .marshal()
        .map_err(|e| PublishError::Lost(format!("cannot write RTP: {e}")))?;
    let wire = match srtp {
        Some(context) => context
            .encrypt_rtp(&plain)
            .map_err(|e| PublishError::Lost(format!("cannot encrypt RTP: {e}")))?,
        None => plain,
    };
    match stream.socket.send(&wire).await {
        Ok(sent) => {
            state.sent(1, sent as u64);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(PublishError::Lost(
            format!("nothing listens at {} (port unreachable)", stream.to),
        )),
        // A full socket buffer loses this packet only, as a congested link would.
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(PublishError::Lost(format!(
            "cannot send to {}: {e}",
            stream.to
        ))),
    }
}
