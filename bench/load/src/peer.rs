//! One load-client viewer's PeerConnection: receive-only H.264 on loopback, as cheap as a
//! viewer can be — no interceptors, so it sends no NACKs (loss stays visible) and no receiver
//! reports. Every video packet goes straight into the viewer's [`ReceiveStats`].

use crate::feed::FrameClock;
use crate::stats::ReceiveStats;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, Registry, SettingEngineBuilder,
};

/// Payload type the client offers for H.264 (Janus offers its own, 96, and we answer it).
const H264_PAYLOAD_TYPE: u8 = 96;
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub type SharedStats = Arc<Mutex<ReceiveStats>>;

struct Receiver {
    stats: SharedStats,
    clock: Arc<FrameClock>,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Receiver {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.stats.lock().unwrap().connection = state.to_string();
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!("viewer connection: {state}");
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.stats.lock().unwrap().has_track = true;
        let stats = Arc::clone(&self.stats);
        let clock = Arc::clone(&self.clock);
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                let now = Instant::now();
                let header = &packet.header;
                stats.lock().unwrap().on_packet(
                    header.sequence_number,
                    header.timestamp,
                    header.marker,
                    &packet.payload,
                    now,
                    |counter| clock.sent_at(counter),
                );
            }
        });
    }
}

pub struct ViewerPeer {
    pub peer: Arc<dyn PeerConnection>,
    pub stats: SharedStats,
    gathered: watch::Receiver<bool>,
}

impl ViewerPeer {
    /// A new peer with its one socket on `local_ip`; `joined_at` is when this viewer started
    /// joining. `aes128_gcm_only` offers DTLS-SRTP only AES-128-GCM, so both servers do the same
    /// crypto; otherwise the server picks (Janus prefers AES-256-GCM).
    pub async fn new(
        clock: Arc<FrameClock>,
        joined_at: Instant,
        local_ip: IpAddr,
        aes128_gcm_only: bool,
    ) -> Result<ViewerPeer, String> {
        let mut media_engine = MediaEngine::default();
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: fieldcast::webrtc::api::h264_codec(),
                    payload_type: H264_PAYLOAD_TYPE,
                },
                RtpCodecKind::Video,
            )
            .map_err(|e| e.to_string())?;
        let (gathered_tx, gathered) = watch::channel(false);
        let stats = Arc::new(Mutex::new(ReceiveStats::new(joined_at)));
        let receiver = Receiver {
            stats: Arc::clone(&stats),
            clock,
            gathered: gathered_tx,
        };
        let mut setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        if aes128_gcm_only {
            setting_engine = setting_engine
                .with_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
        }
        let setting_engine = setting_engine.build();
        let peer = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(Registry::new())
            .with_runtime(crate::no_gro::runtime())
            .with_handler(Arc::new(receiver))
            // Never a wildcard: that would leave out loopback.
            .with_udp_addrs(vec![SocketAddr::new(local_ip, 0)])
            .build()
            .await
            .map_err(|e| e.to_string())?;
        Ok(ViewerPeer {
            peer: Arc::new(peer),
            stats,
            gathered,
        })
    }

    /// A complete receive-only offer (every candidate in it), for WHEP.
    pub async fn offer(&mut self) -> Result<String, String> {
        self.peer
            .add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| e.to_string())?;
        let offer = self
            .peer
            .create_offer(None)
            .await
            .map_err(|e| e.to_string())?;
        self.peer
            .set_local_description(offer)
            .await
            .map_err(|e| e.to_string())?;
        self.local_description().await
    }

    /// A complete answer to the server's offer (Janus offers).
    pub async fn answer(&mut self, offer: String) -> Result<String, String> {
        let offer = webrtc::peer_connection::RTCSessionDescription::offer(offer)
            .map_err(|e| e.to_string())?;
        self.peer
            .set_remote_description(offer)
            .await
            .map_err(|e| e.to_string())?;
        let answer = self
            .peer
            .create_answer(None)
            .await
            .map_err(|e| e.to_string())?;
        self.peer
            .set_local_description(answer)
            .await
            .map_err(|e| e.to_string())?;
        self.local_description().await
    }

    pub async fn accept_answer(&self, answer: String) -> Result<(), String> {
        let answer = webrtc::peer_connection::RTCSessionDescription::answer(answer)
            .map_err(|e| e.to_string())?;
        self.peer
            .set_remote_description(answer)
            .await
            .map_err(|e| e.to_string())
    }

    async fn local_description(&mut self) -> Result<String, String> {
        tokio::time::timeout(GATHER_TIMEOUT, self.gathered.wait_for(|done| *done))
            .await
            .map_err(|_| "ICE gathering did not complete in 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        self.peer
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| "no local description".to_owned())
    }

    /// The SRTP protection profile DTLS settled on, as the stats name it.
    pub async fn srtp_cipher(&self) -> Option<String> {
        use rtc::statistics::StatsSelector;
        use rtc::statistics::report::RTCStatsReportEntry;
        let report = self
            .peer
            .get_stats(Instant::now(), StatsSelector::None)
            .await;
        report.iter().find_map(|entry| match entry {
            RTCStatsReportEntry::Transport(transport) if !transport.srtp_cipher.is_empty() => {
                Some(transport.srtp_cipher.clone())
            }
            _ => None,
        })
    }

    pub async fn close(&self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.peer.close()).await;
    }
}
