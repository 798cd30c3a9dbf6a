#!/usr/bin/env python3
"""The glibc symbol versions an ELF file needs, read from its version-needs section.

  glibc_needs.py FILE                 prints the newest GLIBC_x.y FILE needs (weak needs aside)
  glibc_needs.py FILE --max 2.36      fails, naming them, if FILE needs a newer one
  glibc_needs.py FILE --weaken 2.36   marks needs newer than 2.36 weak, in place

A binary linked against a newer glibc than the one it will run on fails to start ("version
`GLIBC_2.39' not found"). The arm64 build links against Debian forky's glibc and runs on
bookworm (2.36), so the shipped binary is checked with --max. Rust's test harness refers to
glibc 2.39's pidfd_spawnp and pidfd_getpid as weak symbols, which the standard library looks
up before use, yet the linker records their version as a hard need; --weaken tells the loader
that the need is weak, as the references are, so the unit tests run on bookworm."""

import argparse
import struct
import sys

SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


def version_key(name):
    return tuple(int(part) for part in name.split("_", 1)[1].split("."))


def glibc_needs(data):
    """(offset of vna_flags, flags, version name) for every GLIBC_* need in an ELF64 LE file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    needs = []
    for _name, kind, _flags, _addr, offset, _size, link, info, _align, _entsize in sections:
        if kind != SHT_GNU_VERNEED:
            continue
        strtab = sections[link][4]
        entry = offset
        for _ in range(info):
            _version, count, _file, aux, following = struct.unpack_from("<HHIII", data, entry)
            at = entry + aux
            for _ in range(count):
                _hash, flags, _other, name, next_aux = struct.unpack_from("<IHHII", data, at)
                text = data[strtab + name : data.index(b"\0", strtab + name)].decode()
                if text.startswith("GLIBC_2."):
                    needs.append((at + 4, flags, text))
                at += next_aux
            entry += following
    return needs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--max", help="fail if a hard need is newer than this glibc version")
    parser.add_argument("--weaken", help="mark needs newer than this glibc version weak, in place")
    args = parser.parse_args()
    with open(args.file, "rb") as f:
        data = bytearray(f.read())
    needs = glibc_needs(data)
    hard = [name for _, flags, name in needs if not flags & VER_FLG_WEAK]
    if args.weaken:
        limit = version_key("GLIBC_" + args.weaken)
        changed = []
        for at, flags, name in needs:
            if version_key(name) > limit and not flags & VER_FLG_WEAK:
                struct.pack_into("<H", data, at, flags | VER_FLG_WEAK)
                changed.append(name)
        with open(args.file, "r+b") as f:
            f.write(data)
        print(f"{args.file}: marked weak: {', '.join(changed) or 'nothing'}")
        return 0
    newest = max(hard, key=version_key, default="none")
    if args.max:
        limit = version_key("GLIBC_" + args.max)
        too_new = sorted({n for n in hard if version_key(n) > limit}, key=version_key)
        if too_new:
            print(f"{args.file} needs {', '.join(too_new)}; the target has glibc {args.max}", file=sys.stderr)
            return 1
    print(newest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
