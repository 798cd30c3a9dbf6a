# Debian roots for the package and arm64 scripts (sourced, bash): made with debootstrap once,
# cached as tarballs, unpacked fresh for each use, with their mounts always undone.

# The first Debian (not -security) archive in this machine's apt sources.
default_mirror() {
  local url
  url=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
    grep -v -- '-security' | head -n 1 | tr -d ' ') || true
  echo "${url:-http://deb.debian.org/debian}"
}

# Every mount under DIR, deepest first. Nothing is ever deleted under a mount point: a root
# left half-made by a killed run may still have /proc or /dev there.
mounts_under() { awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r; }
unmount_all() {
  local m
  for m in $(mounts_under "$1"); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
}
# remove_tree DIR: unmounts everything under DIR, then deletes it; fails if a mount stays.
remove_tree() {
  unmount_all "$1"
  if [[ -n "$(mounts_under "$1")" ]]; then
    echo "cannot unmount $(mounts_under "$1" | tr '\n' ' ')" >&2
    return 1
  fi
  rm -rf "$1"
}

# A tool from this machine's own apt sources.
host_install() {
  timeout 600 apt-get update -q >/dev/null && timeout 600 apt-get install -y -q "$@" >/dev/null
}

# apt_sources ROOT MIRROR SUITE...: the root's apt sources, and no refusal of an archive whose
# Release file is past its Valid-Until date.
apt_sources() {
  local root=$1 mirror=$2 suite
  shift 2
  : >"$root/etc/apt/sources.list"
  for suite in "$@"; do echo "deb $mirror $suite main" >>"$root/etc/apt/sources.list"; done
  echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99fieldcast-no-valid-until"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

# debootstrap_cached TAR LOG ARCH SUITE MIRROR [SCRIPT]: a minbase root made once and kept
# as TAR (without package lists or downloaded .debs). A foreign ARCH needs qemu-user-static.
debootstrap_cached() {
  local tar=$1 log=$2 arch=$3 suite=$4 mirror=$5 script=${6:-} tmp
  [[ -s "$tar" ]] && return 0
  command -v debootstrap >/dev/null || host_install debootstrap || return 1
  tmp="$tar.d"
  remove_tree "$tmp" || return 1
  # shellcheck disable=SC2086 # no script: no argument
  if ! timeout 1800 debootstrap --variant=minbase --arch="$arch" "$suite" "$tmp" "$mirror" $script >"$log" 2>&1; then
    echo "debootstrap $arch $suite failed ($log: $(tail -n 3 "$log" | tr '\n' ' '))" >&2
    remove_tree "$tmp"
    return 1
  fi
  unmount_all "$tmp" # debootstrap unmounts its /proc and /sys itself, unless it was killed
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  timeout 900 tar -C "$tmp" -cf "$tar.part" . && mv "$tar.part" "$tar"
  remove_tree "$tmp"
}

# unpack_root TAR ROOT: a fresh copy of a cached root, with /proc, /sys and /dev mounted.
unpack_root() {
  local tar=$1 root=$2
  remove_tree "$root" || return 1
  mkdir -p "$root"
  timeout 900 tar -C "$root" -xf "$tar" || return 1
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
}

# release_root ROOT: undoes its mounts and deletes it, unless KEEP_ROOT is set (to look
# inside after a failure) or a mount would not go.
release_root() {
  unmount_all "$1"
  if [[ -z "${KEEP_ROOT:-}" && -z "$(mounts_under "$1")" ]]; then rm -rf "$1"; fi
}

# run_in_root ROOT SECONDS [VAR=VALUE...] COMMAND...: COMMAND in ROOT with a clean
# environment, stopped after SECONDS.
run_in_root() {
  local root=$1 limit=$2
  shift 2
  timeout "$limit" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
