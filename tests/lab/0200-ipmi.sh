#!/bin/bash
# IPMI 2.0 (lanplus) against real BMC simulators: Debian's ipmi_sim, one per
# network namespace this test creates (prefix kbm-), on UDP 623, reached from
# a client namespace over a bridge and veths.  ipmi_sim runs a chassis
# control program (written below) that keeps power and boot device in files,
# so every assertion reads the BMC side's state, not what kiln says.
#   client ns kbm-c$ID: bridge 10.241.0.1/24, runs kiln-bmc-test
#   bmc ns kbm-bN$ID:   10.241.0.1N, ipmi_sim
# Checks: power status follows the state file; on/off/cycle/reset/soft change
# it; bootdev pxe|disk|cdrom|bios|none; wrong password and unknown user fail
# with clear messages and change nothing; a USER-level session may read the
# status but not power on; password files; a dead address times out within
# the bound; the bulk call across three BMCs and a dead one; ipmitool agrees
# with what kiln set; a cycle, off or reset whose reply is lost reaches the
# BMC exactly once and is reported as "may or may not have run" (exit 3).
set -euo pipefail

die() { echo "FAIL: $*" >&2; exit 1; }
. "$(dirname "$0")/ipmi/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in ipmi_sim ip; do command -v "$c" >/dev/null || die "missing '$c' (apt-get install openipmi iproute2)"; done

BT=${KILN_BMC_TEST:-}
if [ -z "$BT" ] && [ -n "${KILN:-}" ]; then BT=$(dirname "$KILN")/kiln-bmc-test; fi
if [ -z "$BT" ] || [ ! -x "$BT" ]; then   # the newest one built in the tree
	BT=$(ls -t "${KILN_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"/build*/bin/kiln-bmc-test 2>/dev/null | head -1 || true)
fi
[ -x "$BT" ] || die "kiln-bmc-test not found (set KILN_BMC_TEST)"

ID=$(( $$ % 10000 ))
NSC=kbm-c$ID BR=kbm-br$ID
NBMC=3
NET=10.241.0
DEAD=$NET.99
TMP=$(mktemp -d /tmp/kbm-ipmi.XXXXXX)
PIDS=()

cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$NSC" 2>/dev/null || true
	for i in $(seq 1 $NBMC); do ip netns del "kbm-b$i$ID" 2>/dev/null || true; done
	if [ $rc != 0 ]; then
		for i in $(seq 1 $NBMC); do
			[ -f "$TMP/b$i/sim.log" ] && { echo "--- ipmi_sim $i"; tail -5 "$TMP/b$i/sim.log"; } >&2
			[ -f "$TMP/b$i/log" ] && { echo "--- chassis $i"; tail -10 "$TMP/b$i/log"; } >&2
		done
	fi
	rm -rf "$TMP"
	[ $rc = 0 ] && echo "PASS 0200-ipmi" || echo "FAIL 0200-ipmi (exit $rc)"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---- topology ----------------------------------------------------------
ipmi_client_ns "$NSC" "$BR" "$NET.1/24"
for i in $(seq 1 $NBMC); do
	ns=kbm-b$i$ID d=$TMP/b$i
	ipmi_bmc_ns "$ns" "$NSC" "$BR" "kbm-v$i-$ID" "$NET.1$i/24"
	ipmi_bmc_start "$ns" "$d" "$NET.1$i" "kbm$i" "secret-$i" "look-$i" a123456789abcdefa123456789abcde$i
	PIDS+=($!)
done

# bt ARGS...: run kiln-bmc-test in the client namespace; output in $OUT/$ERR.
bt() {
	local rc=0
	ip netns exec "$NSC" "$BT" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
	return $rc
}
ok() { bt "$@" || die "kiln-bmc-test $* failed: $ERR"; }
assert_eq() { [ "$1" = "$2" ] || die "${3:-value}: got '$1', expected '$2'"; }
state() { cat "$TMP/b$1/$2"; }
B1=(ipmi "$NET.11" admin secret-1)

# Wait for every simulator to answer (each start takes well under a second).
for i in $(seq 1 $NBMC); do
	for _ in $(seq 1 50); do
		bt -t 300 -r 0 ipmi "$NET.1$i" admin "secret-$i" status && break
		sleep 0.1
	done
	assert_eq "$OUT" off "bmc $i initial power"
done
echo "== simulators up"

# ---- power status reads the BMC's state --------------------------------
echo 1 >"$TMP/b1/power"
ok "${B1[@]}" status; assert_eq "$OUT" on "status after state file = 1"
echo 0 >"$TMP/b1/power"
ok "${B1[@]}" status; assert_eq "$OUT" off "status after state file = 0"

# ---- on / off / cycle / reset / soft ----------------------------------
ok "${B1[@]}" power on; assert_eq "$OUT" ok; assert_eq "$(state 1 power)" 1 "power after on"
ok "${B1[@]}" status; assert_eq "$OUT" on
if command -v ipmitool >/dev/null; then
	got=$(ip netns exec "$NSC" ipmitool -I lanplus -C 3 -H "$NET.11" -U admin -P secret-1 chassis power status)
	assert_eq "$got" "Chassis Power is on" "ipmitool's view"
fi
ok "${B1[@]}" power off; assert_eq "$(state 1 power)" 0 "power after off"
# ipmi_sim has no cipher suite 17 (HMAC-SHA256): a clear error, nothing done
bt -s 17 "${B1[@]}" power on && die "cipher suite 17 accepted by ipmi_sim"
assert_eq "$ERR" "error: bmc $NET.11: IPMI: the BMC refused the session (does it support cipher suite 17?)"
assert_eq "$(state 1 power)" 0 "power after a refused session"

# cycle of a running machine: off, then on again (ipmi_sim waits ~1 s)
echo 1 >"$TMP/b1/power"; : >"$TMP/b1/log"
ok "${B1[@]}" power cycle
for _ in $(seq 1 50); do grep -q "set power 1" "$TMP/b1/log" && break; sleep 0.1; done
grep -q "set power 0" "$TMP/b1/log" || die "cycle did not power off: $(cat "$TMP/b1/log")"
grep -q "set power 1" "$TMP/b1/log" || die "cycle did not power on again: $(cat "$TMP/b1/log")"
assert_eq "$(state 1 power)" 1 "power after cycle"
# cycle of a machine that is off: just on
echo 0 >"$TMP/b1/power"; : >"$TMP/b1/log"
ok "${B1[@]}" power cycle
assert_eq "$(state 1 power)" 1 "power after cycle from off"
grep -q "set power 0" "$TMP/b1/log" && die "cycle from off powered off first"

ok "${B1[@]}" power reset
assert_eq "$(wc -l <"$TMP/b1/resets")" 1 "reset pulses"
ok "${B1[@]}" power soft
assert_eq "$(wc -l <"$TMP/b1/shutdowns")" 1 "soft shutdown requests"
assert_eq "$(state 1 power)" 0 "power after soft shutdown"
echo "== power on/off/cycle/reset/soft"

# ---- boot device --------------------------------------------------------
ok "${B1[@]}" bootdev pxe once; assert_eq "$(state 1 boot)" pxe "boot after bootdev pxe once"
ok "${B1[@]}" bootdev disk;     assert_eq "$(state 1 boot)" default "boot after bootdev disk"
ok "${B1[@]}" bootdev cdrom;    assert_eq "$(state 1 boot)" cdrom
ok "${B1[@]}" bootdev bios;     assert_eq "$(state 1 boot)" bios
ok "${B1[@]}" bootdev pxe;      assert_eq "$(state 1 boot)" pxe "boot after persistent pxe"
ok "${B1[@]}" bootdev none;     assert_eq "$(state 1 boot)" none "boot after clearing"
bt "${B1[@]}" bootdev floppy && die "bootdev floppy accepted"
assert_eq "$ERR" "error: bmc $NET.11: unknown boot device 'floppy' (pxe, disk, cdrom, bios, none)"
echo "== bootdev"

# ---- credentials and privilege ------------------------------------------
echo 0 >"$TMP/b1/power"; : >"$TMP/b1/log"
bt ipmi "$NET.11" admin wrong power on && die "wrong password accepted"
assert_eq "$ERR" "error: bmc $NET.11: IPMI: authentication failed (user 'admin')"
bt ipmi "$NET.11" nobody secret-1 power on && die "unknown user accepted"
assert_eq "$ERR" "error: bmc $NET.11: IPMI: authentication failed (user 'nobody' unknown)"
# A read-only account: status works at USER privilege, power on is refused
# by the BMC (ipmi_sim hands out any session privilege, but enforces the
# session's privilege per command).
ok -l user ipmi "$NET.11" viewer look-1 status; assert_eq "$OUT" off "status at USER privilege"
bt -l user ipmi "$NET.11" viewer look-1 power on && die "USER-privilege session allowed to power on"
assert_eq "$ERR" "error: bmc $NET.11: IPMI: user 'viewer' may not power on with USER privilege"
assert_eq "$(state 1 power)" 0 "power after refused requests"
grep -q "set" "$TMP/b1/log" && die "a refused request reached the chassis: $(cat "$TMP/b1/log")"
# operator privilege is enough for power
ok -l operator "${B1[@]}" power on; assert_eq "$(state 1 power)" 1 "power on with operator privilege"
# password from a file, and a file others can read refused
printf 'secret-1\n' >"$TMP/pw"; chmod 600 "$TMP/pw"
ok ipmi "$NET.11" admin "@$TMP/pw" power off; assert_eq "$(state 1 power)" 0 "power after off (password file)"
chmod 644 "$TMP/pw"
bt ipmi "$NET.11" admin "@$TMP/pw" status && die "world-readable password file accepted"
case $ERR in *"accessible by group or others"*) ;; *) die "password file message: $ERR" ;; esac
echo "== credentials"

# ---- a dead address: timeout within the bound ---------------------------
start=$(date +%s%N)
bt -t 500 -r 1 ipmi "$DEAD" admin x status && die "dead BMC answered"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
assert_eq "$ERR" "error: bmc $DEAD: IPMI: no answer within 500 ms (2 attempts)"
[ "$ms" -ge 1000 ] && [ "$ms" -lt 4000 ] || die "dead BMC took $ms ms (bound: 2 x 500 ms + slack)"
echo "== timeout after ${ms} ms"

# ---- bulk: three BMCs and a dead one, in parallel -----------------------
for i in 1 2 3; do echo 0 >"$TMP/b$i/power"; echo default >"$TMP/b$i/boot"; done
LIST=("ipmi,$NET.11,admin,secret-1" "ipmi,$NET.12,admin,secret-2" "ipmi,$NET.13,admin,secret-3" "ipmi,$DEAD,admin,x")
bt -t 800 -r 0 bulk power on -- "${LIST[@]}" && die "bulk with a dead BMC reported success"
for i in 1 2 3; do
	line=$(sed -n "${i}p" <<<"$OUT")
	assert_eq "$(cut -d' ' -f2 <<<"$line")" 0 "bulk rc of bmc $i ($line)"
	assert_eq "$(state $i power)" 1 "bulk: power of bmc $i"
done
case $(sed -n 4p <<<"$OUT") in
"3 -110 unknown "*" bmc $DEAD: IPMI: no answer within 800 ms") ;;
*) die "bulk: dead BMC line: $(sed -n 4p <<<"$OUT")" ;;
esac
ok -j 2 bulk status -- "${LIST[@]:0:3}"
assert_eq "$(cut -d' ' -f3 <<<"$OUT" | tr '\n' ' ')" "on on on " "bulk status"
ok bulk bootdev pxe once -- "${LIST[@]:0:3}"
for i in 1 2 3; do assert_eq "$(state $i boot)" pxe "bulk: boot of bmc $i"; done
# a wrong password on one BMC fails that one only
bt bulk power off -- ipmi,$NET.11,admin,secret-1 ipmi,$NET.12,admin,bad ipmi,$NET.13,admin,secret-3 &&
	die "bulk with a bad password reported success"
assert_eq "$(state 1 power) $(state 2 power) $(state 3 power)" "0 1 0" "bulk power with one bad password"
case $(sed -n 2p <<<"$OUT") in
"1 -13 unknown "*" bmc $NET.12: IPMI: authentication failed (user 'admin')") ;;
*) die "bulk: bad password line: $(sed -n 2p <<<"$OUT")" ;;
esac
echo "== bulk"

# ---- a lost reply to a cycle is sent once, not retried -----------------
# The chassis program blackholes the route back to the client when the
# power-off arrives (see ipmi/chassis.sh), so the reply is lost every run
# while anything kiln or FreeIPMI sends after it still reaches ipmi_sim and
# would be logged.  -r 2: kiln would retry twice if it retried at all.
lost_reply() {  # lost_reply BMC ACTION EXPECTED_LOG_LINE
	local i=$1 act=$2 want=$3 rc=0
	ip -n "kbm-b$i$ID" route del blackhole "$NET.1/32" 2>/dev/null || true
	echo 1 >"$TMP/b$i/power"; : >"$TMP/b$i/log"; echo "$NET.1" >"$TMP/b$i/drop"
	bt -t 500 -r 2 ipmi "$NET.1$i" admin "secret-$i" power "$act" || rc=$?
	assert_eq "$rc" 3 "exit status of $act with a lost reply (3: outcome unknown; $ERR)"
	assert_eq "$ERR" "error: bmc $NET.1$i: IPMI: no answer within 500 ms; not retried: the request was sent, the action may or may not have run"
	[ -s "$TMP/b$i/drop" ] && die "$act: the request never reached the chassis"
	# kiln has closed its session; a status read on a fresh session is
	# answered (route restored) and ipmi_sim has worked off all it got.
	ip -n "kbm-b$i$ID" route del blackhole "$NET.1/32"
	ok -t 2000 -r 3 ipmi "$NET.1$i" admin "secret-$i" status
	n=$(grep -c "^$want\$" "$TMP/b$i/log" || true)
	assert_eq "$n" 1 "'$want' on the BMC for one $act whose reply was lost"
}
lost_reply 3 cycle "set power 0"
lost_reply 2 off "set power 0"
lost_reply 1 reset "set reset 1"
echo "== lost reply: sent once, outcome unknown"
