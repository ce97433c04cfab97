#!/bin/bash
# TFTP of `kiln serve` against real clients: curl, tftp-hpa and atftp
# fetch a 50 MB file over a veth between two namespaces this test creates
# (prefix kbt-); path escapes get a TFTP error and no data.  Needs root.
set -euo pipefail

die() { echo "FAIL: $*" >&2; [ -f "${TMP:-/nonexistent}/serve.log" ] && tail -20 "$TMP/serve.log" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in curl tftp atftp ip sha256sum; do
	command -v "$c" >/dev/null || die "missing client '$c'"
done

KILN=${KILN:-}
if [ -z "$KILN" ]; then
	for d in "${KILN_SRC:-.}"/build*/bin; do [ -x "$d/kiln" ] && KILN=$d/kiln && break; done
fi
[ -x "$KILN" ] || die "kiln not found (set KILN)"

id=$(( $$ % 10000 ))
NS_S=kbt-tftp-s$id
NS_C=kbt-tftp-c$id
V_S=kbt-ts$id
V_C=kbt-tc$id
SRV=10.231.$(( id % 200 )).1
CLI=10.231.$(( id % 200 )).2
TMP=$(mktemp -d /tmp/kbt-tftp.XXXXXX)
PID=

cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	ip netns del "$NS_C" 2>/dev/null || true
	ip link del "$V_S" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_S"
ip netns add "$NS_C"
ip link add "$V_S" type veth peer name "$V_C"
ip link set "$V_S" netns "$NS_S"
ip link set "$V_C" netns "$NS_C"
ip -n "$NS_S" addr add "$SRV/24" dev "$V_S"
ip -n "$NS_C" addr add "$CLI/24" dev "$V_C"
for n in "$NS_S" "$NS_C"; do ip -n "$n" link set lo up; done
ip -n "$NS_S" link set "$V_S" up
ip -n "$NS_C" link set "$V_C" up

chmod 755 "$TMP"
mkdir -p "$TMP/root/sub" "$TMP/out"
head -c 50M /dev/urandom >"$TMP/root/big.bin"
echo "secret outside the root" >"$TMP/secret"
ln -s ../secret "$TMP/root/escape"
ln -s big.bin "$TMP/root/inside"
chmod -R a+rX "$TMP/root" "$TMP/secret"
want=$(sha256sum <"$TMP/root/big.bin" | cut -d' ' -f1)

# kiln serve with the TFTP root above; one boot network on the server's
# veth (no pool: this test is about TFTP).
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/api-token"
chmod 600 "$TMP/api-token"
cat >"$TMP/cluster.yaml" <<EOF
cluster: kbt-tftp
ssh:
  known_hosts: kh
boot:
  server: $SRV
  http_port: 8080
  tftp_root: root
  state_dir: state
  user: nobody
  api_token_file: api-token
  networks:
    - name: lan
      interface: $V_S
      subnet: ${SRV%.1}.0/24
      router: $SRV
EOF
ip netns exec "$NS_S" "$KILN" serve -f "$TMP/cluster.yaml" 2>"$TMP/serve.log" &
PID=$!
for _ in $(seq 100); do
	grep -q "event=ready" "$TMP/serve.log" 2>/dev/null && break
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
grep -q "event=ready" "$TMP/serve.log" || die "kiln serve did not start"
NPID=$(pgrep -P "$PID" | head -1)   # the network process; $PID keeps root
srvuid=$(awk '/^Uid:/ {print $2}' "/proc/${NPID:-0}/status" 2>/dev/null || echo 0)
[ "$srvuid" != 0 ] || die "server still runs as root"

inc() { ip netns exec "$NS_C" "$@"; }
fetch_ok() {   # label, output file, command...
	local label=$1 out=$2; shift 2
	rm -f "$out"
	local t0 t1
	t0=$(date +%s.%N)
	inc "$@" >"$TMP/client.log" 2>&1 || { cat "$TMP/client.log"; die "$label: client failed"; }
	t1=$(date +%s.%N)
	local got
	got=$(sha256sum <"$out" | cut -d' ' -f1)
	[ "$got" = "$want" ] || die "$label: checksum mismatch"
	awk -v l="$label" -v a="$t0" -v b="$t1" 'BEGIN { printf "ok   %-32s %6.1f MB/s\n", l, 52.4288 / (b - a) }'
}

O=$TMP/out/f
fetch_ok "curl blksize 512"      "$O" curl -sS -o "$O" "tftp://$SRV/big.bin"
fetch_ok "curl blksize 1468"     "$O" curl -sS --tftp-blksize 1468 -o "$O" "tftp://$SRV/big.bin"
fetch_ok "curl blksize 65464"    "$O" curl -sS --tftp-blksize 65464 -o "$O" "tftp://$SRV/big.bin"
fetch_ok "tftp-hpa blksize 512"  "$O" tftp -m binary "$SRV" -c get big.bin "$O"
fetch_ok "atftp blksize 1468"    "$O" atftp --option "blksize 1468" -g -r big.bin -l "$O" "$SRV"
fetch_ok "atftp blksize 65464"   "$O" atftp --option "blksize 65464" -g -r big.bin -l "$O" "$SRV"
fetch_ok "atftp 1468 window 16"  "$O" atftp --option "blksize 1468" --option "windowsize 16" \
	-g -r big.bin -l "$O" "$SRV"
fetch_ok "curl via inside symlink" "$O" curl -sS -o "$O" "tftp://$SRV/inside"

# Many transfers at once: 24 clients (curl and atftp, mixed options).
head -c 3M /dev/urandom >"$TMP/root/mid.bin"
chmod a+r "$TMP/root/mid.bin"
midsum=$(sha256sum <"$TMP/root/mid.bin" | cut -d' ' -f1)
pids=()
for i in $(seq 24); do
	case $((i % 3)) in
	0) inc curl -sS -o "$TMP/out/m$i" "tftp://$SRV/mid.bin" & ;;
	1) inc curl -sS --tftp-blksize 1468 -o "$TMP/out/m$i" "tftp://$SRV/mid.bin" & ;;
	2) inc atftp --option "blksize 1468" --option "windowsize 8" -g -r mid.bin \
		-l "$TMP/out/m$i" "$SRV" >/dev/null 2>&1 & ;;
	esac
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "a concurrent client failed"; done
for i in $(seq 24); do
	[ "$(sha256sum <"$TMP/out/m$i" | cut -d' ' -f1)" = "$midsum" ] || die "concurrent fetch $i: checksum"
done
printf 'ok   %-32s all checksums match\n' "24 concurrent transfers"

# Escapes: an error from the server, and none of the secret on our side.
refused() {   # label, output file, expected pattern in client output, command...
	local label=$1 out=$2 pat=$3; shift 3
	rm -f "$out"
	if inc "$@" >"$TMP/client.log" 2>&1 && [ -s "$out" ]; then
		die "$label: fetch succeeded"
	fi
	grep -qiE "$pat" "$TMP/client.log" || { cat "$TMP/client.log"; die "$label: no TFTP error seen"; }
	if [ -e "$out" ] && grep -q secret "$out"; then die "$label: secret leaked"; fi
	printf 'ok   %-32s refused\n' "$label"
}
refused "curl .."            "$O" "permission|access|\\(69\\)" curl -sS --path-as-is -o "$O" "tftp://$SRV/../secret"
refused "tftp-hpa .."        "$O" "access violation" tftp -m binary "$SRV" -c get ../secret "$O"
refused "tftp-hpa sub/../.." "$O" "access violation" tftp -m binary "$SRV" -c get sub/../../secret "$O"
refused "tftp-hpa absolute"  "$O" "access violation" tftp -m binary "$SRV" -c get "$TMP/secret" "$O"
refused "atftp absolute"     "$O" "access violation" atftp -g -r /etc/passwd -l "$O" "$SRV"
refused "curl symlink out"   "$O" "permission|access|\\(69\\)" curl -sS -o "$O" "tftp://$SRV/escape"
refused "tftp-hpa missing"   "$O" "not found" tftp -m binary "$SRV" -c get nope "$O"
refused "tftp-hpa put"       "$O" "access violation|read-only" tftp -m binary "$SRV" -c put "$TMP/secret" x
refused "tftp-hpa netascii"  "$O" "octet" tftp -m netascii "$SRV" -c get big.bin "$O"

# The daemon is still alive and has no transfer left behind.
kill -0 "$PID" || die "kiln serve died"
n_done=$(grep -c "level=info event=tftp msg=\".*' done:" "$TMP/serve.log" || true)
[ "$n_done" -ge 32 ] || { cat "$TMP/serve.log"; die "expected 32 completed transfers in the log, saw $n_done"; }
kill "$PID"
wait "$PID" || die "kiln serve did not exit cleanly on SIGTERM"
PID=
echo "PASS 0101-tftp"
