#!/bin/bash
# kiln serve's privilege separation (docs/serve.md, "Two processes";
# docs/security.md).  One server namespace (prefix kps-), curl inside it.
#   A  the default user _kiln is created; the network process runs as it,
#      chrooted into the empty /run/kiln/empty; the privileged one is root;
#   B  state directory: a link planted where the databases live (to a
#      root-owned file) makes the start fail, and the file keeps its owner,
#      mode and content; a state_dir that is a link, is group-writable or
#      belongs to root is refused with how to fix it;
#   C  a spec file, the spec's directory or the token that the daemon's
#      user could write is refused at start and on reload;
#   D  POST /api/enroll (through the privileged side) works, and enrolls
#      racing with `kiln boot enroll` all land.
set -euo pipefail

die() { echo "FAIL: $*" >&2; [ -f "${TMP:-/nonexistent}/serve.log" ] && tail -20 "$TMP/serve.log" >&2; exit 1; }
ok() { echo "ok: $*"; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in curl ip jq runuser stat; do command -v "$c" >/dev/null || die "missing '$c'"; done
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/serve/lib.sh"
serve_find_kiln

id=$(( $$ % 10000 ))
NS_S=kps-s$id VS=kps-v$id VP=kps-p$id
SRV=10.235.0.1 PORT=8080
TMP=$(mktemp -d /tmp/kps-privsep.XXXXXX)
PID=
had_user=false
getent passwd _kiln >/dev/null && had_user=true
cleanup() {
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	ip link del "$VP" 2>/dev/null || true
	rm -rf "$TMP"
	# the user this test made (a machine that had it keeps it)
	$had_user || userdel _kiln 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$NS_S"
ip -n "$NS_S" link set lo up
ip link add "$VP" type veth peer name "$VS" netns "$NS_S"
ip -n "$NS_S" addr add "$SRV/24" dev "$VS"
ip -n "$NS_S" link set "$VS" up
ins() { ip netns exec "$NS_S" "$@"; }
URL=http://$SRV:$PORT
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
api() { ins curl -sS -o "$TMP/body" -w '%{http_code}' "$@"; }
apit() { api -H "Authorization: Bearer $TOKEN" "$@"; }

chmod 755 "$TMP"
mkdir -p "$TMP/images" "$TMP/tftp"
head -c 100000 /dev/urandom >"$TMP/images/vmlinuz"
head -c 10000 /dev/urandom >"$TMP/images/initrd.img"
for f in undionly.kpxe snponly.efi ipxe-arm64.efi; do echo fake >"$TMP/tftp/$f"; done
echo "$TOKEN" >"$TMP/api-token"
chmod 600 "$TMP/api-token"
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
      subnet: 10.235.0.0/24
      router: $SRV
      pool: 10.235.0.100-10.235.0.199
  images:
    debian12:
      kernel: images/vmlinuz
      initrd: images/initrd.img
EOF
chmod -R a+rX,go-w "$TMP"

# ---- A: users, chroot -----------------------------------------------------------
serve_start
kuid=$(id -u _kiln) || die "the default user _kiln was not created"
[ "$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$NPID/status")" = "$kuid $kuid $kuid $kuid" ] ||
	die "network process is not _kiln throughout"
[ "$(readlink "/proc/$NPID/root")" = /run/kiln/empty ] || die "network process root: $(readlink "/proc/$NPID/root")"
[ "$(stat -c '%U %a' "$TMP/state")" = "_kiln 700" ] || die "state_dir: $(stat -c '%U %a' "$TMP/state")"
[ "$(stat -c %U "$TMP/state/leases.db")" = _kiln ] || die "leases.db not created by the user"
[ "$(api "$URL/images/debian12/kernel")" = 200 ] && cmp -s "$TMP/body" "$TMP/images/vmlinuz" ||
	die "an image is not served from the chroot"
ok "A: _kiln created; network process runs as it in an empty chroot; images served from descriptors"
serve_stop

# ---- B: the state directory ---------------------------------------------------------
start_fails() {   # what: kiln serve must not start; $out gets its stderr
	local rc=0
	out=$(ins timeout 20 "$KILN" serve -f "$TMP/cluster.yaml" 2>&1) || rc=$?
	[ "$rc" != 0 ] || die "$1: kiln serve started"
	[ "$rc" != 124 ] || die "$1: kiln serve neither started nor failed"
}
echo "root only" >"$TMP/target"
chmod 600 "$TMP/target"
before=$(stat -c '%u %g %a %s' "$TMP/target")
rm -f "$TMP/state/leases.db-wal" "$TMP/state/leases.db-shm"
ln -s "$TMP/target" "$TMP/state/leases.db-wal"
chown -h _kiln: "$TMP/state/leases.db-wal"   # as the user could have made it
start_fails "a planted link"
echo "$out" | grep -q "leases.db" || die "a planted link: message '$out'"
[ "$(stat -c '%u %g %a %s' "$TMP/target")" = "$before" ] || die "the link's target changed: $(stat -c '%u %g %a %s' "$TMP/target")"
[ "$(cat "$TMP/target")" = "root only" ] || die "the link's target was written"
rm "$TMP/state/leases.db-wal"
ok "B: a link planted at leases.db-wal: start refused ('$(echo "$out" | tail -1)'), target unchanged"

mv "$TMP/state" "$TMP/state.real"
ln -s "$TMP/state.real" "$TMP/state"
start_fails "state_dir a link"
echo "$out" | grep -q "is a symbolic link, not a directory" || die "state_dir link: '$out'"
rm "$TMP/state"
mv "$TMP/state.real" "$TMP/state"
chmod 770 "$TMP/state"
start_fails "group-writable state_dir"
echo "$out" | grep -q "chmod 0700" || die "group-writable state_dir: '$out'"
chmod 700 "$TMP/state"
chown root "$TMP/state"
start_fails "root's state_dir"
echo "$out" | grep -q "not to the daemon's user '_kiln': chown -R _kiln:" || die "root's state_dir: '$out'"
chown _kiln "$TMP/state"
ok "B: state_dir as a link, group-writable, or root's: refused with the fix"

# ---- C: nothing root reads may be the user's to write --------------------------------------
chmod o+w "$TMP/cluster.yaml"
start_fails "a world-writable spec"
echo "$out" | grep -q "spec file '.*cluster.yaml' is writable by the daemon's user '_kiln'" || die "writable spec: '$out'"
chmod o-w "$TMP/cluster.yaml"
chgrp _kiln "$TMP" && chmod g+w "$TMP"
start_fails "a spec directory the user's group may write"
echo "$out" | grep -q "its directory '$TMP' is writable by the daemon's user" || die "writable spec dir: '$out'"
chgrp root "$TMP" && chmod g-w "$TMP"
chown _kiln "$TMP/api-token"
start_fails "the user's token file"
echo "$out" | grep -q "boot.api_token_file" || die "user's token: '$out'"
chown root "$TMP/api-token"
for f in "$TMP/cluster.yaml" "$TMP" "$TMP/api-token"; do
	runuser -u _kiln -- test -w "$f" && die "_kiln may write $f"
done
ok "C: a spec, spec directory or token the user could write: refused at start"

serve_start
# a spec the user may write is refused on reload too, and the old one serves
chmod o+w "$TMP/cluster.yaml"
[ "$(apit -X POST "$URL/api/reload")" = 422 ] || die "reload with a writable spec: $(cat "$TMP/body")"
jq -e '.error | test("writable by the daemon")' "$TMP/body" >/dev/null || die "reload refusal: $(cat "$TMP/body")"
chmod o-w "$TMP/cluster.yaml"
[ "$(apit -X POST "$URL/api/reload")" = 200 ] || die "reload: $(cat "$TMP/body")"
ok "C: a reload of a spec the user could write: 422 with the reason; fixed, 200"

# ---- D: enrollment through the privileged side ------------------------------------------
[ "$(apit -X POST -d '{"mac": "52:54:00:35:00:01", "name": "api-1", "image": "debian12"}' \
	"$URL/api/enroll")" = 200 ] || die "API enroll: $(cat "$TMP/body")"
[ "$(jq -r .node "$TMP/body")" = api-1 ] || die "API enroll answer: $(cat "$TMP/body")"
[ "$(stat -c %U "$TMP/enrolled.yaml")" = root ] || die "enrolled.yaml is not root's"
[ "$(api "$URL/boot/52:54:00:35:00:01.ipxe")" = 200 ] && grep -q "kiln.node=api-1" "$TMP/body" ||
	die "after the API enroll the script is not api-1's: $(cat "$TMP/body")"
[ "$(apit -X POST -d '{"mac": "52:54:00:35:00:01", "name": "api-x"}' "$URL/api/enroll")" = 409 ] ||
	die "enrolling a MAC twice: $(cat "$TMP/body")"
ok "D: POST /api/enroll writes root's enrolled.yaml through the privileged side; next script is the node's; twice is 409"

for i in 1 2 3 4 5; do
	ins "$KILN" boot enroll "52:54:00:35:01:0$i" --name "cli-$i" -f "$TMP/cluster.yaml" \
		>"$TMP/cli-$i.out" 2>&1 &
	c=$!
	code=$(apit -X POST -d "{\"mac\": \"52:54:00:35:02:0$i\", \"name\": \"api-2$i\"}" "$URL/api/enroll")
	wait "$c" || die "kiln boot enroll cli-$i: $(cat "$TMP/cli-$i.out")"
	[ "$code" = 200 ] || die "API enroll api-2$i: $code $(cat "$TMP/body")"
done
for i in 1 2 3 4 5; do
	grep -q "name: cli-$i$" "$TMP/enrolled.yaml" || die "cli-$i lost: $(cat "$TMP/enrolled.yaml")"
	grep -q "name: api-2$i$" "$TMP/enrolled.yaml" || die "api-2$i lost: $(cat "$TMP/enrolled.yaml")"
done
[ "$(apit -X POST "$URL/api/reload")" = 200 ] || die "reload after the enrolls: $(cat "$TMP/body")"
[ "$(api "$URL/api/nodes")" = 200 ] && [ "$(jq length "$TMP/body")" = 11 ] || die "nodes after enrolls: $(cat "$TMP/body")"
ok "D: 5 rounds of kiln boot enroll racing POST /api/enroll: all 10 nodes landed, the spec loads"
serve_stop

# ---- the token is a secret: in no log line and no database -------------------
! grep -qF "$TOKEN" "$TMP/serve.log" || die "the API token is in the daemon's log"
for f in "$TMP"/state/*; do
	! grep -qaF "$TOKEN" "$f" || die "the API token is in $f"
done
ok "the API token appears in no log line and in nothing under state_dir"
echo "PASS"
