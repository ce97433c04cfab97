#!/usr/bin/env bash
# Drift on one node: plan shows exactly that node's diff, apply repairs it.
. "$(dirname "$0")/lib.sh"
lab_up 3 --bastion
kiln_rc 0 apply -f "$SPEC"

say "drift node2: a managed file edited and a sysctl changed live"
on node2 sh -c 'echo "net.ipv4.ip_forward = 0" > /etc/sysctl.d/90-kiln.conf; echo 0 > /proc/sys/net/ipv4/ip_forward'
assert_eq "$(on node1 cat /proc/sys/net/ipv4/ip_forward)" 1 "node1 untouched"

kiln_rc 2 plan -f "$SPEC" -o json
assert_eq "$(json '[n["name"] for n in j["nodes"] if n["changed"]]')" "['node2']" "nodes with changes"
assert_eq "$(json '[r["id"] for r in j["nodes"][1]["results"] if r["status"] == "changed"]')" \
	"['sysctl:/etc/sysctl.d/90-kiln.conf']" "changed resources"
kiln_rc 2 plan -f "$SPEC"
assert_contains "$OUT" "-net.ipv4.ip_forward = 0"
assert_contains "$OUT" "+net.ipv4.ip_forward = 1"
assert_eq "$(on node2 cat /proc/sys/net/ipv4/ip_forward)" 0 "plan changed nothing"

say "apply repairs it"
kiln_rc 0 apply -f "$SPEC"
assert_contains "$OUT" "3 nodes, 1 changed"
assert_eq "$(on node2 cat /proc/sys/net/ipv4/ip_forward)" 1 "node2 ip_forward repaired"
kiln_rc 0 plan -f "$SPEC"
