#!/usr/bin/env bash
# The arm64 package under emulation (root): builds it with scripts/build-arm64.sh, installs it
# with apt into a clean Debian 12 arm64 root (the base of 64-bit Raspberry Pi OS) and runs it
# there through qemu-user: `fieldcast check`, the Pi camera presets, the arm64 unit tests, then
# the daemon in a network namespace of its own streaming a small test picture to aiortc viewers
# on this machine, /api/status, /metrics, and a clean exit on SIGTERM.
#
# Caches (target/arm64/): the compiler root, the bare bookworm arm64 root as a tarball, and the
# downloaded .debs, so a second run pays only for apt's unpacking under emulation.
# Environment: MIRROR (default: this machine's Debian mirror), KEEP_ROOT=1 (leave
# target/arm64/pi-root in place), PYTHON (with aiortc; default: target/test-venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=scripts/lib/chroot.sh
source scripts/lib/chroot.sh

[[ $(id -u) -eq 0 ]] || { echo "tests/arm64/run.sh needs root (debootstrap, chroot, ip netns)" >&2; exit 1; }
MIRROR=${MIRROR:-$(default_mirror)}
PYTHON=${PYTHON:-$repo/target/test-venv/bin/python}
work=$repo/target/arm64
root=$work/pi-root
apt_cache=$work/apt-cache
ns=fc-arm64-$$
host_ip=10.213.64.1
pi_ip=10.213.64.2
port=8080
daemon=

# shellcheck source=tests/support/tap.sh
source tests/support/tap.sh

cleanup() {
  [[ -n $daemon ]] && kill -KILL "$daemon" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  ip link del "veth-$$" 2>/dev/null || true
  release_root "$root"
}
trap cleanup EXIT

# in_root SECONDS COMMAND...: COMMAND in the arm64 root, with a clean environment. GStreamer
# does not fork to scan its plugins: a forked scanner under qemu-user is slow and fragile.
in_root() {
  local limit=$1
  shift
  run_in_root "$root" "$limit" GST_REGISTRY_FORK=no "$@"
}

# 1. the package
step "scripts/build-arm64.sh --tests"
t0=$SECONDS
deb=$(timeout 3600 scripts/build-arm64.sh --tests | tail -n 1) || die "scripts/build-arm64.sh failed"
[[ -f "$deb" ]] || die "scripts/build-arm64.sh printed no .deb path"
ok "built ${deb#"$repo"/} ($(du -k "$deb" | cut -f1) KiB) in $((SECONDS - t0)) s"
expect "the package is for arm64" test "$(dpkg-deb -f "$deb" Architecture)" = arm64

# 2. a clean bookworm arm64 root, and apt installs the package there with its dependencies
step "a clean bookworm arm64 root"
unpack_root "$work/bookworm-arm64-base.tar" "$root" || die "cannot unpack the bookworm arm64 root"
apt_sources "$root" "$MIRROR" bookworm bookworm-updates
mkdir -p "$apt_cache"
mount --bind "$apt_cache" "$root/var/cache/apt/archives"
cp "$deb" "$root/tmp/"
deb_name=$(basename "$deb")
in_root 900 apt-get update -q >"$work/pi-root-apt.log" 2>&1 || die "apt-get update in the root failed ($work/pi-root-apt.log)"
step "apt-get install ./$deb_name (under qemu-user)"
t0=$SECONDS
if in_root 2400 sh -c "cd /tmp && apt-get install -y -q ./$deb_name" >>"$work/pi-root-apt.log" 2>&1; then
  ok "apt-get install ./$deb_name ($((SECONDS - t0)) s; log in target/arm64/pi-root-apt.log)"
else
  tail -n 20 "$work/pi-root-apt.log" | sed 's/^/#   /'
  die "apt-get install ./$deb_name failed"
fi
# e_machine 183: AArch64
expect "the installed fieldcast is an arm64 program" test "$(od -An -tu2 -j18 -N2 "$root/usr/bin/fieldcast" | tr -d ' ')" = 183
version=$(in_root 60 fieldcast --version 2>&1) || true
expect "fieldcast --version under emulation: $version" grep -q '^fieldcast [0-9]' <<<"$version"

# 3. fieldcast check, as the service's user
step "fieldcast check --pipeline test (as user fieldcast)"
check_cmd=(fieldcast check --pipeline test --audio none --listen 127.0.0.1:0 --rtc-addr 127.0.0.1:0)
if check=$(in_root 300 setpriv --reuid fieldcast --regid fieldcast --init-groups -- "${check_cmd[@]}" 2>&1); then
  ok "fieldcast check passed in the arm64 root"
else
  not_ok "fieldcast check failed in the arm64 root"
fi
grep -E '^(ok|FAIL|warn)' <<<"$check" | sed 's/^/#   /'

# 4. the Pi camera presets, against Debian's arm64 GStreamer. There is no camera here and
# v4l2h264enc exists only where the Pi's encoder device does: each preset must get exactly as
# far as the missing hardware lets it.
step "the Pi camera presets"
pi5=$(in_root 300 "${check_cmd[@]/test/rpi5-csi}" 2>&1) || true
expect "rpi5-csi: every element is made (libcamerasrc, x264enc), and only the camera is missing" \
  grep -q 'FAIL build .*libcamerasrc.*\(camera\|Camera\)' <<<"$pi5"
grep -E '^(ok|FAIL)' <<<"$pi5" | sed 's/^/#   /'
pi4=$(in_root 300 "${check_cmd[@]/test/rpi-csi}" 2>&1) || true
expect "rpi-csi: refused for want of the Pi 4 encoder (v4l2h264enc), not for its text" \
  grep -q 'FAIL pipeline .*v4l2h264enc' <<<"$pi4"
grep -E '^(ok|FAIL)' <<<"$pi4" | sed 's/^/#   /'

# 5. the unit tests, built for arm64, in the same root
step "arm64 unit tests under qemu-user"
mkdir -p "$root/src"
mount --bind "$repo" "$root/src"
mount -o remount,bind,ro "$root/src"
if units=$(in_root 900 sh -c 'cd /src && target/arm64/unit-tests --test-threads=2' 2>&1); then
  ok "arm64 unit tests: $(grep '^test result' <<<"$units")"
else
  grep -E 'panicked|FAILED|^test result|error' <<<"$units" | head -n 20 | sed 's/^/#   /'
  not_ok "arm64 unit tests failed"
fi
umount "$root/src"

# 6. the daemon, in a network namespace of its own, watched from this machine
step "the daemon in network namespace $ns ($pi_ip), viewers on $host_ip"
ip netns add "$ns"
ip link add "veth-$$" type veth peer name eth0 netns "$ns"
ip addr add "$host_ip/30" dev "veth-$$"
ip link set "veth-$$" up
ip -n "$ns" addr add "$pi_ip/30" dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set lo up
mkdir -p "$root/var/lib/fieldcast"
in_root 30 chown fieldcast:fieldcast /var/lib/fieldcast
# 320x240 at 15 fps in software: emulation is slow.
small='videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1,format=I420 ! {encoder} ! {rtp}'
ip netns exec "$ns" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  GST_REGISTRY_FORK=no RUST_LOG=info \
  setpriv --reuid fieldcast --regid fieldcast --init-groups -- \
  fieldcast run --pipeline "$small" --audio none --video-bitrate 300 --title "arm64" \
  --listen "0.0.0.0:$port" --state-dir /var/lib/fieldcast >"$work/daemon.log" 2>&1 &
daemon=$!
base="http://$pi_ip:$port"
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "$base/healthz" && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 1
done
if ! curl -sf -o /dev/null "$base/healthz"; then
  tail -n 20 "$work/daemon.log" | sed 's/^/#   /'
  die "the daemon did not become healthy within 120 s ($work/daemon.log)"
fi
ok "the daemon is up and healthy under emulation ($((SECONDS - started)) s into the run)"
token=$(cat "$root/var/lib/fieldcast/admin-token")
status=$(curl -sf "$base/api/status") || status=
expect "/api/status is live at 320x240: $status" python3 -c '
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s["live"] and s["width"] == 320 and s["height"] == 240 else 1)' "$status"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")
expect "/metrics without the admin token: 401 ($code)" test "$code" = 401
metrics=$(curl -sf -H "Authorization: Bearer $token" "$base/metrics") || metrics=
expect "/metrics with the admin token has the stream counters" grep -q '^fieldcast_' <<<"$metrics"

# The daemon's CPU (the qemu process running it) over a window, in % of one core.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)
# watch N: N aiortc viewers at once, each wanting 90 frames (6 s at 15 fps); prints the CPU %.
watch() {
  local n=$1 i t0 c0 rc=0
  t0=$(date +%s.%N)
  c0=$(cpu_ticks)
  local pids=()
  for i in $(seq 1 "$n"); do
    "$PYTHON" tests/nat/viewer.py "$base" --frames 90 --seconds 60 >"$work/viewer-$n-$i.json" 2>"$work/viewer-$n-$i.log" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  python3 -c 'import sys; c, c0, hz, t, t0 = map(float, sys.argv[1:]); print(round(100 * (c - c0) / hz / (t - t0), 1))' \
    "$(cpu_ticks)" "$c0" "$hz" "$(date +%s.%N)" "$t0"
  return $rc
}
idle_c0=$(cpu_ticks)
sleep 10
idle=$(python3 -c 'import sys; print(round(100 * (float(sys.argv[1]) - float(sys.argv[2])) / float(sys.argv[3]) / 10, 1))' "$(cpu_ticks)" "$idle_c0" "$hz")
step "the daemon idle (encoding, no viewer): $idle % of a core"
frames_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames"])' "$1" 2>/dev/null || echo 0; }
if cpu1=$(watch 1); then
  ok "an amd64 aiortc viewer decoded $(frames_of "$work/viewer-1-1.json") frames from the arm64 daemon ($cpu1 % of a core while watching)"
else
  sed 's/^/#   /' "$work/viewer-1-1.log" | tail -n 5
  not_ok "the aiortc viewer did not decode 90 frames: $(cat "$work/viewer-1-1.json" 2>/dev/null)"
fi
if cpu5=$(watch 5); then
  ok "5 aiortc viewers at once each decoded 90 frames ($cpu5 % of a core)"
else
  not_ok "not all of 5 aiortc viewers decoded 90 frames: $(for f in "$work"/viewer-5-*.json; do frames_of "$f"; done | tr '\n' ' ')"
fi
echo "# emulated daemon CPU (qemu-user on this amd64 machine, a sanity figure only): idle ${idle} %, 1 viewer ${cpu1:-?} %, 5 viewers ${cpu5:-?} % of a core"
python3 -c 'import sys; i, a, b = map(float, sys.argv[1:]); print(f"# per viewer: {a - i:.1f} % with 1, {(b - i) / 5:.1f} % each with 5")' "$idle" "${cpu1:-0}" "${cpu5:-0}"

# 7. SIGTERM: a clean stop within 15 s, exit status 0
step "SIGTERM"
kill -TERM "$daemon"
for _ in $(seq 1 150); do
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$daemon" 2>/dev/null; then
  not_ok "the daemon was still running 15 s after SIGTERM"
else
  wait "$daemon" && rc=0 || rc=$?
  daemon=
  expect "the daemon stopped cleanly on SIGTERM (exit status $rc)" test "$rc" = 0
fi

step "done"
echo "$pass passed, $fail failed"
((fail == 0))
