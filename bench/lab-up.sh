#!/usr/bin/env bash
# Time and memory of `kiln lab up` with systemd hosts, GPUs and disks, for
# 4, 50 and 250 nodes (plus a bastion): seconds to up (every host's
# systemd at "running" when it returns), PSS per host (all processes of
# the host's PID namespace, /proc/PID/smaps_rollup), kiln's own max RSS,
# and seconds to down.  Usage: bench/lab-up.sh [N...]   (root)
# Results: docs/lab.md, "Speed".
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-build/bin/kiln}
[ -x "$KILN" ] || KILN=build-test/bin/kiln
[ "$(id -u)" = 0 ] || { echo "lab-up.sh: needs root" >&2; exit 1; }
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(4 50 250)
T=$(mktemp -d /tmp/kiln-bench-lab.XXXXXX)
trap '"$KILN" lab down --dir "$T/lab" >/dev/null 2>&1 || true; rm -rf "$T"' EXIT

pss() {   # per-host PSS in KiB: median and max, and the total in MiB
	"$KILN" lab status --dir "$T/lab" -o json | python3 -c '
import json, os, sys
j = json.load(sys.stdin)
ns = {os.readlink("/proc/%d/ns/pid" % h["init_pid"]): h["name"] for h in j["hosts"]}
tot = {}
for d in filter(str.isdigit, os.listdir("/proc")):
    try:
        k = os.readlink("/proc/%s/ns/pid" % d)
        if k in ns:
            for l in open("/proc/%s/smaps_rollup" % d):
                if l.startswith("Pss:"):
                    tot[ns[k]] = tot.get(ns[k], 0) + int(l.split()[1])
    except OSError:
        pass
v = sorted(tot.values())
print("%d hosts, PSS per host median %.1f MB, max %.1f MB, total %d MiB" %
      (len(v), v[len(v) // 2] / 1024, v[-1] / 1024, sum(v) // 1024))'
}

printf '%-6s %-10s %-14s %s\n' nodes up "kiln max RSS" "hosts"
for n in "${sizes[@]}"; do
	/usr/bin/time -f "%e %M" -o "$T/time" "$KILN" lab up --nodes "$n" --bastion \
		--gpus node2=a100:2,node3=t4:1 --disks 2x8G --dir "$T/lab" --name kbl \
		--subnet 10.212.0.0/22 >/dev/null
	read -r secs rss <"$T/time"
	line=$(pss)
	start=$(date +%s.%N)
	"$KILN" lab down --dir "$T/lab" >/dev/null
	down=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")
	printf '%-6s %-10s %-14s %s; down %s s\n' "$n" "${secs} s" "$((rss / 1024)) MiB" "$line" "$down"
done
