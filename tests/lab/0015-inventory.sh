#!/usr/bin/env bash
# An Ansible INI inventory with groups, children and a ProxyJump bastion
# drives the same apply.
. "$(dirname "$0")/lib.sh"
lab_up 3 --bastion

bastion=$(python3 -c 'import sys,re; t=open(sys.argv[1]).read(); print(re.search(r"bastion:\s*(\S+)", t).group(1))' "$SPEC")
addr() { python3 -c 'import sys,re; t=open(sys.argv[1]).read(); print(re.search(r"name: "+sys.argv[2]+r"\s+address: (\S+)", t).group(1))' "$SPEC" "$1"; }
cat >"$LAB/hosts.ini" <<INI
[gpu]
node1 ansible_host=$(addr node1)

[cpu]
node2 ansible_host=$(addr node2)
node3 ansible_host=$(addr node3) ansible_port=22

[workers:children]
gpu
cpu

[workers:vars]
ansible_user=root
ansible_ssh_common_args='-o ProxyJump=$bastion -o StrictHostKeyChecking=yes'
INI
cat >"$LAB/inv.yaml" <<YAML
cluster: inv
ssh:
  key: keys/id_ed25519
  known_hosts: known_hosts
inventory: hosts.ini
stacks:
  base:
    admin_user: {name: kiln, key_files: [keys/id_ed25519.pub]}
YAML
kiln_rc 0 apply -f "$LAB/inv.yaml" -o json
assert_eq "$(json '[n["name"] for n in j["nodes"]]')" "['node1', 'node2', 'node3']" "nodes"
assert_eq "$(json 'j["bastion_connections"]')" 1 "bastion connections"
assert_eq "$(on node3 cat /proc/sys/net/ipv4/ip_forward)" 1 "node3 converged"
kiln_rc 0 apply -f "$LAB/inv.yaml" --limit workers
assert_contains "$OUT" "3 nodes, 0 changed"
kiln_rc 0 plan -f "$LAB/inv.yaml" --limit gpu -o json
assert_eq "$(json '[n["name"] for n in j["nodes"]]')" "['node1']" "--limit gpu"
