//! The ICE servers a WHIP endpoint hands out in its `Link` headers (RFC 9725 §4.6). Pure.

use crate::webrtc::api::IceServer;

/// Every `rel="ice-server"` link in `values` (one header each; a value may hold several
/// links separated by commas). Links of other relations and malformed ones are skipped.
pub fn ice_servers(values: &[&str]) -> Vec<IceServer> {
    values
        .iter()
        .flat_map(|value| links(value))
        .filter_map(|(url, params)| {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.clone())
            };
            let rel = param("rel")?;
            if !rel
                .split_whitespace()
                .any(|r| r.eq_ignore_ascii_case("ice-server"))
            {
                return None;
            }
            let scheme = url.split(':').next()?.to_ascii_lowercase();
            if !matches!(scheme.as_str(), "stun" | "stuns" | "turn" | "turns") {
                return None;
            }
            Some(IceServer {
                username: param("username"),
                credential: param("credential"),
                ..IceServer::stun(&url)
            })
        })
        .collect()
}

/// `<url>; key=value; key="value", <url>; …` as (url, params).
fn links(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let url = rest[open + 1..open + close].trim().to_owned();
        rest = &rest[open + close + 1..];
        let end = next_link_start(rest);
        let params = parse_params(&rest[..end]);
        rest = &rest[end..];
        out.push((url, params));
    }
    out
}

/// Where the next `<` outside a quoted string starts (or the end).
fn next_link_start(text: &str) -> usize {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => return i,
            _ => {}
        }
    }
    text.len()
}

fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut pieces = Vec::new();
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' | ',' if !quoted => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    for piece in pieces {
        if let Some((key, value)) = piece.split_once('=') {
            params.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_turn_links_become_ice_servers() {
        let servers = ice_servers(&[
            "<stun:stun.example.net>; rel=\"ice-server\"",
            "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; username=\"user\"; \
             credential=\"my;pass,word\"; credential-type=\"password\"",
        ]);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, ["stun:stun.example.net"]);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[1].urls, ["turn:turn.example.net?transport=udp"]);
        assert_eq!(servers[1].username.as_deref(), Some("user"));
        assert_eq!(servers[1].credential.as_deref(), Some("my;pass,word"));
    }

    #[test]
    fn several_links_in_one_header() {
        let servers = ice_servers(&[
            "<stun:a.example>; rel=\"ice-server\", <stun:b.example>; rel=ice-server",
        ]);
        let urls: Vec<_> = servers.iter().map(|s| s.urls[0].as_str()).collect();
        assert_eq!(urls, ["stun:a.example", "stun:b.example"]);
    }

    #[test]
    fn other_links_and_garbage_are_skipped() {
        let servers = ice_servers(&[
            "<https://example.org/>; rel=\"help\"",
            "<http://x>; rel=\"ice-server\"",
            "<stun:unclosed; rel=\"ice-server\"",
            "no link at all",
            "",
        ]);
        assert!(servers.is_empty(), "{servers:?}");
    }
}
