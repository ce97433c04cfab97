#!/usr/bin/env bash
# kill -9 of kiln in the middle of an apply, and of the agent on a node while
# it writes a large file; then apply again: converged, no half-written file
# on any node, and no temporary file left behind.
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

# big N: a spec file entry /etc/kiln-big of 4 MB, version N.
big() {
	python3 - "$1" "$SPEC" "$T/big-$1" <<'PY'
import sys
n, spec, out = sys.argv[1:]
text = "".join("version %s line %07d\n" % (n, i) for i in range(160000))
open(out, "w").write(text)
lines = open(spec).read().split("\n# big\n")[0]
open(spec, "w").write(lines + "\n# big\n    files:\n      - path: /etc/kiln-big\n"
                      "        content: \"" + text.replace("\n", "\\n") + "\"\n")
PY
}
sum() { sha256sum | cut -c1-64; }

say "a large file everywhere (version 1)"
big 1
kiln_rc 0 apply -f "$SPEC"
assert_eq "$(on node1 cat /etc/kiln-big | sum)" "$(sum <"$T/big-1")" "node1 version 1"

# The agent on node1 dies in the middle of writing version 2, every time:
# node1's sshd (and so the agent it starts) gets a 1 MB file-size limit, and
# the kernel kills the agent with SIGXFSZ when its write of the temporary
# file crosses it -- after the temporary file exists, before the rename.
say "apply version 2; the agent on node1 killed by the kernel mid-write"
big 2
kiln_rc 0 lab status --dir "$LAB" -o json
init1=$(json '[h["init_pid"] for h in j["hosts"] if h["name"] == "node1"][0]')
sshd1=$(pgrep -P "$init1" -x sshd)   # its pid on the machine (sshd_pid is the host's own)
prlimit --pid "$sshd1" --fsize=1000000:unlimited   # the soft limit: from the machine (the host itself may not)
kiln_rc 1 apply -f "$SPEC"
prlimit --pid "$sshd1" --fsize=unlimited
assert_contains "$OUT$ERR" "node1" "the failed node named"
assert_eq "$(on node1 cat /etc/kiln-big | sum)" "$(sum <"$T/big-1")" "node1 keeps version 1 whole"
left=$(on node1 sh -c 'for f in /etc/kiln-big.kiln-tmp-*; do [ -f "$f" ] && stat -c %s "$f"; done; true')
[ -n "$left" ] || fail "the agent was not killed mid-write (no temporary file left on node1)"
[ "$left" -le 1000000 ] || fail "temporary file of $left bytes: the limit did not stop the write"
for n in node2 node3 node4; do
	assert_eq "$(on $n cat /etc/kiln-big | sum)" "$(sum <"$T/big-2")" "$n version 2"
done
try=2

say "apply again converges"
kiln_rc 0 apply -f "$SPEC"
kiln_rc 0 plan -f "$SPEC"
assert_eq "$(on node1 cat /etc/kiln-big | sum)" "$(sum <"$T/big-$try")" "node1 version $try"
for n in node1 node2 node3 node4; do
	left=$(on $n find /etc /home /root -name '*.kiln-tmp-*')
	assert_eq "$left" "" "$n temporary files"
done
kiln_rc 0 runs -f "$SPEC" -o json
assert_contains "$(json '[r["status"] for r in j]')" "interrupted" "killed runs"
