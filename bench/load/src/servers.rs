//! Starting the two servers under test, each on the CPUs given (`taskset`), with their output
//! in log files; each is killed when its handle is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Fieldcast,
    /// Another fieldcast binary (an earlier build, `--baseline-bin`): the A of an A/B against
    /// this one.
    #[serde(rename = "fieldcast-baseline")]
    Baseline,
    Janus,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fieldcast => "fieldcast",
            Kind::Baseline => "fc-base",
            Kind::Janus => "janus",
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub base: String,
    child: Child,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first so both shut down as they would in service, then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    cpus: Option<&str>,
    program: &Path,
    args: &[String],
    log: &Path,
    env: &[(&str, &str)],
) -> std::io::Result<Child> {
    let log = std::fs::File::create(log)?;
    let mut command = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

pub struct FieldcastOptions<'a> {
    /// `Fieldcast` or `Baseline`.
    pub kind: Kind,
    /// More arguments for `run`, after the ones every fieldcast here gets.
    pub extra_args: &'a [String],
    /// Where the H.264 RTP comes in.
    pub rtp_port: u16,
    pub binary: &'a Path,
    pub http_port: u16,
    pub work_dir: &'a Path,
    pub cpus: Option<&'a str>,
}

/// fieldcast with the `rtp-in` preset's pipeline (RTP on UDP `rtp_port`), HTTP and media on
/// loopback.
pub async fn start_fieldcast(
    options: FieldcastOptions<'_>,
    http: &reqwest::Client,
) -> Result<Server, String> {
    let name = options.kind.name();
    let config = options.work_dir.join(format!("{name}.toml"));
    // The stock limits would refuse 200 joins at once (100 pending at most); say so here
    // rather than measure refusals.
    let state = options.work_dir.join(format!("{name}-state"));
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = {:?}\n[limits]\nmax_viewers = 1000\nmax_pending_joins = 1000\n",
            state.display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    let base = format!("http://127.0.0.1:{}", options.http_port);
    // The `rtp-in` preset with the port given, so two fieldcasts can take the same feed.
    let pipeline = format!(
        "udpsrc port={} buffer-size=4194304 caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96\" ! rtph264depay ! {{rtp}}",
        options.rtp_port
    );
    let mut args: Vec<String> = [
        "run",
        "--config",
        &config.display().to_string(),
        "--pipeline",
        &pipeline,
        "--audio",
        "none",
        "--listen",
        &format!("127.0.0.1:{}", options.http_port),
        "--rtc-addr",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(options.extra_args.iter().cloned());
    let child = spawn(
        options.cpus,
        options.binary,
        &args,
        &options.work_dir.join(format!("{name}.log")),
        &[("FIELDCAST_LOG", "info")],
    )
    .map_err(|e| format!("cannot start {}: {e}", options.binary.display()))?;
    let mut server = Server {
        kind: options.kind,
        base,
        child,
    };
    let url = format!("{}/healthz", server.base);
    wait_ready(&mut server, || async {
        http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await?;
    Ok(server)
}

pub struct JanusOptions<'a> {
    pub binary: PathBuf,
    pub http_port: u16,
    pub rtp_port: u16,
    pub work_dir: &'a Path,
    pub cpus: Option<&'a str>,
}

pub async fn start_janus(
    options: JanusOptions<'_>,
    http: &reqwest::Client,
) -> Result<Server, String> {
    let dir = options.work_dir.join("janus");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    crate::janus::write_config(&dir, options.http_port, options.rtp_port)
        .map_err(|e| e.to_string())?;
    let args = vec![
        "-F".to_owned(),
        dir.display().to_string(),
        "-C".to_owned(),
        dir.join("janus.jcfg").display().to_string(),
        "--disable-colors".to_owned(),
    ];
    let child = spawn(
        options.cpus,
        &options.binary,
        &args,
        &options.work_dir.join("janus.log"),
        &[],
    )
    .map_err(|e| format!("cannot start {}: {e}", options.binary.display()))?;
    let mut server = Server {
        kind: Kind::Janus,
        base: format!("http://127.0.0.1:{}", options.http_port),
        child,
    };
    let url = format!("{}/janus/info", server.base);
    wait_ready(&mut server, || async {
        http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await?;
    Ok(server)
}

async fn wait_ready<F, Fut>(server: &mut Server, ready: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if ready().await {
            return Ok(());
        }
        if !server.alive() {
            return Err(format!(
                "{} exited before it was ready (see its log)",
                server.kind.name()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not ready within {READY_TIMEOUT:?}",
                server.kind.name()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
