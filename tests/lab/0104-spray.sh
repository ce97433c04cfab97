#!/bin/bash
# kiln serve under a spray of unknown MACs, in namespaces this test creates
# (prefix ksp-): server ns with `kiln serve` on 10.242.0.1/16; client ns
# with 10.242.0.2 (the DHCP relay address) and 512 more source addresses.
# 100,000 distinct MACs go at GET /boot/MAC.ipxe + POST /api/discover
# (half each, from 512 sources) and 100,000 at DHCP (relayed DISCOVERs,
# pool of 100).  Checks (docs/serve.md "Bounds"): unknown rows stay within
# their caps (seen 4096, discovered 4096), events within 50000, leases
# within the pool plus reservations, serve.db + WAL under 64 MiB, the
# daemon's RSS under 160 MiB; the rate limit answered 429 and the full
# discovered table 503; a discovery POST with the node's MAC is refused
# (409) and leaves its facts alone; the known node's iPXE script is
# served during and after the spray, its reserved address offered during
# the DHCP spray and leased (udhcpc) after it.
set -euo pipefail

die() { echo "FAIL: $*" >&2; [ -f "${TMP:-/nonexistent}/serve.log" ] && tail -15 "$TMP/serve.log" >&2; exit 1; }
ok() { printf 'ok   %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in udhcpc curl sqlite3 ip jq python3; do
	command -v "$c" >/dev/null || die "missing '$c'"
done
. "$(dirname "$0")/serve/lib.sh"
serve_find_kiln
SPRAY="python3 $(dirname "$0")/serve/spray.py"

id=$(( $$ % 10000 ))
NS_S=ksp-s$id NS_C=ksp-c$id VS=ksp-vs$id VC=ksp-vc$id
SRV=10.242.0.1 RELAY=10.242.0.2 PORT=8080
NODE_MAC=52:54:00:42:00:17 NODE_IP=10.242.0.17
N=100000
TMP=$(mktemp -d /tmp/ksp-spray.XXXXXX)
PID= PROBE=

cleanup() {
	[ -n "$PROBE" ] && kill "$PROBE" 2>/dev/null || true
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
	for n in "$NS_S" "$NS_C"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# ---- topology -------------------------------------------------------------
for n in "$NS_S" "$NS_C"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add "$VS" netns "$NS_S" type veth peer name "$VC" netns "$NS_C"
ip -n "$NS_S" addr add "$SRV/16" dev "$VS"
ip -n "$NS_S" link set "$VS" up
ip -n "$NS_C" addr add "$RELAY/16" dev "$VC"
for i in $(seq 0 511); do
	echo "addr add 10.242.$((1 + i / 256)).$((i % 256))/16 dev $VC"
done >"$TMP/addrs"
ip -n "$NS_C" -batch "$TMP/addrs"
ip -n "$NS_C" link set "$VC" up
ins() { ip netns exec "$NS_S" "$@"; }
inc() { ip netns exec "$NS_C" "$@"; }

chmod 755 "$TMP"
mkdir -p "$TMP/images" "$TMP/tftp"
head -c 100000 /dev/urandom >"$TMP/images/vmlinuz"
echo fake >"$TMP/tftp/undionly.kpxe"
chmod -R a+rX "$TMP"
cat >"$TMP/cluster.yaml" <<EOF
cluster: lab
ssh:
  known_hosts: kh
boot:
  server: $SRV
  http_port: $PORT
  tftp_root: tftp
  state_dir: state
  networks:
    - name: rack1
      interface: $VS
      subnet: 10.242.0.0/16
      router: $SRV
      pool: 10.242.100.1-10.242.100.100
      lease_time: 600
      allow_unknown: true
  images:
    debian12:
      kernel: images/vmlinuz
      cmdline: "console=ttyS0"
    discover:
      kernel: images/vmlinuz
  discovery_image: discover
nodes:
  - name: gpu-17
    address: $NODE_IP
    mac: "$NODE_MAC"
    boot_image: debian12
EOF
serve_client_hooks 16
# a small ASan quarantine when the build has ASan: RSS then measures kiln
serve_start env ASAN_OPTIONS=quarantine_size_mb=8:detect_leaks=0
URL=http://$SRV:$PORT
DB=$TMP/state/serve.db
sql() { sqlite3 -readonly "$1" "$2"; }

# the node's script, from the relay address (never rate-limited: a node)
script_ok() {
	[ "$(inc curl -sS --max-time 10 --interface "$RELAY" -o "$TMP/script" -w '%{http_code}' \
		"$URL/boot/$NODE_MAC.ipxe")" = 200 ] && grep -q 'kiln.node=gpu-17' "$TMP/script"
}
script_ok || die "node script before the spray"

# ---- a discovery POST with the node's MAC ----------------------------------
code=$(inc curl -sS --interface "$RELAY" -o "$TMP/body" -w '%{http_code}' -X POST \
	-d "{\"mac\":\"$NODE_MAC\",\"facts\":{\"cpu\":{\"model\":\"Evil\"}}}" "$URL/api/discover")
[ "$code" = 409 ] || die "discovery POST with the node's MAC: HTTP $code $(cat "$TMP/body")"
[ "$(sql "$DB" "SELECT count(*) FROM machines WHERE mac = '$NODE_MAC' AND facts IS NULL")" = 1 ] \
	|| die "the node's facts changed: $(sql "$DB" "SELECT * FROM machines")"
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE kind = 'discover-refused' AND mac = '$NODE_MAC'")" = 1 ] \
	|| die "no discover-refused event"
ok "discovery POST with a node's MAC: 409, facts unchanged, event recorded"

# ---- the rate limit: one source, 100 unknown MACs at once --------------------
# it may make 20 (burst) + 2 a second of them; the rest is 429
inc $SPRAY http --host "$SRV" --port "$PORT" --sources "$RELAY/1" --count 100 \
	--mac-prefix 02:5c --deadline 60 >"$TMP/rl.json" || die "rate-limit run"
acc=$(jq '(.status["200"] // 0) + (.status["503"] // 0)' "$TMP/rl.json")
lim=$(jq '20 + 2 * (.seconds | ceil) + 1' "$TMP/rl.json")
[ "$(jq '.status["429"] // 0' "$TMP/rl.json")" -gt 0 ] && [ "$acc" -le "$lim" ] \
	|| die "rate limit: $(cat "$TMP/rl.json") (at most $lim may pass)"
ok "one source: $acc of 100 unknown-MAC requests passed (at most $lim), the rest 429"

# ---- the spray --------------------------------------------------------------
# the node's script every 0.2 s while the spray runs; failures are counted
( fails=0 n=0
  while [ ! -f "$TMP/spray.done" ]; do
	script_ok || fails=$((fails + 1)); n=$((n + 1)); sleep 0.2
  done; echo "$n $fails" >"$TMP/probe.out" ) &
PROBE=$!
t0=$(date +%s%N)
inc $SPRAY http --host "$SRV" --port "$PORT" --sources 10.242.1.0/512 --count "$N" \
	--deadline 240 >"$TMP/http.json" 2>"$TMP/http.err" &
hp=$!
inc $SPRAY dhcp --server "$SRV" --giaddr "$RELAY" --count "$N" --rate 10000 \
	--known-mac "$NODE_MAC" --probe-every 2000 --deadline 120 >"$TMP/dhcp.json" 2>"$TMP/dhcp.err" \
	|| die "dhcp spray: $(cat "$TMP/dhcp.err")"
wait "$hp" || die "http spray: $(tail -5 "$TMP/http.err")"
t1=$(date +%s%N)
touch "$TMP/spray.done"
wait "$PROBE"
PROBE=
read -r probes pfail <"$TMP/probe.out"
echo "     spray: http $(cat "$TMP/http.json") dhcp $(cat "$TMP/dhcp.json") ($(( (t1 - t0) / 1000000 )) ms)"
kill -0 "$PID" 2>/dev/null || die "kiln serve died in the spray"
[ "$probes" -ge 1 ] && [ "$pfail" = 0 ] || die "node script during the spray: $pfail of $probes failed"
ok "the node's script answered during the spray ($probes of $probes)"

# ---- what the spray left ------------------------------------------------------
total=$(jq '[.status[]] | add' "$TMP/http.json")
[ "$total" = "$N" ] || die "http spray: $total answers of $N"
# every source's burst holds more discovery posts than the cap: 503s
[ "$(jq '.status["503"] // 0' "$TMP/http.json")" -gt 0 ] || die "no HTTP 503 in the spray"
[ "$(jq '[.status | keys[] | select(. != "200" and . != "429" and . != "503")] | length' \
	"$TMP/http.json")" = 0 ] || die "unexpected HTTP codes: $(cat "$TMP/http.json")"
seen=$(sql "$DB" "SELECT count(*) FROM machines WHERE name IS NULL AND state = 'seen'")
disc=$(sql "$DB" "SELECT count(*) FROM machines WHERE name IS NULL AND state = 'discovered'")
rows=$(sql "$DB" "SELECT count(*) FROM machines")
events=$(sql "$DB" "SELECT count(*) FROM events")
# every source gets its burst (20, half of it discovery posts): 512 * 10
# new MACs each way at least, more than either cap
[ "$seen" = 4096 ] || die "seen rows: $seen (cap 4096, reached)"
[ "$disc" = 4096 ] || die "discovered rows: $disc (cap 4096, reached)"
[ "$rows" -le $((4096 + 4096 + 1)) ] || die "machines rows: $rows"
[ "$events" -le 50000 ] || die "events: $events (cap 50000)"
leases=$(sql "$TMP/state/leases.db" "SELECT count(*) FROM leases")
[ "$leases" -le 101 ] || die "lease rows: $leases (pool 100 + 1 reservation)"
dbsize=$(cat "$DB" "$DB-wal" 2>/dev/null | wc -c)
[ "$dbsize" -le $((64 << 20)) ] || die "serve.db + WAL: $dbsize bytes"
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$PID/stat")
[ "$rss" -le $((160 << 10)) ] || die "RSS $rss kB (bound 160 MiB)"
echo "     rows: seen=$seen discovered=$disc machines=$rows events=$events leases=$leases;" \
	"serve.db+wal=$((dbsize >> 10)) KiB; RSS=$rss kB; daemon CPU ${cpu} s"
ok "$N MACs over HTTP: rows within caps, 503 once discovered is full, events $events, db $((dbsize >> 10)) KiB, RSS $rss kB"

sent=$(jq .sent "$TMP/dhcp.json")
[ "$sent" = "$N" ] || die "dhcp spray sent $sent of $N"
[ "$(jq -r '.known_offers | keys | join(",")' "$TMP/dhcp.json")" = "$NODE_IP" ] \
	|| die "the node's DISCOVERs during the spray: $(jq -c .known_offers "$TMP/dhcp.json")"
ok "$N MACs over DHCP: leases $leases within the pool; the node was offered $NODE_IP during the spray"

# ---- after the spray: the node still boots --------------------------------------
script_ok || die "node script after the spray"
ip -n "$NS_C" link set "$VC" down
ip -n "$NS_C" addr flush dev "$VC"
ip -n "$NS_C" link set "$VC" address "$NODE_MAC"
ip -n "$NS_C" link set "$VC" up
rm -f "$TMP/udhcpc.env"
inc timeout 20 udhcpc -f -q -n -t 5 -T 1 -i "$VC" -s "$TMP/udhcpc.sh" >/dev/null 2>&1 \
	|| die "udhcpc for the node after the spray"
[ "$(getv "$TMP/udhcpc.env" ip)" = "$NODE_IP" ] || die "node lease: '$(getv "$TMP/udhcpc.env" ip)'"
ok "after the spray: the node's script and its DHCP lease ($NODE_IP)"
serve_stop
