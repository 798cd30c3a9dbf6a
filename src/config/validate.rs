//! Checks a merged configuration, naming the key, the value and what is allowed.

use super::Config;
use super::file::{PublishSection, Unparsed};
use crate::publish::PublishTarget;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: {allowed}")]
pub struct InvalidValue {
    pub key: &'static str,
    pub value: String,
    pub allowed: String,
}

fn invalid(
    key: &'static str,
    value: impl std::fmt::Display,
    allowed: impl Into<String>,
) -> InvalidValue {
    InvalidValue {
        key,
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<(), InvalidValue> {
    if range.contains(&value) {
        Ok(())
    } else {
        let allowed = format!("must be {}..={}", range.start(), range.end());
        Err(invalid(key, value, allowed))
    }
}

/// Stores the text values from the file, then checks every value. All problems are returned.
pub fn finish(config: &mut Config, unparsed: Unparsed) -> Result<(), Vec<InvalidValue>> {
    let mut problems = Vec::new();
    if let Some(listen) = unparsed.listen {
        match listen.parse::<SocketAddr>() {
            Ok(addr) => config.listen = addr,
            Err(_) => problems.push(invalid(
                "server.listen",
                format!("{listen:?}"),
                "must be an address and port, such as 0.0.0.0:8080",
            )),
        }
    }
    if let Some(listen) = unparsed.tls_listen {
        match listen.parse::<SocketAddr>() {
            Ok(addr) => config.tls.listen = Some(addr),
            Err(_) => problems.push(invalid(
                "tls.listen",
                format!("{listen:?}"),
                "must be an address and port, such as 0.0.0.0:8443",
            )),
        }
    }
    if let Some(range) = unparsed.port_range {
        match crate::config::port_range::parse_range(&range) {
            Ok(range) => config.peer.port_range = Some(range),
            Err(e) => problems.push(invalid("webrtc.port_range", format!("{range:?}"), e)),
        }
    }
    match unparsed.ice_transport_policy.as_deref() {
        None | Some("all") => {}
        Some("relay") => config.peer.relay_only = true,
        Some(other) => problems.push(invalid(
            "webrtc.ice_transport_policy",
            format!("{other:?}"),
            "must be \"all\" or \"relay\"",
        )),
    }
    // Kept from when there were two paths, so that older files still load.
    if let Some(egress) = unparsed.egress.filter(|egress| egress != "loop") {
        problems.push(invalid(
            "webrtc.egress",
            format!("{egress:?}"),
            "every viewer is served by the egress loop now: \"loop\" is the only value; remove the line",
        ));
    }
    for section in unparsed.publish {
        match publish_target(section) {
            Ok(target) => config.publish.push(target),
            Err(problem) => problems.push(problem),
        }
    }
    if let Some(url) = &config.limits.overflow_url
        && !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/'))
    {
        problems.push(invalid(
            "limits.overflow_url",
            format!("{url:?}"),
            "must be an http(s):// WHEP URL (or a path on this server)",
        ));
    }
    if let Some(page) = &config.limits.overflow_page
        && !(page.starts_with("http://") || page.starts_with("https://"))
    {
        problems.push(invalid(
            "limits.overflow_page",
            format!("{page:?}"),
            "must be an http(s):// address people can open",
        ));
    }
    if let Some(mbps) = config.limits.uplink_mbps {
        problems.extend(in_range("limits.uplink_mbps", mbps, 1..=100_000).err());
    }
    problems.extend(check(config));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A `[[publish]]` table (or a `--publish` URL) as a target, or what is wrong with it.
fn publish_target(section: PublishSection) -> Result<PublishTarget, InvalidValue> {
    let url = section.url.trim().to_owned();
    let mut target =
        PublishTarget::from_url(&url).map_err(|e| invalid("publish.url", "(not shown)", e))?;
    if let Some(kind) = section.kind.as_deref()
        && kind != target.kind.name()
    {
        return Err(invalid(
            "publish.kind",
            format!("{kind:?}"),
            format!(
                "must match the URL: {} (http(s):// is whip, rtp:// rtp, rtmp(s):// rtmp)",
                target.kind
            ),
        ));
    }
    if let Some(name) = section.name.filter(|n| !n.is_empty()) {
        target.name = name;
    }
    target.token = section.token.filter(|t| !t.is_empty());
    if let Some(audio) = section.audio {
        target.audio = audio;
    }
    target.audio_port = section.audio_port;
    if let Some(pt) = section.video_pt {
        target.video_pt = pt;
    }
    if let Some(pt) = section.audio_pt {
        target.audio_pt = pt;
    }
    for (key, pt) in [
        ("publish.video_pt", target.video_pt),
        ("publish.audio_pt", target.audio_pt),
    ] {
        in_range(key, pt, 96..=127)?;
    }
    target.srtp_key = section.srtp_key.filter(|k| !k.is_empty());
    target
        .check()
        .map_err(|e| invalid("publish", target.name.clone(), e))?;
    Ok(target)
}

pub fn check(config: &Config) -> Vec<InvalidValue> {
    let media = &config.media;
    let audio = &media.audio;
    let peer = &config.peer;
    let secs = |d: std::time::Duration| d.as_secs();
    let mut results = vec![
        in_range("video.bitrate_kbps", media.video_bitrate_kbps, 100..=20_000),
        in_range("audio.bitrate_kbps", audio.bitrate_kbps, 6..=510),
        in_range("audio.channels", audio.channels, 1..=2),
        in_range(
            "webrtc.connect_timeout_s",
            secs(config.connect_timeout),
            1..=300,
        ),
        in_range(
            "webrtc.ice_disconnected_timeout_s",
            secs(peer.ice_disconnected_timeout),
            1..=300,
        ),
        in_range(
            "webrtc.ice_failed_timeout_s",
            secs(peer.ice_failed_timeout),
            1..=600,
        ),
        in_range(
            "webrtc.viewer_queue_frames",
            config.viewer_queue_frames,
            1..=600,
        ),
        in_range("limits.max_viewers", config.limits.max_viewers, 1..=10_000),
        in_range(
            "limits.joins_per_minute_per_ip",
            config.limits.joins_per_minute_per_ip,
            1..=6_000,
        ),
        in_range(
            "limits.max_pending_joins",
            config.limits.max_pending_joins,
            1..=1_000,
        ),
        in_range(
            "limits.header_timeout_s",
            secs(config.limits.header_timeout),
            1..=120,
        ),
        in_range(
            "limits.max_connections",
            config.limits.max_connections,
            16..=65_536,
        ),
        in_range("record.segment_s", secs(config.record.segment), 2..=3600),
    ];
    if let Err((key, problem)) = config.access.load() {
        results.push(Err(invalid(key, "(not shown)", problem)));
    }
    if peer.ice_failed_timeout <= peer.ice_disconnected_timeout {
        results.push(Err(invalid(
            "webrtc.ice_failed_timeout_s",
            secs(peer.ice_failed_timeout),
            "must be longer than webrtc.ice_disconnected_timeout_s",
        )));
    }
    if config.title.trim().is_empty() || config.title.chars().count() > 200 {
        results.push(Err(invalid(
            "server.title",
            format!("{:?}", config.title),
            "must be 1 to 200 characters",
        )));
    }
    if media.pipeline.trim().is_empty() {
        results.push(Err(invalid(
            "video.pipeline",
            "\"\"",
            "must be auto, a preset or a pipeline",
        )));
    }
    if peer.udp_addrs.is_empty() {
        results.push(Err(invalid(
            "webrtc.udp_addrs",
            "[]",
            "must list at least one address",
        )));
    }
    for addr in &peer.udp_addrs {
        if addr.parse::<SocketAddr>().is_err() {
            results.push(Err(invalid(
                "webrtc.udp_addrs",
                format!("{addr:?}"),
                "each must be an address and port, such as 0.0.0.0:0",
            )));
        }
    }
    for server in &peer.ice_servers {
        for url in &server.urls {
            let scheme = url.split(':').next().unwrap_or_default();
            if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
                results.push(Err(invalid(
                    "webrtc.ice_servers.urls",
                    format!("{url:?}"),
                    "must start with stun:, stuns:, turn: or turns:",
                )));
            } else if scheme.starts_with("turn")
                && server.secret.is_none()
                && (server.username.is_none() || server.credential.is_none())
            {
                results.push(Err(invalid(
                    "webrtc.ice_servers.urls",
                    format!("{url:?}"),
                    "a TURN server needs username and credential, or a secret",
                )));
            }
        }
    }
    results.into_iter().filter_map(Result::err).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::FileConfig;

    fn problems(toml: &str) -> Vec<String> {
        let mut config = Config::default();
        let unparsed = FileConfig::parse(toml, "t").unwrap().apply(&mut config);
        match finish(&mut config, unparsed) {
            Ok(()) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(check(&Config::default()).is_empty());
    }

    #[test]
    fn each_problem_names_its_key_value_and_range() {
        assert_eq!(
            problems("[video]\nbitrate_kbps = 90000\n"),
            vec!["video.bitrate_kbps = 90000: must be 100..=20000"]
        );
        assert_eq!(
            problems("[audio]\nchannels = 6\n"),
            vec!["audio.channels = 6: must be 1..=2"]
        );
        let listen = problems("[server]\nlisten = \"port 80\"\n");
        assert!(
            listen[0].starts_with("server.listen = \"port 80\""),
            "{listen:?}"
        );
        let turn = problems("[[webrtc.ice_servers]]\nurls = [\"turn:127.0.0.1\"]\n");
        assert!(
            turn[0].contains("needs username and credential"),
            "{turn:?}"
        );
    }

    #[test]
    fn an_older_files_egress_line_loads_unless_it_asks_for_a_path_that_is_gone() {
        assert!(problems("[webrtc]\negress = \"loop\"\n").is_empty());
        let gone = problems("[webrtc]\negress = \"connections\"\n");
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(
            gone[0].starts_with("webrtc.egress = \"connections\"")
                && gone[0].contains("remove the line"),
            "{gone:?}"
        );
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let found = problems("[video]\nbitrate_kbps = 1\n[webrtc]\nviewer_queue_frames = 0\n");
        assert_eq!(found.len(), 2, "{found:?}");
    }
}
