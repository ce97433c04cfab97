#!/bin/bash
# DHCP of `kiln serve` against real clients, in namespaces this test
# creates (prefix kbt-):
#   server ns: bridge 10.232.0.1/16 running `kiln serve -f cluster.yaml`
#   (drops to nobody); client ns: dhclient and udhcpc; relay ns: a relay
#   (10.232.0.2, giaddr 10.233.0.1 for a relayed net) and perfdhcp.
# Checks reserved/pool addresses, options, PXE boot file, RELEASE, relay
# replies with option 82, leases surviving kill -9, and no double binding
# under load.
set -euo pipefail

die() { echo "FAIL: $*" >&2; [ -f "${TMP:-/nonexistent}/serve.log" ] && tail -20 "$TMP/serve.log" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in dhclient udhcpc perfdhcp sqlite3 ip; do
	command -v "$c" >/dev/null || die "missing '$c'"
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

. "$(dirname "$0")/serve/lib.sh"
serve_find_kiln

id=$(( $$ % 10000 ))
NS_S=kbt-dhcp-s$id NS_C=kbt-dhcp-c$id NS_R=kbt-dhcp-r$id
BR=kbt-db$id
VC=kbt-dc$id VCP=kbt-dcp$id VR=kbt-dr$id VRP=kbt-drp$id
SRV=10.232.0.1
RES_MAC=52:54:00:aa:00:10 RES_IP=10.232.0.10
TMP=$(mktemp -d /tmp/kbt-dhcp.XXXXXX)
DB=$TMP/state/leases.db
PID=

cleanup() {
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
	[ -f "$TMP/dhclient.pid" ] && kill "$(cat "$TMP/dhclient.pid")" 2>/dev/null || true
	for n in "$NS_S" "$NS_C" "$NS_R"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# ---- topology ----------------------------------------------------------
for n in "$NS_S" "$NS_C" "$NS_R"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$NS_S" link add "$BR" type bridge
ip -n "$NS_S" addr add "$SRV/16" dev "$BR"
ip -n "$NS_S" link set "$BR" up
ip link add "$VC" netns "$NS_C" type veth peer name "$VCP" netns "$NS_S"
ip link add "$VR" netns "$NS_R" type veth peer name "$VRP" netns "$NS_S"
for p in "$VCP" "$VRP"; do
	ip -n "$NS_S" link set "$p" master "$BR"
	ip -n "$NS_S" link set "$p" up
done
ip -n "$NS_C" link set "$VC" up
ip -n "$NS_R" addr add 10.232.0.2/16 dev "$VR"
ip -n "$NS_R" addr add 10.233.0.1/16 dev "$VR"
ip -n "$NS_R" link set "$VR" up
ip -n "$NS_S" route add 10.233.0.0/16 via 10.232.0.2

# ---- kiln serve: spec, TFTP root, token ----------------------------------
chmod 755 "$TMP"
mkdir -p "$TMP/tftp"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/api-token"
chmod 600 "$TMP/api-token"
# lan: the bridge, with a pool and one reservation; relayed: no interface,
# reached only through the relay at 10.233.0.1.
cat >"$TMP/cluster.yaml" <<EOF
cluster: kbt-dhcp
ssh:
  known_hosts: kh
boot:
  server: $SRV
  http_port: 8080
  tftp_root: tftp
  state_dir: state
  user: nobody
  api_token_file: api-token
  networks:
    - name: lan
      interface: $BR
      subnet: 10.232.0.0/16
      router: $SRV
      dns: [$SRV, 10.232.0.53]
      pool: 10.232.1.0-10.232.4.255
      lease_time: 600
      allow_unknown: true
    - name: relayed
      subnet: 10.233.0.0/16
      router: 10.233.0.1
      pool: 10.233.1.0-10.233.4.255
      lease_time: 600
      allow_unknown: true
nodes:
  - name: node-res
    address: $RES_IP
    mac: "$RES_MAC"
EOF
out=$(ip netns exec "$NS_S" "$KILN" serve -f "$TMP/cluster.yaml" -n 2>&1) || die "serve -n: $out"

serve_start

inc() { ip netns exec "$NS_C" "$@"; }
set_mac() {
	ip -n "$NS_C" link set "$VC" down
	ip -n "$NS_C" addr flush dev "$VC"
	ip -n "$NS_C" link set "$VC" address "$1"
	ip -n "$NS_C" link set "$VC" up
}
q() { sqlite3 -cmd ".timeout 5000" "$DB" "$@"; }
ipnum() { local IFS=.; set -- $1; echo $(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 )); }
row() {   # ip -> "hexmac|state"
	q "SELECT lower(hex(mac)) || '|' || state FROM leases WHERE ip = $(ipnum "$1")"
}
ok() { printf 'ok   %s\n' "$*"; }

# ---- client scripts -----------------------------------------------------
# Both clients announce themselves as a PXE ROM (BIOS) where the test wants
# a boot file: kiln picks the loader from option 60/93.
serve_client_hooks 16

# ---- A: dhclient, reserved MAC -------------------------------------------
set_mac "$RES_MAC"
inc timeout 30 dhclient -4 -1 -cf "$TMP/dhclient.conf" -sf "$TMP/dhclient.sh" \
	-lf "$TMP/dhclient.leases" -pf "$TMP/dhclient.pid" "$VC" 2>"$TMP/dhclient.log" \
	|| { cat "$TMP/dhclient.log"; die "dhclient got no lease"; }
E=$TMP/dhclient.env
[ "$(getv "$E" new_ip_address)" = "$RES_IP" ] || die "dhclient: address $(getv "$E" new_ip_address)"
[ "$(getv "$E" new_routers)" = "$SRV" ] || die "dhclient: router"
[ "$(getv "$E" new_domain_name_servers)" = "$SRV 10.232.0.53" ] || die "dhclient: dns '$(getv "$E" new_domain_name_servers)'"
[ "$(getv "$E" new_filename)" = "undionly.kpxe" ] || die "dhclient: boot file '$(getv "$E" new_filename)'"
[ "$(getv "$E" new_host_name)" = "node-res" ] || die "dhclient: host name"
[ "$(getv "$E" new_subnet_mask)" = "255.255.0.0" ] || die "dhclient: mask"
[ "$(row "$RES_IP")" = "525400aa0010|2" ] || die "dhclient: lease not bound in db: $(row "$RES_IP")"
ok "dhclient (PXE): reserved address, router, dns, boot file undionly.kpxe, host name; bound in db"
inc dhclient -r -cf "$TMP/dhclient.conf" -sf "$TMP/dhclient.sh" \
	-lf "$TMP/dhclient.leases" -pf "$TMP/dhclient.pid" "$VC" 2>>"$TMP/dhclient.log"
for _ in $(seq 30); do [ "$(row "$RES_IP")" = "525400aa0010|3" ] && break; sleep 0.1; done
[ "$(row "$RES_IP")" = "525400aa0010|3" ] || die "dhclient -r: lease not released: $(row "$RES_IP")"
ok "dhclient -r: RELEASE recorded"

# ---- B: udhcpc, reserved MAC ---------------------------------------------
set_mac "$RES_MAC"
U=$TMP/udhcpc.env
udhcpc_run() { rm -f "$U"; inc timeout 20 udhcpc ${UDHCPC_ARGS:-} -f -q -n -t 5 -T 1 -i "$VC" -s "$TMP/udhcpc.sh" "$@" >"$TMP/udhcpc.log" 2>&1 || { cat "$TMP/udhcpc.log"; die "udhcpc failed"; }; }
udhcpc_run -V "$PXE_VC"
[ "$(getv "$U" ip)" = "$RES_IP" ] || die "udhcpc: address"
[ "$(getv "$U" router)" = "$SRV" ] || die "udhcpc: router"
[ "$(getv "$U" dns)" = "$SRV 10.232.0.53" ] || die "udhcpc: dns '$(getv "$U" dns)'"
[ "$(getv "$U" boot_file)" = "undionly.kpxe" ] || die "udhcpc: boot file '$(getv "$U" boot_file)'"
[ "$(getv "$U" siaddr)" = "$SRV" ] || die "udhcpc: siaddr '$(getv "$U" siaddr)'"
[ "$(getv "$U" serverid)" = "$SRV" ] || die "udhcpc: server id"
ok "udhcpc (PXE): reserved address, router, dns, boot file, siaddr, server id"

# ---- C: unknown MAC gets a pool address; RELEASE frees it ----------------
set_mac 02:00:00:bb:00:01
# (udhcpc -q -R quits before it counts as bound and sends no RELEASE, so
# run it in the foreground and stop it with SIGTERM, which releases.)
rm -f "$U"
ip netns exec "$NS_C" udhcpc ${UDHCPC_ARGS:-} -f -R -t 5 -T 1 -i "$VC" -s "$TMP/udhcpc.sh" >"$TMP/udhcpc.log" 2>&1 &
UP=$!
for _ in $(seq 100); do [ -s "$U" ] && break; sleep 0.1; done
[ -s "$U" ] || { cat "$TMP/udhcpc.log"; die "udhcpc got no pool lease"; }
kill -TERM "$UP"
wait "$UP" || true
P=$(getv "$U" ip)
case "$P" in 10.232.[1-4].*) ;; *) die "unknown MAC got '$P', not a pool address" ;; esac
[ "$(getv "$U" boot_file)" = "" ] || die "unknown non-PXE client got a boot file"
for _ in $(seq 30); do [ "$(row "$P")" = "020000bb0001|3" ] && break; sleep 0.1; done
[ "$(row "$P")" = "020000bb0001|3" ] || { cat "$TMP/udhcpc.log"; die "udhcpc -R: not released: $(row "$P")"; }
set_mac 02:00:00:bb:00:02
udhcpc_run -r "$P"
[ "$(getv "$U" ip)" = "$P" ] || die "freed address $P not reusable (got $(getv "$U" ip))"
[ "$(row "$P")" = "020000bb0002|2" ] || die "reuse not bound: $(row "$P")"
ok "unknown MAC: pool address $P; RELEASE freed it; another MAC got it"

# ---- D: relayed requests are answered to the relay, option 82 echoed ------
cat >"$TMP/relay.py" <<'EOF'
import socket, struct, sys
giaddr, server = sys.argv[1], sys.argv[2]
mac = bytes.fromhex("020000cc0001")
ri = bytes([1, 6]) + b"port-7" + bytes([2, 3]) + b"abc"
def pkt(typ, extra=b""):
    b = bytearray(240)
    b[0:4] = bytes([1, 1, 6, 1])
    b[4:8] = b"\xca\xfe\x00\x01"
    b[24:28] = socket.inet_aton(giaddr)
    b[28:34] = mac
    b[236:240] = bytes([99, 130, 83, 99])
    b += bytes([53, 1, typ]) + extra + bytes([82, len(ri)]) + ri + b"\xff"
    return bytes(b)
def opts(b):
    o, i = {}, 240
    while i < len(b) and b[i] != 255:
        if b[i] == 0:
            i += 1; continue
        o[b[i]] = b[i + 2:i + 2 + b[i + 1]]; last = b[i]; i += 2 + b[i + 1]
    return o, last
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((giaddr, 67))
s.settimeout(5)
s.sendto(pkt(1), (server, 67))
r, src = s.recvfrom(2048)
o, last = opts(r)
assert o[53] == b"\x02", "not an OFFER"
assert r[24:28] == socket.inet_aton(giaddr), "giaddr not echoed"
assert o[82] == ri and last == 82, "option 82 not echoed last"
yi = socket.inet_ntoa(r[16:20])
assert yi.startswith("10.233."), "relayed net not used: " + yi
assert o[3] == socket.inet_aton("10.233.0.1"), "router of the relayed net"
s.sendto(pkt(3, bytes([50, 4]) + r[16:20] + bytes([54, 4]) + o[54]), (server, 67))
r, src = s.recvfrom(2048)
o, last = opts(r)
assert o[53] == b"\x05", "not an ACK"
assert o[82] == ri
print(yi)
EOF
RY=$(ip netns exec "$NS_R" "$PY" "$TMP/relay.py" 10.233.0.1 "$SRV") || die "relay exchange failed"
[ "$(row "$RY")" = "020000cc0001|2" ] || die "relayed lease not bound: $(row "$RY")"
ok "relay: OFFER/ACK sent to giaddr, relayed net's pool ($RY), option 82 echoed"

# ---- E: a lease survives kill -9 right after the ACK ---------------------
set_mac 02:00:00:dd:00:01
udhcpc_run
K=$(getv "$U" ip)
serve_kill9
[ "$(row "$K")" = "020000dd0001|2" ] || die "lease lost after kill -9: $(row "$K")"
serve_start
set_mac 02:00:00:dd:00:02
udhcpc_run -r "$K"
[ "$(getv "$U" ip)" != "$K" ] || die "after restart $K was given to a second MAC"
set_mac 02:00:00:dd:00:01
udhcpc_run
[ "$(getv "$U" ip)" = "$K" ] || die "after restart the owner did not get $K back"
ok "kill -9 after ACK: lease $K on disk, kept by its owner, refused to others"

# ---- F: bounded perfdhcp load, then no address with two owners -----------
ip netns exec "$NS_R" timeout 30 perfdhcp -4 -l "$VR" -r 500 -p 5 -R 200 "$SRV" \
	>"$TMP/perfdhcp.log" 2>&1 || true
grep -E "^(sent|received|drops|rejected)|Rate:" "$TMP/perfdhcp.log" | sed 's/^/     perfdhcp: /' | head -12
acks=$(awk '/Request - Ack|^received/ {n++} END {print n+0}' "$TMP/perfdhcp.log")
recv=$(grep -m2 -E "^received packets" "$TMP/perfdhcp.log" | awk '{s += $3} END {print s+0}')
[ "${recv:-0}" -gt 100 ] || { cat "$TMP/perfdhcp.log"; die "perfdhcp received too few replies"; }
now=$(date +%s)
dup_ip=$(q "SELECT count(*) FROM (SELECT ip FROM leases GROUP BY ip HAVING count(*) > 1)")
dup_mac=$(q "SELECT count(*) FROM (SELECT mac FROM leases WHERE state IN (1,2) AND expires > $now GROUP BY mac HAVING count(*) > 1)")
bound=$(q "SELECT count(*) FROM leases WHERE state = 2 AND expires > $now")
[ "$dup_ip" = 0 ] || die "$dup_ip addresses with two rows"
[ "$dup_mac" = 0 ] || die "$dup_mac MACs holding two live addresses"
[ "$bound" -gt 100 ] || die "only $bound live leases after perfdhcp"
ok "perfdhcp -r 500 -p 5 -R 200: $recv replies, $bound live leases, no address with two owners"

kill "$PID"
wait "$PID" || die "kiln serve did not exit cleanly on SIGTERM"
PID=
echo "PASS 0100-dhcp"
