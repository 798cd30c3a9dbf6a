//! The real binary under a stand-in for systemd: a datagram socket as NOTIFY_SOCKET. READY
//! comes after the first frame, WATCHDOG keeps coming while frames flow and stops when they
//! do not, STOPPING comes on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Notifications {
    rx: mpsc::Receiver<(Instant, String)>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts fieldcast with a notify socket and a watchdog of `watchdog`.
fn start(pipeline: &str, watchdog: Duration) -> (Child, Notifications) {
    let dir = std::env::temp_dir().join(format!(
        "fieldcast-notify-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if tx.send((Instant::now(), text)).is_err() {
                        return;
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    let child = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--rtc-addr",
            "127.0.0.1:0",
            "--audio",
            "none",
        ])
        .args(["--pipeline", pipeline])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .env_remove("FIELDCAST_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fieldcast starts");
    (
        child,
        Notifications {
            rx,
            _dir: TempDir(dir),
        },
    )
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

impl Notifications {
    /// Every message for `span`, with its arrival time.
    fn collect(&self, span: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + span;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok(message) = self.rx.recv_timeout(left) {
                got.push(message);
            }
        }
        got
    }

    fn wait_for(&self, what: &str, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok((at, text)) = self.rx.recv_timeout(left)
                && text.lines().any(|l| l == what)
            {
                return at;
            }
        }
        panic!("no {what} within {within:?}");
    }
}

fn watchdog_gaps(messages: &[(Instant, String)]) -> Vec<Duration> {
    let pings: Vec<Instant> = messages
        .iter()
        .filter(|(_, text)| text.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(at, _)| *at)
        .collect();
    pings.windows(2).map(|w| w[1] - w[0]).collect()
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fieldcast did not exit within 6 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ready_watchdog_and_stopping() {
    let (mut child, notes) = start("test", Duration::from_millis(1500));
    notes.wait_for("READY=1", Duration::from_secs(15));
    let messages = notes.collect(Duration::from_secs(3));
    let gaps = watchdog_gaps(&messages);
    assert!(
        gaps.len() >= 4,
        "WATCHDOG=1 every 0.5 s while frames flow: {messages:?}"
    );
    assert!(
        gaps.iter().all(|g| *g < Duration::from_millis(1200)),
        "no watchdog gap while frames flow: {gaps:?}"
    );
    assert!(
        messages
            .iter()
            .any(|(_, t)| t.contains("STATUS=0 viewers · 1280x720@30")),
        "a readable STATUS line: {messages:?}"
    );
    let status = terminate(&mut child);
    notes.wait_for("STOPPING=1", Duration::from_secs(1));
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}

#[test]
fn watchdog_stops_while_no_frames_flow() {
    // One frame every 4 s: frames "flow" for 2 s after each, then stall for 2 s.
    let pipeline = "videotestsrc is-live=true \
        ! video/x-raw,width=320,height=240,framerate=1/4 ! {encoder} \
        ! h264parse config-interval=-1 ! rtph264pay ! appsink name=video";
    let (mut child, notes) = start(pipeline, Duration::from_millis(1500));
    notes.wait_for("READY=1", Duration::from_secs(15));
    let messages = notes.collect(Duration::from_secs(9));
    let gaps = watchdog_gaps(&messages);
    assert!(
        gaps.iter().any(|g| *g >= Duration::from_millis(1500)),
        "WATCHDOG=1 pauses while no frame comes: gaps {gaps:?}"
    );
    terminate(&mut child);
}
