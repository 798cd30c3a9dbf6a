#!/usr/bin/env bash
# Builds fieldcast for 64-bit Raspberry Pi OS / Debian 12 arm64 on an amd64 Debian machine
# (root), and prints the arm64 .deb's path as the last line of output.
#
# Compiler: a Debian forky chroot (debootstrap --variant=minbase) with Debian's rustc and cargo,
# the multiarch libstd-rust-dev:arm64, crossbuild-essential-arm64 and the arm64 GStreamer -dev
# packages; kept in target/arm64/cross and reused. Target: a bookworm arm64 root with the
# GStreamer libraries (target/arm64/pi-libs, made under qemu-user): cargo-deb's $auto
# dependencies are worked out against it (DPKG_ROOT), so the package names bookworm's
# libraries, not forky's. The binary must need no newer glibc than bookworm's 2.36.
# Packaging is the same as scripts/build-deb.sh: [package.metadata.deb] in Cargo.toml.
#
# Options: --tests  also builds the arm64 unit tests (target/arm64/unit-tests).
# Environment: MIRROR (default: this machine's Debian mirror).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=scripts/lib/chroot.sh
source scripts/lib/chroot.sh
export PATH="$HOME/.cargo/bin:$PATH"

[[ $(id -u) -eq 0 ]] || { echo "scripts/build-arm64.sh needs root (debootstrap, chroot)" >&2; exit 1; }
with_tests=
[[ ${1:-} == --tests ]] && with_tests=1

TARGET=aarch64-unknown-linux-gnu
BOOKWORM_GLIBC=2.36
CARGO_DEB_VERSION=3.8.0
MIRROR=${MIRROR:-$(default_mirror)}
work=$repo/target/arm64
cross=$work/cross
pi_libs=$work/pi-libs
mkdir -p "$work/cargo-home"
started=$SECONDS
step() { echo "# [$((SECONDS - started)) s] $*" >&2; }
die() { echo "build-arm64: $*" >&2; exit 1; }

cleanup() {
  unmount_all "$cross"
  unmount_all "$pi_libs"
}
trap cleanup EXIT

# What each root holds; a root whose stamp differs is made again.
CROSS_PACKAGES="rustc cargo libstd-rust-dev:arm64 crossbuild-essential-arm64 pkgconf dpkg-dev ca-certificates libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-dev:arm64"
PI_LIBS_PACKAGES="libgstreamer1.0-0 libgstreamer-plugins-base1.0-0"

# arm64 programs (apt in the bookworm root) run through qemu-user via binfmt_misc.
enable_qemu() {
  [[ -x /usr/bin/qemu-aarch64-static ]] || host_install qemu-user-static binfmt-support ||
    die "cannot install qemu-user-static"
  [[ -e /proc/sys/fs/binfmt_misc/status ]] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64 >&2 ||
    die "cannot register qemu-aarch64 with binfmt_misc"
}

# make_root DIR TAR PACKAGES ARCH SUITE...: DIR from the cached TAR with PACKAGES installed,
# reused while its stamp matches.
make_root() {
  local dir=$1 tar=$2 packages=$3 arch=$4
  shift 4
  local stamp="$arch $* | $packages"
  if [[ -f "$dir/.fieldcast-root" && "$(cat "$dir/.fieldcast-root")" == "$stamp" ]]; then
    step "reusing ${dir#"$repo"/}"
    return 0
  fi
  step "making ${dir#"$repo"/} ($arch $1: $packages)"
  unpack_root "$tar" "$dir" || die "cannot unpack $tar"
  apt_sources "$dir" "$MIRROR" "$@"
  [[ $arch == amd64 ]] && chroot "$dir" dpkg --add-architecture arm64
  local log=$work/$(basename "$dir")-apt.log
  if ! timeout 1800 chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $packages" \
    >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    die "apt-get install in ${dir#"$repo"/} failed ($log)"
  fi
  chroot "$dir" apt-get clean
  unmount_all "$dir"
  echo "$stamp" >"$dir/.fieldcast-root"
}

# 1. the roots
enable_qemu
debootstrap_cached "$work/forky-amd64-base.tar" "$work/debootstrap-forky.log" \
  amd64 forky "$MIRROR" /usr/share/debootstrap/scripts/sid || die "no forky root"
debootstrap_cached "$work/bookworm-arm64-base.tar" "$work/debootstrap-bookworm-arm64.log" \
  arm64 bookworm "$MIRROR" || die "no bookworm arm64 root"
make_root "$cross" "$work/forky-amd64-base.tar" "$CROSS_PACKAGES" amd64 forky
make_root "$pi_libs" "$work/bookworm-arm64-base.tar" "$PI_LIBS_PACKAGES" arm64 bookworm bookworm-updates

# 2. the binary (and the unit tests), built in the compiler root from this working tree
mkdir -p "$cross/src" "$cross/bookworm"
mount --bind "$repo" "$cross/src"
mount --bind "$pi_libs" "$cross/bookworm"
mount -o remount,bind,ro "$cross/bookworm"
mount -t proc proc "$cross/proc"
mount --bind /dev "$cross/dev"
# cargo fetches crates from crates.io through whatever this machine trusts.
cp /etc/ssl/certs/ca-certificates.crt "$cross/etc/ssl/certs/host-ca-certificates.crt"
in_cross() {
  chroot "$cross" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/host-ca-certificates.crt \
    CARGO_HOME=/src/target/arm64/cargo-home CARGO_TARGET_DIR=/src/target/arm64/cargo-target \
    PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    DPKG_ROOT=/bookworm sh -c "cd /src && $1"
}
step "cargo build --release --target $TARGET ($(in_cross 'rustc --version'))"
in_cross "cargo build --release --locked --target $TARGET --bin fieldcast" >&2 || die "cargo build failed"
binary=$work/cargo-target/$TARGET/release/fieldcast
python3 scripts/arm64/glibc_needs.py "$binary" --max "$BOOKWORM_GLIBC" >&2 ||
  die "the arm64 binary would not start on bookworm"
if [[ -n $with_tests ]]; then
  step "cargo test --lib --no-run --target $TARGET"
  built=$(in_cross "cargo test --release --locked --target $TARGET --lib --no-run --message-format=json" |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "fieldcast":
        print(m["executable"])') || die "cargo test --no-run failed"
  [[ -n "$built" ]] || die "cargo reported no unit-test executable"
  cp "${built/#\/src/$repo}" "$work/unit-tests"
  python3 scripts/arm64/glibc_needs.py "$work/unit-tests" --weaken "$BOOKWORM_GLIBC" >&2
fi

# 3. the package: cargo-deb as in scripts/build-deb.sh, its $auto dependencies from bookworm
if [[ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]]; then
  step "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked >&2
fi
cp "$(command -v cargo-deb)" "$cross/usr/local/bin/cargo-deb"
step "cargo deb --target $TARGET"
deb=$(in_cross "cargo deb --no-build --locked --target $TARGET -o target/arm64/" | tail -n 1)
deb=$repo/$deb
[[ -f "$deb" ]] || die "cargo deb did not report a .deb (got: $deb)"
step "built ${deb#"$repo"/}: $(dpkg-deb -f "$deb" Architecture), $(du -k "$deb" | cut -f1) KiB"
echo "$deb"
