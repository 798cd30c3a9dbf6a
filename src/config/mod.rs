//! Daemon settings: defaults in one place, then the file (`/etc/fieldcast/fieldcast.toml`),
//! then `FIELDCAST_*` variables and flags, each overriding the one before.

pub(crate) mod admin_token;
pub(crate) mod file;
pub mod load;
pub(crate) mod port_range;
pub(crate) mod secrets;
pub(crate) mod state_dir;
pub(crate) mod validate;

use crate::media::MediaSettings;
use crate::webrtc::api::{IceServer, PeerSettings};
use secrets::AccessSettings;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_TITLE: &str = "Live";
/// Read when it exists and no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/fieldcast/fieldcast.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// HTTP address for the viewer page and WHEP.
    pub listen: SocketAddr,
    /// Shown on the viewer page and in the browser tab.
    pub title: String,
    pub media: MediaSettings,
    pub peer: PeerSettings,
    /// A viewer that has not connected by then is forgotten.
    pub connect_timeout: Duration,
    /// Frames a viewer may fall behind before it loses frames.
    pub viewer_queue_frames: usize,
    pub access: AccessSettings,
    pub limits: Limits,
    pub tls: TlsSettings,
    /// Where fieldcast keeps what it makes (the admin token); `None`: see [`state_dir`].
    pub state_dir: Option<PathBuf>,
    /// Engines that get the same encode (`[[publish]]`, `--publish`).
    pub publish: Vec<crate::publish::PublishTarget>,
    /// Recording on the board (`[record]`, `--record`).
    pub record: crate::record::RecordSettings,
}

/// What one device will take on before it says no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Viewers at once; the next one gets 503 with Retry-After.
    pub max_viewers: usize,
    /// New sessions one address may open per minute; more get 429. Loopback is exempt: a
    /// reverse proxy on the device sends every viewer from there.
    pub joins_per_minute_per_ip: u32,
    /// Viewers negotiating or connecting at once; more get 503.
    pub max_pending_joins: usize,
    /// A client must send its request headers (and finish a TLS handshake) within this.
    pub header_timeout: Duration,
    /// Open HTTP connections at once.
    pub max_connections: usize,
    /// With the stream full, `POST /whep` answers 307 to this WHEP URL instead of 503.
    pub overflow_url: Option<String>,
    /// With the stream full and no `overflow_url`, the 503 names this player page (an
    /// engine that does not speak WHEP: YouTube, Twitch, a LiveKit room) for people to open.
    pub overflow_page: Option<String>,
    /// Upload capacity for viewers and publish targets together; `None`: not counted.
    pub uplink_mbps: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_viewers: 250,
            joins_per_minute_per_ip: 30,
            max_pending_joins: 100,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            overflow_url: None,
            overflow_page: None,
            uplink_mbps: None,
        }
    }
}

/// HTTPS (`[tls]`): a certificate and key from files, or a self-signed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Where HTTPS listens; `None` means no HTTPS.
    pub listen: Option<SocketAddr>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Make a self-signed certificate when there is none at `cert`/`key` (or none given).
    pub self_signed: bool,
    /// With HTTPS on, the plain HTTP address only redirects to it.
    pub redirect_http: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            listen: None,
            cert: None,
            key: None,
            self_signed: false,
            redirect_http: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses"),
            title: DEFAULT_TITLE.to_owned(),
            media: MediaSettings::default(),
            peer: PeerSettings::default(),
            connect_timeout: crate::webrtc::session::DEFAULT_CONNECT_TIMEOUT,
            viewer_queue_frames: crate::fanout::DEFAULT_VIEWER_QUEUE_FRAMES,
            access: AccessSettings::default(),
            limits: Limits::default(),
            tls: TlsSettings::default(),
            state_dir: None,
            publish: Vec::new(),
            record: crate::record::RecordSettings::default(),
        }
    }
}

impl Config {
    /// Parses a `stun:`/`turn:` URL given on the command line, with optional
    /// `user:password@` credentials before the host for TURN.
    pub fn parse_ice_server(text: &str) -> Result<IceServer, String> {
        let (scheme, rest) = text.split_once(':').ok_or_else(|| {
            format!("{text:?}: expected stun:HOST[:PORT] or turn:USER:PASS@HOST[:PORT]")
        })?;
        if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
            return Err(format!(
                "{text:?}: the scheme must be stun, stuns, turn or turns"
            ));
        }
        match rest.rsplit_once('@') {
            Some((credentials, host)) if scheme.starts_with("turn") => {
                let (username, credential) = credentials
                    .split_once(':')
                    .ok_or_else(|| format!("{text:?}: TURN credentials are USER:PASS@"))?;
                Ok(IceServer {
                    username: Some(username.to_owned()),
                    credential: Some(credential.to_owned()),
                    ..IceServer::stun(&format!("{scheme}:{host}"))
                })
            }
            _ => Ok(IceServer::stun(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_url_carries_credentials_apart() {
        let server = Config::parse_ice_server("turn:alice:secret@turn.example.org:3478").unwrap();
        assert_eq!(server.urls, vec!["turn:turn.example.org:3478"]);
        assert_eq!(server.username.as_deref(), Some("alice"));
        assert_eq!(server.credential.as_deref(), Some("secret"));
    }

    #[test]
    fn stun_url_is_kept_whole() {
        let server = Config::parse_ice_server("stun:stun.example.org:3478").unwrap();
        assert_eq!(server.urls, vec!["stun:stun.example.org:3478"]);
        assert_eq!(server.username, None);
    }

    #[test]
    fn unknown_scheme_is_refused() {
        assert!(Config::parse_ice_server("http://example.org").is_err());
    }
}
