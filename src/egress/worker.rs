//! The egress loop: one task that owns the UDP sockets, the timers and every viewer on it.
//! Frames from the hub wake it once; each viewer's packets then leave as one batch. Viewers
//! are [`ViewerPeer`] state machines; HTTP handlers reach them through [`EgressLoop`]'s
//! messages, so nothing here is shared behind a lock and nothing waits on one viewer.

use crate::egress::candidates::LocalCandidate;
use crate::egress::certificate::LoopCertificate;
use crate::egress::demux::{Demux, ViewerKey};
use crate::egress::peer::{Connection, PeerEvent, Sent, Transmit, ViewerPeer};
use crate::egress::reflexive::Reflexive;
use crate::egress::relay::{Relays, TurnServer};
use crate::egress::socket::EgressSocket;
use crate::egress::tcp::{self, TcpEvent};
use crate::fanout::audio::AudioQueue;
use crate::fanout::{Hubs, ViewerQueue};
use crate::webrtc::api::PeerSettings;
use crate::webrtc::offer::OfferSummary;
use crate::webrtc::sdpfrag::SdpFrag;
use crate::webrtc::session::{SessionError, ViewerStats};
use crate::webrtc::totals::Totals;
use bytes::BytesMut;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

#[path = "relayed.rs"]
mod relayed;

/// Datagrams received and not yet handled before more are dropped (viewers send little:
/// checks, RTCP, DTLS).
const INCOMING_QUEUE: usize = 4096;
/// Bytes of media one viewer is given per pass of the loop: a keyframe, not a whole replayed
/// GOP at once, so a burst neither floods the viewer's receive buffer nor holds up the other
/// viewers; the rest goes in the next passes.
const PASS_BYTES: u64 = 64 * 1024;
/// The pause between two passes of a burst: 64 KiB per 2 ms is 250 Mbit/s per viewer, far
/// above any stream, far below what overflows a receive buffer.
const PASS_PAUSE: Duration = Duration::from_millis(2);
/// Largest datagram read.
const RECEIVE_BUFFER: usize = 2048;
/// How long resolving a STUN or TURN server's name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a viewer ended, for the log.
pub type EndReason = &'static str;

/// What the HTTP side asks of the loop.
enum Command {
    Join(JoinRequest),
    Candidates {
        key: ViewerKey,
        frag: SdpFrag,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Restart {
        key: ViewerKey,
        frag: SdpFrag,
        reply: oneshot::Sender<Result<String, SessionError>>,
    },
    Leave {
        key: ViewerKey,
    },
}

/// A viewer's offer.
struct JoinRequest {
    offer: String,
    wanted: OfferSummary,
    stats: Arc<ViewerStats>,
    /// Where the viewer's HTTP request came from: likely where its media comes from too.
    remote: Option<SocketAddr>,
    reply: oneshot::Sender<Result<Joined, SessionError>>,
}

/// A viewer the loop answered.
pub struct Joined {
    pub key: ViewerKey,
    pub answer: String,
    pub remote_ufrag: Option<String>,
    pub has_video: bool,
    pub has_audio: bool,
    pub rtx: bool,
    /// Resolves with the reason once the loop has let the viewer go.
    pub ended: oneshot::Receiver<EndReason>,
}

/// The handle HTTP handlers and sessions hold.
#[derive(Clone)]
pub struct EgressLoop {
    tx: mpsc::UnboundedSender<Command>,
}

impl EgressLoop {
    /// Binds `sockets` (already bound, kept for the daemon's life) and starts the loop.
    pub fn start(
        parts: LoopParts,
        addresses: Addresses,
        candidates: Vec<LocalCandidate>,
        settings: PeerSettings,
        hubs: Hubs,
        connect_timeout: Duration,
        totals: Arc<Totals>,
    ) -> EgressLoop {
        let (tx, rx) = mpsc::unbounded_channel();
        let LoopParts {
            sockets,
            tcp_events,
            certificate,
        } = parts;
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let candidates = Arc::new(candidates);
        let relay_only = settings.relay_only;
        let worker = Worker {
            commands: rx,
            incoming,
            tcp_events,
            tcp_writers: HashMap::new(),
            certificate,
            media: Arc::new(Notify::new()),
            sockets: Vec::new(),
            candidates,
            settings,
            hubs,
            connect_timeout,
            totals,
            viewers: HashMap::new(),
            watching: Vec::new(),
            demux: Demux::default(),
            timers: BinaryHeap::new(),
            next_key: 1,
            paced: None,
            addresses,
            reflexive: Reflexive::default(),
            relays: Relays::new(relay_only),
            waiting: Vec::new(),
        };
        let mut worker = worker;
        for socket in sockets {
            tokio::spawn(receive(
                socket.local_addr(),
                socket.reader(),
                incoming_tx.clone(),
            ));
            worker.sockets.push(socket);
        }
        tokio::spawn(worker.run());
        EgressLoop { tx }
    }

    pub async fn join(
        &self,
        offer: String,
        wanted: OfferSummary,
        stats: Arc<ViewerStats>,
        remote: Option<SocketAddr>,
    ) -> Result<Joined, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Join(JoinRequest {
            offer,
            wanted,
            stats,
            remote,
            reply,
        }))?;
        rx.await.map_err(|_| gone())?
    }

    pub async fn add_candidates(&self, key: ViewerKey, frag: SdpFrag) -> Result<(), SessionError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Candidates { key, frag, reply })?;
        rx.await.map_err(|_| gone())?
    }

    pub async fn restart_ice(&self, key: ViewerKey, frag: SdpFrag) -> Result<String, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Restart { key, frag, reply })?;
        rx.await.map_err(|_| gone())?
    }

    /// Lets the viewer go; its `ended` resolves once it has.
    pub fn leave(&self, key: ViewerKey) {
        let _ = self.tx.send(Command::Leave { key });
    }

    fn send(&self, command: Command) -> Result<(), SessionError> {
        self.tx.send(command).map_err(|_| gone())
    }
}

fn gone() -> SessionError {
    SessionError::Setup("the egress loop has stopped".to_owned())
}

/// Reads one socket and hands its datagrams to the loop; a full loop drops them, as a full
/// socket buffer would.
async fn receive(
    local: SocketAddr,
    reader: Arc<tokio::net::UdpSocket>,
    incoming: mpsc::Sender<(SocketAddr, SocketAddr, BytesMut)>,
) {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        // Ends with the loop, which lets its socket go.
        let received = tokio::select! {
            received = reader.recv_from(&mut buf) => received,
            _ = incoming.closed() => return,
        };
        match received {
            Ok((len, remote)) => {
                let datagram = BytesMut::from(&buf[..len]);
                if let Err(mpsc::error::TrySendError::Closed(_)) =
                    incoming.try_send((local, remote, datagram))
                {
                    return;
                }
            }
            // ICMP errors from viewers that left surface here on Linux; keep reading.
            Err(err) => tracing::trace!(%local, "UDP receive: {err}"),
        }
    }
}

struct Viewer {
    peer: ViewerPeer,
    stats: Arc<ViewerStats>,
    joined: Instant,
    connect_deadline: Option<Instant>,
    /// The deadline last put on the timer heap for this viewer.
    scheduled: Option<Instant>,
    video: Option<ViewerQueue>,
    audio: Option<AudioQueue>,
    ended: Option<oneshot::Sender<EndReason>>,
}

struct Worker {
    commands: mpsc::UnboundedReceiver<Command>,
    incoming: mpsc::Receiver<(SocketAddr, SocketAddr, BytesMut)>,
    tcp_events: mpsc::Receiver<TcpEvent>,
    /// What every viewer's DTLS runs with.
    certificate: LoopCertificate,
    /// The open ICE-TCP connections, by path.
    tcp_writers: HashMap<tcp::Path, mpsc::Sender<BytesMut>>,
    /// Woken by the hubs when a viewer's queue has media.
    media: Arc<Notify>,
    sockets: Vec<EgressSocket>,
    candidates: Arc<Vec<LocalCandidate>>,
    settings: PeerSettings,
    hubs: Hubs,
    connect_timeout: Duration,
    totals: Arc<Totals>,
    viewers: HashMap<ViewerKey, Viewer>,
    /// The viewers subscribed to the hubs, in the order they are served.
    watching: Vec<ViewerKey>,
    demux: Demux,
    /// Viewer deadlines; an entry that no longer matches its viewer's `scheduled` is stale.
    timers: BinaryHeap<Reverse<(Instant, ViewerKey)>>,
    next_key: ViewerKey,
    /// When to carry on with a burst that did not fit one pass.
    paced: Option<Instant>,
    addresses: Addresses,
    reflexive: Reflexive,
    relays: Relays,
    /// Offers waiting for a relay (relay-only ICE), with their deadline.
    waiting: Vec<(Instant, JoinRequest)>,
}

/// What the loop is made with: its UDP sockets, what its ICE-TCP listeners hear, and the
/// DTLS certificate of its viewers.
pub struct LoopParts {
    pub sockets: Vec<EgressSocket>,
    pub tcp_events: mpsc::Receiver<TcpEvent>,
    pub certificate: LoopCertificate,
}

/// What the loop's candidates are made of.
pub struct Addresses {
    /// The sockets' own addresses.
    pub bound: Vec<SocketAddr>,
    /// Public addresses a router forwards to them (`nat_1to1_ips`).
    pub public: Vec<std::net::IpAddr>,
    /// `host:port` of the STUN servers that tell each socket its public address.
    pub stun_servers: Vec<String>,
    /// Where viewers reach the TCP listeners (ICE-TCP), if there are any.
    pub tcp: Vec<SocketAddr>,
    /// The TURN servers each socket allocates a relayed address on.
    pub turn_servers: Vec<TurnServer>,
}

impl Worker {
    async fn run(mut self) {
        self.resolve_stun_servers().await;
        self.resolve_turn_servers().await;
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let next_stun = self.reflexive.poll_timeout();
            let next_relay = self.relays.poll_timeout();
            let next_give_up = self.waiting.iter().map(|(at, _)| *at).min();
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = self.media.notified() => self.on_media().await,
                Some((local, remote, datagram)) = self.incoming.recv() => {
                    self.on_datagram(local, remote, datagram);
                    // Take whatever else has arrived before sending.
                    while let Ok((local, remote, datagram)) = self.incoming.try_recv() {
                        self.on_datagram(local, remote, datagram);
                    }
                }
                Some(event) = self.tcp_events.recv() => self.on_tcp(event),
                _ = sleep_until(self.paced) => {
                    self.paced = None;
                    self.on_media().await;
                }
                _ = sleep_until(next_timer) => self.on_timers(),
                _ = sleep_until(next_stun) => self.ask_stun(),
                _ = sleep_until(next_relay) => self.on_relay_timers(),
                _ = sleep_until(next_give_up) => self.give_up_waiting(),
            }
            self.flush().await;
        }
        let keys: Vec<ViewerKey> = self.viewers.keys().copied().collect();
        for key in keys {
            self.end(key, "shutting down");
        }
        self.give_up_waiting();
        self.flush().await;
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Join(request) => self.join_when_relayed(now, request),
            Command::Candidates { key, frag, reply } => {
                let result = match self.viewers.get_mut(&key) {
                    Some(viewer) => viewer.peer.add_remote_candidates(&frag),
                    None => Err(SessionError::Candidate("the session has ended".to_owned())),
                };
                if result.is_ok() && self.settings.relay_only {
                    let lines = frag.candidates.iter().map(|c| c.candidate.as_str());
                    self.permit(now, crate::egress::permits::candidate_addrs(lines));
                }
                let _ = reply.send(result);
                self.after(key);
            }
            Command::Restart { key, frag, reply } => {
                let candidates = Arc::clone(&self.candidates);
                let result = match self.viewers.get_mut(&key) {
                    Some(viewer) => viewer.peer.restart_ice(now, &frag, &candidates),
                    None => Err(SessionError::Negotiation(
                        "the session has ended".to_owned(),
                    )),
                };
                if result.is_ok()
                    && let Some(viewer) = self.viewers.get(&key)
                {
                    self.demux.add_ufrag(viewer.peer.ufrag(), key);
                    tracing::info!("ICE restarted");
                    if self.settings.relay_only {
                        let lines = frag.candidates.iter().map(|c| c.candidate.as_str());
                        self.permit(now, crate::egress::permits::candidate_addrs(lines));
                    }
                }
                let _ = reply.send(result);
                self.after(key);
            }
            Command::Leave { key } => self.end(key, "closed by request"),
        }
    }

    /// Answers a viewer's offer and takes the viewer on.
    fn join(&mut self, now: Instant, request: JoinRequest) {
        let JoinRequest {
            offer,
            wanted,
            stats,
            remote,
            reply,
        } = request;
        if self.settings.relay_only {
            // The viewer's first checks through a relay are dropped unless the server already
            // permits its addresses: those in its offer, and the one its request came from
            // (a browser that names its host addresses by mDNS is only reached through what
            // its checks reveal). With other paths open, permissions follow our own checks
            // instead, so a relayed pair does not outrun a direct one (aiortc nominates the
            // last pair to succeed).
            let lines = offer
                .lines()
                .filter(|line| line.starts_with("a=candidate:"));
            let mut peers = crate::egress::permits::candidate_addrs(lines);
            peers.extend(remote);
            self.permit(now, peers);
        }
        let result = self
            .certificate
            .at(std::time::SystemTime::now())
            .map_err(SessionError::Setup)
            .and_then(|certificate| {
                ViewerPeer::answer(
                    now,
                    &self.settings,
                    offer,
                    &wanted,
                    &self.candidates,
                    certificate,
                )
            });
        let (peer, answer) = match result {
            Ok(answered) => answered,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let key = self.next_key;
        self.next_key += 1;
        self.demux.add_ufrag(peer.ufrag(), key);
        let (ended_tx, ended) = oneshot::channel();
        let joined = Joined {
            key,
            answer,
            remote_ufrag: peer.remote_ufrag().map(str::to_owned),
            has_video: peer.has_video(),
            has_audio: peer.has_audio(),
            rtx: peer.rtx(),
            ended,
        };
        *stats.state.lock().unwrap() = Connection::Connecting;
        self.viewers.insert(
            key,
            Viewer {
                peer,
                stats,
                joined: now,
                connect_deadline: Some(now + self.connect_timeout),
                scheduled: None,
                video: None,
                audio: None,
                ended: Some(ended_tx),
            },
        );
        if reply.send(Ok(joined)).is_err() {
            // The request went away while we answered: nobody will ever use this viewer.
            self.end(key, "the request was abandoned");
            return;
        }
        self.after(key);
    }

    /// The candidates every new viewer is answered with, from what the loop knows now.
    fn update_candidates(&mut self) {
        let addresses = &self.addresses;
        let relay_only = self.settings.relay_only;
        let mut candidates = if relay_only {
            Vec::new()
        } else {
            crate::egress::candidates::all(
                &addresses.bound,
                &addresses.public,
                self.reflexive.addresses(),
                &addresses.tcp,
            )
        };
        candidates.extend(crate::egress::candidates::relayed(
            &self.relays.relayed(),
            relay_only,
        ));
        self.candidates = Arc::new(candidates);
    }

    async fn resolve_stun_servers(&mut self) {
        let mut servers = Vec::new();
        for server in &self.addresses.stun_servers {
            servers.extend(lookup(server, &format!("STUN server {server}")).await);
        }
        self.reflexive = Reflexive::new(Instant::now(), servers);
    }

    /// The STUN round's next binding requests go out on their sockets.
    fn ask_stun(&mut self) {
        let requests = self
            .reflexive
            .handle_timeout(Instant::now(), &self.addresses.bound);
        for request in requests {
            queue_on(
                &mut self.sockets,
                request.local,
                request.server,
                &request.bytes,
            );
        }
    }

    /// A STUN server's answer: true when it was one of ours.
    fn on_stun_answer(&mut self, remote: SocketAddr, datagram: &[u8]) -> bool {
        let ours =
            self.reflexive
                .handle_answer(Instant::now(), &self.addresses.bound, remote, datagram);
        if self.reflexive.take_changed() {
            self.update_candidates();
        }
        ours
    }

    fn on_datagram(&mut self, local: SocketAddr, remote: SocketAddr, datagram: BytesMut) {
        if self.on_stun_answer(remote, &datagram) {
            return;
        }
        let Err(datagram) = self.take_turn_datagram(local, remote, datagram) else {
            return;
        };
        let Some(key) = self.demux.route(local, remote, &datagram) else {
            tracing::trace!(%local, %remote, "datagram for no viewer");
            return;
        };
        let Some(viewer) = self.viewers.get_mut(&key) else {
            return;
        };
        viewer
            .peer
            .handle_datagram(Instant::now(), local, remote, datagram);
        self.after(key);
    }

    fn on_tcp(&mut self, event: TcpEvent) {
        match event {
            TcpEvent::Opened { path, writer } => {
                self.tcp_writers.insert(path, writer);
            }
            TcpEvent::Frame { path, bytes } => {
                let viewer = self
                    .demux
                    .route(path.local, path.remote, &bytes)
                    .filter(|key| self.viewers.contains_key(key));
                let Some(key) = viewer else {
                    // No viewer's check opened it, or its viewer left: the connection ends.
                    tracing::debug!(remote = %path.remote, "ICE-TCP frame for no viewer");
                    self.tcp_writers.remove(&path);
                    return;
                };
                if let Some(viewer) = self.viewers.get_mut(&key) {
                    viewer
                        .peer
                        .handle_tcp_frame(Instant::now(), path.local, path.remote, bytes);
                }
                self.after(key);
            }
            TcpEvent::Closed { path } => {
                self.tcp_writers.remove(&path);
            }
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(viewer) = self.viewers.get_mut(&key) else {
                continue;
            };
            if viewer.scheduled != Some(at) {
                continue;
            }
            viewer.scheduled = None;
            if viewer
                .connect_deadline
                .is_some_and(|deadline| deadline <= now)
            {
                self.end(key, "never connected");
                continue;
            }
            viewer.peer.handle_timeout(now);
            self.after(key);
        }
    }

    /// Every viewer with media queued sends it now, frame by frame.
    async fn on_media(&mut self) {
        let now = Instant::now();
        let mut more = false;
        // Kept, not rebuilt per frame; viewers that end or start watching meanwhile are
        // sorted out after the pass.
        let watching = std::mem::take(&mut self.watching);
        for &key in &watching {
            let Some(viewer) = self.viewers.get_mut(&key) else {
                continue;
            };
            let mut gone = false;
            let mut video_sent = Sent::default();
            let mut frames = 0u64;
            if let Some(queue) = viewer.video.as_mut() {
                loop {
                    if video_sent.bytes >= PASS_BYTES {
                        more = true;
                        break;
                    }
                    match queue.try_next_frame() {
                        Ok(Some(queued)) => {
                            video_sent += viewer.peer.send_frame(now, &queued);
                            frames += 1;
                        }
                        Ok(None) => break,
                        Err(_) => {
                            gone = true;
                            break;
                        }
                    }
                }
            }
            let mut audio_sent = Sent::default();
            if let Some(queue) = viewer.audio.as_mut() {
                loop {
                    match queue.try_next_packet() {
                        Ok(Some(packet)) => audio_sent += viewer.peer.send_audio(now, &packet),
                        Ok(None) => break,
                        Err(_) => {
                            gone = true;
                            break;
                        }
                    }
                }
            }
            let stats = &viewer.stats;
            if frames > 0 {
                stats
                    .packets_sent
                    .fetch_add(video_sent.packets, Ordering::Relaxed);
                stats
                    .bytes_sent
                    .fetch_add(video_sent.bytes, Ordering::Relaxed);
                if stats.frames_sent.fetch_add(frames, Ordering::Relaxed) == 0 {
                    *stats.first_frame_after.lock().unwrap() = Some(viewer.joined.elapsed());
                }
                Totals::add(&self.totals.video_packets, video_sent.packets);
                Totals::add(&self.totals.bytes, video_sent.bytes);
            }
            if audio_sent.packets > 0 {
                stats
                    .audio_packets_sent
                    .fetch_add(audio_sent.packets, Ordering::Relaxed);
                stats
                    .bytes_sent
                    .fetch_add(audio_sent.bytes, Ordering::Relaxed);
                Totals::add(&self.totals.audio_packets, audio_sent.packets);
                Totals::add(&self.totals.bytes, audio_sent.bytes);
            }
            let refused = video_sent.refused + audio_sent.refused;
            if refused > 0 {
                stats.send_errors.fetch_add(refused, Ordering::Relaxed);
            }
            if gone {
                self.end(key, "left the hub");
                continue;
            }
            self.after(key);
            // This viewer's frame leaves now, before the next viewer's is made.
            self.flush().await;
        }
        let started = std::mem::replace(&mut self.watching, watching);
        self.watching.extend(started);
        let viewers = &self.viewers;
        self.watching.retain(|key| viewers.contains_key(key));
        if more {
            // The rest after a pause, so the viewer's receive buffer drains in between.
            self.paced = Some(now + PASS_PAUSE);
        }
    }

    /// Takes what a viewer produced after an input: datagrams into the socket queues, events
    /// into its status, and its next deadline onto the timer heap.
    fn after(&mut self, key: ViewerKey) {
        let Some(viewer) = self.viewers.get_mut(&key) else {
            return;
        };
        let relayed = !self.relays.is_empty();
        while let Some(transmit) = viewer.peer.poll_transmit() {
            self.demux
                .learn_sent(transmit.local, transmit.remote, &transmit.bytes, key);
            send(
                &mut self.sockets,
                &mut self.relays,
                &self.tcp_writers,
                transmit,
            );
        }
        if relayed {
            self.send_to_servers();
        }
        let Some(viewer) = self.viewers.get_mut(&key) else {
            return;
        };
        let mut ended = None;
        while let Some(event) = viewer.peer.poll_event() {
            match event {
                PeerEvent::State(connection) => {
                    *viewer.stats.state.lock().unwrap() = connection;
                    match connection {
                        Connection::Connected if viewer.connect_deadline.take().is_some() => {
                            let pair = viewer.peer.candidate_pair();
                            tracing::info!(
                                pair = pair.as_deref().unwrap_or("?"),
                                "viewer connected"
                            );
                            *viewer.stats.candidate_pair.lock().unwrap() = pair;
                            if viewer.peer.has_video() {
                                let queue = self
                                    .hubs
                                    .video
                                    .subscribe_waking(Some(Arc::clone(&self.media)));
                                *viewer.stats.frames_dropped.lock().unwrap() =
                                    Some(queue.dropped());
                                viewer.video = Some(queue);
                            }
                            if viewer.peer.has_audio() {
                                let queue = self
                                    .hubs
                                    .audio
                                    .subscribe_waking(Some(Arc::clone(&self.media)));
                                *viewer.stats.audio_dropped.lock().unwrap() = Some(queue.dropped());
                                viewer.audio = Some(queue);
                            }
                            if viewer.video.is_some() || viewer.audio.is_some() {
                                self.watching.push(key);
                            }
                        }
                        Connection::Failed => ended = Some("connection failed"),
                        Connection::Closed => ended = Some("connection closed"),
                        _ => {}
                    }
                }
                PeerEvent::Feedback(feedback) => {
                    if viewer.stats.record(&feedback)
                        && self
                            .hubs
                            .video
                            .repair(viewer.video.as_mut(), Instant::now())
                    {
                        self.media.notify_one();
                    }
                }
            }
        }
        if let Some(reason) = ended {
            self.end(key, reason);
            return;
        }
        let deadline = match (viewer.peer.poll_timeout(), viewer.connect_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if deadline != viewer.scheduled {
            viewer.scheduled = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, key)));
            }
        }
    }

    /// Lets a viewer go: its connection closed (the close alert still leaves), its place on
    /// the hubs and every path to it forgotten.
    fn end(&mut self, key: ViewerKey, reason: EndReason) {
        let Some(mut viewer) = self.viewers.remove(&key) else {
            return;
        };
        viewer.peer.close();
        while let Some(transmit) = viewer.peer.poll_transmit() {
            send(
                &mut self.sockets,
                &mut self.relays,
                &self.tcp_writers,
                transmit,
            );
        }
        self.send_to_servers();
        *viewer.stats.state.lock().unwrap() = Connection::Closed;
        self.demux.forget(key);
        self.watching.retain(|watching| *watching != key);
        if let Some(ended) = viewer.ended.take() {
            let _ = ended.send(reason);
        }
    }

    async fn flush(&mut self) {
        for socket in &mut self.sockets {
            if socket.has_queued() {
                let flushed = socket.flush().await;
                if flushed.dropped > 0 {
                    tracing::debug!(dropped = flushed.dropped, "datagrams not sent");
                }
            }
        }
    }
}

/// Sends a viewer's datagram: through the relay when it leaves from a relayed address, else
/// on the socket it names.
fn send(
    sockets: &mut [EgressSocket],
    relays: &mut Relays,
    tcp_writers: &HashMap<tcp::Path, mpsc::Sender<BytesMut>>,
    transmit: Transmit,
) {
    if transmit.tcp {
        let path = tcp::Path {
            local: transmit.local,
            remote: transmit.remote,
        };
        // A full connection loses the packet, as a full socket buffer would.
        if let Some(writer) = tcp_writers.get(&path) {
            let _ = writer.try_send(transmit.bytes);
        }
    } else if relays.is_relayed(transmit.local) {
        relays.send(
            Instant::now(),
            transmit.local,
            transmit.remote,
            transmit.bytes,
        );
    } else {
        queue(sockets, &transmit);
    }
}

/// Queues a viewer's datagram on the socket it names.
fn queue(sockets: &mut [EgressSocket], transmit: &Transmit) {
    if !queue_on(sockets, transmit.local, transmit.remote, &transmit.bytes) {
        tracing::debug!(local = %transmit.local, "a datagram from no socket of ours");
    }
}

/// Queues a datagram on the socket at `local`: false when the loop has none there.
fn queue_on(
    sockets: &mut [EgressSocket],
    local: SocketAddr,
    remote: SocketAddr,
    datagram: &[u8],
) -> bool {
    match sockets
        .iter_mut()
        .find(|socket| socket.local_addr() == local)
    {
        Some(socket) => {
            socket.queue(remote, datagram);
            true
        }
        None => false,
    }
}

/// The addresses of a STUN or TURN server's `host:port`; none (and a warning naming the
/// server) when it has none, or none in time.
async fn lookup(host_port: &str, named: &str) -> Vec<SocketAddr> {
    let resolving = tokio::net::lookup_host(host_port);
    match tokio::time::timeout(RESOLVE_TIMEOUT, resolving).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            tracing::warn!("{named}: {e}");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("{named}: no address within {RESOLVE_TIMEOUT:?}");
            Vec::new()
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
