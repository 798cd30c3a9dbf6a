#!/usr/bin/env bash
# Quick checks of systemd/fieldcast.service (seconds, no root needed, CI-friendly):
#   - `systemd-analyze verify` has nothing to say about it;
#   - `systemd-analyze security --offline` rates its exposure at most MAX_EXPOSURE;
#   - the settings the daemon relies on are there (notify + watchdog, its own user).
# Usage: tests/package/unit.sh [UNIT_FILE]   (default: systemd/fieldcast.service)
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_EXPOSURE=2.0
unit=${1:-systemd/fieldcast.service}
name=$(basename "$unit")
pass=0
fail=0
say() { printf '%s\n' "$*"; }
ok() {
  say "ok - $*"
  pass=$((pass + 1))
}
not_ok() {
  say "not ok - $*"
  fail=$((fail + 1))
}

command -v systemd-analyze >/dev/null || {
  say "systemd-analyze is missing (apt-get install systemd)"
  exit 1
}

# verify resolves ExecStart= and the targets the unit names, so it runs against a small
# root holding the unit where the package puts it, the binary at /usr/bin/fieldcast (the
# release build when there is one, else a stand-in: only its presence is checked) and this
# machine's own target units.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$unit" "$root/usr/lib/systemd/system/fieldcast.service"
if [[ -x target/release/fieldcast ]]; then
  cp target/release/fieldcast "$root/usr/bin/fieldcast"
else
  printf '#!/bin/sh\n' >"$root/usr/bin/fieldcast"
  chmod 755 "$root/usr/bin/fieldcast"
fi
verify=$(timeout 60 systemd-analyze verify --man=no --root="$root" fieldcast.service 2>&1) || true
if [[ -z "$verify" ]]; then
  ok "systemd-analyze verify $name: clean"
else
  not_ok "systemd-analyze verify $name:"
  say "$verify" | sed 's/^/#   /'
fi

security=$(timeout 60 systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || true
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$security")
if [[ -z "$exposure" ]]; then
  not_ok "systemd-analyze security gave no exposure level:"
  say "$security" | tail -n 20 | sed 's/^/#   /'
elif awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
  ok "security exposure $exposure <= $MAX_EXPOSURE"
else
  not_ok "security exposure $exposure > $MAX_EXPOSURE; what counts against it:"
  grep '✗' <<<"$security" | sed 's/^/#   /'
fi

# What the daemon and the package depend on; a unit edited without them still verifies.
for line in Type=notify NotifyAccess=main WatchdogSec=30s Restart=on-failure \
  User=fieldcast 'SupplementaryGroups=video audio' 'ExecStart=/usr/bin/fieldcast run' \
  DevicePolicy=closed 'DeviceAllow=char-video4linux rw' 'DeviceAllow=char-alsa rw' \
  MemoryDenyWriteExecute=yes CapabilityBoundingSet= \
  'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK'; do
  if grep -qxF "$line" "$unit"; then
    ok "$line"
  else
    not_ok "$name lacks the line $line"
  fi
done

say "# exposure: ${exposure:-unknown}"
say "$pass passed, $fail failed"
((fail == 0))
