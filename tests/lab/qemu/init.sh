#!/bin/sh
# /init of the kiln end-to-end initramfs (busybox-static + kiln-agent).
# Brings up the NIC the machine booted from, reports its facts to the kiln
# server named on the kernel command line, says it is provisioned when it
# booted as a known node, and powers off.  Markers on the console (ttyS0):
#   KILN-E2E-BOOTED node=NAME mac=MAC ip=ADDR
#   KILN-E2E-DONE node=NAME discover=ok|fail provisioned=ok|fail|skip
#   KILN-E2E-FAIL reason   (then power off)
# Command line: kiln.server=http://HOST[:PORT] [kiln.node=NAME] [kiln.mac=MAC]
export PATH=/bin
umask 022

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /tmp /run

fail() {
	echo "KILN-E2E-FAIL $*"
	sync
	poweroff -f
	sleep 5
	exit 1
}

NODE= SERVER= MAC=
for w in $(cat /proc/cmdline); do
	case "$w" in
	kiln.node=*) NODE=${w#kiln.node=} ;;
	kiln.server=*) SERVER=${w#kiln.server=} ;;
	kiln.mac=*) MAC=${w#kiln.mac=} ;;
	esac
done
[ -n "$SERVER" ] || fail "no kiln.server= on the command line"
SERVER=${SERVER%/}

# NIC drivers, dependencies first (the asset builder wrote the order).
while read -r m; do
	[ -n "$m" ] && insmod "/lib/modules/$m" 2>/dev/null
done </etc/kiln-modules

# The interface to use: the one with kiln.mac, else the first Ethernet one.
# Devices appear asynchronously after the driver loads: wait up to ~10 s.
IF=
i=0
while [ $i -lt 100 ] && [ -z "$IF" ]; do
	for d in /sys/class/net/*; do
		n=${d##*/}
		[ "$n" = lo ] && continue
		a=$(cat "$d/address" 2>/dev/null)
		if [ -z "$MAC" ] || [ "$a" = "$MAC" ]; then IF=$n; break; fi
	done
	[ -n "$IF" ] || { usleep 100000; i=$((i + 1)); }
done
[ -n "$IF" ] || fail "no network interface (mac ${MAC:-any})"
[ -n "$MAC" ] || MAC=$(cat "/sys/class/net/$IF/address")

ip link set lo up
ip link set "$IF" up
udhcpc -i "$IF" -s /etc/udhcpc.script -f -q -n -t 10 -T 1 >/tmp/udhcpc.log 2>&1 ||
	fail "udhcpc on $IF got no lease"
IP=$(cat /tmp/ip 2>/dev/null)
echo "KILN-E2E-BOOTED node=${NODE:--} mac=$MAC ip=$IP"

# Facts, as the discovery environment of a real machine would report them.
kiln-agent facts >/tmp/facts.json 2>/tmp/facts.err || fail "kiln-agent facts: $(cat /tmp/facts.err)"
{ printf '{"mac":"%s","facts":' "$MAC"; cat /tmp/facts.json; printf '}\n'; } >/tmp/discover.json
# (busybox 1.35 wget -T crashes; bound it with timeout instead.)
D=fail
timeout 15 wget -q -O /tmp/discover.out --header 'Content-Type: application/json' \
	--post-file /tmp/discover.json "$SERVER/api/discover" && D=ok

P=skip
if [ -n "$NODE" ]; then
	P=fail
	timeout 15 wget -q -O /tmp/provisioned.out --header 'Content-Type: application/json' \
		--post-data '{}' "$SERVER/api/nodes/$NODE/provisioned" && P=ok
fi
echo "KILN-E2E-DONE node=${NODE:--} discover=$D provisioned=$P"
sync
poweroff -f
