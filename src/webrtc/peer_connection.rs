//! A webrtc-rs PeerConnection, with its own tasks and sockets, for the few connections the
//! device opens itself: to a WHIP engine, and `fieldcast check --ice`'s probe. Viewers are the
//! egress loop's. Its events reach the task that opened it through a watch channel.

use crate::webrtc::api::{PeerSettings, interceptors, media_engine};
use rtc::peer_connection::configuration::RTCIceTransportPolicy;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState, SettingEngineBuilder,
};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct PeerEvents {
    pub(crate) state: Option<RTCPeerConnectionState>,
    pub(crate) gathering_complete: bool,
}

/// Forwards PeerConnection events into a watch channel the opening task reads.
struct EventForwarder(watch::Sender<PeerEvents>);

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

/// Builds a connection with the viewers' ICE servers and policy, and its events. Its sockets
/// take ports the system picks on the configured addresses: the device opens this connection
/// itself, so no router needs to forward them (the port range and public addresses are the
/// viewers').
pub(crate) async fn build_peer(
    settings: &PeerSettings,
) -> webrtc::error::Result<(Arc<dyn PeerConnection>, watch::Receiver<PeerEvents>)> {
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(
            settings
                .ice_servers
                .iter()
                .map(|server| RTCIceServer {
                    urls: server.urls.clone(),
                    username: server.username.clone().unwrap_or_default(),
                    credential: server.credential.clone().unwrap_or_default(),
                })
                .collect(),
        )
        .with_ice_transport_policy(if settings.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        })
        .build();
    let setting_engine = SettingEngineBuilder::new()
        // An engine's `.local` names are not resolved: its checks reach us anyway and show up
        // as peer-reflexive, and no multicast leaves the device.
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_timeouts(
            Some(settings.ice_disconnected_timeout),
            Some(settings.ice_failed_timeout),
            None,
        )
        .build();
    let (events_tx, events) = watch::channel(PeerEvents::default());
    let peer = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(media_engine()?)
        .with_setting_engine(setting_engine)
        .with_interceptor_registry(interceptors())
        .with_handler(Arc::new(EventForwarder(events_tx)))
        .with_udp_addrs(any_port(&settings.udp_addrs))
        .build()
        .await?;
    Ok((Arc::new(peer), events))
}

/// Each address with port 0: the viewers' media sockets keep the configured ports.
fn any_port(addrs: &[String]) -> Vec<String> {
    addrs
        .iter()
        .map(|addr| match addr.parse::<SocketAddr>() {
            Ok(addr) => SocketAddr::new(addr.ip(), 0).to_string(),
            Err(_) => addr.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_own_connection_takes_any_port_on_the_configured_addresses() {
        let addrs = ["0.0.0.0:0", "192.0.2.5:40000", "[2001:db8::1]:40001"].map(str::to_owned);
        assert_eq!(
            any_port(&addrs),
            ["0.0.0.0:0", "192.0.2.5:0", "[2001:db8::1]:0"]
        );
    }
}
