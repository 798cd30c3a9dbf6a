//! The runtime PeerConnections run on: webrtc-rs's tokio runtime, with a say in how each UDP
//! socket a connection binds is wrapped. Viewers' connections get sockets that batch their
//! sends (`batched_socket.rs`).

use crate::webrtc::batched_socket::BatchedSocket;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// Wraps a socket a connection has bound; gets the plain tokio runtime to build on.
pub type WrapUdp =
    fn(&Arc<dyn Runtime>, std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>>;

/// tokio, with UDP sockets wrapped by `wrap_udp`; everything else is tokio's.
#[derive(Debug)]
pub struct TokioWith {
    inner: Arc<dyn Runtime>,
    wrap_udp: WrapUdp,
    name: &'static str,
}

impl TokioWith {
    /// `name` shows in webrtc-rs's log and error messages.
    pub fn udp_wrapped(name: &'static str, wrap_udp: WrapUdp) -> Arc<dyn Runtime> {
        Arc::new(Self {
            inner: Arc::new(TokioRuntime),
            wrap_udp,
            name,
        })
    }

    /// What viewers' connections run on: a frame's packets to a viewer leave together.
    pub fn batched_sends() -> Arc<dyn Runtime> {
        Self::udp_wrapped("tokio, batched UDP sends", |tokio, socket| {
            Ok(Arc::new(BatchedSocket::new(
                tokio.wrap_udp_socket(socket)?,
                tokio.clone(),
            )))
        })
    }
}

impl Runtime for TokioWith {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        (self.wrap_udp)(&self.inner, socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        self.name
    }
}
