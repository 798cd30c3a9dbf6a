//! The TOML file. Every key is optional; a key that is present replaces the default. Unknown
//! keys are errors, so a typo is not silently ignored.

use super::Config;
use crate::webrtc::api::IceServer;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    video: VideoSection,
    #[serde(default)]
    audio: AudioSection,
    #[serde(default)]
    webrtc: WebrtcSection,
    #[serde(default)]
    access: AccessSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    publish: Vec<PublishSection>,
    #[serde(default)]
    record: RecordSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordSection {
    enabled: Option<bool>,
    dir: Option<std::path::PathBuf>,
    segment_s: Option<u64>,
    max_bytes: Option<u64>,
    max_age_h: Option<u64>,
}

/// One `[[publish]]` table: the URL says the kind (http(s) WHIP, rtp, rtmp(s)).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    pub url: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub token: Option<String>,
    pub audio: Option<bool>,
    pub audio_port: Option<u16>,
    pub video_pt: Option<u8>,
    pub audio_pt: Option<u8>,
    pub srtp_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    listen: Option<String>,
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
    self_signed: Option<bool>,
    redirect_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessSection {
    viewer_tokens: Option<Vec<String>>,
    viewer_token_file: Option<std::path::PathBuf>,
    admin_token: Option<String>,
    admin_token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_viewers: Option<usize>,
    joins_per_minute_per_ip: Option<u32>,
    max_pending_joins: Option<usize>,
    header_timeout_s: Option<u64>,
    max_connections: Option<usize>,
    overflow_url: Option<String>,
    overflow_page: Option<String>,
    uplink_mbps: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    title: Option<String>,
    state_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoSection {
    pipeline: Option<String>,
    bitrate_kbps: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudioSection {
    source: Option<String>,
    bitrate_kbps: Option<u32>,
    channels: Option<u8>,
    fec: Option<bool>,
    dtx: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebrtcSection {
    udp_addrs: Option<Vec<String>>,
    ice_servers: Option<Vec<IceServer>>,
    connect_timeout_s: Option<u64>,
    ice_disconnected_timeout_s: Option<u64>,
    ice_failed_timeout_s: Option<u64>,
    viewer_queue_frames: Option<usize>,
    port_range: Option<String>,
    tcp_candidates: Option<bool>,
    nat_1to1_ips: Option<Vec<String>>,
    ice_transport_policy: Option<String>,
    egress: Option<String>,
}

/// Values that must be checked as text before they can be stored (addresses).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unparsed {
    pub listen: Option<String>,
    pub tls_listen: Option<String>,
    pub port_range: Option<String>,
    pub ice_transport_policy: Option<String>,
    pub egress: Option<String>,
    pub publish: Vec<PublishSection>,
}

impl FileConfig {
    pub fn parse(text: &str, path: &str) -> Result<Self, FileError> {
        toml::from_str(text).map_err(|e| FileError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, FileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Writes every key the file sets over `config`. The listen address comes back as text,
    /// for validation to report with its key.
    pub fn apply(self, config: &mut Config) -> Unparsed {
        let s = |secs: u64| Duration::from_secs(secs);
        let media = &mut config.media;
        set(&mut config.title, self.server.title);
        // Empty, as in the example file, means "choose by the environment".
        let state_dir = self.server.state_dir.filter(|d| !d.as_os_str().is_empty());
        config.state_dir = state_dir.or(config.state_dir.take());
        set(&mut media.pipeline, self.video.pipeline);
        set(&mut media.video_bitrate_kbps, self.video.bitrate_kbps);
        set(&mut media.audio.source, self.audio.source);
        set(&mut media.audio.bitrate_kbps, self.audio.bitrate_kbps);
        set(&mut media.audio.channels, self.audio.channels);
        set(&mut media.audio.fec, self.audio.fec);
        set(&mut media.audio.dtx, self.audio.dtx);
        let peer = &mut config.peer;
        set(&mut peer.udp_addrs, self.webrtc.udp_addrs);
        set(&mut peer.ice_servers, self.webrtc.ice_servers);
        set(
            &mut peer.ice_disconnected_timeout,
            self.webrtc.ice_disconnected_timeout_s.map(s),
        );
        set(
            &mut peer.ice_failed_timeout,
            self.webrtc.ice_failed_timeout_s.map(s),
        );
        set(
            &mut config.connect_timeout,
            self.webrtc.connect_timeout_s.map(s),
        );
        set(
            &mut config.viewer_queue_frames,
            self.webrtc.viewer_queue_frames,
        );
        set(&mut config.peer.tcp_candidates, self.webrtc.tcp_candidates);
        set(&mut config.peer.nat_1to1_ips, self.webrtc.nat_1to1_ips);
        let access = &mut config.access;
        set(&mut access.viewer_tokens, self.access.viewer_tokens);
        // An empty admin token in the file means "none", as in the example file.
        let admin = self.access.admin_token.filter(|t| !t.is_empty());
        access.admin_token = admin.or(access.admin_token.take());
        access.viewer_token_file = self
            .access
            .viewer_token_file
            .or(access.viewer_token_file.take());
        access.admin_token_file = self
            .access
            .admin_token_file
            .or(access.admin_token_file.take());
        let limits = &mut config.limits;
        set(&mut limits.max_viewers, self.limits.max_viewers);
        set(
            &mut limits.joins_per_minute_per_ip,
            self.limits.joins_per_minute_per_ip,
        );
        set(&mut limits.max_pending_joins, self.limits.max_pending_joins);
        set(
            &mut limits.header_timeout,
            self.limits.header_timeout_s.map(s),
        );
        set(&mut limits.max_connections, self.limits.max_connections);
        // Empty, as in the example file, means "no overflow: 503 when full".
        let overflow = self.limits.overflow_url.filter(|u| !u.is_empty());
        limits.overflow_url = overflow.or(limits.overflow_url.take());
        let page = self.limits.overflow_page.filter(|u| !u.is_empty());
        limits.overflow_page = page.or(limits.overflow_page.take());
        // 0, as in the example file, means "not counted".
        if let Some(mbps) = self.limits.uplink_mbps {
            limits.uplink_mbps = (mbps > 0).then_some(mbps);
        }
        let tls = &mut config.tls;
        tls.cert = self.tls.cert.or(tls.cert.take());
        tls.key = self.tls.key.or(tls.key.take());
        set(&mut tls.self_signed, self.tls.self_signed);
        set(&mut tls.redirect_http, self.tls.redirect_http);
        let record = &mut config.record;
        set(&mut record.enabled, self.record.enabled);
        // Empty, as in the example file, means "recordings/ in the state directory".
        let dir = self.record.dir.filter(|d| !d.as_os_str().is_empty());
        record.dir = dir.or(record.dir.take());
        set(&mut record.segment, self.record.segment_s.map(s));
        // 0, as in the example file, means "no limit of its own".
        if let Some(bytes) = self.record.max_bytes {
            record.limits.max_bytes = (bytes > 0).then_some(bytes);
        }
        if let Some(hours) = self.record.max_age_h {
            record.limits.max_age = (hours > 0).then(|| s(hours * 3600));
        }
        Unparsed {
            listen: self.server.listen,
            tls_listen: self.tls.listen.filter(|l| !l.is_empty()),
            port_range: self.webrtc.port_range.filter(|r| !r.is_empty()),
            ice_transport_policy: self.webrtc.ice_transport_policy,
            egress: self.webrtc.egress,
            publish: self.publish,
        }
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_states_the_defaults() {
        let text = include_str!("../../fieldcast.example.toml");
        let mut config = Config::default();
        let unparsed = FileConfig::parse(text, "fieldcast.example.toml")
            .unwrap()
            .apply(&mut config);
        assert_eq!(
            unparsed.listen.as_deref(),
            Some(super::super::DEFAULT_LISTEN)
        );
        assert_eq!(config, Config::default());
    }

    #[test]
    fn an_empty_file_changes_nothing() {
        let mut config = Config::default();
        FileConfig::parse("", "x").unwrap().apply(&mut config);
        assert_eq!(config, Config::default());
    }

    #[test]
    fn keys_replace_defaults() {
        let text = "[video]\nbitrate_kbps = 1500\n[audio]\nsource = \"none\"\n\
                    [[webrtc.ice_servers]]\nurls = [\"stun:127.0.0.1:3478\"]\n";
        let mut config = Config::default();
        FileConfig::parse(text, "x").unwrap().apply(&mut config);
        assert_eq!(config.media.video_bitrate_kbps, 1500);
        assert_eq!(config.media.audio.source, "none");
        assert_eq!(config.peer.ice_servers[0].urls, vec!["stun:127.0.0.1:3478"]);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let err = FileConfig::parse("[video]\nbitrate = 1500\n", "f.toml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("f.toml") && text.contains("bitrate"),
            "{text}"
        );
        let err = FileConfig::parse("[vidoe]\n", "f.toml").unwrap_err();
        assert!(err.to_string().contains("vidoe"), "{err}");
    }

    #[test]
    fn record_keys_replace_defaults_and_zero_means_no_limit() {
        let text = "[record]\nenabled = true\ndir = \"/srv/rec\"\nsegment_s = 60\n\
                    max_bytes = 5000000\nmax_age_h = 48\n";
        let mut config = Config::default();
        FileConfig::parse(text, "x").unwrap().apply(&mut config);
        let record = &config.record;
        assert!(record.enabled);
        assert_eq!(record.dir.as_deref(), Some(Path::new("/srv/rec")));
        assert_eq!(record.segment, Duration::from_secs(60));
        assert_eq!(record.limits.max_bytes, Some(5_000_000));
        assert_eq!(record.limits.max_age, Some(Duration::from_secs(48 * 3600)));
        FileConfig::parse("[record]\nmax_bytes = 0\n", "x")
            .unwrap()
            .apply(&mut config);
        assert_eq!(config.record.limits.max_bytes, None);
    }

    #[test]
    fn wrong_types_are_errors() {
        let err = FileConfig::parse("[video]\nbitrate_kbps = \"fast\"\n", "f.toml").unwrap_err();
        assert!(err.to_string().contains("bitrate_kbps"), "{err}");
    }
}
