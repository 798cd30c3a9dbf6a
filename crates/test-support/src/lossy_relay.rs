//! A UDP relay between a viewer and the daemon that loses chosen RTP packets on their way to
//! the viewer, once each: real loss on loopback, without root. The RTP header is not encrypted
//! by SRTP, so the relay can pick packets by sequence number.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

pub struct LossyRelay {
    /// Where the viewer should send: put this in the answer instead of the daemon's address.
    pub viewer_side: SocketAddr,
    dropped: Arc<Mutex<Vec<u16>>>,
    passed: Arc<Mutex<Vec<RtpSeen>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The clear part of an SRTP packet's header (the payload is encrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpSeen {
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence_number: u16,
}

/// RTP, not RTCP (RFC 5761 §4: RTCP packet types 192–223 make payload types 64–95).
fn rtp_header(datagram: &[u8]) -> Option<RtpSeen> {
    let is_rtp =
        datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(64..96).contains(&(datagram[1] & 0x7f));
    is_rtp.then(|| RtpSeen {
        ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
        payload_type: datagram[1] & 0x7f,
        sequence_number: u16::from_be_bytes([datagram[2], datagram[3]]),
    })
}

impl LossyRelay {
    /// Relays between a viewer and `daemon`; of the RTP packets going to the viewer on its
    /// media SSRC, those at the given positions (0 = the first) are lost the first time they
    /// pass.
    /// Call from within the tokio runtime.
    pub fn start(daemon: SocketAddr, lose_at: &[usize]) -> LossyRelay {
        let bind = || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            UdpSocket::from_std(socket).unwrap()
        };
        let (viewer_socket, daemon_socket) = (bind(), bind());
        let viewer_side = viewer_socket.local_addr().unwrap();
        let lose_at: HashSet<usize> = lose_at.iter().copied().collect();
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&dropped);
        let passed = Arc::new(Mutex::new(Vec::new()));
        let record_passed = Arc::clone(&passed);
        let task = tokio::spawn(async move {
            let mut viewer: Option<SocketAddr> = None;
            let mut rtp_seen = 0usize;
            let mut media_ssrc = None;
            let mut from_viewer = vec![0u8; 2048];
            let mut from_daemon = vec![0u8; 2048];
            loop {
                tokio::select! {
                    received = viewer_socket.recv_from(&mut from_viewer) => {
                        let Ok((n, from)) = received else { return };
                        viewer = Some(from);
                        let _ = daemon_socket.send_to(&from_viewer[..n], daemon).await;
                    }
                    received = daemon_socket.recv_from(&mut from_daemon) => {
                        let Ok((n, _)) = received else { return };
                        let datagram = &from_daemon[..n];
                        if let Some(seen) = rtp_header(datagram) {
                            let sequence = seen.sequence_number;
                            let mut dropped = record.lock().unwrap();
                            // Counts first transmissions on the media SSRC (the first one
                            // seen) only, so a repair is never what gets lost.
                            let media = *media_ssrc.get_or_insert(seen.ssrc) == seen.ssrc;
                            if media && !dropped.contains(&sequence) {
                                let position = rtp_seen;
                                rtp_seen += 1;
                                if lose_at.contains(&position) {
                                    dropped.push(sequence);
                                    continue;
                                }
                            }
                            drop(dropped);
                            record_passed.lock().unwrap().push(seen);
                        }
                        if let Some(viewer) = viewer {
                            let _ = viewer_socket.send_to(datagram, viewer).await;
                        }
                    }
                }
            }
        });
        LossyRelay {
            viewer_side,
            dropped,
            passed,
            task,
        }
    }

    /// Sequence numbers lost so far.
    pub fn dropped(&self) -> Vec<u16> {
        self.dropped.lock().unwrap().clone()
    }

    /// Headers of the RTP packets passed on to the viewer so far, in order.
    pub fn passed(&self) -> Vec<RtpSeen> {
        self.passed.lock().unwrap().clone()
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The daemon's UDP host candidate in an answer, as `ip:port`.
pub fn udp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line.strip_prefix("a=candidate:")?.split(' ').collect();
        let udp = fields.get(2)?.eq_ignore_ascii_case("udp");
        let host = fields.get(7) == Some(&"host");
        (udp && host).then(|| format!("{}:{}", fields[4], fields[5]).parse().ok())?
    })
}

/// An SDP with its candidates replaced by the one given.
pub fn only_candidate(sdp: &str, address: Option<SocketAddr>) -> String {
    let mut out = String::new();
    let mut placed = false;
    for line in sdp.lines() {
        if line.starts_with("a=candidate:") {
            if let (Some(address), false) = (address, placed) {
                out.push_str(&format!(
                    "a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
                    address.ip(),
                    address.port()
                ));
                placed = true;
            }
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}
