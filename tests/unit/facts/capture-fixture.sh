#!/bin/sh
# Capture the files facts_collect() reads from this machine into a fixture
# tree: contents become plain files, sysfs "driver"/"device" links keep their
# relative targets (dangling in the copy, which is all the collector needs);
# a NIC's "device" link becomes a directory holding its "driver" link.
# Mount tables keep only /, /proc, /sys and /dev lines.
#
# usage: capture-fixture.sh DIR   (tests/unit/facts/fixtures/NAME)
set -eu
R=$1
mkdir -p "$R"

cp_file() { # copy a readable file's content, if any
	[ -r "$1" ] || return 0
	mkdir -p "$R$(dirname "$1")"
	cat "$1" >"$R$1" 2>/dev/null || rm -f "$R$1"
}
cp_link() {
	[ -L "$1" ] || return 0
	mkdir -p "$R$(dirname "$1")"
	ln -sfn "$(readlink "$1")" "$R$1"
}

for f in /etc/os-release /proc/cpuinfo /proc/meminfo /proc/swaps \
	/proc/sys/kernel/osrelease /proc/sys/kernel/version \
	/proc/sys/kernel/arch /proc/sys/kernel/hostname \
	/proc/driver/nvidia/version; do
	cp_file $f
done
mkdir -p "$R/proc/self"
awk '$5 == "/" || $5 == "/proc" || $5 == "/sys" || $5 == "/dev"' \
	/proc/self/mountinfo >"$R/proc/self/mountinfo"
[ -d /run/systemd/system ] && mkdir -p "$R/run/systemd/system" &&
	: >"$R/run/systemd/system/.keep"
for n in /sys/devices/system/node/node[0-9]*; do
	[ -d "$n" ] || continue
	cp_file $n/cpulist
	cp_file $n/meminfo
done
for d in /sys/bus/pci/devices/*; do
	[ -e "$d" ] || continue
	for a in class vendor device subsystem_vendor subsystem_device numa_node \
		mem_info_vram_total; do
		cp_file $d/$a
	done
	cp_link $d/driver
done
for b in /sys/block/*; do
	cp_file $b/size
	cp_file $b/removable
	cp_file $b/dev
	cp_file $b/serial
	cp_file $b/queue/rotational
	cp_file $b/device/model
	cp_file $b/device/serial
	cp_file $b/device/vpd_pg80
	for h in $b/holders/*; do cp_link "$h"; done
	for p in $b/*/partition; do
		[ -e "$p" ] || continue
		p=$(dirname "$p")
		cp_file $p/partition
		cp_file $p/size
		cp_file $p/dev
		for h in $p/holders/*; do cp_link "$h"; done
	done
done
for n in /sys/class/net/*; do
	[ -d "$n" ] || continue
	for a in address mtu speed operstate carrier; do
		cp_file $n/$a
	done
	# device becomes a plain directory holding only the driver link
	[ -e $n/device ] && mkdir -p "$R$n/device"
	cp_link $n/device/driver
done
for a in sys_vendor product_name product_serial board_vendor board_name bios_version; do
	cp_file /sys/class/dmi/id/$a
done
