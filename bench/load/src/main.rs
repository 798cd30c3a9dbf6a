//! Side-by-side load benchmark: fieldcast against Janus's streaming plugin, fed the same H.264
//! RTP at the same moment, watched by N receive-only WebRTC viewers hosted in this process.
//!
//! Usually run through `bench/run.py`, which builds everything, records the stream, runs this
//! and writes BENCHMARKS.md. Directly:
//! `cargo run --release -p fieldcast-load -- --stream target/bench/stream.rtp --viewers 1,10`
//! (`--help` for the rest). With `--watch URL` it only joins viewers to a running daemon and
//! keeps them watching, as load beside another measurement.

mod cycles;
mod feed;
mod janus;
mod no_gro;
mod peer;
mod procstat;
mod report;
mod round;
mod sei;
mod servers;
mod stats;
mod ttff;
mod watch;
mod whep;

use clap::Parser;
use feed::{Feeder, Recording};
use round::{RoundResult, RoundSettings};
use servers::{FieldcastOptions, JanusOptions, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// fieldcast's `rtp-in` preset listens here.
const FIELDCAST_RTP_PORT: u16 = 5004;
/// Where the baseline fieldcast of an A/B (`--baseline-bin`) takes the same feed.
const BASELINE_RTP_PORT: u16 = 5008;

#[derive(Parser, Debug)]
#[command(
    about = "fieldcast vs Janus: CPU, memory, loss, time to first frame and latency for N viewers"
)]
struct Args {
    /// The H.264 RTP stream to replay, RFC 4571 framed (rtpstreampay), starting on an IDR.
    #[arg(long, required_unless_present = "watch")]
    stream: Option<PathBuf>,
    /// Only join the first of `--viewers` to the fieldcast at this URL and keep them watching
    /// (`--window` seconds, 0: until SIGTERM), reporting as JSON lines; no servers started.
    #[arg(long)]
    watch: Option<String>,
    #[arg(long, default_value = "target/release/fieldcast")]
    fieldcast_bin: PathBuf,
    #[arg(long, default_value = "/usr/bin/janus")]
    janus_bin: PathBuf,
    /// Measure fieldcast only.
    #[arg(long)]
    no_janus: bool,
    /// Also measure this fieldcast binary (an earlier build), fed the same stream at the same
    /// moment: an A/B of two builds, whose ratios hold even when the machine's speed moves.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// An argument for the baseline's `run` (repeat for more), e.g. to pick a path that
    /// build has: `--baseline-arg=--egress --baseline-arg=connections`.
    #[arg(long, allow_hyphen_values = true)]
    baseline_arg: Vec<String>,
    /// Viewer counts, each joined all at once.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,100,200")]
    viewers: Vec<usize>,
    /// Seconds measured per server and viewer count.
    #[arg(long, default_value_t = 20.0)]
    window: f64,
    /// Seconds between every viewer having video and the window.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Seconds all viewers of a round may take to receive video.
    #[arg(long, default_value_t = 20.0)]
    join_timeout: f64,
    /// Seconds measured with no viewer, for each server's idle CPU.
    #[arg(long, default_value_t = 10.0)]
    idle_window: f64,
    /// Joins one after another per server, for the time-to-first-frame distribution.
    #[arg(long, default_value_t = 20)]
    sequential_joins: usize,
    /// Viewers that join (until DTLS is up) and leave, in batches, per server, to see
    /// whether memory comes back; 0: not measured.
    #[arg(long, default_value_t = 0)]
    cycles: usize,
    /// Seconds between rounds, for the servers to release the last round's viewers.
    #[arg(long, default_value_t = 3.0)]
    pause: f64,
    /// CPUs for the servers (taskset list, e.g. "1"); empty: unpinned.
    #[arg(long, default_value = "")]
    server_cpus: String,
    /// Let each server choose its SRTP profile from the client's full list, instead of
    /// offering only AES-128-GCM (the same crypto work for both).
    #[arg(long)]
    any_srtp_profile: bool,
    /// Tokio worker threads of this client.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// fieldcast's HTTP port on loopback; 0: a free one.
    #[arg(long, default_value_t = 0)]
    fieldcast_port: u16,
    /// Janus's HTTP port on loopback; 0: a free one.
    #[arg(long, default_value_t = 0)]
    janus_port: u16,
    #[arg(long, default_value_t = 5006)]
    janus_rtp_port: u16,
    /// Logs and server configuration go here.
    #[arg(long, default_value = "target/bench/work")]
    work_dir: PathBuf,
    /// Results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

fn main() {
    let args = Args::parse();
    sei::self_check();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = match args.watch.clone() {
        Some(base) => runtime.block_on(watch_only(base, &args)),
        None => runtime.block_on(run(args)),
    };
    if let Err(e) = outcome {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

async fn watch_only(base: String, args: &Args) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let settings = watch::WatchSettings {
        base: base.trim_end_matches('/').to_owned(),
        viewers: args.viewers.first().copied().unwrap_or(1),
        seconds: args.window,
        join_timeout: Duration::from_secs_f64(args.join_timeout),
        report_every: Duration::from_secs(5),
    };
    watch::run(settings, http).await
}

/// `port`, or a free TCP port on loopback when it is 0.
fn free_port(port: u16) -> Result<u16, String> {
    if port != 0 {
        return Ok(port);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

#[derive(serde::Serialize)]
struct Idle {
    server: servers::Kind,
    cpu_pct: Option<f64>,
    rss_mib: Option<f64>,
}

async fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.work_dir).map_err(|e| e.to_string())?;
    for port in [FIELDCAST_RTP_PORT, BASELINE_RTP_PORT, args.janus_rtp_port] {
        // Another process on the port would take the feed, or half of it.
        std::net::UdpSocket::bind(("0.0.0.0", port)).map_err(|e| {
            format!("UDP port {port} is not free ({e}); is another fieldcast or Janus running?")
        })?;
    }
    let fieldcast_port = free_port(args.fieldcast_port)?;
    let janus_port = free_port(args.janus_port)?;
    let stream = args.stream.as_deref().ok_or("--stream is needed")?;
    let recording = Recording::load(stream).map_err(|e| e.to_string())?;
    let stream = serde_json::json!({
        "frames": recording.frames(),
        "fps": recording.fps(),
        "loop_s": recording.duration().as_secs_f64(),
        "bitrate_kbps": recording.bitrate_kbps(),
        "packets_per_s": recording.packets as f64 / recording.duration().as_secs_f64(),
    });
    println!("stream: {stream}");
    // One destination per server, in the order of `servers` below: the feeder keeps a frame
    // clock per destination.
    let mut destinations = vec![SocketAddr::from(([127, 0, 0, 1], FIELDCAST_RTP_PORT))];
    if args.baseline_bin.is_some() {
        destinations.push(SocketAddr::from(([127, 0, 0, 1], BASELINE_RTP_PORT)));
    }
    destinations.push(SocketAddr::from(([127, 0, 0, 1], args.janus_rtp_port)));
    let feeder = Feeder::start(recording, destinations).map_err(|e| format!("feeder: {e}"))?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let cpus = (!args.server_cpus.is_empty()).then_some(args.server_cpus.as_str());
    let mut servers: Vec<Server> = Vec::new();
    servers.push(
        servers::start_fieldcast(
            FieldcastOptions {
                kind: servers::Kind::Fieldcast,
                extra_args: &[],
                rtp_port: FIELDCAST_RTP_PORT,
                binary: &args.fieldcast_bin,
                http_port: fieldcast_port,
                work_dir: &args.work_dir,
                cpus,
            },
            &http,
        )
        .await?,
    );
    if let Some(baseline) = &args.baseline_bin {
        servers.push(
            servers::start_fieldcast(
                FieldcastOptions {
                    kind: servers::Kind::Baseline,
                    extra_args: &args.baseline_arg,
                    rtp_port: BASELINE_RTP_PORT,
                    binary: baseline,
                    http_port: free_port(0)?,
                    work_dir: &args.work_dir,
                    cpus,
                },
                &http,
            )
            .await?,
        );
    }
    let mut janus_note = None;
    if args.no_janus {
        janus_note = Some("not measured (--no-janus)".to_owned());
    } else if !args.janus_bin.exists() {
        janus_note = Some(format!(
            "not measured: {} not installed",
            args.janus_bin.display()
        ));
    } else {
        match servers::start_janus(
            JanusOptions {
                binary: args.janus_bin.clone(),
                http_port: janus_port,
                rtp_port: args.janus_rtp_port,
                work_dir: &args.work_dir,
                cpus,
            },
            &http,
        )
        .await
        {
            Ok(server) => servers.push(server),
            Err(e) => janus_note = Some(format!("not measured: {e}")),
        }
    }
    if let Some(note) = &janus_note {
        println!("janus: {note}");
    }
    // Both have seen a keyframe and settled.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let ticks = procstat::clock_ticks();
    let mut idle = Vec::new();
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let sample = procstat::Sample::take(&pids);
    tokio::time::sleep(Duration::from_secs_f64(args.idle_window)).await;
    let usage = sample.until_now(&pids, ticks);
    for (server, cpu) in servers.iter().zip(&usage.process_cpu_pct) {
        idle.push(Idle {
            server: server.kind,
            cpu_pct: *cpu,
            rss_mib: procstat::rss_mib(server.pid()),
        });
        println!(
            "{} idle: cpu {:?} %, rss {:?} MiB",
            server.kind.name(),
            cpu,
            procstat::rss_mib(server.pid())
        );
    }

    let mut sequential = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        if args.sequential_joins == 0 {
            break;
        }
        let joins = ttff::run(
            server,
            &feeder.clocks[index],
            &http,
            args.sequential_joins,
            Duration::from_secs_f64(args.join_timeout),
            !args.any_srtp_profile,
        )
        .await;
        println!(
            "{} sequential joins: {} ok, {} failed; ttff p50 {:?} ms, p95 {:?} ms",
            server.kind.name(),
            joins.ttff_ms.count,
            joins.failed,
            joins.ttff_ms.p50,
            joins.ttff_ms.p95
        );
        sequential.push(joins);
        tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
    }

    let mut cycles = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        if args.cycles == 0 {
            break;
        }
        let run = cycles::run(
            server,
            &feeder.clocks[index],
            &http,
            args.cycles,
            !args.any_srtp_profile,
        )
        .await;
        println!(
            "{} join/leave cycles: {} viewers ({} failed) in {:.0} s; rss {:?} -> {:?} MiB",
            server.kind.name(),
            run.viewers,
            run.failed,
            run.seconds,
            run.rss_start_mib,
            run.rss_end_mib
        );
        cycles.push(run);
        tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
    }

    let mut results: Vec<RoundResult> = Vec::new();
    for &viewers in &args.viewers {
        for (index, server) in servers.iter_mut().enumerate() {
            if !server.alive() {
                println!("{} is no longer running; skipping", server.kind.name());
                continue;
            }
            let settings = RoundSettings {
                viewers,
                settle: Duration::from_secs_f64(args.settle),
                window: Duration::from_secs_f64(args.window),
                join_timeout: Duration::from_secs_f64(args.join_timeout),
                aes128_gcm_only: !args.any_srtp_profile,
            };
            let clock = &feeder.clocks[index];
            let result = round::run(server, clock, &http, &settings, ticks).await;
            println!(
                "{} N={viewers}: joined {} ({} errors), all video {:?} s, ttff p50 {:?} ms, cpu {:?} %, rss {:?} MiB, lost {}/{} packets/frames, latency p99 {:?} ms, steal per CPU {:.0?} %",
                server.kind.name(),
                result.joined,
                result.join_errors.len(),
                result.all_video_s,
                result.ttff_ms.p50,
                result.cpu_pct,
                result.rss_mib,
                result.packets_lost,
                result.frames_lost,
                result.latency_ms.p99,
                result.machine.machine_cpu_steal_pct,
            );
            for error in result.join_errors.iter().take(3) {
                println!("  join error: {error}");
            }
            results.push(result);
            tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
        }
    }

    report::print_table(&results);
    let document = serde_json::json!({
        "stream": stream,
        "finished_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "janus": janus_note.unwrap_or_else(|| "measured".to_owned()),
        "baseline": args.baseline_bin.as_ref().map(|bin| serde_json::json!({
            "bin": bin.display().to_string(),
            "args": args.baseline_arg,
        })),
        "server_cpus": args.server_cpus,
        "client_threads": args.client_threads,
        "srtp_profiles_offered": if args.any_srtp_profile { "all (server chooses)" } else { "AES-128-GCM only" },
        "window_s": args.window,
        "clock_ticks_per_s": ticks,
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "idle": idle,
        "sequential_joins": sequential,
        "cycles": cycles,
        "rounds": results,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&document).unwrap())
        .map_err(|e| e.to_string())?;
    println!("\nwrote {}", args.out.display());
    drop(servers);
    drop(feeder);
    Ok(())
}
