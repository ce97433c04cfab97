#!/usr/bin/env python3
"""Check or extend kiln's NVIDIA GPU table against a driver's supported-gpus.json.

    scripts/nvidia-gpus.py FILE          compare src/stacks/nvidia_gpus.c with FILE
    scripts/nvidia-gpus.py --all FILE    print every device id of FILE as table rows

FILE is NVIDIA's supported-gpus/supported-gpus.json, from a driver package
(sh NVIDIA-Linux-x86_64-VERSION.run -x) or a distribution's driver package.
Compare mode prints one line per row of the table: the file's name, legacy
branch and kernelopen, and what differs ("name", "legacy"); exit 1 when a
row differs or is missing from the file.  A row's name is compared with the
file's first entry for that device id that has no subsystem id, else its
first entry.  docs/nvidia.md "The table" says how to use it.
"""
import json
import re
import sys
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "src/stacks/nvidia_gpus.c"
ROW = re.compile(r'^\s*\{ 0x([0-9A-Fa-f]{4}), "([^"]*)",\s*(NV_[A-Z_]+),\s*(\d+) \}')
RANGE = re.compile(r'^\s*\{ 0x([0-9A-Fa-f]{4}), 0x([0-9A-Fa-f]{4}), (NV_[A-Z_]+) \}')


def load_table():
    rows, ranges = [], []
    for line in TABLE.read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows.append((int(m[1], 16), m[2], m[3], int(m[4])))
            continue
        m = RANGE.match(line)
        if m:
            ranges.append((int(m[1], 16), int(m[2], 16), m[3]))
    return rows, ranges


def load_chips(path):
    """device id -> the file's entries for it, in file order."""
    chips = {}
    for c in json.loads(Path(path).read_text())["chips"]:
        chips.setdefault(int(c["devid"], 16), []).append(c)
    return chips


def main_entry(entries):
    plain = [c for c in entries if "subdevid" not in c]
    return (plain or entries)[0]


def legacy_of(c):
    b = c.get("legacybranch")
    return int(b.split(".")[0]) if b else 0


def arch_of(device, ranges):
    for lo, hi, arch in ranges:
        if lo <= device <= hi:
            return arch
    return "NV_ARCH_UNKNOWN"


def compare(path):
    rows, _ = load_table()
    chips = load_chips(path)
    bad = 0
    for device, name, arch, legacy in rows:
        entries = chips.get(device)
        if not entries:
            print(f"0x{device:04X} {name}: not in the file")
            bad += 1
            continue
        c = main_entry(entries)
        diff = []
        if c["name"] != name:
            diff.append(f"name {c['name']!r}")
        if legacy_of(c) != legacy:
            diff.append(f"legacy {legacy_of(c)}")
        kopen = "kernelopen" in c.get("features", [])
        print(f"0x{device:04X} {name}: file {c['name']!r} legacy {legacy_of(c) or '-'}"
              f"{' kernelopen' if kopen else ''}{'  DIFFERS: ' + ', '.join(diff) if diff else ''}")
        bad += bool(diff)
    return 1 if bad else 0


def print_all(path):
    _, ranges = load_table()
    for device, entries in sorted(load_chips(path).items()):
        c = main_entry(entries)
        name = c["name"].replace('"', "'")
        print(f'\t{{ 0x{device:04X}, "{name}", {arch_of(device, ranges)}, '
              f'{legacy_of(c)} }},')
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--all":
        return print_all(argv[2])
    if len(argv) == 2 and not argv[1].startswith("-"):
        return compare(argv[1])
    print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
    print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
