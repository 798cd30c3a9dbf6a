//! Which viewer addresses a TURN relay is asked to let through, and the datagrams that wait
//! until it does: the server drops what a viewer sends to a relayed address, and refuses what
//! is sent to the viewer, until a permission for the viewer's address is in place. Pure: no IO.

use bytes::BytesMut;
use rtc::stun::message::TransactionId;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Datagrams held per viewer address while the server is asked to permit it; older ones are
/// dropped first (ICE retransmits its checks, and media is sent only once connected).
const HELD_PER_PEER: usize = 32;

/// The addresses of UDP candidates (`candidate:…` lines, with or without `a=`), leaving out
/// mDNS names, which a relay cannot be asked to permit.
pub fn candidate_addrs<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<SocketAddr> {
    lines
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("a=");
            let mut fields = line.strip_prefix("candidate:")?.split_whitespace();
            let transport = fields.nth(2)?;
            let ip = fields.nth(1)?.parse().ok()?;
            let port = fields.next()?.parse().ok()?;
            transport
                .eq_ignore_ascii_case("udp")
                .then(|| SocketAddr::new(ip, port))
        })
        .collect()
}

/// Datagrams for viewer addresses the relay does not permit yet, and the permission requests
/// out for them.
#[derive(Debug, Default)]
pub struct AwaitingPermission {
    /// (relayed address, viewer address) → what waits for it.
    waiting: HashMap<(SocketAddr, SocketAddr), Waiting>,
    /// Request → the pair it asks for.
    requests: HashMap<TransactionId, (SocketAddr, SocketAddr)>,
}

#[derive(Debug, Default)]
struct Waiting {
    asked: bool,
    datagrams: VecDeque<BytesMut>,
}

impl AwaitingPermission {
    /// Holds a datagram for `peer`; the oldest goes when too many wait.
    pub fn hold(&mut self, relayed: SocketAddr, peer: SocketAddr, datagram: BytesMut) {
        let waiting = self.waiting.entry((relayed, peer)).or_default();
        if waiting.datagrams.len() >= HELD_PER_PEER {
            waiting.datagrams.pop_front();
        }
        waiting.datagrams.push_back(datagram);
    }

    /// Whether a permission for `peer` has been asked for and not answered.
    pub fn is_asked(&self, relayed: SocketAddr, peer: SocketAddr) -> bool {
        self.waiting
            .get(&(relayed, peer))
            .is_some_and(|waiting| waiting.asked)
    }

    /// `request` asks for `peer`.
    pub fn asked(&mut self, relayed: SocketAddr, peer: SocketAddr, request: TransactionId) {
        self.waiting.entry((relayed, peer)).or_default().asked = true;
        self.requests.insert(request, (relayed, peer));
    }

    /// The answer to `request`, whether granted or refused: the pair it was for and what
    /// waited for it (to send, or to drop).
    pub fn answered(
        &mut self,
        request: &TransactionId,
    ) -> Option<(SocketAddr, SocketAddr, VecDeque<BytesMut>)> {
        let (relayed, peer) = self.requests.remove(request)?;
        let waiting = self.waiting.remove(&(relayed, peer)).unwrap_or_default();
        Some((relayed, peer, waiting.datagrams))
    }

    /// What waits for `peer`, taken when no request is needed after all.
    pub fn take(&mut self, relayed: SocketAddr, peer: SocketAddr) -> VecDeque<BytesMut> {
        self.waiting
            .remove(&(relayed, peer))
            .map(|waiting| waiting.datagrams)
            .unwrap_or_default()
    }

    /// Forgets everything that waits on an allocation that is gone.
    pub fn forget(&mut self, relayed: SocketAddr) {
        self.waiting.retain(|(addr, _), _| *addr != relayed);
        self.requests.retain(|_, (addr, _)| *addr != relayed);
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.waiting.values().map(|w| w.datagrams.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_addresses_of_udp_candidates_are_read() {
        let sdp = "v=0\r\n\
            a=candidate:1 1 udp 2122260223 10.2.0.2 51000 typ host generation 0\r\n\
            a=candidate:2 1 UDP 1686052607 203.0.113.2 62000 typ srflx raddr 10.2.0.2 rport 51000\r\n\
            a=candidate:3 1 udp 2122260223 4b1e0a2c-1.local 51001 typ host\r\n\
            a=candidate:4 1 tcp 1518280447 10.2.0.2 9 typ host tcptype active\r\n\
            a=mid:0\r\n";
        assert_eq!(
            candidate_addrs(sdp.lines()),
            [addr("10.2.0.2:51000"), addr("203.0.113.2:62000")]
        );
        let trickled =
            "candidate:5 1 udp 41885439 203.0.113.254 49170 typ relay raddr 0.0.0.0 rport 0";
        assert_eq!(
            candidate_addrs([trickled].into_iter()),
            [addr("203.0.113.254:49170")]
        );
    }

    #[test]
    fn datagrams_wait_for_one_permission_request() {
        let (relayed, peer) = (addr("203.0.113.254:49160"), addr("10.2.0.2:51000"));
        let mut awaiting = AwaitingPermission::default();
        awaiting.hold(relayed, peer, BytesMut::from(&b"check 1"[..]));
        assert!(!awaiting.is_asked(relayed, peer));
        let request = TransactionId([1; 12]);
        awaiting.asked(relayed, peer, request);
        assert!(awaiting.is_asked(relayed, peer));
        awaiting.hold(relayed, peer, BytesMut::from(&b"check 2"[..]));
        let (for_relay, for_peer, datagrams) = awaiting.answered(&request).unwrap();
        assert_eq!((for_relay, for_peer), (relayed, peer));
        assert_eq!(datagrams, [&b"check 1"[..], &b"check 2"[..]]);
        assert!(!awaiting.is_asked(relayed, peer));
        assert!(awaiting.answered(&request).is_none());
    }

    #[test]
    fn a_peer_holds_a_bounded_number_of_datagrams() {
        let (relayed, peer) = (addr("203.0.113.254:49160"), addr("10.2.0.2:51000"));
        let mut awaiting = AwaitingPermission::default();
        for n in 0..HELD_PER_PEER + 5 {
            awaiting.hold(relayed, peer, BytesMut::from(n.to_string().as_bytes()));
        }
        assert_eq!(awaiting.held(), HELD_PER_PEER);
        let kept = awaiting.take(relayed, peer);
        assert_eq!(kept.front().unwrap(), &b"5"[..], "the oldest went first");
    }

    #[test]
    fn a_lost_allocation_drops_what_waited_on_it() {
        let relayed = addr("203.0.113.254:49160");
        let mut awaiting = AwaitingPermission::default();
        awaiting.hold(relayed, addr("10.2.0.2:51000"), BytesMut::from(&b"x"[..]));
        awaiting.asked(relayed, addr("10.2.0.2:51000"), TransactionId([1; 12]));
        awaiting.hold(
            addr("203.0.113.254:49170"),
            addr("10.2.0.3:1"),
            BytesMut::new(),
        );
        awaiting.forget(relayed);
        assert_eq!(awaiting.held(), 1);
        assert!(awaiting.answered(&TransactionId([1; 12])).is_none());
    }
}
