//! Puts the layers together: defaults, then the file, then flags and `FIELDCAST_*` variables.

use super::file::{FileConfig, FileError, PublishSection};
use super::validate::{InvalidValue, finish};
use super::{Config, DEFAULT_CONFIG_PATH};
use crate::webrtc::api::IceServer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What the command line (or its environment variables) set; `None` leaves the layer below.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub title: Option<String>,
    pub pipeline: Option<String>,
    pub video_bitrate_kbps: Option<u32>,
    pub audio: Option<String>,
    pub audio_bitrate_kbps: Option<u32>,
    pub udp_addrs: Option<Vec<String>>,
    pub ice_servers: Option<Vec<IceServer>>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_self_signed: Option<bool>,
    pub state_dir: Option<PathBuf>,
    /// Publish targets given by URL, added to the file's.
    pub publish: Vec<String>,
    /// `--record`: record whatever the file says.
    pub record: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<InvalidValue>),
}

/// The file actually read: the one given, or the default path when it exists.
pub fn config_path(given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(path) => Some(path.to_owned()),
        None => {
            let default = Path::new(DEFAULT_CONFIG_PATH);
            default.exists().then(|| default.to_owned())
        }
    }
}

pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
    let file = match file {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    merge(file, overrides)
}

pub fn merge(file: FileConfig, overrides: Overrides) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut unparsed = file.apply(&mut config);
    if let Some(listen) = overrides.listen {
        config.listen = listen;
        unparsed.listen = None;
    }
    if let Some(https) = overrides.tls_listen {
        config.tls.listen = Some(https);
        unparsed.tls_listen = None;
    }
    set(&mut config.tls.self_signed, overrides.tls_self_signed);
    if overrides.state_dir.is_some() {
        config.state_dir = overrides.state_dir;
    }
    let media = &mut config.media;
    set(&mut config.title, overrides.title);
    set(&mut media.pipeline, overrides.pipeline);
    set(&mut media.video_bitrate_kbps, overrides.video_bitrate_kbps);
    set(&mut media.audio.source, overrides.audio);
    set(&mut media.audio.bitrate_kbps, overrides.audio_bitrate_kbps);
    set(&mut config.peer.udp_addrs, overrides.udp_addrs);
    set(&mut config.peer.ice_servers, overrides.ice_servers);
    config.record.enabled |= overrides.record;
    unparsed
        .publish
        .extend(overrides.publish.into_iter().map(|url| PublishSection {
            url,
            ..PublishSection::default()
        }));
    finish(&mut config, unparsed).map_err(ConfigError::Invalid)?;
    Ok(config)
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
    fn flags_beat_the_file_which_beats_defaults() {
        let file = FileConfig::parse(
            "[server]\nlisten = \"127.0.0.1:9000\"\ntitle = \"Nets\"\n[video]\nbitrate_kbps = 1500\n",
            "t",
        )
        .unwrap();
        let overrides = Overrides {
            title: Some("U12 final".into()),
            ..Overrides::default()
        };
        let config = merge(file, overrides).unwrap();
        assert_eq!(config.title, "U12 final", "flag over file");
        assert_eq!(
            config.listen.to_string(),
            "127.0.0.1:9000",
            "file over default"
        );
        assert_eq!(config.media.video_bitrate_kbps, 1500, "file over default");
        assert_eq!(config.media.audio, Config::default().media.audio, "default");
    }

    #[test]
    fn a_flag_replaces_a_bad_file_value() {
        let file = FileConfig::parse("[server]\nlisten = \"nonsense\"\n", "t").unwrap();
        let overrides = Overrides {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            ..Overrides::default()
        };
        assert!(merge(file, overrides).is_ok());
    }

    #[test]
    fn bad_values_from_flags_are_reported_with_their_key() {
        let overrides = Overrides {
            video_bitrate_kbps: Some(90_000),
            ..Overrides::default()
        };
        let err = merge(FileConfig::default(), overrides).unwrap_err();
        assert_eq!(
            err.to_string(),
            "video.bitrate_kbps = 90000: must be 100..=20000"
        );
    }

    #[test]
    fn publish_targets_come_from_the_file_and_the_flag() {
        let file = FileConfig::parse(
            "[[publish]]\nurl = \"rtp://127.0.0.1:5004\"\nname = \"janus\"\naudio_port = 5008\n\
             [[publish]]\nurl = \"https://ingest.example/whip\"\ntoken = \"t0ken\"\n",
            "t",
        )
        .unwrap();
        let overrides = Overrides {
            publish: vec!["rtmp://live.example/app/key".into()],
            ..Overrides::default()
        };
        let config = merge(file, overrides).unwrap();
        let kinds: Vec<_> = config.publish.iter().map(|t| t.kind.name()).collect();
        assert_eq!(kinds, ["rtp", "whip", "rtmp"]);
        assert_eq!(config.publish[0].name, "janus");
        assert_eq!(config.publish[0].audio_port, Some(5008));
        assert_eq!(config.publish[1].token.as_deref(), Some("t0ken"));
    }

    #[test]
    fn a_bad_publish_target_is_reported() {
        let file = FileConfig::parse(
            "[[publish]]\nurl = \"rtp://127.0.0.1\"\n[[publish]]\nurl = \"ftp://x\"\n\
             [[publish]]\nurl = \"rtp://h:1\"\nkind = \"whip\"\n",
            "t",
        )
        .unwrap();
        let err = merge(file, Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("expected rtp://HOST:PORT"), "{err}");
        assert!(err.contains("must start with http(s)://"), "{err}");
        assert!(err.contains("publish.kind"), "{err}");
    }

    #[test]
    fn the_overflow_url_must_be_http() {
        let file = FileConfig::parse("[limits]\noverflow_url = \"rtp://x:1\"\n", "t").unwrap();
        let err = merge(file, Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("limits.overflow_url"), "{err}");
    }

    #[test]
    fn a_missing_file_given_explicitly_is_an_error() {
        let err = load(
            Some(Path::new("/nonexistent/fieldcast.toml")),
            Overrides::default(),
        );
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("/nonexistent/fieldcast.toml")
        );
    }
}
