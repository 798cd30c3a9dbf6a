//! The egress loop's STUN rounds: binding requests from every socket to every STUN server of
//! its family, asked again until each answers or the round gives up, and the public address
//! each answer names (the sockets' server-reflexive candidates). A new round a while later
//! catches a router that maps a socket anew. No sockets and no clock: the loop passes both in.

use crate::egress::stun::{self, Transaction};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Requests per round before a server counts as not answering.
const TRIES: u32 = 6;
const RETRY: Duration = Duration::from_millis(500);
/// How often the public addresses are checked again (a router may map them anew).
const REFRESH: Duration = Duration::from_secs(60);

/// A binding request for a STUN server, from one of the loop's sockets.
#[derive(Debug)]
pub struct BindingRequest {
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Asking STUN servers what each socket looks like from outside.
#[derive(Default)]
pub struct Reflexive {
    servers: Vec<SocketAddr>,
    /// Requests out: transaction → (our socket, the server).
    pending: HashMap<Transaction, (SocketAddr, SocketAddr)>,
    /// (socket, server) pairs answered in this round.
    answered: HashSet<(SocketAddr, SocketAddr)>,
    /// What the servers saw: (socket, its public address).
    seen: Vec<(SocketAddr, SocketAddr)>,
    /// Requests sent in this round so far, per pair.
    tries: u32,
    due: Option<Instant>,
    /// The public addresses changed since last asked.
    changed: bool,
}

impl Reflexive {
    /// Asks `servers` from `now` on; with none, never.
    pub fn new(now: Instant, servers: Vec<SocketAddr>) -> Self {
        let due = (!servers.is_empty()).then_some(now);
        Self {
            servers,
            due,
            ..Self::default()
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }

    /// The requests of the round's next try from each of `sockets` to every server that has
    /// not answered it yet; after the last try, none, and the next round in a while.
    pub fn handle_timeout(&mut self, now: Instant, sockets: &[SocketAddr]) -> Vec<BindingRequest> {
        if self.tries >= TRIES {
            for socket in sockets {
                for server in &self.servers {
                    if !self.answered.contains(&(*socket, *server)) {
                        tracing::warn!(%socket, %server, "the STUN server did not answer");
                    }
                }
            }
            self.next_round(now);
            return Vec::new();
        }
        self.tries += 1;
        let mut requests = Vec::new();
        for &local in sockets {
            for &server in &self.servers {
                if server.is_ipv4() != local.is_ipv4() || self.answered.contains(&(local, server)) {
                    continue;
                }
                let transaction: Transaction = rand::random();
                self.pending.insert(transaction, (local, server));
                requests.push(BindingRequest {
                    local,
                    server,
                    bytes: stun::binding_request(&transaction),
                });
            }
        }
        self.due = Some(now + RETRY);
        requests
    }

    /// A datagram from `remote`: true when it was a STUN server's answer to one of our
    /// requests. `sockets` are the loop's, to tell when the round is complete.
    pub fn handle_answer(
        &mut self,
        now: Instant,
        sockets: &[SocketAddr],
        remote: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        if !self.servers.contains(&remote) {
            return false;
        }
        let Some((transaction, seen)) = stun::binding_success(datagram) else {
            return false;
        };
        let Some((local, server)) = self.pending.remove(&transaction) else {
            return false;
        };
        self.answered.insert((local, server));
        let known = self
            .seen
            .iter()
            .any(|&(base, addr)| base == local && addr == seen);
        if !known {
            self.seen.retain(|&(base, _)| base != local);
            self.seen.push((local, seen));
            self.changed = true;
            tracing::info!(socket = %local, public = %seen, %server, "public address from STUN");
        }
        let expected = sockets
            .iter()
            .map(|local| {
                self.servers
                    .iter()
                    .filter(|server| server.is_ipv4() == local.is_ipv4())
                    .count()
            })
            .sum::<usize>();
        if self.answered.len() >= expected {
            // Everyone answered: the next round in a while.
            self.next_round(now);
        }
        true
    }

    /// What the servers saw: (socket, its public address).
    pub fn addresses(&self) -> &[(SocketAddr, SocketAddr)] {
        &self.seen
    }

    /// True (once) when the public addresses changed.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn next_round(&mut self, now: Instant) {
        self.tries = 0;
        self.answered.clear();
        self.pending.clear();
        self.due = Some(now + REFRESH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_round_asks_servers_of_the_sockets_family_until_it_gives_up() {
        let now = Instant::now();
        let (v4, v6) = (addr("203.0.113.9:3478"), addr("[2001:db8::9]:3478"));
        let mut reflexive = Reflexive::new(now, vec![v4, v6]);
        assert_eq!(reflexive.poll_timeout(), Some(now));
        let sockets = [addr("10.0.0.2:40000")];
        for _ in 0..TRIES {
            let requests = reflexive.handle_timeout(now, &sockets);
            let asked: Vec<_> = requests.iter().map(|r| (r.local, r.server)).collect();
            assert_eq!(asked, [(sockets[0], v4)], "IPv4 asks IPv4 only");
            assert_eq!(reflexive.poll_timeout(), Some(now + RETRY));
        }
        assert!(reflexive.handle_timeout(now, &sockets).is_empty());
        assert_eq!(
            reflexive.poll_timeout(),
            Some(now + REFRESH),
            "asked again later"
        );
        assert!(reflexive.addresses().is_empty());
    }

    #[test]
    fn with_no_server_nothing_is_asked_and_nothing_is_an_answer() {
        let mut reflexive = Reflexive::new(Instant::now(), Vec::new());
        assert_eq!(reflexive.poll_timeout(), None);
        let from = addr("203.0.113.9:3478");
        assert!(!reflexive.handle_answer(Instant::now(), &[], from, &[0; 32]));
    }
}
