//! One UDP socket of an egress loop, bound once and kept: it carries every viewer whose
//! candidate it is. Sends are queued per viewer and leave in GSO runs (`udp_batch.rs` groups
//! them), so a frame to one viewer is a few trips through the kernel, not one per packet.

use crate::egress::udp_batch::{Route, SendQueue};
use quinn_udp::{Transmit, UdpSockRef, UdpSocketState};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The kernel's send buffer we ask for: a keyframe to a few hundred viewers.
const SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// How long a full send buffer may hold the loop up before the rest of a batch is dropped.
const WRITABLE_WAIT: Duration = Duration::from_millis(20);

pub struct EgressSocket {
    socket: Arc<UdpSocket>,
    state: UdpSocketState,
    local: SocketAddr,
    queue: SendQueue,
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sends: u64,
    /// Datagrams not sent: the kernel refused them or its buffer stayed full.
    pub dropped: u64,
}

impl EgressSocket {
    pub fn bind(addr: SocketAddr) -> io::Result<EgressSocket> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // Best effort: a smaller buffer only drops sooner under a burst.
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), SEND_BUFFER_BYTES);
        let local = socket.local_addr()?;
        Ok(EgressSocket {
            socket: Arc::new(UdpSocket::from_std(socket)?),
            state,
            local,
            queue: SendQueue::default(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The socket for the task that reads it; sends stay with the loop.
    pub fn reader(&self) -> Arc<UdpSocket> {
        Arc::clone(&self.socket)
    }

    /// Queues a datagram; [`flush`](Self::flush) sends what is queued.
    pub fn queue(&mut self, destination: SocketAddr, datagram: &[u8]) {
        let route = Route {
            destination,
            source: None,
            ecn: None,
        };
        self.queue.push(route, datagram);
    }

    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Sends everything queued, runs of equal-sized datagrams to one address as one GSO send.
    pub async fn flush(&mut self) -> Flushed {
        let mut flushed = Flushed::default();
        let max_segments = self.state.max_gso_segments();
        let queue = std::mem::take(&mut self.queue);
        for run in queue.runs(max_segments) {
            let count = run
                .segment_size
                .map_or(1, |size| run.contents.len().div_ceil(size)) as u64;
            let transmit = Transmit {
                destination: run.route.destination,
                ecn: None,
                contents: run.contents,
                segment_size: run.segment_size,
                src_ip: None,
            };
            match self.send(&transmit).await {
                Ok(()) => flushed.sends += 1,
                // A card that cannot do GSO refuses it: the datagrams one by one instead.
                Err(_) if run.segment_size.is_some() && self.state.max_gso_segments() <= 1 => {
                    for datagram in run.contents.chunks(run.segment_size.unwrap_or(1)) {
                        let single = Transmit {
                            contents: datagram,
                            segment_size: None,
                            ..transmit
                        };
                        match self.send(&single).await {
                            Ok(()) => flushed.sends += 1,
                            Err(_) => flushed.dropped += 1,
                        }
                    }
                }
                Err(err) => {
                    // A viewer that left makes these (ICMP port unreachable) until it is
                    // given up.
                    tracing::trace!(destination = %run.route.destination, "UDP send failed: {err}");
                    flushed.dropped += count;
                }
            }
        }
        let mut queue = queue;
        queue.clear();
        if queue.worth_keeping() {
            self.queue = queue;
        }
        flushed
    }

    async fn send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let attempt = || {
            self.socket.try_io(Interest::WRITABLE, || {
                self.state
                    .try_send(UdpSockRef::from(&*self.socket), transmit)
            })
        };
        match attempt() {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(WRITABLE_WAIT, self.socket.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))??;
                attempt()
            }
            sent => sent,
        }
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod socket_tests;
