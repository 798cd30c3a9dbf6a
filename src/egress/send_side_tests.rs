use super::*;
use rtc::interceptor::RTCPFeedback;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

const VIDEO: u32 = 0x1111;
const RTX: u32 = 0x2222;
const AUDIO: u32 = 0x3333;

fn video(rtx: bool) -> StreamInfo {
    StreamInfo {
        ssrc: VIDEO,
        ssrc_rtx: rtx.then_some(RTX),
        payload_type: 102,
        payload_type_rtx: rtx.then_some(103),
        clock_rate: 90_000,
        rtcp_feedback: vec![RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        }],
        ..Default::default()
    }
}

fn audio() -> StreamInfo {
    StreamInfo {
        ssrc: AUDIO,
        payload_type: 111,
        clock_rate: 48_000,
        ..Default::default()
    }
}

fn send_side(now: Instant, streams: &[StreamInfo]) -> SendSide {
    let mut side = SendSide::new(now, SystemTime::now());
    for info in streams {
        side.bind_local_stream(info);
    }
    side
}

fn rtp(ssrc: u32, sequence: u16, timestamp: u32, payload: &'static [u8]) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            payload_type: if ssrc == AUDIO { 111 } else { 102 },
            sequence_number: sequence,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::from_static(payload),
    }
}

fn tagged(now: Instant, packet: Packet) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: Default::default(),
        message: AttributedPacket::new(packet),
    }
}

fn send(side: &mut SendSide, now: Instant, packet: rtc::rtp::Packet) {
    side.handle_write(tagged(now, Packet::Rtp(packet))).unwrap();
}

fn nack(side: &mut SendSide, now: Instant, ssrc: u32, packet_id: u16, lost_packets: u16) {
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: ssrc,
        nacks: vec![NackPair {
            packet_id,
            lost_packets,
        }],
    };
    side.handle_read(tagged(now, Packet::Rtcp(vec![Box::new(nack)])))
        .unwrap();
}

fn written(side: &mut SendSide) -> Vec<TaggedPacket> {
    std::iter::from_fn(|| side.poll_write()).collect()
}

fn rtp_of(msg: &TaggedPacket) -> &rtc::rtp::Packet {
    match &msg.message.packet {
        Packet::Rtp(packet) => packet,
        other => panic!("not RTP: {other:?}"),
    }
}

#[test]
fn sent_packets_pass_unchanged() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[video(true)]);
    send(&mut side, t0, rtp(VIDEO, 7, 900, b"abc"));
    let out = written(&mut side);
    assert_eq!(out.len(), 1);
    assert_eq!(*rtp_of(&out[0]), rtp(VIDEO, 7, 900, b"abc"));
}

#[test]
fn nacked_packets_are_resent_on_the_rtx_stream_with_their_sequence_number_first() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[video(true)]);
    for sequence in 10..14 {
        send(&mut side, t0, rtp(VIDEO, sequence, 900, b"frame"));
    }
    written(&mut side);
    // 10, and 12 from the bitmap (bit 1: packet_id + 2).
    nack(&mut side, t0, VIDEO, 10, 0b10);
    let out = written(&mut side);
    assert_eq!(out.len(), 2);
    let first = rtp_of(&out[0]);
    let second = rtp_of(&out[1]);
    assert_eq!(first.header.ssrc, RTX);
    assert_eq!(first.header.payload_type, 103);
    assert_eq!(first.header.version, 2);
    assert_eq!(first.header.timestamp, 900);
    assert_eq!(&first.payload[..], b"\x00\x0aframe");
    assert_eq!(&second.payload[..], b"\x00\x0cframe");
    assert_eq!(
        second.header.sequence_number,
        first.header.sequence_number.wrapping_add(1)
    );
    assert!(out[0].message.has(&Attribute::Retransmission));
}

#[test]
fn without_rtx_a_nacked_packet_is_resent_as_it_was() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[video(false)]);
    send(&mut side, t0, rtp(VIDEO, 65_535, 900, b"frame"));
    written(&mut side);
    nack(&mut side, t0, VIDEO, 65_535, 0);
    let out = written(&mut side);
    assert_eq!(out.len(), 1);
    assert_eq!(*rtp_of(&out[0]), rtp(VIDEO, 65_535, 900, b"frame"));
}

#[test]
fn a_resend_leaves_again_a_moment_later() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[video(true)]);
    send(&mut side, t0, rtp(VIDEO, 1, 900, b"x"));
    written(&mut side);
    nack(&mut side, t0, VIDEO, 1, 0);
    let first = written(&mut side);
    assert_eq!(first.len(), 1);
    assert_eq!(side.poll_timeout(), Some(t0 + COPY_AFTER));
    side.handle_timeout(t0 + COPY_AFTER).unwrap();
    let copy = written(&mut side);
    assert_eq!(copy.len(), 1);
    assert_eq!(rtp_of(&copy[0]), rtp_of(&first[0]));
}

#[test]
fn packets_no_longer_held_or_never_sent_are_not_resent() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[video(true)]);
    for sequence in 0..=HISTORY_PACKETS as u16 {
        send(&mut side, t0, rtp(VIDEO, sequence, 900, b"x"));
    }
    written(&mut side);
    // 0's slot now holds HISTORY_PACKETS; 2000 was never sent.
    nack(&mut side, t0, VIDEO, 0, 0);
    nack(&mut side, t0, VIDEO, 2000, 0);
    assert!(written(&mut side).is_empty());
}

#[test]
fn a_stream_without_nack_is_not_resent() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[audio()]);
    send(&mut side, t0, rtp(AUDIO, 5, 960, b"opus"));
    written(&mut side);
    nack(&mut side, t0, AUDIO, 5, 0);
    assert!(written(&mut side).is_empty());
}

#[test]
fn viewer_rtcp_is_marked_for_the_loop() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[video(true)]);
    nack(&mut side, t0, VIDEO, 1, 0);
    let read = side.poll_read().expect("the NACK passes on");
    assert!(read.message.has(&Attribute::DeliverToApplication));
}

#[test]
fn each_stream_reports_a_second_after_its_first_packet() {
    let t0 = Instant::now();
    let mut side = send_side(t0, &[video(true), audio()]);
    assert_eq!(side.poll_timeout(), None);
    send(&mut side, t0, rtp(VIDEO, 1, 9_000, b"abcd"));
    send(&mut side, t0, rtp(VIDEO, 2, 9_000, b"ef"));
    send(&mut side, t0, rtp(AUDIO, 1, 480, b"o"));
    written(&mut side);
    let due = t0 + REPORT_INTERVAL;
    assert_eq!(side.poll_timeout(), Some(due));
    side.handle_timeout(due).unwrap();
    let reports: Vec<SenderReport> = written(&mut side)
        .into_iter()
        .map(|msg| match msg.message.packet {
            Packet::Rtcp(mut packets) => packets
                .pop()
                .unwrap()
                .as_any()
                .downcast_ref::<SenderReport>()
                .unwrap()
                .clone(),
            other => panic!("not RTCP: {other:?}"),
        })
        .collect();
    assert_eq!(reports.len(), 2);
    let video = &reports[0];
    assert_eq!(video.ssrc, VIDEO);
    assert_eq!(video.packet_count, 2);
    assert_eq!(video.octet_count, 6);
    // A second after the frame left: a second of the 90 kHz clock later.
    assert_eq!(video.rtp_time, 9_000 + 90_000);
    let audio = &reports[1];
    assert_eq!((audio.ssrc, audio.rtp_time), (AUDIO, 480 + 48_000));
    assert_eq!(video.ntp_time, audio.ntp_time);
    assert_eq!(side.poll_timeout(), Some(due + REPORT_INTERVAL));
}

#[test]
fn report_times_are_the_wall_clock_in_ntp_form() {
    let t0 = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_millis(1_500);
    let side = SendSide::new(t0, wall);
    let ntp = side.ntp(t0 + Duration::from_secs(1));
    assert_eq!(ntp >> 32, NTP_UNIX_OFFSET_SECS + 2);
    assert_eq!(ntp & 0xffff_ffff, 1 << 31);
}
