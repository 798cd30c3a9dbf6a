//! Joining a Janus streaming mountpoint over Janus's HTTP API: create a session, attach the
//! streaming plugin, `watch` — Janus then sends the offer on the long poll — answer with
//! `start`, and keep the session alive (long poll and keepalives) until `destroy`.
//! Also the configuration Janus runs with in the bench: HTTP on loopback, the streaming
//! plugin with one RTP mountpoint, nothing else loaded, no STUN (nothing leaves the machine).

use crate::peer::ViewerPeer;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

pub const MOUNTPOINT_ID: u64 = 1;
/// Janus drops a session after 60 s without a request; stay well inside that.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);
const OFFER_TIMEOUT: Duration = Duration::from_secs(10);

static TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

fn transaction() -> String {
    format!("t{}", TRANSACTIONS.fetch_add(1, Ordering::Relaxed))
}

pub struct JanusSession {
    session: u64,
    poller: JoinHandle<()>,
    keepalive: JoinHandle<()>,
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value, String> {
    body["transaction"] = json!(transaction());
    let reply: Value = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    match reply["janus"].as_str() {
        Some("success" | "ack") => Ok(reply),
        _ => Err(format!("POST {url}: {reply}")),
    }
}

/// Events from one long poll (Janus answers one object, or an array with `maxev`).
async fn poll_events(http: &reqwest::Client, url: &str) -> Result<Vec<Value>, String> {
    let reply: Value = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    Ok(match reply {
        Value::Array(events) => events,
        event => vec![event],
    })
}

fn id_of(reply: &Value) -> Result<u64, String> {
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| format!("no id in {reply}"))
}

/// A session and handle watching the mountpoint, and Janus's offer.
pub struct Watching {
    session: u64,
    handle: u64,
    pub offer: String,
}

/// Creates a session, attaches the streaming plugin and asks to watch; Janus's offer comes
/// on the long poll.
pub async fn watch(http: &reqwest::Client, base: &str) -> Result<Watching, String> {
    let root = format!("{base}/janus");
    let session = id_of(&post(http, &root, json!({"janus": "create"})).await?)?;
    let session_url = format!("{root}/{session}");
    let handle = id_of(
        &post(
            http,
            &session_url,
            json!({"janus": "attach", "plugin": "janus.plugin.streaming"}),
        )
        .await?,
    )?;
    post(
        http,
        &format!("{session_url}/{handle}"),
        json!({"janus": "message", "body": {"request": "watch", "id": MOUNTPOINT_ID}}),
    )
    .await?;
    let poll_url = format!("{session_url}?maxev=10");
    let deadline = tokio::time::Instant::now() + OFFER_TIMEOUT;
    loop {
        let events = tokio::time::timeout_at(deadline, poll_events(http, &poll_url))
            .await
            .map_err(|_| "no offer from Janus within 10 s".to_owned())??;
        if let Some(sdp) = events.iter().find_map(|e| e["jsep"]["sdp"].as_str()) {
            return Ok(Watching {
                session,
                handle,
                offer: sdp.to_owned(),
            });
        }
        if let Some(error) = events
            .iter()
            .find(|e| !e["plugindata"]["data"]["error"].is_null())
        {
            return Err(format!("watch refused: {error}"));
        }
    }
}

/// The IPv4 address of Janus's first host candidate. libnice gathers no loopback candidates,
/// so the viewer binds to the machine address Janus offers; the kernel still carries that
/// traffic over loopback and nothing leaves the machine.
pub fn offered_ipv4(offer: &str) -> Option<IpAddr> {
    offer.lines().find_map(|line| {
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        let ip: IpAddr = fields.get(4)?.parse().ok()?;
        (ip.is_ipv4() && fields.get(7) == Some(&"host")).then_some(ip)
    })
}

impl Watching {
    /// Answers Janus's offer with `start` and keeps the session alive from then on.
    pub async fn start(
        self,
        http: &reqwest::Client,
        base: &str,
        peer: &mut ViewerPeer,
    ) -> Result<JanusSession, String> {
        let session_url = format!("{base}/janus/{}", self.session);
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!("janus offer:\n{}", self.offer);
        }
        let answer = peer.answer(self.offer).await?;
        post(
            http,
            &format!("{session_url}/{}", self.handle),
            json!({"janus": "message", "body": {"request": "start"}, "jsep": {"type": "answer", "sdp": answer}}),
        )
        .await?;
        let poller = {
            let (http, url) = (http.clone(), format!("{session_url}?maxev=10"));
            tokio::spawn(async move {
                // A real client keeps reading events for as long as it stays.
                while poll_events(&http, &url).await.is_ok() {}
            })
        };
        let keepalive = {
            let (http, url) = (http.clone(), session_url);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(KEEPALIVE_INTERVAL).await;
                    let _ = post(&http, &url, json!({"janus": "keepalive"})).await;
                }
            })
        };
        Ok(JanusSession {
            session: self.session,
            poller,
            keepalive,
        })
    }
}

impl JanusSession {
    pub async fn leave(self, http: &reqwest::Client, base: &str) {
        self.keepalive.abort();
        let _ = post(
            http,
            &format!("{base}/janus/{}", self.session),
            json!({"janus": "destroy"}),
        )
        .await;
        self.poller.abort();
    }
}

/// Where Janus's plugins live: Debian's multiarch directory, or a source install's.
fn plugin_root() -> std::path::PathBuf {
    let multiarch = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("janus"));
    multiarch
        .chain(
            [
                "/usr/lib/janus",
                "/usr/local/lib/janus",
                "/opt/janus/lib/janus",
            ]
            .map(Into::into),
        )
        .find(|dir| dir.join("plugins").join("libjanus_streaming.so").exists())
        .unwrap_or_else(|| "/usr/lib/x86_64-linux-gnu/janus".into())
}

/// Writes Janus's configuration into `dir`: `janus -F dir -C dir/janus.jcfg` runs it.
pub fn write_config(dir: &Path, http_port: u16, rtp_port: u16) -> std::io::Result<()> {
    let folder = dir.display();
    let lib = plugin_root();
    let lib = lib.display();
    let other_plugins = [
        "audiobridge",
        "duktape",
        "echotest",
        "lua",
        "nosip",
        "recordplay",
        "sip",
        "textroom",
        "videocall",
        "videoroom",
        "voicemail",
    ]
    .map(|p| format!("libjanus_{p}.so"))
    .join(",");
    let other_transports = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"]
        .map(|p| format!("libjanus_{p}.so"))
        .join(",");
    std::fs::write(
        dir.join("janus.jcfg"),
        format!(
            r#"general: {{
	configs_folder = "{folder}"
	plugins_folder = "{lib}/plugins"
	transports_folder = "{lib}/transports"
	events_folder = "{lib}/events"
	loggers_folder = "{lib}/loggers"
	debug_level = 4
	session_timeout = 60
}}
media: {{
}}
nat: {{
	# No stun_server: Janus asks nothing of anyone off the machine.
	nice_debug = false
	ignore_mdns = true
}}
plugins: {{
	disable = "{other_plugins}"
}}
transports: {{
	disable = "{other_transports}"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
events: {{
	broadcast = false
}}
"#
        ),
    )?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            r#"general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {http_port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
"#
        ),
    )?;
    std::fs::write(
        dir.join("janus.plugin.streaming.jcfg"),
        format!(
            r#"general: {{
}}
bench: {{
	type = "rtp"
	id = {MOUNTPOINT_ID}
	description = "fieldcast benchmark feed"
	media = (
		{{
			type = "video"
			mid = "v"
			port = {rtp_port}
			pt = 96
			codec = "h264"
			fmtp = "profile-level-id=42e01f;packetization-mode=1"
		}}
	)
}}
"#
        ),
    )?;
    Ok(())
}
