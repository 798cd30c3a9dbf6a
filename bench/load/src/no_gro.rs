//! Viewer sockets without UDP GRO, as a browser's are.
//!
//! webrtc-rs turns GRO on for every socket it binds. A viewer with GRO would take a server's
//! GSO send (one frame's packets to it) off loopback as one coalesced datagram, and the kernel
//! would skip splitting it: work a real viewer's machine does, and on loopback charged to the
//! server. Without GRO both servers' packets reach the viewer one by one, at the same cost.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// webrtc-rs's tokio runtime, except that UDP sockets have GRO turned off.
#[derive(Debug)]
struct NoGro(TokioRuntime);

pub fn runtime() -> Arc<dyn Runtime> {
    Arc::new(NoGro(TokioRuntime))
}

impl Runtime for NoGro {
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let fd = socket.as_raw_fd();
        // Wrapping turns GRO on, so it is turned off after; `wrapped` keeps the fd open.
        let wrapped = self.0.wrap_udp_socket(socket)?;
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
        Ok(wrapped)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio, no UDP GRO"
    }
}
