#!/bin/bash
# A DHCP reply leaves only after the fsync that makes its lease durable,
# and a failed fsync turns DHCP off (docs/boot.md, "Group commit, off the
# loop").  kiln serve runs with an LD_PRELOAD shim (tests/lab/dhcp/
# syncshim.c) that delays or fails the fdatasync of the lease WAL — only
# kiln's own read-only descriptor of it, the one the syncer thread uses;
# udhcpc in a client namespace (prefix kbt-sy) asks for a lease.
#   A  sync delayed 2 s: the exchange takes at least 4 s (DISCOVER waits
#      for one sync, REQUEST for another) and the shim counted the syncs;
#   B  sync fails: no lease, the log and /api/status say DHCP is off, the
#      daemon keeps serving HTTP; after a restart without the shim the same
#      client gets its lease.
set -euo pipefail

die() { echo "FAIL: $*" >&2; [ -f "${TMP:-/nonexistent}/serve.log" ] && tail -20 "$TMP/serve.log" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in udhcpc curl cc ip jq; do command -v "$c" >/dev/null || die "missing '$c'"; done
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/serve/lib.sh"
serve_find_kiln

id=$(( $$ % 10000 ))
NS_S=kbt-sy-s$id NS_C=kbt-sy-c$id VS=kbt-sys$id VC=kbt-syc$id
SRV=10.234.0.1
TMP=$(mktemp -d /tmp/kbt-sync.XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
	for n in "$NS_S" "$NS_C"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for n in "$NS_S" "$NS_C"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add "$VS" netns "$NS_S" type veth peer name "$VC" netns "$NS_C"
ip -n "$NS_S" addr add "$SRV/16" dev "$VS"
ip -n "$NS_S" link set "$VS" up
ip -n "$NS_C" link set "$VC" up

cc -shared -fPIC -O2 -o "$TMP/syncshim.so" "$HERE/dhcp/syncshim.c" -ldl ||
	die "cannot build the shim"
chmod 755 "$TMP"
mkdir -p "$TMP/tftp"
: >"$TMP/sync.log"
chmod 666 "$TMP/sync.log"
cat >"$TMP/cluster.yaml" <<EOF
cluster: kbt-sync
ssh:
  known_hosts: kh
boot:
  server: $SRV
  http_port: 8080
  tftp_root: tftp
  state_dir: state
  user: nobody
  networks:
    - name: lan
      interface: $VS
      subnet: 10.234.0.0/16
      router: $SRV
      pool: 10.234.1.0-10.234.1.255
      lease_time: 600
      allow_unknown: true
EOF

# serve_start behind the fdatasync shim, with these settings (KEY=VALUE...)
start_shimmed() {
	# the ASan build checks that its runtime comes first; the shim does
	serve_start env LD_PRELOAD="$TMP/syncshim.so" \
		ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
		KILN_TEST_SYNC_LOG="$TMP/sync.log" "$@"
}

printf '#!/bin/sh\n[ "$1" = bound ] && echo "$ip" >"%s/ip"\nexit 0\n' "$TMP" >"$TMP/udhcpc.sh"
chmod +x "$TMP/udhcpc.sh"
lease() {   # udhcpc args...: 0 and the address in $TMP/ip when leased
	rm -f "$TMP/ip"
	ip netns exec "$NS_C" timeout 30 udhcpc -f -q -n -i "$VC" -s "$TMP/udhcpc.sh" "$@" \
		>"$TMP/udhcpc.log" 2>&1
}
now_ms() { date +%s%3N; }

# ---- A: the reply waits for the sync ---------------------------------------
start_shimmed KILN_TEST_SYNC_MS=2000
t0=$(now_ms)
lease -t 2 -T 6 || { cat "$TMP/udhcpc.log"; die "A: no lease with slow syncs"; }
t1=$(now_ms)
ip=$(cat "$TMP/ip")
case $ip in 10.234.1.*) ;; *) die "A: address '$ip' not from the pool" ;; esac
[ $((t1 - t0)) -ge 4000 ] || die "A: lease in $((t1 - t0)) ms: a reply left before its 2 s sync"
syncs=$(grep -c '^sync$' "$TMP/sync.log" || true)
[ "$syncs" -ge 2 ] || die "A: the shim saw $syncs syncs of the lease WAL, expected 2 or more"
echo "A ok: lease $ip after $((t1 - t0)) ms with 2 s syncs ($syncs syncs)"
serve_stop

# ---- B: a failed sync turns DHCP off ----------------------------------------
: >"$TMP/sync.log"
MAC_B=52:54:00:aa:0b:01
ip -n "$NS_C" link set "$VC" address "$MAC_B"
start_shimmed KILN_TEST_SYNC_FAIL=1
if lease -t 3 -T 1; then die "B: got lease $(cat "$TMP/ip") though its sync failed"; fi
grep -q '^fail$' "$TMP/sync.log" || die "B: the shim never failed a sync"
grep -q 'level=error event=dhcp msg="lease database sync failed.*DHCP stays off' "$TMP/serve.log" || die "B: no 'DHCP stays off' in the log"
kill -0 "$PID" 2>/dev/null || die "B: kiln serve died"
ip netns exec "$NS_S" curl -fsS "http://$SRV:8080/api/leases" >"$TMP/leases.json" ||
	die "B: kiln serve stopped answering HTTP"
echo "B: the daemon's view of $MAC_B: $(jq -c "[.[] | select(.mac == \"$MAC_B\")]" "$TMP/leases.json")"
err=$(ip netns exec "$NS_S" curl -fsS "http://$SRV:8080/api/status" | jq -r '.dhcp_error // empty')
case $err in *"sync failed"*) ;; *) die "B: /api/status dhcp_error is '$err'" ;; esac
serve_stop
serve_start
lease -t 5 -T 1 || { cat "$TMP/udhcpc.log"; die "B: no lease after a restart without the shim"; }
echo "B ok: no lease while syncs failed; lease $(cat "$TMP/ip") after a restart"
serve_stop
echo "PASS"
