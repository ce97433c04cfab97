#!/usr/bin/env bash
# Reboots.  A systemd host that reboots itself (systemctl reboot) comes back
# on its own, as a server does (the lab's keeper starts it again: same
# files, a fresh /run).  kiln apply reboots the nodes a package asked to
# (/run/reboot-required, the base stack's reboot: true), waits for each to
# answer with a new boot and goes on; with --serial 1 one node at a time
# (a rolling reboot); a node that did not ask is not touched; a second
# apply changes nothing.
. "$(dirname "$0")/lib.sh"
(for _ in $(seq 300); do sleep 1; kill -0 $$ 2>/dev/null || exit 0; done
 echo "FAIL $TEST: over 300 s" >&2; kill -TERM $$) &
lab_up 3 --init systemd
on_fail() {
	"$KILN" lab status --dir "$LAB" 2>&1 || true
	printf '%s\n' "--- last output" "$OUT" "$ERR"
}
# the host's boot: its init's start time (ticks since the machine booted)
boot() { on "$1" cut -d' ' -f22 /proc/1/stat; }
# wait until HOST answers with a boot other than $2 and is running
wait_boot() {
	local b
	for _ in $(seq 120); do
		b=$(boot "$1" 2>/dev/null || true)
		if [ -n "$b" ] && [ "$b" != "$2" ] &&
		   [ "$(on "$1" systemctl is-system-running 2>/dev/null || true)" = running ]; then
			return 0
		fi
		sleep 0.5
	done
	fail "$1 did not come back from its reboot"
}

say "a host that reboots itself comes back: same files, a new /run"
b1=$(boot node1)
on node1 sh -c 'echo kept >/etc/kiln-marker; echo gone >/run/kiln-marker'
on node1 systemctl reboot || true
wait_boot node1 "$b1"
assert_eq "$(on node1 cat /etc/kiln-marker)" kept "/etc across the reboot"
on node1 test ! -e /run/kiln-marker || fail "/run survived the reboot"
assert_eq "$(on node1 systemctl is-active ssh)" active "sshd after the reboot"

say "converge with reboot: true; nobody asked, nobody reboots"
# not base's default net.ipv4.ip_forward: a lab host starts with it 0 (the
# lab's rule: hosts do not route), where a server's boot applies sysctl.d
sed -i 's/^  base:$/  base:\n    reboot: true\n    sysctls: {net.ipv4.conf.all.log_martians: 1}/' "$SPEC"
grep -q '^    reboot: true' "$SPEC" || fail "spec edit"
kiln_rc 0 apply -f "$SPEC" -o json
assert_eq "$(json '[n.get("reboots", 0) for n in j["nodes"]]')" "[0, 0, 0]" "reboots"

say "a package asks node2 and node3 for a reboot: plan shows it"
for n in node2 node3; do
	on $n sh -c 'touch /run/reboot-required; echo linux-image-kiln-test >/run/reboot-required.pkgs'
done
kiln_rc 2 plan -f "$SPEC"
assert_contains "$OUT" "reboot: /run/reboot-required (linux-image-kiln-test)"
assert_contains "$(printf '%s\n' "$OUT" | grep '^node1 ')" " 0 of " "node1's plan line"

say "apply --serial 1: node2, then node3, each back before the next goes down"
b1=$(boot node1) b2=$(boot node2) b3=$(boot node3)
kiln_rc 0 apply -f "$SPEC" --serial 1 -o json
assert_eq "$(json '[n.get("reboots", 0) for n in j["nodes"]]')" "[0, 1, 1]" "reboots"
assert_eq "$(json '[n["status"] for n in j["nodes"]]')" "['ok', 'changed', 'changed']" "statuses"
assert_contains "$(json 'j["nodes"][1]["notes"]')" "base.prepare: rebooted, back in"
assert_eq "$(boot node1)" "$b1" "node1 not rebooted"
n2=$(boot node2) n3=$(boot node3)
[ "$n2" != "$b2" ] || fail "node2 did not reboot"
[ "$n3" != "$b3" ] || fail "node3 did not reboot"
# node3's reboot was asked only after node2 answered from its new boot, and
# runs 2 s after it is asked: its init starts > 2 s (200 ticks) after node2's
[ "$n3" -gt $((n2 + 200)) ] || fail "node3 rebooted while node2 was down ($n2, $n3)"
for n in node2 node3; do
	on $n test ! -e /run/reboot-required || fail "$n: reboot-required after the reboot"
done

say "again: nothing to do"
kiln_rc 0 apply -f "$SPEC" -o json
assert_eq "$(json "[(n[\"name\"], r[\"id\"], r.get(\"diff\", \"\")[:200], r.get(\"message\")) for n in j[\"nodes\"] for r in n[\"results\"] if r[\"status\"] != \"ok\"]")" "[]" "changes"
assert_eq "$(json '[n.get("reboots", 0) for n in j["nodes"]]')" "[0, 0, 0]" "reboots"
