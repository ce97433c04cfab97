#!/usr/bin/env bash
# Run the ctest suite N times and report every test that failed in any run,
# as "name  failures/N": a test that fails 1 run in 20 is broken, and one
# run of the suite cannot show it.
#
# Usage: scripts/flaky.sh [-B BUILD_DIR] N [CTEST_ARGS...]
#   -B BUILD_DIR  the build to test (default build-test)
#   CTEST_ARGS    passed to every run, e.g. -R unit or -L lab -j2
#
# Each run's ctest output and JUnit file are kept in BUILD_DIR/flaky/ for
# the failures' logs.  Exit status: 0 when every test passed every run,
# 1 when some test failed at least once, 2 on a usage error.
set -uo pipefail

build=build-test
if [ "${1:-}" = -B ]; then
	build=${2:?flaky.sh: -B needs a build directory}
	shift 2
fi
n=${1:-}
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: flaky.sh [-B BUILD_DIR] N [CTEST_ARGS...]  (N >= 1)" >&2
	exit 2
fi
shift
if [ ! -f "$build/CTestTestfile.cmake" ]; then
	echo "flaky.sh: '$build' is not a build directory with tests (build it first)" >&2
	exit 2
fi
build=$(cd "$build" && pwd)
out="$build/flaky"
rm -rf "$out"
mkdir -p "$out"

for i in $(seq 1 "$n"); do
	ctest --test-dir "$build" --output-junit "$out/run-$i.xml" "$@" >"$out/run-$i.log" 2>&1
	rc=$?
	if [ ! -s "$out/run-$i.xml" ]; then
		echo "flaky.sh: run $i: ctest exited $rc without results; see $out/run-$i.log" >&2
		tail -5 "$out/run-$i.log" >&2
		exit 2
	fi
	# One name per line for each test that ran and did not pass (failed,
	# timed out, or could not start); "run" is a pass.
	awk '/<testcase / {
		name = $0; sub(/.*<testcase name="/, "", name); sub(/".*/, "", name)
		st = $0; sub(/.*status="/, "", st); sub(/".*/, "", st)
		print (st == "run" || st == "disabled" ? "pass " : "fail ") name
	}' "$out/run-$i.xml" >"$out/run-$i.results"
	if [ ! -s "$out/run-$i.results" ]; then
		echo "flaky.sh: no test matched: ctest $*" >&2
		exit 2
	fi
	echo "run $i/$n: $(grep -c '^pass ' "$out/run-$i.results") passed," \
		"$(grep -c '^fail ' "$out/run-$i.results") failed"
done

# name -> failures/runs over all runs, worst first.
cat "$out"/run-*.results | awk -v n="$n" '
	{ runs[$2]++; if ($1 == "fail") fails[$2]++ }
	END {
		for (t in runs)
			if (fails[t])
				printf "%d %s %d %d\n", fails[t], t, fails[t], runs[t]
	}' | sort -k1,1nr -k2,2 >"$out/summary"

total=$(cat "$out"/run-*.results | awk '{print $2}' | sort -u | wc -l)
if [ ! -s "$out/summary" ]; then
	echo "no failures: $total tests, $n runs each"
	exit 0
fi
echo "tests that failed (failures/runs):"
while read -r _ name f r; do
	what=flaky
	[ "$f" = "$r" ] && what="fails every run"
	printf '  %-40s %d/%d  %s\n' "$name" "$f" "$r" "$what"
done <"$out/summary"
echo "$(wc -l <"$out/summary") of $total tests failed at least once; logs in $out/run-*.log"
exit 1
