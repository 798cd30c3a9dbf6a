//! One publish target as configured: where it goes and how. Pure: the URL is read and checked
//! here, nothing is resolved or connected.

use std::fmt;

/// How a target takes the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// WHIP (RFC 9725): a send-only WebRTC connection to an SFU or a cloud ingest.
    Whip,
    /// Plain RTP (or SRTP) to a host and port, as a Janus streaming mountpoint takes it.
    Rtp,
    /// RTMP or RTMPS push (FLV: H.264 unchanged, sound re-encoded to AAC).
    Rtmp,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Rtp => "rtp",
            Kind::Rtmp => "rtmp",
        }
    }

    /// The kind a URL's scheme stands for.
    pub fn of_url(url: &str) -> Option<Kind> {
        let scheme = url.split_once("://")?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "http" | "https" => Some(Kind::Whip),
            "rtp" | "srtp" => Some(Kind::Rtp),
            "rtmp" | "rtmps" => Some(Kind::Rtmp),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RTP payload types a Janus mountpoint is usually configured with (`pt = 96`, `pt = 111`).
pub const DEFAULT_RTP_VIDEO_PT: u8 = 96;
pub const DEFAULT_RTP_AUDIO_PT: u8 = 111;

/// A configured target (`[[publish]]`, or `--publish URL`).
#[derive(Clone, PartialEq, Eq)]
pub struct PublishTarget {
    /// Shown in status, metrics and the log.
    pub name: String,
    pub kind: Kind,
    /// `https://…/whip`, `rtp://HOST:PORT`, `rtmp://HOST/APP/STREAM-KEY`.
    pub url: String,
    /// WHIP: sent as `Authorization: Bearer …`.
    pub token: Option<String>,
    /// Send the sound too (when the pipeline has it).
    pub audio: bool,
    /// RTP: where the sound goes; default the video port + 2.
    pub audio_port: Option<u16>,
    pub video_pt: u8,
    pub audio_pt: u8,
    /// RTP: SRTP master key and salt (30 bytes, base64, AES_CM_128_HMAC_SHA1_80) — the
    /// `srtpcrypto` of a Janus mountpoint.
    pub srtp_key: Option<String>,
}

// Tokens and stream keys never reach a log line, even through `{:?}`.
impl fmt::Debug for PublishTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishTarget")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.shown_url())
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("audio", &self.audio)
            .finish_non_exhaustive()
    }
}

impl PublishTarget {
    /// A target from a URL alone, with every other setting at its default.
    pub fn from_url(url: &str) -> Result<PublishTarget, String> {
        // Only the scheme is repeated: the rest of a URL may hold a key.
        let kind = Kind::of_url(url).ok_or_else(|| {
            let scheme = url.split_once("://").map_or("(none)", |(scheme, _)| scheme);
            format!(
                "scheme {scheme:?}: the URL must start with http(s):// (WHIP), rtp:// or rtmp(s)://"
            )
        })?;
        let target = PublishTarget {
            name: default_name(url),
            kind,
            url: url.to_owned(),
            token: None,
            audio: true,
            audio_port: None,
            video_pt: DEFAULT_RTP_VIDEO_PT,
            audio_pt: DEFAULT_RTP_AUDIO_PT,
            srtp_key: None,
        };
        target.check_url()?;
        Ok(target)
    }

    fn check_url(&self) -> Result<(), String> {
        match self.kind {
            Kind::Rtp => {
                rtp_host_port(&self.url)?;
            }
            Kind::Whip | Kind::Rtmp => {
                let rest = self.url.split_once("://").map_or("", |(_, rest)| rest);
                if rest.is_empty() || rest.starts_with('/') {
                    return Err(format!("{}: no host in the URL", self.shown_url()));
                }
            }
        }
        Ok(())
    }

    /// What is wrong with the settings as a whole, if anything.
    pub fn check(&self) -> Result<(), String> {
        self.check_url()?;
        if self.kind == Kind::Rtp && self.url.starts_with("srtp://") && self.srtp_key.is_none() {
            return Err("an srtp:// target needs srtp_key".to_owned());
        }
        if self.srtp_key.is_some() && self.kind != Kind::Rtp {
            return Err("srtp_key is for rtp targets only".to_owned());
        }
        Ok(())
    }

    /// The URL as status and logs show it: an RTMP stream key (the last path segment) and
    /// any query are replaced by `…`, as they are credentials.
    pub fn shown_url(&self) -> String {
        let url = self.url.split('?').next().unwrap_or_default();
        let hidden = if self.url.contains('?') { "?…" } else { "" };
        if self.kind == Kind::Rtmp
            && let Some((_, rest)) = url.split_once("://")
            && let Some((before, _key)) = url.rsplit_once('/')
            && rest.matches('/').count() >= 2
        {
            return format!("{before}/…{hidden}");
        }
        format!("{url}{hidden}")
    }
}

/// The host and port of an `rtp://HOST:PORT` (or `srtp://`) URL.
pub fn rtp_host_port(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("rtp://")
        .or_else(|| url.strip_prefix("srtp://"))
        .ok_or_else(|| format!("{url:?}: expected rtp://HOST:PORT"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{url:?}: expected rtp://HOST:PORT (no port)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{url:?}: the port must be 1..=65535"))?;
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok((host.to_owned(), port))
}

/// `kind:host` — enough to tell targets apart in a list, and never a credential.
fn default_name(url: &str) -> String {
    let kind = Kind::of_url(url).map_or("publish", Kind::name);
    let host = url
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    // user:password@ before the host is a credential too.
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{kind}:{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_chooses_the_kind() {
        assert_eq!(Kind::of_url("https://x/whip"), Some(Kind::Whip));
        assert_eq!(Kind::of_url("rtp://127.0.0.1:5004"), Some(Kind::Rtp));
        assert_eq!(
            Kind::of_url("RTMPS://live.example/app/key"),
            Some(Kind::Rtmp)
        );
        assert_eq!(Kind::of_url("ftp://x"), None);
        assert_eq!(Kind::of_url("nothing"), None);
    }

    #[test]
    fn rtp_urls_need_host_and_port() {
        assert_eq!(
            rtp_host_port("rtp://127.0.0.1:5004").unwrap(),
            ("127.0.0.1".to_owned(), 5004)
        );
        assert_eq!(
            rtp_host_port("rtp://[::1]:5004").unwrap(),
            ("::1".to_owned(), 5004)
        );
        assert!(rtp_host_port("rtp://127.0.0.1").is_err());
        assert!(rtp_host_port("rtp://:5004").is_err());
        assert!(rtp_host_port("rtp://h:0").is_err());
        assert!(PublishTarget::from_url("rtp://h:99999").is_err());
    }

    #[test]
    fn stream_keys_are_not_shown() {
        let target = PublishTarget::from_url("rtmp://a.rtmp.youtube.com/live2/abcd-efgh").unwrap();
        assert_eq!(target.shown_url(), "rtmp://a.rtmp.youtube.com/live2/…");
        assert!(!format!("{target:?}").contains("abcd"));
        let whip = PublishTarget::from_url("https://x.example/whip?key=secret").unwrap();
        assert_eq!(whip.shown_url(), "https://x.example/whip?…");
    }

    #[test]
    fn default_names_carry_no_credentials() {
        let target = PublishTarget::from_url("rtmp://user:pw@host.example/app/key").unwrap();
        assert_eq!(target.name, "rtmp:host.example");
    }

    #[test]
    fn srtp_needs_a_key() {
        let mut target = PublishTarget::from_url("srtp://127.0.0.1:5004").unwrap();
        assert!(target.check().is_err());
        target.srtp_key = Some("a".repeat(40));
        assert!(target.check().is_ok());
    }
}
