//! The hub: one producer (the pipeline's appsink) hands each finished frame to N bounded
//! per-viewer queues. It never blocks: a full queue loses frames up to the next keyframe,
//! and the loss is counted against that viewer only.

pub mod audio;
pub mod feed;
pub mod gop;
pub mod keyframe;
pub mod rate;

use crate::media::rtp::AccessUnit;
use gop::GopCache;
use keyframe::KeyframeGate;
use rate::{RateMeter, Rates};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;
use tokio::sync::{Notify, mpsc};

/// Both hubs, as the viewer sessions need them.
#[derive(Clone)]
pub struct Hubs {
    pub video: Arc<FanoutHub>,
    pub audio: Arc<audio::AudioHub>,
}

/// A frame shared by every viewer; packets are never copied per viewer.
pub type Frame = Arc<AccessUnit>;

/// Frames a viewer may fall behind before it starts losing them: about half a second at
/// 30 fps, beyond which a live picture is no longer live.
pub const DEFAULT_VIEWER_QUEUE_FRAMES: usize = 16;

/// Shortest spacing between two GOP replays to one viewer that lost its picture.
pub const MIN_REPAIR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How a new viewer gets its first picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStart {
    /// The encoder is asked for a keyframe and the viewer starts on it.
    Keyframe,
    /// The source cannot make keyframes on request: the viewer is sent the frames since the
    /// last keyframe at once (see [`gop`]).
    CachedGop,
}

/// A frame as one viewer receives it.
#[derive(Debug, Clone)]
pub struct Queued {
    pub frame: Frame,
    /// For a replayed frame, the source timestamp to send it under instead of its own.
    pub replay_timestamp: Option<u32>,
}

/// Upstream control: what the keyframe-request task hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeEvent {
    /// A viewer joined or reported picture loss.
    Wanted,
    /// The encoder produced a keyframe.
    Produced(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Delivering every frame.
    Open,
    /// Just joined: waiting for the first keyframe (not a loss).
    Joining,
    /// The queue overflowed: frames until the next keyframe are lost and counted.
    Overflowed,
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<Frame>,
    gate: Gate,
    dropped: Arc<AtomicU64>,
    /// Woken after each frame queued, for a consumer that polls its queue (an egress loop).
    waker: Option<Arc<Notify>>,
}

#[derive(Default)]
struct HubState {
    viewers: Vec<Slot>,
    next_id: u64,
    last_frame: Option<Frame>,
    frames_in: u64,
    keyframes_in: u64,
    dropped_total: u64,
    rates: RateMeter,
    last_frame_at: Option<Instant>,
    gop: GopCache,
    replayed_joins: u64,
    replayed_repairs: u64,
}

pub struct FanoutHub {
    state: Mutex<HubState>,
    queue_frames: usize,
    join_start: JoinStart,
    keyframe_events: mpsc::UnboundedSender<KeyframeEvent>,
}

/// What the hub knows about the stream, for status and health.
#[derive(Debug, Clone, Default)]
pub struct HubStats {
    pub viewers: usize,
    pub frames_in: u64,
    pub keyframes_in: u64,
    pub dropped_frames: u64,
    pub rates: Rates,
    pub last_frame_at: Option<Instant>,
    /// Viewers that started on replayed frames rather than waiting for a keyframe.
    pub replayed_joins: u64,
    /// Times a viewer that lost its picture was sent the cached GOP again.
    pub replayed_repairs: u64,
}

impl FanoutHub {
    /// The receiver carries upstream keyframe events; hand it to [`run_keyframe_requests`].
    pub fn new(
        queue_frames: usize,
        join_start: JoinStart,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<KeyframeEvent>) {
        let (keyframe_events, rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Self {
            state: Mutex::new(HubState::default()),
            queue_frames: queue_frames.max(1),
            join_start,
            keyframe_events,
        });
        (hub, rx)
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic elsewhere must not take the stream down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called from the pipeline's streaming thread for every finished frame.
    pub fn publish(&self, frame: AccessUnit) {
        let frame: Frame = Arc::new(frame);
        let keyframe = frame.is_keyframe();
        let mut state = self.lock();
        state.frames_in += 1;
        state.last_frame_at = Some(frame.arrival);
        let bytes = frame.payload_len();
        state.rates.record(frame.arrival, bytes);
        if keyframe {
            state.keyframes_in += 1;
            let _ = self
                .keyframe_events
                .send(KeyframeEvent::Produced(frame.arrival));
        }
        // A rebuilt pipeline is a new stream: frames before its first keyframe reference
        // pictures no viewer has, so everyone waits for that keyframe (not counted as loss).
        let new_source = state
            .last_frame
            .as_ref()
            .is_some_and(|last| source_ssrc(last) != source_ssrc(&frame));
        if new_source && !keyframe {
            for slot in &mut state.viewers {
                if slot.gate == Gate::Open {
                    slot.gate = Gate::Joining;
                }
            }
            let _ = self.keyframe_events.send(KeyframeEvent::Wanted);
        }
        let mut newly_dropped = 0;
        state.viewers.retain_mut(|slot| {
            if slot.gate != Gate::Open {
                if !keyframe {
                    if slot.gate == Gate::Overflowed {
                        slot.dropped.fetch_add(1, Ordering::Relaxed);
                        newly_dropped += 1;
                    }
                    return true;
                }
                slot.gate = Gate::Open;
            }
            match slot.tx.try_send(Arc::clone(&frame)) {
                Ok(()) => {
                    if let Some(waker) = &slot.waker {
                        waker.notify_one();
                    }
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.gate = Gate::Overflowed;
                    slot.dropped.fetch_add(1, Ordering::Relaxed);
                    newly_dropped += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        state.dropped_total += newly_dropped;
        if self.join_start == JoinStart::CachedGop {
            state.gop.push(&frame);
        }
        state.last_frame = Some(frame);
    }

    /// A new viewer's queue. Its first frame is a keyframe: the latest frame if it is one;
    /// with a cached GOP, the GOP's keyframe and every frame since; otherwise the next
    /// keyframe, which is asked of the encoder now.
    pub fn subscribe(self: &Arc<Self>) -> ViewerQueue {
        self.subscribe_waking(None)
    }

    /// [`subscribe`](Self::subscribe) for a consumer that takes frames with
    /// [`ViewerQueue::try_next_frame`]: `waker` is woken after each frame queued, and once
    /// at once when the queue starts with frames.
    pub fn subscribe_waking(self: &Arc<Self>, waker: Option<Arc<Notify>>) -> ViewerQueue {
        let (tx, rx) = mpsc::channel(self.queue_frames);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let mut gate = Gate::Joining;
        let mut replay = VecDeque::new();
        if self.join_start == JoinStart::CachedGop && !state.gop.is_empty() {
            replay = state.gop.replay().into();
            state.replayed_joins += 1;
            gate = Gate::Open;
        } else if let Some(last) = state.last_frame.as_ref().filter(|f| f.is_keyframe())
            && tx.try_send(Arc::clone(last)).is_ok()
        {
            gate = Gate::Open;
        }
        let starts_with_frames = !replay.is_empty() || tx.capacity() < tx.max_capacity();
        state.viewers.push(Slot {
            id,
            tx,
            gate,
            dropped: Arc::clone(&dropped),
            waker: waker.clone(),
        });
        drop(state);
        if let Some(waker) = waker.filter(|_| starts_with_frames) {
            waker.notify_one();
        }
        if gate == Gate::Joining {
            self.request_keyframe();
        }
        ViewerQueue {
            id,
            replay,
            last_repair: None,
            rx,
            dropped,
            hub: Arc::downgrade(self),
        }
    }

    /// A viewer lost its picture (PLI/FIR) and the source cannot make a keyframe: it is sent
    /// the cached GOP again, after the newest frame it has, in place of anything still
    /// queued for it. False when there is nothing to send (no GOP, or the encoder can help),
    /// or when this viewer had a replay less than [`MIN_REPAIR_INTERVAL`] ago (a browser
    /// may repeat its PLI while it waits).
    pub fn replay_for(&self, queue: &mut ViewerQueue, now: Instant) -> bool {
        let due = queue
            .last_repair
            .is_none_or(|at| now.saturating_duration_since(at) >= MIN_REPAIR_INTERVAL);
        if self.join_start != JoinStart::CachedGop || !due {
            return false;
        }
        let mut state = self.lock();
        let replay = state.gop.replay_after_newest();
        if replay.is_empty() {
            return false;
        }
        // Queued frames were published before now, so the GOP holds them already.
        while queue.rx.try_recv().is_ok() {}
        queue.replay = replay.into();
        if let Some(slot) = state.viewers.iter_mut().find(|slot| slot.id == queue.id) {
            slot.gate = Gate::Open;
        }
        state.replayed_repairs += 1;
        queue.last_repair = Some(now);
        true
    }

    pub fn join_start(&self) -> JoinStart {
        self.join_start
    }

    /// A viewer lost its picture: it gets the cached GOP again when that helps (true), and
    /// otherwise the encoder is asked for a keyframe.
    pub fn repair(&self, queue: Option<&mut ViewerQueue>, now: Instant) -> bool {
        let replayed = queue.is_some_and(|queue| self.replay_for(queue, now));
        if !replayed {
            self.request_keyframe();
        }
        replayed
    }

    pub fn request_keyframe(&self) {
        let _ = self.keyframe_events.send(KeyframeEvent::Wanted);
    }

    fn remove(&self, id: u64) {
        self.lock().viewers.retain(|slot| slot.id != id);
    }

    pub fn stats(&self, now: Instant) -> HubStats {
        let state = self.lock();
        HubStats {
            viewers: state.viewers.len(),
            frames_in: state.frames_in,
            keyframes_in: state.keyframes_in,
            dropped_frames: state.dropped_total,
            rates: state.rates.rates(now),
            last_frame_at: state.last_frame_at,
            replayed_joins: state.replayed_joins,
            replayed_repairs: state.replayed_repairs,
        }
    }
}

/// The SSRC the pipeline's payloader gave a frame; a new one means a new stream.
fn source_ssrc(frame: &Frame) -> Option<u32> {
    frame.packets.first().map(|packet| packet.header.ssrc)
}

/// One viewer's end of the hub. Dropping it leaves the hub.
pub struct ViewerQueue {
    id: u64,
    /// Frames to send before the live ones, with the timestamps to send them under.
    replay: VecDeque<(Frame, u32)>,
    /// When this viewer was last sent a replay for picture loss.
    last_repair: Option<Instant>,
    rx: mpsc::Receiver<Frame>,
    dropped: Arc<AtomicU64>,
    hub: Weak<FanoutHub>,
}

impl ViewerQueue {
    pub async fn next_frame(&mut self) -> Option<Queued> {
        if let Some((frame, timestamp)) = self.replay.pop_front() {
            return Some(Queued {
                frame,
                replay_timestamp: Some(timestamp),
            });
        }
        let frame = self.rx.recv().await?;
        Some(Queued {
            frame,
            replay_timestamp: None,
        })
    }

    /// The next frame if one is queued; `Err` once the hub is gone.
    pub fn try_next_frame(&mut self) -> Result<Option<Queued>, audio::Gone> {
        if let Some((frame, timestamp)) = self.replay.pop_front() {
            return Ok(Some(Queued {
                frame,
                replay_timestamp: Some(timestamp),
            }));
        }
        match self.rx.try_recv() {
            Ok(frame) => Ok(Some(Queued {
                frame,
                replay_timestamp: None,
            })),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(audio::Gone),
        }
    }

    /// Frames this viewer lost because it fell behind.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }
}

impl Drop for ViewerQueue {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(self.id);
        }
    }
}

/// Turns keyframe events into encoder requests, at most one per gate interval. Ends when
/// the hub is gone.
pub async fn run_keyframe_requests(
    mut events: mpsc::UnboundedReceiver<KeyframeEvent>,
    mut gate: KeyframeGate,
    force_keyframe: impl Fn(),
    requests_sent: Arc<AtomicU64>,
) {
    loop {
        let deadline = gate.deadline().map(tokio::time::Instant::from_std);
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => Some(event),
                None => return,
            },
            _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => None,
        };
        // tokio's clock, so that tests with paused time drive the gate too.
        let now = tokio::time::Instant::now().into_std();
        let send = match event {
            Some(KeyframeEvent::Wanted) => gate.request(now) == keyframe::KeyframeDecision::SendNow,
            Some(KeyframeEvent::Produced(at)) => {
                gate.keyframe_seen(at);
                false
            }
            None => gate.poll(now),
        };
        if send {
            requests_sent.fetch_add(1, Ordering::Relaxed);
            force_keyframe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::NalTypes;
    use bytes::Bytes;
    use rtc::rtp;

    fn frame(ts: u32, keyframe: bool) -> AccessUnit {
        let nal = if keyframe { 0x65 } else { 0x41 };
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: true,
                timestamp: ts,
                ..Default::default()
            },
            payload: Bytes::from(vec![nal, 0, 0]),
        };
        AccessUnit {
            nal_types: NalTypes::of_payload(&packet.payload),
            packets: vec![packet],
            rtp_timestamp: ts,
            arrival: Instant::now(),
        }
    }

    fn received(queue: &mut ViewerQueue) -> Vec<(u32, bool)> {
        let mut out: Vec<(u32, bool)> = queue
            .replay
            .drain(..)
            .map(|(f, _)| (f.rtp_timestamp, f.is_keyframe()))
            .collect();
        while let Ok(f) = queue.rx.try_recv() {
            out.push((f.rtp_timestamp, f.is_keyframe()));
        }
        out
    }

    #[test]
    fn late_joiner_starts_on_keyframe() {
        let (hub, mut events) = FanoutHub::new(8, JoinStart::Keyframe);
        hub.publish(frame(0, true));
        hub.publish(frame(1, false));
        assert!(matches!(events.try_recv(), Ok(KeyframeEvent::Produced(_))));
        let mut viewer = hub.subscribe();
        assert_eq!(events.try_recv(), Ok(KeyframeEvent::Wanted));
        hub.publish(frame(2, false));
        hub.publish(frame(3, true));
        hub.publish(frame(4, false));
        assert_eq!(received(&mut viewer), vec![(3, true), (4, false)]);
        assert_eq!(
            viewer.dropped.load(Ordering::Relaxed),
            0,
            "joining is not loss"
        );
    }

    #[test]
    fn joiner_right_after_keyframe_starts_with_it() {
        let (hub, mut events) = FanoutHub::new(8, JoinStart::Keyframe);
        hub.publish(frame(7, true));
        let mut viewer = hub.subscribe();
        assert!(matches!(events.try_recv(), Ok(KeyframeEvent::Produced(_))));
        assert!(
            events.try_recv().is_err(),
            "no request when a keyframe is at hand"
        );
        assert_eq!(received(&mut viewer), vec![(7, true)]);
    }

    #[tokio::test]
    async fn cached_gop_joiner_starts_at_once_then_goes_live() {
        let (hub, mut events) = FanoutHub::new(4, JoinStart::CachedGop);
        hub.publish(frame(0, true));
        for i in 1..10 {
            hub.publish(frame(i * 3000, false));
        }
        while events.try_recv().is_ok() {}
        let mut viewer = hub.subscribe();
        assert!(
            events.try_recv().is_err(),
            "no keyframe is asked of a source that cannot make one"
        );
        hub.publish(frame(30_000, false));
        let mut got = Vec::new();
        for _ in 0..11 {
            let queued = viewer.next_frame().await.unwrap();
            got.push((queued.frame.rtp_timestamp, queued.replay_timestamp));
        }
        // Ten replayed frames (more than the queue holds), squeezed before 27 000, then live.
        let expected: Vec<(u32, Option<u32>)> = (0..10)
            .map(|i| (i * 3000, Some(27_000 - (9 - i) * gop::REPLAY_TICKS)))
            .chain([(30_000, None)])
            .collect();
        assert_eq!(got, expected);
        assert_eq!(hub.stats(Instant::now()).replayed_joins, 1);
        assert_eq!(viewer.dropped.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_viewer_that_lost_its_picture_gets_the_gop_again_after_what_it_has() {
        let (hub, _events) = FanoutHub::new(4, JoinStart::CachedGop);
        hub.publish(frame(0, true));
        let mut viewer = hub.subscribe();
        hub.publish(frame(3000, false));
        hub.publish(frame(6000, false));
        // Frame 0 came as a replay; 3000 was sent; 6000 is still queued when the PLI arrives.
        let first = viewer.next_frame().await.unwrap();
        assert_eq!(first.replay_timestamp, Some(0));
        assert!(
            viewer
                .next_frame()
                .await
                .unwrap()
                .replay_timestamp
                .is_none()
        );
        let asked = Instant::now();
        assert!(hub.replay_for(&mut viewer, asked));
        hub.publish(frame(9000, false));
        let mut got = Vec::new();
        for _ in 0..4 {
            let queued = viewer.next_frame().await.unwrap();
            got.push((queued.frame.rtp_timestamp, queued.replay_timestamp));
        }
        assert_eq!(
            got,
            vec![
                (0, Some(6001)),
                (3000, Some(6002)),
                (6000, Some(6003)),
                (9000, None)
            ]
        );
        assert_eq!(hub.stats(Instant::now()).replayed_repairs, 1);
        assert!(
            !hub.replay_for(&mut viewer, asked + MIN_REPAIR_INTERVAL / 2),
            "a repeated PLI within the interval gets no second replay"
        );
        assert!(hub.replay_for(&mut viewer, asked + MIN_REPAIR_INTERVAL));
        assert_eq!(hub.stats(Instant::now()).replayed_repairs, 2);
        let (keyframe_hub, _events) = FanoutHub::new(4, JoinStart::Keyframe);
        let mut other = keyframe_hub.subscribe();
        assert!(
            !keyframe_hub.replay_for(&mut other, asked),
            "an encoder answers instead"
        );
    }

    #[test]
    fn cached_gop_joiner_before_any_keyframe_waits_for_one() {
        let (hub, _events) = FanoutHub::new(4, JoinStart::CachedGop);
        hub.publish(frame(0, false));
        let mut viewer = hub.subscribe();
        hub.publish(frame(3000, false));
        hub.publish(frame(6000, true));
        assert_eq!(received(&mut viewer), vec![(6000, true)]);
        assert_eq!(hub.stats(Instant::now()).replayed_joins, 0);
    }

    #[test]
    fn a_new_stream_reaches_every_viewer_from_its_first_keyframe() {
        let (hub, mut events) = FanoutHub::new(8, JoinStart::Keyframe);
        hub.publish(frame(0, true));
        let mut viewer = hub.subscribe();
        hub.publish(frame(3000, false));
        while events.try_recv().is_ok() {}
        let restarted = |ts, keyframe| {
            let mut f = frame(ts, keyframe);
            f.packets[0].header.ssrc = 0x5eed;
            f
        };
        // A new stream that does not start on a keyframe, as an external sender picked up
        // mid-GOP by a rebuilt pipeline (a fresh encoder starts on one).
        hub.publish(restarted(900_000, false));
        assert_eq!(events.try_recv(), Ok(KeyframeEvent::Wanted));
        hub.publish(restarted(903_000, false));
        hub.publish(restarted(906_000, true));
        hub.publish(restarted(909_000, false));
        assert_eq!(
            received(&mut viewer),
            vec![(0, true), (3000, false), (906_000, true), (909_000, false)]
        );
        assert_eq!(
            viewer.dropped.load(Ordering::Relaxed),
            0,
            "a restart is not loss"
        );
        let mut joiner = hub.subscribe();
        assert_eq!(
            received(&mut joiner),
            vec![],
            "the latest frame is no keyframe"
        );
        hub.publish(restarted(912_000, true));
        assert_eq!(received(&mut joiner), vec![(912_000, true)]);
    }

    #[test]
    fn full_queue_drops_until_next_keyframe() {
        let (hub, _events) = FanoutHub::new(2, JoinStart::Keyframe);
        hub.publish(frame(0, true));
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        assert_eq!(received(&mut fast), vec![(0, true)]);
        hub.publish(frame(1, false)); // slow: 2 queued, full
        hub.publish(frame(2, false)); // slow: dropped, now waits for a keyframe
        assert_eq!(received(&mut fast), vec![(1, false), (2, false)]);
        assert_eq!(received(&mut slow), vec![(0, true), (1, false)]);
        hub.publish(frame(3, false)); // slow: queue has room but frame 3 cannot decode
        assert_eq!(received(&mut fast), vec![(3, false)]);
        hub.publish(frame(4, true));
        hub.publish(frame(5, false));
        assert_eq!(received(&mut slow), vec![(4, true), (5, false)]);
        assert_eq!(received(&mut fast), vec![(4, true), (5, false)]);
        assert_eq!(slow.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(fast.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(hub.stats(Instant::now()).dropped_frames, 2);
    }

    #[test]
    fn dropping_queue_leaves_hub() {
        let (hub, _events) = FanoutHub::new(2, JoinStart::Keyframe);
        let viewer = hub.subscribe();
        assert_eq!(hub.stats(Instant::now()).viewers, 1);
        drop(viewer);
        assert_eq!(hub.stats(Instant::now()).viewers, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn keyframe_requests_are_coalesced() {
        let (hub, events) = FanoutHub::new(2, JoinStart::Keyframe);
        let sent = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run_keyframe_requests(
            events,
            KeyframeGate::default(),
            || {},
            Arc::clone(&sent),
        ));
        for _ in 0..20 {
            hub.request_keyframe();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(sent.load(Ordering::Relaxed), 1);
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(
            sent.load(Ordering::Relaxed),
            2,
            "the deferred request fires once"
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        assert_eq!(sent.load(Ordering::Relaxed), 2);
        drop(hub);
        tokio::time::timeout(std::time::Duration::from_secs(1), task)
            .await
            .expect("task ends with the hub")
            .unwrap();
    }
}
