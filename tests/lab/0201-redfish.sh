#!/bin/bash
# Redfish power and boot control against tests/unit/bmc/redfish_mock.py on
# loopback (no Debian package provides a Redfish simulator; the mock keeps
# its state in a JSON file and logs every request, and the assertions read
# those, not what kiln reports).
# Checks: status; on/off/cycle/reset/soft map to the right ResetType and are
# idempotent where they should be; a cycle of a machine that is off powers
# it on; bootdev targets, once vs continuous, boot mode, If-Match; the
# fallback when PowerCycle is not offered and a clear error when nothing
# fits; HTTP 401 (no retry); BMC error messages, 4xx not retried, 503
# retried; a reply that is not JSON; timeouts within the bound, retried for reads
# and never after a non-idempotent POST was sent; TLS verification on by
# default, insecure and CA-file opt-ins; bulk in parallel with a dead BMC.
set -euo pipefail

die() { echo "FAIL: $*" >&2; exit 1; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
command -v openssl >/dev/null || die "missing openssl"
SRC=${KILN_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
MOCK=$SRC/tests/unit/bmc/redfish_mock.py

BT=${KILN_BMC_TEST:-}
if [ -z "$BT" ] && [ -n "${KILN:-}" ]; then BT=$(dirname "$KILN")/kiln-bmc-test; fi
if [ -z "$BT" ] || [ ! -x "$BT" ]; then   # the newest one built in the tree
	BT=$(ls -t "$SRC"/build*/bin/kiln-bmc-test 2>/dev/null | head -1 || true)
fi
[ -x "$BT" ] || die "kiln-bmc-test not found (set KILN_BMC_TEST)"

TMP=$(mktemp -d /tmp/kbm-redfish.XXXXXX)
PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
	[ $rc = 0 ] && echo "PASS 0201-redfish" || echo "FAIL 0201-redfish (exit $rc)"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mock NAME ARGS...: start a mock BMC; its port in $PORT, state in $TMP/NAME.json.
mock() {
	local name=$1
	shift
	"$PY" "$MOCK" --state "$TMP/$name.json" --port-file "$TMP/$name.port" "$@" \
		2>"$TMP/$name.err" &
	PIDS+=($!)
	for _ in $(seq 1 100); do [ -s "$TMP/$name.port" ] && break; sleep 0.05; done
	[ -s "$TMP/$name.port" ] || die "mock $name did not start: $(cat "$TMP/$name.err")"
	PORT=$(cat "$TMP/$name.port")
}
# st NAME EXPR: evaluate a Python expression over the mock's state (as s).
st() { "$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(*v) if isinstance(v, tuple) else print(v)' "$TMP/$1.json" "$2"; }
# nreq NAME METHOD: how many requests of METHOD the mock has seen.
nreq() { if [ -f "$TMP/$1.json.log" ]; then grep -c "^$2 " "$TMP/$1.json.log" || true; else echo 0; fi; }
bt() {
	local rc=0
	"$BT" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
	return $rc
}
ok() { bt "$@" || die "kiln-bmc-test $* failed: $ERR"; }
assert_eq() { [ "$1" = "$2" ] || die "${3:-value}: got '$1', expected '$2'"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ---- power ---------------------------------------------------------------
mock m1 --require-if-match
U1=http://127.0.0.1:$PORT
R=(redfish "$U1" root calvin)
ok "${R[@]}" status; assert_eq "$OUT" off "initial status"
ok "${R[@]}" power on
assert_eq "$(st m1 's["PowerState"]')" On "power after on"
ok "${R[@]}" status; assert_eq "$OUT" on "status after on"
ok "${R[@]}" power on   # already on: no request, no 409
assert_eq "$(st m1 's["resets"]')" "['On']" "resets after a second on"
ok "${R[@]}" power cycle
ok "${R[@]}" power reset
ok "${R[@]}" power off
assert_eq "$(st m1 's["PowerState"]')" Off "power after off"
ok "${R[@]}" power cycle   # off: powers on
assert_eq "$(st m1 's["PowerState"]')" On "power after cycle from off"
ok "${R[@]}" power soft
assert_eq "$(st m1 's["PowerState"]')" Off "power after soft"
assert_eq "$(st m1 's["resets"]')" \
	"['On', 'PowerCycle', 'ForceRestart', 'ForceOff', 'On', 'GracefulShutdown']" "reset types sent"
echo "== power"

# ---- boot device (the mock refuses PATCH without a matching If-Match) ----
ok "${R[@]}" bootdev pxe once
assert_eq "$(st m1 's["Boot"]["BootSourceOverrideTarget"], s["Boot"]["BootSourceOverrideEnabled"]')" "Pxe Once"
ok "${R[@]}" bootdev disk
assert_eq "$(st m1 's["Boot"]["BootSourceOverrideTarget"], s["Boot"]["BootSourceOverrideEnabled"]')" "Hdd Continuous"
ok "${R[@]}" bootdev cdrom once; assert_eq "$(st m1 's["Boot"]["BootSourceOverrideTarget"]')" Cd
ok "${R[@]}" bootdev bios once; assert_eq "$(st m1 's["Boot"]["BootSourceOverrideTarget"]')" BiosSetup
assert_eq "$(st m1 's["Boot"]["BootSourceOverrideMode"]')" UEFI "boot mode kept"
ok -m legacy "${R[@]}" bootdev pxe
assert_eq "$(st m1 's["Boot"]["BootSourceOverrideTarget"], s["Boot"]["BootSourceOverrideMode"]')" "Pxe Legacy"
ok "${R[@]}" bootdev none
assert_eq "$(st m1 's["Boot"]["BootSourceOverrideTarget"], s["Boot"]["BootSourceOverrideEnabled"]')" "None Disabled"
echo "== bootdev"

# ---- authentication: 401, one request, nothing changed ------------------
n0=$(nreq m1 GET)
bt -r 3 redfish "$U1" root wrong power on && die "wrong password accepted"
assert_eq "$ERR" "error: bmc $U1: Redfish: HTTP 401 Unauthorized (user 'root')"
assert_eq "$(( $(nreq m1 GET) - n0 ))" 1 "requests for a 401 (no retry)"
assert_eq "$(st m1 's["PowerState"]')" Off "power after 401"
printf 'calvin\n' >"$TMP/pw"; chmod 600 "$TMP/pw"
ok redfish "$U1" root "@$TMP/pw" status; assert_eq "$OUT" off "status with a password file"
echo "== 401"

# ---- what the BMC offers -------------------------------------------------
mock m2 --power On --reset-types On,ForceOff,ForceRestart --boot-targets None,Pxe,Hdd
R2=(redfish "http://127.0.0.1:$PORT" root calvin)
ok "${R2[@]}" power cycle
assert_eq "$(st m2 's["resets"]')" "['ForceRestart']" "cycle without PowerCycle offered"
bt "${R2[@]}" bootdev cdrom && die "bootdev cdrom accepted though not offered"
assert_eq "$ERR" "error: bmc http://127.0.0.1:$PORT: Redfish: boot device cdrom (Cd) not offered by the BMC (only None, Pxe, Hdd)"
mock m3 --power On --reset-types On,ForceOff
bt redfish "http://127.0.0.1:$PORT" root calvin power cycle && die "cycle accepted with no fitting reset type"
assert_eq "$ERR" "error: bmc http://127.0.0.1:$PORT: Redfish: power cycle: the BMC offers only reset types On, ForceOff"
assert_eq "$(nreq m3 POST)" 0 "POSTs when no reset type fits"
echo "== allowable values"

# ---- BMC errors: its own words, retried only when it says "busy" --------
mock f4 --fail-patch 400
bt -r 2 redfish "http://127.0.0.1:$PORT" root calvin bootdev pxe && die "PATCH 400 succeeded"
assert_eq "$ERR" "error: bmc http://127.0.0.1:$PORT: Redfish: set boot device pxe: HTTP 400: Boot override rejected by mock"
assert_eq "$(nreq f4 PATCH)" 1 "PATCHes for a 400 (no retry)"
mock f5 --fail-patch 503
bt -t 2000 -r 1 redfish "http://127.0.0.1:$PORT" root calvin bootdev pxe && die "PATCH 503 succeeded"
assert_eq "$ERR" "error: bmc http://127.0.0.1:$PORT: Redfish: set boot device pxe: HTTP 503: Boot override rejected by mock (2 attempts)"
assert_eq "$(nreq f5 PATCH)" 2 "PATCHes for a 503 with one retry"
mock bj --bad-json
bt redfish "http://127.0.0.1:$PORT" root calvin status && die "garbage reply accepted"
case $ERR in
"error: bmc http://127.0.0.1:$PORT: Redfish: list systems: reply is not a JSON object ("*) ;;
*) die "bad JSON message: $ERR" ;;
esac
echo "== BMC errors"

# ---- timeouts --------------------------------------------------------------
mock hg --hang GET
t0=$(date +%s%N)
bt -t 500 -r 1 redfish "http://127.0.0.1:$PORT" root calvin status && die "hanging BMC answered"
ms=$(ms_since "$t0")
assert_eq "$ERR" "error: bmc http://127.0.0.1:$PORT: Redfish: no answer within 500 ms (2 attempts)"
[ "$ms" -ge 1000 ] && [ "$ms" -lt 4000 ] || die "timeout took $ms ms (bound 2 x 500 ms + slack)"
assert_eq "$(nreq hg GET)" 2 "GETs to a hanging BMC with one retry"

mock hp --power On --hang POST
UP=http://127.0.0.1:$PORT
bt -t 500 -r 2 redfish "$UP" root calvin power cycle && die "hanging POST succeeded"
assert_eq "$ERR" "error: bmc $UP: Redfish: no answer within 500 ms; not retried: the request was sent, the action may or may not have run"
assert_eq "$(nreq hp POST)" 1 "POSTs of a cycle whose reply was lost"
rc=0; bt -t 500 -r 2 redfish "$UP" root calvin power off || rc=$?
assert_eq "$rc" 3 "exit of an off whose reply was lost (3: outcome unknown)"
assert_eq "$ERR" "error: bmc $UP: Redfish: no answer within 500 ms; not retried: the request was sent, the action may or may not have run"
assert_eq "$(nreq hp POST)" 2 "POSTs after an off whose reply was lost (one more)"
mock hq --power Off --hang POST; UP=http://127.0.0.1:$PORT
bt -t 500 -r 1 redfish "$UP" root calvin power on && die "hanging POST succeeded"
assert_eq "$ERR" "error: bmc $UP: Redfish: no answer within 500 ms (2 attempts)"
assert_eq "$(nreq hq POST)" 2 "POSTs of an on (idempotent) retried once"
echo "== timeouts (${ms} ms)"

# ---- TLS -------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
mock tls --cert "$TMP/cert.pem" --key "$TMP/key.pem" --power On
bt redfish "127.0.0.1:$PORT" root calvin status && die "self-signed certificate trusted by default"
case $ERR in
"error: bmc https://127.0.0.1:$PORT: Redfish: TLS certificate not trusted"*) ;;
*) die "TLS error: $ERR" ;;
esac
assert_eq "$(nreq tls GET)" 0 "requests sent over an untrusted TLS connection"
ok -k redfish "127.0.0.1:$PORT" root calvin status; assert_eq "$OUT" on "status, insecure TLS"
ok -c "$TMP/cert.pem" redfish "https://127.0.0.1:$PORT" root calvin power off
assert_eq "$(st tls 's["PowerState"]')" Off "power off over verified TLS"
echo "== TLS"

# ---- bulk ------------------------------------------------------------------
LIST=()
for i in 1 2 3; do
	mock b$i
	LIST+=("redfish,http://127.0.0.1:$PORT,root,calvin")
done
dead=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LIST+=("redfish,http://127.0.0.1:$dead,root,calvin")
bt -r 0 bulk power on -- "${LIST[@]}" && die "bulk with a dead BMC reported success"
for i in 1 2 3; do
	assert_eq "$(sed -n "${i}p" <<<"$OUT" | cut -d' ' -f2)" 0 "bulk rc $i"
	assert_eq "$(st b$i 's["PowerState"]')" On "bulk power $i"
done
case $(sed -n 4p <<<"$OUT") in
"3 -111 unknown "*" bmc http://127.0.0.1:$dead: Redfish: cannot connect"*) ;;
*) die "bulk dead line: $(sed -n 4p <<<"$OUT")" ;;
esac
ok bulk bootdev pxe once -- "${LIST[@]:0:3}"
for i in 1 2 3; do assert_eq "$(st b$i 's["Boot"]["BootSourceOverrideTarget"]')" Pxe "bulk boot $i"; done
# parallel: four hanging BMCs at 1 s each finish in about 1 s, not 4
HL=()
for i in 1 2 3 4; do mock h$i --hang GET; HL+=("redfish,http://127.0.0.1:$PORT,root,calvin"); done
t0=$(date +%s%N)
bt -t 1000 -r 0 -j 4 bulk status -- "${HL[@]}" && die "hanging BMCs answered"
ms=$(ms_since "$t0")
[ "$ms" -lt 2500 ] || die "4 hanging BMCs in parallel took $ms ms"
assert_eq "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" "-110 -110 -110 -110 " "bulk timeouts"
echo "== bulk (parallel timeouts in ${ms} ms)"
