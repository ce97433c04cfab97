# Shared by the lab scenario tests: make a lab, run kiln, assert, clean up.
# A test sources this file, then calls lab_up N [--bastion].  Everything it
# made (lab namespaces, mounts, processes, temp files) goes on exit, also on
# failure.  Traffic stays inside the lab's own namespaces.
set -euo pipefail

KILN_SRC=${KILN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
KILN=${KILN:-$KILN_SRC/build-test/bin/kiln}
TEST=$(basename "$0" .sh)
# Inside the source tree (not /tmp): lab nodes see the machine's /root, /work,
# ... through their overlays, but have their own /tmp and /run.
T=$(mktemp -d "${KILN_SRC}/build-test/labtest-${TEST}.XXXXXX" 2>/dev/null ||
    mktemp -d "/var/tmp/kiln-${TEST}.XXXXXX")
LAB=$T/lab
# A short lab name and a subnet of its own per test, so tests never collide.
num=${TEST%%-*}
num=$((10#$num))
LAB_NAME=kt$num
LAB_SUBNET=10.213.$((num % 200 + 20)).0/24
SPEC=$LAB/cluster.yaml

say() { printf '== %s: %s\n' "$TEST" "$*"; }
# A test may define on_fail() to print what explains a failure (state of
# the hosts) before the lab is torn down.
fail() {
	printf 'FAIL %s: %s\n' "$TEST" "$*" >&2
	if declare -F on_fail >/dev/null; then on_fail >&2 || true; fi
	exit 1
}

cleanup() {
	local rc=$?
	"$KILN" lab down --dir "$LAB" >/dev/null 2>&1 || true
	rm -rf "$T"
	if [ $rc = 0 ]; then echo "PASS $TEST"; else echo "FAIL $TEST (exit $rc)"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_up() {
	local n=$1
	shift
	say "lab up: $n nodes $*"
	"$KILN" lab up --nodes "$n" --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" "$@" >"$T/lab-up.log" 2>&1 ||
		{ cat "$T/lab-up.log" >&2; fail "lab up failed"; }
}

# kiln_rc WANT ARGS...: run kiln, keep its output in $OUT, check the exit code.
kiln_rc() {
	local want=$1 rc=0
	shift
	"$KILN" "$@" >"$T/out" 2>"$T/err" || rc=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
	if [ "$rc" != "$want" ]; then
		printf '%s\n' "--- stdout" "$OUT" "--- stderr" "$ERR" >&2
		fail "kiln $* exited $rc, expected $want"
	fi
}

# on NODE CMD...: run a command inside a lab node.
on() {
	local node=$1
	shift
	"$KILN" lab exec --dir "$LAB" "$node" -- "$@"
}

# json EXPR: evaluate a Python expression over the JSON in $OUT (as j).
json() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/out" "$1"
}

assert_eq() { [ "$1" = "$2" ] || fail "${3:-value}: got '$1', expected '$2'"; }
assert_contains() {
	case "$1" in *"$2"*) ;; *) fail "${3:-output} does not contain '$2': $1" ;; esac
}
