//! A viewer state machine against a real `rtc` PeerConnection playing the browser, their
//! datagrams passed by hand and the clock moved by hand: no sockets, no tasks, no sleeping.

use super::*;
use crate::media::rtp::{AccessUnit, NalTypes};
use crate::webrtc::offer::check_offer;
use bytes::Bytes;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpTransceiverInit;
use std::sync::Arc;
use std::time::Duration;

const SERVER: &str = "10.0.0.2:40000";
const BROWSER: &str = "10.0.0.9:51000";
/// What a TURN server relays for the server's socket.
const RELAYED: &str = "203.0.113.254:49160";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The browser: receive-only video (and sound when asked), H.264 with RTX.
fn browser(now: Instant, audio: bool) -> (RTCPeerConnection, String) {
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(api::media_engine().unwrap())
        .build(now)
        .unwrap();
    let recvonly = || {
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: Vec::new(),
            send_encodings: Vec::new(),
        })
    };
    pc.add_transceiver_from_kind(RtpCodecKind::Video, recvonly())
        .unwrap();
    if audio {
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, recvonly())
            .unwrap();
    }
    let offer = pc.create_offer(None).unwrap();
    pc.set_local_description(now, offer).unwrap();
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr(BROWSER).ip().to_string(),
            port: addr(BROWSER).port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&host).to_json().unwrap())
        .unwrap();
    let sdp = pc.local_description().unwrap().sdp;
    (pc, sdp)
}

/// The two ends and the wire between them.
struct Call {
    now: Instant,
    viewer: ViewerPeer,
    browser: RTCPeerConnection,
    events: Vec<PeerEvent>,
    received: Vec<rtc::rtp::Packet>,
    /// Datagrams the viewer sent, by destination.
    sent_to: Vec<SocketAddr>,
    /// The SSRC of every sender report the viewer sent.
    sender_reports: Vec<u32>,
    /// Where the viewer's datagrams leave from (and the browser's arrive).
    local: SocketAddr,
    /// DTLS datagrams still to be lost on the way, from us and from the browser.
    lose_dtls_sent: usize,
    lose_dtls_received: usize,
}

/// The SSRC of an SRTCP sender report (its first 8 bytes travel in the clear, RFC 3711).
fn sender_report_ssrc(datagram: &[u8]) -> Option<u32> {
    const SENDER_REPORT: u8 = 200;
    (datagram.len() >= 8 && datagram[0] >> 6 == 2 && datagram[1] == SENDER_REPORT)
        .then(|| u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]))
}

/// RFC 7983: DTLS records start with 20 to 63.
fn is_dtls(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (20..=63).contains(b))
}

fn certificate() -> rtc::peer_connection::certificate::RTCCertificate {
    crate::egress::certificate::LoopCertificate::new()
        .unwrap()
        .at(std::time::SystemTime::now())
        .unwrap()
        .clone()
}

impl Call {
    fn start(audio: bool) -> (Call, String) {
        Call::start_on(audio, LocalCandidate::host(addr(SERVER)))
    }

    /// The viewer answering with `candidate` alone.
    fn start_on(audio: bool, candidate: LocalCandidate) -> (Call, String) {
        let now = Instant::now();
        let (mut browser, offer) = browser(now, audio);
        let wanted = check_offer(&offer, audio).unwrap();
        let (viewer, answer) = ViewerPeer::answer(
            now,
            &PeerSettings::default(),
            offer,
            &wanted,
            &[candidate],
            &certificate(),
        )
        .unwrap();
        browser
            .set_remote_description(now, RTCSessionDescription::answer(answer.clone()).unwrap())
            .unwrap();
        let call = Call {
            now,
            viewer,
            browser,
            events: Vec::new(),
            received: Vec::new(),
            sent_to: Vec::new(),
            sender_reports: Vec::new(),
            lose_dtls_sent: 0,
            lose_dtls_received: 0,
            local: candidate.base(),
        };
        (call, answer)
    }

    /// Moves every datagram across, runs due timers, and moves the clock on by `tick`.
    fn step(&mut self, tick: Duration) {
        for _ in 0..8 {
            let mut moved = false;
            while let Some(transmit) = self.viewer.poll_transmit() {
                moved = true;
                assert_eq!(
                    transmit.local, self.local,
                    "sent from a socket we do not have"
                );
                self.sent_to.push(transmit.remote);
                if let Some(ssrc) = sender_report_ssrc(&transmit.bytes) {
                    self.sender_reports.push(ssrc);
                }
                if self.lose_dtls_sent > 0 && is_dtls(&transmit.bytes) {
                    self.lose_dtls_sent -= 1;
                    continue;
                }
                let message = TaggedBytesMut {
                    now: self.now,
                    transport: transport(transmit.remote, transmit.local, TransportProtocol::UDP),
                    message: transmit.bytes,
                };
                let _ = self.browser.handle_read(message);
            }
            while let Some(message) = self.browser.poll_write() {
                moved = true;
                if self.lose_dtls_received > 0 && is_dtls(&message.message) {
                    self.lose_dtls_received -= 1;
                    continue;
                }
                self.viewer.handle_datagram(
                    self.now,
                    message.transport.peer_addr,
                    message.transport.local_addr,
                    message.message,
                );
            }
            while let Some(TaggedRTCMessage { message, .. }) = self.browser.poll_read() {
                if let RTCMessage::RtpPacket(_, packet) = message {
                    self.received.push(packet);
                }
            }
            while self.browser.poll_event().is_some() {}
            while let Some(event) = self.viewer.poll_event() {
                self.events.push(event);
            }
            if !moved {
                break;
            }
        }
        self.now += tick;
        if self.viewer.poll_timeout().is_some_and(|at| at <= self.now) {
            self.viewer.handle_timeout(self.now);
        }
        if self.browser.poll_timeout().is_some_and(|at| at <= self.now) {
            let _ = self.browser.handle_timeout(self.now);
        }
    }

    fn run_until(&mut self, what: &str, limit: Duration, done: impl Fn(&Call) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(
                self.now < end,
                "{what} did not happen within {limit:?} (events {:?})",
                self.events
            );
            self.step(Duration::from_millis(5));
        }
    }

    fn connected(&self) -> bool {
        self.events
            .contains(&PeerEvent::State(Connection::Connected))
    }
}

fn keyframe(timestamp: u32, packets: usize) -> Queued {
    let packets: Vec<rtc::rtp::Packet> = (0..packets)
        .map(|i| rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: 96,
                ssrc: 0x1234,
                sequence_number: 1000 + i as u16,
                timestamp,
                marker: i + 1 == packets,
                ..Default::default()
            },
            payload: Bytes::from(vec![0x65, i as u8, 0, 0, 0, 0]),
        })
        .collect();
    Queued {
        frame: Arc::new(AccessUnit {
            nal_types: NalTypes::of_payload(&packets[0].payload),
            packets,
            rtp_timestamp: timestamp,
            arrival: Instant::now(),
        }),
        replay_timestamp: None,
    }
}

#[test]
fn the_answer_carries_our_candidate_and_credentials() {
    let (call, answer) = Call::start(false);
    assert!(answer.contains("10.0.0.2 40000 typ host"), "{answer}");
    assert_eq!(ice_ufrag(&answer).as_deref(), Some(call.viewer.ufrag()));
    assert!(answer.contains("a=sendonly"), "{answer}");
    assert!(call.viewer.has_video() && !call.viewer.has_audio());
    assert!(call.viewer.rtx(), "the browser offered RTX for H.264");
    assert!(call.viewer.remote_ufrag().is_some());
}

#[test]
fn a_relay_only_answer_names_no_address_of_ours() {
    let relayed = crate::egress::candidates::relayed(&[(addr(RELAYED), addr(SERVER))], true);
    let (_, answer) = Call::start_on(false, relayed[0]);
    assert!(answer.contains("203.0.113.254 49160 typ relay"), "{answer}");
    assert!(!answer.contains("10.0.0.2"), "{answer}");
}

#[test]
fn connects_through_a_relayed_address() {
    let relayed = crate::egress::candidates::relayed(&[(addr(RELAYED), addr(SERVER))], false);
    let (mut call, _) = Call::start_on(false, relayed[0]);
    call.run_until("connected", Duration::from_secs(5), Call::connected);
    let sent = call.viewer.send_frame(call.now, &keyframe(3000, 3));
    assert_eq!(sent.packets, 3);
    call.run_until("the frame arriving", Duration::from_secs(1), |call| {
        call.received.len() >= 3
    });
    assert_eq!(
        call.viewer.candidate_pair().as_deref(),
        Some("relay -> host (udp)")
    );
}

#[test]
fn connects_and_delivers_a_frame_as_the_viewers_own_stream() {
    let (mut call, _) = Call::start(false);
    call.run_until("the connection", Duration::from_secs(10), Call::connected);
    assert_eq!(call.viewer.connection(), Connection::Connected);
    assert!(
        call.viewer
            .candidate_pair()
            .is_some_and(|pair| pair.starts_with("host ->"))
    );

    let sent = call.viewer.send_frame(call.now, &keyframe(90_000, 5));
    assert_eq!(sent.packets, 5);
    assert_eq!(sent.refused, 0);
    call.run_until("the frame's packets", Duration::from_secs(1), |call| {
        call.received.len() >= 5
    });
    let first = &call.received[0].header;
    assert_ne!(
        first.ssrc, 0x1234,
        "the viewer's own SSRC, not the pipeline's"
    );
    assert_ne!(
        first.payload_type, 96,
        "the offer's payload type, not the pipeline's"
    );
    let sequence: Vec<u16> = call
        .received
        .iter()
        .map(|p| p.header.sequence_number)
        .collect();
    for pair in sequence.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1));
    }
    assert_eq!(
        call.received[1].payload[1], 1,
        "payloads arrive unchanged, in order"
    );
    assert!(call.sent_to.iter().all(|to| *to == addr(BROWSER)));
}

#[test]
fn the_stream_is_described_by_sender_reports_once_it_flows() {
    let (mut call, _) = Call::start(false);
    call.run_until("the connection", Duration::from_secs(10), Call::connected);
    call.step(Duration::from_secs(2));
    assert!(call.sender_reports.is_empty(), "no report before any media");
    call.viewer.send_frame(call.now, &keyframe(90_000, 2));
    call.run_until("a sender report", Duration::from_secs(2), |call| {
        !call.sender_reports.is_empty()
    });
    assert_eq!(call.sender_reports[0], call.received[0].header.ssrc);
}

#[test]
fn a_picture_loss_report_becomes_a_keyframe_request() {
    let (mut call, _) = Call::start(false);
    call.run_until("the connection", Duration::from_secs(10), Call::connected);
    call.viewer.send_frame(call.now, &keyframe(90_000, 2));
    call.run_until("the frame", Duration::from_secs(1), |call| {
        !call.received.is_empty()
    });
    let media_ssrc = call.received[0].header.ssrc;
    let receiver = call.browser.get_receivers().next().unwrap();
    call.browser
        .rtp_receiver(receiver)
        .unwrap()
        .write_rtcp(
            call.now,
            vec![Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc,
            })],
        )
        .unwrap();
    call.run_until("the keyframe request", Duration::from_secs(1), |call| {
        call.events
            .iter()
            .any(|event| matches!(event, PeerEvent::Feedback(feedback) if feedback.wants_keyframe))
    });
}

#[test]
fn nothing_is_sent_before_the_connection_is_up() {
    let (mut call, _) = Call::start(false);
    let sent = call.viewer.send_frame(call.now, &keyframe(90_000, 3));
    assert_eq!(sent.packets + sent.refused, 3);
    call.step(Duration::from_millis(1));
    assert!(call.received.is_empty());
}

#[test]
fn a_silent_viewer_fails_after_the_ice_timeouts() {
    let (mut call, _) = Call::start(false);
    call.run_until("the connection", Duration::from_secs(10), Call::connected);
    // The browser goes away: nothing of it reaches the viewer any more.
    let end = call.now + Duration::from_secs(60);
    while !call.viewer.connection().is_over() {
        assert!(
            call.now < end,
            "still {:?} after 60 s of silence",
            call.viewer.connection()
        );
        while call.viewer.poll_transmit().is_some() {}
        while let Some(event) = call.viewer.poll_event() {
            call.events.push(event);
        }
        call.now += Duration::from_millis(100);
        call.viewer.handle_timeout(call.now);
    }
    while let Some(event) = call.viewer.poll_event() {
        call.events.push(event);
    }
    assert!(
        call.events
            .contains(&PeerEvent::State(Connection::Disconnected))
    );
    assert!(call.events.contains(&PeerEvent::State(Connection::Failed)));
    assert_eq!(
        call.viewer.poll_timeout(),
        None,
        "a failed viewer needs no more timers"
    );
}

#[test]
fn sound_goes_on_its_own_track() {
    let (mut call, answer) = Call::start(true);
    assert!(call.viewer.has_audio());
    assert!(answer.contains("opus"), "{answer}");
    call.run_until("the connection", Duration::from_secs(10), Call::connected);
    let packet: crate::fanout::audio::AudioPacket = Arc::new(rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            payload_type: 111,
            ssrc: 0x99,
            sequence_number: 5,
            timestamp: 960,
            ..Default::default()
        },
        payload: Bytes::from_static(&[0xfc, 1, 2, 3]),
    });
    assert_eq!(call.viewer.send_audio(call.now, &packet).packets, 1);
    call.run_until("the sound packet", Duration::from_secs(1), |call| {
        !call.received.is_empty()
    });
    assert_eq!(call.received[0].payload.as_ref(), &[0xfc, 1, 2, 3]);
}

#[test]
fn a_malformed_offer_is_the_viewers_fault() {
    let wanted = check_offer(&browser(Instant::now(), false).1, false).unwrap();
    let result = ViewerPeer::answer(
        Instant::now(),
        &PeerSettings::default(),
        "v=0\r\nnonsense".to_owned(),
        &wanted,
        &[LocalCandidate::host(addr(SERVER))],
        &certificate(),
    );
    assert!(
        matches!(result, Err(SessionError::Negotiation(_))),
        "{:?}",
        result.err()
    );
}

#[test]
fn lost_dtls_flights_are_sent_again() {
    for (sent, received) in [(1, 0), (0, 1), (2, 2)] {
        let (mut call, _) = Call::start(false);
        call.lose_dtls_sent = sent;
        call.lose_dtls_received = received;
        call.run_until(
            &format!(
                "connecting with {sent} of our DTLS datagrams and {received} of the browser's lost"
            ),
            Duration::from_secs(10),
            Call::connected,
        );
        assert_eq!(
            (call.lose_dtls_sent, call.lose_dtls_received),
            (0, 0),
            "the losses happened"
        );
    }
}
