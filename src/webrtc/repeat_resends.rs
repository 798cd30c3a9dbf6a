//! Every resend of a lost packet goes out twice, the copy a moment after the first.
//!
//! Some receivers ask for a lost packet once and ask again only when they next see a new gap
//! (aiortc: it NACKs on each new gap, forgets a missing packet 128 packets later, and flushes
//! its jitter buffer with a PLI only after 512). When the one resend is lost as well, the
//! picture stops until the next loss happens to come along, which on a quiet stream is seconds.
//! A copy [`COPY_AFTER`] later makes a lost repair as rare as two losses that far apart; it
//! costs one more packet per repair. The copy is the same packet (same sequence number, RTX
//! or not): a receiver that got the first drops it as an SRTP replay. It is not sent with the
//! first because packets of equal size leave in one UDP GSO send, and a path that loses one
//! of them often loses the lot. Sits between the NACK responder and the wire; no IO, time
//! comes with the packets and timeouts.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Copies of each resend on the wire.
pub const COPIES_PER_RESEND: usize = 2;
/// How long after a resend its copy leaves: past a short loss burst, well within the time a
/// receiver waits for a repair.
pub const COPY_AFTER: Duration = Duration::from_millis(20);
/// Copies waiting at most; past that a resend goes out once (a viewer NACKing everything
/// gets no more than this many extra packets per [`COPY_AFTER`]).
pub const MAX_WAITING_COPIES: usize = 256;

#[derive(Default)]
pub struct RepeatResends {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    /// Copies and when they are due, oldest first.
    copies: VecDeque<(Instant, TaggedPacket)>,
}

fn is_resend(msg: &TaggedPacket) -> bool {
    matches!(msg.message.packet, Packet::Rtp(_)) && msg.message.has(&Attribute::Retransmission)
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RepeatResends {
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
        if is_resend(&msg) {
            for _ in 1..COPIES_PER_RESEND {
                if self.copies.len() < MAX_WAITING_COPIES {
                    let copy = TaggedPacket {
                        now: msg.now,
                        transport: msg.transport,
                        message: msg.message.clone(),
                    };
                    self.copies.push_back((msg.now + COPY_AFTER, copy));
                }
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        while let Some((due, _)) = self.copies.front()
            && *due <= now
        {
            let (_, mut copy) = self.copies.pop_front().expect("front exists");
            copy.now = now;
            self.write.push_back(copy);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.copies.front().map(|(due, _)| *due)
    }
}

impl Interceptor for RepeatResends {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;

    fn rtp(seq: u16, resend: bool, now: Instant) -> TaggedPacket {
        let packet = Packet::Rtp(rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                sequence_number: seq,
                ssrc: 7,
                ..Default::default()
            },
            payload: bytes::Bytes::from_static(b"x"),
        });
        let message = AttributedPacket::new(packet);
        TaggedPacket {
            now,
            transport: Default::default(),
            message: if resend {
                message.with(Attribute::Retransmission)
            } else {
                message
            },
        }
    }

    fn written(interceptor: &mut RepeatResends) -> Vec<u16> {
        std::iter::from_fn(|| interceptor.poll_write())
            .map(|msg| match msg.message.packet {
                Packet::Rtp(p) => p.header.sequence_number,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn a_resend_leaves_at_once_and_again_a_moment_later() {
        let t0 = Instant::now();
        let mut interceptor = RepeatResends::default();
        interceptor.handle_write(rtp(1, false, t0)).unwrap();
        interceptor.handle_write(rtp(40, true, t0)).unwrap();
        assert_eq!(written(&mut interceptor), vec![1, 40]);
        assert_eq!(interceptor.poll_timeout(), Some(t0 + COPY_AFTER));
        interceptor.handle_timeout(t0 + COPY_AFTER / 2).unwrap();
        assert_eq!(written(&mut interceptor), Vec::<u16>::new(), "not yet");
        interceptor
            .handle_write(rtp(2, false, t0 + COPY_AFTER / 2))
            .unwrap();
        interceptor.handle_timeout(t0 + COPY_AFTER).unwrap();
        assert_eq!(written(&mut interceptor), vec![2, 40]);
        assert_eq!(interceptor.poll_timeout(), None);
    }

    #[test]
    fn first_transmissions_and_inbound_packets_pass_once() {
        let t0 = Instant::now();
        let mut interceptor = RepeatResends::default();
        interceptor.handle_write(rtp(5, false, t0)).unwrap();
        interceptor.handle_read(rtp(6, true, t0)).unwrap();
        interceptor.handle_timeout(t0 + 10 * COPY_AFTER).unwrap();
        assert_eq!(written(&mut interceptor), vec![5]);
        assert!(interceptor.poll_read().is_some());
        assert!(interceptor.poll_read().is_none());
        assert_eq!(interceptor.poll_timeout(), None);
    }

    #[test]
    fn copies_waiting_are_bounded() {
        let t0 = Instant::now();
        let mut interceptor = RepeatResends::default();
        let resends = MAX_WAITING_COPIES as u16 + 10;
        for seq in 0..resends {
            interceptor.handle_write(rtp(seq, true, t0)).unwrap();
        }
        assert_eq!(written(&mut interceptor).len(), resends as usize);
        interceptor.handle_timeout(t0 + COPY_AFTER).unwrap();
        assert_eq!(written(&mut interceptor).len(), MAX_WAITING_COPIES);
    }
}
