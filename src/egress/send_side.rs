//! The send side of a loop viewer's connection as one interceptor: a short history of what
//! was sent, NACKs answered from it (on the RTX stream where agreed, every answer twice, for
//! the reason `repeat_resends.rs` gives), a sender report per stream every second, and the
//! viewer's RTCP marked for the loop.
//!
//! One stage instead of four (NACK responder, resend copies, sender reports, RTCP to the
//! application): rtc's interceptor chain moves every packet through two queues per stage, and
//! at a hundred viewers those moves cost more than the work the stages do. No IO: time comes
//! with the packets and timeouts, the wall clock once, at construction.

use crate::webrtc::repeat_resends::{COPIES_PER_RESEND, COPY_AFTER, MAX_WAITING_COPIES};
use bytes::{BufMut, Bytes, BytesMut};
use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Packets kept per stream for resends (a power of two): almost 4 s of a 2 Mbit/s stream,
/// longer than any receiver waits for a repair.
pub const HISTORY_PACKETS: usize = 1024;
/// How often each stream's sender report leaves.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// What a resend needs of a packet sent: its payload is shared, not copied.
#[derive(Clone)]
struct Sent {
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
    marker: bool,
    payload: Bytes,
}

/// The last [`HISTORY_PACKETS`] packets of a stream, by sequence number.
struct History {
    slots: Vec<Option<Sent>>,
}

impl History {
    fn new() -> History {
        History {
            slots: vec![None; HISTORY_PACKETS],
        }
    }

    fn slot(sequence: u16) -> usize {
        usize::from(sequence) & (HISTORY_PACKETS - 1)
    }

    fn put(&mut self, packet: &rtc::rtp::Packet) {
        let header = &packet.header;
        self.slots[Self::slot(header.sequence_number)] = Some(Sent {
            sequence: header.sequence_number,
            timestamp: header.timestamp,
            payload_type: header.payload_type,
            marker: header.marker,
            payload: packet.payload.clone(),
        });
    }

    /// The packet sent as `sequence`, while it is still held (a slot is reused
    /// [`HISTORY_PACKETS`] packets later).
    fn get(&self, sequence: u16) -> Option<&Sent> {
        self.slots[Self::slot(sequence)]
            .as_ref()
            .filter(|sent| sent.sequence == sequence)
    }
}

/// One stream sent to the viewer (video or sound).
struct Stream {
    ssrc: u32,
    clock_rate: u32,
    /// Kept only where the viewer negotiated NACK.
    history: Option<History>,
    /// The RTX stream's SSRC and payload type, where the viewer agreed to RTX.
    rtx: Option<(u32, u8)>,
    rtx_sequence: u16,
    /// For the sender report: packets and payload octets sent (wrapping, as RFC 3550 says).
    packets: u32,
    octets: u32,
    /// The newest frame's RTP timestamp and when its first packet was sent.
    frame: Option<(u32, Instant)>,
}

impl Stream {
    fn sent(&mut self, now: Instant, packet: &rtc::rtp::Packet) {
        if let Some(history) = self.history.as_mut() {
            history.put(packet);
        }
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(packet.payload.len() as u32);
        // The timing of a frame's first packet: a large frame's later packets leave later
        // without being later in the picture.
        if self
            .frame
            .is_none_or(|(timestamp, _)| timestamp != packet.header.timestamp)
        {
            self.frame = Some((packet.header.timestamp, now));
        }
    }

    /// The resend of `sequence`, if it is still held.
    fn resend(&mut self, sequence: u16) -> Option<rtc::rtp::Packet> {
        let sent = self.history.as_ref()?.get(sequence)?;
        let header = rtc::rtp::header::Header {
            version: 2,
            marker: sent.marker,
            timestamp: sent.timestamp,
            ..Default::default()
        };
        let packet = match self.rtx {
            // RFC 4588: the RTX stream's own numbering, the original sequence number first.
            Some((ssrc, payload_type)) => {
                let mut payload = BytesMut::with_capacity(2 + sent.payload.len());
                payload.put_u16(sent.sequence);
                payload.put_slice(&sent.payload);
                let sequence_number = self.rtx_sequence;
                self.rtx_sequence = self.rtx_sequence.wrapping_add(1);
                rtc::rtp::Packet {
                    header: rtc::rtp::header::Header {
                        ssrc,
                        payload_type,
                        sequence_number,
                        ..header
                    },
                    payload: payload.freeze(),
                }
            }
            None => rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    ssrc: self.ssrc,
                    payload_type: sent.payload_type,
                    sequence_number: sent.sequence,
                    ..header
                },
                payload: sent.payload.clone(),
            },
        };
        Some(packet)
    }

    fn report(&self, now: Instant, ntp_time: u64) -> Option<SenderReport> {
        let (timestamp, at) = self.frame?;
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        Some(SenderReport {
            ssrc: self.ssrc,
            ntp_time,
            rtp_time: timestamp.wrapping_add((elapsed * f64::from(self.clock_rate)) as u32),
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        })
    }
}

pub struct SendSide {
    streams: Vec<Stream>,
    /// An instant and the wall clock at it: sender reports carry wall-clock (NTP) time.
    epoch: (Instant, SystemTime),
    next_report: Option<Instant>,
    /// Second copies of resends and when they are due, oldest first.
    copies: VecDeque<(Instant, TaggedPacket)>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl SendSide {
    /// `wall` is the wall clock at `now`.
    pub fn new(now: Instant, wall: SystemTime) -> SendSide {
        SendSide {
            streams: Vec::new(),
            epoch: (now, wall),
            next_report: None,
            copies: VecDeque::new(),
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// `now` as a 64-bit NTP timestamp (RFC 3550 §4).
    fn ntp(&self, now: Instant) -> u64 {
        let (instant, wall) = self.epoch;
        let wall = match now.checked_duration_since(instant) {
            Some(later) => wall + later,
            None => wall - instant.duration_since(now),
        };
        let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET_SECS;
        let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
        (seconds << 32) | fraction
    }

    fn answer(&mut self, now: Instant, nack: &TransportLayerNack) {
        let Some(stream) = self
            .streams
            .iter_mut()
            .find(|stream| stream.ssrc == nack.media_ssrc)
        else {
            return;
        };
        for pair in &nack.nacks {
            let lost = std::iter::once(pair.packet_id).chain(
                (0..16u16)
                    .filter(|bit| pair.lost_packets & (1 << bit) != 0)
                    .map(|bit| pair.packet_id.wrapping_add(bit + 1)),
            );
            for sequence in lost {
                let Some(packet) = stream.resend(sequence) else {
                    continue;
                };
                let resend = TaggedPacket {
                    now,
                    transport: Default::default(),
                    message: AttributedPacket::new(Packet::Rtp(packet))
                        .with(Attribute::Retransmission),
                };
                for _ in 1..COPIES_PER_RESEND {
                    if self.copies.len() < MAX_WAITING_COPIES {
                        let copy = TaggedPacket {
                            now,
                            transport: resend.transport,
                            message: resend.message.clone(),
                        };
                        self.copies.push_back((now + COPY_AFTER, copy));
                    }
                }
                self.write.push_back(resend);
            }
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SendSide {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                if let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() {
                    self.answer(msg.now, nack);
                }
            }
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet
            && let Some(stream) = self
                .streams
                .iter_mut()
                .find(|stream| stream.ssrc == packet.header.ssrc)
        {
            stream.sent(msg.now, packet);
            if self.next_report.is_none() {
                self.next_report = Some(msg.now + REPORT_INTERVAL);
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        if self.next_report.is_some_and(|due| due <= now) {
            self.next_report = Some(now + REPORT_INTERVAL);
            let ntp_time = self.ntp(now);
            for stream in &self.streams {
                if let Some(report) = stream.report(now, ntp_time) {
                    self.write.push_back(TaggedPacket {
                        now,
                        transport: Default::default(),
                        message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(report)])),
                    });
                }
            }
        }
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
        let copy = self.copies.front().map(|(due, _)| *due);
        match (self.next_report, copy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Interceptor for SendSide {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        let nack = info
            .rtcp_feedback
            .iter()
            .any(|feedback| feedback.typ == "nack" && feedback.parameter.is_empty());
        self.streams.retain(|stream| stream.ssrc != info.ssrc);
        self.streams.push(Stream {
            ssrc: info.ssrc,
            clock_rate: info.clock_rate,
            history: nack.then(History::new),
            rtx: info.ssrc_rtx.zip(info.payload_type_rtx),
            rtx_sequence: rand::random::<u16>(),
            packets: 0,
            octets: 0,
            frame: None,
        });
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.retain(|stream| stream.ssrc != info.ssrc);
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
#[path = "send_side_tests.rs"]
mod tests;
