//! Which viewer a datagram on a shared socket belongs to. A viewer's first datagrams are ICE
//! checks whose STUN USERNAME starts with the ufrag we gave that viewer; from then on (and for
//! the addresses we sent to first) its address pair names it. Pure: no IO.

use std::collections::HashMap;
use std::net::SocketAddr;

/// A viewer in one egress loop.
pub type ViewerKey = u64;

const STUN_HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTRIBUTE_USERNAME: u16 = 0x0006;

#[derive(Debug, Default)]
pub struct Demux {
    by_ufrag: HashMap<String, ViewerKey>,
    /// (our socket, the viewer's address) → viewer.
    by_path: HashMap<(SocketAddr, SocketAddr), ViewerKey>,
}

impl Demux {
    /// Checks that start with `ufrag` are `viewer`'s (again, after an ICE restart).
    pub fn add_ufrag(&mut self, ufrag: &str, viewer: ViewerKey) {
        self.by_ufrag.retain(|_, key| *key != viewer);
        self.by_ufrag.insert(ufrag.to_owned(), viewer);
    }

    /// `viewer` sent `datagram` from `local` to `remote`: an ICE check makes the path its
    /// own, so the answer finds it. A path another viewer holds stays that viewer's: only a
    /// check naming its ufrag moves it. Media and DTLS only ever follow a checked path, so
    /// they teach nothing and cost no lookup.
    pub fn learn_sent(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
        viewer: ViewerKey,
    ) {
        if is_stun(datagram) {
            self.by_path.entry((local, remote)).or_insert(viewer);
        }
    }

    /// The viewer a datagram is for, learning the path from an ICE check that names one.
    pub fn route(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) -> Option<ViewerKey> {
        if let Some(username) = binding_request_username(datagram) {
            let ufrag = username.split(':').next().unwrap_or_default();
            if let Some(&viewer) = self.by_ufrag.get(ufrag) {
                self.by_path.insert((local, remote), viewer);
                return Some(viewer);
            }
        }
        self.by_path.get(&(local, remote)).copied()
    }

    /// Forgets everything that named `viewer`.
    pub fn forget(&mut self, viewer: ViewerKey) {
        self.by_ufrag.retain(|_, key| *key != viewer);
        self.by_path.retain(|_, key| *key != viewer);
    }

    /// Paths known.
    #[cfg(test)]
    pub fn paths(&self) -> usize {
        self.by_path.len()
    }
}

/// Whether a datagram is STUN (RFC 7983: its first byte is 0 to 3, and the magic cookie).
fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE
}

/// The USERNAME of a STUN binding request (RFC 8489), or `None` for anything else.
pub fn binding_request_username(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < STUN_HEADER || datagram[0] & 0xc0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let message_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    if message_type != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let attributes = datagram.get(STUN_HEADER..STUN_HEADER + length)?;
    let mut rest = attributes;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == ATTRIBUTE_USERNAME {
            return std::str::from_utf8(value).ok();
        }
        // Attributes are padded to 4 bytes.
        rest = rest.get(4 + len.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// A binding request with a USERNAME, and a PRIORITY after it, as browsers send.
    fn check(username: &str) -> Vec<u8> {
        let mut attributes = Vec::new();
        attributes.extend_from_slice(&ATTRIBUTE_USERNAME.to_be_bytes());
        attributes.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attributes.extend_from_slice(username.as_bytes());
        attributes.resize(attributes.len().div_ceil(4) * 4, 0);
        attributes.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        let mut datagram = Vec::new();
        datagram.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        datagram.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        datagram.extend_from_slice(&MAGIC_COOKIE);
        datagram.extend_from_slice(&[7; 12]);
        datagram.extend_from_slice(&attributes);
        datagram
    }

    #[test]
    fn reads_the_username_of_a_binding_request_only() {
        assert_eq!(binding_request_username(&check("abc:xyz")), Some("abc:xyz"));
        let mut response = check("abc:xyz");
        response[0] = 0x01; // 0x0101, a success response
        assert_eq!(binding_request_username(&response), None);
        assert_eq!(
            binding_request_username(&[0x80; 40]),
            None,
            "RTP is not STUN"
        );
        assert_eq!(
            binding_request_username(&check("abc:xyz")[..22]),
            None,
            "truncated"
        );
        assert_eq!(binding_request_username(&[]), None);
    }

    #[test]
    fn a_check_names_its_viewer_and_then_the_path_does() {
        let (local, browser) = (addr("10.0.0.2:40000"), addr("10.0.0.9:51000"));
        let mut demux = Demux::default();
        demux.add_ufrag("ufragA", 1);
        demux.add_ufrag("ufragB", 2);
        assert_eq!(
            demux.route(local, browser, b"\x16dtls"),
            None,
            "unknown path"
        );
        assert_eq!(
            demux.route(local, browser, &check("ufragB:theirs")),
            Some(2)
        );
        assert_eq!(demux.route(local, browser, b"\x16dtls"), Some(2));
        assert_eq!(
            demux.route(local, addr("10.0.0.9:51001"), b"\x16dtls"),
            None
        );
    }

    #[test]
    fn a_path_we_sent_to_first_is_kept_for_its_viewer() {
        let (local, browser) = (addr("10.0.0.2:40000"), addr("10.0.0.9:51000"));
        let mut demux = Demux::default();
        demux.learn_sent(local, browser, b"\x80media", 1);
        assert_eq!(demux.paths(), 0, "media teaches no path");
        demux.learn_sent(local, browser, &check("theirs:ufragA"), 1);
        demux.learn_sent(local, browser, &check("theirs:ufragB"), 2);
        assert_eq!(demux.route(local, browser, b"x"), Some(1));
        demux.forget(1);
        assert_eq!(demux.route(local, browser, b"x"), None);
        assert_eq!(demux.paths(), 0);
    }

    #[test]
    fn a_restart_moves_the_ufrag() {
        let mut demux = Demux::default();
        demux.add_ufrag("old", 1);
        demux.add_ufrag("new", 1);
        let (local, browser) = (addr("10.0.0.2:40000"), addr("10.0.0.9:51000"));
        assert_eq!(demux.route(local, browser, &check("old:x")), None);
        assert_eq!(demux.route(local, browser, &check("new:x")), Some(1));
    }
}
