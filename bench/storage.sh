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
#    raw MB/s of the same kind of backing device measured in the same run:
#    a loop device over a sparse file in the same directory, `dd
#    oflag=direct bs=4M` 1 GiB written and `iflag=direct` read.
# 4. Memory: PSS of every Ceph process of the lab (monitors, managers,
#    OSDs, MDS, ceph-fuse) and of the lab hosts' own processes.
#
# Usage (as root, after building): bench/storage.sh
# Takes 2 to 7 minutes on 2 cores, with the load.  Results: docs/benchmarks.md, "storage".
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
LOOP=
cleanup() {
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
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
w=$(on node1 rados bench -p rbd 20 write -b 4194304 -t 16 --no-cleanup 2>/dev/null |
	sed -n 's/^Bandwidth (MB\/sec): *//p')
r=$(on node1 rados bench -p rbd 20 seq -t 16 2>/dev/null | sed -n 's/^Bandwidth (MB\/sec): *//p')
on node1 rados -p rbd cleanup >/dev/null 2>&1 || true
on node1 rbd create rbd/bench --size 1G
b=$(on node1 rbd bench --io-type write --io-size 4M --io-total 256M rbd/bench 2>/dev/null |
	sed -n 's/.*bytes\/sec: *\([0-9.]*\) *\(MiB\).*/\1/p' | tail -n 1)
echo "RADOS 4M writes, 3 replicas: $w MB/s; sequential reads: $r MB/s; RBD 4M writes: ${b:-?} MiB/s"

truncate -s 2G "$W/raw.img"
LOOP=$(losetup --find --show "$W/raw.img")
# MB/s from dd's "N bytes ... copied, S s, ..." line
ddrate() { sed -n 's/^\([0-9]*\) bytes .* copied, \([0-9.]*\) s,.*/\1 \2/p' | awk '{ printf "%.0f", $1 / $2 / 1e6 }'; }
rw=$(dd if=/dev/zero of="$LOOP" bs=4M count=256 oflag=direct 2>&1 | ddrate)
rr=$(dd if="$LOOP" of=/dev/null bs=4M count=256 iflag=direct 2>&1 | ddrate)
echo "raw loop device, same directory: write $rw MB/s, read $rr MB/s"
python3 -c "import sys; w,rw=float(sys.argv[1]),float(sys.argv[2]); print('RADOS write / raw write: %.0f %%' % (100*w/rw))" "$w" "$rw"

pss() {
	local sum=0 p v
	for p in "$@"; do
		v=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo $((sum / 1024))
}
hosts=$(for ns in $(ip netns list | awk '{print $1}' | grep "^$NAME-"); do ip netns pids "$ns"; done)
# the lab's own processes running /usr/bin/$1 (never another lab's)
of() {
	local p
	for p in $hosts; do
		case "$(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)" in "/usr/bin/$1 "*) echo $p ;; esac
	done
}
ceph=$(for d in ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse; do of $d; done)
echo "memory (PSS): Ceph daemons $(pss $ceph) MiB; every process of the lab $(pss $hosts) MiB"
for d in ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse; do
	p=$(of $d)
	echo "  $d: $(pss $p) MiB ($(echo $p | wc -w))"
done
