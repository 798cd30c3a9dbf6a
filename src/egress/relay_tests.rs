//! The loop's relays against a TURN server played by hand: its answers built here, datagrams
//! passed by hand, the clock moved by hand. No sockets.

use super::*;
use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::{CODE_ALLOC_MISMATCH, CODE_UNAUTHORIZED};
use rtc::stun::message::{
    BINDING_REQUEST, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE,
    METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_DATA, METHOD_SEND, Setter,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::turn::proto::chandata::ChannelData;
use rtc::turn::proto::data::Data;
use rtc::turn::proto::lifetime::Lifetime;
use rtc::turn::proto::peeraddr::PeerAddress;
use rtc::turn::proto::relayaddr::RelayedAddress;

const SOCKET: &str = "10.1.0.2:40000";
const SERVER: &str = "203.0.113.254:3478";
const RELAYED: &str = "203.0.113.254:49160";
const VIEWER: &str = "10.2.0.2:51000";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn turn_server() -> TurnServer {
    TurnServer {
        url: format!("turn:{SERVER}?transport=udp"),
        host_port: SERVER.to_owned(),
        credentials: IceServer {
            urls: vec![format!("turn:{SERVER}?transport=udp")],
            username: Some("user".into()),
            credential: Some("pass".into()),
            secret: None,
            credential_ttl_s: None,
        },
    }
}

/// A TURN server that grants what it is asked, or refuses signed Allocates with `refuse`
/// and Refreshes with `refuse_refresh`.
#[derive(Default)]
struct Server {
    refuse: Option<u16>,
    refuse_refresh: Option<u16>,
    allocates: usize,
    permitted: Vec<SocketAddr>,
    /// What it relayed on to viewers.
    relayed: Vec<Vec<u8>>,
}

impl Server {
    fn answer(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        if ChannelData::is_channel_data(request) {
            let mut data = ChannelData {
                raw: request.to_vec(),
                ..Default::default()
            };
            data.decode().unwrap();
            self.relayed.push(data.data);
            return None;
        }
        let mut message = Message::new();
        message.raw = request.to_vec();
        message.decode().unwrap();
        let id = message.transaction_id;
        let reply = |setters: Vec<Box<dyn Setter>>| {
            let mut reply = Message::new();
            let mut all: Vec<Box<dyn Setter>> = vec![Box::new(id)];
            all.extend(setters);
            reply.build(&all).unwrap();
            Some(reply.raw)
        };
        let success = |method| Box::new(MessageType::new(method, CLASS_SUCCESS_RESPONSE));
        let refusal = |method, code: u16| -> Vec<Box<dyn Setter>> {
            vec![
                Box::new(MessageType::new(method, CLASS_ERROR_RESPONSE)),
                Box::new(ErrorCodeAttribute {
                    code: rtc::stun::error_code::ErrorCode(code),
                    reason: b"no".to_vec(),
                }),
            ]
        };
        match (message.typ.method, message.typ.class) {
            (METHOD_ALLOCATE, CLASS_REQUEST) if !message.contains(ATTR_USERNAME) => {
                let mut setters = refusal(METHOD_ALLOCATE, CODE_UNAUTHORIZED.0);
                setters.push(Box::new(TextAttribute::new(ATTR_NONCE, "n".into())));
                setters.push(Box::new(TextAttribute::new(ATTR_REALM, "r".into())));
                reply(setters)
            }
            (METHOD_ALLOCATE, CLASS_REQUEST) => {
                self.allocates += 1;
                if let Some(code) = self.refuse {
                    return reply(refusal(METHOD_ALLOCATE, code));
                }
                let relayed = addr(RELAYED);
                reply(vec![
                    success(METHOD_ALLOCATE),
                    Box::new(RelayedAddress {
                        ip: relayed.ip(),
                        port: relayed.port(),
                    }),
                    Box::new(Lifetime(Duration::from_secs(600))),
                ])
            }
            (METHOD_CREATE_PERMISSION, CLASS_REQUEST) => {
                let mut peer = PeerAddress::default();
                peer.get_from(&message).unwrap();
                self.permitted.push(SocketAddr::new(peer.ip, peer.port));
                reply(vec![success(METHOD_CREATE_PERMISSION)])
            }
            (METHOD_CHANNEL_BIND, CLASS_REQUEST) => reply(vec![success(METHOD_CHANNEL_BIND)]),
            (METHOD_REFRESH, CLASS_REQUEST) => match self.refuse_refresh {
                Some(code) => reply(refusal(METHOD_REFRESH, code)),
                None => reply(vec![
                    success(METHOD_REFRESH),
                    Box::new(Lifetime(Duration::from_secs(600))),
                ]),
            },
            (METHOD_SEND, CLASS_INDICATION) => {
                let mut data = Data::default();
                data.get_from(&message).unwrap();
                self.relayed.push(data.0);
                None
            }
            _ => None,
        }
    }

    /// A Data indication: `bytes` from `peer`, relayed to the client.
    fn data_from(&self, peer: SocketAddr, bytes: &[u8]) -> BytesMut {
        let mut message = Message::new();
        message
            .build(&[
                Box::new(TransactionId::new()),
                Box::new(MessageType::new(METHOD_DATA, CLASS_INDICATION)),
                Box::new(PeerAddress {
                    ip: peer.ip(),
                    port: peer.port(),
                }),
                Box::new(Data(bytes.to_vec())),
            ])
            .unwrap();
        BytesMut::from(&message.raw[..])
    }
}

/// Passes everything between the relays and the server until neither has more to say.
fn exchange(relays: &mut Relays, server: &mut Server, now: Instant) {
    loop {
        let mut answers = Vec::new();
        while let Some(out) = relays.poll_to_server() {
            assert_eq!((out.local, out.server), (addr(SOCKET), addr(SERVER)));
            answers.extend(server.answer(&out.bytes));
        }
        if answers.is_empty() {
            return;
        }
        for answer in answers {
            let taken = relays.handle_datagram(
                now,
                addr(SOCKET),
                addr(SERVER),
                BytesMut::from(&answer[..]),
            );
            assert!(taken.is_ok(), "the server's answer was not taken");
        }
    }
}

/// Relays with one allocation made.
fn allocated(relay_only: bool) -> (Relays, Server, Instant) {
    let now = Instant::now();
    let mut relays = Relays::new(relay_only);
    let mut server = Server::default();
    relays.add(now, addr(SOCKET), addr(SERVER), turn_server());
    relays.handle_timeout(now, SystemTime::now());
    exchange(&mut relays, &mut server, now);
    (relays, server, now)
}

fn check() -> BytesMut {
    let mut message = Message::new();
    message
        .build(&[
            Box::new(TransactionId::new()),
            Box::new(BINDING_REQUEST),
            Box::new(TextAttribute::new(ATTR_USERNAME, "theirs:ours".into())),
        ])
        .unwrap();
    BytesMut::from(&message.raw[..])
}

#[test]
fn the_socket_gets_a_relayed_address() {
    let (mut relays, server, _) = allocated(false);
    assert_eq!(server.allocates, 1);
    assert_eq!(relays.relayed(), [(addr(RELAYED), addr(SOCKET))]);
    assert!(relays.is_relayed(addr(RELAYED)));
    assert!(relays.is_server(addr(SOCKET), addr(SERVER)));
    assert!(relays.take_changed());
    assert!(!relays.take_changed(), "told once");
}

#[test]
fn a_datagram_waits_for_its_viewers_permission() {
    let (mut relays, mut server, now) = allocated(false);
    relays.send(
        now,
        addr(RELAYED),
        addr(VIEWER),
        BytesMut::from(&b"dtls"[..]),
    );
    let asked = relays.poll_to_server().expect("a permission request");
    assert!(
        server.relayed.is_empty(),
        "nothing relayed before the permission"
    );
    let granted = server.answer(&asked.bytes).unwrap();
    assert_eq!(server.permitted, [addr(VIEWER)]);
    relays
        .handle_datagram(
            now,
            addr(SOCKET),
            addr(SERVER),
            BytesMut::from(&granted[..]),
        )
        .unwrap();
    exchange(&mut relays, &mut server, now);
    assert_eq!(server.relayed, [b"dtls".to_vec()]);
    // Permitted now: the next goes straight through (on the channel bound meanwhile).
    relays.send(
        now,
        addr(RELAYED),
        addr(VIEWER),
        BytesMut::from(&b"rtp"[..]),
    );
    exchange(&mut relays, &mut server, now);
    assert_eq!(server.relayed, [b"dtls".to_vec(), b"rtp".to_vec()]);
    assert_eq!(server.permitted.len(), 1, "asked once");
}

#[test]
fn our_own_checks_wait_for_a_permission_only_when_relays_are_the_only_path() {
    for relay_only in [false, true] {
        let (mut relays, mut server, now) = allocated(relay_only);
        relays.send(now, addr(RELAYED), addr(VIEWER), check());
        exchange(&mut relays, &mut server, now);
        assert_eq!(server.permitted, [addr(VIEWER)]);
        assert_eq!(
            server.relayed.len(),
            usize::from(relay_only),
            "relay-only: {relay_only}"
        );
    }
}

#[test]
fn a_viewer_is_permitted_ahead_of_its_first_datagram() {
    let (mut relays, mut server, now) = allocated(true);
    relays.permit(now, addr(VIEWER));
    relays.permit(now, addr(VIEWER));
    exchange(&mut relays, &mut server, now);
    assert_eq!(server.permitted, [addr(VIEWER)], "asked once");
    relays.send(now, addr(RELAYED), addr(VIEWER), check());
    exchange(&mut relays, &mut server, now);
    assert_eq!(server.relayed.len(), 1, "sent at once");
    assert_eq!(server.permitted.len(), 1);
}

#[test]
fn what_a_viewer_sends_arrives_on_the_relayed_address() {
    let (mut relays, server, now) = allocated(false);
    let indication = server.data_from(addr(VIEWER), b"check");
    assert!(
        relays
            .handle_datagram(now, addr(SOCKET), addr(SERVER), indication)
            .is_ok()
    );
    let received = relays.poll_received().expect("the viewer's datagram");
    assert_eq!(
        (received.relayed, received.peer),
        (addr(RELAYED), addr(VIEWER))
    );
    assert_eq!(&received.bytes[..], b"check");
    assert!(
        relays
            .handle_datagram(now, addr(SOCKET), addr(VIEWER), BytesMut::new())
            .is_err(),
        "a viewer's own datagram is not the server's"
    );
}

#[test]
fn a_refused_allocation_is_asked_for_again_later() {
    let now = Instant::now();
    let mut relays = Relays::new(false);
    let mut server = Server {
        refuse: Some(CODE_ALLOC_MISMATCH.0),
        ..Server::default()
    };
    relays.add(now, addr(SOCKET), addr(SERVER), turn_server());
    relays.handle_timeout(now, SystemTime::now());
    exchange(&mut relays, &mut server, now);
    assert!(relays.relayed().is_empty());
    assert!(
        !relays.is_server(addr(SOCKET), addr(SERVER)),
        "the client is gone"
    );
    assert_eq!(relays.poll_timeout(), Some(now + retry_after(1)));
    server.refuse = None;
    let later = now + retry_after(1);
    relays.handle_timeout(later, SystemTime::now());
    exchange(&mut relays, &mut server, later);
    assert_eq!(server.allocates, 2);
    assert_eq!(relays.relayed(), [(addr(RELAYED), addr(SOCKET))]);
}

#[test]
fn refreshes_keep_the_allocation_until_one_is_refused() {
    let (mut relays, mut server, now) = allocated(false);
    relays.take_changed();
    let refresh_due = relays.poll_timeout().unwrap();
    assert!(refresh_due <= now + REFRESH_INTERVAL_CAP);
    relays.handle_timeout(refresh_due, SystemTime::now());
    exchange(&mut relays, &mut server, refresh_due);
    assert_eq!(relays.relayed().len(), 1, "refreshed");
    assert!(!relays.take_changed());

    server.refuse_refresh = Some(CODE_ALLOC_MISMATCH.0);
    let next = relays.poll_timeout().unwrap();
    relays.handle_timeout(next, SystemTime::now());
    exchange(&mut relays, &mut server, next);
    assert!(relays.relayed().is_empty(), "lost");
    assert!(relays.take_changed());
    assert_eq!(relays.poll_timeout(), Some(next + retry_after(1)));
}

#[test]
fn a_refusal_the_client_did_not_ask_for_changes_nothing() {
    let (mut relays, _, now) = allocated(false);
    let mut refusal = Message::new();
    refusal
        .build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_REFRESH, CLASS_ERROR_RESPONSE)),
            Box::new(ErrorCodeAttribute {
                code: CODE_ALLOC_MISMATCH,
                reason: b"gone".to_vec(),
            }),
        ])
        .unwrap();
    let refusal = BytesMut::from(&refusal.raw[..]);
    relays
        .handle_datagram(now, addr(SOCKET), addr(SERVER), refusal)
        .unwrap();
    assert_eq!(relays.relayed().len(), 1);
}
