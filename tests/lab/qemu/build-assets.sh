#!/bin/bash
# Build the kernel + initramfs that the QEMU PXE end-to-end test boots.
#
#   build-assets.sh KILN_AGENT CACHE_DIR
#
# Prints the directory holding `vmlinuz`, `initrd.img` and `kernel-release`.
# Needs root (mknod for /dev/console), apt (only on a cold cache), depmod
# (kmod) and busybox-static.  Everything is cached under CACHE_DIR:
#   kernel/PKG_VERSION/   vmlinuz, the NIC modules and their load order,
#                         from Debian's linux-image package that
#                         linux-image-amd64 depends on (apt-get download);
#   initrd-KEY.img        KEY = sha256 of the kernel, kiln-agent, busybox,
#                         init scripts and this builder, so any change rebuilds.
# Offline with a warm cache, the newest cached kernel is used when apt cannot
# name one; KILN_QEMU_KERNEL_DEB=FILE.deb uses that package instead of apt.
set -euo pipefail

die() { echo "build-assets: $*" >&2; exit 1; }
[ $# = 2 ] || die "usage: build-assets.sh KILN_AGENT CACHE_DIR"
AGENT=$1
CACHE=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# NIC drivers offered to the guest: virtio-net (the test's default) and e1000.
WANT_MODULES="virtio_pci virtio_net e1000"

[ -x "$AGENT" ] || die "'$AGENT' is not an executable"
readelf -l "$AGENT" 2>/dev/null | grep -q 'INTERP' && die "'$AGENT' is not static"
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox-static is not installed"
readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'INTERP' && die "$BUSYBOX is not static (install busybox-static)"
command -v depmod >/dev/null || die "depmod (kmod) is not installed"
mkdir -p "$CACHE/kernel"
CACHE=$(cd "$CACHE" && pwd)

# ---- kernel ---------------------------------------------------------------
# The package linux-image-amd64 points at, and its version, from apt.
kpkg= kver=
if [ -n "${KILN_QEMU_KERNEL_DEB:-}" ]; then
	kpkg=$(dpkg-deb -f "$KILN_QEMU_KERNEL_DEB" Package)
	kver=$(dpkg-deb -f "$KILN_QEMU_KERNEL_DEB" Version)
else
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }') || true
	[ -n "$kpkg" ] && kver=$(apt-cache show --no-all-versions "$kpkg" 2>/dev/null |
		awk '/^Version:/ { print $2; exit }') || true
fi
if [ -n "$kpkg" ] && [ -n "$kver" ]; then
	KDIR=$CACHE/kernel/${kpkg}_$kver
else
	KDIR=$(ls -d "$CACHE"/kernel/*/ok 2>/dev/null | sort -V | tail -1) || true
	KDIR=${KDIR%/ok}
	[ -n "$KDIR" ] || die "apt names no linux-image package and nothing is cached"
	echo "build-assets: apt names no kernel; using cached ${KDIR##*/}" >&2
fi

# resolve_deps MODDIR NAME: print NAME's module path and its dependencies,
# dependencies first, from modules.dep (each once, via $seen).
resolve_deps() {
	local dep=$1/modules.dep name=$2 path line d
	path=$(awk -F: -v n="$name" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f);
		gsub(/-/, "_", f); if (f == n) { print $1; exit } }' "$dep")
	[ -n "$path" ] || die "module '$name' is not in the kernel package"
	line=$(grep -m1 "^$path:" "$dep" | cut -d: -f2)
	for d in $line; do
		d=${d##*/}
		d=${d%%.ko*}
		resolve_deps "$1" "${d//-/_}"
	done
	case " $seen " in *" $path "*) return ;; esac
	seen="$seen $path"
	echo "$path"
}

if [ ! -f "$KDIR/ok" ]; then
	rm -rf "$KDIR" "$KDIR.tmp"
	mkdir -p "$KDIR.tmp/x"
	if [ -n "${KILN_QEMU_KERNEL_DEB:-}" ]; then
		deb=$KILN_QEMU_KERNEL_DEB
	else
		echo "build-assets: apt-get download $kpkg=$kver" >&2
		# apt's sandbox user cannot write into root-only dirs; fine here.
		(cd "$KDIR.tmp" && apt-get download -q "$kpkg=$kver" >/dev/null 2>"$KDIR.tmp/apt.err") ||
			{ cat "$KDIR.tmp/apt.err" >&2; die "apt-get download $kpkg failed"; }
		deb=$(ls "$KDIR.tmp"/*.deb)
	fi
	dpkg-deb -x "$deb" "$KDIR.tmp/x"
	krel=$(ls "$KDIR.tmp/x/lib/modules" | head -1)
	[ -n "$krel" ] || die "no /lib/modules in $deb"
	depmod -b "$KDIR.tmp/x" "$krel"
	moddir=$KDIR.tmp/x/lib/modules/$krel
	mkdir -p "$KDIR.tmp/modules"
	seen=
	: >"$KDIR.tmp/modules.order"
	for m in $WANT_MODULES; do
		resolve_deps "$moddir" "$m" >>"$KDIR.tmp/paths"
	done
	while read -r p; do
		f=${p##*/}
		case "$f" in
		*.xz) xz -dc "$moddir/$p" >"$KDIR.tmp/modules/${f%.xz}"; f=${f%.xz} ;;
		*.zst) zstd -qdc "$moddir/$p" >"$KDIR.tmp/modules/${f%.zst}"; f=${f%.zst} ;;
		*) cp "$moddir/$p" "$KDIR.tmp/modules/$f" ;;
		esac
		echo "$f" >>"$KDIR.tmp/modules.order"
	done <"$KDIR.tmp/paths"
	cp "$KDIR.tmp/x/boot/vmlinuz-$krel" "$KDIR.tmp/vmlinuz"
	echo "$krel" >"$KDIR.tmp/kernel-release"
	rm -rf "$KDIR.tmp/x" "$KDIR.tmp"/*.deb "$KDIR.tmp/apt.err" "$KDIR.tmp/paths"
	touch "$KDIR.tmp/ok"
	mv "$KDIR.tmp" "$KDIR"
fi

# ---- initramfs ------------------------------------------------------------
key=$( { echo "${KDIR##*/}"; cat "$KDIR/modules.order"; sha256sum "$AGENT" "$BUSYBOX" \
	"$HERE/init.sh" "$HERE/udhcpc.script" "${BASH_SOURCE[0]}" | cut -d' ' -f1; } |
	sha256sum | cut -c1-16)
OUTD=$CACHE/out-$key
if [ ! -f "$OUTD/ok" ]; then
	rm -rf "$OUTD" "$OUTD.tmp"
	st=$OUTD.tmp/root
	mkdir -p "$st"/{bin,dev,etc,proc,sys,tmp,run,lib/modules}
	cp "$BUSYBOX" "$st/bin/busybox"
	for a in $("$BUSYBOX" --list); do
		[ "$a" = busybox ] || ln -s busybox "$st/bin/$a"
	done
	cp "$AGENT" "$st/bin/kiln-agent"
	cp "$HERE/init.sh" "$st/init"
	cp "$HERE/udhcpc.script" "$st/etc/udhcpc.script"
	chmod 755 "$st/init" "$st/etc/udhcpc.script" "$st/bin/kiln-agent"
	cp "$KDIR"/modules/*.ko "$st/lib/modules/"
	cp "$KDIR/modules.order" "$st/etc/kiln-modules"
	# The kernel opens /dev/console before /init runs and mounts devtmpfs.
	mknod -m 600 "$st/dev/console" c 5 1
	mknod -m 666 "$st/dev/null" c 1 3
	(cd "$st" && find . | sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) |
		gzip -9n >"$OUTD.tmp/initrd.img"
	cp "$KDIR/vmlinuz" "$KDIR/kernel-release" "$OUTD.tmp/"
	rm -rf "$st"
	touch "$OUTD.tmp/ok"
	# Older builds are stale by construction (their inputs changed).
	for d in "$CACHE"/out-*; do [ "$d" = "$OUTD.tmp" ] || rm -rf "$d"; done
	mv "$OUTD.tmp" "$OUTD"
fi
echo "$OUTD"
