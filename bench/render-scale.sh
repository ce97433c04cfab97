#!/usr/bin/env bash
# Offline rendering at scale: `kiln validate` (the offline plan: load the
# spec, read every node's last facts and the exports from the state, run
# the stacks' prepare, render every node through every phase) on a
# synthetic N-node cluster (bench/render/gen.py: groups, sites, the base
# stack with 24 files, 8 of them templated, sysctls, modules, 20 services,
# packages; >= 50 resources a node), with debian facts recorded for every
# node.  The mesh stack is enabled too when this tree registers it.
#
# Usage: bench/render-scale.sh [N...]   (default 10000; after building kiln,
# Release or RelWithDebInfo, without sanitizers; KILN= to choose the binary)
# Prints, per N, without a state database ("none") and with one holding
# facts and three mesh exports for every node ("state"): wall and CPU
# seconds, max RSS (MB, /usr/bin/time -v) and the resources rendered.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/build/bin/kiln}
[ -x "$KILN" ] || { echo "no kiln at '$KILN' (set KILN)" >&2; exit 1; }
for c in sqlite3 python3 /usr/bin/time; do
	command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }
done
W=$(mktemp -d /tmp/kiln-render-scale.XXXXXX)
trap 'rm -rf "$W"' EXIT
mesh=
grep -q '&stack_mesh' src/stacks/registry.c && mesh=--mesh

# One timed run of validate: "WALL_S CPU_S MAXRSS_MB RESOURCES" (CPU: user +
# system, what the run itself cost when other jobs share the cores)
measure() {
	/usr/bin/time -v -o "$W/time" "$KILN" validate -f "$1" >"$W/out" 2>"$W/err" ||
		{ echo "validate failed: $(cat "$W/err")" >&2; exit 1; }
	local wall cpu rss res
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0;
		for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$W/time")
	cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$W/time")
	rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$W/time")
	res=$(sed -n 's/^ok: .*, \([0-9]*\) resources, .*/\1/p' "$W/out")
	echo "$wall $cpu $rss $res"
}

printf '%-7s %-6s %8s %8s %8s %10s %s\n' nodes state wall_s cpu_s MB resources stacks
for n in "${@:-10000}"; do
	d=$W/n$n
	mkdir -p "$d/.kiln"
	python3 bench/render/gen.py "$d" "$n" $mesh
	: >"$d/known_hosts"
	stacks="base${mesh:+,mesh}"
	read -r s cpu mb res < <(measure "$d/cluster.yaml")
	printf '%-7s %-6s %8s %8s %8s %10s %s\n' "$n" none "$s" "$cpu" "$mb" "$res" "$stacks"
	# kiln makes the state database and its schema (state_open on an empty
	# file), the facts go into its facts table as state_facts_put writes them
	: >"$d/.kiln/state.db"
	"$KILN" exports -f "$d/cluster.yaml" >/dev/null
	sqlite3 "$d/.kiln/state.db" <"$d/facts.sql"
	read -r s cpu mb res < <(measure "$d/cluster.yaml")
	printf '%-7s %-6s %8s %8s %8s %10s %s\n' "$n" state "$s" "$cpu" "$mb" "$res" "$stacks"
done
