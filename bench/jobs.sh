#!/usr/bin/env bash
# kiln run against sbatch typed on the login node, on the slurm lab of the
# tests (tests/lab/slurm-lab.sh: 4 systemd hosts behind a bastion, node1
# controller + login + db, node2 2x A100, node3 1x T4, node4 CPU only,
# packages from the lab mirror), in one run:
#
# 1. Convergence: seconds from the start of `kiln apply` on the fresh lab
#    until sinfo on node1 first shows node2..node4 idle (polled every
#    0.5 s), and apply's own wall time (it ends with the check phase).
# 2. The SSH round trip the comparison is held to: `ssh -F ssh_config node1
#    true` (a fresh connection through the bastion and one command: what
#    any remote submission pays), median of 20; and `kiln run --dry-run`
#    (kiln's own work before it connects).
# 3. Latency, median of 20 each, one job at a time, all on node3 (-p t4):
#    from the invocation until the job's command runs (it writes the clock
#    on node3: one clock, the machine's).  `kiln run` from the machine;
#    the same sbatch line kiln sends (kiln run --dry-run), typed on node1
#    (t0 taken on node1 just before it); and a plain `sbatch --wrap`.
# 4. Throughput: 1,000 jobs (`true`, held with a begin time an hour away
#    so that none runs: the load stays bounded) submitted by 1,000 `kiln
#    run` from the machine vs a loop of 1,000 sbatch on node1; total wall
#    time and the ratio.  Each set is cancelled before the next.
#
# Usage (as root, after building): bench/jobs.sh [JOBS]   (JOBS default 1000)
# Takes about 10 minutes on 2 cores.  Results: docs/benchmarks.md, "jobs (Slurm)".
# Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_SRC=$PWD
KILN=${KILN:-$PWD/build/bin/kiln}
[ -x "$KILN" ] || KILN=$PWD/build-test/bin/kiln
[ "$(id -u)" = 0 ] || { echo "jobs.sh: needs root" >&2; exit 1; }
[ -x "$KILN" ] || { echo "jobs.sh: no $KILN (build first)" >&2; exit 1; }
JOBS=${1:-1000}
[ "$JOBS" -ge 1 ] && [ "$JOBS" -le 1000 ] || { echo "jobs.sh: JOBS is 1..1000" >&2; exit 1; }
N=${KILN_BENCH_N:-20}   # latency samples per kind

# What tests/lab/slurm-lab.sh expects of its caller (tests/lab/lib.sh's).
T=$(mktemp -d "$(dirname "$KILN")/../bench-jobs.XXXXXX")
LAB=$T/lab
SPEC=$LAB/cluster.yaml
LAB_NAME=kbj
LAB_SUBNET=10.213.181.0/24
cleanup() {
	"$KILN" lab down --dir "$LAB" >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf '== jobs: %s\n' "$*" >&2; }
fail() { printf 'jobs.sh: %s\n' "$*" >&2; exit 1; }
lab_up() {
	local n=$1
	shift
	"$KILN" lab up --nodes "$n" --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" "$@" \
		>"$T/lab-up.log" 2>&1 || { cat "$T/lab-up.log" >&2; fail "lab up failed"; }
}
on() { local n=$1; shift; "$KILN" lab exec --dir "$LAB" "$n" -- "$@"; }
now() { date +%s.%N; }
# median of the numbers on stdin, and the min and max: "MEDIAN (MIN-MAX)"
stats() {
	python3 -c '
import statistics, sys
v = sorted(float(x) for x in sys.stdin.read().split())
print("%.3f s (%.3f-%.3f, n=%d)" % (statistics.median(v), v[0], v[-1], len(v)))'
}
median() { python3 -c 'import statistics, sys; print("%.4f" % statistics.median(float(x) for x in sys.stdin.read().split()))'; }

say "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
. "$KILN_SRC/tests/lab/slurm-lab.sh"

say "1. convergence: apply on the fresh lab until node2..node4 are idle"
t0=$(now)
"$KILN" apply -f "$SPEC" >"$T/apply.out" 2>&1 &
apid=$!
idle=
while kill -0 $apid 2>/dev/null; do
	st=$(on node1 sinfo -h -N -p all -o '%N %T' 2>/dev/null | sort | tr '\n' ' ' || true)
	if [ "$st" = "node2 idle node3 idle node4 idle " ]; then
		idle=$(now)
		break
	fi
	sleep 0.5
done
wait $apid || { cat "$T/apply.out" >&2; fail "apply failed"; }
t1=$(now)
[ -n "$idle" ] || idle=$t1   # idle only at the very end (the check phase saw it)
converge=$(python3 -c "print('%.1f' % ($idle - $t0))")
applied=$(python3 -c "print('%.1f' % ($t1 - $t0))")
tail -1 "$T/apply.out" >&2

say "2. the SSH round trip: ssh node1 true through the bastion, $N times"
for _ in $(seq $N); do
	a=$(now)
	ssh -F "$LAB/ssh_config" node1 true
	b=$(now)
	python3 -c "print($b - $a)"
done >"$T/rtt"

# kiln run's own work before SSH (spec, state, placement): --dry-run
for _ in $(seq $N); do
	a=$(now)
	"$KILN" run -f "$SPEC" --dry-run --partition t4 -- true >/dev/null
	b=$(now)
	python3 -c "print($b - $a)"
done >"$T/dry"

say "3. latency to the job's command running, $N each, on node3"
script=$("$KILN" run -f "$SPEC" --dry-run --partition t4 -- sh -c 'date +%s.%N >/tmp/kb-$SLURM_JOB_ID')
# wait_start NODE ID: the clock the job wrote, once it exists
wait_start() {
	for _ in $(seq 300); do
		v=$(on "$1" cat "/tmp/kb-$2" 2>/dev/null || true)
		[ -n "$v" ] && { echo "$v"; return; }
		sleep 0.1
	done
	fail "job $2 never ran"
}
: >"$T/lat-kiln"; : >"$T/lat-same"; : >"$T/lat-plain"
for i in $(seq $N); do
	a=$(now)
	id=$("$KILN" run -f "$SPEC" --partition t4 -- sh -c 'date +%s.%N >/tmp/kb-$SLURM_JOB_ID')
	s=$(wait_start node3 "$id")
	python3 -c "print($s - $a)" >>"$T/lat-kiln"
	# the same line kiln sends, typed on node1: t0 there, just before
	out=$(on node1 sh -c 'date +%s.%N; '"$script")
	a=$(sed -n 1p <<<"$out"); id=$(sed -n 2p <<<"$out")
	s=$(wait_start node3 "$id")
	python3 -c "print($s - $a)" >>"$T/lat-same"
	out=$(on node1 sh -c 'date +%s.%N; sbatch --parsable -p t4 --wrap "date +%s.%N >/tmp/kb-\$SLURM_JOB_ID"')
	a=$(sed -n 1p <<<"$out"); id=$(sed -n 2p <<<"$out")
	s=$(wait_start node3 "$id")
	python3 -c "print($s - $a)" >>"$T/lat-plain"
done

say "4. $JOBS jobs submitted (held an hour): a loop of sbatch on node1, then kiln run"
out=$(on node1 sh -c 'date +%s.%N; i=0; while [ $i -lt '"$JOBS"' ]; do
	sbatch --parsable --begin=now+3600 -p all --wrap true >/dev/null || exit 1; i=$((i + 1)); done
	date +%s.%N')
sb=$(python3 -c "import sys; a, b = map(float, sys.argv[1].split()); print(b - a)" "$out")
q=$(on node1 squeue -h -t PD -o %i | wc -l)
[ "$q" = "$JOBS" ] || fail "$q jobs pending after the sbatch loop, expected $JOBS"
on node1 scancel -u root
for _ in $(seq 60); do [ "$(on node1 squeue -h | wc -l)" = 0 ] && break; sleep 1; done
a=$(now)
for _ in $(seq "$JOBS"); do
	"$KILN" run -f "$SPEC" --at now+1h --partition all -- true >/dev/null
done
b=$(now)
kr=$(python3 -c "print($b - $a)")
q=$(on node1 squeue -h -t PD -o %i | wc -l)
[ "$q" = "$JOBS" ] || fail "$q jobs pending after the kiln run loop, expected $JOBS"
on node1 scancel -u root

rtt=$(median <"$T/rtt")
lk=$(median <"$T/lat-kiln"); ls=$(median <"$T/lat-same"); lp=$(median <"$T/lat-plain")
echo
echo "jobs (Slurm), $(date -u +%F), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "convergence: every node idle ${converge} s after apply started (target <= 60 s); apply ${applied} s"
echo "ssh round trip (ssh node1 true, via the bastion): $(stats <"$T/rtt")"
echo "kiln run --dry-run (spec, state, placement; no SSH): $(stats <"$T/dry")"
echo "latency to the command running, $N each:"
echo "  kiln run from the machine:         $(stats <"$T/lat-kiln")"
echo "  same sbatch line on node1:         $(stats <"$T/lat-same")"
echo "  plain sbatch --wrap on node1:      $(stats <"$T/lat-plain")"
python3 - "$lk" "$ls" "$lp" "$rtt" <<'EOF'
import sys
k, s, p, r = map(float, sys.argv[1:])
print("  kiln run - same sbatch = %.3f s = %.2f ssh round trips (target <= 1)" % (k - s, (k - s) / r))
print("  kiln run - plain sbatch = %.3f s = %.2f ssh round trips" % (k - p, (k - p) / r))
EOF
python3 - "$JOBS" "$sb" "$kr" "$rtt" <<'EOF'
import sys
n, s, k, r = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print("%d submissions: sbatch loop on node1 %.1f s (%.1f ms each); kiln run loop %.1f s "
      "(%.1f ms each); ratio %.1fx; per job kiln adds %.1f ms = %.2f ssh round trips"
      % (n, s, 1000 * s / n, k, 1000 * k / n, k / s, 1000 * (k - s) / n, (k - s) / n / r))
EOF
