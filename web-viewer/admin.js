// The admin page: what the operator at the pitch needs — is the pipeline healthy, which
// encoder, and who is watching how well — a way to end a viewer's session, and the
// recordings (start/stop, download, play, delete).
// The token comes in the link's #fragment (never sent to the server in a URL) and is kept
// for this tab only.

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
const TOKEN_KEY = "fieldcast-admin-token";

function takeTokenFromLink() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    // Off the address bar, so a screenshot or a shared screen does not show it.
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

let token = takeTokenFromLink();
let timer = null;

function authorized(init = {}) {
  return { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` } };
}

function showLogin(message) {
  clearTimeout(timer);
  $("panel").hidden = true;
  $("login").hidden = false;
  $("summary").textContent = "sign in";
  $("login-error").textContent = message || "";
  $("token").focus();
}

function fill(list, rows) {
  list.replaceChildren(
    ...rows.flatMap(([name, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value ?? "–";
      return [dt, dd];
    }),
  );
}

const seconds = (s) => {
  const whole = Math.floor(s);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${whole % 60} s` : `${whole} s`;
};

function renderViewers(viewers) {
  $("viewer-count").textContent = `(${viewers.length})`;
  const rows = viewers
    .sort((a, b) => a.joined_unix_ms - b.joined_unix_ms)
    .map((viewer) => {
      const row = document.createElement("tr");
      const cells = [
        viewer.id.slice(0, 8),
        viewer.remote ?? "–",
        viewer.state,
        seconds(viewer.connected_for_s),
        viewer.candidate_pair ?? "–",
        viewer.fraction_lost == null ? "–" : `${(viewer.fraction_lost * 100).toFixed(1)} %`,
        viewer.jitter_ms == null ? "–" : `${viewer.jitter_ms.toFixed(1)} ms`,
        viewer.frames_sent,
        viewer.frames_dropped,
        viewer.keyframe_requests,
      ];
      for (const value of cells) {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        row.append(cell);
      }
      const action = document.createElement("td");
      const end = document.createElement("button");
      end.textContent = "End";
      end.title = `End session ${viewer.id}`;
      end.dataset.session = viewer.id;
      end.addEventListener("click", () => endSession(viewer.id, end));
      action.append(end);
      row.append(action);
      return row;
    });
  $("viewers").replaceChildren(...rows);
}

const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

function renderPublish(targets = []) {
  $("publish-section").hidden = targets.length === 0;
  $("publish-count").textContent = `(${targets.length})`;
  const rows = targets.map((target) => {
    const row = document.createElement("tr");
    const state = target.state === "retrying" && target.retry_in_ms != null
      ? `retrying in ${Math.ceil(target.retry_in_ms / 1000)} s`
      : target.state;
    const cells = [
      target.name,
      target.kind,
      target.url,
      state,
      seconds(Math.max(0, (Date.now() - target.since_unix_ms) / 1000)),
      megabytes(target.bytes_sent),
      target.frames_dropped,
      target.reconnects,
      target.last_error ?? "–",
    ];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.append(cell);
    }
    row.children[3].className = target.state === "live" ? "good" : target.state === "retrying" ? "bad" : "";
    return row;
  });
  $("publish").replaceChildren(...rows);
}

function renderRecording(recording) {
  const state = recording.disk_full
    ? "paused: the disk is full"
    : recording.recording
      ? "recording"
      : recording.enabled
        ? "starting"
        : "off";
  $("recording-state").textContent = `(${state})`;
  $("recording-state").className = recording.disk_full || recording.last_error ? "bad" : recording.recording ? "good" : "muted";
  fill($("recording"), [
    ["writing", recording.current_file],
    ["kept", `${recording.segments} files, ${megabytes(recording.bytes)}`],
    ["free space", recording.free_bytes == null ? null : `${megabytes(recording.free_bytes)} of ${megabytes(recording.total_bytes)}`],
    ["may use", recording.budget_bytes == null ? null : megabytes(recording.budget_bytes)],
    ["segment length", seconds(recording.segment_s)],
    ["frames dropped", recording.frames_dropped],
    ["directory", recording.dir],
    ["last error", recording.last_error],
  ]);
  $("record-start").disabled = recording.enabled;
  $("record-stop").disabled = !recording.enabled;
}

// A file fetched with the token (a plain link cannot carry it), as a blob URL.
async function recordingUrl(name) {
  const response = await fetch(`/api/admin/recordings/${encodeURIComponent(name)}`, authorized());
  if (!response.ok) throw new Error(`status ${response.status}`);
  return URL.createObjectURL(await response.blob());
}

async function onRecording(action, name, button) {
  button.disabled = true;
  try {
    if (action === "delete") {
      const response = await fetch(`/api/admin/recordings/${encodeURIComponent(name)}`, authorized({ method: "DELETE" }));
      if (!response.ok) throw new Error((await response.json()).detail);
    } else {
      const url = await recordingUrl(name);
      if (action === "download") {
        const link = document.createElement("a");
        link.href = url;
        link.download = name;
        link.click();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      } else {
        const video = $("playback");
        if (video.src) URL.revokeObjectURL(video.src);
        video.src = url;
        video.hidden = false;
        video.play().catch(() => {});
      }
    }
  } catch (error) {
    $("error").textContent = `Could not ${action} ${name}: ${error.message}`;
  }
  button.disabled = false;
  refresh();
}

async function refreshRecordings() {
  const response = await fetch("/api/admin/recordings", authorized());
  if (!response.ok) return;
  const { segments } = await response.json();
  const rows = segments.map((segment) => {
    const row = document.createElement("tr");
    const cells = [
      segment.name,
      new Date(segment.started_unix_ms).toLocaleString(),
      segment.writing ? `${megabytes(segment.bytes)} (writing)` : megabytes(segment.bytes),
    ];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    const actions = document.createElement("td");
    for (const action of segment.writing ? [] : ["download", "play", "delete"]) {
      const button = document.createElement("button");
      button.textContent = action[0].toUpperCase() + action.slice(1);
      button.dataset.recording = segment.name;
      button.dataset.action = action;
      button.addEventListener("click", () => onRecording(action, segment.name, button));
      actions.append(button);
    }
    row.append(actions);
    return row;
  });
  $("recordings").replaceChildren(...rows);
}

async function setRecording(on) {
  const response = await fetch(`/api/admin/recordings/${on ? "start" : "stop"}`, authorized({ method: "POST" })).catch(() => null);
  if (!response?.ok) $("error").textContent = `Could not ${on ? "start" : "stop"} recording.`;
  refresh();
}

function render(status) {
  const { pipeline, stream } = status;
  $("title").textContent = `${status.title} · admin`;
  document.title = `${status.title} · fieldcast admin`;
  $("summary").innerHTML = "";
  const health = document.createElement("span");
  health.className = status.healthy ? "good" : "bad";
  health.textContent = status.healthy ? "live" : "not live";
  $("summary").append(health, ` · ${status.viewer_count} watching · up ${seconds(status.uptime_s)} · fieldcast ${status.version}`);
  const size = pipeline.width ? `${pipeline.width}×${pipeline.height}` : null;
  fill($("pipeline"), [
    ["state", pipeline.state],
    ["preset", pipeline.preset ?? "custom"],
    ["encoder", pipeline.encoder ?? "none (the source encodes)"],
    ["picture", size && pipeline.fps ? `${size} @ ${pipeline.fps} fps` : size],
    ["restarts", pipeline.restarts],
    ["last error", pipeline.last_error],
    ["sound", pipeline.audio ? `${pipeline.audio.source} (${pipeline.audio.codec}), ${pipeline.audio.level_dbfs ?? "–"} dBFS` : "none"],
  ]);
  fill($("stream"), [
    ["frame rate", `${stream.fps} fps`],
    ["bitrate", `${stream.bitrate_kbps} kbit/s`],
    ["frames / keyframes", `${stream.frames} / ${stream.keyframes}`],
    ["frames dropped for slow viewers", stream.dropped_frames],
    ["keyframe requests to the encoder", stream.keyframe_requests_sent],
    ["last frame", stream.last_frame_age_ms == null ? "never" : `${stream.last_frame_age_ms} ms ago`],
  ]);
  renderViewers(status.viewers);
  renderPublish(status.publish);
  renderRecording(status.recording);
}

async function refresh() {
  clearTimeout(timer);
  try {
    const response = await fetch("/api/admin/status", authorized());
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("That is not the admin token.");
      return;
    }
    if (!response.ok) throw new Error(`status ${response.status}`);
    render(await response.json());
    await refreshRecordings();
    $("login").hidden = true;
    $("panel").hidden = false;
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = `Cannot reach fieldcast (${error.message}); trying again.`;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

async function endSession(id, button) {
  button.disabled = true;
  const response = await fetch(`/whep/${encodeURIComponent(id)}`, authorized({ method: "DELETE" })).catch(() => null);
  if (!response?.ok && response?.status !== 404) {
    $("error").textContent = `Could not end ${id.slice(0, 8)} (${response ? response.status : "no answer"}).`;
  }
  refresh();
}

$("record-start").addEventListener("click", () => setRecording(true));
$("record-stop").addEventListener("click", () => setRecording(false));

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  refresh();
});

if (token) refresh();
else showLogin();
