#!/usr/bin/env bash
# The ceph stack on 3 systemd nodes (and a fourth that joins late), each
# with 2 free 8 GiB disks and one used disk (ext4, mounted, with data),
# packages from the lab's mirror: plan says which disks become OSDs and why
# the used one is passed over; apply -> HEALTH_OK, 3 monitors in quorum, 6
# OSDs up and in, 2 per node on sda and sdb; every used disk's content is
# unchanged; a second apply changes nothing; RBD: 64 MiB written and read
# back equal; CephFS: a file written on node1 is read byte-identical on
# node3; no key in the state database, the run records, kiln's output or
# logs (-vv) or -o json; keys 0600; `kiln storage status` (-o json) shows
# health, quorum and every OSD by node and disk; an OSD daemon stopped ->
# reported down, data readable, apply brings it back to HEALTH_OK; a
# monitor stopped -> quorum holds, apply restores it; node4 with 2 free
# disks joins: 8 OSDs up and in, HEALTH_OK, every PG active+clean, the RBD
# image and the CephFS file written before read back byte-identical, a
# second apply changes nothing; node2 reboots -> its monitor, manager, MDS,
# OSDs and mount come back without an apply; node4 reboots -> its OSDs and
# the CephFS mount come back without an apply, HEALTH_OK, plan has no ceph
# change;
# node4's sdb vanishes (its OSD stopped, the disk gone from the node's
# view) -> plan notes "osd.N on /dev/sdb: disk gone, not recreated" and
# makes no OSD; storage status shows osd.N down on node4; node4 leaves the
# spec -> plan shows the retire command, apply takes its OSDs out, drains
# and purges them: 6 OSDs on node1-3, HEALTH_OK, the RBD image intact, a
# second apply changes nothing.
# Root; the first run fills the mirror cache from Debian's mirror.
. "$(dirname "$0")/lib.sh"
CACHE=${KILN_MIRROR_CACHE_CEPH:-/var/cache/kiln/lab-mirror-ceph}
PKGS=ceph-mon,ceph-mgr,ceph-osd,ceph-mds,ceph-common,ceph-fuse
NODES="node1 node2 node3"
ALL="$NODES node4"

: >"$T/all-output"
keep() { printf '%s\n%s\n' "$OUT" "$ERR" >>"$T/all-output"; }
# kiln_t WANT SECONDS ARGS...: kiln_rc, bounded in time (124: timed out).
kiln_t() {
	local want=$1 secs=$2 rc=0
	shift 2
	timeout "$secs" "$KILN" "$@" >"$T/out" 2>"$T/err" || rc=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
	printf '%s\n%s\n' "$OUT" "$ERR" >>"$T/all-output"
	if [ "$rc" != "$want" ]; then
		printf '%s\n' "--- stdout" "$OUT" "--- stderr" "$ERR" >&2
		fail "kiln $* exited $rc, expected $want"
	fi
}
# st EXPR: a Python expression over `ceph status -f json` on node1 (as j).
st() {
	on node1 timeout 60 ceph status -f json >"$T/st.json" || fail "ceph status failed on node1"
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/st.json" "$1"
}
# wait_for SECONDS WHAT EXPR: until st EXPR prints True.
wait_for() {
	local end=$(($(date +%s) + $1))
	until [ "$(st "$3" 2>/dev/null)" = True ]; do
		[ "$(date +%s)" -lt $end ] || fail "$2: not within $1 s: $(st 'j["health"]')"
		sleep 1
	done
}
# osds_per_host WANT WHAT: the CRUSH hosts and their OSD counts (the tree
# stays in $T/tree.json for later looks)
osds_per_host() {
	on node1 timeout 60 ceph osd tree -f json >"$T/tree.json"
	assert_eq "$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["nodes"]; print(sorted((h["name"], len(h["children"])) for h in t if h["type"] == "host"))' "$T/tree.json")" \
		"$1" "$2"
}
# rbd_intact N WHAT: the RBD image read back (to /tmp/rbd-outN) equals what was written
rbd_intact() {
	on node1 sh -c "timeout 120 rbd export --no-progress rbd/kt23 /tmp/rbd-out$1" >/dev/null 2>&1 ||
		fail "rbd export $2"
	assert_eq "$(on node1 sha256sum /tmp/rbd-out$1 | cut -d' ' -f1)" \
		"$(on node1 sha256sum /tmp/rbd-in | cut -d' ' -f1)" "RBD read $2"
}
on_fail() {
	on node1 timeout 30 ceph health detail 2>&1 | head -20
	on node1 timeout 30 ceph osd tree 2>&1 | head -20
}
# The content of a disk file: a hash of its size and of every 64 KiB block
# that is not all zeros, with its offset; only the data extents are read
# (holes are zeros), so an 8 GiB sparse file costs what it holds, and how
# the machine's filesystem happens to allocate the file does not count.
disk_sum() {
	python3 - "$1" <<'EOF'
import hashlib, os, sys
B = 1 << 16
f = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(f).st_size
h = hashlib.sha256(str(size).encode())
zero = bytes(B)
off, done = 0, 0
while off < size:
    try:
        off = os.lseek(f, off, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(f, off, os.SEEK_HOLE)
    blk = max(off - off % B, done)
    while blk < end:
        b = os.pread(f, B, blk)
        if b != zero[:len(b)]:
            h.update(b"@%d" % blk)
            h.update(b)
        blk += B
    done = blk
    off = max(end, done)
print(h.hexdigest())
EOF
}

# node4 is up from the start (a lab cannot grow) but joins the spec late.
lab_up 4 --disks 2x8G --used-disk --mirror --cache "$CACHE" --packages "$PKGS"
python3 - "$SPEC" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"(  - name: node[123]\n    address: .*\n    roles: )\[worker\]", r"\1[worker, ceph-mon]", s)
s += """  ceph:
    public_network: 10.213.43.0/24
    osd_memory_target: 1G
    health_timeout: 240
"""
open(p + ".full", "w").write(s)
open(p, "w").write(re.sub(r"  - name: node4\n(    .*\n)+", "", s))
EOF
# The used disk stays mounted (facts must see it in use) but read-only, so
# ext4 itself (lazy inode-table init, the journal) writes nothing more and
# any change to its content is someone else's.
declare -A USED
for n in $ALL; do
	on $n sh -c 'mount -o remount,ro /srv/data && sync' || fail "$n: remount /srv/data read-only"
	USED[$n]=$(disk_sum "$LAB/disks/$n-sdc.img")
done

say "plan: sda and sdb become OSDs, the used sdc is passed over, keys waited for"
kiln_t 2 120 plan -f "$SPEC"
assert_contains "$OUT" "= ceph.osd: /dev/sda (8.0 GiB) becomes an OSD"
assert_contains "$OUT" "= ceph.osd: /dev/sdb (8.0 GiB) becomes an OSD"
assert_contains "$OUT" "= ceph.osd: /dev/sdc (8.0 GiB) passed over: mounted at /srv/data; has a ext4 filesystem"
assert_contains "$OUT" "? ceph.mon: waits for node1 ceph.admin_key"

say "apply: packages, monitors, managers, OSDs, pools, CephFS, HEALTH_OK"
t0=$(date +%s)
kiln_t 0 900 apply -f "$SPEC" -o json
say "apply took $(($(date +%s) - t0)) s"
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed nodes"
assert_eq "$(json '[p for p in j["phases"] if p.startswith("ceph.")]')" \
	"['ceph.keys', 'ceph.mon', 'ceph.mgr', 'ceph.osd', 'ceph.fs', 'ceph.health']" "ceph phases"
assert_eq "$(json 'sorted(x for n in j["nodes"] for x in n.get("notes", []) if "becomes" in x or "passed" in x)')" \
	"['ceph.osd: /dev/sda (8.0 GiB) becomes an OSD', 'ceph.osd: /dev/sda (8.0 GiB) becomes an OSD', 'ceph.osd: /dev/sda (8.0 GiB) becomes an OSD', 'ceph.osd: /dev/sdb (8.0 GiB) becomes an OSD', 'ceph.osd: /dev/sdb (8.0 GiB) becomes an OSD', 'ceph.osd: /dev/sdb (8.0 GiB) becomes an OSD', 'ceph.osd: /dev/sdc (8.0 GiB) passed over: mounted at /srv/data; has a ext4 filesystem', 'ceph.osd: /dev/sdc (8.0 GiB) passed over: mounted at /srv/data; has a ext4 filesystem', 'ceph.osd: /dev/sdc (8.0 GiB) passed over: mounted at /srv/data; has a ext4 filesystem']" "notes in -o json"
# the CephFS client follows what the nodes' kernel (this machine's) can mount
client="ceph-fuse (this kernel cannot mount ceph)"
if grep -qw ceph /proc/filesystems || compgen -G "/lib/modules/$(uname -r)/kernel/fs/ceph/ceph.ko*" >/dev/null; then
	client="kernel client"
fi
assert_eq "$(json 'sorted(n["name"] + " " + x for n in j["nodes"] for x in n.get("notes", []) if "CephFS" in x)')" \
	"['node1 ceph.fs: CephFS cephfs at /shared: $client', 'node2 ceph.fs: CephFS cephfs at /shared: $client', 'node3 ceph.fs: CephFS cephfs at /shared: $client']" "CephFS client notes"
assert_eq "$(st 'j["health"]["status"]')" HEALTH_OK "health"
assert_eq "$(st 'sorted(j["quorum_names"])')" "['node1', 'node2', 'node3']" "monitors in quorum"
assert_eq "$(st '(j["osdmap"]["num_osds"], j["osdmap"]["num_up_osds"], j["osdmap"]["num_in_osds"])')" \
	"(6, 6, 6)" "OSDs, up, in"
osds_per_host "[('node1', 2), ('node2', 2), ('node3', 2)]" "OSDs per host"
for n in $NODES; do
	for d in sda sdb; do
		on $n sh -c "ceph-bluestore-tool show-label --dev /dev/$d | grep -q '\"ceph_fsid\": \"$(on node1 cat /etc/kiln/ceph/fsid)\"'" ||
			fail "$n /dev/$d has no BlueStore label of this cluster"
	done
done
assert_eq "$(on node1 ceph osd pool get rbd size -f plain)" "size: 3" "rbd pool size"

say "the used disks: content unchanged, still mounted with their data"
for n in $NODES; do
	assert_eq "$(disk_sum "$LAB/disks/$n-sdc.img")" "${USED[$n]}" "$n used disk content"
	assert_eq "$(on $n cat /srv/data/README)" "kiln lab: data on a used disk" "$n data"
done

say "kiln storage status: health, quorum, OSDs per node and disk"
kiln_t 0 120 storage status -f "$SPEC" -o json
assert_eq "$(json 'j["health"]["status"], j["health"]["checks"]')" "('HEALTH_OK', [])" "storage status health"
assert_eq "$(json 'sorted(j["monitors"]["quorum"]), j["monitors"]["total"]')" "(['node1', 'node2', 'node3'], 3)" "storage status quorum"
assert_eq "$(json 'sorted((o["node"], o["device"], o["up"], o["in"]) for o in j["osds"]["list"])')" \
	"[('node1', '/dev/sda', True, True), ('node1', '/dev/sdb', True, True), ('node2', '/dev/sda', True, True), ('node2', '/dev/sdb', True, True), ('node3', '/dev/sda', True, True), ('node3', '/dev/sdb', True, True)]" "storage status OSDs"
assert_eq "$(json 'list(j["pgs"].keys()) == ["active+clean"] and j["usage"]["total_bytes"] > 40 << 30')" True "storage status PGs, usage"
kiln_t 0 120 storage status -f "$SPEC"
assert_contains "$OUT" "monitors: 3 of 3 in quorum: node1 node2 node3"

say "a second apply changes nothing; plan agrees"
kiln_t 0 600 -vv apply -f "$SPEC"
assert_contains "$OUT" "3 nodes, 0 changed"
assert_contains "$ERR" "ceph.health"
kiln_t 0 300 plan -f "$SPEC"
assert_contains "$OUT" "3 nodes, 0 with changes pending"

say "RBD: 64 MiB written, read back equal"
on node1 sh -c 'head -c 64M /dev/urandom >/tmp/rbd-in && timeout 120 rbd import --no-progress /tmp/rbd-in rbd/kt23 &&
	timeout 120 rbd export --no-progress rbd/kt23 /tmp/rbd-out' >/dev/null 2>&1 || fail "rbd import/export failed"
a=$(on node1 sha256sum /tmp/rbd-in | cut -d' ' -f1)
b=$(on node1 sha256sum /tmp/rbd-out | cut -d' ' -f1)
assert_eq "$b" "$a" "RBD read-back checksum"
assert_eq "$(on node1 rbd info rbd/kt23 --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')" \
	67108864 "RBD image size"

say "CephFS: written on node1, read on node3"
for n in node1 node3; do on $n mountpoint -q /shared || fail "$n: /shared is not mounted"; done
on node1 sh -c 'head -c 3M /dev/urandom >/shared/kt23.bin && sync /shared/kt23.bin'
a=$(on node1 sha256sum /shared/kt23.bin | cut -d' ' -f1)
b=$(on node3 sha256sum /shared/kt23.bin | cut -d' ' -f1)
assert_eq "$b" "$a" "CephFS file on node3"

say "keys: 0600, never in the state, run records, output, logs or -o json"
kiln_t 0 60 runs -f "$SPEC" -o json
run=$(json 'j[0]["id"]')
kiln_t 0 60 runs show "$run" -f "$SPEC" -o json
kiln_t 0 60 exports -f "$SPEC" -o json
assert_contains "$OUT" '"admin_key"'
assert_contains "$OUT" '"fsid"'
state="$LAB/.kiln/state.db"
[ -f "$state" ] || fail "no state database at $state"
keys=0
for f in mon admin bootstrap-osd client.fs client.kubernetes; do
	assert_eq "$(on node1 stat -c '%a %U' /etc/kiln/ceph/$f.key)" "600 root" "$f.key mode"
	k=$(on node1 cat /etc/kiln/ceph/$f.key)
	[ ${#k} = 40 ] || fail "$f.key: not a key"
	for x in "$state" "$state-wal" "$T/all-output" "$LAB"/.kiln/*.log; do
		[ -f "$x" ] || continue
		grep -qF "$k" "$x" && fail "the $f key is in $x"
	done
	keys=$((keys + 1))
done
assert_eq $keys 5 "keys checked"
for n in $NODES; do
	assert_eq "$(on $n stat -c '%a' /etc/ceph/ceph.client.admin.keyring)" 600 "$n admin keyring mode"
	assert_eq "$(on $n stat -c '%a %U' /var/lib/ceph/bootstrap-osd/ceph.keyring)" "600 ceph" "$n bootstrap keyring"
done

say "an OSD daemon down: reported, data readable; apply brings it back"
id=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["nodes"]; print([h["children"] for h in t if h["name"] == "node2"][0][0])' "$T/tree.json")
on node2 systemctl stop "ceph-osd@$id"
wait_for 60 "osd.$id reported down" 'j["osdmap"]["num_up_osds"] == 5'
kiln_t 2 120 storage status -f "$SPEC" -o json
assert_eq "$(json '[(o["node"], o["up"]) for o in j["osds"]["list"] if o["id"] == '$id']')" "[('node2', False)]" "storage status: osd.$id down"
assert_contains "$(json '[c["code"] for c in j["health"]["checks"]]')" "OSD_DOWN" "storage status reasons"
rbd_intact 2 "with an OSD down"
kiln_t 0 600 apply -f "$SPEC"
assert_contains "$OUT" "ceph-osd ensure"
assert_eq "$(st 'j["health"]["status"]')" HEALTH_OK "health after the OSD came back"
assert_eq "$(st 'j["osdmap"]["num_up_osds"]')" 6 "OSDs up after apply"

say "a monitor down: quorum holds, data readable; apply restores it"
on node3 systemctl stop ceph-mon@node3
wait_for 60 "node3 out of quorum" 'sorted(j["quorum_names"]) == ["node1", "node2"]'
rbd_intact 3 "with a monitor down"
kiln_t 0 600 apply -f "$SPEC"
assert_contains "$OUT" "service:ceph-mon@node3"
assert_eq "$(st 'sorted(j["quorum_names"])')" "['node1', 'node2', 'node3']" "quorum after apply"
assert_eq "$(st 'j["health"]["status"]')" HEALTH_OK "health after the monitor came back"

say "a fourth node with 2 free disks: 8 OSDs, HEALTH_OK, the data written before reads back"
cp "$SPEC.full" "$SPEC"
kiln_t 0 600 apply -f "$SPEC" -o json
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed nodes"
assert_eq "$(json 'sorted(x for n in j["nodes"] if n["name"] == "node4" for x in n.get("notes", []) if "becomes" in x)')" \
	"['ceph.osd: /dev/sda (8.0 GiB) becomes an OSD', 'ceph.osd: /dev/sdb (8.0 GiB) becomes an OSD']" "node4's notes"
assert_eq "$(st 'j["health"]["status"]')" HEALTH_OK "health with node4"
assert_eq "$(st '(j["osdmap"]["num_osds"], j["osdmap"]["num_up_osds"], j["osdmap"]["num_in_osds"])')" \
	"(8, 8, 8)" "OSDs, up, in with node4"
assert_eq "$(st 'all(s["state_name"].startswith("active+clean") for s in j["pgmap"]["pgs_by_state"]) and sum(s["count"] for s in j["pgmap"]["pgs_by_state"]) == j["pgmap"]["num_pgs"] > 0')" \
	True "every PG active+clean with node4"
osds_per_host "[('node1', 2), ('node2', 2), ('node3', 2), ('node4', 2)]" "OSDs per host with node4"
rbd_intact 4 "after node4 joined"
on node4 mountpoint -q /shared || fail "node4: /shared is not mounted"
assert_eq "$(on node4 sha256sum /shared/kt23.bin | cut -d' ' -f1)" "$(on node1 sha256sum /shared/kt23.bin | cut -d' ' -f1)" \
	"CephFS file on node4"
assert_eq "$(disk_sum "$LAB/disks/node4-sdc.img")" "${USED[node4]}" "node4 used disk content"
kiln_t 0 600 apply -f "$SPEC"
assert_contains "$OUT" "4 nodes, 0 changed"

say "node2 reboots (monitor, manager, MDS, 2 OSDs, a mount): all of it back by itself"
kiln_t 0 300 lab reboot --dir "$LAB" node2
wait_for 240 "node2's monitor in quorum, its manager and MDS standing by, 8 OSDs up, HEALTH_OK" \
	'sorted(j["quorum_names"]) == ["node1", "node2", "node3"] and j["mgrmap"]["available"] and j["mgrmap"]["num_standbys"] == 1 and j["fsmap"]["up:standby"] == 2 and j["osdmap"]["num_up_osds"] == 8 and j["health"]["status"] == "HEALTH_OK" and all(s["state_name"].startswith("active+clean") for s in j["pgmap"]["pgs_by_state"])'
for i in $(seq 150); do on node2 mountpoint -q /shared && break; sleep 1; done
assert_eq "$(on node2 sha256sum /shared/kt23.bin | cut -d' ' -f1)" "$(on node1 sha256sum /shared/kt23.bin | cut -d' ' -f1)" \
	"CephFS file on node2 after its reboot"

say "node4 reboots: its OSDs start by themselves, HEALTH_OK again, nothing of ceph left to apply"
kiln_t 0 300 lab reboot --dir "$LAB" node4
wait_for 240 "node4's OSDs up after its reboot, HEALTH_OK" \
	'j["osdmap"]["num_up_osds"] == 8 and j["health"]["status"] == "HEALTH_OK" and all(s["state_name"].startswith("active+clean") for s in j["pgmap"]["pgs_by_state"])'
for i in $(seq 150); do on node4 mountpoint -q /shared && break; sleep 1; done
on node4 mountpoint -q /shared ||
	fail "node4: /shared not mounted again after its reboot: $(on node4 sh -c 'systemctl is-system-running;
		systemctl list-jobs --no-legend | head -5; systemctl status kiln-cephfs --no-pager 2>&1 | tail -12')"
assert_eq "$(on node4 sha256sum /shared/kt23.bin | cut -d' ' -f1)" "$(on node1 sha256sum /shared/kt23.bin | cut -d' ' -f1)" \
	"CephFS file on node4 after its reboot"
# plan may find other stacks' changes a reboot resets (exit 2): ceph has none
rc=0
timeout 300 "$KILN" plan -f "$SPEC" -o json >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out" "$T/err" >>"$T/all-output"
[ $rc = 0 ] || [ $rc = 2 ] || fail "plan after node4's reboot exited $rc: $(cat "$T/err")"
assert_eq "$(json '[r["id"] for n in j["nodes"] for r in n.get("results", []) if r.get("phase", "").startswith("ceph.") and r["status"] != "ok"]')" \
	"[]" "ceph resources plan would change after node4's reboot"
assert_eq "$(json 'len([r for n in j["nodes"] if n["name"] == "node4" for r in n.get("results", []) if r.get("phase") == "ceph.osd"]) >= 2')" \
	True "node4's ceph.osd resources checked after its reboot"

say "node4's sdb vanishes: plan reports its OSD and makes no other; storage status shows it down on node4"
id4=$(on node4 ceph-bluestore-tool show-label --dev /dev/sdb | python3 -c 'import json,sys; print(json.load(sys.stdin)["/dev/sdb"]["whoami"])')
blk=/run/kiln-lab/$LAB_NAME/node4/hw/block/sdb
[ -L "$blk" ] || fail "no $blk: the lab's disk view moved (docs/lab.md)"
on node4 systemctl stop "ceph-osd@$id4"
rm "$blk"
on node4 rm /dev/sdb
wait_for 60 "osd.$id4 reported down" 'j["osdmap"]["num_up_osds"] == 7'
kiln_t 2 300 plan -f "$SPEC"
assert_contains "$OUT" "= ceph.osd: node4: osd.$id4 on /dev/sdb: disk gone, not recreated"
case "$OUT" in *"ceph-osd ensure"*) fail "plan makes an OSD after a disk vanished: $OUT" ;; esac
kiln_t 2 120 storage status -f "$SPEC" -o json
assert_eq "$(json '[(o["node"], o["device"], o["up"]) for o in j["osds"]["list"] if o["id"] == '"$id4"']')" \
	"[('node4', '/dev/sdb', False)]" "storage status: osd.$id4 down on node4"
assert_eq "$(json 'j["osds"]["total"], j["osds"]["up"]')" "(8, 7)" "storage status: OSDs, up"

say "node4 is switched off and leaves the spec: its OSDs are taken out, drained and purged; 6 OSDs, HEALTH_OK, data intact"
# a decommissioned machine is off: its OSD daemons no longer run (one still
# running re-asserts itself up between `osd down` and `osd purge`: docs/ceph.md)
on node4 systemctl stop ceph-osd.target
python3 - "$SPEC" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
open(p, "w").write(re.sub(r"  - name: node4\n(    .*\n)+", "", s))
EOF
grep -q node4 "$SPEC" && fail "node4 still in the spec"
kiln_t 2 300 plan -f "$SPEC"
assert_contains "$OUT" "ceph-retire ensure node1 node2 node3"
kiln_t 0 600 apply -f "$SPEC" -o json
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed nodes"
assert_eq "$(st '(j["osdmap"]["num_osds"], j["osdmap"]["num_up_osds"], j["osdmap"]["num_in_osds"])')" \
	"(6, 6, 6)" "OSDs, up, in after node4 left"
assert_eq "$(st 'j["health"]["status"]')" HEALTH_OK "health after node4 left"
osds_per_host "[('node1', 2), ('node2', 2), ('node3', 2)]" "OSDs per host after node4 left"
rbd_intact 5 "after node4 left"
kiln_t 0 600 apply -f "$SPEC"
assert_contains "$OUT" "3 nodes, 0 changed"
