//! Viewer sockets without UDP GRO, as a browser's are.
//!
//! webrtc-rs turns GRO on for every socket it binds. A viewer with GRO would take a server's
//! GSO send (one frame's packets to it) off loopback as one coalesced datagram, and the kernel
//! would skip splitting it: work a real viewer's machine does, and on loopback charged to the
//! server. Without GRO both servers' packets reach the viewer one by one, at the same cost.

use fieldcast::webrtc::runtime::TokioWith;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use webrtc::runtime::{AsyncUdpSocket, Runtime};

pub fn runtime() -> Arc<dyn Runtime> {
    TokioWith::udp_wrapped("tokio, no UDP GRO", |tokio, socket| {
        let fd = socket.as_raw_fd();
        // Wrapping turns GRO on, so it is turned off after; `wrapped` keeps the fd open.
        let wrapped = tokio.wrap_udp_socket(socket)?;
        let off: libc::c_int = 0;
        // SAFETY: `fd` is an open UDP socket owned by `wrapped`, and `off` outlives the call.
        let status = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_UDP,
                libc::UDP_GRO,
                (&off as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if status != 0 {
            let err = io::Error::last_os_error();
            // A kernel without UDP GRO has nothing to turn off.
            if err.raw_os_error() != Some(libc::ENOPROTOOPT) {
                return Err(err);
            }
        }
        Ok(wrapped as Arc<dyn AsyncUdpSocket>)
    })
}
