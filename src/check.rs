//! `fieldcast check`: everything `run` would need, tried without serving anyone, each result on
//! a line a volunteer can read over SSH.

use crate::config::Config;
use crate::media::{pipeline, presets};
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
