#!/usr/bin/env bash
# The Debian package end to end (root): build it, check its unit, install it with apt into a
# clean Debian 12 (debootstrap --variant=minbase) and run `fieldcast check` there as the
# fieldcast user, purge it; then install it again beside systemd and boot that root with
# systemd-nspawn to run the service as packaged. Needs Debian's archive (the mirror this
# machine's apt uses). About 2 minutes the first time, 1.5 minutes after (plus cargo build).
#
# The bare Debian root is cached in target/package-root-base.tar and the downloaded .debs in
# target/package-apt-cache/, so only the first run pays for debootstrap and downloads.
# Environment: MIRROR (default: this machine's Debian mirror), KEEP_ROOT=1 (leave
# target/package-root in place to look around), SKIP_BOOT=1 (no systemd-nspawn stage).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

[[ $(id -u) -eq 0 ]] || { echo "tests/package/run.sh needs root (debootstrap, chroot)" >&2; exit 1; }

SUITE=bookworm
base_tar=$repo/target/package-root-base.tar
apt_cache=$repo/target/package-apt-cache
root=$repo/target/package-root

# shellcheck source=tests/support/tap.sh
source tests/support/tap.sh

# shellcheck source=scripts/lib/chroot.sh
source scripts/lib/chroot.sh
MIRROR=${MIRROR:-$(default_mirror)}

trap 'release_root "$root"' EXIT

# in_root SECONDS COMMAND...: COMMAND in the clean root, with a clean environment.
in_root() { run_in_root "$root" "$@"; }

# 1. the package
step "building the package"
deb=$(timeout 2400 scripts/build-deb.sh | tail -n 1) || die "scripts/build-deb.sh failed"
[[ -f "$deb" ]] || die "scripts/build-deb.sh printed no .deb path"
ok "built $deb"

# 2. the unit as the package ships it
step "checking the packaged unit"
extracted=$(mktemp -d)
dpkg-deb -x "$deb" "$extracted"
if timeout 120 tests/package/unit.sh "$extracted/usr/lib/systemd/system/fieldcast.service" | sed 's/^/#   /'; then
  ok "tests/package/unit.sh on the packaged unit"
else
  not_ok "tests/package/unit.sh on the packaged unit (output above)"
fi
rm -rf "$extracted"

# 3. a clean Debian 12, made once
if [[ ! -s "$base_tar" ]]; then
  step "debootstrap --variant=minbase $SUITE from $MIRROR (first run only)"
  debootstrap_cached "$base_tar" "$repo/target/debootstrap.log" amd64 "$SUITE" "$MIRROR" || die "no $SUITE root"
  ok "debootstrap $SUITE root cached in ${base_tar#"$repo"/}"
fi
step "unpacking the clean root"
mkdir -p "$apt_cache"
unpack_root "$base_tar" "$root" || die "cannot unpack $base_tar"
mount --bind "$apt_cache" "$root/var/cache/apt/archives"
apt_sources "$root" "$MIRROR" "$SUITE" "$SUITE-updates"
cp "$deb" "$root/tmp/"
deb_name=$(basename "$deb")

# 4. apt installs it, with every dependency, from Debian's archive
step "apt-get update"
in_root 600 apt-get update -q >"$repo/target/package-apt.log" 2>&1 ||
  die "apt-get update in the root failed (target/package-apt.log)"
step "apt-get install ./$deb_name"
t0=$SECONDS
if in_root 1200 sh -c "cd /tmp && apt-get install -y -q ./$deb_name" >>"$repo/target/package-apt.log" 2>&1; then
  ok "apt-get install ./$deb_name ($((SECONDS - t0)) s; log in target/package-apt.log)"
else
  tail -n 20 "$repo/target/package-apt.log" | sed 's/^/#   /'
  die "apt-get install ./$deb_name failed"
fi

# 5. what the package put in place
expect "/usr/bin/fieldcast is installed" test -x "$root/usr/bin/fieldcast"
expect "fieldcast.service is installed" test -f "$root/usr/lib/systemd/system/fieldcast.service"
# shellcheck disable=SC2016 # ${Conffiles} is for dpkg-query
conffiles=$(in_root 30 dpkg-query -W -f='${Conffiles}' fieldcast)
expect "/etc/fieldcast/fieldcast.toml is a conffile" grep -q '/etc/fieldcast/fieldcast.toml' <<<"$conffiles"
modes=$(in_root 30 stat -c '%U:%G %a' /etc/fieldcast /etc/fieldcast/fieldcast.toml | tr '\n' ' ')
expect "settings readable by root and fieldcast only ($modes)" test "$modes" = "root:fieldcast 750 root:fieldcast 640 "
groups=$(in_root 30 id -nG fieldcast 2>&1) || true
expect "user fieldcast exists, in groups: $groups" grep -qw video <<<"$groups"
expect "user fieldcast is in group audio" grep -qw audio <<<"$groups"
shell=$(in_root 30 getent passwd fieldcast | cut -d: -f7)
expect "fieldcast has no login shell ($shell)" test "${shell##*/}" = nologin

# 6. the binary runs, as the service would: the fieldcast user, the installed settings
version=$(in_root 30 fieldcast --version 2>&1) || true
expect "fieldcast --version: $version" grep -q '^fieldcast [0-9]' <<<"$version"
step "fieldcast check --pipeline test --audio none (as user fieldcast)"
# Loopback and port 0 so that nothing else on this machine (a running fieldcast) is in the way.
check_cmd=(fieldcast check --pipeline test --audio none --listen 127.0.0.1:0 --rtc-addr 127.0.0.1:0)
if check=$(in_root 120 runuser -u fieldcast -- "${check_cmd[@]}" 2>&1); then
  ok "fieldcast check passed in the clean root"
else
  not_ok "fieldcast check failed in the clean root"
fi
sed 's/^/#   /' <<<"$check"
expect "the installed settings file is read and valid" grep -q '/etc/fieldcast/fieldcast.toml is valid' <<<"$check"

# 7. it goes away cleanly
step "apt-get purge fieldcast"
if in_root 300 apt-get purge -y -q fieldcast >>"$repo/target/package-apt.log" 2>&1 &&
  [[ ! -e "$root/usr/bin/fieldcast" && ! -e "$root/etc/fieldcast" ]]; then
  ok "apt-get purge removes the binary and /etc/fieldcast"
else
  not_ok "apt-get purge fieldcast left files behind or failed (target/package-apt.log)"
fi

# 8. the unit under systemd itself: the same root, now with systemd, booted in a container.
# It proves what the unit's sandbox allows (MemoryDenyWriteExecute with GStreamer's orc, the
# system-call filter, PrivateUsers with the video/audio groups) and that READY and WATCHDOG
# reach systemd. SKIP_BOOT=1 skips it (e.g. where systemd-nspawn cannot run).
if [[ -n "${SKIP_BOOT:-}" ]]; then
  echo "# SKIP_BOOT is set: the unit was not run under systemd"
  step "done"
  echo "$pass passed, $fail failed"
  ((fail == 0))
  exit
fi
step "installing systemd, then fieldcast again (its user already exists)"
command -v systemd-nspawn >/dev/null || host_install systemd-container ||
  die "cannot install systemd-container (systemd-nspawn)"
in_root 900 apt-get install -y -q --no-install-recommends systemd >>"$repo/target/package-apt.log" 2>&1 ||
  die "apt-get install systemd in the root failed (target/package-apt.log)"
in_root 900 sh -c "cd /tmp && apt-get install -y -q ./$deb_name" >>"$repo/target/package-apt.log" 2>&1 ||
  die "installing $deb_name again after the purge failed (target/package-apt.log)"
# Like any Debian service, installing it enables it (it starts at the next boot here).
if [[ $(in_root 30 systemctl is-enabled fieldcast.service 2>&1) == enabled ]]; then
  ok "installing the package enabled fieldcast.service"
else
  not_ok "fieldcast.service is not enabled after install: $(in_root 30 systemctl is-enabled fieldcast.service 2>&1)"
fi

# The test's only change to the unit: the test pattern, no sound, loopback addresses.
mkdir -p "$root/etc/systemd/system/fieldcast.service.d"
cat >"$root/etc/systemd/system/fieldcast.service.d/test.conf" <<'UNIT'
[Service]
Environment=FIELDCAST_PIPELINE=test FIELDCAST_AUDIO=none FIELDCAST_LISTEN=127.0.0.1:8080 FIELDCAST_RTC_ADDRS=127.0.0.1:0
UNIT
# The packaged unit's sandbox around cat: can it read files of the video and audio groups?
for group in video audio; do
  echo "$group-readable" >"$root/etc/fieldcast-$group-test"
  in_root 30 chown "root:$group" "/etc/fieldcast-$group-test"
  chmod 0640 "$root/etc/fieldcast-$group-test"
done
sed -e 's/^Type=notify/Type=oneshot/' -e '/^NotifyAccess=\|^WatchdogSec=\|^Restart\|^StartLimit/d' \
  -e 's|^ExecStart=.*|ExecStart=/bin/cat /etc/fieldcast-video-test /etc/fieldcast-audio-test|' \
  "$root/usr/lib/systemd/system/fieldcast.service" >"$root/etc/systemd/system/fieldcast-groups-test.service"
cat >"$root/usr/local/bin/fieldcast-probe" <<'PROBE'
#!/bin/bash
# Waits for fieldcast.service, lets it run past WatchdogSec, writes what it saw, powers off.
for _ in $(seq 60); do
  [[ $(systemctl show -p ActiveState --value fieldcast) == active ]] && break
  sleep 1
done
sleep 40
{
  systemctl show -p ActiveState,NRestarts,WatchdogTimestampMonotonic,StatusText fieldcast
  pid=$(systemctl show -p MainPID --value fieldcast)
  echo "Groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$pid/status")"
  grep -E '^(NoNewPrivs|Seccomp|CapEff):' "/proc/$pid/status" | tr -d ' \t' | tr ':' '='
  echo "OrcCode=$(grep -c orcexec "/proc/$pid/maps")"
  exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 &&
    echo "Healthz=$(head -n 1 <&3 | tr -d '\r')"
  echo "Exposure=$(systemd-analyze security --no-pager fieldcast.service 2>&1 |
    sed -n 's/.*Overall exposure level[^:]*: \([0-9.]*\).*/\1/p')"
  systemctl start fieldcast-groups-test.service
  echo "GroupsTest=$(systemctl show -p Result --value fieldcast-groups-test)" \
    "$(journalctl -o cat -u fieldcast-groups-test | grep -c readable)"
  start=$(date +%s%N)
  systemctl stop fieldcast
  echo "StopMs=$((($(date +%s%N) - start) / 1000000))"
  echo "StopResult=$(systemctl show -p Result --value fieldcast)"
  journalctl --no-pager -o short-precise -u fieldcast -u fieldcast-groups-test | sed 's/^/journal: /'
} >/probe.txt 2>&1
systemctl poweroff
PROBE
chmod 755 "$root/usr/local/bin/fieldcast-probe"
cat >"$root/etc/systemd/system/fieldcast-probe.service" <<'UNIT'
[Unit]
Wants=fieldcast.service
After=fieldcast.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/fieldcast-probe
[Install]
WantedBy=multi-user.target
UNIT
in_root 30 systemctl enable fieldcast-probe.service >/dev/null 2>&1
rm -f "$root/probe.txt"
# systemd-nspawn mounts /proc, /sys and /dev itself.
unmount_all "$root"
[[ -z "$(mounts_under "$root")" ]] || die "cannot unmount $(mounts_under "$root" | tr '\n' ' ') before booting"
step "booting the root with systemd-nspawn (about a minute)"
timeout 240 systemd-nspawn -D "$root" --boot --register=no --keep-unit --private-network \
  --console=pipe >"$repo/target/package-boot.log" 2>&1 || true
probe=$(cat "$root/probe.txt" 2>/dev/null) || die "the booted root wrote no results (target/package-boot.log)"
value() { sed -n "s/^$1=//p" <<<"$probe" | head -n 1; }
if [[ $(value ActiveState) == active && $(value NRestarts) == 0 ]]; then
  ok "fieldcast.service active 40 s after READY, never restarted: $(value StatusText)"
else
  not_ok "fieldcast.service: ActiveState=$(value ActiveState) NRestarts=$(value NRestarts)"
fi
if [[ $(value WatchdogTimestampMonotonic) =~ ^[1-9] ]]; then
  ok "WATCHDOG=1 reaches systemd (WatchdogSec=30s)"
else
  not_ok "systemd never heard WATCHDOG=1"
fi
if [[ $(value Healthz) == *" 200 "* ]]; then
  ok "GET /healthz: $(value Healthz)"
else
  not_ok "GET /healthz: $(value Healthz)"
fi
video_gid=$(sed -n 's/^video:[^:]*:\([0-9]*\):.*/\1/p' "$root/etc/group")
audio_gid=$(sed -n 's/^audio:[^:]*:\([0-9]*\):.*/\1/p' "$root/etc/group")
groups_seen=" $(value Groups) "
if [[ $groups_seen == *" $video_gid "* && $groups_seen == *" $audio_gid "* ]]; then
  ok "the service holds groups video ($video_gid) and audio ($audio_gid)"
else
  not_ok "the service's groups are$groups_seen; want video $video_gid and audio $audio_gid"
fi
if [[ $(value GroupsTest) == "success 2" ]]; then
  ok "inside the unit's sandbox (PrivateUsers=yes) video- and audio-group files can be read"
else
  not_ok "group access inside the unit's sandbox: $(value GroupsTest)"
fi
if [[ $(value NoNewPrivs) == 1 && $(value Seccomp) == 2 && $(value CapEff) =~ ^0+$ ]]; then
  ok "no new privileges, seccomp filter on, no capabilities"
else
  not_ok "sandbox: NoNewPrivs=$(value NoNewPrivs) Seccomp=$(value Seccomp) CapEff=$(value CapEff)"
fi
if [[ $(value OrcCode) -gt 0 ]]; then
  ok "GStreamer's orc generates code under MemoryDenyWriteExecute"
else
  echo "# orc generated no code here (no orc program ran, or no orc backend for this CPU)"
fi
exposure=$(value Exposure)
if [[ -n $exposure ]] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
  ok "systemd-analyze security of the installed unit, inside: $exposure"
else
  not_ok "systemd-analyze security of the installed unit, inside: '$exposure'"
fi
if [[ $(value StopResult) == success && $(value StopMs) -lt 10000 ]]; then
  ok "systemctl stop fieldcast: $(value StopMs) ms, clean"
else
  not_ok "systemctl stop fieldcast: $(value StopMs) ms, Result=$(value StopResult)"
fi
if ((fail)); then
  grep '^journal: ' <<<"$probe" | tail -n 40 | sed 's/^/#   /'
fi

step "done"
echo "$pass passed, $fail failed"
((fail == 0))
