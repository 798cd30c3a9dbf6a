#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each) from the committed
# corpus, which grows with what libFuzzer finds. Usage: scripts/fuzz.sh [SECONDS]
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain use them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in offer sdpfrag rtp rtcp; do
  echo "== $target: ${seconds}s"
  cargo fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)|ERROR|panicked|SUMMARY" || true
  if compgen -G "artifacts/$target/crash-*" >/dev/null; then
    echo "$target: crash found, see fuzz/artifacts/$target/"
    exit 1
  fi
done
