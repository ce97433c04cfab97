#!/bin/bash
# QEMU end to end (issue 3): a VM with Debian's iPXE ROM (software
# emulation) PXE-boots from `kiln serve`, chainloads its per-host iPXE script
# over HTTP, boots Debian's kernel + an initramfs this test builds
# (tests/lab/qemu/: busybox-static, kiln-agent, NIC modules), whose /init
# prints a marker on the serial console, posts its facts and reports itself
# provisioned.  A second node boots the same way under UEFI (Debian's OVMF,
# no iPXE ROM on the NIC: the firmware's PXE fetches snponly.efi over TFTP).
# Then a VM with an unknown MAC is discovered with its hardware.  Needs root; everything runs in namespaces this test creates
# (prefix kqm-):
#
#   kqm-sN (server)                 kqm-nN (boot network)
#   kiln serve, ra.py  -- veth --   bridge kqm-brN -- tap kqm-tapN -- QEMU
#   10.236.0.1/24
#
# Assets are cached in $KILN_QEMU_ASSETS (default $KILN_SRC/build-test/
# qemu-assets); a cold cache downloads the kernel package with apt-get.
# Each VM run is bounded by $KILN_QEMU_TIMEOUT seconds (default 150).
set -euo pipefail

KILN_SRC=${KILN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HERE=$KILN_SRC/tests/lab/qemu
VM_TIMEOUT=${KILN_QEMU_TIMEOUT:-150}
T0=$(date +%s)

die() {
	echo "FAIL: $*" >&2
	if [ -n "${TMP:-}" ] && [ -f "$TMP/serve.log" ]; then
		echo "--- kiln serve log (tail)" >&2
		tail -25 "$TMP/serve.log" >&2
	fi
	exit 1
}
ok() { printf 'ok   %s\n' "$*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in qemu-system-x86_64 ip curl jq python3 sqlite3 depmod dpkg-deb apt-cache; do
	command -v "$c" >/dev/null || die "missing '$c' (apt-get install qemu-system-x86 ipxe-qemu ipxe ovmf kmod jq curl sqlite3)"
done
[ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || [ -e /usr/lib/ipxe/qemu/pxe-virtio.rom ] ||
	die "no iPXE ROM for virtio-net (apt-get install ipxe-qemu)"
[ -e /dev/net/tun ] || die "no /dev/net/tun"
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -e "$OVMF_CODE" ] && [ -e "$OVMF_VARS" ] || die "no OVMF firmware (apt-get install ovmf)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

if [ -z "${KILN:-}" ]; then
	KILN=$(ls -t "$KILN_SRC"/build*/bin/kiln 2>/dev/null | head -1 || true)
fi
[ -n "$KILN" ] && [ -x "$KILN" ] || die "kiln not found (set KILN)"
AGENT=${KILN_AGENT:-$(dirname "$KILN")/kiln-agent}
[ -x "$AGENT" ] || die "kiln-agent not found next to $KILN (set KILN_AGENT)"
"$KILN" serve --help >/dev/null 2>&1 || die "'$KILN' has no working 'serve' command"

id=$(( $$ % 10000 ))
NS_S=kqm-s$id NS_N=kqm-n$id
BR=kqm-br$id VS=kqm-vs$id VN=kqm-vn$id TAP=kqm-tap$id
SRV=10.236.0.1
NODE=e2e-01
MAC_K=52:54:00:36:00:10 IP_K=10.236.0.10     # the node of the spec
MAC_U=52:54:00:36:00:99                      # a machine nobody enrolled
NODE_E=e2e-efi MAC_E=52:54:00:36:00:20 IP_E=10.236.0.20   # booted with UEFI
TMP=$(mktemp -d /tmp/kqm-pxe.XXXXXX)
chmod 755 "$TMP"
SPID= RAPID= QPID=

cleanup() {
	local rc=$?
	# QPID is timeout(1), which passes SIGTERM on to QEMU; the pidfile
	# names QEMU itself in case it does not go.
	if [ -n "$QPID" ]; then
		kill -TERM "$QPID" 2>/dev/null || true
		sleep 0.5
		[ -s "$TMP/qemu.pid" ] && kill -9 "$(cat "$TMP/qemu.pid")" 2>/dev/null || true
	fi
	[ -n "$RAPID" ] && kill "$RAPID" 2>/dev/null || true
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
	[ -n "$SPID" ] && { sleep 0.3; kill -9 "$SPID" 2>/dev/null || true; }
	ip netns del "$NS_N" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	# KILN_QEMU_KEEP=1 keeps the work dir (logs, consoles, state) on failure, =all always.
	if { [ $rc != 0 ] && [ -n "${KILN_QEMU_KEEP:-}" ]; } || [ "${KILN_QEMU_KEEP:-}" = all ]; then
		echo "kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- assets ----------------------------------------------------------------
t=$(date +%s.%N)
ASSETS=$(bash "$HERE/build-assets.sh" "$AGENT" "${KILN_QEMU_ASSETS:-$KILN_SRC/build-test/qemu-assets}") ||
	die "building the kernel + initramfs failed"
mkdir -p "$TMP/images" "$TMP/state"
cp "$ASSETS/vmlinuz" "$TMP/images/vmlinuz"
cp "$ASSETS/initrd.img" "$TMP/images/initrd.img"
chown nobody "$TMP/state"    # the state directory belongs to boot.user
ok "assets: kernel $(cat "$ASSETS/kernel-release"), initramfs $(du -k "$ASSETS/initrd.img" | cut -f1) KiB ($(since "$t") s)"

# ---- network ---------------------------------------------------------------
ip netns add "$NS_S"
ip netns add "$NS_N"
ip -n "$NS_S" link set lo up
ip -n "$NS_N" link set lo up
ip link add "$VS" netns "$NS_S" type veth peer name "$VN" netns "$NS_N"
# The boot network's own side needs no IPv6: only the server answers
# router solicitations (so iPXE does not wait ~13 s for an advertisement).
ip netns exec "$NS_N" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec "$NS_N" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS_N" link add "$BR" type bridge
ip -n "$NS_N" link set "$VN" master "$BR"
ip -n "$NS_N" tuntap add dev "$TAP" mode tap
ip -n "$NS_N" link set "$TAP" master "$BR"
for l in "$VN" "$TAP" "$BR"; do ip -n "$NS_N" link set "$l" up; done
ip netns exec "$NS_S" sysctl -qw "net.ipv6.conf.$VS.accept_dad=0"
ip -n "$NS_S" addr add "$SRV/24" dev "$VS"
ip -n "$NS_S" link set "$VS" up

# ---- kiln serve --------------------------------------------------------------
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/api-token"
chmod 600 "$TMP/api-token"   # root's: only the privileged process reads it
SPEC=$TMP/cluster.yaml
cat >"$SPEC" <<EOF
cluster: pxe-e2e
ssh: {known_hosts: $TMP/known_hosts}
stacks:
  base:
boot:
  server: $SRV
  http_port: 80
  state_dir: state
  user: nobody
  api_token_file: api-token
  networks:
    - name: rack1
      interface: $VS
      subnet: 10.236.0.0/24
      router: $SRV
      dns: [$SRV]
      pool: 10.236.0.100-10.236.0.199
      lease_time: 600
      allow_unknown: true
  images:
    e2e:
      kernel: images/vmlinuz
      initrd: images/initrd.img
      cmdline: "console=ttyS0 quiet panic=-1"
  discovery_image: e2e
nodes:
  - name: $NODE
    address: $IP_K
    mac: $MAC_K
    boot_image: e2e
  - name: $NODE_E
    address: $IP_E
    mac: $MAC_E
    boot_image: e2e
EOF
ip netns exec "$NS_S" "$KILN" serve -f "$SPEC" -n >"$TMP/check.out" 2>&1 ||
	{ cat "$TMP/check.out" >&2; die "kiln serve -n refused the spec"; }
grep -q 'configuration OK' "$TMP/check.out" || die "kiln serve -n did not say 'configuration OK'"
ip netns exec "$NS_S" "$KILN" serve -f "$SPEC" >"$TMP/serve.out" 2>"$TMP/serve.log" &
SPID=$!
for _ in $(seq 100); do
	ip netns exec "$NS_S" curl -s -o /dev/null --max-time 1 "http://$SRV/api/status" && break
	kill -0 "$SPID" 2>/dev/null || die "kiln serve exited at startup"
	sleep 0.1
done
ip netns exec "$NS_S" curl -sf -o /dev/null --max-time 2 "http://$SRV/api/status" || die "kiln serve: no HTTP on $SRV:80"
NPID=$(pgrep -P "$SPID" | head -1)   # the network process; $SPID keeps root
[ "$(awk '/^Uid:/ { print $2 }' "/proc/${NPID:-0}/status" 2>/dev/null || echo 0)" != 0 ] || die "kiln serve still runs as root"
ip netns exec "$NS_S" "$PY" "$HERE/ra.py" "$VS" 1 &
RAPID=$!
ok "kiln serve up in $NS_S (network process uid $(awk '/^Uid:/ { print $2 }' "/proc/$NPID/status"))"

status() { "$KILN" boot status -f "$SPEC" -o json >"$TMP/status.json" 2>"$TMP/status.err" || { cat "$TMP/status.err" >&2; die "kiln boot status failed"; }; }
jnode() { jq -r --arg n "$NODE" ".nodes[] | select(.name == \$n) | $1" "$TMP/status.json"; }
jdisc() { jq -r --arg m "$MAC_U" ".discovered[] | select(.mac == \$m) | $1" "$TMP/status.json"; }

status
[ "$(jnode .state)" = new ] || die "node state before boot: '$(jnode .state)', expected new"
# Only the node's own address may say it is provisioned.
code=$(ip netns exec "$NS_S" curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' \
	"http://$SRV/api/nodes/$NODE/provisioned")
case "$code" in 2??) die "provisioned accepted from $SRV (HTTP $code)" ;; esac
status
[ "$(jnode .state)" = new ] || die "a foreign POST changed the node to '$(jnode .state)'"
ok "node $NODE is new; a provisioned report from another address is refused ($code)"

# check_facts MAC: the facts stored for MAC (serve.db, written by POST
# /api/discover) describe this VM: 512 MiB less the kernel's share, one CPU
# thread, a virtio_net NIC with that MAC.  Sets FACT_MEM.
check_facts() {
	local mac=$1 f=$TMP/facts-$1.json
	sqlite3 -cmd ".timeout 5000" "$TMP/state/serve.db" \
		"SELECT facts FROM machines WHERE mac = '$mac'" >"$f"
	jq -e . "$f" >/dev/null 2>&1 || die "no facts stored for $mac"
	FACT_MEM=$(jq -r '.memory.total_bytes' "$f")
	[ "$FACT_MEM" -gt $(( 400 << 20 )) ] && [ "$FACT_MEM" -le $(( 512 << 20 )) ] ||
		die "facts of $mac: memory $FACT_MEM bytes, expected the VM's 512 MiB less the kernel's"
	[ "$(jq -r '.cpu.threads' "$f")" = 1 ] || die "facts of $mac: $(jq -r '.cpu.threads' "$f") CPU threads, expected 1"
	[ "$(jq -r --arg m "$mac" '.nics[] | select(.mac == $m) | .driver' "$f")" = virtio_net ] ||
		die "facts of $mac: no virtio_net NIC with that MAC"
}

# boot_vm MAC NAME [uefi]: PXE-boot the VM with MAC, console in
# $TMP/NAME.console; SeaBIOS, or with uefi Debian's OVMF (x86-64 UEFI: its
# own PXE client asks for the EFI loader).  Sets MARK_S (seconds to the
# BOOTED marker) and DONE_S (to power-off).
boot_vm() {
	local mac=$1 name=$2 con=$TMP/$2.console t0 fw=(-machine pc,accel=tcg) rom=
	if [ "${3:-}" = uefi ]; then
		cp "$OVMF_VARS" "$TMP/$name.vars"
		fw=(-machine q35,accel=tcg
		    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
		    -drive "if=pflash,format=raw,unit=1,file=$TMP/$name.vars")
		# no iPXE option ROM on the NIC: OVMF's own driver and PXE client
		# start, as on a server's onboard NIC
		rom=,romfile=
	fi
	: >"$con"
	t0=$(date +%s.%N)
	ip netns exec "$NS_N" timeout -k 5 "$VM_TIMEOUT" qemu-system-x86_64 \
		"${fw[@]}" -m 512 -smp 1 -nographic -no-reboot -boot order=n,reboot-timeout=1000 \
		-monitor none -serial "file:$con" -pidfile "$TMP/qemu.pid" \
		-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no" \
		-device "virtio-net-pci,netdev=n0,mac=$mac$rom" </dev/null >"$TMP/$name.qemu" 2>&1 &
	QPID=$!
	MARK_S=
	while kill -0 "$QPID" 2>/dev/null; do
		if [ -z "$MARK_S" ] && grep -q 'KILN-E2E-BOOTED' "$con"; then
			MARK_S=$(since "$t0")
		fi
		sleep 0.2
	done
	local rc=0
	wait "$QPID" || rc=$?
	QPID=
	DONE_S=$(since "$t0")
	tr -d '\033\r' <"$con" >"$con.txt"
	if [ $rc != 0 ] || grep -q 'KILN-E2E-FAIL' "$con.txt"; then
		echo "--- $name console (tail)" >&2
		tail -30 "$con.txt" >&2
		cat "$TMP/$name.qemu" >&2
		[ $rc = 124 ] && die "$name: VM still running after ${VM_TIMEOUT}s"
		die "$name: VM failed (qemu exit $rc)"
	fi
	[ -n "$MARK_S" ] || MARK_S=$DONE_S
}
console_has() {   # NAME TEXT WHAT
	grep -qF -- "$2" "$TMP/$1.console.txt" || {
		echo "--- $1 console (tail)" >&2; tail -30 "$TMP/$1.console.txt" >&2
		die "$3: console lacks '$2'"
	}
}

# ---- 1: the node of the spec installs -------------------------------------------
boot_vm "$MAC_K" known
grep -qE "Filename: http://$SRV(:80)?/boot/$MAC_K\.ipxe" "$TMP/known.console.txt" ||
	{ tail -30 "$TMP/known.console.txt" >&2; die "DHCP did not give iPXE the per-host script URL"; }
console_has known "kiln: booting e2e for $NODE" "iPXE ran the node's script"
console_has known "KILN-E2E-BOOTED node=$NODE mac=$MAC_K ip=$IP_K" "the kernel booted as $NODE on its reserved address"
console_has known "KILN-E2E-DONE node=$NODE discover=ok provisioned=ok" "the node reported facts and provisioned"
ok "VM $MAC_K: PXE -> iPXE -> per-host script -> kernel; marker after ${MARK_S}s, powered off after ${DONE_S}s"

status
[ "$(jnode .state)" = provisioned ] || die "node state '$(jnode .state)', expected provisioned"
[ "$(jnode .lease.ip)" = "$IP_K" ] || die "node lease '$(jnode .lease.ip)', expected $IP_K"
[ "$(jnode .last_fetch)" != null ] && [ -n "$(jnode .last_fetch)" ] || die "no fetch recorded for $NODE"
q() { sqlite3 -cmd ".timeout 5000" "$TMP/state/leases.db" "$@"; }
[ "$(q "SELECT lower(hex(mac)) FROM leases WHERE ip = $(( (10 << 24) | (236 << 16) | 10 ))")" = 525400360010 ] ||
	die "leases.db has no row binding $IP_K to $MAC_K"
log_has() {   # REGEX WHAT: a line of the server's structured log matches
	grep -qE -- "$1" "$TMP/serve.log" || die "$2: no log line matching '$1'"
}
log_has "event=script mac=$MAC_K node=$NODE kind=install client=$IP_K( |\$)" "the VM's script fetch"
log_has "method=GET path=/images/e2e/kernel status=200 client=$IP_K " "the VM's kernel fetch"
log_has "method=GET path=/images/e2e/initrd status=200 client=$IP_K " "the VM's initrd fetch"
log_has "event=provisioned node=$NODE mac=$MAC_K client=$IP_K" "the VM's provisioned report"
check_facts "$MAC_K"
ok "status: $NODE provisioned, lease $IP_K (also in leases.db), last fetch $(jnode .last_fetch_what) at $(jnode .last_fetch); facts: $((FACT_MEM >> 20)) MiB, virtio_net $MAC_K"

# The next boot gets the local-disk script: no reinstall loop.
ip netns exec "$NS_S" curl -sf "http://$SRV/boot/$MAC_K.ipxe" >"$TMP/next.ipxe" || die "script fetch failed"
head -1 "$TMP/next.ipxe" | grep -qx '#!ipxe' || die "next script is not an iPXE script"
grep -q 'sanboot' "$TMP/next.ipxe" || { cat "$TMP/next.ipxe" >&2; die "next script does not boot the local disk"; }
grep -q '^kernel ' "$TMP/next.ipxe" && { cat "$TMP/next.ipxe" >&2; die "a provisioned node would reinstall"; }
# iPXE asks for the URL with its colons percent-encoded: same answer.
ip netns exec "$NS_S" curl -sf "http://$SRV/boot/${MAC_K//:/%3A}.ipxe" | cmp -s - "$TMP/next.ipxe" ||
	die "percent-encoded script URL gives another script"
kernels=$(grep -c "path=/images/e2e/kernel status=200 client=$IP_K " "$TMP/serve.log")
# And the VM really boots again: iPXE runs the local-disk script, which finds
# no disk here and exits; SeaBIOS then finds nothing to boot and reboots,
# which ends QEMU (-no-reboot, reboot-timeout).
boot_vm "$MAC_K" again
console_has again "kiln: $NODE is provisioned, booting from the local disk" "the second boot ran the local-disk script"
grep -q 'KILN-E2E-BOOTED' "$TMP/again.console.txt" && die "the second boot installed again"
[ "$(grep -c "path=/images/e2e/kernel status=200 client=$IP_K " "$TMP/serve.log")" = "$kernels" ] ||
	die "the second boot fetched the kernel again"
status
[ "$(jnode .state)" = provisioned ] || die "after the second boot: '$(jnode .state)', expected provisioned"
ok "the next boot of $NODE gets the local-disk script (curl and a real boot, ${DONE_S}s): no reinstall loop"

# ---- 2: UEFI: the same path with Debian's OVMF ---------------------------------
# OVMF's PXE client says arch 7 (x86-64 UEFI): kiln hands it snponly.efi
# over TFTP, which asks again as iPXE and gets the per-host script; the
# kernel boots through its EFI stub and loads the initrd iPXE names.
boot_vm "$MAC_E" efi uefi
grep -qE "level=info event=tftp msg=\"10\.236\.0\.[0-9]+:[0-9]+ 'snponly\.efi' .* MB in " "$TMP/serve.log" ||
	die "UEFI: the firmware never fetched the EFI loader (snponly.efi) over TFTP"
grep -qE "Filename: http://$SRV(:80)?/boot/$MAC_E\.ipxe" "$TMP/efi.console.txt" ||
	{ tail -30 "$TMP/efi.console.txt" >&2; die "UEFI: iPXE did not get the per-host script URL"; }
console_has efi "KILN-E2E-BOOTED node=$NODE_E mac=$MAC_E ip=$IP_E" "UEFI: the kernel booted as $NODE_E"
console_has efi "KILN-E2E-DONE node=$NODE_E discover=ok provisioned=ok" "UEFI: the node reported provisioned"
status
st=$(jq -r --arg n "$NODE_E" '.nodes[] | select(.name == $n) | .state' "$TMP/status.json")
[ "$st" = provisioned ] || die "UEFI node state '$st', expected provisioned"
ok "UEFI VM $MAC_E (OVMF): PXE -> snponly.efi over TFTP -> per-host script -> kernel; marker after ${MARK_S}s, powered off after ${DONE_S}s"

# ---- 3: an unknown machine is discovered -------------------------------------
boot_vm "$MAC_U" unknown
console_has unknown "kiln: discovering $MAC_U" "iPXE ran the discovery script"
console_has unknown "KILN-E2E-BOOTED node=- mac=$MAC_U ip=10.236.0.1" "the discovery image booted with a pool address"
console_has unknown "KILN-E2E-DONE node=- discover=ok provisioned=skip" "the discovery image posted its facts"
UIP=$(sed -n "s/.*KILN-E2E-BOOTED node=- mac=$MAC_U ip=\([0-9.]*\).*/\1/p" "$TMP/unknown.console.txt" | head -1)
case "$UIP" in 10.236.0.1[0-9][0-9]) ;; *) die "unknown MAC got '$UIP', not a pool address" ;; esac
ok "VM $MAC_U: discovery image, pool address $UIP; marker after ${MARK_S}s, powered off after ${DONE_S}s"

log_has "event=script mac=$MAC_U node=- kind=discovery client=$UIP( |\$)" "the unknown VM's script fetch"
status
[ -n "$(jdisc .mac)" ] || { cat "$TMP/status.json" >&2; die "kiln boot status does not list $MAC_U as discovered"; }
[ "$(jdisc .ip)" = "$UIP" ] || die "discovered $MAC_U at '$(jdisc .ip)', expected $UIP"
hw=$(jdisc .hardware)
case "$hw" in *"1 threads"*GiB*) ;; *) die "discovered hardware summary '$hw' lacks the VM's CPU/memory" ;; esac
check_facts "$MAC_U"
[ "$(jnode .state)" = provisioned ] || die "discovery changed $NODE to '$(jnode .state)'"
ok "status: $MAC_U discovered with its hardware ($hw; facts: memory $((FACT_MEM >> 20)) MiB, virtio_net NIC $MAC_U)"

# The daemon stops cleanly on SIGTERM, with no sanitizer report on the way.
kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
SPID=
[ $rc = 0 ] || die "kiln serve exited $rc on SIGTERM"
grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$TMP/serve.log" "$TMP/status.err" &&
	die "sanitizer report from kiln serve or kiln boot status"
ok "kiln serve stopped cleanly"

echo "PASS 0110-pxe-qemu ($(( $(date +%s) - T0 )) s)"
