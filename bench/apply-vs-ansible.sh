#!/usr/bin/env bash
# Side by side: kiln apply vs Ansible (Debian's ansible, forks = N,
# pipelining on) doing the same `base` work on the same lab hosts behind one
# bastion, plus the floor: N parallel bare `ssh NODE true` through the same
# bastion (one ControlMaster connection to it, like kiln's single bastion
# session).  Each tool gets a freshly made lab for its first run.
#
# Usage (as root, after `cmake --build build`): bench/apply-vs-ansible.sh [N...]
# Default N: 10 50.  Prints wall times and ratios; not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/build/bin/kiln}
command -v ansible-playbook >/dev/null || { echo "needs ansible: scripts/deps.sh --bench" >&2; exit 1; }
W=$(mktemp -d "$PWD/build/bench-apply.XXXXXX")
LAB=$W/lab
trap '"$KILN" lab down --dir "$LAB" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

lab() {
	"$KILN" lab down --dir "$LAB" >/dev/null 2>&1 || true
	"$KILN" lab up --nodes "$1" --bastion --dir "$LAB" --name kbench --subnet 10.213.250.0/24 >/dev/null
}

# The lab's hosts as an Ansible inventory, through the same bastion.
inventory() {
	"$KILN" lab status --dir "$LAB" -o json | python3 bench/lab-inventory.py "$LAB" >"$W/hosts.ini"
}

# The floor: N parallel `ssh NODE true`, all through one ControlMaster
# connection to the bastion (what kiln's single bastion session amounts to).
floor() {
	local n=$1 sock=$W/cm.sock b t0
	b=$("$KILN" lab status --dir "$LAB" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bastion"])')
	"$KILN" lab status --dir "$LAB" -o json |
		python3 -c 'import json,sys; [print(h["address"]) for h in json.load(sys.stdin)["hosts"] if h["name"] != "bastion"]' >"$W/addrs"
	local opts=(-F none -i "$LAB/keys/id_ed25519" -o UserKnownHostsFile="$LAB/known_hosts"
		-o StrictHostKeyChecking=yes -o BatchMode=yes)
	ssh "${opts[@]}" -M -S "$sock" -N -f "root@$b"
	t0=$(now)
	while read -r a; do
		ssh "${opts[@]}" -o ProxyCommand="ssh -S $sock -W %h:%p root@$b" "root@$a" true &
	done <"$W/addrs"
	wait
	elapsed "$t0" "$(now)"
	ssh -S "$sock" -O exit "root@$b" 2>/dev/null || true
}

run_kiln() {
	local t0
	t0=$(now)
	"$KILN" apply -f "$LAB/cluster.yaml" >"$W/kiln.out" 2>&1 || { cat "$W/kiln.out" >&2; exit 1; }
	elapsed "$t0" "$(now)"
}

run_ansible() {
	local forks=$1 t0
	t0=$(now)
	ANSIBLE_CONFIG=$W/none.cfg ANSIBLE_PIPELINING=True ANSIBLE_FORKS=$forks ANSIBLE_HOST_KEY_CHECKING=True \
	ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_RETRY_FILES_ENABLED=False \
		ansible-playbook -i "$W/hosts.ini" bench/base-playbook.yml \
		-e "lab_pubkey='$(cat "$LAB/keys/id_ed25519.pub")'" >"$W/ansible.out" 2>&1 ||
		{ tail -30 "$W/ansible.out" >&2; exit 1; }
	elapsed "$t0" "$(now)"
}

: >"$W/none.cfg"   # an empty ansible.cfg: defaults plus the environment below
printf '%-4s %10s %10s %10s %12s %12s %10s %10s\n' N floor kiln-1st kiln-2nd ansible-1st ansible-2nd "2nd:a/k" "k2/floor"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 50)
for n in "${sizes[@]}"; do
	lab "$n"
	inventory
	a1=$(run_ansible "$n")
	a2=$(run_ansible "$n")
	lab "$n"
	fl=$(floor "$n")
	k1=$(run_kiln)
	k2=$(run_kiln)
	grep -q "$n nodes, 0 changed" "$W/kiln.out" || { cat "$W/kiln.out" >&2; echo "kiln's second run changed something" >&2; exit 1; }
	printf '%-4s %10s %10s %10s %12s %12s %10s %10s\n' "$n" "$fl" "$k1" "$k2" "$a1" "$a2" \
		"$(python3 -c "print(f'{$a2/$k2:.1f}x')")" "$(python3 -c "print(f'{$k2/$fl:.2f}x')")"
done
