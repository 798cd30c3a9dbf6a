"""The pieces the publish tests run for real, on loopback (and the machine's own address,
which the kernel keeps local): fieldcast itself, Janus with a generated configuration, nginx
with the RTMP module, and small helpers to wait on them. Nothing here sends traffic off the
machine."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("FIELDCAST_BIN", str(ROOT / "target/release/fieldcast"))
ADMIN_TOKEN = "publish-test-admin-token"


def free_port(kind=socket.SOCK_STREAM, pair=False):
    """A free port (with `pair`, an even one whose +2 is free too, for RTP video and sound)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        if port % 2 == 0 and port + 2 < 65536:
            try:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port + 2))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_for(what, check, within, every=0.1):
    """Polls `check` until it returns something true; fails saying what did not happen."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as error:  # the thing polled is not up yet
            last = error
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {within} s (last: {last!r})")


RUNNING = []


def stop_all():
    """Stops every process still running (a failed case leaves none behind)."""
    while RUNNING:
        RUNNING.pop().stop()


class Process:
    """A child process with its output in a log file; stopped on `stop()` or `stop_all()`."""

    def __init__(self, name, command, log_dir, env=None):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        RUNNING.append(self)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, within=10):
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc.poll() is None:
            # The child leads its own process group: nginx's workers go with their master.
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Fieldcast:
    """fieldcast with the test pipeline, HTTP on loopback, media on the machine's addresses."""

    def __init__(self, work, extra_toml="", audio="auto", name="fieldcast", args=(), pipeline="test"):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = Path(work) / f"{name}.toml"
        config.write_text(
            f'[server]\nlisten = "127.0.0.1:{self.port}"\nstate_dir = "{work}"\n'
            f'[video]\npipeline = {json.dumps(pipeline)}\n'
            f'[audio]\nsource = {json.dumps(audio)}\n'
            f'[access]\nadmin_token = "{ADMIN_TOKEN}"\n' + extra_toml
        )
        self.process = Process(name, [BINARY, "run", "--config", str(config), *args], work,
                               env={"FIELDCAST_LOG": os.environ.get("PUBLISH_LOG", "info")})
        try:
            wait_for("fieldcast healthy", lambda: self.get("/healthz") == "ok\n", 20)
        except AssertionError:
            raise AssertionError("fieldcast did not start:\n" + self.process.tail())

    def get(self, path, admin=False):
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
        request = urllib.request.Request(self.base + path, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()

    def status(self):
        return json.loads(self.get("/api/admin/status", admin=True))

    def target(self, index=0):
        return self.status()["publish"][index]

    def metrics(self):
        return self.get("/metrics", admin=True)

    def cpu_seconds(self):
        """User + system CPU seconds of the fieldcast process so far, from /proc."""
        fields = Path(f"/proc/{self.process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.process.stop()


# ---- Janus -----------------------------------------------------------------------------

def janus_plugin_root():
    candidates = [p / "janus" for p in Path("/usr/lib").iterdir()] + [Path("/usr/lib/janus")]
    for candidate in candidates:
        if (candidate / "plugins" / "libjanus_streaming.so").exists():
            return candidate
    raise RuntimeError("janus is not installed (apt install janus)")


def write_janus_config(folder, http_port, video_port, audio_port, srtp=None):
    """HTTP on loopback, the streaming plugin with one RTP mountpoint (H.264 + Opus), nothing
    else loaded, no STUN. With `srtp` (base64 key and salt), the mountpoint takes SRTP."""
    lib = janus_plugin_root()
    others = ",".join(f"libjanus_{p}.so" for p in [
        "audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip",
        "textroom", "videocall", "videoroom", "voicemail"])
    transports = ",".join(f"libjanus_{p}.so" for p in [
        "mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "janus.jcfg").write_text(f"""general: {{
	configs_folder = "{folder}"
	plugins_folder = "{lib}/plugins"
	transports_folder = "{lib}/transports"
	events_folder = "{lib}/events"
	loggers_folder = "{lib}/loggers"
	debug_level = 4
	session_timeout = 60
}}
nat: {{
	ignore_mdns = true
}}
plugins: {{
	disable = "{others}"
}}
transports: {{
	disable = "{transports}"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
""")
    (folder / "janus.transport.http.jcfg").write_text(f"""general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {http_port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
}}
""")
    crypto = f'\n\tsrtpsuite = 80\n\tsrtpcrypto = "{srtp}"' if srtp else ""
    (folder / "janus.plugin.streaming.jcfg").write_text(f"""general: {{
}}
fieldcast: {{
	type = "rtp"
	id = 1
	description = "fieldcast"{crypto}
	media = (
		{{
			type = "video"
			mid = "v"
			port = {video_port}
			pt = 96
			codec = "h264"
			fmtp = "profile-level-id=42e01f;packetization-mode=1"
		}},
		{{
			type = "audio"
			mid = "a"
			port = {audio_port}
			pt = 111
			codec = "opus"
		}}
	)
}}
""")


class Janus:
    def __init__(self, work, srtp=None):
        if shutil.which("janus") is None:
            raise RuntimeError("janus is not installed (apt install janus)")
        self.work = Path(work)
        self.http_port = free_port()
        self.video_port = free_port(socket.SOCK_DGRAM, pair=True)
        self.audio_port = self.video_port + 2
        self.base = f"http://127.0.0.1:{self.http_port}"
        write_janus_config(self.work / "janus", self.http_port, self.video_port, self.audio_port, srtp)
        self.process = None
        self.start()

    def start(self):
        folder = self.work / "janus"
        self.process = Process("janus", ["janus", "-F", str(folder), "-C", str(folder / "janus.jcfg")],
                               self.work)
        try:
            wait_for("Janus answering on HTTP", self.info, 20)
        except AssertionError:
            raise AssertionError("Janus did not start:\n" + self.process.tail())

    def info(self):
        with urllib.request.urlopen(f"{self.base}/janus/info", timeout=2) as response:
            return json.loads(response.read())

    def stop(self):
        if self.process:
            self.process.stop()


# ---- the aiortc WHIP ingest -------------------------------------------------------------

class WhipServer:
    """tests/publish/whip_server.py on loopback; `record()` is what it saw."""

    def __init__(self, work, token, python, port=None):
        self.work, self.token, self.python = work, token, python
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.start()

    def start(self):
        self.process = Process("whip-server", [self.python, str(ROOT / "tests/publish/whip_server.py"),
                                               "--port", str(self.port), "--token", self.token], self.work)
        try:
            wait_for("the WHIP ingest answering", self.record, 15)
        except AssertionError:
            raise AssertionError("the WHIP ingest did not start:\n" + self.process.tail())

    def record(self):
        with urllib.request.urlopen(f"{self.base}/record", timeout=2) as response:
            return json.loads(response.read())

    def stop(self, sig=signal.SIGTERM):
        if self.process:
            self.process.stop(sig)


# ---- nginx with the RTMP module ---------------------------------------------------------

class NginxRtmp:
    """nginx on loopback with one RTMP application `live` that records every stream to FLV."""

    MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

    def __init__(self, work):
        if shutil.which("nginx") is None or not Path(self.MODULE).exists():
            raise RuntimeError("nginx with the RTMP module is not installed (apt install nginx libnginx-mod-rtmp)")
        self.work = Path(work) / "nginx"
        self.records = self.work / "records"
        self.records.mkdir(parents=True, exist_ok=True)
        # nginx's workers run as nobody when started by root.
        os.chmod(self.records, 0o777)
        os.chmod(self.work, 0o755)
        os.chmod(work, 0o755)
        self.port = free_port()
        self.url = f"rtmp://127.0.0.1:{self.port}/live"
        self.conf = self.work / "nginx.conf"
        self.conf.write_text(f"""load_module {self.MODULE};
daemon off;
master_process on;
worker_processes 1;
pid {self.work}/nginx.pid;
error_log {self.work}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        application live {{
            live on;
            record all;
            record_path {self.records};
            record_unique off;
        }}
    }}
}}
""")
        self.process = None
        self.start()

    def start(self):
        self.process = Process("nginx", ["nginx", "-p", str(self.work), "-c", str(self.conf)], self.work.parent)

        def listening():
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        try:
            wait_for("nginx listening for RTMP", listening, 10)
        except AssertionError:
            raise AssertionError("nginx did not start:\n" + self.process.tail()
                                 + (self.work / "error.log").read_text(errors="replace")[-2000:])

    def stop(self):
        if self.process:
            self.process.stop(signal.SIGTERM)


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"ffprobe {path}: {out.stderr[-500:]}")
    return json.loads(out.stdout)
