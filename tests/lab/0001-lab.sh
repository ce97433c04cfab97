#!/bin/bash
# kiln lab: a 3-node lab behind a bastion, checked from the outside with real
# ssh: isolation of filesystems and networks, exec, sshd stop/start, rekey,
# a failed and an interrupted `up`, and a `down` that leaves nothing behind.
# Needs root.  KILN: the kiln binary (default build/bin/kiln, else
# build/src/cli/kiln).
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${KILN:-}" ]; then
	KILN=$here/../../build/bin/kiln
	[ -x "$KILN" ] || KILN=$here/../../build/src/cli/kiln
fi
fails=0
step=""

ok() { echo "ok - $step: $*"; }
fail() { echo "FAIL - $step: $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...: pass when COMMAND succeeds
	local what=$1; shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
refute() { # refute DESCRIPTION COMMAND...: pass when COMMAND fails
	local what=$1; shift
	if "$@"; then fail "$what"; else ok "$what"; fi
}

if [ "$(id -u)" != 0 ]; then
	echo "FAIL - kiln lab tests need root (namespaces, mounts)"
	exit 1
fi
if [ ! -x "$KILN" ]; then
	echo "FAIL - no kiln binary at $KILN (set KILN)"
	exit 1
fi

# Names and subnets unique to this run, so parallel labs do not collide.
id=$(( $$ % 1000 ))
NAME=t1-$id
NAME2=t2-$id
NAME3=t3-$id
work=$(mktemp -d /tmp/kiln-lab-test.XXXXXX)
DIR=$work/lab
probe=kiln-lab-probe-$NAME

cleanup() {
	for n in "$NAME" "$NAME2" "$NAME3"; do
		[ -e "/run/kiln-lab/$n.json" ] && "$KILN" lab down --name "$n" >/dev/null 2>&1
	done
	rm -f "/etc/$probe" "/root/$probe" "/$probe"
	rm -rf "$work"
}
trap cleanup EXIT

# Leftovers of lab $1: namespaces, mounts, the machine-side veth, processes,
# runtime files.  Prints what it finds; succeeds when there is nothing.
leftovers() {
	local n=$1 found=0
	if ip netns list | grep -q "^$n-"; then echo "  netns: $(ip netns list | grep "^$n-" | tr '\n' ' ')"; found=1; fi
	if grep -q "/run/kiln-lab/$n\b\|/run/netns/$n-" /proc/mounts; then echo "  mounts left"; found=1; fi
	if ip link show "kl-$n" >/dev/null 2>&1; then echo "  link kl-$n left"; found=1; fi
	if pgrep -f "/run/kiln-lab/$n/" >/dev/null; then echo "  processes: $(pgrep -f "/run/kiln-lab/$n/" | tr '\n' ' ')"; found=1; fi
	if [ -e "/run/kiln-lab/$n" ] || [ -e "/run/kiln-lab/$n.json" ]; then echo "  runtime files left"; found=1; fi
	return $found
}

# A pid that is gone or a zombie (reaped later by PID 1) counts as dead.
pid_dead() {
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "$st" = Z ]
}

# ---------------------------------------------------------------------------
step="up"
sub=""
for try in 0 1 2 3 4 5 6 7; do
	x=$(( (id + try * 37) % 200 + 20 ))
	out=$("$KILN" lab up --nodes 3 --bastion --name "$NAME" --dir "$DIR" \
		--subnet "10.213.$x.0/24" 2>&1)
	rc=$?
	if [ $rc = 0 ]; then sub=10.213.$x; break; fi
	echo "$out" | grep -q overlaps || break
done
if [ -z "$sub" ]; then
	fail "kiln lab up: $out"
	exit 1
fi
ok "3 nodes and a bastion on $sub.0/24"
BASTION=$sub.254
N1=$sub.11
N2=$sub.12
N3=$sub.13
KEY=$DIR/keys/id_ed25519
KH=$DIR/known_hosts

check "cluster.yaml names the bastion" grep -q "bastion: root@$BASTION:22" "$DIR/cluster.yaml"
check "cluster.yaml names node3" grep -q "address: $N3" "$DIR/cluster.yaml"
check "known_hosts has every host" test "$(grep -c ssh-ed25519 "$KH")" = 4
check "client key exists" test -s "$KEY" -a -s "$KEY.pub"

status=$("$KILN" lab status --name "$NAME")
check "status: all four alive" test "$(echo "$status" | grep -c ' alive$')" = 4
json=$("$KILN" -o json lab status --name "$NAME")
check "status -o json is JSON" python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["hosts"]) == 4' <<<"$json"
pids=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(str(h[k]) for h in d["hosts"] for k in ("init_pid","sshd_pid")))' <<<"$json")

# ---------------------------------------------------------------------------
step="ssh through the bastion"
SSHO=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KH"
      -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
      -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR)
jump() { # jump HOST CMD: strict ssh to HOST through the bastion
	local host=$1; shift
	ssh "${SSHO[@]}" -o ProxyCommand="ssh ${SSHO[*]} -W %h:%p root@$BASTION" "root@$host" "$@"
}
check "ssh -J bastion node2 hostname prints node2" test "$(jump node2 hostname 2>&1)" = node2
check "by address: node3" test "$(jump "$N3" hostname 2>&1)" = node3
check "ssh -F ssh_config node1" test "$(ssh -F "$DIR/ssh_config" -o BatchMode=yes node1 hostname 2>&1)" = node1
check "bastion itself" test "$(ssh "${SSHO[@]}" "root@$BASTION" hostname 2>&1)" = bastion
check "bastion port reachable from the machine" timeout 5 bash -c "exec 3<>/dev/tcp/$BASTION/22"
refute "node1 not reachable from the machine" timeout 5 bash -c "exec 3<>/dev/tcp/$N1/22" 2>/dev/null
refute "node2 not reachable from the machine" timeout 5 bash -c "exec 3<>/dev/tcp/$N2/22" 2>/dev/null
check "node1 reaches node2 inside the lab" "$KILN" lab exec --name "$NAME" node1 -- \
	timeout 5 bash -c "exec 3<>/dev/tcp/$N2/22"
check "ip_forward is off on the bastion" test \
	"$("$KILN" lab exec --name "$NAME" bastion -- cat /proc/sys/net/ipv4/ip_forward)" = 0

# ---------------------------------------------------------------------------
step="filesystem isolation"
jump node1 "echo node1-was-here > /etc/$probe && echo r > /root/$probe && mkdir /$probe && echo u > /usr/$probe"
check "node1 sees its own file" test "$(jump node1 cat /etc/$probe 2>&1)" = node1-was-here
refute "machine's /etc untouched" test -e "/etc/$probe"
refute "machine's /root untouched" test -e "/root/$probe"
refute "machine's /usr untouched" test -e "/usr/$probe"
refute "machine's / untouched" test -e "/$probe"
refute "node2 does not see node1's /etc file" jump node2 test -e "/etc/$probe"
check "each host has its own hostname file" test "$(jump node3 cat /etc/hostname)" = node3
check "minimal .bashrc" jump node2 "grep -q 'kiln lab' /root/.bashrc"
# (systemd's PrivateTmp= dirs of the host's own services aside)
check "private /tmp" test "$("$KILN" lab exec --name "$NAME" node1 -- sh -c 'touch /tmp/x-'$NAME'; ls /tmp | grep -v "^systemd-private-"')" = "x-$NAME"
refute "machine's /tmp untouched" test -e "/tmp/x-$NAME"

# ---------------------------------------------------------------------------
step="exec"
check "exec runs in the node" test "$("$KILN" lab exec --name "$NAME" node2 -- hostname)" = node2
"$KILN" lab exec --name "$NAME" node1 -- sh -c 'exit 42'
rc=$?
check "exit status 42 passes through (got $rc)" test $rc = 42
"$KILN" lab exec --name "$NAME" node1 -- true
check "exit status 0 passes through" test $? = 0
check "exec by lab directory" test "$("$KILN" lab exec --dir "$DIR" node3 -- hostname)" = node3
# The init is the default one: systemd where it can run, else kiln-lab-init.
init1=$("$KILN" -o json lab status --name "$NAME" | python3 -c 'import json,sys; print([h["init"] for h in json.load(sys.stdin)["hosts"] if h["name"] == "node1"][0])')
want_comm=kiln-lab-init
[ "$init1" = systemd ] && want_comm=systemd
check "PID namespace: the host's init ($init1) is PID 1" test \
	"$("$KILN" lab exec --name "$NAME" node1 -- cat /proc/1/comm)" = "$want_comm"
refute "exec of a missing program fails" "$KILN" lab exec --name "$NAME" node1 -- /nonexistent 2>/dev/null

# ---------------------------------------------------------------------------
step="sshd stop/start"
jump node2 "echo kept > /root/kept-$NAME"
check "stop" "$KILN" lab sshd --name "$NAME" node2 stop
check "status says node2 dead" bash -c "'$KILN' lab status --name '$NAME' | grep -q '^node2 .* dead$'"
refute "ssh to node2 fails while stopped" jump node2 true 2>/dev/null
check "node1 still answers" test "$(jump node1 hostname)" = node1
check "start" "$KILN" lab sshd --name "$NAME" node2 start
check "ssh to node2 works again" test "$(jump node2 hostname)" = node2
check "same root filesystem after restart" test "$(jump node2 cat /root/kept-$NAME)" = kept
check "start when running is a no-op" "$KILN" lab sshd --name "$NAME" node2 start

# ---------------------------------------------------------------------------
step="rekey"
check "rekey node3" "$KILN" lab rekey --name "$NAME" node3
out=$(jump node3 hostname 2>&1)
rc=$?
check "strict ssh to node3 now fails" test $rc != 0
check "... because the host key changed" grep -q "IDENTIFICATION HAS CHANGED\|verification failed" <<<"$out"
LOOSE=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null
       -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=no
       -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR)
check "node3's sshd runs (an empty known_hosts accepts it)" test "$(ssh "${LOOSE[@]}" \
	-o ProxyCommand="ssh ${SSHO[*]} -W %h:%p root@$BASTION" root@node3 hostname)" = node3

# ---------------------------------------------------------------------------
step="refusals"
if command -v setpriv >/dev/null; then
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$KILN" lab status --name "$NAME" 2>&1)
	rc=$?
	check "without root: one clear line ($out)" test $rc = 1 -a "$(echo "$out" | wc -l)" = 1
	check "... that says root is needed" grep -q "needs root" <<<"$out"
fi
refute "a second lab with the same name" "$KILN" lab up --name "$NAME" --dir "$work/dup" \
	--subnet 10.213.250.0/24 2>/dev/null
refute "an overlapping subnet" "$KILN" lab up --name "$NAME2" --dir "$work/dup" \
	--subnet "$sub.0/25" 2>/dev/null
check "... leaving nothing" leftovers "$NAME2"

step="failed up cleans up"
mkdir -p "$work/broken" && touch "$work/broken/keys"   # keys/ cannot be made
out=$("$KILN" lab up --name "$NAME3" --dir "$work/broken" --subnet 10.213.251.0/24 2>&1)
rc=$?
check "fails (rc $rc): $out" test $rc != 0
check "nothing left after the failure" leftovers "$NAME3"

step="interrupted up, then down"
"$KILN" lab up --name "$NAME2" --nodes 20 --dir "$work/l2" --subnet 10.213.252.0/24 \
	>/dev/null 2>&1 &
upid=$!
sleep 0.4
kill -9 $upid 2>/dev/null
wait $upid 2>/dev/null
if [ -e "/run/kiln-lab/$NAME2.json" ]; then
	check "down after a killed up" "$KILN" lab down --name "$NAME2"
fi
check "nothing left after the interrupted up" leftovers "$NAME2"

step="without a bastion"
if "$KILN" lab up --name "$NAME3" --nodes 2 --dir "$work/l3" --subnet 10.213.253.0/24 >/dev/null; then
	check "the machine reaches node2 directly (strict)" test "$(ssh -F /dev/null \
		-i "$work/l3/keys/id_ed25519" -o IdentitiesOnly=yes \
		-o UserKnownHostsFile="$work/l3/known_hosts" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o BatchMode=yes root@10.213.253.12 hostname)" = node2
	check "cluster.yaml has no bastion" bash -c "! grep -q bastion '$work/l3/cluster.yaml'"
	check "down" "$KILN" lab down "$work/l3"
	check "nothing left" leftovers "$NAME3"
else
	fail "up without a bastion"
fi

# ---------------------------------------------------------------------------
step="down"
check "down" "$KILN" lab down --name "$NAME"
check "no namespace, mount, veth, process or runtime file left" leftovers "$NAME"
check "unreachable route removed" test -z "$(ip route show type unreachable "$sub.0/24")"
for p in $pids; do
	[ "$p" = None ] && continue
	check "pid $p is gone" pid_dead "$p"
done
refute "status of a removed lab fails" "$KILN" lab status --name "$NAME" 2>/dev/null

echo
if [ $fails -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
