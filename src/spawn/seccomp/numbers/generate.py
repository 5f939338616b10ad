#!/usr/bin/env python3
"""Writes x86_64.rs and aarch64.rs beside this script: syscall numbers by name.

Source: the syscall tables of the seccompiler crate 0.5.0 (src/syscall_table/, which
that crate generates from the Linux 6.12 UAPI headers of each architecture), plus the
syscalls added in Linux 6.13-6.15 (`EXTRA`, numbered alike on every architecture from
424 on: arch/x86/entry/syscalls/syscall_64.tbl and scripts/syscall.tbl). The x86_64
numbers are cross-checked against the installed kernel headers (Debian package
linux-libc-dev) when present.

    python3 src/spawn/seccomp/numbers/generate.py ~/.cargo/registry/src/*/seccompiler-0.5.0
"""

import os
import re
import sys

EXTRA = {
    "setxattrat": 463,  # Linux 6.13
    "getxattrat": 464,
    "listxattrat": 465,
    "removexattrat": 466,
    "open_tree_attr": 467,  # Linux 6.15
}

HEADERS = {"x86_64": "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"}


def read_seccompiler(path):
    text = open(path).read()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r'\("(\w+)", (\d+)\)', text)}


def cross_check(arch, table):
    header = HEADERS.get(arch)
    if not header or not os.path.exists(header):
        return
    for m in re.finditer(r"#define __NR_(\w+) (\d+)", open(header).read()):
        name, nr = m.group(1), int(m.group(2))
        if name in table and table[name] != nr:
            sys.exit(f"{arch}: {name} is {table[name]} here but {nr} in {header}")


def write(arch, table, out):
    lines = [
        f"//! Syscall numbers on {arch}, by name (sorted), written by `generate.py`",
        "//! beside this file (see there for the sources). Do not edit by hand.",
        "",
        "pub const TABLE: &[(&str, u32)] = &[",
    ]
    lines += [f'    ("{name}", {table[name]}),' for name in sorted(table)]
    lines += ["];", ""]
    open(out, "w").write("\n".join(lines))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    for arch in ("x86_64", "aarch64"):
        table = read_seccompiler(os.path.join(sys.argv[1], "src/syscall_table", arch + ".rs"))
        for name, nr in EXTRA.items():
            if name in table and table[name] != nr:
                sys.exit(f"{arch}: {name} already numbered {table[name]}")
            table[name] = nr
        cross_check(arch, table)
        write(arch, table, os.path.join(here, arch + ".rs"))
        print(f"{arch}: {len(table)} syscalls, highest {max(table.values())}")


if __name__ == "__main__":
    main()
