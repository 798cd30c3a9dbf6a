//! Test and benchmark helpers: the real daemon on loopback, and a real WHEP viewer built on
//! the webrtc crate that records what it receives.

pub mod decode;
pub mod lossy_relay;

use fieldcast::config::Config;
use fieldcast::daemon::{self, RunningDaemon};
use fieldcast::media::rtp::{NAL_IDR, NAL_PPS, NAL_SPS, NalTypes};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCSessionDescription, Registry, register_default_interceptors,
};

/// The admin token the test daemons are given (tests may set their own).
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Three seconds of picture and sound, then the source ends and the daemon rebuilds the
/// pipeline; payloaders pick a random SSRC and timestamp base each time, as a camera restart
/// does.
pub const ENDING_PIPELINE: &str = "\
    videotestsrc is-live=true num-buffers=90 pattern=ball \
    ! video/x-raw,width=320,height=240,framerate=30/1 ! {encoder} ! {rtp} \
    audiotestsrc is-live=true num-buffers=300 samplesperbuffer=480 wave=sine \
    ! audio/x-raw,rate=48000,channels=1 ! {audio}";

/// The daemon with the `test` pipeline, HTTP and media on loopback only.
pub async fn start_daemon() -> RunningDaemon {
    start_daemon_with(|_| {}).await
}

/// As [`start_daemon`], with `adjust` applied to the configuration first.
pub async fn start_daemon_with(adjust: impl FnOnce(&mut Config)) -> RunningDaemon {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.media.pipeline = "test".to_owned();
    config.peer.udp_addrs = vec!["127.0.0.1:0".to_owned()];
    config.access.admin_token = Some(TEST_ADMIN_TOKEN.to_owned());
    adjust(&mut config);
    daemon::start(config)
        .await
        .expect("daemon starts on the test pipeline")
}

pub fn base_url(daemon: &RunningDaemon) -> String {
    format!("http://{}", daemon.local_addr)
}

/// One received frame (all packets sharing a timestamp, up to the marker).
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    pub sequence_numbers: Vec<u16>,
    pub nal_types: NalTypes,
    /// Index of the first packet carrying SPS and IDR, to check their order.
    pub first_sps_packet: Option<usize>,
    pub first_idr_packet: Option<usize>,
    pub ssrc: u32,
    pub payload_type: u8,
    pub completed_at: Instant,
}

impl ReceivedFrame {
    pub fn starts_decoding(&self) -> bool {
        self.nal_types.contains(NAL_SPS)
            && self.nal_types.contains(NAL_PPS)
            && self.nal_types.contains(NAL_IDR)
            && self.first_sps_packet <= self.first_idr_packet
    }
}

/// Payload types the test viewer offers; the daemon must use them.
pub const VIEWER_H264_PT: u8 = 109;
pub const VIEWER_OPUS_PT: u8 = 111;
/// RTX for the H.264 stream, when a test viewer offers it.
pub const VIEWER_RTX_PT: u8 = 110;

/// What a test viewer asks to receive.
#[derive(Debug, Clone, Copy)]
pub struct Wants {
    pub video: bool,
    pub audio: bool,
}

struct Recorder {
    frames: mpsc::UnboundedSender<ReceivedFrame>,
    raw_video: mpsc::UnboundedSender<(rtc::rtp::Packet, Instant)>,
    sound: mpsc::UnboundedSender<(rtc::rtp::Packet, Instant)>,
    gathered: watch::Sender<bool>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Recorder {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(Arc::clone(&track));
        let frames = self.frames.clone();
        let sound = self.sound.clone();
        let raw_video = self.raw_video.clone();
        tokio::spawn(async move {
            let mut current: Option<ReceivedFrame> = None;
            let mut timestamp = None;
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                if packet.header.payload_type == VIEWER_OPUS_PT {
                    if sound.send((packet, Instant::now())).is_err() {
                        return;
                    }
                    continue;
                }
                let _ = raw_video.send((packet.clone(), Instant::now()));
                if timestamp != Some(packet.header.timestamp) {
                    current = None;
                    timestamp = Some(packet.header.timestamp);
                }
                let frame = current.get_or_insert_with(|| ReceivedFrame {
                    sequence_numbers: Vec::new(),
                    nal_types: NalTypes::default(),
                    first_sps_packet: None,
                    first_idr_packet: None,
                    ssrc: packet.header.ssrc,
                    payload_type: packet.header.payload_type,
                    completed_at: Instant::now(),
                });
                let types = NalTypes::of_payload(&packet.payload);
                let index = frame.sequence_numbers.len();
                if types.contains(NAL_SPS) && frame.first_sps_packet.is_none() {
                    frame.first_sps_packet = Some(index);
                }
                if types.contains(NAL_IDR) && frame.first_idr_packet.is_none() {
                    frame.first_idr_packet = Some(index);
                }
                frame.nal_types = frame.nal_types.union(types);
                frame.sequence_numbers.push(packet.header.sequence_number);
                if packet.header.marker
                    && let Some(mut done) = current.take()
                {
                    done.completed_at = Instant::now();
                    if frames.send(done).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// A receive-only viewer speaking WHEP to the daemon.
pub struct WhepViewer {
    pub peer: Arc<dyn PeerConnection>,
    pub location: String,
    pub etag: Option<String>,
    pub posted_at: Instant,
    pub frames: mpsc::UnboundedReceiver<ReceivedFrame>,
    /// Opus packets with their arrival time.
    pub sound: mpsc::UnboundedReceiver<(rtc::rtp::Packet, Instant)>,
    /// Every video packet with its arrival time, for decoding.
    pub raw_video: mpsc::UnboundedReceiver<(rtc::rtp::Packet, Instant)>,
    /// The tracks as they arrive, to send RTCP feedback on.
    pub tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

async fn new_viewer_peer(recorder: Recorder, wants: Wants, rtx: bool) -> Arc<dyn PeerConnection> {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: fieldcast::webrtc::api::h264_codec(),
                payload_type: VIEWER_H264_PT,
            },
            RtpCodecKind::Video,
        )
        .unwrap();
    if rtx {
        let mut codec = fieldcast::webrtc::api::rtx_codec();
        codec.sdp_fmtp_line = format!("apt={VIEWER_H264_PT}");
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type: VIEWER_RTX_PT,
                },
                RtpCodecKind::Video,
            )
            .unwrap();
    }
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: fieldcast::webrtc::api::opus_codec(),
                payload_type: VIEWER_OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
    let peer = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(recorder))
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .expect("viewer peer builds");
    let peer: Arc<dyn PeerConnection> = Arc::new(peer);
    let kinds = [
        (wants.video, RtpCodecKind::Video),
        (wants.audio, RtpCodecKind::Audio),
    ];
    for (_, kind) in kinds.into_iter().filter(|(wanted, _)| *wanted) {
        peer.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    }
    peer
}

/// Creates the offer and waits for every ICE candidate to be in it.
async fn complete_offer(
    peer: &Arc<dyn PeerConnection>,
    gathered: &mut watch::Receiver<bool>,
) -> String {
    let offer = peer.create_offer(None).await.unwrap();
    peer.set_local_description(offer).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), gathered.wait_for(|done| *done))
        .await
        .expect("viewer gathered its ICE candidates within 5 s")
        .unwrap();
    peer.local_description().await.unwrap().sdp
}

/// A real offer for `wants`, from a peer that is closed at once: for testing refusals.
pub async fn offer_for(wants: Wants) -> String {
    let (gathered_tx, mut gathered) = watch::channel(false);
    let recorder = Recorder {
        frames: mpsc::unbounded_channel().0,
        raw_video: mpsc::unbounded_channel().0,
        sound: mpsc::unbounded_channel().0,
        gathered: gathered_tx,
        tracks: mpsc::unbounded_channel().0,
    };
    let peer = new_viewer_peer(recorder, wants, false).await;
    let offer = complete_offer(&peer, &mut gathered).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), peer.close()).await;
    offer
}

impl WhepViewer {
    /// A video-only viewer.
    pub async fn connect(base: &str) -> WhepViewer {
        Self::connect_with(
            base,
            Wants {
                video: true,
                audio: false,
            },
        )
        .await
    }

    pub async fn connect_with(base: &str, wants: Wants) -> WhepViewer {
        Self::connect_as(base, wants, None).await
    }

    /// Joins with `Authorization: Bearer token` when a token is given.
    pub async fn connect_as(base: &str, wants: Wants, token: Option<&str>) -> WhepViewer {
        Self::connect_rewriting(base, wants, token, |offer| offer, |answer| answer).await
    }

    /// Joins with the offer and the answer passed through the given edits first.
    pub async fn connect_rewriting(
        base: &str,
        wants: Wants,
        token: Option<&str>,
        edit_offer: impl FnOnce(String) -> String,
        edit_answer: impl FnOnce(String) -> String,
    ) -> WhepViewer {
        Self::connect_full(base, wants, token, false, edit_offer, edit_answer).await
    }

    /// As [`Self::connect_rewriting`], offering RTX (RFC 4588) for the video when `rtx`.
    pub async fn connect_full(
        base: &str,
        wants: Wants,
        token: Option<&str>,
        rtx: bool,
        edit_offer: impl FnOnce(String) -> String,
        edit_answer: impl FnOnce(String) -> String,
    ) -> WhepViewer {
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let (sound_tx, sound) = mpsc::unbounded_channel();
        let (raw_video_tx, raw_video) = mpsc::unbounded_channel();
        let (gathered_tx, mut gathered) = watch::channel(false);
        let (tracks_tx, tracks) = mpsc::unbounded_channel();
        let recorder = Recorder {
            frames: frames_tx,
            raw_video: raw_video_tx,
            sound: sound_tx,
            gathered: gathered_tx,
            tracks: tracks_tx,
        };
        let peer = new_viewer_peer(recorder, wants, rtx).await;
        let offer = edit_offer(complete_offer(&peer, &mut gathered).await);

        let posted_at = Instant::now();
        let mut request = reqwest::Client::new()
            .post(format!("{base}/whep"))
            .header("content-type", "application/sdp");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .body(offer)
            .send()
            .await
            .expect("POST /whep answered");
        assert_eq!(response.status(), 201, "POST /whep must create a session");
        assert_eq!(
            response.headers()["content-type"],
            "application/sdp",
            "the answer is SDP"
        );
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let answer = edit_answer(response.text().await.unwrap());
        peer.set_remote_description(RTCSessionDescription::answer(answer).unwrap())
            .await
            .unwrap();
        WhepViewer {
            peer,
            location,
            etag,
            posted_at,
            frames,
            sound,
            raw_video,
            tracks,
        }
    }

    /// Waits for the next complete frame, or says what did not arrive.
    pub async fn next_frame(&mut self, within: Duration) -> ReceivedFrame {
        tokio::time::timeout(within, self.frames.recv())
            .await
            .unwrap_or_else(|_| panic!("no frame arrived within {within:?}"))
            .expect("the viewer's track ended before a frame arrived")
    }

    pub async fn delete(&self, base: &str) -> reqwest::StatusCode {
        reqwest::Client::new()
            .delete(format!("{base}{}", self.location))
            .send()
            .await
            .expect("DELETE answered")
            .status()
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.peer.close()).await;
    }
}

/// POSTs `offer` to `{base}/whep` as SDP, and returns the response whatever its status.
pub async fn post_offer(client: &reqwest::Client, base: &str, offer: String) -> reqwest::Response {
    client
        .post(format!("{base}/whep"))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("POST /whep answered")
}

/// The admin view of status (every detail), with [`TEST_ADMIN_TOKEN`].
pub async fn status_json(base: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{base}/api/admin/status"))
        .bearer_auth(TEST_ADMIN_TOKEN)
        .send()
        .await
        .expect("status answered")
        .json()
        .await
        .expect("status is JSON")
}

/// Polls status until `check` holds, or fails saying what it was waiting for.
pub async fn wait_for_status(
    base: &str,
    what: &str,
    within: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let status = status_json(base).await;
        if check(&status) {
            return status;
        }
        if Instant::now() > deadline {
            panic!("status never showed {what} within {within:?}; last status: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
