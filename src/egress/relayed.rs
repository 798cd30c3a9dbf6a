//! The egress loop's side of its TURN relays ([`Relays`](crate::egress::relay::Relays)):
//! allocations made from its sockets, what the servers send taken on those sockets, what the
//! relays have for the servers queued on them, and what viewers send to a relayed address
//! routed to its viewer like any datagram. With relay-only ICE, offers wait here for the
//! first relayed address.

use super::{JoinRequest, Worker, lookup, queue_on};
use crate::webrtc::session::SessionError;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// How long a viewer's offer waits for a relay to be allocated, with relay-only ICE.
const RELAY_WAIT: Duration = Duration::from_secs(3);

impl Worker {
    /// Resolves the TURN servers and starts allocating on them from every socket of the
    /// server's family.
    pub(super) async fn resolve_turn_servers(&mut self) {
        let now = Instant::now();
        for turn in &self.addresses.turn_servers {
            let named = format!("TURN server {}", turn.url);
            let resolved = lookup(&turn.host_port, &named).await;
            for &socket in &self.addresses.bound {
                // One allocation per socket and server: a second from the same socket would
                // be refused (437), as the server keys allocations by the 5-tuple.
                if let Some(&server) = resolved.iter().find(|s| s.is_ipv4() == socket.is_ipv4()) {
                    self.relays.add(now, socket, server, turn.clone());
                }
            }
        }
    }

    /// With relay-only ICE, an offer that comes before the first relayed address waits for
    /// it (or is refused when no relay is being allocated); any other is answered at once.
    pub(super) fn join_when_relayed(&mut self, now: Instant, request: JoinRequest) {
        if self.settings.relay_only && self.relays.relayed().is_empty() {
            if self.relays.is_empty() {
                let _ = request.reply.send(Err(no_relay()));
            } else {
                // The first viewers may come before the first allocation.
                self.waiting.push((now + RELAY_WAIT, request));
            }
            return;
        }
        self.join(now, request);
    }

    /// Offers that waited too long for a relay are answered with an error.
    pub(super) fn give_up_waiting(&mut self) {
        let now = Instant::now();
        let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(at, _)| *at <= now || self.commands.is_closed());
        self.waiting = waiting;
        for (_, request) in late {
            let _ = request.reply.send(Err(no_relay()));
        }
    }

    /// Asks the relays to let `peers` through.
    pub(super) fn permit(&mut self, now: Instant, peers: Vec<SocketAddr>) {
        for peer in peers {
            self.relays.permit(now, peer);
        }
        self.send_to_servers();
    }

    /// A datagram on one of the loop's sockets: taken when a TURN server sent it, handed back
    /// when not.
    pub(super) fn take_turn_datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: BytesMut,
    ) -> Result<(), BytesMut> {
        self.relays
            .handle_datagram(Instant::now(), local, remote, datagram)?;
        self.after_relays();
        Ok(())
    }

    /// Runs the relays' timers that are due.
    pub(super) fn on_relay_timers(&mut self) {
        self.relays
            .handle_timeout(Instant::now(), SystemTime::now());
        self.after_relays();
    }

    /// Takes what the relays produced: datagrams viewers sent through them, requests for the
    /// servers, and new relayed addresses (for the answers, and for the offers waiting).
    fn after_relays(&mut self) {
        let now = Instant::now();
        while let Some(received) = self.relays.poll_received() {
            let Some(key) = self
                .demux
                .route(received.relayed, received.peer, &received.bytes)
            else {
                tracing::trace!(relayed = %received.relayed, peer = %received.peer, "relayed datagram for no viewer");
                continue;
            };
            if let Some(viewer) = self.viewers.get_mut(&key) {
                viewer
                    .peer
                    .handle_datagram(now, received.relayed, received.peer, received.bytes);
                self.after(key);
            }
        }
        self.send_to_servers();
        if self.relays.take_changed() {
            self.update_candidates();
            if !self.relays.relayed().is_empty() {
                for (_, request) in std::mem::take(&mut self.waiting) {
                    self.join(now, request);
                }
            }
        }
    }

    /// Requests the relays have for their servers go out on their sockets.
    pub(super) fn send_to_servers(&mut self) {
        while let Some(out) = self.relays.poll_to_server() {
            if !queue_on(&mut self.sockets, out.local, out.server, &out.bytes) {
                tracing::debug!(local = %out.local, "a TURN request from no socket of ours");
            }
        }
    }
}

fn no_relay() -> SessionError {
    SessionError::Setup(
        "relay-only ICE, and no TURN relay is allocated (is a TURN server over UDP configured \
         and answering?)"
            .to_owned(),
    )
}
