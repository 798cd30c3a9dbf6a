//! TURN relays for the egress loop's sockets: one allocation per (socket, TURN server), shared
//! by every viewer on the loop, over rtc-turn's sans-IO client. Datagrams a viewer's
//! connection sends from a relayed address go out through its allocation (once the server
//! permits the viewer's address); what the server relays back comes out as datagrams received
//! on the relayed address. Allocations are refreshed, renewed when lost, and re-signed before
//! time-limited credentials expire. No sockets and no clock here: the loop passes both in.

use crate::egress::demux::binding_request_username;
use crate::egress::permits::AwaitingPermission;
use crate::egress::transport;
use crate::webrtc::api::IceServer;
use bytes::BytesMut;
use rtc::crypto::RTCCryptoProvider;
use rtc::ice::url::{ProtoType, SchemeType, Url};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::{TaggedBytesMut, TransportProtocol};
use rtc::stun::error_code::{CODE_STALE_NONCE, ErrorCodeAttribute};
use rtc::stun::message::{
    CLASS_ERROR_RESPONSE, Getter, METHOD_REFRESH, Message, MessageType, TransactionId,
    is_stun_message,
};
use rtc::turn::client::{Client, ClientConfig, Event};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Refreshes at least this often, whatever lifetime the server grants: it keeps the path to
/// the server open through NATs, and a refresh lost to a stale nonce is soon made good.
const REFRESH_INTERVAL_CAP: Duration = Duration::from_secs(60);
/// The first pause before allocating again after a failure; it doubles up to the cap.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_CAP: Duration = Duration::from_secs(60);

/// A TURN server the loop allocates on, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnServer {
    /// The URL, for logs.
    pub url: String,
    /// `host:port`, to resolve.
    pub host_port: String,
    /// Its credentials: static, or a shared secret for time-limited ones.
    pub credentials: IceServer,
}

impl TurnServer {
    /// Username and password to sign requests with at `wall`.
    fn credentials(&self, wall: SystemTime) -> (String, String) {
        let given = self.credentials.for_viewer(wall);
        (
            given.username.unwrap_or_default(),
            given.credential.unwrap_or_default(),
        )
    }

    /// How long signed requests stay valid, when the credentials are time-limited: they are
    /// renewed at half of it.
    fn credential_lifetime(&self) -> Option<Duration> {
        self.credentials.secret.as_ref().map(|_| {
            self.credentials.credential_ttl_s.map_or(
                crate::webrtc::ice_servers::DEFAULT_CREDENTIAL_TTL,
                Duration::from_secs,
            )
        })
    }
}

/// The `turn:` servers the loop can allocate on (UDP to the server), and the URLs it cannot
/// use (TCP or TLS to the server).
pub fn turn_servers(servers: &[IceServer]) -> (Vec<TurnServer>, Vec<String>) {
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for server in servers {
        for raw in &server.urls {
            let Ok(url) = Url::parse_url(raw) else {
                if raw.starts_with("turn") {
                    skipped.push(raw.clone());
                }
                continue;
            };
            match (url.scheme, url.proto) {
                (SchemeType::Turn, ProtoType::Udp) => usable.push(TurnServer {
                    url: raw.clone(),
                    host_port: format!("{}:{}", url.host, url.port),
                    credentials: server.clone(),
                }),
                (SchemeType::Turn | SchemeType::Turns, _) => skipped.push(raw.clone()),
                _ => {}
            }
        }
    }
    (usable, skipped)
}

/// The pause before allocating again after `failures` failures in a row.
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_CAP)
}

/// Whether `response` answers a request of the same Allocate: rtc-turn's first, unsigned
/// attempt and its signed retry differ in the last byte of the transaction id.
fn same_allocate(allocate: &TransactionId, response: &TransactionId) -> bool {
    let (a, b) = (allocate.0, response.0);
    let last = a.len() - 1;
    a[..last] == b[..last] && (a[last] == b[last] || a[last] == b[last].wrapping_add(1))
}

/// The request and error code of a refused Refresh, read from the server's datagram.
fn refused_refresh(datagram: &[u8]) -> Option<(TransactionId, u16)> {
    if !is_stun_message(datagram) {
        return None;
    }
    let mut message = Message::new();
    message.raw = datagram.to_vec();
    message.decode().ok()?;
    if message.typ != MessageType::new(METHOD_REFRESH, CLASS_ERROR_RESPONSE) {
        return None;
    }
    let mut code = ErrorCodeAttribute::default();
    code.get_from(&message).ok()?;
    Some((message.transaction_id, code.code.0))
}

/// A datagram a viewer sent to a relayed address.
#[derive(Debug)]
pub struct Received {
    pub relayed: SocketAddr,
    pub peer: SocketAddr,
    pub bytes: BytesMut,
}

/// A datagram for a TURN server, from one of the loop's sockets.
#[derive(Debug)]
pub struct ToServer {
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub bytes: BytesMut,
}

/// One allocation (or the attempt at one) from a socket on a server.
struct Allocation {
    socket: SocketAddr,
    server: SocketAddr,
    turn: TurnServer,
    client: Option<Client>,
    /// The Allocate request out, until it is answered.
    allocating: Option<TransactionId>,
    relayed: Option<SocketAddr>,
    /// When to allocate (again), while there is no client.
    retry_at: Option<Instant>,
    failures: u32,
    /// When to sign with fresh time-limited credentials.
    renew_credentials_at: Option<Instant>,
}

/// The loop's allocations.
pub struct Relays {
    crypto: Option<Arc<dyn RTCCryptoProvider>>,
    allocations: Vec<Allocation>,
    awaiting: AwaitingPermission,
    received: VecDeque<Received>,
    to_servers: VecDeque<ToServer>,
    /// The relayed addresses changed since last asked.
    changed: bool,
    /// Hold our ICE checks too while a permission is asked for (relay-only ICE).
    hold_checks: bool,
}

impl Relays {
    /// `relay_only`: viewers are reached through the relays alone.
    pub fn new(relay_only: bool) -> Self {
        Self {
            crypto: None,
            allocations: Vec::new(),
            awaiting: AwaitingPermission::default(),
            received: VecDeque::new(),
            to_servers: VecDeque::new(),
            changed: false,
            hold_checks: relay_only,
        }
    }

    /// Allocates from `socket` on `turn` (resolved to `server`), from `now` on.
    pub fn add(&mut self, now: Instant, socket: SocketAddr, server: SocketAddr, turn: TurnServer) {
        if self.crypto.is_none() {
            match rtc::crypto::default_provider() {
                Ok(crypto) => self.crypto = Some(crypto),
                Err(e) => {
                    tracing::warn!("TURN {}: no crypto provider: {e}", turn.url);
                    return;
                }
            }
        }
        self.allocations.push(Allocation {
            socket,
            server,
            turn,
            client: None,
            allocating: None,
            relayed: None,
            retry_at: Some(now),
            failures: 0,
            renew_credentials_at: None,
        });
    }

    /// Whether any allocation is wanted at all.
    pub fn is_empty(&self) -> bool {
        self.allocations.is_empty()
    }

    /// (relayed address, the socket holding it) of every live allocation.
    pub fn relayed(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.allocations
            .iter()
            .filter_map(|allocation| Some((allocation.relayed?, allocation.socket)))
            .collect()
    }

    /// Whether `addr` is one of the relayed addresses.
    pub fn is_relayed(&self, addr: SocketAddr) -> bool {
        self.allocations
            .iter()
            .any(|allocation| allocation.relayed == Some(addr))
    }

    /// Whether datagrams from `remote` on the socket at `local` are a TURN server's.
    #[cfg(test)]
    pub fn is_server(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.server_index(local, remote).is_some()
    }

    /// True (once) when the relayed addresses changed.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// A datagram from `remote` on the socket at `local`, taken when it came from a TURN
    /// server the socket allocates on; any other is handed back.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: BytesMut,
    ) -> Result<(), BytesMut> {
        let Some(index) = self.server_index(local, remote) else {
            return Err(bytes);
        };
        let Some(client) = self.allocations[index].client.as_mut() else {
            return Err(bytes);
        };
        // Ours, and not a stale nonce (rtc-turn signs the next refresh with the new one): the
        // allocation is gone, or going.
        let refused = refused_refresh(&bytes)
            .filter(|(request, code)| {
                client.has_transaction(request) && *code != CODE_STALE_NONCE.0
            })
            .map(|(_, code)| code);
        let message = TaggedBytesMut {
            now,
            transport: transport(local, remote, TransportProtocol::UDP),
            message: bytes,
        };
        if let Err(e) = client.handle_read(message) {
            tracing::debug!(server = %remote, "TURN: {e}");
        }
        self.drain(now, index);
        if let Some(code) = refused {
            self.lose(
                now,
                index,
                &format!("the server refused a refresh ({code})"),
            );
        }
        Ok(())
    }

    /// Sends a viewer's datagram from `relayed` to `peer`, asking for the permission first
    /// (and holding the datagram) when the server does not grant it yet.
    pub fn send(&mut self, now: Instant, relayed: SocketAddr, peer: SocketAddr, bytes: BytesMut) {
        let Some(index) = self.index_of(relayed) else {
            return;
        };
        let Some(client) = self.allocations[index].client.as_mut() else {
            return;
        };
        match client
            .relay(relayed)
            .and_then(|mut relay| relay.send_to(now, &bytes, peer))
        {
            Ok(()) => {}
            Err(Error::ErrNoPermission) => {
                let ask = !self.awaiting.is_asked(relayed, peer);
                // Unless relays are the only path, our own ICE checks are not held: ICE sends
                // them again, and a held one would check a relayed pair as early as a direct
                // one (some viewers, aiortc among them, then move to whichever pair succeeded
                // last). Answers to the viewer's checks and everything else wait.
                if self.hold_checks || binding_request_username(&bytes).is_none() {
                    self.awaiting.hold(relayed, peer, bytes);
                }
                if ask {
                    self.ask_permission(now, index, peer);
                }
            }
            Err(e) => tracing::debug!(%relayed, %peer, "not relayed: {e}"),
        }
        self.drain(now, index);
    }

    /// Asks every allocation of `peer`'s family to permit it, ahead of its first datagram.
    pub fn permit(&mut self, now: Instant, peer: SocketAddr) {
        for index in 0..self.allocations.len() {
            let Some(relayed) = self.allocations[index].relayed else {
                continue;
            };
            if relayed.is_ipv4() != peer.is_ipv4() || self.awaiting.is_asked(relayed, peer) {
                continue;
            }
            self.ask_permission(now, index, peer);
            self.drain(now, index);
        }
    }

    /// Runs what is due: allocating (again), renewing credentials, the clients' own timers.
    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        for index in 0..self.allocations.len() {
            let allocation = &mut self.allocations[index];
            if allocation.retry_at.is_some_and(|at| at <= now) {
                allocation.retry_at = None;
                self.begin(now, wall, index);
                continue;
            }
            let allocation = &mut self.allocations[index];
            if allocation.renew_credentials_at.is_some_and(|at| at <= now)
                && let Some(client) = allocation.client.as_mut()
            {
                let (username, password) = allocation.turn.credentials(wall);
                let renewed = client
                    .update_credentials(username, password)
                    .and_then(|()| client.refresh_allocations(now));
                if let Err(e) = renewed {
                    tracing::warn!(server = %allocation.turn.url, "TURN credentials: {e}");
                }
                allocation.renew_credentials_at = allocation
                    .turn
                    .credential_lifetime()
                    .map(|ttl| now + ttl / 2);
            }
            if let Some(client) = self.allocations[index].client.as_mut() {
                let _ = client.handle_timeout(now);
            }
            self.drain(now, index);
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.allocations
            .iter_mut()
            .flat_map(|allocation| {
                [
                    allocation.retry_at,
                    allocation.renew_credentials_at,
                    allocation.client.as_mut().and_then(Client::poll_timeout),
                ]
            })
            .flatten()
            .min()
    }

    pub fn poll_to_server(&mut self) -> Option<ToServer> {
        self.to_servers.pop_front()
    }

    pub fn poll_received(&mut self) -> Option<Received> {
        self.received.pop_front()
    }

    /// The allocation whose client talks to `remote` from the socket at `local`.
    fn server_index(&self, local: SocketAddr, remote: SocketAddr) -> Option<usize> {
        self.allocations
            .iter()
            .position(|a| a.socket == local && a.server == remote && a.client.is_some())
    }

    fn index_of(&self, relayed: SocketAddr) -> Option<usize> {
        self.allocations
            .iter()
            .position(|allocation| allocation.relayed == Some(relayed))
    }

    /// A new client for the allocation, and its Allocate request.
    fn begin(&mut self, now: Instant, wall: SystemTime, index: usize) {
        let Some(crypto) = self.crypto.clone() else {
            return;
        };
        let allocation = &mut self.allocations[index];
        let (username, password) = allocation.turn.credentials(wall);
        let config = ClientConfig {
            turn_serv_addr: allocation.server.to_string(),
            local_addr: allocation.socket,
            transport_protocol: TransportProtocol::UDP,
            username,
            password,
            allocation_refresh_interval_cap: Some(REFRESH_INTERVAL_CAP),
            ..Default::default()
        };
        let started = Client::new(config, crypto).and_then(|mut client| {
            let allocating = client.allocate(now)?;
            Ok((client, allocating))
        });
        match started {
            Ok((client, allocating)) => {
                allocation.client = Some(client);
                allocation.allocating = Some(allocating);
                allocation.renew_credentials_at = allocation
                    .turn
                    .credential_lifetime()
                    .map(|ttl| now + ttl / 2);
                self.drain(now, index);
            }
            Err(e) => self.lose(now, index, &e.to_string()),
        }
    }

    fn ask_permission(&mut self, now: Instant, index: usize, peer: SocketAddr) {
        let Some(relayed) = self.allocations[index].relayed else {
            return;
        };
        let Some(client) = self.allocations[index].client.as_mut() else {
            return;
        };
        match client
            .relay(relayed)
            .and_then(|mut relay| relay.create_permission(now, peer))
        {
            Ok(Some(request)) => self.awaiting.asked(relayed, peer, request),
            // Permitted already: what waited can go.
            Ok(None) => {
                for datagram in self.awaiting.take(relayed, peer) {
                    let _ = client
                        .relay(relayed)
                        .and_then(|mut relay| relay.send_to(now, &datagram, peer));
                }
            }
            Err(e) => {
                self.awaiting.take(relayed, peer);
                tracing::debug!(%relayed, %peer, "no permission asked: {e}");
            }
        }
    }

    /// Takes what the allocation's client produced: datagrams for the server, and events.
    fn drain(&mut self, now: Instant, index: usize) {
        let allocation = &mut self.allocations[index];
        let Some(client) = allocation.client.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        while let Some(event) = client.poll_event() {
            events.push(event);
        }
        for event in events {
            self.on_event(now, index, event);
        }
        let allocation = &mut self.allocations[index];
        if let Some(client) = allocation.client.as_mut() {
            while let Some(message) = client.poll_write() {
                self.to_servers.push_back(ToServer {
                    local: allocation.socket,
                    server: message.transport.peer_addr,
                    bytes: message.message,
                });
            }
        }
    }

    fn on_event(&mut self, now: Instant, index: usize, event: Event) {
        let allocation = &mut self.allocations[index];
        let allocating = allocation.allocating;
        let is_allocate =
            |request: &TransactionId| allocating.is_some_and(|a| same_allocate(&a, request));
        match event {
            Event::AllocateResponse(request, relayed) if is_allocate(&request) => {
                allocation.allocating = None;
                allocation.relayed = Some(relayed);
                allocation.failures = 0;
                self.changed = true;
                tracing::info!(
                    socket = %allocation.socket,
                    %relayed,
                    server = %allocation.turn.url,
                    "relay allocated"
                );
            }
            Event::AllocateError(request, e) if is_allocate(&request) => {
                self.lose(now, index, &format!("allocation refused: {e}"));
            }
            Event::CreatePermissionResponse(request, peer) => {
                let Some((relayed, _, datagrams)) = self.awaiting.answered(&request) else {
                    return;
                };
                if let Some(client) = allocation.client.as_mut() {
                    for datagram in datagrams {
                        let _ = client
                            .relay(relayed)
                            .and_then(|mut relay| relay.send_to(now, &datagram, peer));
                    }
                }
            }
            Event::CreatePermissionError(request, e) => {
                if let Some((_, peer, dropped)) = self.awaiting.answered(&request) {
                    tracing::debug!(%peer, dropped = dropped.len(), "TURN permission refused: {e}");
                }
            }
            Event::TransactionTimeout(request) => {
                if is_allocate(&request) {
                    self.lose(now, index, "the server did not answer");
                } else if self.awaiting.answered(&request).is_none() {
                    // A refresh or channel binding went unanswered: the server is gone.
                    self.lose(now, index, "the server stopped answering");
                }
            }
            Event::DataIndicationOrChannelData(_, peer, bytes) => {
                if let Some(relayed) = allocation.relayed {
                    self.received.push_back(Received {
                        relayed,
                        peer,
                        bytes,
                    });
                }
            }
            _ => {}
        }
    }

    /// Gives the allocation up (its client with it) and schedules another.
    fn lose(&mut self, now: Instant, index: usize, why: &str) {
        let allocation = &mut self.allocations[index];
        allocation.client = None;
        allocation.allocating = None;
        allocation.renew_credentials_at = None;
        allocation.failures += 1;
        let pause = retry_after(allocation.failures);
        allocation.retry_at = Some(now + pause);
        if let Some(relayed) = allocation.relayed.take() {
            self.awaiting.forget(relayed);
            self.changed = true;
        }
        tracing::warn!(
            socket = %allocation.socket,
            server = %allocation.turn.url,
            retry_in = ?pause,
            "TURN relay: {why}"
        );
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod relay_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(urls: &[&str]) -> IceServer {
        IceServer {
            urls: urls.iter().map(|url| url.to_string()).collect(),
            username: Some("user".into()),
            credential: Some("pass".into()),
            secret: None,
            credential_ttl_s: None,
        }
    }

    #[test]
    fn only_turn_over_udp_is_allocated_on() {
        let servers = [
            IceServer::stun("stun:stun.example.org:3478"),
            turn(&[
                "turn:203.0.113.254:3478?transport=udp",
                "turn:203.0.113.254:3478?transport=tcp",
                "turns:turn.example.org:5349",
                "turn:turn.example.org",
            ]),
        ];
        let (usable, skipped) = turn_servers(&servers);
        let hosts: Vec<&str> = usable.iter().map(|s| s.host_port.as_str()).collect();
        assert_eq!(hosts, ["203.0.113.254:3478", "turn.example.org:3478"]);
        assert_eq!(
            skipped,
            [
                "turn:203.0.113.254:3478?transport=tcp",
                "turns:turn.example.org:5349"
            ]
        );
    }

    #[test]
    fn a_secret_signs_with_fresh_credentials_renewed_at_half_their_life() {
        let server = TurnServer {
            url: "turn:t".into(),
            host_port: "t:3478".into(),
            credentials: IceServer {
                secret: Some("s".into()),
                credential_ttl_s: Some(600),
                ..IceServer::stun("turn:t")
            },
        };
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let (username, password) = server.credentials(wall);
        assert_eq!(username, "1600:fieldcast");
        assert_eq!(
            password,
            crate::webrtc::ice_servers::rest_credential("s", "1600:fieldcast")
        );
        assert_eq!(server.credential_lifetime(), Some(Duration::from_secs(600)));
        let fixed = TurnServer {
            credentials: turn(&["turn:t"]),
            ..server
        };
        assert_eq!(fixed.credential_lifetime(), None);
        assert_eq!(fixed.credentials(wall), ("user".into(), "pass".into()));
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        assert_eq!(retry_after(1), Duration::from_secs(2));
        assert_eq!(retry_after(2), Duration::from_secs(4));
        assert_eq!(retry_after(5), Duration::from_secs(32));
        assert_eq!(retry_after(6), Duration::from_secs(60));
        assert_eq!(retry_after(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn both_requests_of_an_allocate_are_recognised() {
        let mut first = TransactionId([7; 12]);
        first.0[11] = 0xff;
        let mut signed = first;
        signed.0[11] = 0x00;
        assert!(same_allocate(&signed, &first));
        assert!(same_allocate(&signed, &signed));
        assert!(!same_allocate(&signed, &TransactionId([8; 12])));
    }
}
