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

# big N: a spec file entry /etc/kiln-big of 10 MB, version N.
big() {
	python3 - "$1" "$SPEC" "$T/big-$1" <<'PY'
import sys
n, spec, out = sys.argv[1:]
text = "".join("version %s line %07d\n" % (n, i) for i in range(400000))
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

# The agent on node1 is killed while its temporary file exists, i.e.
# between creating and renaming it.  A try where the rename won the race
# proves nothing: try again (with the other version) until one hit it.
hit=0
for try in 2 3 4 5; do
	big $try
	say "apply version $try, the agent on node1 killed -9 while it writes"
	"$KILN" apply -f "$SPEC" >/dev/null 2>&1 &
	pid=$!
	# In node1's own PID namespace: only its agents match.
	on node1 python3 -c '
import os, signal, time
end = time.monotonic() + 30
while time.monotonic() < end:
    if any(n.startswith("kiln-big.kiln-tmp-") for n in os.listdir("/etc")):
        break
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
    except OSError:
        continue
    if len(argv) > 1 and b"/kiln-agent-" in argv[0] and argv[1] == b"serve":
        os.kill(int(p), signal.SIGKILL)'
	wait $pid 2>/dev/null || true
	now=$(on node1 cat /etc/kiln-big | sum)
	[ "$now" = "$(sum <"$T/big-$((try - 1))")" ] || [ "$now" = "$(sum <"$T/big-$try")" ] ||
		fail "node1 /etc/kiln-big is neither version $((try - 1)) nor $try after the kill"
	if [ -n "$(on node1 sh -c 'ls /etc/kiln-big.kiln-tmp-* 2>/dev/null')" ]; then
		hit=1
		# Not renamed: the old content is still whole.
		assert_eq "$now" "$(sum <"$T/big-$((try - 1))")" "node1 keeps version $((try - 1))"
		break
	fi
	# The rename won: the new content is there whole.  Make it the old one.
	kiln_rc 0 apply -f "$SPEC"
done
[ $hit = 1 ] || fail "never killed the agent between create and rename"

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
