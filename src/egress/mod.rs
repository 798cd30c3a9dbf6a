//! How viewers' media leaves the device: egress loops over the sans-IO `rtc` core. A loop
//! owns its UDP sockets (bound once, shared by every viewer on it), its timers and its
//! viewers; a viewer is a plain state machine ([`peer::ViewerPeer`]).
//!
//! Data path: hub queues → [`worker`] (wakes once per frame) → [`peer`] (rewrite, SRTP) →
//! [`socket`] (GSO batches), or [`relay`] (a TURN allocation; the loop's side of it is in
//! `worker/relayed`) → viewers; [`demux`] routes what comes back. [`reflexive`] asks STUN
//! servers what the sockets look like from outside.

pub(crate) mod candidates;
pub(crate) mod certificate;
pub(crate) mod demux;
pub(crate) mod peer;
pub(crate) mod permits;
pub(crate) mod reflexive;
pub(crate) mod relay;
pub(crate) mod send_side;
pub(crate) mod socket;
pub(crate) mod stun;
pub(crate) mod tcp;
pub(crate) mod udp_batch;
pub(crate) mod worker;

use crate::fanout::Hubs;
use crate::webrtc::api::PeerSettings;
use crate::webrtc::totals::Totals;
use candidates::LocalCandidate;
use rtc::shared::{TransportContext, TransportProtocol};
use socket::EgressSocket;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use worker::EgressLoop;

/// `host:port` of each `stun:` URL (port 3478 when none is given). None with relay-only ICE,
/// which offers no address STUN could tell.
fn stun_servers(settings: &PeerSettings) -> Vec<String> {
    if settings.relay_only {
        return Vec::new();
    }
    settings
        .ice_servers
        .iter()
        .flat_map(|server| &server.urls)
        .filter_map(|url| url.strip_prefix("stun:"))
        .map(|rest| {
            let rest = rest.split('?').next().unwrap_or_default();
            if rest
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
            {
                rest.to_owned()
            } else {
                format!("{rest}:3478")
            }
        })
        .collect()
}

/// Binds the loop's sockets for `settings` and starts it. Each configured address is bound
/// once (an unspecified one on every interface address but loopback), on a port from the
/// range when one is set.
pub fn start_loop(
    settings: &PeerSettings,
    hubs: Hubs,
    connect_timeout: Duration,
    totals: Arc<Totals>,
) -> Result<EgressLoop, String> {
    let interfaces: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map_err(|e| format!("cannot list network interfaces: {e}"))?
        .into_iter()
        .map(|interface| interface.ip())
        .collect();
    let mut sockets = Vec::new();
    // Whether each socket's port was configured, not picked.
    let mut fixed = Vec::new();
    for configured in &settings.udp_addrs {
        let configured: SocketAddr = configured
            .parse()
            .map_err(|_| format!("{configured:?} is not an address and port"))?;
        for addr in candidates::expand(configured, &interfaces) {
            sockets.push(bind(addr, settings.port_range)?);
            fixed.push(configured.port() != 0);
        }
    }
    if sockets.is_empty() {
        return Err("no address to receive viewers on (no interface but loopback?)".to_owned());
    }
    let bound: Vec<SocketAddr> = sockets.iter().map(EgressSocket::local_addr).collect();
    let public: Vec<IpAddr> = settings
        .nat_1to1_ips
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    // A TCP listener beside each socket, on the same address and, where it is free, port;
    // none with relay-only ICE, which offers relayed addresses alone.
    let (tcp_tx, tcp_events) = tokio::sync::mpsc::channel(TCP_EVENTS);
    let mut tcp = Vec::new();
    if settings.tcp_candidates && !settings.relay_only {
        for (&socket, &port_fixed) in bound.iter().zip(&fixed) {
            let listener = tcp::bind(socket, port_fixed, settings.port_range)
                .map_err(|e| format!("cannot listen for ICE-TCP on {socket}: {e}"))?;
            let local = listener
                .local_addr()
                .map_err(|e| format!("ICE-TCP listener on {socket}: {e}"))?;
            let reached = candidates::tcp_listener_address(local, &public);
            tcp::listen(listener, reached, tcp_tx.clone())
                .map_err(|e| format!("cannot listen for ICE-TCP on {local}: {e}"))?;
            tcp.push(reached);
        }
    }
    drop(tcp_tx);
    // With relay-only ICE, viewers are answered with relayed addresses only, once allocated.
    let candidates: Vec<LocalCandidate> = if settings.relay_only {
        Vec::new()
    } else {
        candidates::all(&bound, &public, &[], &tcp)
    };
    let (turn_servers, skipped) = relay::turn_servers(&settings.ice_servers);
    for url in skipped {
        // Still handed to viewers; only a configuration with no UDP relay at all is a problem.
        if turn_servers.is_empty() {
            tracing::warn!(%url, "the egress loop reaches TURN servers over UDP only; not used");
        } else {
            tracing::info!(%url, "the egress loop reaches TURN servers over UDP; not used here");
        }
    }
    tracing::info!(
        sockets = ?bound,
        tcp = ?tcp,
        turn = turn_servers.len(),
        relay_only = settings.relay_only,
        "viewers are served by the egress loop"
    );
    Ok(EgressLoop::start(
        worker::LoopParts {
            sockets,
            tcp_events,
            certificate: certificate::LoopCertificate::new()?,
        },
        worker::Addresses {
            bound,
            public,
            stun_servers: stun_servers(settings),
            tcp,
            turn_servers,
        },
        candidates,
        settings.clone(),
        hubs,
        connect_timeout,
        totals,
    ))
}

/// What the `rtc` core is told of a datagram's path: from `remote` to `local`, or the other
/// way for one it sends.
pub(crate) fn transport(
    local: SocketAddr,
    remote: SocketAddr,
    protocol: TransportProtocol,
) -> TransportContext {
    TransportContext {
        local_addr: local,
        peer_addr: remote,
        ecn: None,
        transport_protocol: protocol,
    }
}

/// ICE-TCP frames and connection events waiting for the loop.
const TCP_EVENTS: usize = 1024;

/// Binds `addr`; port 0 with a range means the first free port of the range.
fn bind(addr: SocketAddr, range: Option<(u16, u16)>) -> Result<EgressSocket, String> {
    let Some((low, high)) = range.filter(|_| addr.port() == 0) else {
        return EgressSocket::bind(addr).map_err(|e| format!("cannot bind UDP {addr}: {e}"));
    };
    (low..=high)
        .find_map(|port| EgressSocket::bind(SocketAddr::new(addr.ip(), port)).ok())
        .ok_or_else(|| format!("no free UDP port on {} in {low}-{high}", addr.ip()))
}
