//! An egress socket against real loopback receivers: what is queued leaves whole, in order,
//! and a frame's packets to one viewer in one GSO send where the kernel has GSO.

use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn receiver() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind(loopback()).await.expect("bind a receiver");
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Datagram `index` of `len` bytes: its index in the first two bytes, then a fill.
fn datagram(index: u16, len: usize) -> Vec<u8> {
    let mut bytes = vec![(index % 251) as u8; len];
    bytes[..2].copy_from_slice(&index.to_be_bytes());
    bytes
}

/// The next `count` datagrams, each read on its own (the receiver has no GRO).
async fn read(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while datagrams.len() < count {
        let len = tokio::time::timeout(WAIT, socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} datagrams arrived within {WAIT:?}",
                    datagrams.len()
                )
            })
            .expect("read from the receiver");
        datagrams.push(buf[..len].to_vec());
    }
    datagrams
}

#[tokio::test]
async fn a_frames_packets_leave_in_one_send_in_order() {
    let (viewer, to) = receiver().await;
    let mut socket = EgressSocket::bind(loopback()).expect("bind the egress socket");
    let frame: Vec<Vec<u8>> = (0..8)
        .map(|i| datagram(i, 1200))
        .chain([datagram(8, 300)])
        .collect();
    for packet in &frame {
        socket.queue(to, packet);
    }
    assert!(socket.has_queued());
    let flushed = socket.flush().await;
    assert!(!socket.has_queued(), "a flush empties the queue");
    assert_eq!(flushed.dropped, 0);
    if socket.state.max_gso_segments() > 1 {
        assert_eq!(flushed.sends, 1, "9 packets to one viewer are one GSO send");
    } else {
        assert_eq!(flushed.sends, 9, "without GSO, one send per packet");
    }
    assert_eq!(
        read(&viewer, frame.len()).await,
        frame,
        "whole and in order"
    );
}

#[tokio::test]
async fn other_sizes_and_addresses_keep_their_order() {
    let (first, to_first) = receiver().await;
    let (second, to_second) = receiver().await;
    let mut socket = EgressSocket::bind(loopback()).expect("bind the egress socket");
    let plan = [
        (to_first, 0, 100),
        (to_first, 1, 1200),
        (to_second, 2, 1200),
        (to_first, 3, 1200),
        (to_first, 4, 1300),
        (to_second, 5, 40),
    ];
    for (to, index, len) in plan {
        socket.queue(to, &datagram(index, len));
    }
    let flushed = socket.flush().await;
    assert_eq!(flushed.dropped, 0);
    // Every datagram here starts a run of its own: the address or the size changes each time.
    assert_eq!(flushed.sends, 6);
    assert_eq!(
        read(&first, 4).await,
        vec![
            datagram(0, 100),
            datagram(1, 1200),
            datagram(3, 1200),
            datagram(4, 1300)
        ]
    );
    assert_eq!(
        read(&second, 2).await,
        vec![datagram(2, 1200), datagram(5, 40)]
    );
}

#[tokio::test]
async fn a_viewer_that_is_gone_costs_a_drop_not_an_error() {
    // A port nobody listens on: loopback answers with ICMP port unreachable.
    let gone = {
        let (socket, addr) = receiver().await;
        drop(socket);
        addr
    };
    let (viewer, to) = receiver().await;
    let mut socket = EgressSocket::bind(loopback()).expect("bind the egress socket");
    for round in 0..3u16 {
        socket.queue(gone, &datagram(round, 1200));
        socket.queue(to, &datagram(round, 1200));
        let flushed = socket.flush().await;
        assert_eq!(
            flushed.sends + flushed.dropped,
            2,
            "round {round}: {flushed:?}"
        );
    }
    let arrived = read(&viewer, 3).await;
    assert_eq!(
        arrived,
        (0..3).map(|i| datagram(i, 1200)).collect::<Vec<_>>()
    );
}
