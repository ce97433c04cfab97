#!/usr/bin/env bash
# The mesh stack on the seed's hybrid shape: 3 on-prem nodes behind NAT and
# 2 cloud nodes.  Hub topology (as `lab up --sites` writes it), then full:
# every pair the topology allows exchanges packets over the overlay; a
# second apply changes nothing; a killed wireguard-go is drift that plan
# shows and apply repairs; `kiln mesh rotate` changes one key while other
# pairs lose nothing; a node leaving the spec leaves every peer list, and no
# other session is reset.  No private key appears anywhere kiln writes.
. "$(dirname "$0")/lib.sh"
# Sites take the blocks after the subnet (.20 on-prem, .21 cloud, .22 public).
LAB_SUBNET=10.214.20.0/24
lab_up 5 --bastion --sites onprem:3,cloud:2
NODES="node1 node2 node3 node4 node5"
on_fail() {
	local n
	for n in $NODES; do
		echo "--- $n: wg show kiln0 dump (private key column dropped)"
		on $n wg show kiln0 dump 2>&1 | awk -F'\t' 'NR == 1 { $1 = "-" } { print }'
	done
	date +%s
}
: >"$T/all-output"
keep() { printf '%s\n%s\n' "$OUT" "$ERR" >>"$T/all-output"; }

# addr NODE: the node's overlay address, from its own interface.
addr() { on "$1" ip -4 -o addr show dev kiln0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p'; }
# pings FROM TO...: one echo each over the overlay; fails naming the pair.
pings() {
	local from=$1 to
	shift
	for to in "$@"; do
		[ "$from" = "$to" ] && continue
		on "$from" ping -c 1 -W 3 "${A[$to]}" >/dev/null ||
			on "$from" ping -c 2 -W 3 "${A[$to]}" >/dev/null ||
			fail "$from cannot reach $to (${A[$to]}) over the overlay"
	done
}
# dump NODE: `wg show kiln0 dump` peer lines as "KEY HANDSHAKE RX".
dump() { on "$1" wg show kiln0 dump | awk 'NR > 1 { print $1, $5, $6 }'; }

say "plan before any key exists: the link phase says what it waits for"
kiln_rc 2 plan -f "$SPEC"
keep
assert_contains "$OUT" "? mesh.link: waits for node4 mesh.public_key"

say "hub: apply runs base, then the mesh's phases, on every node"
kiln_rc 0 apply -f "$SPEC" -o json
keep
assert_eq "$(json 'j["phases"]')" "['base.prepare', 'mesh.keys', 'mesh.link', 'mesh.check']" "phases"
assert_eq "$(json 'j["summary"]["changed"]')" 5 "nodes changed"
assert_eq "$(json 'sorted(set(r["phase"] for n in j["nodes"] for r in n["results"]))')" \
	"['base.prepare', 'mesh.check', 'mesh.keys', 'mesh.link']" "results carry their phase"
assert_eq "$(json 'all(r["status"] == "ok" for n in j["nodes"] for r in n["results"] if r["phase"] == "mesh.check")')" \
	True "every node's overlay check passed"

declare -A A
for n in $NODES; do A[$n]=$(addr $n); done
say "addresses: ${A[*]}"
assert_eq "$(printf '%s\n' "${A[@]}" | sort -u | wc -l)" 5 "distinct overlay addresses"

say "hub: spokes peer only with the hub (node4), and reach everyone through it"
for n in node1 node2 node3 node5; do
	assert_eq "$(on $n wg show kiln0 peers | wc -l)" 1 "$n peers"
done
assert_eq "$(on node4 wg show kiln0 peers | wc -l)" 4 "hub peers"
for n in $NODES; do pings $n $NODES; done
case "$(on node1 ping -c 2 -W 3 "${A[node5]}" 2>&1)" in
*Redirect*) fail "the hub sends ICMP redirects its spokes cannot follow" ;;
esac
now=$(date +%s)
on node4 wg show kiln0 latest-handshakes | while read -r key hs; do
	[ $((now - hs)) -lt 180 ] || fail "hub's handshake with $key is $((now - hs)) s old"
done

say "a second apply changes nothing (debug logs kept for the secrets check); plan agrees"
kiln_rc 0 -vv apply -f "$SPEC"
keep
assert_contains "$ERR" "mesh.link"
assert_contains "$OUT" "5 nodes, 0 changed"
kiln_rc 0 plan -f "$SPEC"
keep

say "--limit node1: the others' keys and addresses come from the state"
kiln_rc 0 apply -f "$SPEC" --limit node1 -o json
keep
assert_eq "$(json '[n["name"] for n in j["nodes"]]')" "['node1']" "limited run"
assert_eq "$(json 'j["nodes"][0]["changed"]')" 0 "node1 changes under --limit"
assert_eq "$(on node1 wg show kiln0 peers | wc -l)" 1 "node1 peers after --limit"

say "mesh graph: the hub's four tunnels, as dot and as SVG"
kiln_rc 0 mesh graph -f "$SPEC"
assert_eq "$(grep -c -- ' -- ' <<<"$OUT")" 4 "hub edges"
assert_contains "$OUT" '"node4" [label="node4\n'"${A[node4]}"
kiln_rc 0 mesh graph -f "$SPEC" --svg "$T/mesh.svg"
grep -q '<svg' "$T/mesh.svg" || fail "no SVG written"

say "mesh status: every peer up"
kiln_rc 0 mesh status -f "$SPEC" -o json
keep
assert_eq "$(json 'sum(len(n["peers"]) for n in j["nodes"])')" 8 "peer entries"
assert_eq "$(json 'j["down"]')" 0 "peers down"

say "drift: wireguard-go killed on node2 -> plan shows it, apply restores it"
on node2 pkill -x wireguard-go
for _ in $(seq 50); do on node2 ip link show kiln0 >/dev/null 2>&1 || break; sleep 0.1; done
kiln_rc 2 plan -f "$SPEC"
keep
assert_contains "$OUT" "wireguard:kiln0"
kiln_rc 0 apply -f "$SPEC"
keep
pings node2 node1 node4 node5

say "rotate node2: pairs without node2 lose nothing; node2 comes back with a new key"
old=$(on node2 wg show kiln0 public-key)
oldpriv=$(on node2 cat /etc/kiln/mesh/kiln0.key)
on node1 ping -i 0.2 -c 40 -W 2 "${A[node3]}" >"$T/ping13" 2>&1 &
p13=$!
on node5 ping -i 0.2 -c 40 -W 2 "${A[node1]}" >"$T/ping51" 2>&1 &
p51=$!
sleep 1
kiln_rc 0 mesh rotate node2 -f "$SPEC"
keep
wait $p13 || true
wait $p51 || true
assert_contains "$(cat "$T/ping13")" " 0% packet loss" "node1 -> node3 during rotate"
assert_contains "$(cat "$T/ping51")" " 0% packet loss" "node5 -> node1 during rotate"
new=$(on node2 wg show kiln0 public-key)
[ "$old" != "$new" ] || fail "node2's key did not change"
assert_contains "$(on node4 wg show kiln0 peers)" "$new" "hub knows node2's new key"
case "$(on node4 wg show kiln0 peers)" in *"$old"*) fail "the hub still has node2's old key" ;; esac
pings node2 node1 node3 node4 node5
pings node1 node2

say "full: every pair has its own tunnel"
sed -i 's/^    topology: hub$/    topology: full/; /^    hubs: /d' "$SPEC"
kiln_rc 0 apply -f "$SPEC" -o json
keep
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed nodes"
for n in $NODES; do
	assert_eq "$(on $n wg show kiln0 peers | wc -l)" 4 "$n peers (full)"
done
for n in $NODES; do pings $n $NODES; done
kiln_rc 0 apply -f "$SPEC"
keep
assert_contains "$OUT" "5 nodes, 0 changed"
kiln_rc 0 mesh graph -f "$SPEC"
assert_eq "$(grep -c -- ' -- ' <<<"$OUT")" 10 "full mesh edges"

say "node3 leaves the spec: its peer entries go everywhere, no other session resets"
key3=$(on node3 wg show kiln0 public-key)
before=$(dump node1)
python3 - "$SPEC" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"  - name: node3\n(    .*\n)+", "", s)
open(p, "w").write(s)
EOF
kiln_rc 0 apply -f "$SPEC"
keep
assert_contains "$OUT" "4 nodes"
for n in node1 node2 node4 node5; do
	case "$(on $n wg show kiln0 peers)" in *"$key3"*) fail "$n still has node3 as a peer" ;; esac
	assert_eq "$(on $n wg show kiln0 peers | wc -l)" 3 "$n peers after node3 left"
done
after=$(dump node1)
while read -r key hs rx; do
	[ "$key" = "$key3" ] && continue
	line=$(grep "^$key " <<<"$after") || fail "node1 lost peer $key"
	read -r _ hs2 rx2 <<<"$line"
	[ "$hs2" -ge "$hs" ] && [ "$hs" -gt 0 ] || fail "node1's session with $key was reset ($hs -> $hs2)"
	[ "$rx2" -ge "$rx" ] || fail "node1's counters with $key went back ($rx -> $rx2)"
done <<<"$before"
pings node1 node2 node4 node5

say "no private key anywhere kiln writes or prints"
assert_eq "${#oldpriv}" 44 "node2's old private key read"
kiln_rc 0 runs -f "$SPEC" -o json
keep
run=$(json 'j[0]["id"]')
kiln_rc 0 runs show "$run" -f "$SPEC" -o json
keep
kiln_rc 0 exports -f "$SPEC" -o json
keep
assert_contains "$OUT" '"public_key"'
state="$LAB/.kiln/state.db"
[ -f "$state" ] || fail "no state database at $state"
for n in $NODES old; do
	if [ $n = old ]; then priv=$oldpriv; else
		priv=$(on $n cat /etc/kiln/mesh/kiln0.key)
		[ ${#priv} = 44 ] || fail "$n: no private key read"
		assert_eq "$(on $n stat -c %a /etc/kiln/mesh/kiln0.key)" 600 "$n key mode"
	fi
	for f in "$state" "$state-wal" "$T/all-output"; do
		[ -f "$f" ] || continue
		grep -qF "$priv" "$f" && fail "$n's private key is in $f"
	done
	true
done
