//! A UDP socket whose sends are queued and sent together once the connection's driver has
//! run out of work (`udp_batch.rs` says how they are grouped).
//!
//! Why: webrtc-rs's driver sends each RTP packet with its own `sendmsg`, so a 9-packet frame
//! to 100 viewers is 900 trips through the kernel's send path, the largest cost in the
//! profile. Queued here, each viewer's frame leaves in a few GSO sends. A datagram is
//! reported sent once it is queued, as with the kernel's own socket buffer; a full queue
//! makes the driver wait, as a full socket buffer would.

use crate::webrtc::udp_batch::{Route, Run, SendQueue};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use webrtc::runtime::{AsyncUdpSocket, EcnCodepoint, RecvMeta, Runtime, Transmit};

/// A UDP socket whose sends are queued and sent by a task of their own.
pub struct BatchedSocket(Arc<Shared>);

impl BatchedSocket {
    /// `socket` does the sending; `runtime` runs the task that sends.
    pub fn new(socket: Arc<dyn AsyncUdpSocket>, runtime: Arc<dyn Runtime>) -> Self {
        Self(Arc::new(Shared {
            socket,
            runtime,
            state: Mutex::default(),
        }))
    }
}

struct Shared {
    socket: Arc<dyn AsyncUdpSocket>,
    runtime: Arc<dyn Runtime>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: SendQueue,
    /// The last sent queue, emptied, to be swapped in next time (no allocation per frame).
    spare: SendQueue,
    /// A task is sending, or about to: it will pick up whatever is queued.
    sending: bool,
    /// Senders waiting for room in the queue.
    waiting: Vec<Waker>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The lock guards no invariant a panic could break halfway.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends until the queue stays empty.
    async fn send_queued(self: Arc<Self>) {
        loop {
            let (mut batch, waiting) = {
                let mut state = self.state();
                if state.queue.is_empty() {
                    state.sending = false;
                    return;
                }
                let spare = std::mem::take(&mut state.spare);
                let batch = std::mem::replace(&mut state.queue, spare);
                (batch, std::mem::take(&mut state.waiting))
            };
            waiting.into_iter().for_each(Waker::wake);
            let max_segments = self.socket.max_gso_segments();
            for run in batch.runs(max_segments) {
                if let Err(err) = self.send_run(&run).await {
                    // What the driver would have logged for its own send; a viewer that left
                    // makes these (ICMP port unreachable) until its connection closes.
                    tracing::debug!(
                        destination = %run.route.destination,
                        bytes = run.contents.len(),
                        "UDP send failed: {err}"
                    );
                }
            }
            batch.clear();
            if batch.worth_keeping() {
                self.state().spare = batch;
            }
        }
    }

    async fn send_run(&self, run: &Run<'_>) -> io::Result<()> {
        let sent = self.send(run.route, run.contents, run.segment_size).await;
        match (sent, run.segment_size) {
            // A network card that cannot do GSO refuses it (EIO or EINVAL), and the socket
            // stops offering it: send this run's datagrams one by one instead of losing them.
            (Err(_), Some(size)) if self.socket.max_gso_segments() <= 1 => {
                for datagram in run.contents.chunks(size) {
                    self.send(run.route, datagram, None).await?;
                }
                Ok(())
            }
            (sent, _) => sent,
        }
    }

    async fn send(
        &self,
        route: Route,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination: route.destination,
            ecn: route.ecn.and_then(EcnCodepoint::from_bits),
            contents,
            segment_size,
            src_ip: route.source,
        };
        std::future::poll_fn(|cx| self.socket.poll_send(cx, &transmit))
            .await
            .map(drop)
    }
}

impl fmt::Debug for BatchedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchedSocket")
            .field("socket", &self.0.socket)
            .field("queued_bytes", &self.0.state().queue.len_bytes())
            .finish()
    }
}

impl AsyncUdpSocket for BatchedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.socket.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let mut state = self.0.state();
        if !state.queue.has_room(transmit.contents.len()) {
            if !state
                .waiting
                .iter()
                .any(|waker| waker.will_wake(cx.waker()))
            {
                state.waiting.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let route = Route {
            destination: transmit.destination,
            source: transmit.src_ip,
            ecn: transmit.ecn.map(|ecn| ecn as u8),
        };
        match transmit.segment_size {
            Some(size) => state.queue.push_segmented(route, transmit.contents, size),
            None => state.queue.push(route, transmit.contents),
        }
        if !std::mem::replace(&mut state.sending, true) {
            drop(state);
            // Not sent from here: the task runs when the driver yields, usually after it has
            // queued the rest of the frame.
            self.0
                .runtime
                .spawn(Box::pin(self.0.clone().send_queued()))
                .detach();
        }
        Poll::Ready(Ok(transmit.contents.len()))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.0.socket.poll_recv(cx, bufs, meta)
    }

    /// Callers may hand over their own GSO sends; they are queued as their datagrams.
    fn max_gso_segments(&self) -> usize {
        self.0.socket.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.0.socket.max_gro_segments()
    }
}
