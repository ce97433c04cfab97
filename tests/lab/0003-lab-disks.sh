#!/usr/bin/env bash
# --disks and --used-disk: kiln facts lists on each node exactly its own
# disks (2 free of 1 GiB, and the used one in use because it is mounted),
# backed by loop devices of that node's own files; down detaches every
# loop device and removes the files, also after an `up` killed midway.
. "$(dirname "$0")/lib.sh"

say "bad --disks values are refused"
kiln_rc 1 lab up --nodes 2 --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --disks 2x100
assert_contains "$ERR" "--disks '2x100': expected COUNTxSIZE"
kiln_rc 1 lab up --nodes 2 --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --disks 17x1G
assert_contains "$ERR" "COUNT 1 to 16"

# The loop devices backed by file $1, by the kernel's record (losetup -j
# needs the file to exist, and down removes it).
loops_of() { grep -lx -e "$1" -e "$1 (deleted)" /sys/block/loop*/loop/backing_file 2>/dev/null || true; }

lab_up 2 --disks 2x1G --used-disk
files=$(ls "$LAB"/disks/*.img)
assert_eq "$(echo $files | wc -w)" 6 "disk files"
for f in $files; do [ -n "$(loops_of "$f")" ] || fail "no loop device for $f"; done

say "facts: each node has sda and sdb free, sdc in use"
kiln_rc 0 facts -f "$SPEC" -o json
for n in node1 node2; do
	assert_eq "$(json "[(d['name'], d['size_bytes'], d['in_use'], d['in_use_reason']) for x in j['nodes'] if x['name'] == '$n' for d in x['facts']['disks']]")" \
		"[('sda', 1073741824, False, None), ('sdb', 1073741824, False, None), ('sdc', 1073741824, True, 'mounted at /srv/data')]" "$n disks"
done
kiln_rc 0 facts -f "$SPEC"
assert_contains "$OUT" "2 (2 GiB)" "free disks in the table"

say "each node's disks are its own loop devices"
# The loop devices losetup finds for a node's files == the ones behind its /sys/block.
for n in node1 node2; do
	want=$(for f in "$LAB"/disks/$n-*.img; do losetup -n -O NAME -j "$f"; done | sed 's|/dev/||' | sort | tr '\n' ' ')
	got=$(on $n sh -c 'for d in /sys/block/*; do basename "$(readlink -f "$d")"; done' | sort | tr '\n' ' ')
	assert_eq "$got" "$want" "$n loop devices"
	[ "$(echo $want | wc -w)" = 3 ] || fail "$n: expected 3 loop devices, got '$want'"
	on $n test -b /dev/sda -a -b /dev/sdc || fail "$n lacks /dev/sda or /dev/sdc"
	assert_eq "$(on $n cat /srv/data/README)" "kiln lab: data on a used disk" "$n data on sdc"
done
n1=$(on node1 stat -c '%t:%T' /dev/sda /dev/sdb /dev/sdc | sort)
n2=$(on node2 stat -c '%t:%T' /dev/sda /dev/sdb /dev/sdc | sort)
[ -z "$(comm -12 <(echo "$n1") <(echo "$n2"))" ] || fail "node1 and node2 share a device number"
! grep -q "/srv/data" /proc/mounts || fail "the used disk is mounted on the machine"

say "down detaches every loop device and removes the files"
kiln_rc 0 lab down --dir "$LAB"
for f in $files; do
	[ -z "$(loops_of "$f")" ] || fail "loop device left for $f: $(loops_of "$f")"
	[ ! -e "$f" ] || fail "$f left"
done
! grep -q "/run/kiln-lab/$LAB_NAME\b" /proc/mounts || fail "mounts left"
! ip netns list | grep -q "^$LAB_NAME-" || fail "namespaces left"

say "an up killed once its disks are attached: down still cleans up"
"$KILN" lab up --nodes 2 --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --disks 1x1G --used-disk >/dev/null 2>&1 &
up=$!
for _ in $(seq 1 500); do
	[ -n "$(losetup -j "$LAB/disks/node2-sdb.img" 2>/dev/null)" ] && break
	kill -0 $up 2>/dev/null || break
	sleep 0.01
done
kill -9 $up 2>/dev/null || true
wait $up 2>/dev/null || true
"$KILN" lab down --dir "$LAB" >/dev/null 2>&1 || "$KILN" lab down --name "$LAB_NAME" >/dev/null 2>&1 || true
for f in "$LAB"/disks/node1-sda.img "$LAB"/disks/node1-sdb.img "$LAB"/disks/node2-sda.img "$LAB"/disks/node2-sdb.img; do
	[ -z "$(loops_of "$f")" ] || fail "after a killed up: loop device left for $f"
	[ ! -e "$f" ] || fail "after a killed up: $f left"
done
! grep -q "/run/kiln-lab/$LAB_NAME\b" /proc/mounts || fail "after a killed up: mounts left"
[ ! -e "/run/kiln-lab/$LAB_NAME.json" ] || fail "after a killed up: state file left"
