//! STUN and TURN servers, as configured and as handed to one viewer. A TURN server with a
//! shared `secret` (coturn's `use-auth-secret`) gets fresh time-limited credentials per
//! viewer — `username = "<expiry>:fieldcast"`, `credential = base64(HMAC-SHA1(secret,
//! username))` — so nothing long-lived is given away.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long REST credentials stay valid when no TTL is configured.
pub const DEFAULT_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
    /// Shared secret for time-limited credentials (TURN REST API); replaces username and
    /// credential.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// Lifetime of those credentials, in seconds.
    #[serde(default, skip_serializing)]
    pub credential_ttl_s: Option<u64>,
}

impl IceServer {
    pub fn stun(url: &str) -> Self {
        Self {
            urls: vec![url.to_owned()],
            username: None,
            credential: None,
            secret: None,
            credential_ttl_s: None,
        }
    }

    /// The server as one viewer gets it at `now`: with fresh credentials when it has a secret.
    pub fn for_viewer(&self, now: SystemTime) -> IceServer {
        let Some(secret) = &self.secret else {
            return self.clone();
        };
        let ttl = self
            .credential_ttl_s
            .map_or(DEFAULT_CREDENTIAL_TTL, Duration::from_secs);
        let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + ttl;
        let username = format!("{}:fieldcast", expiry.as_secs());
        IceServer {
            urls: self.urls.clone(),
            credential: Some(rest_credential(secret, &username)),
            username: Some(username),
            secret: None,
            credential_ttl_s: None,
        }
    }
}

/// base64(HMAC-SHA1(secret, username)), as coturn computes it.
pub fn rest_credential(secret: &str, username: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = ring::hmac::sign(&key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// Every configured server as one viewer gets it.
pub fn for_viewer(servers: &[IceServer], now: SystemTime) -> Vec<IceServer> {
    servers.iter().map(|s| s.for_viewer(now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credential_matches_a_known_hmac() {
        // HMAC-SHA1 with key "key" over the pangram, from RFC 2104's examples in the wild.
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hex("de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"));
        assert_eq!(
            rest_credential("key", "The quick brown fox jumps over the lazy dog"),
            expected
        );
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_secret_becomes_fresh_expiring_credentials() {
        let server = IceServer {
            secret: Some("north-stand".into()),
            credential_ttl_s: Some(600),
            ..IceServer::stun("turn:turn.example.org:3478")
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let given = server.for_viewer(now);
        assert_eq!(given.username.as_deref(), Some("1800000600:fieldcast"));
        assert_eq!(
            given.credential.as_deref(),
            Some(rest_credential("north-stand", "1800000600:fieldcast").as_str())
        );
        assert!(given.secret.is_none(), "the secret never leaves the device");
    }

    #[test]
    fn static_servers_are_passed_on_as_they_are() {
        let stun = IceServer::stun("stun:stun.example.org:3478");
        assert_eq!(stun.for_viewer(SystemTime::now()), stun);
    }
}
