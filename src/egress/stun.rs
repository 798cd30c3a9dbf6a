//! The STUN exchange (RFC 8489) that tells an egress socket its public address: a binding
//! request, and the XOR-MAPPED-ADDRESS of the server's success response. Pure: no IO.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const HEADER: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_a442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

pub type Transaction = [u8; 12];

/// A binding request with no attributes.
pub fn binding_request(transaction: &Transaction) -> Vec<u8> {
    let mut request = Vec::with_capacity(HEADER);
    request.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    request.extend_from_slice(&0u16.to_be_bytes());
    request.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    request.extend_from_slice(transaction);
    request
}

/// The transaction a binding success response answers, and the address it names; `None`
/// for anything else.
pub fn binding_success(datagram: &[u8]) -> Option<(Transaction, SocketAddr)> {
    if datagram.len() < HEADER
        || u16::from_be_bytes([datagram[0], datagram[1]]) != BINDING_SUCCESS
        || datagram[4..8] != MAGIC_COOKIE.to_be_bytes()
    {
        return None;
    }
    let transaction: Transaction = datagram[8..HEADER].try_into().ok()?;
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let mut rest = datagram.get(HEADER..HEADER + length)?;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == XOR_MAPPED_ADDRESS {
            return Some((transaction, xor_address(value, &transaction)?));
        }
        rest = rest.get(4 + len.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

fn xor_address(value: &[u8], transaction: &Transaction) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match value.get(1)? {
        0x01 => {
            let raw = u32::from_be_bytes(value.get(4..8)?.try_into().ok()?);
            IpAddr::V4(Ipv4Addr::from(raw ^ MAGIC_COOKIE))
        }
        0x02 => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(transaction);
            let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            let mut octets = [0u8; 16];
            for (i, octet) in octets.iter_mut().enumerate() {
                *octet = raw[i] ^ key[i];
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A success response as a server writes it, with a SOFTWARE attribute before the address.
    fn success(transaction: &Transaction, seen: SocketAddr) -> Vec<u8> {
        let mut attributes = vec![
            0x80, 0x22, 0x00, 0x05, b'c', b'o', b't', b'u', b'r', 0, 0, 0,
        ];
        let port = seen.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let SocketAddr::V4(v4) = seen else {
            unreachable!()
        };
        let ip = u32::from(*v4.ip()) ^ MAGIC_COOKIE;
        attributes.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
        attributes.extend_from_slice(&8u16.to_be_bytes());
        attributes.extend_from_slice(&[0, 0x01]);
        attributes.extend_from_slice(&port.to_be_bytes());
        attributes.extend_from_slice(&ip.to_be_bytes());
        let mut response = Vec::new();
        response.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
        response.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        response.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        response.extend_from_slice(transaction);
        response.extend_from_slice(&attributes);
        response
    }

    #[test]
    fn a_request_is_a_bare_binding_request() {
        let request = binding_request(&[7; 12]);
        assert_eq!(request.len(), 20);
        assert_eq!(&request[..4], &[0, 1, 0, 0]);
        assert_eq!(&request[8..], &[7; 12]);
    }

    #[test]
    fn reads_the_address_the_server_saw() {
        let seen: SocketAddr = "203.0.113.1:40000".parse().unwrap();
        let response = success(&[9; 12], seen);
        assert_eq!(binding_success(&response), Some(([9; 12], seen)));
        // Truncated, a request, or not STUN at all: nothing.
        assert_eq!(binding_success(&response[..30]), None);
        assert_eq!(binding_success(&binding_request(&[9; 12])), None);
        assert_eq!(binding_success(&[0x80; 60]), None);
    }

    #[test]
    fn reads_an_ipv6_address() {
        let transaction = [3; 12];
        let seen: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        key[4..].copy_from_slice(&transaction);
        let mut value = vec![0, 0x02];
        value.extend_from_slice(&(5000u16 ^ 0x2112).to_be_bytes());
        value.extend(seen.octets().iter().zip(key).map(|(a, b)| a ^ b));
        assert_eq!(
            xor_address(&value, &transaction),
            Some(SocketAddr::new(IpAddr::V6(seen), 5000))
        );
    }
}
