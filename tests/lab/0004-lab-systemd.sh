#!/usr/bin/env bash
# Lab hosts with the machine's systemd as PID 1 (--init systemd): the host
# boots to "running", the service resource (kiln-agent over the lab's real
# sshd, which systemd runs as kiln-lab-sshd.service) installs, enables,
# starts and restarts a unit, `kiln lab reboot` brings the host back with
# its files and the enabled unit running, `lab sshd stop|start` works, and
# `lab down` leaves no cgroup, process or mount.  Then a --init tiny host,
# where the service resource says it cannot manage services.
. "$(dirname "$0")/lib.sh"
AGENT=${KILN_AGENT:-$(dirname "$KILN")/kiln-agent}
[ -x "$AGENT" ] || fail "no kiln-agent at $AGENT"
lab_up 2 --init systemd

sshn() { ssh -F "$LAB/ssh_config" -o BatchMode=yes -o ConnectTimeout=10 "$@"; }

# Units allowed to fail at boot: none so far (systemctl --failed must be empty).
EXPECTED_FAILED=""

# booted NODE: wait (bounded) for the end of boot; it must be "running".
booted() {
	local st
	st=$(on "$1" timeout 20 systemctl is-system-running --wait 2>/dev/null) || true
	if [ "$st" = degraded ]; then
		local failed
		failed=$(on "$1" systemctl --failed --no-legend --plain | awk '{print $1}' | sort | tr '\n' ' ')
		[ "$failed" = "$EXPECTED_FAILED" ] || fail "$1 degraded, failed units: $failed"
	else
		assert_eq "$st" running "$1 systemctl is-system-running"
	fi
}

say "both hosts boot systemd to running"
kiln_rc 0 lab status --dir "$LAB" -o json
assert_eq "$(json '[h["init"] for h in j["hosts"]]')" "['systemd', 'systemd']" "init of each host"
for n in node1 node2; do
	booted $n
	assert_eq "$(on $n cat /proc/1/comm)" systemd "$n PID 1"
	assert_eq "$(on $n systemctl is-active kiln-lab-sshd.service)" active "$n kiln-lab-sshd"
	assert_eq "$(on $n systemctl is-enabled ssh.service 2>/dev/null || true)" masked "$n machine's ssh.service"
	assert_eq "$(sshn $n hostname)" $n "ssh to $n"
done
# The host's /etc is its own: the machine keeps its machine-id.
[ "$(on node1 cat /etc/machine-id)" != "$(cat /etc/machine-id 2>/dev/null)" ] || fail "node1 shares the machine's machine-id"
[ "$(on node1 cat /etc/machine-id)" != "$(on node2 cat /etc/machine-id)" ] || fail "node1 and node2 share a machine-id"

# put NODE: the agent and the resource list into NODE (lab hosts do not see /work).
put() {
	on "$1" sh -c 'cat >/usr/local/bin/kiln-agent && chmod 755 /usr/local/bin/kiln-agent' <"$AGENT"
	on "$1" sh -c 'cat >/root/res.json' <"$T/res.json"
}
# The resource list the agent applies.
resources() { # resources VERSION
	python3 - "$1" >"$T/res.json" <<'PY'
import json, sys
unit = ("[Unit]\nDescription=kiln demo v%s\n\n[Service]\nExecStart=/bin/sleep infinity\n\n"
        "[Install]\nWantedBy=multi-user.target\n") % sys.argv[1]
print(json.dumps([
    {"type": "file", "path": "/etc/systemd/system/kiln-demo.service", "content": unit},
    {"type": "service", "name": "kiln-demo", "enabled": True, "state": "running",
     "watch": ["file:/etc/systemd/system/kiln-demo.service"]},
]))
PY
}
# agent NODE: apply $T/res.json on NODE over ssh; results in $OUT as JSON.
agent() {
	local rc=0
	put "$1"
	sshn "$1" kiln-agent apply /root/res.json >"$T/out" 2>"$T/err" || rc=$?
	OUT=$(cat "$T/out")
	[ $rc = 0 ] || { cat "$T/out" "$T/err" >&2; fail "kiln-agent apply on $1 exited $rc"; }
}
# The statuses of the agent's results (one JSON object a line, "op":"result").
statuses() { python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(" ".join(r["status"] for r in rs if r.get("op") == "result"))' "$T/out"; }
mainpid() { on "$1" systemctl show -p MainPID --value kiln-demo; }

say "the service resource installs, enables and starts kiln-demo"
resources 1
agent node1
assert_eq "$(statuses)" "changed changed" "first apply"
assert_eq "$(on node1 systemctl is-active kiln-demo)" active "kiln-demo active"
assert_eq "$(on node1 systemctl is-enabled kiln-demo)" enabled "kiln-demo enabled"
pid1=$(mainpid node1)
[ "$pid1" -gt 1 ] || fail "kiln-demo has no main pid ($pid1)"
[ -e /etc/systemd/system/kiln-demo.service ] && fail "the unit reached the machine's /etc"

say "a changed unit file restarts it"
resources 2
agent node1
assert_eq "$(statuses)" "changed changed" "apply of version 2"
assert_contains "$(cat "$T/out")" "restart kiln-demo" "agent result"
pid2=$(mainpid node1)
[ "$pid2" -gt 1 ] && [ "$pid2" != "$pid1" ] || fail "kiln-demo not restarted (main pid $pid1 -> $pid2)"
assert_eq "$(on node1 systemctl show -p Description --value kiln-demo)" "kiln demo v2" "reloaded unit"

say "kiln lab reboot node1: files kept, the enabled unit runs again"
kiln_rc 0 lab status --dir "$LAB" -o json
init_before=$(json '[h["init_pid"] for h in j["hosts"] if h["name"] == "node1"][0]')
on node1 sh -c 'echo before > /root/kiln-reboot-probe'
kiln_rc 0 lab reboot --dir "$LAB" node1
kiln_rc 0 lab status --dir "$LAB" -o json
init_after=$(json '[h["init_pid"] for h in j["hosts"] if h["name"] == "node1"][0]')
[ "$init_after" != "$init_before" ] || fail "node1's init is still pid $init_before"
[ "$(json '[h["alive"] for h in j["hosts"]]')" = "[True, True]" ] || fail "a host is down after the reboot: $OUT"
kill -0 "$init_before" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$init_before/stat")" != Z ] &&
	fail "the old init $init_before still runs"
booted node1
assert_eq "$(on node1 cat /root/kiln-reboot-probe)" before "file written before the reboot"
assert_eq "$(on node1 systemctl is-active kiln-demo)" active "kiln-demo after reboot"
pid3=$(mainpid node1)
[ "$pid3" -gt 1 ] && [ "$pid3" != "$pid2" ] || fail "kiln-demo main pid after reboot: $pid3"
# Strict host key checking: the same host key after the reboot.
assert_eq "$(sshn node1 hostname)" node1 "ssh to node1 after reboot"

say "second apply changes nothing"
agent node1
assert_eq "$(statuses)" "ok ok" "second apply"

say "lab sshd stop|start through systemd"
kiln_rc 0 lab sshd --dir "$LAB" node2 stop
assert_eq "$(on node2 systemctl is-active kiln-lab-sshd.service || true)" inactive "node2 sshd unit"
sshn node2 true 2>/dev/null && fail "ssh to node2 works with its sshd stopped"
kiln_rc 0 lab sshd --dir "$LAB" node2 start
assert_eq "$(sshn node2 hostname)" node2 "ssh to node2 after start"

say "lab down leaves no cgroup, process or mount"
netns_ids=""
for n in node1 node2; do netns_ids="$netns_ids $(stat -L -c %i "/run/netns/$LAB_NAME-$n")"; done
kiln_rc 0 lab down --dir "$LAB"
left=$(ls -d /sys/fs/cgroup/*/kiln-lab-"$LAB_NAME"-* /sys/fs/cgroup/kiln-lab-"$LAB_NAME"-* 2>/dev/null || true)
assert_eq "$left" "" "cgroup dirs left"
for p in /proc/[0-9]*; do
	st=$(awk '{print $3}' "$p/stat" 2>/dev/null) || continue
	[ "$st" = Z ] && continue
	ino=$(stat -L -c %i "$p/ns/net" 2>/dev/null) || continue
	for i in $netns_ids; do [ "$ino" = "$i" ] && fail "process ${p#/proc/} ($(cat "$p/comm")) left in the lab's network"; done
done
grep -q "/run/kiln-lab/$LAB_NAME\b" /proc/mounts && fail "mounts left"
ip netns list | grep -q "^$LAB_NAME-" && fail "namespaces left"

say "a --init tiny host: the service resource cannot manage services there"
lab_up 1 --init tiny
kiln_rc 0 lab status --dir "$LAB" -o json
assert_eq "$(json '[h["init"] for h in j["hosts"]]')" "['tiny']" "init"
assert_eq "$(on node1 cat /proc/1/comm)" kiln-lab-init "node1 PID 1"
resources 1
rc=0
put node1
sshn node1 kiln-agent apply /root/res.json >"$T/out" 2>"$T/err" || rc=$?
assert_eq "$rc" 1 "agent exit status on a host without systemd"
OUT=$(cat "$T/out")
assert_eq "$(statuses)" "changed failed" "results on a tiny host"
assert_contains "$OUT" "no systemd on this node: cannot manage service 'kiln-demo'" "agent result"
