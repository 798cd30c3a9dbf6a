#!/usr/bin/env bash
# Installs what fieldcast needs to build and run on Debian 12 / Raspberry Pi OS (bookworm).
# With --test, also what the test suite needs (headless Chromium, Node test packages).
set -euo pipefail

packages=(
  build-essential pkg-config curl ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  gstreamer1.0-alsa gstreamer1.0-x fonts-dejavu-core
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(chromium firefox-esr python3-venv coturn iptables iproute2 systemd)
  # Engines the publish tests feed (tests/publish/): Janus, nginx with RTMP, ffprobe.
  packages+=(janus nginx libnginx-mod-rtmp ffmpeg)
  # Node may already come from elsewhere than Debian (e.g. NodeSource); use it if so.
  command -v npm >/dev/null || packages+=(nodejs npm)
fi

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    # Debian's own rustc is too old for fieldcast; rustup installs the current stable.
    echo "Installing Rust with rustup (https://rustup.rs) for $(id -un)..." >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if [[ "${1:-}" == "--test" ]]; then
  (cd "$(dirname "$0")/../tests/browser" && npm ci --no-audit --no-fund)
  # Python test tools (schemathesis, aiortc) in a virtualenv of their own, pinned.
  venv="$(dirname "$0")/../target/test-venv"
  if [[ ! -x "$venv/bin/schemathesis" ]] || ! "$venv/bin/python" -c "import aiortc, aiohttp" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$(dirname "$0")/../tests/requirements.txt"
  fi
  # marionette_driver, to drive Firefox, in its own (its pins differ from the tools above).
  venv="$(dirname "$0")/../target/firefox-venv"
  if ! "$venv/bin/python" -c "import marionette_driver" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$(dirname "$0")/../tests/browser/firefox-requirements.txt"
  fi
fi
