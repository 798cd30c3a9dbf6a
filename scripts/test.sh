#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, then the headless-Chromium tests against
# the release binary. Needs no camera, display or internet.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/install-deps.sh" --test
cargo build --release --locked
cargo test --release --locked --workspace -- --test-threads=2
(cd tests/browser && FIELDCAST_BIN="$PWD/../../target/release/fieldcast" npm test)
# Latency must not creep: the soak for one minute (20 load viewers + a page), first vs last 20 s;
# without sound, whose audio/video sync in Chromium moves the figure by tens of ms run to run.
node bench/soak.mjs --minutes 1 --window 20 --no-audio --out target/bench/soak-ci
# Firefox as a second engine: what it offers without OpenH264, and that it plays with it.
target/firefox-venv/bin/python tests/browser/firefox_plays.py
PATH="$PWD/target/test-venv/bin:$PATH" tests/api/schemathesis.sh 40
# The same encode to real engines on this machine: Janus (rtp, srtp), an aiortc WHIP ingest,
# nginx-rtmp (ffprobe), each stopped and started again under a watching viewer.
target/test-venv/bin/python tests/publish/run.py
# The systemd unit: systemd-analyze verify, and its security exposure at most 2.0.
bash tests/package/unit.sh
# Viewers behind real NATs (network namespaces, iptables, coturn): needs root.
if [[ $(id -u) -eq 0 ]]; then
  NAT_PYTHON="$PWD/target/test-venv/bin/python" python3 tests/nat/run.py
  # aiortc and Chromium viewers at 5 % random loss keep playing; a clean viewer beside them.
  NAT_PYTHON="$PWD/target/test-venv/bin/python" python3 tests/loss/run.py
  # The .deb, installed with apt into a clean Debian 12 (debootstrap), then booted there.
  bash tests/package/run.sh
  # The arm64 package, cross-built, installed and run in a bookworm arm64 root under qemu-user.
  bash tests/arm64/run.sh
else
  echo "SKIPPED: tests/nat/run.py needs root for network namespaces"
  echo "SKIPPED: tests/loss/run.py needs root for network namespaces"
  echo "SKIPPED: tests/package/run.sh needs root for debootstrap and systemd-nspawn"
  echo "SKIPPED: tests/arm64/run.sh needs root for debootstrap, chroot and network namespaces"
fi
