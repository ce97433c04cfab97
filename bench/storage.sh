#!/usr/bin/env bash
# The ceph stack on 3 lab nodes x 2 free 8 GiB disks (loop devices over
# sparse files), in one run:
#
# 1. The Ceph packages installed on every node first (apt from the lab's
#    mirror, all nodes at once; timed apart: it is download and dpkg, not
#    deployment).
# 2. Seconds from the start of `kiln apply` until `ceph health` first says
#    HEALTH_OK (polled every 0.5 s from node1 once its admin keyring
#    exists), and apply's own wall time (it ends with the health phase).
# 3. RADOS: `rados bench` 4 MiB writes (16 in flight, 20 s, 3 replicas) and
#    sequential reads; RBD: `rbd bench` 4 MiB writes, 256 MiB.  Against the
#    raw MB/s of the same backing devices, measured in the same run before
#    apply: node1's sda (a loop device over a sparse file), `dd bs=4M` 1 GiB
#    with `oflag=direct` written and `iflag=direct` read.  The lab's disk
#    loop devices are switched to direct I/O first (LOOP_SET_DIRECT_IO), so
#    the raw rate and the OSDs' writes both reach the file, as they would a
#    disk, instead of landing in the machine's page cache; the buffered
#    rate is printed beside it (KILN_BENCH_DIO=0 keeps the OSDs buffered).
#    Also 256 MiB written with a flush per 4 MiB (`oflag=direct,dsync`,
#    as BlueStore flushes per commit), on node1's sda alone and on all six
#    OSD disks at once: what the disk gives flushing writers.
# 4. Memory: PSS of every Ceph process of the lab (monitors, managers,
#    OSDs, MDS, ceph-fuse) and of the lab hosts' own processes, at rest
#    (HEALTH_OK, before the throughput runs) and after them.
# CPU busy over the RADOS writes is printed too.  KILN_BENCH_OSD_CONFIG adds
# [osd] options (see below).
#
# Usage (as root, after building): bench/storage.sh
# Takes 4 to 7 minutes on 2 cores, with the load.  Results: docs/benchmarks.md, "storage".
# Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/build/bin/kiln}
[ -x "$KILN" ] || KILN=$PWD/build-test/bin/kiln
[ "$(id -u)" = 0 ] || { echo "storage.sh: needs root" >&2; exit 1; }
[ -x "$KILN" ] || { echo "storage.sh: no $KILN (build first)" >&2; exit 1; }
CACHE=${KILN_MIRROR_CACHE_CEPH:-/var/cache/kiln/lab-mirror-ceph}
PKGS="ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common ceph-fuse"
W=$(mktemp -d "$(dirname "$KILN")/../bench-storage.XXXXXX")
LAB=$W/lab
SPEC=$LAB/cluster.yaml
NAME=kbs
cleanup() {
	"$KILN" lab down --dir "$LAB" >/dev/null 2>&1 || true
	rm -rf "$W"
}
trap cleanup EXIT
on() { local n=$1; shift; "$KILN" lab exec --dir "$LAB" "$n" -- "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }

"$KILN" lab up --nodes 3 --disks 2x8G --mirror --cache "$CACHE" --packages "${PKGS// /,}" \
	--dir "$LAB" --name "$NAME" --subnet 10.213.180.0/24 >"$W/up.log" 2>&1 ||
	{ cat "$W/up.log"; exit 1; }
sed -i 's/roles: \[worker\]/roles: [worker, ceph-mon]/' "$SPEC"
cat >>"$SPEC" <<'EOF'
  ceph:
    public_network: 10.213.180.0/24
    osd_memory_target: 1G
EOF
# KILN_BENCH_OSD_CONFIG: [osd] options for ceph.conf (stacks.ceph.config),
# a YAML flow mapping, e.g. "{bluestore_cache_autotune: false,
# bluestore_cache_size: 128M}" for a fixed BlueStore cache per OSD
OSD_CONFIG=${KILN_BENCH_OSD_CONFIG:-}
if [ -n "$OSD_CONFIG" ]; then
	printf '    config:\n      osd: %s\n' "$OSD_CONFIG" >>"$SPEC"
fi
echo "OSD options: ${OSD_CONFIG:-none added (osd_memory_target 1G)}"

pss() {
	local sum=0 p v
	for p in "$@"; do
		v=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo $((sum / 1024))
}
hosts() {
	for ns in $(ip netns list | awk '{print $1}' | grep "^$NAME-"); do ip netns pids "$ns"; done
}
# the lab's own processes running /usr/bin/$1 (never another lab's)
of() {
	local p
	for p in $H; do
		case "$(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)" in "/usr/bin/$1 "*) echo $p ;; esac
	done
}
memory() {
	local ceph d p
	H=$(hosts)
	ceph=$(for d in ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse; do of $d; done)
	echo "memory (PSS) $1: Ceph daemons $(pss $ceph) MiB; every process of the lab $(pss $H) MiB"
	for d in ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse; do
		p=$(of $d)
		echo "  $d: $(pss $p) MiB ($(echo $p | wc -w))"
	done
}

# MB/s from dd's "N bytes ... copied, S s, ..." line
ddrate() { sed -n 's/^\([0-9]*\) bytes .* copied, \([0-9.]*\) s,.*/\1 \2/p' | awk '{ printf "%.0f", $1 / $2 / 1e6 }'; }
# the host's loop device behind a lab node's disk (its /sys/block link)
loopof() { basename "$(on "$1" readlink "/sys/block/$2")"; }
LOOPS=$(for n in node1 node2 node3; do for d in sda sdb; do loopof $n $d; done; done)
raw=/dev/$(loopof node1 sda)
# raw rates before apply: the disk is free and zeros keep it free
rawrate() {
	rw=$(dd if=/dev/zero of="$raw" bs=4M count=256 oflag=direct 2>&1 | ddrate)
	rr=$(dd if="$raw" of=/dev/null bs=4M count=256 iflag=direct 2>&1 | ddrate)
	# and each 4 MiB block flushed to stable storage, as BlueStore does
	# per commit (on a loop device: an fsync of its file)
	rs=$(dd if=/dev/zero of="$raw" bs=4M count=64 oflag=direct,dsync 2>&1 | ddrate)
}
rawrate
echo "raw node1 sda ($raw), buffered loop device: write $rw MB/s, read $rr MB/s, write with a flush per 4 MiB $rs MB/s"
if [ "${KILN_BENCH_DIO:-1}" = 1 ]; then
	for l in $LOOPS; do losetup --direct-io=on "/dev/$l"; done
	rawrate
	echo "raw node1 sda ($raw), direct I/O loop device: write $rw MB/s, read $rr MB/s, write with a flush per 4 MiB $rs MB/s"
fi
# all six at once, each 256 MiB flushed per 4 MiB: what the machine's disk
# gives parallel flushing writers, as the OSDs are
t=$(now)
for l in $LOOPS; do dd if=/dev/zero of="/dev/$l" bs=4M count=64 oflag=direct,dsync 2>/dev/null & done
wait
rp=$(python3 -c "import sys; print('%.0f' % (6 * 256 * 1048576 / (float(sys.argv[2]) - float(sys.argv[1])) / 1e6))" "$t" "$(now)")
echo "raw, the six OSD disks at once, each written with a flush per 4 MiB: $rp MB/s in all"
echo "the OSDs' loop devices: $(for l in $LOOPS; do printf '%s dio=%s ' $l "$(cat /sys/block/$l/loop/dio)"; done)"

t0=$(now)
for n in node1 node2 node3; do
	on $n sh -c "apt-get -q update >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get -y -q \
		install --no-install-recommends $PKGS >/dev/null 2>&1" &
done
wait
echo "packages on 3 nodes (in parallel): $(secs "$t0" "$(now)") s"

# HEALTH_OK as node1 sees it, from the start of apply
(
	until on node1 test -f /etc/ceph/ceph.client.admin.keyring 2>/dev/null; do sleep 0.5; done
	# the cluster as deployed: HEALTH_OK with 6 OSDs up and every PG
	# active+clean (HEALTH_OK alone also holds for bare monitors)
	until on node1 timeout 10 sh -c 'ceph health | grep -qx HEALTH_OK &&
		ceph osd stat | grep -q "^6 osds: 6 up" &&
		ceph pg stat | grep -q "^\([1-9][0-9]*\) pgs: \1 active+clean"' 2>/dev/null; do
		sleep 0.5
	done
	now >"$W/ok"
) &
poller=$!
t0=$(now)
"$KILN" apply -f "$SPEC" >"$W/apply.log" 2>&1 || { cat "$W/apply.log"; exit 1; }
t1=$(now)
wait $poller
echo "apply: $(secs "$t0" "$t1") s wall; HEALTH_OK with 6 OSDs and every PG clean $(secs "$t0" "$(cat "$W/ok")") s after its start"

on node1 sh -c 'ceph -s | sed -n "s/^ *\(mon\|osd\|pgs\): /\1: /p"'
memory "at rest (HEALTH_OK)"
# the machine's CPU time, busy and idle (iowait counts as idle), in ticks
cpu() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
c0=$(cpu)
w=$(on node1 rados bench -p rbd 20 write -b 4194304 -t 16 --no-cleanup 2>/dev/null |
	sed -n 's/^Bandwidth (MB\/sec): *//p')
c1=$(cpu)
busy=$(echo "$c0 $c1" | awk '{ printf "%.0f", 100 * ($3 - $1) / ($3 - $1 + $4 - $2) }')
r=$(on node1 rados bench -p rbd 20 seq -t 16 2>/dev/null | sed -n 's/^Bandwidth (MB\/sec): *//p')
on node1 rados -p rbd cleanup >/dev/null 2>&1 || true
on node1 rbd create rbd/bench --size 1G
b=$(on node1 rbd bench --io-type write --io-size 4M --io-total 256M rbd/bench 2>/dev/null |
	sed -n 's/.*bytes\/sec: *\([0-9.]*\) *\(MiB\).*/\1/p' | tail -n 1)
echo "RADOS 4M writes, 3 replicas: $w MB/s; sequential reads: $r MB/s; RBD 4M writes: ${b:-?} MiB/s"
python3 -c "import sys; w,rw,rs,rp=map(float,sys.argv[1:5]); print('RADOS write / raw write: %.0f %%; / raw write flushed per 4 MiB: %.0f %%; device writes (3 replicas) / six disks flushed at once: %.0f %%' % (100*w/rw, 100*w/rs, 300*w/rp))" "$w" "$rw" "$rs" "$rp"
echo "CPU busy during the RADOS writes: $busy % of $(nproc) cores (the whole machine)"
memory "after the throughput runs"

