#!/usr/bin/env bash
# kiln power and kiln bootdev against real BMC simulators (ipmi_sim), driven
# from the spec's bmc: settings, with the password in a file.  Every
# assertion reads the simulator's own state files.
set -euo pipefail
. "$(dirname "$0")/ipmi/lib.sh"
KILN_SRC=${KILN_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
KILN=${KILN:-$KILN_SRC/build-test/bin/kiln}
die() { echo "FAIL 0202-power: $*" >&2; exit 1; }
assert_eq() { [ "$1" = "$2" ] || die "${3:-value}: got '$1', expected '$2'"; }

ID=$(( $$ % 10000 ))
NSC=kpw-c$ID BR=kpw-br$ID NET=10.242.0
T=$(mktemp -d /tmp/kpw.XXXXXX)
PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$NSC" 2>/dev/null || true
	for i in 1 2; do ip netns del "kpw-b$i$ID" 2>/dev/null || true; done
	rm -rf "$T"
	[ $rc = 0 ] && echo "PASS 0202-power" || echo "FAIL 0202-power (exit $rc)"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A client namespace with a bridge, two BMCs on it.
ipmi_client_ns "$NSC" "$BR" "$NET.1/24"
for i in 1 2; do
	ns=kpw-b$i$ID
	ipmi_bmc_ns "$ns" "$NSC" "$BR" "kpw-v$i-$ID" "$NET.1$i/24"
	ipmi_bmc_start "$ns" "$T/b$i" "$NET.1$i" "kpw$i" "secret-$i" "look-$i" b123456789abcdefa123456789abcde$i
	PIDS+=($!)
	printf 'secret-%s\n' "$i" >"$T/bmc$i.pw"
	chmod 600 "$T/bmc$i.pw"
done
touch "$T/known_hosts"
cat >"$T/cluster.yaml" <<YAML
cluster: power
ssh:
  known_hosts: known_hosts
groups:
  rack: {}
nodes:
  - name: gpu-01
    address: 10.242.1.1
    groups: [rack]
    bmc: {type: ipmi, address: $NET.11, user: admin, password_file: bmc1.pw}
  - name: gpu-02
    address: 10.242.1.2
    groups: [rack]
    bmc: {type: ipmi, address: $NET.12, user: admin, password_file: bmc2.pw}
  - name: nobmc
    address: 10.242.1.3
YAML

k() { ip netns exec "$NSC" "$KILN" "$@"; }
# Wait for both simulators.
for _ in $(seq 1 50); do k power status rack -f "$T/cluster.yaml" >/dev/null 2>&1 && break; sleep 0.2; done

out=$(k power status rack -f "$T/cluster.yaml")
assert_eq "$out" "$(printf 'gpu-01           off\ngpu-02           off')" "status"

k power on gpu-01 -f "$T/cluster.yaml" >/dev/null
assert_eq "$(cat "$T/b1/power")" 1 "gpu-01 powered on"
assert_eq "$(cat "$T/b2/power")" 0 "gpu-02 untouched"
status=$(k -o json power status 'gpu-*' -f "$T/cluster.yaml" |
	python3 -c 'import json,sys; print(" ".join(n["name"]+"="+n["power"] for n in json.load(sys.stdin)))')
assert_eq "$status" "gpu-01=on gpu-02=off" "json status"

k power off rack -f "$T/cluster.yaml" >/dev/null
assert_eq "$(cat "$T/b1/power")$(cat "$T/b2/power")" 00 "both off"

k bootdev pxe gpu-02 --once -f "$T/cluster.yaml" >/dev/null
assert_eq "$(cat "$T/b2/boot")" pxe "gpu-02 boot device"

# A wrong password: that node fails, named, exit 1; the other still works.
printf 'wrong\n' >"$T/bmc2.pw"
rc=0; out=$(k power on rack -f "$T/cluster.yaml" 2>&1) || rc=$?
assert_eq "$rc" 1 "exit with one failing BMC"
case "$out" in *"gpu-02           failed"*"authentication"*) ;; *) die "gpu-02 failure not named: $out" ;; esac
assert_eq "$(cat "$T/b1/power")" 1 "gpu-01 powered on despite gpu-02"

# A node without bmc: fails alone, with a one-line reason; the others
# selected with it are still done, and the exit status says one failed.
printf 'secret-2\n' >"$T/bmc2.pw"
rc=0; out=$(k power status nobmc -f "$T/cluster.yaml" 2>&1) || rc=$?
assert_eq "$rc/$out" "1/nobmc            failed   no bmc: settings in the spec" "node without bmc"
rc=0; out=$(k power off gpu-01,nobmc,gpu-02 -f "$T/cluster.yaml" 2>&1) || rc=$?
assert_eq "$rc" 1 "exit of a bulk off with a node without bmc"
assert_eq "$out" "$(printf 'gpu-01           done\ngpu-02           done\nnobmc            failed   no bmc: settings in the spec')" "bulk off output (spec order)"
assert_eq "$(cat "$T/b1/power")$(cat "$T/b2/power")" 00 "both BMC nodes off despite nobmc"
status=$(k -o json power on 'gpu-*,nobmc' -f "$T/cluster.yaml" |
	python3 -c 'import json,sys; print(" ".join(n["name"]+"="+str(n["ok"]) for n in json.load(sys.stdin)))') || true
assert_eq "$status" "gpu-01=True gpu-02=True nobmc=False" "json bulk on with nobmc"
assert_eq "$(cat "$T/b1/power")$(cat "$T/b2/power")" 11 "both BMC nodes on despite nobmc"

# A cycle whose reply is lost (the chassis program blackholes the way back,
# see ipmi/chassis.sh): that node is "unknown", exit 3, and the BMC saw one
# power-off; the other node's cycle is done.
: >"$T/b1/log"; echo "$NET.1" >"$T/b1/drop"
rc=0; out=$(k power cycle rack -f "$T/cluster.yaml" 2>&1) || rc=$?
assert_eq "$rc" 3 "exit of a cycle with a lost reply ($out)"
case "$out" in
"gpu-01           unknown  bmc $NET.11: IPMI: no answer within 10000 ms; not retried: the request was sent, the action may or may not have run"*"gpu-02           done") ;;
*) die "cycle with a lost reply: $out" ;;
esac
ip -n "kpw-b1$ID" route del blackhole "$NET.1/32"
k power status gpu-01 -f "$T/cluster.yaml" >/dev/null
assert_eq "$(grep -c '^set power 0$' "$T/b1/log")" 1 "power-offs for one cycle with a lost reply"

# An unknown action is a one-line error.
rc=0; out=$(k power explode rack -f "$T/cluster.yaml" 2>&1) || rc=$?
assert_eq "$rc" 1 "unknown action exit"
