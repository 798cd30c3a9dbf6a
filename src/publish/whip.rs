//! WHIP target: a send-only PeerConnection carrying the hub's H.264 (and Opus) to an engine
//! (RFC 9725). Signalling is in [`super::whip_http`]; this is the connection and its stream.
//! The engine's PLI/FIR become the same rate-limited encoder request as a viewer's.

use super::feed::Media;
use super::whip_http::{WhipClient, WhipSession};
use super::whip_track::{Outbound, PendingTrack, add_track, poll_rtcp};
use super::{Attempt, PublishError};
use crate::fanout::Queued;
use crate::webrtc::feedback;
use crate::webrtc::peer_connection::{PeerEvents, build_peer};
use crate::webrtc::sdpfrag;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};
use webrtc::rtp_transceiver::RTCRtpTransceiverDirection;

/// Longest wait for our candidates before the offer goes with those gathered so far (the
/// rest follow by PATCH).
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// ICE and DTLS must be done by then.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an ICE restart may take before the session is given up and made anew.
const RESTART_TIMEOUT: Duration = Duration::from_secs(5);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

fn lost(what: &str) -> impl Fn(webrtc::error::Error) -> PublishError + '_ {
    move |e| PublishError::Lost(format!("{what}: {e}"))
}

struct Connection {
    peer: Arc<dyn PeerConnection>,
    events: watch::Receiver<PeerEvents>,
    video: Outbound,
    audio: Option<Outbound>,
}

pub async fn run(mut attempt: Attempt<'_>) -> Result<(), PublishError> {
    let client = WhipClient::new(&attempt.target.url, attempt.target.token.clone())?;
    let mut settings = attempt.peer.clone();
    settings.ice_servers.extend(client.discover().await);
    let (peer, events) = build_peer(&settings.for_viewer(std::time::SystemTime::now()))
        .await
        .map_err(lost("cannot build the connection"))?;
    let result = publish(&mut attempt, &client, peer.clone(), events).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, peer.close()).await;
    result
}

async fn publish(
    attempt: &mut Attempt<'_>,
    client: &WhipClient,
    peer: Arc<dyn PeerConnection>,
    mut events: watch::Receiver<PeerEvents>,
) -> Result<(), PublishError> {
    let stream_id = format!("fieldcast-{:016x}", rand::random::<u64>());
    let video = add_track(&peer, &stream_id, RtpCodecKind::Video).await?;
    let audio = match attempt.has_audio {
        true => Some(add_track(&peer, &stream_id, RtpCodecKind::Audio).await?),
        false => None,
    };
    // We only send; an engine must not wait for media from us.
    for transceiver in peer.get_transceivers().await {
        transceiver
            .set_direction(RTCRtpTransceiverDirection::Sendonly)
            .await
            .map_err(lost("send-only"))?;
    }
    let offer = peer.create_offer(None).await.map_err(lost("offer"))?;
    peer.set_local_description(offer)
        .await
        .map_err(lost("offer"))?;
    let _ = tokio::time::timeout(
        GATHER_TIMEOUT,
        events.wait_for(|events| events.gathering_complete),
    )
    .await;
    let offer = local_sdp(&peer).await?;
    let mut session = client.publish(offer.clone()).await?;
    if let Some(to) = &session.redirected_to {
        tracing::info!(target = %attempt.target.name, "WHIP endpoint redirected to {to}");
    }
    let result = stream(
        attempt,
        client,
        &peer,
        events,
        video,
        audio,
        &mut session,
        &offer,
    )
    .await;
    // An engine that went away must not hold up the next attempt.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.delete(&session)).await;
    result
}

async fn local_sdp(peer: &Arc<dyn PeerConnection>) -> Result<String, PublishError> {
    peer.local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| PublishError::Lost("no local description".to_owned()))
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    attempt: &mut Attempt<'_>,
    client: &WhipClient,
    peer: &Arc<dyn PeerConnection>,
    events: watch::Receiver<PeerEvents>,
    video: PendingTrack,
    audio: Option<PendingTrack>,
    session: &mut WhipSession,
    offer: &str,
) -> Result<(), PublishError> {
    let answer = RTCSessionDescription::answer(session.answer.clone())
        .map_err(|e| PublishError::Refused(format!("the answer: {e}")))?;
    peer.set_remote_description(answer)
        .await
        .map_err(|e| PublishError::Refused(format!("the answer was not accepted: {e}")))?;
    let video = video.negotiated().await?;
    let audio = match audio {
        Some(pending) => pending.negotiated().await.ok(),
        None => None,
    };
    if !session.ice_servers.is_empty() {
        tracing::debug!(target = %attempt.target.name, count = session.ice_servers.len(), "ICE servers from the engine's Link headers");
    }
    let mut connection = Connection {
        peer: Arc::clone(peer),
        events,
        video,
        audio,
    };
    // Candidates found after the offer left go by PATCH (trickle).
    trickle_late_candidates(client, session, peer, offer).await;
    let connect_deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut connected = false;
    let mut stop = attempt.stop.clone();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(()),
            changed = connection.events.changed() => {
                if changed.is_err() {
                    return Err(PublishError::Lost("the connection is gone".to_owned()));
                }
                let state = connection.events.borrow_and_update().state;
                match state {
                    Some(RTCPeerConnectionState::Connected) => {
                        connected = true;
                        attempt.join_feed();
                        attempt.live(&format!("WHIP session {}", session.url));
                    }
                    Some(RTCPeerConnectionState::Disconnected) => {
                        restart_ice(client, session, &mut connection).await?;
                    }
                    Some(RTCPeerConnectionState::Failed) => {
                        return Err(PublishError::Lost("ICE failed: the engine is unreachable".to_owned()));
                    }
                    Some(RTCPeerConnectionState::Closed) => {
                        return Err(PublishError::Lost("the connection closed".to_owned()));
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(connect_deadline), if !connected => {
                return Err(PublishError::Lost(format!("not connected within {} s", CONNECT_TIMEOUT.as_secs())));
            }
            rtcp = poll_rtcp(Some(&connection.video)) => match rtcp {
                Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                    if feedback::read(&packets).wants_keyframe {
                        attempt.state.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                        attempt.feed.want_keyframe();
                    }
                }
                Some(_) => {}
                None => return Err(PublishError::Lost("the video track ended".to_owned())),
            },
            rtcp = poll_rtcp(connection.audio.as_ref()), if connection.audio.is_some() => {
                if rtcp.is_none() {
                    return Err(PublishError::Lost("the audio track ended".to_owned()));
                }
            }
            media = attempt.feed.next() => match media {
                Some(Media::Video(queued)) => send_frame(&mut connection.video, &queued, attempt).await,
                Some(Media::Audio(packet)) => {
                    if let Some(out) = connection.audio.as_mut() {
                        let packet = out.rewriter.rewrite(&packet, Instant::now());
                        let size = packet.payload.len() as u64;
                        if out.track.write_rtp(packet).await.is_ok() {
                            attempt.state.sent(1, size);
                        }
                    }
                }
                None => return Err(PublishError::Lost("the stream ended".to_owned())),
            },
        }
    }
}

/// Sends candidates our side found after the offer left, in one PATCH (RFC 9725 §4.3).
async fn trickle_late_candidates(
    client: &WhipClient,
    session: &mut WhipSession,
    peer: &Arc<dyn PeerConnection>,
    offer: &str,
) {
    let Ok(now) = local_sdp(peer).await else {
        return;
    };
    let Some(fragment) = late_candidates(offer, &now) else {
        return;
    };
    if let Err(e) = client.patch(session, fragment).await {
        tracing::debug!("trickle PATCH refused: {e}");
    }
}

/// An SDP fragment (RFC 8840) with the candidates in `now` that `offer` did not carry, under
/// the offer's ICE credentials and first media section; `None` when there are none.
fn late_candidates(offer: &str, now: &str) -> Option<String> {
    let sent: std::collections::HashSet<&str> = offer
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    let late: Vec<&str> = now
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("a=candidate:") && !sent.contains(l))
        .collect();
    if late.is_empty() {
        return None;
    }
    let first = |prefix: &str| {
        offer
            .lines()
            .map(str::trim_end)
            .find(|l| l.starts_with(prefix))
    };
    let mut lines: Vec<&str> = Vec::new();
    lines.extend(first("a=ice-ufrag:"));
    lines.extend(first("a=ice-pwd:"));
    lines.extend(first("m="));
    lines.extend(first("a=mid:"));
    lines.extend(late);
    lines.push("a=end-of-candidates");
    Some(lines.iter().map(|l| format!("{l}\r\n")).collect())
}

/// The path to the engine went quiet: new ICE credentials in a PATCH (RFC 9725 §4.4), the
/// engine's new ones back. Anything short of that ends the attempt, and the next makes a new
/// session.
async fn restart_ice(
    client: &WhipClient,
    session: &mut WhipSession,
    connection: &mut Connection,
) -> Result<(), PublishError> {
    tracing::info!("WHIP: the engine went quiet; restarting ICE");
    let peer = &connection.peer;
    let restart = async {
        peer.restart_ice().await.map_err(lost("ICE restart"))?;
        let offer = peer.create_offer(None).await.map_err(lost("ICE restart"))?;
        peer.set_local_description(offer)
            .await
            .map_err(lost("ICE restart"))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let local = local_sdp(peer).await?;
        // Whatever the engine says (404: it forgot the session), the next attempt starts anew.
        let fragment = client
            .patch(session, sdpfrag::answer_fragment(&local))
            .await
            .map_err(|e| PublishError::Lost(e.to_string()))?
            .ok_or_else(|| PublishError::Lost("the engine did not restart ICE".to_owned()))?;
        let frag = sdpfrag::SdpFrag::parse(&fragment)
            .map_err(|e| PublishError::Lost(format!("the engine's ICE restart: {e}")))?;
        let (Some(ufrag), Some(pwd)) = (&frag.ice_ufrag, &frag.ice_pwd) else {
            return Err(PublishError::Lost(
                "the engine's ICE restart has no credentials".to_owned(),
            ));
        };
        let previous = session.answer.clone();
        let mut answer = sdpfrag::restart_offer(&previous, ufrag, pwd);
        for candidate in &frag.candidates {
            answer = add_candidate_to_first_media(&answer, &candidate.candidate);
        }
        let description = RTCSessionDescription::answer(answer.clone())
            .map_err(|e| PublishError::Lost(format!("the engine's ICE restart: {e}")))?;
        peer.set_remote_description(description)
            .await
            .map_err(lost("the engine's ICE restart"))?;
        session.answer = answer;
        Ok(())
    };
    tokio::time::timeout(RESTART_TIMEOUT, restart)
        .await
        .map_err(|_| PublishError::Lost("ICE restart timed out".to_owned()))?
}

/// `a=candidate:` lines go after the first media section's other attributes.
fn add_candidate_to_first_media(sdp: &str, candidate: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + candidate.len() + 16);
    let mut media_seen = 0;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            media_seen += 1;
            if media_seen == 2 {
                out.push_str(&format!("a={candidate}\r\n"));
            }
        }
        out.push_str(line.trim_end());
        out.push_str("\r\n");
    }
    if media_seen < 2 {
        out.push_str(&format!("a={candidate}\r\n"));
    }
    out
}

/// A frame's packets into the connection; a frame the stack refused is not counted as sent.
async fn send_frame(out: &mut Outbound, queued: &Queued, attempt: &Attempt<'_>) {
    match out.send_frame(queued).await {
        Ok((packets, bytes)) => {
            attempt.state.sent(packets, bytes);
            attempt.state.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(target = %attempt.target.name, "RTP not sent: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecret\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n\
        a=candidate:1 1 udp 2130706431 192.0.2.2 40000 typ host\r\n";

    #[test]
    fn only_candidates_the_offer_lacked_are_trickled() {
        let now = format!("{OFFER}a=candidate:2 1 udp 1694498815 198.51.100.7 40000 typ srflx\r\n");
        let fragment = late_candidates(OFFER, &now).unwrap();
        assert_eq!(
            fragment,
            "a=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecret\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n\
             a=candidate:2 1 udp 1694498815 198.51.100.7 40000 typ srflx\r\n\
             a=end-of-candidates\r\n"
        );
        assert!(crate::webrtc::sdpfrag::SdpFrag::parse(&fragment).is_ok());
    }

    #[test]
    fn nothing_late_means_no_patch() {
        assert_eq!(late_candidates(OFFER, OFFER), None);
    }

    #[test]
    fn restart_candidates_go_under_the_first_media_section() {
        let sdp = "v=0\r\nm=video 9 X 1\r\na=mid:0\r\nm=audio 9 X 2\r\na=mid:1\r\n";
        let with = add_candidate_to_first_media(sdp, "candidate:9 1 udp 1 192.0.2.9 9 typ host");
        let video_part = with.split("m=audio").next().unwrap();
        assert!(video_part.contains("a=candidate:9"), "{with}");
    }
}
