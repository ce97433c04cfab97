#!/bin/sh
# Build a fixture root of a multi-GPU server, as facts_collect() would see it:
# a Supermicro SYS-420GP-TNAR with 2 Xeon sockets (2 NUMA nodes, 128
# threads), 4 NVIDIA A100 SXM4 40GB (10de:20b0) + 1 AMD Instinct MI210
# (1002:740f) + an ASPEED BMC VGA (not a GPU) + an NVSwitch (not a GPU),
# NVMe disks (one partitioned and mounted, one free), an HDD under LVM, an
# HDD whose partition is swap, a free HDD, loop/dm/md devices to skip, and
# Intel/Mellanox NICs plus a bridge.  Layouts follow the kernel's sysfs ABI
# (Documentation/ABI/testing/sysfs-bus-pci, sysfs-block, sysfs-class-net).
#
# usage: make-gpu-fixture.sh DIR   (DIR must not exist yet)
set -eu
R=$1
[ ! -e "$R" ] || { echo "make-gpu-fixture: $R exists" >&2; exit 1; }
mkdir -p "$R"

w() { # w PATH CONTENT: write CONTENT plus a newline to R/PATH
	[ -d "$R/${1%/*}" ] || mkdir -p "$R/${1%/*}"
	printf '%s\n' "$2" >"$R/$1"
}

# ---- OS and kernel -------------------------------------------------------
w etc/os-release 'PRETTY_NAME="Ubuntu 22.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.3 LTS (Jammy Jellyfish)"
ID=ubuntu
ID_LIKE=debian'
w proc/sys/kernel/osrelease 5.15.0-91-generic
w proc/sys/kernel/version '#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023'
w proc/sys/kernel/arch x86_64
w proc/sys/kernel/hostname gpu-07
# what the kernel can mount: built in or loaded, then modules (nls is not a
# filesystem: no nls.ko; xfs both loaded and a module: listed once)
printf 'nodev\tsysfs\nnodev\tproc\n\text4\nnodev\ttmpfs\n\txfs\nnodev\tno such\n' \
	>"$R/proc/filesystems"
w lib/modules/5.15.0-91-generic/kernel/fs/ceph/ceph.ko ''
w lib/modules/5.15.0-91-generic/kernel/fs/nfs/nfs.ko.zst ''
w lib/modules/5.15.0-91-generic/kernel/fs/nls/nls_utf8.ko ''
w lib/modules/5.15.0-91-generic/kernel/fs/xfs/xfs.ko ''
mkdir -p "$R/run/systemd/system"
: >"$R/run/systemd/system/.keep"

# ---- CPU: 2 sockets x 32 cores x 2 threads; Linux numbers the first thread
# of every core first (cpu 0-63), then the siblings (64-127). ---------------
cpu=0
while [ $cpu -lt 128 ]; do
	core=$((cpu % 64))
	sock=$((core / 32))
	cat <<EOF
processor	: $cpu
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: $sock
siblings	: 64
core id		: $((core % 32))
cpu cores	: 32
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep ht avx512f

EOF
	cpu=$((cpu + 1))
done >"$R/proc/cpuinfo"
w proc/meminfo 'MemTotal:       1056127760 kB
MemFree:        1000000000 kB
MemAvailable:   1010000000 kB'
w sys/devices/system/node/node0/cpulist 0-31,64-95
w sys/devices/system/node/node0/meminfo 'Node 0 MemTotal:       528063880 kB
Node 0 MemFree:        500000000 kB'
w sys/devices/system/node/node1/cpulist 32-63,96-127
w sys/devices/system/node/node1/meminfo 'Node 1 MemTotal:       528063880 kB
Node 1 MemFree:        500000000 kB'
w sys/devices/system/node/online 0-1

# ---- PCI -----------------------------------------------------------------
pci() { # pci SLOT CLASS VENDOR DEVICE SUBVENDOR SUBDEVICE NUMA DRIVER
	d=sys/bus/pci/devices/$1
	w $d/class "$2"
	w $d/vendor "$3"
	w $d/device "$4"
	w $d/subsystem_vendor "$5"
	w $d/subsystem_device "$6"
	w $d/numa_node "$7"
	[ -z "$8" ] || ln -s "../../../../bus/pci/drivers/$8" "$R/$d/driver"
}
pci 0000:00:00.0 0x060000 0x8086 0x09a2 0x15d9 0x1c5e -1 ''
pci 0000:03:00.0 0x030000 0x1a03 0x2000 0x15d9 0x1c5e 0 ast
pci 0000:16:00.0 0x020000 0x8086 0x1572 0x15d9 0x0000 0 i40e
pci 0000:16:00.1 0x020000 0x8086 0x1572 0x15d9 0x0000 0 i40e
pci 0000:17:00.0 0x030200 0x10de 0x20b0 0x10de 0x134f 0 nvidia
pci 0000:31:00.0 0x030200 0x10de 0x20b0 0x10de 0x134f 0 nvidia
pci 0000:4b:00.0 0x068000 0x10de 0x1af1 0x10de 0x0000 0 nvidia-nvswitch
pci 0000:5e:00.0 0x020700 0x15b3 0x101b 0x15b3 0x0007 0 mlx5_core
pci 0000:65:00.0 0x010802 0x144d 0xa80a 0x144d 0xa812 0 nvme
pci 0000:66:00.0 0x010802 0x144d 0xa80a 0x144d 0xa812 0 nvme
pci 0000:b1:00.0 0x030200 0x10de 0x20b0 0x10de 0x134f 1 nvidia
pci 0000:ca:00.0 0x030200 0x10de 0x20b0 0x10de 0x134f 1 nvidia
pci 0000:e3:00.0 0x038000 0x1002 0x740f 0x1002 0x0c34 1 amdgpu
w sys/bus/pci/devices/0000:e3:00.0/mem_info_vram_total 68702699520

# The NVIDIA driver's own view (proprietary module 535).
w proc/driver/nvidia/version 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023
GCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04)'
n=0
for slot in 0000:17:00.0 0000:31:00.0 0000:b1:00.0 0000:ca:00.0; do
	w proc/driver/nvidia/gpus/$slot/information "Model: 		 NVIDIA A100-SXM4-40GB
IRQ:   		 ${n}45
GPU UUID: 	 GPU-0000000$n-1111-2222-3333-444444444444
Video BIOS: 	 92.00.45.00.04
Bus Type: 	 PCIe
DMA Size: 	 47 bits
DMA Mask: 	 0x7fffffffffff
Bus Location: 	 $slot
Device Minor: 	 $n
GPU Excluded:	 No"
	n=$((n + 1))
done

# ---- block devices -------------------------------------------------------
blk() { # blk NAME SECTORS ROTATIONAL REMOVABLE MAJ:MIN
	w sys/block/$1/size "$2"
	w sys/block/$1/queue/rotational "$3"
	w sys/block/$1/removable "$4"
	w sys/block/$1/dev "$5"
	mkdir -p "$R/sys/block/$1/holders"
}
part() { # part DISK NAME SECTORS MAJ:MIN
	w sys/block/$1/$2/partition "${2##*[!0-9]}"
	w sys/block/$1/$2/size "$3"
	w sys/block/$1/$2/dev "$4"
	mkdir -p "$R/sys/block/$1/$2/holders"
}
# nvme0n1: the system disk, partitioned, both partitions mounted
blk nvme0n1 3750748848 0 0 259:0
w sys/block/nvme0n1/device/model 'SAMSUNG MZQL21T9HCJR-00A07              '
w sys/block/nvme0n1/device/serial '  S64GNE0R123456'
part nvme0n1 nvme0n1p1 1048576 259:1
part nvme0n1 nvme0n1p2 3749698560 259:2
# nvme1n1: blank, free for Ceph
blk nvme1n1 7501476528 0 0 259:3
w sys/block/nvme1n1/device/model 'SAMSUNG MZQL23T8HCLS-00A07'
w sys/block/nvme1n1/device/serial 'S64HNE0R654321'
# sda: a whole-disk LVM physical volume (dm-0 holds it); serial in VPD page 0x80
blk sda 15628053168 1 0 8:0
w sys/block/sda/device/model 'ST8000NM000A-2KE'
w sys/block/sda/device/vendor 'ATA     '
printf '\000\200\000\010WKD0ABCD' >"$R/sys/block/sda/device/vpd_pg80"
ln -s ../../dm-0 "$R/sys/block/sda/holders/dm-0"
# sdb: its only partition is the swap area
blk sdb 1953525168 1 0 8:16
w sys/block/sdb/device/model 'WDC WD1003FBYZ-0'
part sdb sdb1 33554432 8:17
# sdc: blank HDD, free
blk sdc 15628053168 1 0 8:32
w sys/block/sdc/device/model 'ST8000NM000A-2KE'
printf '\000\200\000\010WKD0WXYZ' >"$R/sys/block/sdc/device/vpd_pg80"
# devices that are never candidates
blk dm-0 15628044288 1 0 253:0
w sys/block/dm-0/dm/name vg0-data
blk loop0 0 0 0 7:0
blk md0 0 0 0 9:0
blk zram0 8388608 0 0 252:0

w proc/mounts '/dev/nvme0n1p2 / ext4 rw,relatime 0 0
/dev/nvme0n1p1 /boot/efi vfat rw,relatime 0 0
/dev/mapper/vg0-data /data xfs rw,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=105612776k,mode=755 0 0'
mkdir -p "$R/dev/mapper"
: >"$R/dev/dm-0"
ln -s ../dm-0 "$R/dev/mapper/vg0-data"
w proc/swaps 'Filename				Type		Size		Used		Priority
/dev/sdb1                               partition	16777212	0		-2'

# ---- network -------------------------------------------------------------
nic() { # nic NAME MAC MTU SPEED OPERSTATE DRIVER (DRIVER '' = virtual)
	d=sys/class/net/$1
	w $d/address "$2"
	w $d/mtu "$3"
	w $d/speed "$4"
	w $d/operstate "$5"
	if [ -n "$6" ]; then
		mkdir -p "$R/$d/device"
		ln -s "../../../../bus/pci/drivers/$6" "$R/$d/device/driver"
	fi
}
nic eno1 3c:ec:ef:10:20:30 1500 10000 up i40e
nic eno2 3c:ec:ef:10:20:31 1500 -1 down i40e
nic ib0 00:00:10:29:fe:80:00:00:00:00:00:00:0c:42:a1:03:00:5e:7f:10 4092 200000 up mlx5_core
nic docker0 02:42:ac:11:00:01 1500 -1 down ''
nic lo 00:00:00:00:00:00 65536 -1 unknown ''
w sys/class/net/bonding_masters ''

# ---- DMI -----------------------------------------------------------------
w sys/class/dmi/id/sys_vendor Supermicro
w sys/class/dmi/id/product_name SYS-420GP-TNAR
w sys/class/dmi/id/product_serial S123456X1234567
w sys/class/dmi/id/board_vendor Supermicro
w sys/class/dmi/id/board_name X12DPG-OA6
w sys/class/dmi/id/bios_version 1.4a
