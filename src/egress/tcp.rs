//! ICE over TCP (RFC 6544, passive): for viewers whose network blocks UDP, a TCP listener
//! beside each of the loop's sockets. A connection carries the viewer's packets framed with a
//! 2-byte length (RFC 4571). Each connection is a small task that hands frames to the loop and
//! writes what the loop gives it; the loop drops a connection whose frames belong to no viewer
//! by dropping its writer, and a connection that stays silent ends by itself.

use bytes::BytesMut;
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Connections open at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 256;
/// A connection that brings nothing for this long ends: ICE's consent checks come every few
/// seconds while a viewer is there.
const IDLE: Duration = Duration::from_secs(30);
/// How long one framed write may wait for a viewer that does not read.
const WRITE_WAIT: Duration = Duration::from_secs(5);
/// Packets waiting to be written to one connection before more are dropped.
const WRITE_QUEUE: usize = 512;

/// One TCP connection: the address viewers reach our listener at, and the viewer's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Path {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What TCP connections tell the loop.
pub enum TcpEvent {
    /// A viewer connected; what the loop sends on `writer` is framed and written.
    Opened {
        path: Path,
        writer: mpsc::Sender<BytesMut>,
    },
    /// One framed packet arrived.
    Frame {
        path: Path,
        bytes: BytesMut,
    },
    Closed {
        path: Path,
    },
}

/// A listener on `addr`, or, when that port is taken, on the first free port of `range` (or
/// any port without one) — unless the port was configured and must be this one.
pub fn bind(
    addr: SocketAddr,
    port_fixed: bool,
    range: Option<(u16, u16)>,
) -> io::Result<std::net::TcpListener> {
    let taken = match std::net::TcpListener::bind(addr) {
        Ok(listener) => return Ok(listener),
        Err(e) if port_fixed => return Err(e),
        Err(e) => e,
    };
    let mut ports = match range {
        Some((low, high)) => (low..=high).collect::<Vec<u16>>(),
        None => vec![0],
    };
    ports.retain(|&port| port != addr.port());
    ports
        .into_iter()
        .find_map(|port| std::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)).ok())
        .ok_or(taken)
}

/// Listens on `listener`, handing every connection's frames to `events` tagged with
/// `advertised` (the address the viewer was told to connect to), until the loop is gone.
pub fn listen(
    listener: std::net::TcpListener,
    advertised: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    tokio::spawn(accept(listener, advertised, events));
    Ok(())
}

async fn accept(listener: TcpListener, local: SocketAddr, events: mpsc::Sender<TcpEvent>) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = events.closed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(%local, "ICE-TCP accept: {e}");
                // Out of descriptors, say: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::debug!(%remote, "ICE-TCP: too many connections; closed");
            continue;
        };
        let events = events.clone();
        tokio::spawn(async move {
            connection(stream, Path { local, remote }, events).await;
            drop(permit);
        });
    }
}

async fn connection(stream: TcpStream, path: Path, events: mpsc::Sender<TcpEvent>) {
    let _ = stream.set_nodelay(true);
    let (tx, mut to_write) = mpsc::channel(WRITE_QUEUE);
    if events
        .send(TcpEvent::Opened { path, writer: tx })
        .await
        .is_err()
    {
        return;
    }
    let (mut reader, mut writer) = stream.into_split();
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            read = tokio::time::timeout(IDLE, reader.read(&mut buf)) => {
                let len = match read {
                    Ok(Ok(len)) if len > 0 => len,
                    _ => break,
                };
                decoder.extend_from_slice(&buf[..len]);
                while let Some(packet) = decoder.next_packet() {
                    let frame = TcpEvent::Frame { path, bytes: BytesMut::from(&packet[..]) };
                    if let Err(mpsc::error::TrySendError::Closed(_)) = events.try_send(frame) {
                        return;
                    }
                }
            }
            packet = to_write.recv() => {
                // None: the loop let this connection go.
                let Some(packet) = packet else { break };
                let framed = frame_packet(&packet);
                match tokio::time::timeout(WRITE_WAIT, writer.write_all(&framed)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed { path }).await;
}
