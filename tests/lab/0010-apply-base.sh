#!/usr/bin/env bash
# 4 nodes behind a bastion: apply base, then a second apply changes nothing.
. "$(dirname "$0")/lib.sh"
lab_up 4 --bastion

say "first apply converges every node"
kiln_rc 0 apply -f "$SPEC" -o json
assert_eq "$(json 'j["summary"]["changed"]')" 4 "nodes changed"
assert_eq "$(json 'j["summary"]["failed"] + j["summary"]["unreachable"]')" 0 "failures"
assert_eq "$(json 'all(n["agent_uploaded"] for n in j["nodes"])')" True "agent uploaded"
assert_eq "$(json 'j["bastion_connections"]')" 1 "bastion connections"

say "every node has the files and live sysctls"
for n in node1 node2 node3 node4; do
	assert_eq "$(on $n cat /proc/sys/net/ipv4/ip_forward)" 1 "$n ip_forward"
	assert_contains "$(on $n cat /etc/sysctl.d/90-kiln.conf)" "net.ipv4.ip_forward = 1"
	assert_contains "$(on $n cat /etc/modules-load.d/kiln.conf)" "br_netfilter"
	assert_eq "$(on $n cat /etc/hostname)" "$n" "$n /etc/hostname"
	hosts=$(on $n cat /etc/hosts)
	for m in node1 node2 node3 node4; do assert_contains "$hosts" "$m" "$n /etc/hosts"; done
	on $n id kiln >/dev/null || fail "$n: no user kiln"
	assert_eq "$(on $n cat /home/kiln/.ssh/authorized_keys)" "$(cat "$LAB/keys/id_ed25519.pub")" "$n kiln key"
done
[ -f /etc/sysctl.d/90-kiln.conf ] && fail "the machine's own /etc was written"

say "second apply: 4 nodes, 0 changed, agent not uploaded again"
kiln_rc 0 apply -f "$SPEC"
assert_contains "$OUT" "4 nodes, 0 changed"
kiln_rc 0 apply -f "$SPEC" -o json
assert_eq "$(json 'any(n["agent_uploaded"] for n in j["nodes"])')" False "agent re-uploaded"
assert_eq "$(json 'sum(n["changed"] for n in j["nodes"])')" 0 "resources changed"

say "plan on a converged cluster exits 0"
kiln_rc 0 plan -f "$SPEC"

say "facts from every node"
kiln_rc 0 facts -f "$SPEC" -o json
assert_eq "$(json 'sorted(n["facts"]["hostname"] for n in j["nodes"])')" "['node1', 'node2', 'node3', 'node4']" "facts hostnames"

say "runs are recorded"
kiln_rc 0 runs -f "$SPEC" -o json
assert_eq "$(json 'len(j)')" 5 "runs recorded"
assert_eq "$(json 'j[-1]["kind"] + " " + j[-1]["status"]')" "apply ok" "first run"
