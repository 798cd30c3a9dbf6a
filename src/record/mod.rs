//! Recording on the board: the hub's H.264 and Opus, muxed without re-encoding into
//! fragmented MP4 segments ([`writer`]), named by start time and title ([`naming`]), the
//! oldest deleted to keep within `max_bytes`, `max_age` and the disk ([`retention`]). The
//! recorder takes frames like a viewer (its own bounded queue, drops counted), so a slow card
//! never holds up the stream; a full disk pauses recording, not the stream.

pub mod naming;
pub mod retention;
mod task;
pub mod writer;

use crate::fanout::Hubs;
use retention::{Limits, Segment, Space};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The segment being written, shared with the status.
type Current = Arc<Mutex<Option<String>>>;

pub const DEFAULT_SEGMENT: Duration = Duration::from_secs(600);
/// Under the state directory unless `[record] dir` says otherwise.
pub const DEFAULT_SUBDIR: &str = "recordings";
/// How often the directory is listed and retention applied.
pub(crate) const SCAN_EVERY: Duration = Duration::from_secs(1);

/// `[record]`: off unless asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    pub enabled: bool,
    /// `None`: `recordings/` in the state directory.
    pub dir: Option<PathBuf>,
    pub segment: Duration,
    pub limits: Limits,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: None,
            segment: DEFAULT_SEGMENT,
            limits: Limits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("no recording called {0:?}")]
    NotFound(String),
    #[error("{0} is being written; stop recording first")]
    Writing(String),
    #[error("cannot delete {name}: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

/// What `/api/admin/status` and the admin page show.
#[derive(Debug, Clone, Serialize)]
pub struct RecordStatus {
    /// The operator wants recording on (config, `--record`, or the admin page).
    pub enabled: bool,
    /// A segment is being written now.
    pub recording: bool,
    pub dir: String,
    pub current_file: Option<String>,
    /// Bytes of every segment kept, the current one included.
    pub bytes: u64,
    pub segments: usize,
    pub segment_s: u64,
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// What recordings may take now (`max_bytes`, or less when the disk holds other things).
    pub budget_bytes: Option<u64>,
    /// Recording is paused: no room even after deleting every finished segment.
    pub disk_full: bool,
    /// Frames lost for falling behind (the hub's queue and the muxer's).
    pub frames_dropped: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentInfo {
    pub name: String,
    pub bytes: u64,
    pub started_unix_ms: u128,
    /// Still being written.
    pub writing: bool,
}

/// The last listing of the directory and what retention made of it.
#[derive(Debug, Default)]
struct View {
    segments: Vec<Segment>,
    space: Option<Space>,
    budget: Option<u64>,
    disk_full: bool,
    recording: bool,
    last_error: Option<String>,
}

struct Shared {
    dir: PathBuf,
    title: String,
    settings: RecordSettings,
    wanted: watch::Sender<bool>,
    current: Current,
    view: Mutex<View>,
    dropped_here: AtomicU64,
    /// Frames the hub's queue dropped in sessions before, and the current session's counter.
    hub_drops: Mutex<(u64, Option<Arc<AtomicU64>>)>,
}

impl Shared {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_current(&self, name: Option<String>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }

    /// Lists the directory, deletes what retention says and notes the result.
    async fn scan(self: &Arc<Self>) {
        let shared = Arc::clone(self);
        let writing = self.current();
        // Listing and deleting wait on the card: not on the runtime's threads.
        let scanned = tokio::task::spawn_blocking(move || {
            scan_dir(&shared.dir, writing, shared.settings.limits)
        })
        .await;
        let Ok((segments, space, verdict)) = scanned else {
            return;
        };
        let mut view = self.view();
        if let Some(verdict) = &verdict {
            if verdict.disk_full && !view.disk_full {
                let free = space.map_or(0, |s| s.free);
                tracing::warn!(
                    "recording paused: the disk is full ({} MB free; {} % of it is kept free, \
                     recordings may take {} MB)",
                    free / 1_000_000,
                    retention::KEEP_FREE_PERCENT,
                    verdict.budget / 1_000_000
                );
            } else if !verdict.disk_full && view.disk_full {
                tracing::info!("recording can resume: there is room on the disk again");
            }
            view.disk_full = verdict.disk_full;
            view.budget = Some(verdict.budget);
        }
        view.segments = segments;
        view.space = space;
    }

    fn failed(&self, error: String) {
        self.view().last_error = Some(error);
    }
}

/// The directory's segments (oldest first) after retention, its file system's space, and
/// retention's verdict (`None` when the directory does not exist yet).
fn scan_dir(
    dir: &Path,
    writing: Option<String>,
    limits: Limits,
) -> (Vec<Segment>, Option<Space>, Option<retention::Verdict>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (Vec::new(), None, None);
    };
    let mut segments: Vec<Segment> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let started = naming::started(&name)?;
            let bytes = entry.metadata().ok().filter(|m| m.is_file())?.len();
            Some(Segment {
                name,
                bytes,
                started,
            })
        })
        .collect();
    // fsblkcnt_t and c_ulong are 32 bits on some targets (armhf).
    #[allow(clippy::unnecessary_cast)]
    let space = nix::sys::statvfs::statvfs(dir).ok().map(|s| {
        let unit = s.fragment_size() as u64;
        Space {
            total: s.blocks() as u64 * unit,
            free: s.blocks_available() as u64 * unit,
        }
    });
    let verdict = space.map(|space| {
        retention::decide(
            &segments,
            writing.as_deref(),
            space,
            limits,
            SystemTime::now(),
        )
    });
    if let Some(verdict) = &verdict {
        for name in &verdict.delete {
            match std::fs::remove_file(dir.join(name)) {
                Ok(()) => tracing::info!("recording {name} deleted to make room (retention)"),
                Err(e) => tracing::warn!("cannot delete recording {name}: {e}"),
            }
        }
        segments.retain(|s| !verdict.delete.contains(&s.name));
    }
    segments.sort_by(|a, b| (a.started, &a.name).cmp(&(b.started, &b.name)));
    (segments, space, verdict)
}

fn unix_ms(at: SystemTime) -> u128 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The recorder: one task that records while recording is wanted, and applies retention.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<bool>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Recorder {
    /// Starts the recorder's task; it records from the start when `settings.enabled`.
    pub fn start(
        settings: &RecordSettings,
        dir: PathBuf,
        title: &str,
        hubs: &Hubs,
        audio: bool,
    ) -> Recorder {
        let (wanted, _) = watch::channel(settings.enabled);
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            dir,
            title: title.to_owned(),
            settings: settings.clone(),
            wanted,
            current: Current::default(),
            view: Mutex::default(),
            dropped_here: AtomicU64::new(0),
            hub_drops: Mutex::default(),
        });
        let task = tokio::spawn(task::run(
            Arc::clone(&shared),
            hubs.clone(),
            audio,
            stop.subscribe(),
        ));
        Recorder {
            shared,
            stop: Arc::new(stop),
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Turns recording on or off (the admin page's buttons); takes effect at once.
    pub fn set_enabled(&self, on: bool) {
        let changed = self.shared.wanted.send_if_modified(|wanted| {
            let changed = *wanted != on;
            *wanted = on;
            changed
        });
        if changed {
            tracing::info!(
                "recording turned {} by the admin",
                if on { "on" } else { "off" }
            );
        }
    }

    pub fn status(&self) -> RecordStatus {
        let shared = &self.shared;
        let view = shared.view();
        let dropped = {
            let drops = shared.hub_drops.lock().unwrap_or_else(|e| e.into_inner());
            let now = drops.1.as_ref().map_or(0, |d| d.load(Ordering::Relaxed));
            shared.dropped_here.load(Ordering::Relaxed) + drops.0 + now
        };
        RecordStatus {
            enabled: *shared.wanted.borrow(),
            recording: view.recording,
            dir: shared.dir.display().to_string(),
            current_file: shared.current(),
            bytes: view.segments.iter().map(|s| s.bytes).sum(),
            segments: view.segments.len(),
            segment_s: shared.settings.segment.as_secs(),
            free_bytes: view.space.map(|s| s.free),
            total_bytes: view.space.map(|s| s.total),
            budget_bytes: view.budget,
            disk_full: view.disk_full,
            frames_dropped: dropped,
            last_error: view.last_error.clone(),
        }
    }

    /// The segments kept, newest first, as of the last listing (at most a second old).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let current = self.shared.current();
        let view = self.shared.view();
        view.segments
            .iter()
            .rev()
            .map(|s| SegmentInfo {
                name: s.name.clone(),
                bytes: s.bytes,
                started_unix_ms: unix_ms(s.started),
                writing: current.as_deref() == Some(s.name.as_str()),
            })
            .collect()
    }

    /// Where the segment called `name` is, when it is one of ours and exists.
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        naming::started(name)?;
        let path = self.shared.dir.join(name);
        path.is_file().then_some(path)
    }

    /// Deletes a finished segment.
    pub async fn delete(&self, name: &str) -> Result<(), RecordError> {
        if self.shared.current().as_deref() == Some(name) {
            return Err(RecordError::Writing(name.to_owned()));
        }
        let path = self
            .path_of(name)
            .ok_or_else(|| RecordError::NotFound(name.to_owned()))?;
        std::fs::remove_file(&path).map_err(|source| RecordError::Io {
            name: name.to_owned(),
            source,
        })?;
        tracing::info!("recording {name} deleted by the admin");
        self.shared.scan().await;
        Ok(())
    }

    /// Closes the segment being written (cleanly, when it can within a few seconds) and ends
    /// the task, waiting at most `deadline`.
    pub async fn stop(&self, deadline: Duration) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}
