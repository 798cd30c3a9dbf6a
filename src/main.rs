use clap::{Args, Parser, Subcommand};
use fieldcast::config::load::{self, Overrides};
use fieldcast::config::{Config, DEFAULT_CONFIG_PATH};
use fieldcast::webrtc::api::IceServer;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  fieldcast                                   stream the camera (or the test pattern)
  fieldcast run --title \"U12 final\" --audio none
  fieldcast run --pipeline usb-mjpeg --video-bitrate 1500
  fieldcast run --pipeline 'videotestsrc is-live=true ! {encoder} ! h264parse ! rtph264pay ! appsink name=video'
  fieldcast run --publish rtp://janus.lan:5004  also feed a Janus streaming mountpoint
  fieldcast check                             is everything ready? (exit status 1 if not)
  fieldcast check --ice                       ... and what do the STUN/TURN servers say?
  fieldcast devices                           cameras, microphones and encoders here

Settings come from /etc/fieldcast/fieldcast.toml (or --config), then FIELDCAST_* variables,
then flags; see fieldcast.example.toml for every key.";

/// Live camera to many browsers, from one small board.
#[derive(Parser)]
#[command(version, about, after_help = EXAMPLES)]
struct Cli {
    /// Configuration file [default: /etc/fieldcast/fieldcast.toml when it exists]
    #[arg(long, env = "FIELDCAST_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Subcommand)]
enum Command {
    /// Stream to viewers (the default).
    Run(Flags),
    /// Check the configuration, the pipeline, the camera and the ports, without streaming.
    Check(CheckArgs),
    /// List cameras, microphones and H.264 encoders.
    Devices,
}

#[derive(Args, Clone)]
struct CheckArgs {
    /// Also ask the STUN and TURN servers for this device's public address and a relay.
    #[arg(long)]
    ice: bool,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Args, Clone, Default)]
struct Flags {
    /// HTTP address for the viewer page and WHEP [default: 0.0.0.0:8080]
    #[arg(long, env = "FIELDCAST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Stream title shown to viewers [default: Live]
    #[arg(long, env = "FIELDCAST_TITLE")]
    title: Option<String>,
    /// `auto`, a preset (test, rpi-csi, rpi5-csi, usb-mjpeg, usb-raw, usb-h264) or a
    /// gst-launch pipeline ending in `appsink name=video` [default: auto]
    #[arg(long, env = "FIELDCAST_PIPELINE")]
    pipeline: Option<String>,
    /// H.264 bitrate in kbit/s, 100..=20000 [default: 2000]
    #[arg(long, env = "FIELDCAST_VIDEO_BITRATE")]
    video_bitrate: Option<u32>,
    /// Sound: `auto`, `none`, an ALSA device such as `hw:1`, or a gst-launch source
    /// [default: auto]
    #[arg(long, env = "FIELDCAST_AUDIO")]
    audio: Option<String>,
    /// Opus bitrate in kbit/s, 6..=510 [default: 48]
    #[arg(long, env = "FIELDCAST_AUDIO_BITRATE")]
    audio_bitrate: Option<u32>,
    /// Local address for WebRTC media sockets (repeatable; comma-separated in the
    /// variable); 0.0.0.0:0 is every interface but loopback [default: 0.0.0.0:0]
    #[arg(long = "rtc-addr", env = "FIELDCAST_RTC_ADDRS", value_delimiter = ',')]
    rtc_addrs: Vec<String>,
    /// STUN or TURN server (repeatable; space-separated in the variable):
    /// stun:HOST:PORT or turn:USER:PASS@HOST:PORT
    #[arg(long = "ice-server", env = "FIELDCAST_ICE_SERVERS", value_delimiter = ' ',
          value_parser = Config::parse_ice_server)]
    ice_servers: Vec<IceServer>,
    /// Also serve HTTPS on this address (e.g. 0.0.0.0:8443); plain HTTP then redirects there
    #[arg(long, env = "FIELDCAST_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// Make a self-signed certificate for HTTPS when none is configured (LAN use)
    #[arg(long, env = "FIELDCAST_TLS_SELF_SIGNED")]
    tls_self_signed: bool,
    /// Directory for what fieldcast keeps (the admin token); default: systemd's
    /// $STATE_DIRECTORY, /var/lib/fieldcast for root, else ~/.local/state/fieldcast
    #[arg(long, env = "FIELDCAST_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Also send the stream to this engine (repeatable; space-separated in the variable):
    /// https://…/whip (WHIP), rtp://HOST:PORT, rtmp(s)://HOST/APP/KEY; added to [[publish]]
    #[arg(long = "publish", env = "FIELDCAST_PUBLISH", value_delimiter = ' ')]
    publish: Vec<String>,
    /// Record the stream into segments under the state directory's recordings/ (see
    /// [record] in the configuration file)
    #[arg(long, env = "FIELDCAST_RECORD")]
    record: bool,
}

impl Flags {
    fn overrides(self) -> Overrides {
        Overrides {
            listen: self.listen,
            title: self.title,
            pipeline: self.pipeline,
            video_bitrate_kbps: self.video_bitrate,
            audio: self.audio,
            audio_bitrate_kbps: self.audio_bitrate,
            udp_addrs: some_vec(self.rtc_addrs),
            ice_servers: some_vec(self.ice_servers),
            tls_listen: self.tls_listen,
            tls_self_signed: self.tls_self_signed.then_some(true),
            state_dir: self.state_dir,
            publish: self.publish,
            record: self.record,
        }
    }
}

/// An empty list means the flag was not given.
fn some_vec<T>(values: Vec<T>) -> Option<Vec<T>> {
    (!values.is_empty()).then_some(values)
}

fn init_logging() {
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

/// The first link as a QR code people can scan off the screen; only on a terminal.
fn print_qr(url: &str) {
    if !std::io::stdout().is_terminal() {
        return;
    }
    if let Ok(code) = qrcode::QrCode::new(url.as_bytes()) {
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        println!("{art}\n  {url}\n");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = tokio::signal::ctrl_c();
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

fn load_config(file: Option<PathBuf>, flags: Flags) -> Result<(Config, Option<PathBuf>), String> {
    let path = load::config_path(file.as_deref());
    let config = load::load(path.as_deref(), flags.overrides()).map_err(|e| match &path {
        Some(_) => format!("bad configuration:\n{e}"),
        None => format!("bad configuration (no file; defaults and flags):\n{e}"),
    })?;
    Ok((config, path))
}

async fn run(file: Option<PathBuf>, flags: Flags) -> ExitCode {
    let (config, path) = match load_config(file, flags) {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match &path {
        Some(path) => tracing::info!("configuration from {}", path.display()),
        None => tracing::info!("no {DEFAULT_CONFIG_PATH}; using defaults and flags"),
    }
    let daemon = match fieldcast::daemon::start(config).await {
        Ok(daemon) => daemon,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let urls = viewer_urls(daemon.local_addr);
    for url in &urls {
        tracing::info!("watch at {url}");
    }
    if let Some(first) = urls.first() {
        print_qr(first);
        // Shown only when nobody could know the token otherwise: it was just made.
        if daemon.admin.origin.announce() {
            tracing::info!(
                "admin page (keep this link private; it is shown only now): {first}admin#token={}",
                daemon.admin.token
            );
        }
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

async fn check(file: Option<PathBuf>, args: CheckArgs) -> ExitCode {
    let flags = args.flags;
    let (config, path) = match load_config(file, flags) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("FAIL config    {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut findings = fieldcast::check::run(&config, path.as_deref());
    if args.ice {
        findings.extend(fieldcast::check::ice(&config.peer).await);
    }
    for finding in &findings {
        println!("{finding}");
    }
    if findings.iter().all(|f| f.ok) {
        println!(
            "fieldcast is ready: viewers will open http://HOST:{}/",
            config.listen.port()
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Some(Command::Run(flags)) => run(cli.config, flags).await,
        None => run(cli.config, cli.flags).await,
        Some(Command::Check(args)) => check(cli.config, args).await,
        Some(Command::Devices) => match fieldcast::media::inventory::report() {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}
