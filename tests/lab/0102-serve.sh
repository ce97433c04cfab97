#!/bin/bash
# kiln serve end to end, in namespaces this test creates (prefix ksv-):
#   server ns: veth 10.241.0.1/24 running `kiln serve` (drops to nobody);
#   client ns: the veth's other end, where dhclient, udhcpc and curl run.
# Checks: -n on a good and a bad spec; the daemon's UID; DHCP reserved
# address + PXE boot file + iPXE script URL; iPXE scripts for a known MAC,
# an unknown MAC (discovery), a provisioned node (local disk); kernel with
# Range (206, bytes match), HEAD, 416; discovery -> `kiln boot status`;
# `kiln boot enroll` -> the next script is the node's; API token (401);
# SIGHUP reload with a changed reservation while a big TFTP transfer
# completes with the right checksum; a bad reload keeps the old config;
# kill -9 + restart keeps leases.
set -euo pipefail

die() { echo "FAIL: $*" >&2; [ -f "${TMP:-/nonexistent}/serve.log" ] && tail -25 "$TMP/serve.log" >&2; exit 1; }
ok() { printf 'ok   %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in dhclient udhcpc curl sqlite3 ip jq tftp sha256sum; do
	command -v "$c" >/dev/null || die "missing '$c'"
done
. "$(dirname "$0")/serve/lib.sh"
serve_find_kiln

id=$(( $$ % 10000 ))
NS_S=ksv-s$id NS_C=ksv-c$id VS=ksv-vs$id VC=ksv-vc$id
SRV=10.241.0.1 PORT=8080
NODE_MAC=52:54:00:41:00:17 NODE_IP=10.241.0.17 NODE_IP2=10.241.0.27
UNK_MAC=52:54:00:41:00:99
TMP=$(mktemp -d /tmp/ksv-serve.XXXXXX)
PID=

cleanup() {
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
	[ -f "$TMP/dhclient.pid" ] && kill "$(cat "$TMP/dhclient.pid")" 2>/dev/null || true
	for n in "$NS_S" "$NS_C"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# ---- topology -------------------------------------------------------------
for n in "$NS_S" "$NS_C"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add "$VS" netns "$NS_S" type veth peer name "$VC" netns "$NS_C"
ip -n "$NS_S" addr add "$SRV/24" dev "$VS"
ip -n "$NS_S" link set "$VS" up
ip -n "$NS_C" link set "$VC" up
ins() { ip netns exec "$NS_S" "$@"; }
inc() { ip netns exec "$NS_C" "$@"; }
set_mac() {
	ip -n "$NS_C" link set "$VC" down
	ip -n "$NS_C" addr flush dev "$VC"
	ip -n "$NS_C" link set "$VC" address "$1"
	ip -n "$NS_C" link set "$VC" up
}

# ---- files: spec, images, TFTP root, token ---------------------------------
chmod 755 "$TMP"
mkdir -p "$TMP/images" "$TMP/tftp"
head -c 3000000 /dev/urandom >"$TMP/images/vmlinuz"
head -c 100000 /dev/urandom >"$TMP/images/initrd.img"
head -c 20000000 /dev/urandom >"$TMP/tftp/big.bin"
echo fake >"$TMP/tftp/undionly.kpxe"
echo fake >"$TMP/tftp/snponly.efi"
echo fake >"$TMP/tftp/ipxe-arm64.efi"   # every default loader present: -n is clean
ln -s /etc/passwd "$TMP/tftp/escape.efi"
chmod -R a+rX "$TMP"
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" >"$TMP/api-token"
chmod 600 "$TMP/api-token"

write_spec() {   # $1 = gpu-07's address
	cat >"$TMP/cluster.yaml" <<EOF
cluster: lab
ssh:
  known_hosts: kh
boot:
  server: $SRV
  http_port: $PORT
  tftp_root: tftp
  state_dir: state
  api_token_file: api-token
  networks:
    - name: rack1
      interface: $VS
      subnet: 10.241.0.0/24
      router: $SRV
      dns: [$SRV]
      pool: 10.241.0.100-10.241.0.199
      lease_time: 600
      allow_unknown: true
  images:
    debian12:
      kernel: images/vmlinuz
      initrd: images/initrd.img
      cmdline: "console=ttyS0"
    discover:
      kernel: images/vmlinuz
      cmdline: "console=ttyS0 quiet"
  discovery_image: discover
stacks:
  base:
    admin_user: {name: ops, keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKey ops@lab"]}
nodes:
  - name: gpu-07
    address: $1
    mac: "$NODE_MAC"
    boot_image: debian12
    bmc: {type: ipmi, address: 10.0.0.5, user: admin, password_file: secrets/gpu-07.bmc}
EOF
}
write_spec "$NODE_IP"

# ---- -n -------------------------------------------------------------------
out=$(ins "$KILN" serve -f "$TMP/cluster.yaml" -n 2>&1) || die "-n on a good spec: $out"
[ "$out" = "configuration OK" ] || die "-n said '$out'"
cp "$TMP/cluster.yaml" "$TMP/bad.yaml"
sed -i 's/boot_image: debian12/boot_image: debian13/' "$TMP/bad.yaml"
if out=$(ins "$KILN" serve -f "$TMP/bad.yaml" -n 2>&1); then die "-n accepted a bad spec"; fi
echo "$out" | grep -q "bad.yaml:[0-9]*:[0-9]*: node 'gpu-07': boot_image: no image 'debian13'" \
	|| die "-n on a bad spec said '$out'"
# a loader the spec names must be servable from tftp_root
for l in "bios: nothere.kpxe|'nothere.kpxe' cannot be served from '$TMP/tftp': No such file" \
	 "efi64: escape.efi|'escape.efi' cannot be served from '$TMP/tftp': it leads out of tftp_root"; do
	sed -e "s|^boot:|boot:\n  loaders: {${l%%|*}}|" "$TMP/cluster.yaml" >"$TMP/bad3.yaml"
	if out=$(ins "$KILN" serve -f "$TMP/bad3.yaml" -n 2>&1); then die "-n accepted loaders {${l%%|*}}"; fi
	echo "$out" | grep -qF "boot.loaders.${l%%:*}: ${l#*|}" || die "-n on loaders {${l%%|*}} said '$out'"
done
sed -e "s/interface: $VS/interface: ksv-nope$id/" "$TMP/cluster.yaml" >"$TMP/bad2.yaml"
if out=$(ins "$KILN" serve -f "$TMP/bad2.yaml" -n 2>&1); then die "-n accepted a missing interface"; fi
echo "$out" | grep -q "no interface 'ksv-nope$id'" || die "-n on a missing interface said '$out'"
ok "serve -n: good spec OK; unknown image, missing interface and unservable loaders refused with the place"

# ---- start ------------------------------------------------------------------
serve_start
kuid=$(id -u _kiln) || die "the default user _kiln was not created"
uid=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$NPID/status")
[ "$uid" = "$kuid $kuid $kuid $kuid" ] || die "network process uids after startup: '$uid'"
[ "$(readlink "/proc/$NPID/root")" = /run/kiln/empty ] || die "network process not chrooted: $(readlink "/proc/$NPID/root")"
[ -z "$(ls -A /run/kiln/empty)" ] || die "the chroot is not empty"
ok "kiln serve: network process runs as _kiln (uids $uid), chrooted to an empty /run/kiln/empty; privileged one stays root"

URL=http://$SRV:$PORT
# HTTP from the client namespace needs an address there
api() { inc curl -sS -o "$TMP/body" -w '%{http_code}' "$@"; }

# ---- DHCP: dhclient (PXE) and udhcpc (iPXE) ----------------------------------
serve_client_hooks 24
dhclient_run() {
	rm -f "$TMP/dhclient.env" "$TMP/dhclient.leases"
	inc timeout 30 dhclient -4 -1 -cf "$TMP/dhclient.conf" -sf "$TMP/dhclient.sh" \
		-lf "$TMP/dhclient.leases" -pf "$TMP/dhclient.pid" "$VC" 2>"$TMP/dhclient.log" \
		|| { cat "$TMP/dhclient.log"; die "dhclient got no lease"; }
	[ -f "$TMP/dhclient.pid" ] && kill "$(cat "$TMP/dhclient.pid")" 2>/dev/null || true
	rm -f "$TMP/dhclient.pid"
}
set_mac "$NODE_MAC"
dhclient_run
E=$TMP/dhclient.env
[ "$(getv "$E" new_ip_address)" = "$NODE_IP" ] || die "dhclient: address '$(getv "$E" new_ip_address)'"
[ "$(getv "$E" new_routers)" = "$SRV" ] || die "dhclient: router"
[ "$(getv "$E" new_filename)" = "undionly.kpxe" ] || die "dhclient: boot file '$(getv "$E" new_filename)'"
ok "dhclient (PXE): reserved address $NODE_IP, router, boot file undionly.kpxe"

rm -f "$TMP/udhcpc.env"
inc ip addr flush dev "$VC"
inc timeout 20 udhcpc -f -q -n -t 5 -T 1 -i "$VC" -s "$TMP/udhcpc.sh" -x 0x4d:69505845 \
	>"$TMP/udhcpc.log" 2>&1 || { cat "$TMP/udhcpc.log"; die "udhcpc failed"; }
U=$TMP/udhcpc.env
[ "$(getv "$U" ip)" = "$NODE_IP" ] || die "udhcpc: address '$(getv "$U" ip)'"
[ "$(getv "$U" boot_file)" = "$URL/boot/$NODE_MAC.ipxe" ] || die "udhcpc (iPXE): boot file '$(getv "$U" boot_file)'"
ok "udhcpc (iPXE user class): reserved address, boot file is the per-host script URL"

# ---- iPXE scripts -----------------------------------------------------------
[ "$(api "$URL/boot/$NODE_MAC.ipxe")" = 200 ] || die "script for the node"
grep -q '^#!ipxe' "$TMP/body" || die "script lacks #!ipxe"
grep -q "^kernel $URL/images/debian12/kernel initrd=initrd console=ttyS0 kiln.node=gpu-07 kiln.server=$URL\$" "$TMP/body" \
	|| { cat "$TMP/body"; die "node script kernel line"; }
grep -q "^initrd --name initrd $URL/images/debian12/initrd\$" "$TMP/body" || die "node script initrd line"
grep -q '^boot$' "$TMP/body" || die "node script lacks boot"
[ "$(api "$URL/boot/$UNK_MAC.ipxe")" = 200 ] || die "script for an unknown MAC"
grep -q "kernel $URL/images/discover/kernel console=ttyS0 quiet kiln.mac=$UNK_MAC kiln.server=$URL" "$TMP/body" \
	|| { cat "$TMP/body"; die "discovery script"; }
[ "$(api "$URL/boot/not-a-mac.ipxe")" = 404 ] || die "bad MAC not 404"
# UEFI HTTP boot: the loader named in the DHCP reply comes from tftp_root,
# under the TFTP rules (no link out of the root)
printf 'EFI loader %s\n' "$id" >"$TMP/tftp/snponly.efi"
[ "$(api "$URL/boot/snponly.efi")" = 200 ] && cmp -s "$TMP/body" "$TMP/tftp/snponly.efi" ||
	die "GET /boot/snponly.efi did not return the file from tftp_root"
[ "$(api -I "$URL/boot/snponly.efi")" = 200 ] || die "HEAD /boot/snponly.efi"
[ "$(api "$URL/boot/escape.efi")" = 404 ] || die "a loader symlinked out of tftp_root was served"
[ "$(api "$URL/boot/nothere.efi")" = 404 ] || die "a missing loader is not 404"
ok "iPXE: node script (kernel URL, cmdline, kiln.node, initrd, boot); unknown MAC gets discovery; HTTP boot loader from tftp_root, no escape"

# ---- images: Range, HEAD, 416 ---------------------------------------------
size=$(stat -c %s "$TMP/images/vmlinuz")
code=$(inc curl -sS -o "$TMP/part" -w '%{http_code}' -r 1000-200999 "$URL/images/debian12/kernel")
[ "$code" = 206 ] || die "Range: status $code"
cmp -s "$TMP/part" <(tail -c +1001 "$TMP/images/vmlinuz" | head -c 200000) || die "Range: bytes differ"
code=$(inc curl -sS -o "$TMP/part" -w '%{http_code}' -r -500 "$URL/images/debian12/kernel")
[ "$code" = 206 ] && cmp -s "$TMP/part" <(tail -c 500 "$TMP/images/vmlinuz") || die "suffix Range"
code=$(inc curl -sS -o "$TMP/full" -w '%{http_code}' "$URL/images/debian12/kernel")
[ "$code" = 200 ] && cmp -s "$TMP/full" "$TMP/images/vmlinuz" || die "full kernel"
inc curl -sS -I "$URL/images/debian12/kernel" >"$TMP/head"
grep -qi "^content-length: $size" "$TMP/head" || die "HEAD: $(cat "$TMP/head")"
grep -qi '^accept-ranges: bytes' "$TMP/head" || die "HEAD: no Accept-Ranges"
code=$(inc curl -sS -o /dev/null -w '%{http_code}' -r "$size-" "$URL/images/debian12/kernel")
[ "$code" = 416 ] || die "Range past the end: $code"
ok "images: 206 with matching bytes (range and suffix), 200 whole, HEAD length, 416"

# ---- cloud-init -------------------------------------------------------------
[ "$(api "$URL/cloud-init/$NODE_MAC/meta-data")" = 200 ] || die "meta-data"
grep -q '^local-hostname: gpu-07$' "$TMP/body" || die "meta-data content"
[ "$(api "$URL/cloud-init/$NODE_MAC/user-data")" = 200 ] || die "user-data"
grep -q 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKey' "$TMP/body" || die "user-data key"
grep -q "$URL/api/nodes/gpu-07/provisioned" "$TMP/body" || die "user-data phone_home"
ok "cloud-init: meta-data, user-data with admin keys and phone-home"

# ---- discovery, status, enroll --------------------------------------------
[ "$(api -X POST -d "{\"mac\":\"$UNK_MAC\",\"facts\":{\"cpu\":{\"model\":\"Fake CPU\\u0001\",\"threads\":8},\"gpus\":[{},{}]}}" "$URL/api/discover")" = 200 ] \
	|| die "discover: $(cat "$TMP/body")"
[ "$(api -X POST -d '{"mac":"zz"}' "$URL/api/discover")" = 400 ] || die "discover with a bad MAC not 400"
head -c 300000 /dev/zero | tr '\0' 'a' >"$TMP/huge"
code=$(api -X POST --data-binary @"$TMP/huge" "$URL/api/discover")
[ "$code" = 413 ] || die "oversized discovery body: $code"
ins "$KILN" boot status -f "$TMP/cluster.yaml" -o json >"$TMP/status.json" || die "boot status"
jq -e --arg m "$UNK_MAC" '.discovered[] | select(.mac == $m) | .hardware | test("Fake CPU\\?, 8 threads, 2 GPUs")' \
	"$TMP/status.json" >/dev/null || die "status lacks the discovered machine: $(cat "$TMP/status.json")"
jq -e '.nodes[] | select(.name == "gpu-07") | .state == "booting" and .lease.ip == "'"$NODE_IP"'"' \
	"$TMP/status.json" >/dev/null || die "status: gpu-07 not booting with its lease"
ok "discovery stored (sanitised facts); oversize 413; boot status shows it and gpu-07 booting"

ins "$KILN" boot enroll "$UNK_MAC" --name disc-1 --roles worker --image debian12 \
	-f "$TMP/cluster.yaml" >"$TMP/enroll.out" 2>&1 || die "enroll: $(cat "$TMP/enroll.out")"
grep -q "name: disc-1" "$TMP/enrolled.yaml" || die "enrolled.yaml lacks the node"
grep -q "no kiln serve answered\|refused" "$TMP/enroll.out" && die "enroll did not reload: $(cat "$TMP/enroll.out")"
[ "$(api "$URL/boot/$UNK_MAC.ipxe")" = 200 ] || die "script after enroll"
grep -q "kiln.node=disc-1" "$TMP/body" || { cat "$TMP/body"; die "after enroll the script is not the node's"; }
if ins "$KILN" boot enroll "$UNK_MAC" --name disc-2 -f "$TMP/cluster.yaml" >/dev/null 2>&1; then
	die "enrolling a MAC twice succeeded"
fi
ok "boot enroll: written to enrolled.yaml, daemon reloaded, next script is disc-1's; a second enroll refused"

# ---- token ------------------------------------------------------------------
[ "$(api -X POST "$URL/api/reload")" = 401 ] || die "reload without token not 401"
[ "$(api -X POST -H "Authorization: Bearer wrong$TOKEN" "$URL/api/reload")" = 401 ] || die "wrong token not 401"
[ "$(api -X POST -H "Authorization: Bearer $TOKEN" "$URL/api/reload")" = 200 ] || die "reload with token"
[ "$(api -X POST "$URL/api/nodes/gpu-07/reprovision")" = 401 ] || die "reprovision without token not 401"
ok "API: state changes without or with a wrong token get 401; with the token 200"

# ---- provisioned -> local disk; only from the node's address -------------------
code=$(ins curl -sS -o /dev/null -w '%{http_code}' -X POST "$URL/api/nodes/gpu-07/provisioned")
[ "$code" = 403 ] || die "provisioned from a foreign address: $code"
inc ip addr add "$NODE_IP/24" dev "$VC" 2>/dev/null || true
code=$(inc curl -sS -o /dev/null -w '%{http_code}' --interface "$NODE_IP" -X POST "$URL/api/nodes/gpu-07/provisioned")
[ "$code" = 200 ] || die "provisioned from the node: $code"
[ "$(api "$URL/boot/$NODE_MAC.ipxe")" = 200 ] || die "script after provisioned"
grep -q '^sanboot --no-describe --drive 0x80' "$TMP/body" || { cat "$TMP/body"; die "provisioned node does not boot locally"; }
grep -q '^kernel' "$TMP/body" && die "provisioned node would reinstall"
[ "$(api -X POST -H "Authorization: Bearer $TOKEN" "$URL/api/nodes/gpu-07/reprovision")" = 200 ] || die "reprovision"
[ "$(api "$URL/boot/$NODE_MAC.ipxe")" = 200 ] && grep -q 'kiln.node=gpu-07' "$TMP/body" || die "reprovision: no installer"
ok "provisioned (only from the node's address) -> local-disk script; reprovision -> installer again"

# ---- SIGHUP reload during a big TFTP transfer -----------------------------------
inc ip addr add "$NODE_IP/24" dev "$VC" 2>/dev/null || true
inc timeout 120 tftp -m binary "$SRV" -c get big.bin "$TMP/big.got" 2>"$TMP/tftp.log" &
TP=$!
for _ in $(seq 50); do [ -s "$TMP/big.got" ] && break; sleep 0.05; done
[ -s "$TMP/big.got" ] || die "TFTP transfer did not start"
write_spec "$NODE_IP2"
kill -HUP "$PID"
for _ in $(seq 50); do grep -q 'event=reload result=ok' "$TMP/serve.log" && break; sleep 0.1; done
grep -q 'event=reload result=ok' "$TMP/serve.log" || die "SIGHUP reload not logged"
kill -0 "$TP" 2>/dev/null || die "TFTP transfer ended before the reload (file too small to test)"
wait "$TP" || { cat "$TMP/tftp.log"; die "TFTP transfer failed across the reload"; }
[ "$(sha256sum <"$TMP/big.got")" = "$(sha256sum <"$TMP/tftp/big.bin")" ] || die "TFTP checksum differs after reload"
set_mac "$NODE_MAC"
dhclient_run
[ "$(getv "$TMP/dhclient.env" new_ip_address)" = "$NODE_IP2" ] || die "after reload: address '$(getv "$TMP/dhclient.env" new_ip_address)', not $NODE_IP2"
ok "SIGHUP: new reservation $NODE_IP2 in effect; 20 MB TFTP transfer in flight completed, checksum matches"

# ---- a bad reload keeps the old config ---------------------------------------
cp "$TMP/cluster.yaml" "$TMP/good.yaml"
sed -i 's/boot_image: debian12/boot_image: debian13/' "$TMP/cluster.yaml"
code=$(api -X POST -H "Authorization: Bearer $TOKEN" "$URL/api/reload")
[ "$code" = 422 ] || die "bad reload: $code"
jq -e '.error | test("no image .debian13.")' "$TMP/body" >/dev/null || die "bad reload error: $(cat "$TMP/body")"
grep -q 'event=reload result=failed' "$TMP/serve.log" || die "bad reload not logged"
[ "$(api "$URL/boot/$NODE_MAC.ipxe")" = 200 ] && grep -q 'kiln.node=gpu-07' "$TMP/body" || die "old config lost"
cp "$TMP/good.yaml" "$TMP/cluster.yaml"
ok "a bad spec on reload: 422 with the error, logged, old config still serves"

# ---- kill -9 + restart keeps leases -------------------------------------------
before=$(sqlite3 "$TMP/state/leases.db" "SELECT count(*) FROM leases WHERE state = 2")
[ "$before" -ge 1 ] || die "no bound lease before kill -9"
serve_kill9
serve_start
[ "$(api "$URL/api/leases")" = 200 ] || die "leases API after restart"
jq -e --arg m "$NODE_MAC" --arg ip "$NODE_IP2" '.[] | select(.mac == $m and .ip == $ip and .state == "bound")' \
	"$TMP/body" >/dev/null || die "lease lost across kill -9: $(cat "$TMP/body")"
set_mac "$NODE_MAC"
dhclient_run
[ "$(getv "$TMP/dhclient.env" new_ip_address)" = "$NODE_IP2" ] || die "after restart: address"
ok "kill -9 + restart: bound lease kept ($before bound), same address again, not root"

kill -TERM "$PID"
wait "$PID" 2>/dev/null || true
PID=
echo "PASS"
