#!/usr/bin/env bash
# kill -9 of kiln in the middle of an apply, then apply again: converged, and
# no half-written file on any node.
. "$(dirname "$0")/lib.sh"
lab_up 4 --bastion

# The kills land at different moments of the run (agent upload, facts,
# resource writes); each must leave every node with old or new content only.
for delay in 0.3 0.6 0.9 1.2; do
	say "apply, killed with SIGKILL after ${delay} s"
	"$KILN" apply -f "$SPEC" >/dev/null 2>&1 &
	pid=$!
	sleep $delay
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	for n in node1 node2 node3 node4; do
		# Whatever is there must be whole: the managed file either absent or complete.
		f=$(on $n sh -c 'cat /etc/sysctl.d/90-kiln.conf 2>/dev/null || true')
		[ -z "$f" ] || assert_contains "$f" "net.ipv4.ip_forward = 1" "$n sysctl file after kill"
	done
done

say "apply again converges"
kiln_rc 0 apply -f "$SPEC"
kiln_rc 0 plan -f "$SPEC"
for n in node1 node2 node3 node4; do
	left=$(on $n find /etc /home /root -name '*.kiln-tmp-*')
	assert_eq "$left" "" "$n temporary files"
done
kiln_rc 0 runs -f "$SPEC" -o json
assert_contains "$(json '[r["status"] for r in j]')" "interrupted" "killed runs"
