#!/usr/bin/env bash
# kiln lab up --bmc: every node gets a real ipmi_sim (Debian's openipmi) on a
# management bridge, and `kiln power` / `kiln bootdev` drive them through the
# bmc: settings lab up wrote into cluster.yaml (IPMI 2.0 lanplus from the
# machine).  Power off really stops the node (its init is gone, ssh fails,
# exec refuses, the other node is untouched); power on and cycle start it
# again with the files written before; bootdev is recorded by the lab; both
# nodes powered off and on at once; `lab down` leaves no ipmi_sim, no
# management namespace and no veth, also after an `up` killed midway.
. "$(dirname "$0")/lib.sh"
command -v ipmi_sim >/dev/null || fail "ipmi_sim missing (apt-get install openipmi)"
lab_up 2 --bmc

MGMT=10.214.$((num % 200 + 20))
sshn() { ssh -F "$LAB/ssh_config" -o BatchMode=yes -o ConnectTimeout=5 "$@"; }

# A pid that is gone or a zombie (reaped later by PID 1) counts as dead.
pid_dead() {
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "$st" = Z ]
}
# host_field NODE EXPR: EXPR over node's entry (h) of `lab status -o json`.
host_field() {
	kiln_rc 0 -o json lab status --dir "$LAB"
	json "[h for h in j['hosts'] if h['name'] == '$1'][0]$2"
}
# power_of NODES: what `kiln power status` reads from the BMCs, as JSON.
power_of() {
	kiln_rc 0 -o json power status "$1" -f "$SPEC"
	json "' '.join(n['name'] + '=' + n['power'] for n in j)"
}
# ssh_back NODE: wait (bounded) until NODE's sshd answers again.
ssh_back() {
	for _ in $(seq 1 100); do
		sshn "$1" true 2>/dev/null && return 0
		sleep 0.2
	done
	fail "$1: ssh does not come back"
}

say "the BMCs: addresses, spec, password file"
kiln_rc 0 -o json lab status --dir "$LAB"
assert_eq "$(json "j['bmc_subnet']")" "$MGMT.0/24" "management subnet"
assert_eq "$(json "[h['bmc']['address'] for h in j['hosts']]")" "['$MGMT.11', '$MGMT.12']" "BMC addresses"
assert_eq "$(json "[h['bmc']['alive'] for h in j['hosts']]")" "[True, True]" "ipmi_sim running"
assert_eq "$(stat -c %a "$LAB/bmc-password")" 600 "mode of the BMC password file"
grep -q "password_file: bmc-password" "$SPEC" || fail "cluster.yaml has no bmc password_file"
for n in node1 node2; do
	pid=$(host_field $n "['bmc']['pid']")
	assert_eq "$(cat /proc/$pid/comm)" ipmi_sim "$n BMC process"
done

say "power status through the BMCs: both on"
assert_eq "$(power_of all)" "node1=on node2=on" "power status"

say "power off node1: it stops, node2 does not"
sshn node1 'echo kept-across-power > /root/bmc-probe' || fail "write on node1"
pid1=$(host_field node1 "['init_pid']")
pid2=$(host_field node2 "['init_pid']")
kiln_rc 0 power off node1 -f "$SPEC"
pid_dead "$pid1" || fail "node1's init $pid1 still runs after power off"
sshn node1 true 2>/dev/null && fail "ssh to node1 works after power off"
assert_eq "$(host_field node2 "['init_pid']")" "$pid2" "node2's init after node1's power off"
sshn node2 true || fail "ssh to node2 after node1's power off"
assert_eq "$(power_of all)" "node1=off node2=on" "power status after off"
# Off stays off: status and exec do not start it.
assert_eq "$(host_field node1 "['bmc']['power']")" off "lab status power of node1"
kiln_rc 1 lab exec --dir "$LAB" node1 -- true
assert_contains "$ERR" "node1 is powered off" "exec on a powered-off node"
assert_eq "$(power_of node1)" "node1=off" "power status after status and exec"

say "power on node1: back with its files"
kiln_rc 0 power on node1 -f "$SPEC"
ssh_back node1
assert_eq "$(sshn node1 cat /root/bmc-probe)" kept-across-power "file after power on"
pid1=$(host_field node1 "['init_pid']")
assert_eq "$(power_of all)" "node1=on node2=on" "power status after on"

say "power cycle node1: a new init, the files kept"
kiln_rc 0 power cycle node1 -f "$SPEC"
# ipmi_sim powers off, then on again about a second later.
for _ in $(seq 1 150); do
	new=$(host_field node1 "['init_pid']")
	[ "$new" != None ] && [ "$new" != "$pid1" ] && break
	sleep 0.2
done
[ "$new" != None ] && [ "$new" != "$pid1" ] || fail "node1's init after cycle: $new (was $pid1)"
pid_dead "$pid1" || fail "node1's old init $pid1 survived the cycle"
ssh_back node1
assert_eq "$(sshn node1 cat /root/bmc-probe)" kept-across-power "file after power cycle"
assert_eq "$(host_field node2 "['init_pid']")" "$pid2" "node2's init after node1's cycle"

say "bootdev pxe --once: recorded by the lab"
assert_eq "$(host_field node1 "['bmc']['bootdev']")" default "node1 boot device before"
kiln_rc 0 bootdev pxe node1 --once -f "$SPEC"
assert_eq "$(host_field node1 "['bmc']['bootdev']")" pxe "node1 boot device"
assert_eq "$(host_field node2 "['bmc']['bootdev']")" default "node2 boot device"

say "both nodes at once: off all, on all (each BMC's action under the lab's lock)"
kiln_rc 0 power off all -f "$SPEC"
assert_eq "$(power_of all)" "node1=off node2=off" "power status after off all"
kiln_rc 0 -o json lab status --dir "$LAB"
assert_eq "$(json "[(h['init_pid'], h['bmc']['power']) for h in j['hosts']]")" "[(None, 'off'), (None, 'off')]" "lab status after off all"
kiln_rc 0 power on all -f "$SPEC"
ssh_back node1
ssh_back node2
assert_eq "$(sshn node1 cat /root/bmc-probe)" kept-across-power "file after off all, on all"
assert_eq "$(power_of all)" "node1=on node2=on" "power status after on all"

# no_bmc_left PIDS...: the lab's ipmi_sims, namespaces, veth and route are gone.
no_bmc_left() {
	local p
	for p in "$@"; do pid_dead "$p" || fail "ipmi_sim $p left after down"; done
	for p in $(pgrep -x ipmi_sim || true); do
		if grep -q "/run/kiln-lab/$LAB_NAME/" "/proc/$p/cmdline" 2>/dev/null && ! pid_dead "$p"; then
			fail "ipmi_sim $p of the lab left after down"
		fi
	done
	ip netns list | grep -q "^$LAB_NAME-" && fail "namespaces left: $(ip netns list | grep "^$LAB_NAME-" | tr '\n' ' ')"
	ip link show "km-$LAB_NAME" >/dev/null 2>&1 && fail "veth km-$LAB_NAME left"
	ip route show | grep -q "^$MGMT.0/24" && fail "route to the management subnet left"
	[ -e "/run/kiln-lab/$LAB_NAME.json" ] && fail "state file left"
	return 0
}

say "lab down: no ipmi_sim, no management network"
bmcpids="$(host_field node1 "['bmc']['pid']") $(host_field node2 "['bmc']['pid']")"
kiln_rc 0 lab down --dir "$LAB"
no_bmc_left $bmcpids

say "an up killed once its BMCs run: down still removes them"
"$KILN" lab up --nodes 2 --bmc --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" >/dev/null 2>&1 &
up=$!
sims=""
for _ in $(seq 1 500); do
	sims=$(pgrep -f "^/usr/bin/ipmi_sim .*/run/kiln-lab/$LAB_NAME/node2/" || true)
	[ -n "$sims" ] && break
	kill -0 $up 2>/dev/null || break
	sleep 0.01
done
kill -9 $up 2>/dev/null || true
wait $up 2>/dev/null || true
[ -n "$sims" ] || fail "node2's ipmi_sim never ran during up"
kiln_rc 0 lab down --name "$LAB_NAME"
no_bmc_left $sims
