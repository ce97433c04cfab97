#!/usr/bin/env bash
# A running 10-node full mesh (5 on-prem behind NAT, 5 cloud) takes an 11th
# node while bounded pings between other nodes run: not one packet lost, no
# other peer entry touched, and the new node's overlay check passes.  Then
# the exports: every node's address and public key, none secret, stable.
. "$(dirname "$0")/lib.sh"
# Sites take the blocks after the subnet (.24 on-prem, .25 cloud, .26 public).
LAB_SUBNET=10.214.24.0/24
lab_up 11 --bastion --sites onprem:5,cloud:6

addr() { on "$1" ip -4 -o addr show dev kiln0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p'; }
# spec_without NODE: the lab's spec less one node, full topology.
full_spec() {
	python3 - "$SPEC" "$1" <<'EOF'
import re, sys
p, drop = sys.argv[1], sys.argv[2]
s = open(p).read()
s = re.sub(r"    topology: hub\n    hubs: \[.*\]\n", "    topology: full\n", s)
if drop:
	s = re.sub(r"  - name: %s\n(    .*\n)+" % drop, "", s)
open(p + ".full", "w").write(s)
EOF
}

say "ten nodes, full mesh"
cp "$SPEC" "$SPEC.orig"
full_spec node11
cp "$SPEC.full" "$SPEC"
kiln_rc 0 apply -f "$SPEC" -o json
assert_eq "$(json 'j["summary"]["nodes"]')" 10 "nodes"
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed"
for n in node1 node6 node10; do
	assert_eq "$(on $n wg show kiln0 peers | wc -l)" 9 "$n peers"
done
before=$(on node1 wg show kiln0 dump | awk 'NR > 1 { print $1, $3, $4, $8 }' | sort)

say "node11 joins while node1 -> node7 and node2 -> node3 pings run"
a7=$(addr node7) a3=$(addr node3)
on node1 ping -i 0.1 -c 100 -W 2 "$a7" >"$T/ping17" 2>&1 &
p1=$!
on node2 ping -i 0.1 -c 100 -W 2 "$a3" >"$T/ping23" 2>&1 &
p2=$!
sleep 1
cp "$SPEC.orig" "$SPEC"
full_spec ""
cp "$SPEC.full" "$SPEC"
kiln_rc 0 apply -f "$SPEC" -o json
assert_eq "$(json 'j["summary"]["nodes"]')" 11 "nodes"
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed"
assert_eq "$(json '[r["status"] for n in j["nodes"] if n["name"] == "node11" for r in n["results"] if r["phase"] == "mesh.check"]')" \
	"['ok']" "node11's overlay check"
wait $p1 || true
wait $p2 || true
assert_contains "$(cat "$T/ping17")" " 0% packet loss" "node1 -> node7 while node11 joined"
assert_contains "$(cat "$T/ping23")" " 0% packet loss" "node2 -> node3 while node11 joined"

say "node1 gained one peer; its other entries are as they were"
assert_eq "$(on node1 wg show kiln0 peers | wc -l)" 10 "node1 peers"
after=$(on node1 wg show kiln0 dump | awk 'NR > 1 { print $1, $3, $4, $8 }' | sort)
k11=$(on node11 wg show kiln0 public-key)
assert_eq "$(grep -v "^$k11 " <<<"$after")" "$before" "node1's other peers"
on node11 ping -c 1 -W 3 "$(addr node1)" >/dev/null || fail "node11 cannot reach node1"

say "exports: an address and a public key per node, addresses unchanged by a reorder"
kiln_rc 0 exports -f "$SPEC" -o json
assert_eq "$(json 'len([x for x in j if x["stack"] == "mesh" and x["name"] == "address"])')" 11 "addresses"
assert_eq "$(json 'len([x for x in j if x["stack"] == "mesh" and x["name"] == "public_key"])')" 11 "public keys"
assert_eq "$(json 'any(x["secret"] for x in j)')" False "secret exports"
first=$(json 'sorted((x["node"], x["value"]) for x in j if x["name"] == "address")')
python3 - "$SPEC" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
head, rest = s.split("\nnodes:\n", 1)
nodes, tail = rest.split("\nstacks:\n", 1)
blocks = re.findall(r"  - name: .*\n(?:    .*\n)+", nodes + "\n")
open(p, "w").write(head + "\nnodes:\n" + "".join(reversed(blocks)) + "\nstacks:\n" + tail)
EOF
kiln_rc 0 apply -f "$SPEC" -o json
# /etc/hosts lists nodes in spec order; nothing of the mesh may change
assert_eq "$(json '[n["name"] + " " + r["id"] for n in j["nodes"] for r in n["results"] if r["phase"].startswith("mesh") and r["status"] != "ok"]')" \
	"[]" "mesh resources changed by a reorder"
kiln_rc 0 exports -f "$SPEC" -o json
assert_eq "$(json 'sorted((x["node"], x["value"]) for x in j if x["name"] == "address")')" "$first" "addresses after a reorder"
