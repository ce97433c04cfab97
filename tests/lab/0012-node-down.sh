#!/usr/bin/env bash
# One node's sshd dies: the others converge, the dead one is named with its cause.
. "$(dirname "$0")/lib.sh"
lab_up 3 --bastion

say "rolling apply (--serial 1) stops at the batch with the dead node"
"$KILN" lab sshd --dir "$LAB" node2 stop
kiln_rc 1 apply -f "$SPEC" --serial 1 -o json
assert_eq "$(json '[(n["name"], n["status"]) for n in j["nodes"]]')" \
	"[('node1', 'changed'), ('node2', 'unreachable'), ('node3', 'skipped')]" "serial outcomes"
assert_contains "$(json 'j["nodes"][2]["error"]')" "not attempted" "skipped node's reason"
assert_eq "$(on node3 sh -c 'cat /etc/sysctl.d/90-kiln.conf 2>/dev/null || echo none')" none "node3 untouched"
"$KILN" lab sshd --dir "$LAB" node2 start

say "node3 down: the others converge"
"$KILN" lab sshd --dir "$LAB" node3 stop
kiln_rc 1 apply -f "$SPEC" -o json
assert_eq "$(json '[(n["name"], n["status"]) for n in j["nodes"]]')" \
	"[('node1', 'ok'), ('node2', 'changed'), ('node3', 'unreachable')]" "outcomes"
assert_contains "$(json 'j["nodes"][2]["error"]')" "refused" "node3 error"
assert_eq "$(on node1 cat /proc/sys/net/ipv4/ip_forward)" 1 "node1 converged"

kiln_rc 1 apply -f "$SPEC"
assert_contains "$OUT" "node3"
assert_contains "$OUT" "unreachable"

say "sshd back: apply converges node3"
"$KILN" lab sshd --dir "$LAB" node3 start
kiln_rc 0 apply -f "$SPEC" -o json
assert_eq "$(json '[n["name"] for n in j["nodes"] if n["changed"]]')" "['node3']" "only node3 changed"
