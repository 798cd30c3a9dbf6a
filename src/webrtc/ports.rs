//! Local addresses for one PeerConnection's sockets. With a port range configured (so a
//! router can forward it), each viewer gets a free port from the range instead of one the
//! system picks.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};

/// Where the next search starts, so ports are handed out round the range, not always from
/// its start.
static NEXT: AtomicU16 = AtomicU16::new(0);

/// `addr` with its port 0 replaced by a free one from `range` (UDP or TCP as asked).
/// Addresses with a port of their own are kept.
pub fn assign(addr: &str, range: Option<(u16, u16)>, tcp: bool) -> Result<String, String> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an address and port"))?;
    let Some((low, high)) = range.filter(|_| parsed.port() == 0) else {
        return Ok(addr.to_owned());
    };
    let span = u32::from(high - low) + 1;
    let start = u32::from(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        let candidate = SocketAddr::new(parsed.ip(), port);
        let free = if tcp {
            TcpListener::bind(candidate).is_ok()
        } else {
            UdpSocket::bind(candidate).is_ok()
        };
        if free {
            return Ok(candidate.to_string());
        }
    }
    Err(format!("no free port left in {low}-{high}"))
}

/// Parses `"40000-40099"`.
pub fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let (low, high) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: expected LOW-HIGH, such as 40000-40099"))?;
    let low: u16 = low
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {low:?} is not a port"))?;
    let high: u16 = high
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {high:?} is not a port"))?;
    if low == 0 || low > high {
        return Err(format!("{text:?}: must be LOW-HIGH with 0 < LOW <= HIGH"));
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_nonsense_does_not() {
        assert_eq!(parse_range("40000-40099"), Ok((40000, 40099)));
        assert!(parse_range("40099-40000").is_err());
        assert!(parse_range("0-10").is_err());
        assert!(parse_range("40000").is_err());
    }

    #[test]
    fn a_port_from_the_range_skipping_busy_ones() {
        // Hold one port of a two-port range; the other must be chosen.
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let range = (port, port.saturating_add(1));
        let other = format!("127.0.0.1:{}", port + 1);
        if UdpSocket::bind(&other).is_ok() {
            assert_eq!(assign("127.0.0.1:0", Some(range), false).unwrap(), other);
        }
        assert_eq!(
            assign("127.0.0.1:5000", Some(range), false).unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(assign("127.0.0.1:0", None, false).unwrap(), "127.0.0.1:0");
        let full = (port, port);
        assert!(assign("127.0.0.1:0", Some(full), false).is_err());
    }
}
