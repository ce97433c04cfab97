#!/bin/sh
# Install everything kiln needs to build, test and benchmark on Debian 12.
# Usage: scripts/deps.sh [--bench]   (as root)
set -eu
build="build-essential cmake pkg-config clang libclang-rt-14-dev
 libyaml-dev libjansson-dev libssh-dev libsodium-dev libsqlite3-dev
 libevent-dev libpci-dev pciutils libcmocka-dev libfreeipmi-dev libgcrypt20-dev
 libcurl4-openssl-dev libjemalloc-dev"
test="openssh-server openssh-client iproute2 util-linux procps psmisc
 kmod python3 sqlite3 dpkg-dev curl nftables
 isc-dhcp-client udhcpc kea-admin tftp-hpa atftp openipmi ipmitool freeipmi-tools
 qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static jq binutils
 systemd dbus e2fsprogs wireguard-tools wireguard-go iputils-ping graphviz"
bench="ansible hyperfine"
pkgs="$build $test"
[ "${1:-}" = "--bench" ] && pkgs="$pkgs $bench"
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: run as root (it uses apt-get)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
