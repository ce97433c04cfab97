#!/usr/bin/env bash
# --gpus: kiln facts finds each host's NVIDIA GPUs (ids from pci.ids, the
# names libpci gives them) and nothing on a host without; /dev/nvidia* are
# private to their host; the machine's own PCI tree is untouched; down
# leaves no mount behind.
. "$(dirname "$0")/lib.sh"

say "bad --gpus values are refused before anything is made"
kiln_rc 1 lab up --nodes 2 --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --gpus node9=a100:1
assert_contains "$ERR" "no host 'node9'"
kiln_rc 1 lab up --nodes 2 --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --gpus node1=b200:1
assert_contains "$ERR" "unknown model 'b200' (known: a100,"
[ ! -e "/run/kiln-lab/$LAB_NAME.json" ] || fail "a refused up left a state file"

pci_before=$(ls /sys/bus/pci/devices | wc -l)
machine_nv=$(find /dev -maxdepth 1 -name 'nvidia*' | wc -l)
# The machine's functions a host keeps: all but display controllers (0x03xxxx).
machine_keep=$(cat /sys/bus/pci/devices/*/class 2>/dev/null | grep -vc '^0x03' || true)
lab_up 3 --gpus node1=a100:2,node2=t4:1

say "facts: node1 two A100s, node2 one T4, node3 none"
kiln_rc 0 facts -f "$SPEC" -o json
gpus() { json "[(g['vendor'], g['vendor_id'], g['device_id'], g.get('device_name')) for n in j['nodes'] if n['name'] == '$1' for g in n['facts']['gpus']]"; }
assert_eq "$(gpus node1)" "[('nvidia', '0x10de', '0x20b0', 'GA100 [A100 SXM4 40GB]'), ('nvidia', '0x10de', '0x20b0', 'GA100 [A100 SXM4 40GB]')]" "node1 gpus"
assert_eq "$(gpus node2)" "[('nvidia', '0x10de', '0x1eb8', 'TU104GL [Tesla T4]')]" "node2 gpus"
assert_eq "$(gpus node3)" "[]" "node3 gpus"
assert_eq "$(json "len(set(g['slot'] for n in j['nodes'] if n['name'] == 'node1' for g in n['facts']['gpus']))")" 2 "node1 distinct slots"
assert_eq "$(json "[p['class'] for n in j['nodes'] if n['name'] == 'node1' for p in n['facts']['pci'] if p['vendor_id'] == '0x10de']")" "['0x030200', '0x030200']" "node1 3D-controller class"
pcis() { json "len([n for n in j['nodes'] if n['name'] == '$1'][0]['facts']['pci'])"; }
assert_eq "$(pcis node3)" "$machine_keep" "node3 sees the machine's PCI functions"
assert_eq "$(pcis node1)" "$((machine_keep + 2))" "node1 PCI functions"
kiln_rc 0 facts -f "$SPEC"
assert_contains "$OUT" "2x NVIDIA GA100 [A100 SXM4 40GB]" "facts table"
assert_contains "$OUT" "1x NVIDIA TU104GL [Tesla T4]" "facts table"

say "device nodes: each host has its own"
assert_eq "$(on node1 sh -c 'cd /dev && echo nvidia*')" "nvidia0 nvidia1 nvidiactl" "node1 /dev"
assert_eq "$(on node1 stat -c '%F %t:%T' /dev/nvidia1 /dev/nvidiactl | tr '\n' ' ')" "character special file c3:1 character special file c3:ff " "node1 device numbers"
assert_eq "$(on node2 sh -c 'cd /dev && echo nvidia*')" "nvidia0 nvidiactl" "node2 /dev"
on node3 test ! -e /dev/nvidia0 || fail "node3 has /dev/nvidia0"
on node3 test -c /dev/null -a -c /dev/urandom -a -c /dev/tty || fail "node3 lacks standard /dev nodes"

say "the machine is untouched"
assert_eq "$(ls /sys/bus/pci/devices | wc -l)" "$pci_before" "machine PCI functions"
assert_eq "$(find /dev -maxdepth 1 -name 'nvidia*' | wc -l)" "$machine_nv" "machine /dev/nvidia*"

say "down leaves no mount, namespace or process"
kiln_rc 0 lab down --dir "$LAB"
! grep -q "/run/kiln-lab/$LAB_NAME\b" /proc/mounts || fail "mounts left: $(grep "/run/kiln-lab/$LAB_NAME" /proc/mounts)"
! ip netns list | grep -q "^$LAB_NAME-" || fail "namespaces left"
! pgrep -f "/run/kiln-lab/$LAB_NAME/" >/dev/null || fail "processes left"
[ ! -e "/run/kiln-lab/$LAB_NAME" ] || fail "runtime dir left"
