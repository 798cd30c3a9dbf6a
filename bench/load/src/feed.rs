//! The feeder: replays one recorded H.264 RTP stream (RFC 4571 framing, as GStreamer's
//! `rtpstreampay` writes it) in a loop, in real time, to every server at once, so each gets
//! the same packets. A counter SEI goes in front of each frame's first slice (with the access
//! unit delimiter x264 starts every frame with), and the send time of each frame's last packet
//! is kept per server for the latency measurement.

use crate::sei;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const RTP_CLOCK_HZ: f64 = 90_000.0;
/// Send times kept per server: far more frames than any latency the bench would accept.
const CLOCK_SLOTS: usize = 4096;

/// One recorded frame: its packets (raw RTP) and its RTP timestamp.
struct RecordedFrame {
    timestamp: u32,
    packets: Vec<Vec<u8>>,
}

pub struct Recording {
    frames: Vec<RecordedFrame>,
    /// Timestamp units per frame, from the recording.
    frame_ticks: u32,
    pub bytes: usize,
    pub packets: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot read the stream file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the stream file is not RFC 4571 framed H.264 RTP: {0}")]
    Format(String),
}

impl Recording {
    pub fn load(path: &Path) -> Result<Recording, FeedError> {
        let raw = std::fs::read(path)?;
        let mut rest = &raw[..];
        let mut frames: Vec<RecordedFrame> = Vec::new();
        let mut packets = 0;
        while rest.len() >= 2 {
            let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let packet = rest
                .get(2..2 + size)
                .ok_or_else(|| FeedError::Format("truncated packet".into()))?;
            if size < 13 || packet[0] >> 6 != 2 || packet[0] & 0x30 != 0 {
                return Err(FeedError::Format(
                    "expected plain RTP v2 without CSRC or extension".into(),
                ));
            }
            let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
            match frames.last_mut() {
                Some(frame) if frame.timestamp == timestamp => frame.packets.push(packet.to_vec()),
                _ => frames.push(RecordedFrame {
                    timestamp,
                    packets: vec![packet.to_vec()],
                }),
            }
            packets += 1;
            rest = &rest[2 + size..];
        }
        if frames.len() < 2 {
            return Err(FeedError::Format("fewer than two frames".into()));
        }
        let span = frames
            .last()
            .unwrap()
            .timestamp
            .wrapping_sub(frames[0].timestamp);
        let intervals = frames.len() as u32 - 1;
        let frame_ticks = (span + intervals / 2) / intervals;
        Ok(Recording {
            frames,
            frame_ticks,
            bytes: raw.len(),
            packets,
        })
    }

    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    pub fn fps(&self) -> f64 {
        RTP_CLOCK_HZ / f64::from(self.frame_ticks)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames.len() as f64 / self.fps())
    }

    pub fn bitrate_kbps(&self) -> f64 {
        // RTP payload and header, as on the wire minus UDP/IP.
        (self.bytes - 2 * self.packets) as f64 * 8.0 / self.duration().as_secs_f64() / 1000.0
    }
}

/// When each frame's last packet left for one server, by frame counter.
pub struct FrameClock {
    epoch: Instant,
    counters: Vec<AtomicU64>,
    sent_nanos: Vec<AtomicU64>,
}

impl FrameClock {
    fn new(epoch: Instant) -> FrameClock {
        FrameClock {
            epoch,
            counters: (0..CLOCK_SLOTS).map(|_| AtomicU64::new(u64::MAX)).collect(),
            sent_nanos: (0..CLOCK_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A clock no feeder writes to: every `sent_at` is `None`.
    pub fn unfed() -> FrameClock {
        FrameClock::new(Instant::now())
    }

    fn record(&self, counter: u64, at: Instant) {
        let slot = counter as usize % CLOCK_SLOTS;
        self.counters[slot].store(u64::MAX, Ordering::Release);
        self.sent_nanos[slot].store(
            at.duration_since(self.epoch).as_nanos() as u64,
            Ordering::Release,
        );
        self.counters[slot].store(counter, Ordering::Release);
    }

    /// When frame `counter` was sent, if it still is in the table.
    pub fn sent_at(&self, counter: u64) -> Option<Instant> {
        let slot = counter as usize % CLOCK_SLOTS;
        if self.counters[slot].load(Ordering::Acquire) != counter {
            return None;
        }
        let nanos = self.sent_nanos[slot].load(Ordering::Acquire);
        (self.counters[slot].load(Ordering::Acquire) == counter)
            .then(|| self.epoch + Duration::from_nanos(nanos))
    }
}

/// The running feeder; dropping it stops the sending thread.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// One per destination, in the order given.
    pub clocks: Vec<Arc<FrameClock>>,
}

impl Feeder {
    pub fn start(recording: Recording, destinations: Vec<SocketAddr>) -> std::io::Result<Feeder> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let epoch = Instant::now();
        let clocks: Vec<_> = destinations
            .iter()
            .map(|_| Arc::new(FrameClock::new(epoch)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, clocks) = (stop.clone(), clocks.clone());
            std::thread::Builder::new()
                .name("feeder".into())
                .spawn(move || replay(&recording, &socket, &destinations, &clocks, &stop))?
        };
        Ok(Feeder {
            stop,
            thread: Some(thread),
            clocks,
        })
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const NAL_AUD: u8 = 9;
const NAL_STAP_A: u8 = 24;

fn is_access_unit_delimiter(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b & 0x1f == NAL_AUD)
}

fn is_slice_start(payload: &[u8]) -> bool {
    match payload.first().map(|b| b & 0x1f) {
        Some(1 | 5) => true,
        // FU-A start fragment of a slice.
        Some(28) => payload
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && matches!(h & 0x1f, 1 | 5)),
        _ => false,
    }
}

fn replay(
    recording: &Recording,
    socket: &UdpSocket,
    destinations: &[SocketAddr],
    clocks: &[Arc<FrameClock>],
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let frame_period = Duration::from_secs_f64(1.0 / recording.fps());
    let loop_ticks = recording
        .frame_ticks
        .wrapping_mul(recording.frames.len() as u32);
    let mut sequence: u16 = 0;
    let mut counter: u64 = 0;
    let mut buf = Vec::with_capacity(1500);
    for lap in 0u32.. {
        for frame in &recording.frames {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let due = start + frame_period * counter as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let timestamp = frame.timestamp.wrapping_add(loop_ticks.wrapping_mul(lap));
            let mut sei_sent = false;
            for packet in &frame.packets {
                if !sei_sent && is_access_unit_delimiter(&packet[12..]) {
                    // AUD and SEI in one STAP-A: the stream keeps its packet count, so neither
                    // server forwards more packets than it would without the bench's marker.
                    let aud = &packet[12..];
                    let sei = sei::nal(counter);
                    buf.clear();
                    buf.extend_from_slice(&packet[..12]);
                    buf.push(NAL_STAP_A | (aud[0] & 0x60));
                    for nal in [aud, sei.as_slice()] {
                        buf.extend_from_slice(&(nal.len() as u16).to_be_bytes());
                        buf.extend_from_slice(nal);
                    }
                    let last = packet[1] & 0x80 != 0;
                    send(
                        socket,
                        destinations,
                        &mut buf,
                        &mut sequence,
                        timestamp,
                        last.then_some((clocks, counter)),
                    );
                    sei_sent = true;
                    continue;
                }
                if !sei_sent && is_slice_start(&packet[12..]) {
                    // No AUD to ride with: the SEI goes in a packet of its own.
                    buf.clear();
                    buf.extend_from_slice(&packet[..12]);
                    buf[1] &= 0x7f; // no marker
                    buf.extend_from_slice(&sei::nal(counter));
                    send(
                        socket,
                        destinations,
                        &mut buf,
                        &mut sequence,
                        timestamp,
                        None,
                    );
                    sei_sent = true;
                }
                buf.clear();
                buf.extend_from_slice(packet);
                let last = packet[1] & 0x80 != 0;
                send(
                    socket,
                    destinations,
                    &mut buf,
                    &mut sequence,
                    timestamp,
                    last.then_some((clocks, counter)),
                );
            }
            counter += 1;
        }
    }
}

fn send(
    socket: &UdpSocket,
    destinations: &[SocketAddr],
    packet: &mut [u8],
    sequence: &mut u16,
    timestamp: u32,
    frame_end: Option<(&[Arc<FrameClock>], u64)>,
) {
    packet[2..4].copy_from_slice(&sequence.to_be_bytes());
    packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
    *sequence = sequence.wrapping_add(1);
    for (index, destination) in destinations.iter().enumerate() {
        // A server that is not up yet refuses the datagram; it simply misses it.
        let _ = socket.send_to(packet, destination);
        if let Some((clocks, counter)) = frame_end {
            clocks[index].record(counter, Instant::now());
        }
    }
}
