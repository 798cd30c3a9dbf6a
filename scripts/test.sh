#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, then the headless-Chromium tests against
# the release binary. Needs no camera, display or internet.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/install-deps.sh" --test
cargo build --release --locked
cargo test --release --locked -- --test-threads=2
(cd tests/browser && FIELDCAST_BIN="$PWD/../../target/release/fieldcast" npm test)
# Firefox as a second engine: what it offers without OpenH264, and that it plays with it.
target/firefox-venv/bin/python tests/browser/firefox_plays.py
PATH="$PWD/target/test-venv/bin:$PATH" tests/api/schemathesis.sh 40
# The systemd unit: systemd-analyze verify, and its security exposure at most 2.0.
bash tests/package/unit.sh
# Viewers behind real NATs (network namespaces, iptables, coturn): needs root.
if [[ $(id -u) -eq 0 ]]; then
  NAT_PYTHON="$PWD/target/test-venv/bin/python" python3 tests/nat/run.py
  # The .deb, installed with apt into a clean Debian 12 (debootstrap), then booted there.
  bash tests/package/run.sh
else
  echo "SKIPPED: tests/nat/run.py needs root for network namespaces"
  echo "SKIPPED: tests/package/run.sh needs root for debootstrap and systemd-nspawn"
fi
