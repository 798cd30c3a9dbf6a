//! The floor under fieldcast's cost per packet: what sending one frame to N viewers costs when
//! nothing but the necessary work is done. Per viewer and packet: marshal the RTP header,
//! encrypt with that viewer's own SRTP context (AES-128-GCM, webrtc-rs's `rtc` SRTP code and
//! ring); per viewer and frame: one GSO `sendmsg` from the viewer's own socket to its own
//! loopback receiver, which reads without GRO, as a browser does.
//!
//! `bench/run.py` measures fieldcast through webrtc-rs; this measures the same work without a
//! WebRTC stack around it, so the two together say how much of fieldcast's cost is the stack.
//!
//! `cargo bench --bench send_floor -- [viewers] [seconds]` (defaults 100 and 10). The sender
//! runs on CPU 1 and the receivers on CPU 0, as the servers and the load client in
//! `bench/run.py`.

use rtc::rtp::header::Header;
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A frame of this stream's typical shape: 8 full packets and a shorter last one.
const PAYLOADS: [usize; 9] = [1100, 1100, 1100, 1100, 1100, 1100, 1100, 1100, 500];
const FRAME_INTERVAL: Duration = Duration::from_micros(33_333);
const RTP_HEADER_LEN: usize = 12;
/// Linux's UDP_SEGMENT socket option (GSO segment size), from `linux/udp.h`.
const UDP_SEGMENT: libc::c_int = 103;

fn main() -> io::Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"));
    let viewers: usize = args
        .next()
        .map_or(Ok(100), |a| a.parse())
        .map_err(invalid)?;
    let seconds: u64 = args.next().map_or(Ok(10), |a| a.parse()).map_err(invalid)?;

    let receivers = (0..viewers)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    let destinations = receivers
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<io::Result<Vec<_>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let drain = {
        let stop = stop.clone();
        std::thread::spawn(move || receive_all(receivers, &stop))
    };

    pin_to_cpu(1);
    let provider = rtc::crypto::default_provider().map_err(other)?;
    let crypto = provider.crypto();
    let mut contexts = (0..viewers)
        .map(|viewer| {
            let key = [viewer as u8 ^ 0x5a; 16];
            let salt = [0x17; 12];
            Context::new(
                &key,
                &salt,
                ProtectionProfile::AeadAes128Gcm,
                None,
                None,
                &*crypto,
            )
            .map_err(other)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let senders = (0..viewers)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    let payloads: Vec<Vec<u8>> = PAYLOADS.iter().map(|&len| vec![0xa5; len]).collect();

    let mut plain = Vec::with_capacity(RTP_HEADER_LEN + 1500);
    let mut batch = Vec::with_capacity(16 * 1024);
    let mut sequence = 0u16;
    let mut packets = 0u64;
    let started = Instant::now();
    let cpu_before = thread_cpu_time();
    let frames = seconds * 30;
    for frame in 0..frames {
        if let Some(wait) =
            (started + FRAME_INTERVAL * frame as u32).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
        for (viewer, context) in contexts.iter_mut().enumerate() {
            batch.clear();
            let mut segment_size = 0;
            for (index, payload) in payloads.iter().enumerate() {
                let header = Header {
                    version: 2,
                    marker: index == payloads.len() - 1,
                    payload_type: 102,
                    sequence_number: sequence.wrapping_add(index as u16),
                    timestamp: (frame * 3000) as u32,
                    ssrc: 0x1000 + viewer as u32,
                    ..Default::default()
                };
                plain.clear();
                plain.resize(RTP_HEADER_LEN, 0);
                header.marshal_to(&mut plain).map_err(other)?;
                plain.extend_from_slice(payload);
                let sealed = context
                    .encrypt_rtp_with_header(&plain, &header)
                    .map_err(other)?;
                if index == 0 {
                    segment_size = sealed.len();
                }
                batch.extend_from_slice(&sealed);
                packets += 1;
            }
            send_segmented(&senders[viewer], destinations[viewer], &batch, segment_size)?;
        }
        sequence = sequence.wrapping_add(payloads.len() as u16);
    }
    let cpu = thread_cpu_time() - cpu_before;
    let elapsed = started.elapsed();
    // Let the receivers catch up before counting.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let received = drain.join().expect("the receiving thread does not panic")?;

    let per_packet_us = cpu.as_secs_f64() * 1e6 / packets as f64;
    println!(
        "{viewers} viewers, {frames} frames in {:.1} s: {packets} packets sent, {received} received",
        elapsed.as_secs_f64()
    );
    println!(
        "sender CPU {:.2} s = {per_packet_us:.2} µs per packet, {:.2} % of a core per viewer",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 100.0 / elapsed.as_secs_f64() / viewers as f64
    );
    if received != packets {
        return Err(other(format!(
            "{} of {packets} packets did not arrive: the figure above is not a floor",
            packets - received
        )));
    }
    Ok(())
}

/// One `sendmsg` carrying `contents` as datagrams of `segment_size` bytes (the last may be
/// shorter).
fn send_segmented(
    socket: &UdpSocket,
    destination: SocketAddr,
    contents: &[u8],
    segment_size: usize,
) -> io::Result<()> {
    let SocketAddr::V4(destination) = destination else {
        return Err(other("IPv4 only"));
    };
    let segment_size = u16::try_from(segment_size).map_err(other)?;
    // SAFETY: plain C structs, all fields filled in below before use.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    address.sin_family = libc::AF_INET as libc::sa_family_t;
    address.sin_port = destination.port().to_be();
    address.sin_addr.s_addr = u32::from_ne_bytes(destination.ip().octets());
    let mut iov = libc::iovec {
        iov_base: contents.as_ptr() as *mut libc::c_void,
        iov_len: contents.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: as above.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = (&mut address as *mut libc::sockaddr_in).cast();
    message.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    message.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
    // SAFETY: `control` is aligned and large enough for one cmsg carrying a u16, and `message`
    // points at it; the kernel reads only what `msg_controllen` covers.
    let sent = unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_UDP;
        (*header).cmsg_type = UDP_SEGMENT;
        (*header).cmsg_len = libc::CMSG_LEN(2) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<u16>(), segment_size);
        libc::sendmsg(socket.as_raw_fd(), &message, 0)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads every receiver until `stop`, on CPU 0; returns the datagrams read.
fn receive_all(receivers: Vec<UdpSocket>, stop: &AtomicBool) -> io::Result<u64> {
    pin_to_cpu(0);
    for receiver in &receivers {
        receiver.set_nonblocking(true)?;
        // Room for a few frames per viewer, as a browser's socket has.
        set_receive_buffer(receiver, 1 << 20);
    }
    let mut buffer = [0u8; 2048];
    let mut received = 0;
    while !stop.load(Ordering::Relaxed) {
        for receiver in &receivers {
            while receiver.recv(&mut buffer).is_ok() {
                received += 1;
            }
        }
    }
    Ok(received)
}

fn set_receive_buffer(socket: &UdpSocket, bytes: libc::c_int) {
    // SAFETY: a valid socket and a c_int option value of the right size. Best effort: the
    // received count shows if it was too small.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Pins the calling thread to `cpu` when the machine has it; otherwise leaves it be.
fn pin_to_cpu(cpu: usize) {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) <= cpu {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
}

fn other(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}
