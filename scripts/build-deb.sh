#!/usr/bin/env bash
# Builds the Debian package for this machine's architecture (amd64 here, arm64 on a Pi) and
# prints its path as the last line of output. Run ./scripts/install-deps.sh first on a new
# machine. The packaging itself is [package.metadata.deb] in Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# Pinned, so that every machine builds the same package layout and maintainer scripts.
CARGO_DEB_VERSION=3.8.0

if [[ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]]; then
  echo "installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked >&2
fi
# dpkg-shlibdeps (dpkg-dev) works out the shared-library dependencies ($auto).
if ! command -v dpkg-shlibdeps >/dev/null; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get install -y -q --no-install-recommends dpkg-dev >&2
fi

cargo build --release --locked >&2
# --no-build: package exactly the binary just built (and stripped by cargo-deb).
deb=$(cargo deb --no-build --locked | tail -n 1)
[[ -f "$deb" ]] || { echo "cargo deb did not report a .deb (got: $deb)" >&2; exit 1; }
echo "$deb"
