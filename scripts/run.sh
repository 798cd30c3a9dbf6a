#!/usr/bin/env bash
# Installs what fieldcast needs, builds it, and runs it. Arguments go to fieldcast, e.g.
#   ./scripts/run.sh --pipeline test --listen 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
exec ./target/release/fieldcast "$@"
