//! The audio side of the hub. Every Opus packet decodes on its own, so there are no
//! keyframes to wait for: each viewer gets a small bounded queue, and a full queue loses the
//! packet (counted) rather than delay anyone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::{Notify, mpsc};

/// A packet shared by every viewer.
pub type AudioPacket = Arc<rtc::rtp::Packet>;

/// Packets a viewer may fall behind: 0.5 s of 20 ms Opus frames.
pub const AUDIO_QUEUE_PACKETS: usize = 25;

struct Slot {
    id: u64,
    tx: mpsc::Sender<AudioPacket>,
    dropped: Arc<AtomicU64>,
    /// Woken after each packet queued, for a consumer that polls its queue (an egress loop).
    waker: Option<Arc<Notify>>,
}

#[derive(Default)]
struct State {
    viewers: Vec<Slot>,
    next_id: u64,
    packets_in: u64,
    dropped_total: u64,
}

#[derive(Default)]
pub struct AudioHub {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AudioStats {
    pub viewers: usize,
    pub packets_in: u64,
    pub dropped_packets: u64,
}

impl AudioHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called from the pipeline's streaming thread for every Opus packet; never blocks.
    pub fn publish(&self, packet: AudioPacket) {
        let mut state = self.lock();
        state.packets_in += 1;
        let mut dropped = 0;
        state
            .viewers
            .retain(|slot| match slot.tx.try_send(Arc::clone(&packet)) {
                Ok(()) => {
                    if let Some(waker) = &slot.waker {
                        waker.notify_one();
                    }
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.dropped.fetch_add(1, Ordering::Relaxed);
                    dropped += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        state.dropped_total += dropped;
    }

    pub fn subscribe(self: &Arc<Self>) -> AudioQueue {
        self.subscribe_waking(None)
    }

    /// A queue whose new packets wake `waker`, for a consumer that takes them with
    /// [`AudioQueue::try_next_packet`].
    pub fn subscribe_waking(self: &Arc<Self>, waker: Option<Arc<Notify>>) -> AudioQueue {
        let (tx, rx) = mpsc::channel(AUDIO_QUEUE_PACKETS);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.viewers.push(Slot {
            id,
            tx,
            dropped: Arc::clone(&dropped),
            waker,
        });
        AudioQueue {
            id,
            rx,
            dropped,
            hub: Arc::downgrade(self),
        }
    }

    pub fn stats(&self) -> AudioStats {
        let state = self.lock();
        AudioStats {
            viewers: state.viewers.len(),
            packets_in: state.packets_in,
            dropped_packets: state.dropped_total,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().viewers.retain(|slot| slot.id != id);
    }
}

/// The hub a queue belonged to is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// One viewer's audio queue; dropping it leaves the hub.
pub struct AudioQueue {
    id: u64,
    rx: mpsc::Receiver<AudioPacket>,
    dropped: Arc<AtomicU64>,
    hub: Weak<AudioHub>,
}

impl AudioQueue {
    pub async fn next_packet(&mut self) -> Option<AudioPacket> {
        self.rx.recv().await
    }

    /// The next packet if one is queued; `Err` once the hub is gone.
    pub fn try_next_packet(&mut self) -> Result<Option<AudioPacket>, Gone> {
        match self.rx.try_recv() {
            Ok(packet) => Ok(Some(packet)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(Gone),
        }
    }

    pub fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }
}

impl Drop for AudioQueue {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> AudioPacket {
        let mut p = rtc::rtp::Packet::default();
        p.header.sequence_number = seq;
        Arc::new(p)
    }

    fn drain(queue: &mut AudioQueue) -> Vec<u16> {
        let mut out = Vec::new();
        while let Ok(p) = queue.rx.try_recv() {
            out.push(p.header.sequence_number);
        }
        out
    }

    #[test]
    fn full_queue_loses_packets_for_that_viewer_only() {
        let hub = AudioHub::new();
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for seq in 0..AUDIO_QUEUE_PACKETS as u16 + 3 {
            hub.publish(packet(seq));
            if seq % 5 == 4 {
                drain(&mut fast);
            }
        }
        assert_eq!(slow.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(fast.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(drain(&mut slow).len(), AUDIO_QUEUE_PACKETS);
        hub.publish(packet(100));
        assert_eq!(
            drain(&mut slow),
            vec![100],
            "a drained queue receives again"
        );
        assert_eq!(hub.stats().dropped_packets, 3);
    }

    #[test]
    fn dropped_queue_leaves_the_hub() {
        let hub = AudioHub::new();
        let queue = hub.subscribe();
        assert_eq!(hub.stats().viewers, 1);
        drop(queue);
        assert_eq!(hub.stats().viewers, 0);
    }
}
