//! A video frame into the WebRTC stack a few packets at a time instead of one by one.
//!
//! webrtc-rs takes RTP one packet at a time: each `write_rtp` is a message to the
//! connection's driver, which checks the packet against the sender's parameters and then
//! takes a full pass of its loop for it. For a 9-packet frame to 100 viewers that is 900
//! passes. Here the viewer's session puts the frame's packets in the viewer's [`Outbox`]
//! and writes one empty *doorbell* packet per [`RELEASE_PACKETS`] of them instead. The
//! [`FrameBatch`] interceptor, the first stage a doorbell meets inside the stack, swallows it
//! and emits up to that many of the outbox's packets in its place, so they continue through
//! the NACK history, sender reports, SRTP and the socket in that same pass. Releasing a few
//! at a time rather than all keeps what each pass holds small: every queue along the stack
//! keeps the capacity of the largest burst it saw, for every viewer. No IO here.

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

/// Packets one doorbell releases: a P-frame of a 2 Mbit/s 720p stream in one or two passes,
/// a keyframe in four or five.
pub const RELEASE_PACKETS: usize = 8;
/// Packets a viewer may have waiting before its session waits for the stack to take them.
pub const OUTBOX_PACKETS: usize = 4 * RELEASE_PACKETS;

/// One viewer's video packets on their way into its connection, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    packets: Mutex<VecDeque<rtc::rtp::Packet>>,
    /// The video SSRC whose empty packets are doorbells; 0 until the track exists.
    ssrc: AtomicU32,
    /// Signalled whenever the stack has taken packets.
    drained: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, VecDeque<rtc::rtp::Packet>> {
        // Packets are only ever pushed and popped whole: a panic cannot leave half of one.
        self.packets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Which SSRC the doorbells carry: the video track's.
    pub fn set_ssrc(&self, ssrc: u32) {
        self.ssrc.store(ssrc, Ordering::Relaxed);
    }

    /// Packets waiting.
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Queues a frame's packets (already this viewer's: payload type, SSRC, sequence
    /// numbers) and returns the doorbell to write through the track for them (the first
    /// packet's header, no payload) and how many times to write it. None for a frame
    /// without packets.
    pub fn push_frame(
        &self,
        packets: impl IntoIterator<Item = rtc::rtp::Packet>,
    ) -> Option<(rtc::rtp::Packet, usize)> {
        let mut queue = self.lock();
        let before = queue.len();
        queue.extend(packets);
        let first = queue.get(before)?;
        let rings = (queue.len() - before).div_ceil(RELEASE_PACKETS);
        let doorbell = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                marker: false,
                extension: false,
                extensions: Vec::new(),
                ..first.header.clone()
            },
            payload: Default::default(),
        };
        Some((doorbell, rings))
    }

    /// Drops whatever is waiting (a connection that stopped taking packets); returns how
    /// many were dropped.
    pub fn clear(&self) -> usize {
        let mut queue = self.lock();
        let dropped = queue.len();
        queue.clear();
        dropped
    }

    /// Waits until at most `limit` packets are waiting, or `timeout` passed; true if so.
    pub async fn wait_for_room(&self, limit: usize, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a drain in between is not missed.
            let drained = self.drained.notified();
            if self.len() <= limit {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.len() <= limit;
            }
        }
    }

    fn is_doorbell(&self, packet: &rtc::rtp::Packet) -> bool {
        packet.payload.is_empty() && packet.header.ssrc == self.ssrc.load(Ordering::Relaxed)
    }

    /// Up to `most` of the packets waiting, oldest first.
    fn take(&self, most: usize) -> Vec<rtc::rtp::Packet> {
        let taken = {
            let mut queue = self.lock();
            let count = most.min(queue.len());
            queue.drain(..count).collect()
        };
        self.drained.notify_waiters();
        taken
    }
}

/// The interceptor that turns a doorbell into the outbox's packets. Everything else passes
/// through unchanged.
pub struct FrameBatch {
    outbox: std::sync::Arc<Outbox>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl FrameBatch {
    pub fn new(outbox: std::sync::Arc<Outbox>) -> Self {
        Self {
            outbox,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FrameBatch {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        match &msg.message.packet {
            Packet::Rtp(packet) if self.outbox.is_doorbell(packet) => {
                for packet in self.outbox.take(RELEASE_PACKETS) {
                    self.write.push_back(TaggedPacket {
                        now: msg.now,
                        transport: msg.transport,
                        message: Packet::Rtp(packet).into(),
                    });
                }
            }
            _ => self.write.push_back(msg),
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for FrameBatch {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn packet(ssrc: u32, seq: u16, payload: &'static [u8]) -> rtc::rtp::Packet {
        rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: 102,
                sequence_number: seq,
                timestamp: 9000,
                ssrc,
                marker: seq == 3,
                ..Default::default()
            },
            payload: bytes::Bytes::from_static(payload),
        }
    }

    /// An outbox for video SSRC 7, and the interceptor it feeds.
    fn video_ssrc_7() -> (Arc<Outbox>, FrameBatch) {
        let outbox = Arc::new(Outbox::default());
        outbox.set_ssrc(7);
        let batch = FrameBatch::new(Arc::clone(&outbox));
        (outbox, batch)
    }

    fn tagged(packet: rtc::rtp::Packet) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: Default::default(),
            message: Packet::Rtp(packet).into(),
        }
    }

    fn written(batch: &mut FrameBatch) -> Vec<(u16, usize)> {
        std::iter::from_fn(|| batch.poll_write())
            .map(|msg| match msg.message.packet {
                Packet::Rtp(p) => (p.header.sequence_number, p.payload.len()),
                Packet::Rtcp(_) => (0, 0),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn a_doorbell_becomes_the_frames_packets_in_order() {
        let (outbox, mut batch) = video_ssrc_7();
        let (doorbell, rings) = outbox
            .push_frame([
                packet(7, 1, b"aa"),
                packet(7, 2, b"bbb"),
                packet(7, 3, b"c"),
            ])
            .unwrap();
        assert!(doorbell.payload.is_empty());
        assert!(!doorbell.header.marker);
        assert_eq!(doorbell.header.sequence_number, 1);
        assert_eq!(rings, 1);
        batch.handle_write(tagged(doorbell)).unwrap();
        assert_eq!(written(&mut batch), vec![(1, 2), (2, 3), (3, 1)]);
        assert_eq!(outbox.len(), 0);
    }

    #[test]
    fn a_large_frame_rings_once_per_release_and_leaves_whole_and_in_order() {
        let (outbox, mut batch) = video_ssrc_7();
        let count = 2 * RELEASE_PACKETS as u16 + 3;
        let (doorbell, rings) = outbox
            .push_frame((0..count).map(|seq| packet(7, seq, b"x")))
            .unwrap();
        assert_eq!(rings, 3);
        let mut sent = Vec::new();
        for _ in 0..rings {
            batch.handle_write(tagged(doorbell.clone())).unwrap();
            let pass = written(&mut batch);
            assert!(
                pass.len() <= RELEASE_PACKETS,
                "{} packets in one pass",
                pass.len()
            );
            sent.extend(pass.into_iter().map(|(seq, _)| seq));
        }
        assert_eq!(sent, (0..count).collect::<Vec<_>>());
        assert_eq!(outbox.len(), 0);
    }

    #[test]
    fn frames_queued_before_their_doorbells_arrive_keep_their_order() {
        let (outbox, mut batch) = video_ssrc_7();
        let (first, _) = outbox
            .push_frame([packet(7, 1, b"a"), packet(7, 2, b"b")])
            .unwrap();
        let (second, _) = outbox.push_frame([packet(7, 3, b"c")]).unwrap();
        batch.handle_write(tagged(first)).unwrap();
        batch.handle_write(tagged(second)).unwrap();
        // The first doorbell takes both frames; the second finds nothing left.
        assert_eq!(written(&mut batch), vec![(1, 1), (2, 1), (3, 1)]);
    }

    #[test]
    fn other_packets_pass_untouched() {
        let (outbox, mut batch) = video_ssrc_7();
        outbox.push_frame([packet(7, 1, b"a")]);
        // Sound (another SSRC), and an empty packet of another SSRC: not doorbells.
        batch.handle_write(tagged(packet(9, 50, b"opus"))).unwrap();
        batch.handle_write(tagged(packet(9, 51, b""))).unwrap();
        assert_eq!(written(&mut batch), vec![(50, 4), (51, 0)]);
        assert_eq!(
            outbox.len(),
            1,
            "the video frame still waits for its doorbell"
        );
    }

    #[test]
    fn an_empty_frame_has_no_doorbell() {
        let outbox = Outbox::default();
        assert!(outbox.push_frame([]).is_none());
    }

    #[tokio::test]
    async fn waiting_for_room_ends_when_the_stack_takes_the_packets() {
        let outbox = Arc::new(Outbox::default());
        outbox.set_ssrc(7);
        outbox.push_frame((0..10).map(|seq| packet(7, seq, b"x")));
        assert!(!outbox.wait_for_room(5, Duration::from_millis(20)).await);
        let drain = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                outbox.take(usize::MAX).len()
            })
        };
        assert!(outbox.wait_for_room(5, Duration::from_secs(5)).await);
        assert_eq!(drain.await.unwrap(), 10);
        assert_eq!(outbox.clear(), 0);
    }
}
