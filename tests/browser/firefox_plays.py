#!/usr/bin/env python3
"""Debian's firefox-esr, headless and driven over Marionette, against a real fieldcast.

Run (from the repository root):

    python3 -m venv target/firefox-venv
    target/firefox-venv/bin/pip install -r tests/browser/firefox-requirements.txt
    target/firefox-venv/bin/python tests/browser/firefox_plays.py

Exit codes: 0 pass, 1 fail, 77 skip (no firefox-esr, or no marionette_driver).


Firefox (153 ESR) puts H.264 in a WebRTC offer only when an OpenH264 GMP plugin
("gmp-gmpopenh264") is registered. Firefox normally downloads that plugin from Cisco at
run time; Debian packages none, and offline there is nothing to download. Once the plugin
is registered, Firefox decodes the H.264 it receives with the system FFmpeg (libavcodec,
in its RDD process; media.navigator.mediadatadecoder_h264_enabled is true by default), or
in the plugin itself when FFmpeg is unavailable. So the test makes two runs, each with its
own fieldcast and a fresh headless Firefox:

* "no-h264" -- stock firefox-esr, fresh profile, no plugin: what a Debian user who is
  offline (or whose Firefox has not fetched OpenH264 yet) gets. Asserts exactly:
    - RTCRtpReceiver.getCapabilities("video") lists VP8 but no video/H264;
    - Firefox's offer has no H264 in its video section;
    - fieldcast answers that offer with 400, application/problem+json, no Location, and
      the body {"type":"about:blank","title":"Bad request","status":400,"detail":"the
      offer's video section does not offer H.264 with packetization-mode=1 (offered:
      <the offer's video codec names, in payload order>)"};
    - the viewer page shows no picture, creates no viewer, and its visible text says
      "H.264" (it tells the user why it cannot play).
* "h264" -- OpenH264 registered through MOZ_GMP_PATH, as a system package would. With
  FIREFOX_OPENH264_GMP=<dir holding libgmpopenh264.so and gmpopenh264.info> a real
  plugin (built from Cisco's openh264 sources: `make plugin` with Mozilla's gmp-api
  headers in ./gmp-api) is used; otherwise a stub (just a gmpopenh264.info, an empty .so),
  which is enough for Firefox to offer H.264 and decode it with the system libavcodec --
  the same decode path as a user with the real plugin and FFmpeg installed. The stub run
  is skipped when no libavcodec is installed. Asserts: H264 offered, 201 answer whose
  video section is H264 with packetization-mode=1, connection "connected", inbound-rtp
  codec video/H264 at 1280x720, framesDecoded within 20 % of the source's frame rate over
  3 s and as many <video> frame callbacks, and the viewer page's own <video> presenting
  within 20 % of the source's rate at 1280x720 with fieldcast counting one viewer.

Firefox never reaches beyond loopback: MOZ_DISABLE_NONLOCAL_CONNECTIONS=1 makes it refuse
(and, under Marionette, crash on) any non-local connection, and the profile disables
updates, telemetry, remote settings, safebrowsing, captive portal checks, push, normandy,
GMP downloads, and sends any HTTP(S) outside loopback to a dead proxy on 127.0.0.1:9.
The test fails if Firefox reports a non-local connection attempt.

Environment: FIELDCAST_BIN (default target/release/fieldcast), FIREFOX_BIN (default
firefox-esr on PATH), FIREFOX_OPENH264_GMP (see above), FIREFOX_TEST_MODE=no-h264|h264
runs only that run, FIREFOX_TEST_KEEP=1 keeps each run's temporary directory (profile,
fieldcast and firefox logs). Prints "N passed, N failed" last.
"""

import ctypes.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

PASS, FAIL, SKIP = 0, 1, 77
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
RUN_TIMEOUT_S = 150
EXPECTED_FPS = 30.0
FPS_TOLERANCE = 0.20
MEASURE_S = 3.0
NO_H264_DETAIL = "the offer's video section does not offer H.264 with packetization-mode=1 (offered: {})"
NONLOCAL_MARK = "Non-local network connections are disabled"


class Failure(Exception):
    """An expectation that did not hold; the message says what did not happen."""


def log(msg):
    print(f"[firefox_plays] {msg}", flush=True)


def check(cond, what, observed=None):
    if not cond:
        raise Failure(what + ("" if observed is None else f" (observed: {observed!r})"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fmt(value):
    return "n/a" if value is None else f"{value:.1f}"


def wait_for(what, timeout_s, probe, interval_s=0.1):
    """Calls probe() until it returns something truthy; raises Failure naming `what` if not."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - the last error is reported
            last = e
        time.sleep(interval_s)
    raise Failure(f"{what} did not happen within {timeout_s} s (last: {last!r})")


ADMIN_TOKEN = "firefox-test-admin-token"


def http_get_json(url, timeout=5, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
        return json.loads(r.read().decode())


def admin_status(base):
    """Every detail of the stream (frames made, measured rate): the admin view."""
    return http_get_json(f"{base}/api/admin/status", token=ADMIN_TOKEN)


def profile_prefs(marionette_port):
    """user.js for a fresh profile: Marionette, autoplay, loopback ICE, and no network use."""
    prefs = {
        "marionette.port": marionette_port,
        # First run, updates, UI noise.
        "app.update.enabled": False,
        "app.update.auto": False,
        "app.update.checkInstallTime": False,
        "browser.shell.checkDefaultBrowser": False,
        "browser.startup.homepage_override.mstone": "ignore",
        "browser.startup.page": 0,
        "browser.newtabpage.enabled": False,
        "browser.aboutwelcome.enabled": False,
        "browser.tabs.warnOnClose": False,
        "datareporting.policy.firstRunURL": "",
        "startup.homepage_welcome_url": "about:blank",
        "startup.homepage_welcome_url.additional": "",
        # Telemetry and studies.
        "datareporting.healthreport.uploadEnabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.enabled": False,
        "toolkit.telemetry.unified": False,
        "toolkit.telemetry.archive.enabled": False,
        "toolkit.telemetry.server": "",
        "toolkit.coverage.endpoint.base": "",
        "app.normandy.enabled": False,
        "app.normandy.api_url": "",
        "app.shield.optoutstudies.enabled": False,
        "browser.ping-centre.telemetry": False,
        "browser.newtabpage.activity-stream.telemetry": False,
        "browser.newtabpage.activity-stream.feeds.topsites": False,
        "browser.newtabpage.activity-stream.feeds.section.topstories": False,
        "browser.topsites.contile.enabled": False,
        # Remote settings: honoured because MOZ_DISABLE_NONLOCAL_CONNECTIONS=1 is set; this
        # dummy URL makes Firefox skip all remote-settings syncs.
        "services.settings.server": "data:,#remote-settings-dummy/v1",
        # Safe browsing, blocklists, extension and search updates.
        "browser.safebrowsing.malware.enabled": False,
        "browser.safebrowsing.phishing.enabled": False,
        "browser.safebrowsing.downloads.enabled": False,
        "browser.safebrowsing.downloads.remote.enabled": False,
        "browser.safebrowsing.blockedURIs.enabled": False,
        "browser.safebrowsing.provider.google4.updateURL": "",
        "browser.safebrowsing.provider.google.updateURL": "",
        "browser.safebrowsing.provider.mozilla.updateURL": "",
        "extensions.update.enabled": False,
        "extensions.getAddons.cache.enabled": False,
        "extensions.blocklist.enabled": False,
        "extensions.systemAddon.update.enabled": False,
        "extensions.systemAddon.update.url": "",
        "browser.search.update": False,
        "security.OCSP.enabled": 0,
        "security.remote_settings.crlite_filters.enabled": False,
        "identity.fxaccounts.enabled": False,
        "geo.provider.network.url": "",
        # Connectivity probes, push, DNS.
        "network.connectivity-service.enabled": False,
        "network.captive-portal-service.enabled": False,
        "captivedetect.canonicalURL": "",
        "dom.push.enabled": False,
        "dom.push.connection.enabled": False,
        "dom.push.serverURL": "",
        "network.trr.mode": 5,
        "network.dns.disablePrefetch": True,
        "network.dns.disablePrefetchFromHTTPS": True,
        "network.dns.native_https_query": False,
        "network.prefetch-next": False,
        "network.http.speculative-parallel-limit": 0,
        # Anything HTTP(S) that still wants out goes to a dead local proxy; loopback is direct.
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": 9,
        "network.proxy.ssl": "127.0.0.1",
        "network.proxy.ssl_port": 9,
        "network.proxy.no_proxies_on": "127.0.0.1,localhost",
        "network.proxy.allow_hijacking_localhost": False,
        # GMP (OpenH264, Widevine): never download; local plugins only.
        "media.gmp-manager.url": "http://127.0.0.1:9/gmp-disabled",
        "media.gmp-manager.updateEnabled": False,
        "media.gmp-gmpopenh264.autoupdate": False,
        "media.gmp-widevinecdm.enabled": False,
        "media.gmp-widevinecdm.autoupdate": False,
        # Media and WebRTC.
        "media.autoplay.default": 0,
        "media.autoplay.blocking_policy": 0,
        "media.peerconnection.ice.obfuscate_host_addresses": False,
        "media.peerconnection.ice.loopback": True,
        # ICE candidates on loopback only (not on the machine's other addresses), UDP only.
        "media.peerconnection.ice.force_interface": "lo",
        "media.peerconnection.ice.tcp": False,
        "media.navigator.permission.disabled": True,
    }
    lines = []
    for name, value in prefs.items():
        lines.append(f"user_pref({json.dumps(name)}, {json.dumps(value)});")
    return "\n".join(lines) + "\n"


def gmp_version(plugin_dir):
    with open(os.path.join(plugin_dir, "gmpopenh264.info"), encoding="utf-8") as f:
        for line in f:
            if line.lower().startswith("version:"):
                return line.split(":", 1)[1].strip()
    return "local"


def video_codecs_in_order(sdp):
    """Codec names of the first m=video section, in the order of its payload types."""
    section = re.search(r"^m=video .*?(?=^m=|\Z)", sdp, re.S | re.M)
    if not section:
        return [], []
    text = section.group(0)
    payloads = text.splitlines()[0].split()[3:]
    names = dict(re.findall(r"^a=rtpmap:(\d+) ([^/\s]+)/", text, re.M))
    codec_lines = [l for l in text.splitlines() if l.startswith(("m=video", "a=rtpmap:", "a=fmtp:"))]
    return [names.get(pt, f"?{pt}") for pt in payloads], codec_lines


# --- JavaScript run in the page ---------------------------------------------------------------

JS_CAPABILITIES = """
const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities
  ? RTCRtpReceiver.getCapabilities("video") : null;
return caps ? caps.codecs.map(c => c.mimeType + (c.sdpFmtpLine ? " " + c.sdpFmtpLine : "")) : null;
"""

# One WHEP session of our own: offer (video recvonly), POST, and, if answered, play it and
# measure. Every wait is bounded; the result says how far it got.
JS_OWN_SESSION = """
const [measureMs, done] = [arguments[0], arguments[arguments.length - 1]];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) { if (await pred()) return true; await sleep(50); }
  return false;
}
const out = { stage: "start" };
let pc = null, location = null;
async function inbound() {
  const report = await pc.getStats();
  let rtp = null;
  report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") rtp = s; });
  if (!rtp) return null;
  const codec = rtp.codecId ? report.get(rtp.codecId) : null;
  return { framesDecoded: rtp.framesDecoded || 0, framesReceived: rtp.framesReceived,
           packetsReceived: rtp.packetsReceived, bytesReceived: rtp.bytesReceived,
           frameWidth: rtp.frameWidth, frameHeight: rtp.frameHeight,
           framesPerSecond: rtp.framesPerSecond, timestamp: rtp.timestamp,
           codec: codec ? codec.mimeType : null, fmtp: codec ? codec.sdpFmtpLine : null,
           decoderImplementation: rtp.decoderImplementation };
}
(async () => {
  pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); video.play().catch(() => {}); };
  await pc.setLocalDescription(await pc.createOffer());
  out.stage = "gathering";
  await until(() => pc.iceGatheringState === "complete", 5000);
  out.offer = pc.localDescription.sdp;
  out.stage = "post";
  const resp = await fetch("/whep", { method: "POST", headers: { "Content-Type": "application/sdp" }, body: out.offer });
  out.status = resp.status;
  out.contentType = resp.headers.get("content-type");
  location = resp.headers.get("location");
  out.location = location;
  out.body = await resp.text();
  if (resp.status !== 201) { out.stage = "rejected"; return; }
  out.stage = "answer";
  await pc.setRemoteDescription({ type: "answer", sdp: out.body });
  out.stage = "connecting";
  out.connected = await until(() => pc.connectionState === "connected", 15000);
  out.connectionState = pc.connectionState;
  if (!out.connected) return;
  out.stage = "first-frame";
  const t0 = performance.now();
  out.firstFrame = await until(async () => ((await inbound()) || {}).framesDecoded > 0, 15000);
  out.firstFrameMs = Math.round(performance.now() - t0);
  out.beforeFirstFrame = await inbound();
  if (!out.firstFrame) return;
  await until(() => video.readyState >= 2, 5000);
  out.stage = "measuring";
  let callbacks = 0, counting = true;
  if (video.requestVideoFrameCallback) {
    const tick = () => { if (counting) { callbacks++; video.requestVideoFrameCallback(tick); } };
    video.requestVideoFrameCallback(tick);
  }
  const a = await inbound();
  const qa = video.getVideoPlaybackQuality().totalVideoFrames;
  const ta = performance.now();
  await sleep(measureMs);
  const b = await inbound();
  const qb = video.getVideoPlaybackQuality().totalVideoFrames;
  const seconds = (performance.now() - ta) / 1000;
  counting = false;
  out.start = a; out.end = b; out.seconds = seconds;
  out.decodedFps = (b.framesDecoded - a.framesDecoded) / ((b.timestamp - a.timestamp) / 1000);
  out.playbackFps = (qb - qa) / seconds;
  out.frameCallbackFps = video.requestVideoFrameCallback ? callbacks / seconds : null;
  out.readyState = video.readyState;
  out.videoSize = [video.videoWidth, video.videoHeight];
  out.stage = "measured";
})().catch((e) => { out.error = String(e); }).finally(async () => {
  try { if (location) await fetch(new URL(location, document.baseURI), { method: "DELETE" }); } catch (e) {}
  try { if (pc) pc.close(); } catch (e) {}
  done(out);
});
"""

# Frames the page's own <video> presents over a while (requestVideoFrameCallback; Firefox's
# getVideoPlaybackQuality() stays at 0 for a MediaStream source).
JS_PAGE_FPS = """
const [ms, done] = [arguments[0], arguments[arguments.length - 1]];
const v = document.querySelector("video");
if (!v || !v.requestVideoFrameCallback) { done({ error: "no video element or no requestVideoFrameCallback" }); return; }
let n = 0, on = true;
const tick = () => { if (on) { n++; v.requestVideoFrameCallback(tick); } };
v.requestVideoFrameCallback(tick);
const t0 = performance.now();
setTimeout(() => { on = false; const s = (performance.now() - t0) / 1000; done({ frames: n, seconds: s, fps: n / s }); }, ms);
"""

JS_PAGE_VIEW = """
const v = document.querySelector("video");
return {
  text: document.body ? document.body.innerText : "",
  readyState: v ? v.readyState : null,
  totalVideoFrames: v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : null,
  videoSize: v ? [v.videoWidth, v.videoHeight] : null,
  now: performance.now(),
};
"""


# --- the run ----------------------------------------------------------------------------------


STUB_INFO = """Name: gmpopenh264
Description: fieldcast test stub: registers OpenH264 with Firefox, decodes nothing itself.
Version: 0.0.0-fieldcast-stub
APIs: encode-video[h264], decode-video[h264]
"""


def install_gmp(work, source):
    """A gmp-gmpopenh264/<version>/ directory for MOZ_GMP_PATH: copied from `source`, or a stub."""
    if source == "stub":
        version_dir = os.path.join(work, "gmp", "gmp-gmpopenh264", "0.0.0-fieldcast-stub")
        os.makedirs(version_dir)
        with open(os.path.join(version_dir, "gmpopenh264.info"), "w", encoding="utf-8") as f:
            f.write(STUB_INFO)
        open(os.path.join(version_dir, "libgmpopenh264.so"), "wb").close()
    else:
        version_dir = os.path.join(work, "gmp", "gmp-gmpopenh264", gmp_version(source))
        os.makedirs(version_dir)
        for name in ("libgmpopenh264.so", "gmpopenh264.info"):
            shutil.copy(os.path.join(source, name), version_dir)
    return version_dir


NETNS_ADDR = "10.213.0.1"
NETNS_SETUP = (
    "ip link set lo up && ip link add fcv0 type veth peer name fcv1 && "
    f"ip addr add {NETNS_ADDR}/24 dev fcv0 && ip link set fcv0 up && ip link set fcv1 up && "
    "ip route add default dev fcv0"
)


def in_private_netns():
    """Re-runs this script in a network namespace of its own, when root can make one.

    Firefox gathers ICE host candidates only on non-loopback interfaces (whatever
    media.peerconnection.ice.loopback says), and none at all without a default route, so on
    the host fieldcast would answer to the machine's own LAN address. In a namespace with lo,
    one veth address (10.213.0.1) and a default route into that veth, all of the test's
    traffic stays inside the namespace. Returns the exit code, or None to run
    here (not root, no unshare/ip, FIREFOX_TEST_NETNS=0, or already inside).
    """
    if os.environ.get("FIREFOX_TEST_NETNS") in ("0", "inside"):
        return None
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        log("not root (or no unshare/ip): running in the host network namespace; Firefox's ICE "
            "candidates will be the machine's own addresses")
        return None
    probe = subprocess.run(["unshare", "--net", "--", "sh", "-c", NETNS_SETUP],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        log(f"cannot set up a private network namespace ({probe.stderr.strip()}); running here")
        return None
    log(f"running in a private network namespace (lo, veth {NETNS_ADDR})")
    env = dict(os.environ, FIREFOX_TEST_NETNS="inside")
    script = os.path.abspath(__file__)
    try:
        return subprocess.run(["unshare", "--net", "--", "sh", "-c", NETNS_SETUP + ' && exec "$@"', "sh",
                               sys.executable, script], env=env, timeout=3 * RUN_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        log(f"FAIL: the namespaced run did not finish within {3 * RUN_TIMEOUT_S} s")
        return FAIL


def main():
    try:
        from marionette_driver.marionette import Marionette  # noqa: F401 - checked here, used in run()
    except ImportError as e:
        log(f"SKIP: marionette_driver is not importable ({e}); "
            "pip install -r tests/browser/firefox-requirements.txt in target/firefox-venv")
        return SKIP
    firefox = os.environ.get("FIREFOX_BIN") or shutil.which("firefox-esr")
    if not firefox or not os.access(firefox, os.X_OK):
        log(f"SKIP: no firefox-esr ({firefox or 'not on PATH'}); apt-get install firefox-esr, or set FIREFOX_BIN")
        return SKIP
    fieldcast = os.environ.get("FIELDCAST_BIN") or os.path.join(REPO, "target", "release", "fieldcast")
    if not os.access(fieldcast, os.X_OK):
        log(f"FAIL: no fieldcast binary at {fieldcast} (cargo build --release, or set FIELDCAST_BIN)")
        return FAIL
    code = in_private_netns()
    if code is not None:
        return code

    runs = [("no-h264", None)]
    skipped = 0
    plugin = os.environ.get("FIREFOX_OPENH264_GMP")
    if plugin:
        runs.append(("h264", plugin))
    elif ctypes.util.find_library("avcodec"):
        runs.append(("h264", "stub"))
    else:
        log("SKIP h264 run: no system libavcodec (Firefox's FFmpeg decoder) and no FIREFOX_OPENH264_GMP plugin")
        skipped += 1
    only = os.environ.get("FIREFOX_TEST_MODE")
    if only:
        runs = [r for r in runs if r[0] == only]
    results = [(mode, source, run(firefox, fieldcast, mode, source)) for mode, source in runs]
    failed = [r for r in results if r[2] != PASS]
    summary = ", ".join(f"{m}{'' if not s else f' ({s})'}: {'pass' if c == PASS else 'FAIL'}" for m, s, c in results)
    log(f"summary: {summary or 'nothing ran'}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed"
          + (f", {skipped} skipped" if skipped else ""), flush=True)
    if not results:
        return SKIP
    return FAIL if failed else PASS


def run(firefox, fieldcast, mode, gmp_source):
    """One Firefox and one fieldcast; asserts `mode` ("no-h264" or "h264"). Returns PASS/FAIL."""
    from marionette_driver.marionette import Marionette

    work = tempfile.mkdtemp(prefix="fieldcast-firefox-")
    fc_log_path = os.path.join(work, "fieldcast.log")
    ff_log_path = os.path.join(work, "firefox.log")
    fc = ff = client = None
    outcome = FAIL
    fc_log = open(fc_log_path, "wb")
    # A known admin token in the daemon's own state directory, to read the stream's details.
    state_dir = os.path.join(work, "state")
    os.mkdir(state_dir, 0o700)
    with open(os.path.join(state_dir, "admin-token"), "w") as token_file:
        token_file.write(ADMIN_TOKEN + "\n")
    ff_log = open(ff_log_path, "wb")

    def on_alarm(signum, frame):
        raise Failure(f"this run did not finish within {RUN_TIMEOUT_S} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(RUN_TIMEOUT_S)
    try:
        version = subprocess.run([firefox, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        log(f"=== {version}; mode {mode}; OpenH264 GMP: {gmp_source or 'none'}; work dir {work}")

        # fieldcast on a free loopback port.
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        fc = subprocess.Popen(
            [fieldcast, "run", "--listen", f"127.0.0.1:{port}", "--pipeline", "test",
             "--audio", "none", "--rtc-addr", "127.0.0.1:0", "--state-dir", state_dir],
            stdin=subprocess.DEVNULL, stdout=fc_log, stderr=subprocess.STDOUT,
            env=dict(os.environ, FIELDCAST_LOG=os.environ.get("FIELDCAST_LOG", "info")),
        )

        def healthy():
            check(fc.poll() is None, "fieldcast kept running", f"exit code {fc.returncode}")
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                return r.status == 200

        wait_for("fieldcast /healthz answering 200", 20, healthy, 0.2)
        log(f"fieldcast healthy at {base}")

        # Firefox, headless, fresh profile, Marionette on a free port.
        profile = os.path.join(work, "profile")
        os.makedirs(profile)
        mport = free_port()
        with open(os.path.join(profile, "user.js"), "w", encoding="utf-8") as f:
            f.write(profile_prefs(mport))
        env = dict(os.environ, MOZ_HEADLESS="1", MOZ_DISABLE_NONLOCAL_CONNECTIONS="1",
                   MOZ_CRASHREPORTER_DISABLE="1", MOZ_CRASHREPORTER="0")
        env.pop("MOZ_GMP_PATH", None)
        if gmp_source:
            # Registers OpenH264 the way a system package would (Fedora's mozilla-openh264 does
            # the same): MOZ_GMP_PATH names the plugin's version directory.
            version_dir = install_gmp(work, gmp_source)
            env["MOZ_GMP_PATH"] = version_dir
            with open(os.path.join(profile, "user.js"), "a", encoding="utf-8") as f:
                f.write(f'user_pref("media.gmp-gmpopenh264.version", {json.dumps(os.path.basename(version_dir))});\n')
                f.write('user_pref("media.gmp-gmpopenh264.enabled", true);\n')
                f.write('user_pref("media.gmp-gmpopenh264.provider.enabled", true);\n')
            log(f"OpenH264 GMP ({gmp_source}) registered via MOZ_GMP_PATH={version_dir}")
        ff = subprocess.Popen(
            [firefox, "-headless", "-marionette", "-no-remote", "-profile", profile],
            stdin=subprocess.DEVNULL, stdout=ff_log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        client = Marionette(host="127.0.0.1", port=mport, socket_timeout=90)
        client.start_session(timeout=60)
        client.timeout.script = 60
        client.timeout.page_load = 30
        log(f"Marionette session with Firefox {client.session_capabilities.get('browserVersion')}")

        client.navigate(f"{base}/healthz")
        caps = client.execute_script(JS_CAPABILITIES)
        log(f"RTCRtpReceiver video codecs: {caps}")
        check(caps is not None, "RTCRtpReceiver.getCapabilities('video') answered")
        has_h264 = any(c.lower().startswith("video/h264") for c in caps)
        check(any(c.lower().startswith("video/vp8") for c in caps), "Firefox's WebRTC offers VP8 at all", caps)

        own = client.execute_async_script(JS_OWN_SESSION, script_args=[int(MEASURE_S * 1000)], script_timeout=90_000)
        offered, codec_lines = video_codecs_in_order(own.get("offer") or "")
        log("Firefox's offer, video codec lines:\n    " + "\n    ".join(codec_lines))
        log(f"fieldcast answered {own.get('status')} {own.get('contentType')} location={own.get('location')}")
        if own.get("status") != 201:
            log(f"answer body: {own.get('body')}")
        check(not own.get("error"), "our own WHEP session ran without a script error", own.get("error"))
        # Firefox gathers host candidates on non-loopback interfaces only, whatever
        # media.peerconnection.ice.loopback/force_interface say (see in_private_netns).
        candidates = re.findall(r"^a=candidate:\S+ \d+ (\S+) \d+ (\S+) ", own.get("offer") or "", re.M)
        log(f"offer's ICE candidates (transport, address): {candidates}")
        check(all(t.upper() == "UDP" for t, _ in candidates), "no TCP candidates in Firefox's offer", candidates)
        if os.environ.get("FIREFOX_TEST_NETNS") == "inside":
            check(candidates and all(addr == NETNS_ADDR for _, addr in candidates),
                  f"Firefox's candidates are the namespace's {NETNS_ADDR} only", candidates)

        if mode == "no-h264":
            check(not has_h264, "no video/H264 in getCapabilities without the OpenH264 plugin "
                  "(behaviour changed: Firefox now decodes H.264 over WebRTC without it; "
                  "assert playback instead)", caps)
            check("H264" not in offered, "no H264 in Firefox's offer without the OpenH264 plugin", offered)
            check(own.get("status") == 400, "fieldcast answers an offer without H.264 with 400", own.get("status"))
            check((own.get("contentType") or "").startswith("application/problem+json"),
                  "the 400 is application/problem+json", own.get("contentType"))
            check(own.get("location") is None, "no Location (no session) for a refused offer", own.get("location"))
            problem = json.loads(own.get("body") or "null")
            expected = {"type": "about:blank", "title": "Bad request", "status": 400,
                        "detail": NO_H264_DETAIL.format(", ".join(offered))}
            check(problem == expected, f"the problem body is exactly {expected!r}", problem)
            status = http_get_json(f"{base}/api/status")
            check(status.get("viewer_count") == 0, "no viewer after the refused offer", status.get("viewer_count"))

            # The viewer page: no picture, no viewer, and words about H.264.
            client.navigate(f"{base}/")
            seen = {}

            def explains():
                seen.update(client.execute_script(JS_PAGE_VIEW))
                return "cannot play" in seen["text"] and "cannot decode H.264" in seen["text"]

            wait_for("the viewer page saying 'cannot play' and why (it cannot decode H.264)", 20, explains, 0.5)
            time.sleep(2)  # long enough for a wrong page to start playing or retrying
            seen.update(client.execute_script(JS_PAGE_VIEW))
            log(f"viewer page text: {seen['text']!r}")
            check((seen.get("totalVideoFrames") or 0) == 0 and (seen.get("readyState") or 0) < 2,
                  "the viewer page shows no picture", {k: seen.get(k) for k in ("readyState", "totalVideoFrames")})
            status = http_get_json(f"{base}/api/status")
            check(status.get("viewer_count") == 0, "no viewer session from the page", status.get("viewer_count"))
        else:
            check(has_h264, "video/H264 in getCapabilities with the OpenH264 plugin installed", caps)
            check("H264" in offered, "H264 in Firefox's offer", offered)
            check(own.get("status") == 201, "fieldcast answers 201 with an SDP answer", (own.get("status"), own.get("body")))
            theirs = re.findall(r"^a=candidate:\S+ \d+ (\S+) \d+ (\S+) ", own.get("body") or "", re.M)
            log(f"answer's ICE candidates (transport, address): {theirs}")
            check(theirs and all(addr == "127.0.0.1" for _, addr in theirs),
                  "fieldcast's answer offers ICE candidates on 127.0.0.1 only", theirs)
            answered, answer_lines = video_codecs_in_order(own.get("body") or "")
            log("fieldcast's answer, video codec lines:\n    " + "\n    ".join(answer_lines))
            check(answered[:1] == ["H264"], "the answer's video section leads with H264", answered)
            check(any("packetization-mode=1" in l for l in answer_lines), "answer has packetization-mode=1", answer_lines)
            check(own.get("connected") is True, "RTCPeerConnection reached 'connected'", own.get("connectionState"))
            check(own.get("firstFrame") is True, "a first frame decoded within 15 s", own.get("beforeFirstFrame"))
            end = own.get("end") or {}
            log(f"own session: first frame after {own.get('firstFrameMs')} ms; over {fmt(own.get('seconds'))} s "
                f"decoded {fmt(own.get('decodedFps'))} fps, <video> frame callbacks {fmt(own.get('frameCallbackFps'))} fps "
                f"(getVideoPlaybackQuality: {fmt(own.get('playbackFps'))} fps); codec {end.get('codec')} {end.get('fmtp')}; "
                f"{end.get('frameWidth')}x{end.get('frameHeight')}")
            check((end.get("codec") or "").lower() == "video/h264", "inbound-rtp codec is video/H264", end.get("codec"))
            check((end.get("frameWidth"), end.get("frameHeight")) == (1280, 720), "decoded frames are 1280x720",
                  (end.get("frameWidth"), end.get("frameHeight")))
            # Against the source's rate over the end of the same window (a busy machine slows
            # the encoder, and a browser can only decode what was sent).
            source_fps = admin_status(base)["stream"]["fps"]
            log(f"the source's rate over the last 2 s: {source_fps} fps")
            check(source_fps > 20, f"the test pipeline produces about {EXPECTED_FPS:.0f} fps", source_fps)
            lo, hi = source_fps * (1 - FPS_TOLERANCE), source_fps * (1 + FPS_TOLERANCE)
            check(own.get("decodedFps") is not None and lo <= own["decodedFps"] <= hi, f"framesDecoded rate within {lo:.0f}-{hi:.0f} fps", own["decodedFps"])
            check(own.get("frameCallbackFps") is not None and lo <= own["frameCallbackFps"] <= hi,
                  f"<video> requestVideoFrameCallback rate within {lo:.0f}-{hi:.0f} fps", own.get("frameCallbackFps"))

            # The viewer page's own player.
            client.navigate(f"{base}/")
            seen = {}

            def page_plays():
                seen.update(client.execute_script(JS_PAGE_VIEW))
                return (seen["readyState"] or 0) >= 2 and (seen["videoSize"] or [0])[0] > 0

            wait_for("the viewer page's <video> showing a picture (readyState >= 2, videoWidth > 0)", 20, page_plays, 0.25)
            made_before = admin_status(base)["stream"]["frames"]
            started = time.monotonic()
            page = client.execute_async_script(JS_PAGE_FPS, script_args=[int(MEASURE_S * 1000)], script_timeout=30_000)
            made = admin_status(base)["stream"]["frames"] - made_before
            source_fps = made / (time.monotonic() - started)
            log(f"the source made {made} frames over the page's measurement ({source_fps:.1f} fps)")
            lo, hi = source_fps * (1 - FPS_TOLERANCE), source_fps * (1 + FPS_TOLERANCE)
            b = client.execute_script(JS_PAGE_VIEW)
            log(f"viewer page: {fmt(page.get('fps'))} fps (requestVideoFrameCallback) over {fmt(page.get('seconds'))} s, "
                f"video {b['videoSize']}, text {b['text']!r}")
            check(page.get("fps") is not None and lo <= page["fps"] <= hi,
                  f"viewer page's <video> presents {lo:.0f}-{hi:.0f} fps", page)
            check(b["videoSize"] == [1280, 720], "viewer page video is 1280x720", b["videoSize"])
            status = http_get_json(f"{base}/api/status")
            check(status.get("viewer_count") == 1, "the page is fieldcast's one viewer", status.get("viewer_count"))

        ff_log.flush()
        with open(ff_log_path, "rb") as f:
            nonlocal_lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if NONLOCAL_MARK in l]
        check(not nonlocal_lines, "Firefox attempted no connection outside loopback", nonlocal_lines)
        log(f"PASS ({mode}, OpenH264 GMP: {gmp_source or 'none'})")
        outcome = PASS
        return PASS
    except Failure as e:
        log(f"FAIL: {e}")
        return FAIL
    except Exception as e:  # noqa: BLE001 - any other error is a failure with its reason
        log(f"FAIL: {type(e).__name__}: {e}")
        return FAIL
    finally:
        signal.alarm(0)
        if client is not None:
            try:
                client.delete_session()
            except Exception:  # noqa: BLE001 - Firefox is killed below anyway
                pass
        if ff is not None:
            try:
                os.killpg(ff.pid, signal.SIGKILL)  # Firefox and its content processes
            except ProcessLookupError:
                pass
            try:
                ff.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log("firefox did not exit after SIGKILL within 10 s")
        if fc is not None:
            fc.terminate()
            try:
                fc.wait(timeout=6)
            except subprocess.TimeoutExpired:
                fc.kill()
                fc.wait(timeout=5)
        fc_log.close()
        ff_log.close()
        with open(ff_log_path, "rb") as f:
            ff_text = f.read().decode("utf-8", "replace")
        if NONLOCAL_MARK in ff_text:
            log("firefox log shows a non-local connection attempt:\n" +
                "\n".join(l for l in ff_text.splitlines() if NONLOCAL_MARK in l))
        if outcome != PASS:
            for name, path in (("fieldcast", fc_log_path), ("firefox", ff_log_path)):
                with open(path, "rb") as f:
                    lines = [l for l in f.read().decode("utf-8", "replace").splitlines()
                             if "Exiting due to channel error" not in l]
                log(f"last lines of the {name} log:\n    " + "\n    ".join(lines[-30:]))
        if os.environ.get("FIREFOX_TEST_KEEP") == "1":
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
