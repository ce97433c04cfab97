#!/usr/bin/env bash
# Lab hosts with the machine's systemd as PID 1 (--init systemd): the host
# boots to "running"; `kiln apply` of a spec with stacks.base.services
# (over the lab's real sshd, which systemd runs as the host's ssh.service)
# installs, enables, starts and restarts a unit; `kiln lab reboot` brings
# the host back with its files and the enabled unit running; `lab sshd
# stop|start` works; `lab down` leaves no cgroup, process or mount.  Then a
# --init tiny host, where the service resource says it cannot manage
# services.
. "$(dirname "$0")/lib.sh"
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
	assert_eq "$(on $n systemctl is-active ssh)" active "$n ssh.service"
	assert_contains "$(on $n systemctl show -p ExecStart --value ssh)" "/run/kiln-lab/" "$n ssh.service runs the lab's sshd config"
	assert_eq "$(on $n systemctl is-active sshd)" active "$n sshd alias"
	assert_eq "$(sshn $n hostname)" $n "ssh to $n"
done
# The host's /etc is its own: the machine keeps its machine-id.
[ "$(on node1 cat /etc/machine-id)" != "$(cat /etc/machine-id 2>/dev/null)" ] || fail "node1 shares the machine's machine-id"
[ "$(on node1 cat /etc/machine-id)" != "$(on node2 cat /etc/machine-id)" ] || fail "node1 and node2 share a machine-id"

# demo VERSION: the lab's spec plus a unit file and the service that runs it.
demo() {
	python3 - "$1" "$SPEC" <<'PY'
import sys
v, spec = sys.argv[1:]
base = open(spec).read().split("\n# demo\n")[0]
unit = ("[Unit]\\nDescription=kiln demo v%s\\n\\n[Service]\\nExecStart=/bin/sleep infinity\\n\\n"
        "[Install]\\nWantedBy=multi-user.target\\n") % v
open(spec, "w").write(base + "\n# demo\n    files:\n"
    "      - path: /etc/systemd/system/kiln-demo.service\n"
    "        content: \"" + unit + "\"\n"
    "    services:\n"
    "      - name: kiln-demo\n"
    "        watch: [/etc/systemd/system/kiln-demo.service]\n")
PY
}
# changed: resources kiln apply -o json reports changed on node1.
changed() { json '[n["changed"] for n in j["nodes"] if n["name"] == "node1"][0]'; }
mainpid() { on "$1" systemctl show -p MainPID --value kiln-demo; }

say "kiln apply: stacks.base.services installs, enables and starts kiln-demo"
demo 1
kiln_rc 0 apply -f "$SPEC" --limit node1 -o json
assert_eq "$(on node1 systemctl is-active kiln-demo)" active "kiln-demo active"
assert_eq "$(on node1 systemctl is-enabled kiln-demo)" enabled "kiln-demo enabled"
pid1=$(mainpid node1)
[ "$pid1" -gt 1 ] || fail "kiln-demo has no main pid ($pid1)"
[ -e /etc/systemd/system/kiln-demo.service ] && fail "the unit reached the machine's /etc"

say "a changed unit file restarts it"
demo 2
kiln_rc 2 plan -f "$SPEC" --limit node1
assert_contains "$OUT" "kiln-demo" "plan names the service"
kiln_rc 0 apply -f "$SPEC" --limit node1 -o json
assert_eq "$(changed)" 2 "resources changed by version 2 (file, service)"
pid2=$(mainpid node1)
[ "$pid2" -gt 1 ] && [ "$pid2" != "$pid1" ] || fail "kiln-demo not restarted (main pid $pid1 -> $pid2)"
assert_eq "$(on node1 systemctl show -p Description --value kiln-demo)" "kiln demo v2" "reloaded unit"

say "second apply changes nothing"
kiln_rc 0 apply -f "$SPEC" --limit node1 -o json
assert_eq "$(changed)" 0 "resources changed by a second apply"
kiln_rc 0 plan -f "$SPEC" --limit node1

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

say "after the reboot, apply restores what a reboot resets, and only that"
# runtime sysctls start from the kernel's defaults in the new network
# namespace (lab hosts mask systemd-sysctl, which cannot write /proc/sys)
kiln_rc 2 plan -f "$SPEC" --limit node1
assert_contains "$OUT" "net.ipv4.ip_forward: 0 -> 1" "plan after the reboot"
kiln_rc 0 apply -f "$SPEC" --limit node1 -o json
assert_eq "$(changed)" 1 "resources changed after the reboot (the sysctl)"
kiln_rc 0 plan -f "$SPEC" --limit node1

say "lab sshd stop|start through systemd"
kiln_rc 0 lab sshd --dir "$LAB" node2 stop
assert_eq "$(on node2 systemctl is-active ssh || true)" inactive "node2 ssh.service"
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
demo 1
kiln_rc 1 apply -f "$SPEC"
assert_contains "$OUT$ERR" "no systemd on this node: cannot manage service 'kiln-demo'" "apply on a tiny host"
