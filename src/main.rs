use clap::{Args, Parser, Subcommand};
use fieldcast::config::{Config, DEFAULT_LISTEN, DEFAULT_PIPELINE, DEFAULT_TITLE};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// Live camera to many browsers, from one small board.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  fieldcast\n  fieldcast run --pipeline test --listen 0.0.0.0:8080\n  fieldcast run --pipeline 'videotestsrc is-live=true ! x264enc tune=zerolatency ! rtph264pay ! appsink name=video'"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Stream the camera to viewers (the default).
    Run(RunArgs),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// HTTP address for the viewer page and WHEP.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// `auto`, a preset (test, rpi-csi, rpi5-csi, usb-mjpeg, usb-raw, usb-h264) or a
    /// gst-launch pipeline ending in `appsink name=video`.
    #[arg(long, default_value = DEFAULT_PIPELINE)]
    pipeline: String,
    /// Sound: `auto` (a microphone if found; the test tone with `--pipeline test`), `none`,
    /// an ALSA device such as `hw:1`, or a gst-launch source.
    #[arg(long, default_value = "auto")]
    audio: String,
    /// Opus bitrate in kbit/s (6..=510).
    #[arg(long, default_value_t = fieldcast::media::audio::DEFAULT_AUDIO_BITRATE_KBPS)]
    audio_bitrate: u32,
    /// Stream title shown to viewers.
    #[arg(long, default_value = DEFAULT_TITLE)]
    title: String,
    /// Local address for WebRTC media sockets (repeatable); 0.0.0.0:0 is every interface
    /// but loopback.
    #[arg(long = "rtc-addr")]
    rtc_addrs: Vec<String>,
    /// STUN or TURN server (repeatable): stun:HOST:PORT or turn:USER:PASS@HOST:PORT.
    #[arg(long = "ice-server", value_parser = Config::parse_ice_server)]
    ice_servers: Vec<fieldcast::webrtc::api::IceServer>,
}

impl RunArgs {
    fn config(self) -> Config {
        let mut config = Config {
            listen: self.listen,
            pipeline: self.pipeline,
            title: self.title,
            audio: fieldcast::media::audio::AudioSettings {
                source: self.audio,
                bitrate_kbps: self.audio_bitrate,
                ..Default::default()
            },
            ..Config::default()
        };
        if !self.rtc_addrs.is_empty() {
            config.peer.udp_addrs = self.rtc_addrs;
        }
        config.peer.ice_servers = self.ice_servers;
        config
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIELDCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,webrtc=warn,rtc=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

/// The links people can open: one per non-loopback address, or localhost when alone.
fn viewer_urls(listen: SocketAddr) -> Vec<String> {
    let port = listen.port();
    let url = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}/"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}/"),
    };
    if !listen.ip().is_unspecified() {
        return vec![url(listen.ip())];
    }
    let mut urls: Vec<String> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|iface| !iface.is_loopback())
        .map(|iface| iface.ip())
        .filter(|ip| ip.is_ipv4() || listen.is_ipv6())
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .map(url)
        .collect();
    if urls.is_empty() {
        urls.push(format!("http://localhost:{port}/"));
    }
    urls
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(args: RunArgs) -> ExitCode {
    let config = args.config();
    let daemon = match fieldcast::daemon::start(config).await {
        Ok(daemon) => daemon,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for url in viewer_urls(daemon.local_addr) {
        tracing::info!("watch at {url}");
    }
    shutdown_signal().await;
    tracing::info!("stopping");
    if tokio::time::timeout(Duration::from_secs(5), daemon.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown took longer than 5 s; exiting anyway");
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let args = match cli.command {
        Some(Command::Run(args)) => args,
        None => cli.run,
    };
    run(args).await
}
