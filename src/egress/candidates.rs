//! The ICE candidates every viewer is answered with: the egress loop's sockets, bound once,
//! as host candidates (or, behind a router forwarding the port, under the public address the
//! settings name), the public address a STUN server saw for them, the addresses TURN
//! servers relay for them, and the TCP listeners beside them (ICE-TCP, passive). No IO here.

use rtc::ice::tcp_type::TcpType;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateRelayConfig, CandidateServerReflexiveConfig,
    RTCIceCandidate, RTCIceCandidateInit,
};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Host,
    /// A TCP listener viewers connect to (RFC 6544 passive), at the address it is reached on.
    PassiveTcp,
    /// Reached at `addr` through a NAT; `base` is the socket behind it.
    ServerReflexive {
        base: SocketAddr,
    },
    /// Relayed by a TURN server at `addr`; `related` is what the answer names as its origin
    /// (the socket, or nothing when the device's addresses are to stay hidden).
    Relay {
        related: SocketAddr,
    },
}

/// The related address of a relay candidate that names no socket.
const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// One local candidate: where viewers send, and through which socket it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalCandidate {
    pub kind: Kind,
    pub addr: SocketAddr,
}

impl LocalCandidate {
    pub fn host(addr: SocketAddr) -> Self {
        Self {
            kind: Kind::Host,
            addr,
        }
    }

    pub fn passive_tcp(addr: SocketAddr) -> Self {
        Self {
            kind: Kind::PassiveTcp,
            addr,
        }
    }

    pub fn server_reflexive(addr: SocketAddr, base: SocketAddr) -> Self {
        Self {
            kind: Kind::ServerReflexive { base },
            addr,
        }
    }

    pub fn relay(addr: SocketAddr, related: SocketAddr) -> Self {
        Self {
            kind: Kind::Relay { related },
            addr,
        }
    }

    /// Where the connection sees this candidate's datagrams: the socket, or for a relay
    /// candidate the relayed address (the loop moves them through the TURN server).
    pub fn base(&self) -> SocketAddr {
        match self.kind {
            Kind::Host | Kind::PassiveTcp | Kind::Relay { .. } => self.addr,
            Kind::ServerReflexive { base } => base,
        }
    }

    /// As the PeerConnection takes it.
    pub fn to_init(self) -> Result<RTCIceCandidateInit, rtc::shared::error::Error> {
        let base_config = CandidateConfig {
            network: if self.kind == Kind::PassiveTcp {
                "tcp"
            } else {
                "udp"
            }
            .to_owned(),
            address: self.addr.ip().to_string(),
            port: self.addr.port(),
            component: 1,
            ..Default::default()
        };
        let candidate = match self.kind {
            Kind::Host => CandidateHostConfig {
                base_config,
                ..Default::default()
            }
            .new_candidate_host()?,
            Kind::PassiveTcp => CandidateHostConfig {
                base_config,
                tcp_type: TcpType::Passive,
            }
            .new_candidate_host()?,
            Kind::ServerReflexive { base } => CandidateServerReflexiveConfig {
                base_config,
                rel_addr: base.ip().to_string(),
                rel_port: base.port(),
                ..Default::default()
            }
            .new_candidate_server_reflexive()?,
            Kind::Relay { related } => CandidateRelayConfig {
                base_config,
                rel_addr: related.ip().to_string(),
                rel_port: related.port(),
                ..Default::default()
            }
            .new_candidate_relay()?,
        };
        RTCIceCandidate::from(&candidate).to_json()
    }
}

/// The candidates for the loop's bound sockets. With public addresses configured (a router
/// forwards the ports 1:1), each socket is advertised under them instead of its own address,
/// as a server-reflexive candidate whose base is the socket. `reflexive` holds what STUN
/// servers saw for each socket.
pub fn gather(
    sockets: &[SocketAddr],
    nat_1to1_ips: &[IpAddr],
    reflexive: &[(SocketAddr, SocketAddr)],
) -> Vec<LocalCandidate> {
    let mut candidates = Vec::new();
    for &socket in sockets {
        let public: Vec<&IpAddr> = nat_1to1_ips
            .iter()
            .filter(|ip| ip.is_ipv4() == socket.is_ipv4())
            .collect();
        if public.is_empty() {
            candidates.push(LocalCandidate::host(socket));
        } else {
            candidates.extend(public.into_iter().map(|&ip| {
                LocalCandidate::server_reflexive(SocketAddr::new(ip, socket.port()), socket)
            }));
        }
        for &(base, seen) in reflexive {
            let candidate = LocalCandidate::server_reflexive(seen, base);
            if base == socket && !candidates.contains(&candidate) && seen != socket {
                candidates.push(candidate);
            }
        }
    }
    candidates
}

/// Every candidate: [`gather`]'s, and a passive TCP one for each listener in `tcp`.
pub fn all(
    sockets: &[SocketAddr],
    nat_1to1_ips: &[IpAddr],
    reflexive: &[(SocketAddr, SocketAddr)],
    tcp: &[SocketAddr],
) -> Vec<LocalCandidate> {
    let mut candidates = gather(sockets, nat_1to1_ips, reflexive);
    candidates.extend(tcp.iter().map(|&addr| LocalCandidate::passive_tcp(addr)));
    candidates
}

/// The TCP listener beside a socket is reached at the socket's address, or, with public
/// addresses configured, at the first of its family (a router forwards the port over TCP as
/// well as UDP). Its connections are tagged with that address, so it is what ICE pairs.
pub fn tcp_listener_address(socket: SocketAddr, nat_1to1_ips: &[IpAddr]) -> SocketAddr {
    nat_1to1_ips
        .iter()
        .find(|ip| ip.is_ipv4() == socket.is_ipv4())
        .map_or(socket, |&ip| SocketAddr::new(ip, socket.port()))
}

/// Relay candidates for `relayed` ((relayed address, the socket holding the allocation)).
/// With `hide_sockets` (relay-only ICE) they name no related address, so the answer shows
/// nothing of the device's own addresses.
pub fn relayed(relayed: &[(SocketAddr, SocketAddr)], hide_sockets: bool) -> Vec<LocalCandidate> {
    relayed
        .iter()
        .map(|&(addr, socket)| {
            LocalCandidate::relay(addr, if hide_sockets { NO_ADDRESS } else { socket })
        })
        .collect()
}

/// The addresses to bind for `configured` (`ip:port`): an unspecified IP stands for every
/// interface address of its family except loopback and IPv6 link-local ones, which viewers
/// elsewhere cannot reach.
pub fn expand(configured: SocketAddr, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    if !configured.ip().is_unspecified() {
        return vec![configured];
    }
    interfaces
        .iter()
        .filter(|ip| ip.is_ipv4() == configured.is_ipv4() && !ip.is_loopback())
        .filter(|ip| match ip {
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
            IpAddr::V4(_) => true,
        })
        .map(|&ip| SocketAddr::new(ip, configured.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_socket_is_a_host_candidate() {
        let candidates = gather(&[addr("192.168.1.5:40000")], &[], &[]);
        assert_eq!(
            candidates,
            vec![LocalCandidate::host(addr("192.168.1.5:40000"))]
        );
        let init = candidates[0].to_init().unwrap();
        assert!(
            init.candidate.contains("192.168.1.5 40000 typ host"),
            "{}",
            init.candidate
        );
    }

    #[test]
    fn public_addresses_replace_the_sockets_own() {
        let candidates = gather(
            &[addr("10.0.0.2:40000")],
            &["203.0.113.7".parse().unwrap()],
            &[],
        );
        assert_eq!(
            candidates,
            vec![LocalCandidate::server_reflexive(
                addr("203.0.113.7:40000"),
                addr("10.0.0.2:40000")
            )]
        );
        assert_eq!(candidates[0].base(), addr("10.0.0.2:40000"));
        let init = candidates[0].to_init().unwrap();
        assert!(
            init.candidate
                .contains("203.0.113.7 40000 typ srflx raddr 10.0.0.2 rport 40000"),
            "{}",
            init.candidate
        );
    }

    #[test]
    fn what_stun_saw_is_added_once_per_socket() {
        let seen = (addr("10.0.0.2:40000"), addr("198.51.100.9:61000"));
        let candidates = gather(&[addr("10.0.0.2:40000")], &[], &[seen, seen]);
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[1].addr, addr("198.51.100.9:61000"));
        // No NAT in between: STUN saw the socket itself, which the host candidate covers.
        let same = (addr("10.0.0.2:40000"), addr("10.0.0.2:40000"));
        assert_eq!(gather(&[addr("10.0.0.2:40000")], &[], &[same]).len(), 1);
    }

    #[test]
    fn a_tcp_listener_is_a_passive_host_candidate_at_the_address_it_is_reached_on() {
        let socket = addr("10.0.0.2:40000");
        assert_eq!(tcp_listener_address(socket, &[]), socket);
        let public = [
            "2001:db8::1".parse().unwrap(),
            "203.0.113.7".parse().unwrap(),
        ];
        let reached = tcp_listener_address(socket, &public);
        assert_eq!(reached, addr("203.0.113.7:40000"));
        let init = LocalCandidate::passive_tcp(reached).to_init().unwrap();
        assert!(
            init.candidate
                .contains("203.0.113.7 40000 typ host tcptype passive"),
            "{}",
            init.candidate
        );
        assert!(init.candidate.contains(" tcp "), "{}", init.candidate);
    }

    #[test]
    fn a_relayed_address_names_its_socket() {
        let candidates = relayed(
            &[(addr("203.0.113.254:49160"), addr("10.0.0.2:40000"))],
            false,
        );
        assert_eq!(candidates[0].base(), addr("203.0.113.254:49160"));
        let init = candidates[0].to_init().unwrap();
        assert!(
            init.candidate
                .contains("203.0.113.254 49160 typ relay raddr 10.0.0.2 rport 40000"),
            "{}",
            init.candidate
        );
    }

    #[test]
    fn relay_only_hides_the_socket() {
        let candidates = relayed(
            &[(addr("203.0.113.254:49160"), addr("10.0.0.2:40000"))],
            true,
        );
        let init = candidates[0].to_init().unwrap();
        assert!(
            init.candidate
                .contains("203.0.113.254 49160 typ relay raddr 0.0.0.0 rport 0"),
            "{}",
            init.candidate
        );
        assert!(!init.candidate.contains("10.0.0.2"));
    }

    #[test]
    fn the_wildcard_is_every_interface_but_loopback() {
        let interfaces: Vec<IpAddr> = [
            "127.0.0.1",
            "192.168.1.5",
            "10.8.0.1",
            "fe80::1",
            "2001:db8::5",
        ]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect();
        assert_eq!(
            expand(addr("0.0.0.0:0"), &interfaces),
            vec![addr("192.168.1.5:0"), addr("10.8.0.1:0")]
        );
        assert_eq!(
            expand(addr("[::]:5000"), &interfaces),
            vec![addr("[2001:db8::5]:5000")]
        );
        assert_eq!(
            expand(addr("127.0.0.1:0"), &interfaces),
            vec![addr("127.0.0.1:0")]
        );
    }
}
