//! `fieldcast check`: everything `run` would need, tried without serving anyone, each result on
//! a line a volunteer can read over SSH.

use crate::config::Config;
use crate::media::{pipeline, presets};
use crate::webrtc::api::PeerSettings;
use crate::webrtc::peer_connection::build_peer;
use std::fmt;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: &'static str,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {:<9} {}", self.what, self.detail)
    }
}

fn finding(ok: bool, what: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        ok,
        what,
        detail: detail.into(),
    }
}

/// Checks a loaded configuration: pipeline (to PAUSED), encoder, camera, sound, ports.
pub fn run(config: &Config, file: Option<&Path>) -> Vec<Finding> {
    let mut findings = vec![finding(
        true,
        "config",
        match file {
            Some(path) => format!("{} is valid", path.display()),
            None => "no file; built-in defaults, flags and FIELDCAST_* variables".to_owned(),
        },
    )];
    match presets::resolve(&config.media) {
        Ok(resolved) => {
            let name = resolved.preset.as_deref().unwrap_or("custom");
            findings.push(finding(
                true,
                "pipeline",
                format!("{name}: {}", resolved.reason),
            ));
            findings.push(finding(
                true,
                "encoder",
                resolved
                    .encoder
                    .clone()
                    .unwrap_or_else(|| "none (the source sends H.264)".to_owned()),
            ));
            findings.push(finding(
                true,
                "sound",
                resolved.audio.clone().unwrap_or_else(|| "none".to_owned()),
            ));
            findings.push(match pipeline::dry_run(&resolved) {
                Ok(()) => finding(true, "build", "the pipeline builds and pauses"),
                Err(e) => finding(false, "build", e.to_string()),
            });
            // RTMP re-encodes the sound to AAC: an encoder must be there.
            let rtmp_with_sound = config
                .publish
                .iter()
                .any(|t| t.kind == crate::publish::Kind::Rtmp && t.audio);
            if rtmp_with_sound && resolved.audio.is_some() {
                findings.push(match crate::publish::rtmp::aac_encoder() {
                    Ok(encoder) => finding(true, "rtmp", format!("sound to AAC with {encoder}")),
                    Err(e) => finding(false, "rtmp", e),
                });
            }
        }
        Err(e) => findings.push(finding(false, "pipeline", e.to_string())),
    }
    findings.push(match TcpListener::bind(config.listen) {
        Ok(_) => finding(true, "http", format!("{} is free", config.listen)),
        Err(e) => finding(
            false,
            "http",
            format!(
                "cannot listen on {}: {e} (is fieldcast already running?)",
                config.listen
            ),
        ),
    });
    for addr in &config.peer.udp_addrs {
        let bound = addr
            .parse::<SocketAddr>()
            .map_err(|e| e.to_string())
            .and_then(|a| UdpSocket::bind(a).map_err(|e| e.to_string()));
        findings.push(match bound {
            Ok(_) => finding(true, "media", format!("UDP {addr} can be bound")),
            Err(e) => finding(false, "media", format!("cannot bind UDP {addr}: {e}")),
        });
    }
    for target in &config.publish {
        findings.push(finding(
            true,
            "publish",
            format!("{} → {} ({})", target.name, target.shown_url(), target.kind),
        ));
    }
    findings
}

/// `fieldcast check --ice`: asks the configured STUN and TURN servers for this device's
/// public address and a relay, as a viewer's connection would, and says what came back.
pub async fn ice(settings: &PeerSettings) -> Vec<Finding> {
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
    if settings.ice_servers.is_empty() {
        return vec![finding(
            true,
            "ice",
            "no STUN or TURN server configured: viewers on this network only",
        )];
    }
    let settings = settings.for_viewer(std::time::SystemTime::now());
    // No events needed: the probe reads its candidates from the local description.
    let peer = match build_peer(&settings).await {
        Ok((peer, _events)) => peer,
        Err(e) => return vec![finding(false, "ice", format!("cannot set up WebRTC: {e}"))],
    };
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Recvonly,
        ..Default::default()
    };
    let offered = async {
        peer.add_transceiver_from_kind(RtpCodecKind::Video, Some(init))
            .await?;
        let offer = peer.create_offer(None).await?;
        peer.set_local_description(offer).await
    };
    if let Err(e) = offered.await {
        return vec![finding(
            false,
            "ice",
            format!("cannot gather candidates: {e}"),
        )];
    }
    let urls: Vec<&str> = settings
        .ice_servers
        .iter()
        .flat_map(|s| s.urls.iter())
        .map(String::as_str)
        .collect();
    let want_srflx = urls.iter().any(|u| u.starts_with("stun:"));
    let want_relay = urls
        .iter()
        .any(|u| u.starts_with("turn:") && !u.contains("transport=tcp"));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut candidates = Vec::new();
    while tokio::time::Instant::now() < deadline {
        if let Some(local) = peer.local_description().await {
            candidates = local
                .sdp
                .lines()
                .filter_map(|l| l.trim_end().strip_prefix("a=candidate:"))
                .map(str::to_owned)
                .collect();
        }
        let has = |typ: &str| {
            candidates
                .iter()
                .any(|c| c.contains(&format!(" typ {typ}")))
        };
        if (!want_srflx || has("srflx")) && (!want_relay || has("relay")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), peer.close()).await;
    let addresses = |typ: &str| -> Vec<String> {
        let mut found: Vec<String> = candidates
            .iter()
            .filter(|c| c.contains(&format!(" typ {typ}")))
            .filter_map(|c| {
                let fields: Vec<&str> = c.split_whitespace().collect();
                Some(format!("{}:{}", fields.get(4)?, fields.get(5)?))
            })
            .collect();
        found.dedup();
        found
    };
    let mut findings = Vec::new();
    if want_srflx {
        let public = addresses("srflx");
        findings.push(match public.is_empty() {
            false => finding(
                true,
                "stun",
                format!("public address {}", public.join(", ")),
            ),
            true => finding(false, "stun", "no STUN server answered within 5 s"),
        });
    }
    if want_relay {
        let relays = addresses("relay");
        findings.push(match relays.is_empty() {
            false => finding(
                true,
                "turn",
                format!("relay allocated at {}", relays.join(", ")),
            ),
            true => finding(
                false,
                "turn",
                "no relay was allocated within 5 s (address, credentials?)",
            ),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_reported() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config {
            listen: taken.local_addr().unwrap(),
            ..Config::default()
        };
        let http = run(&config, None)
            .into_iter()
            .find(|f| f.what == "http")
            .unwrap();
        assert!(
            !http.ok && http.detail.contains("already running"),
            "{http}"
        );
    }
}
