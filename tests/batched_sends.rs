//! Viewers' UDP sockets queue what the connection sends and hand it to the kernel together:
//! real sockets on loopback, the receiver with UDP GRO so that a GSO send arrives as one
//! coalesced read.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use webrtc::runtime::{AsyncUdpSocket, RecvMeta, Runtime, TokioRuntime};

use fieldcast::webrtc::batched_socket::BatchedSocket;
use fieldcast::webrtc::runtime::TokioWith;
use fieldcast::webrtc::udp_batch::MAX_QUEUED_BYTES;

const WAIT: Duration = Duration::from_secs(5);

fn loopback() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket")
}

/// A receive buffer that holds a whole burst even if its reader falls behind, so that what
/// the burst test checks is the sender, not the receiver's buffer.
fn roomy(socket: UdpSocket) -> UdpSocket {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 1 << 20;
    // SAFETY: an open socket, and `size` outlives the call.
    let status = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(status, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
    socket
}

/// A sender as viewers' connections get it.
fn batched_sender() -> Arc<dyn AsyncUdpSocket> {
    TokioWith::batched_sends()
        .wrap_udp_socket(loopback())
        .expect("wrap the sender")
}

/// Datagram `index` of `len` bytes: its index in the first two bytes, then a fill.
fn datagram(index: u16, len: usize) -> Vec<u8> {
    let mut bytes = vec![(index % 251) as u8; len];
    bytes[..2].copy_from_slice(&index.to_be_bytes());
    bytes
}

/// One read: the bytes and the size of each datagram in them (GRO may coalesce several).
async fn read(socket: &dyn AsyncUdpSocket) -> (Vec<u8>, usize) {
    let mut buf = vec![0u8; 65_536];
    let mut meta = [RecvMeta::default()];
    tokio::time::timeout(
        WAIT,
        std::future::poll_fn(|cx| {
            let mut bufs = [std::io::IoSliceMut::new(&mut buf)];
            socket.poll_recv(cx, &mut bufs, &mut meta)
        }),
    )
    .await
    .expect("a datagram within 5 s")
    .expect("read from the receiver");
    buf.truncate(meta[0].len);
    (buf, meta[0].stride)
}

/// Reads until `count` datagrams have arrived; returns them in arrival order.
async fn read_datagrams(socket: &dyn AsyncUdpSocket, count: usize) -> Vec<(Vec<u8>, usize)> {
    let mut datagrams = Vec::new();
    let mut reads = 0;
    while datagrams.len() < count {
        let (bytes, stride) = read(socket).await;
        reads += 1;
        for chunk in bytes.chunks(stride.max(1)) {
            datagrams.push((chunk.to_vec(), reads));
        }
    }
    datagrams
}

#[tokio::test]
async fn a_frames_packets_leave_in_one_gso_send_in_order() {
    let receiver = TokioRuntime
        .wrap_udp_socket(loopback())
        .expect("wrap the receiver");
    let to: SocketAddr = receiver.local_addr().unwrap();
    let sender = batched_sender();

    // As the connection's driver sends a frame: one datagram after another, without yielding.
    let frame: Vec<Vec<u8>> = (0..8)
        .map(|i| datagram(i, 1200))
        .chain([datagram(8, 300)])
        .collect();
    for packet in &frame {
        let sent = sender.send_to(packet, to).await.expect("queued");
        assert_eq!(sent, packet.len());
    }

    let received = read_datagrams(&*receiver, frame.len()).await;
    let contents: Vec<&Vec<u8>> = received.iter().map(|(bytes, _)| bytes).collect();
    assert_eq!(
        contents,
        frame.iter().collect::<Vec<_>>(),
        "every datagram arrives whole and in order"
    );
    if sender.max_gso_segments() > 1 && receiver.max_gro_segments() > 1 {
        let reads = received.last().unwrap().1;
        assert_eq!(
            reads, 1,
            "the 9 datagrams were one GSO send, so GRO delivers them in one read (took {reads})"
        );
    } else {
        eprintln!("no UDP GSO/GRO here: only order and contents were checked");
    }
}

#[tokio::test]
async fn datagrams_of_other_sizes_and_addresses_keep_their_order() {
    let first = TokioRuntime.wrap_udp_socket(loopback()).unwrap();
    let second = TokioRuntime.wrap_udp_socket(loopback()).unwrap();
    let sender = batched_sender();
    let plan: [(&Arc<dyn AsyncUdpSocket>, u16, usize); 6] = [
        (&first, 0, 100),
        (&first, 1, 1200),
        (&second, 2, 1200),
        (&first, 3, 1200),
        (&first, 4, 1300),
        (&second, 5, 40),
    ];
    for (to, index, len) in plan {
        sender
            .send_to(&datagram(index, len), to.local_addr().unwrap())
            .await
            .expect("queued");
    }
    let at_first: Vec<Vec<u8>> = read_datagrams(&*first, 4)
        .await
        .into_iter()
        .map(|(bytes, _)| bytes)
        .collect();
    let at_second: Vec<Vec<u8>> = read_datagrams(&*second, 2)
        .await
        .into_iter()
        .map(|(bytes, _)| bytes)
        .collect();
    assert_eq!(
        at_first,
        vec![
            datagram(0, 100),
            datagram(1, 1200),
            datagram(3, 1200),
            datagram(4, 1300)
        ]
    );
    assert_eq!(at_second, vec![datagram(2, 1200), datagram(5, 40)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_queue_waits_for_room_and_loses_nothing() {
    let receiver = Arc::new(TokioRuntime.wrap_udp_socket(roomy(loopback())).unwrap());
    let to = receiver.local_addr().unwrap();
    let sender = batched_sender();
    // Two queues' worth: the sender has to wait for the queue to be sent.
    let count = (2 * MAX_QUEUED_BYTES / 1000) as u16;
    let reading = {
        let receiver = Arc::clone(&receiver);
        tokio::spawn(async move { read_datagrams(&**receiver, count as usize).await })
    };
    tokio::time::timeout(WAIT, async {
        for index in 0..count {
            sender
                .send_to(&datagram(index, 1000), to)
                .await
                .expect("queued");
        }
    })
    .await
    .expect("a full queue makes room again within 5 s");
    let received = tokio::time::timeout(WAIT, reading)
        .await
        .expect("every datagram read within 5 s")
        .unwrap();
    let indexes: Vec<u16> = received
        .iter()
        .map(|(bytes, _)| u16::from_be_bytes([bytes[0], bytes[1]]))
        .collect();
    assert_eq!(indexes, (0..count).collect::<Vec<_>>(), "all, in order");
}

/// A real socket on a network card that cannot do GSO: its first segmented send fails with
/// EIO and the socket stops offering GSO, as quinn-udp's does (a card without UDP checksum
/// offload, for one).
#[derive(Debug)]
struct NoGsoCard {
    socket: Arc<dyn AsyncUdpSocket>,
    gso_refused: std::sync::atomic::AtomicBool,
}

impl AsyncUdpSocket for NoGsoCard {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn poll_send(
        &self,
        cx: &mut std::task::Context<'_>,
        transmit: &webrtc::runtime::Transmit<'_>,
    ) -> std::task::Poll<std::io::Result<usize>> {
        if transmit.segment_size.is_some() {
            self.gso_refused
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return std::task::Poll::Ready(Err(std::io::Error::from_raw_os_error(libc::EIO)));
        }
        self.socket.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut std::task::Context<'_>,
        bufs: &mut [std::io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.socket.poll_recv(cx, bufs, meta)
    }

    fn max_gso_segments(&self) -> usize {
        if self.gso_refused.load(std::sync::atomic::Ordering::Relaxed) {
            1
        } else {
            64
        }
    }
}

#[tokio::test]
async fn a_refused_gso_send_goes_out_datagram_by_datagram() {
    let receiver = TokioRuntime.wrap_udp_socket(loopback()).unwrap();
    let to = receiver.local_addr().unwrap();
    let tokio: Arc<dyn Runtime> = Arc::new(TokioRuntime);
    let card = Arc::new(NoGsoCard {
        socket: tokio.wrap_udp_socket(loopback()).unwrap(),
        gso_refused: Default::default(),
    });
    let sender = BatchedSocket::new(card.clone(), tokio);
    let frame: Vec<Vec<u8>> = (0..4).map(|i| datagram(i, 1200)).collect();
    for packet in &frame {
        sender.send_to(packet, to).await.expect("queued");
    }
    let received: Vec<Vec<u8>> = read_datagrams(&*receiver, frame.len())
        .await
        .into_iter()
        .map(|(bytes, _)| bytes)
        .collect();
    assert!(
        card.gso_refused.load(std::sync::atomic::Ordering::Relaxed),
        "the frame was offered as one GSO send first"
    );
    assert_eq!(received, frame, "then sent whole, in order, one by one");
}
