#!/usr/bin/env python3
"""Write an Ansible INI inventory for a kiln lab (reads `kiln lab status -o json`
on stdin): every node, reached through the lab's bastion with the lab's key and
known_hosts, as bench/apply-vs-ansible.sh needs."""
import json
import sys

lab_dir = sys.argv[1]
lab = json.load(sys.stdin)
nodes = [h for h in lab["hosts"] if h["name"] != "bastion"]
print("[nodes]")
for h in nodes:
    print("%s ansible_host=%s" % (h["name"], h["address"]))
print("[nodes:vars]")
print("ansible_user=root")
print("ansible_ssh_private_key_file=%s/keys/id_ed25519" % lab_dir)
# -o options do not reach ssh's -J hop (it would check ~/.ssh/known_hosts), so
# the bastion hop is a ProxyCommand carrying the same options.
hop = ("ssh -F none -i {d}/keys/id_ed25519 -o UserKnownHostsFile={d}/known_hosts "
       "-o StrictHostKeyChecking=yes -W %h:%p root@{b}").format(d=lab_dir, b=lab["bastion"])
print("ansible_ssh_common_args='-F none -o UserKnownHostsFile=%s/known_hosts "
      "-o StrictHostKeyChecking=yes -o ProxyCommand=\"%s\"'" % (lab_dir, hop))
