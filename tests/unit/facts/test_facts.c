/*
 * facts: collection from fixture roots (a tree captured from a Debian 12 VM
 * and a generated multi-GPU server), the live machine checked against
 * independent system calls, os-release families, PCI names from the real
 * pci.ids, NVML through a fake libnvidia-ml loaded with dlopen, and the
 * human renderings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "facts/facts.h"

#define VM_ROOT KILN_TEST_DATA "/facts/fixtures/vm-debian12"
#define GPU_SCRIPT KILN_TEST_DATA "/facts/make-gpu-fixture.sh"

static char tmpdir[] = "/tmp/kiln-facts-XXXXXX";
static char *gpu_root;

/* ---- JSON helpers ----------------------------------------------------- */

/* Follow a dotted path ("gpus.0.model"); numeric parts index arrays. */
static json_t *jp(const json_t *o, const char *path)
{
	char *copy = xstrdup(path), *save = NULL;
	const json_t *cur = o;

	for (char *k = strtok_r(copy, ".", &save); k && cur; k = strtok_r(NULL, ".", &save)) {
		uint64_t i;
		if (json_is_array(cur) && parse_u64(k, 0, 1u << 20, &i) == 0)
			cur = json_array_get(cur, i);
		else
			cur = json_object_get(cur, k);
	}
	free(copy);
	return (json_t *)cur;
}

static void check_str(const json_t *o, const char *path, const char *want, int line)
{
	json_t *j = jp(o, path);

	if (!want) {
		if (!json_is_null(j))
			fail_msg("line %d: %s: expected null", line, path);
		return;
	}
	if (!json_is_string(j))
		fail_msg("line %d: %s: expected string '%s'", line, path, want);
	if (strcmp(json_string_value(j), want))
		fail_msg("line %d: %s: '%s' != '%s'", line, path, json_string_value(j), want);
}

static void check_int(const json_t *o, const char *path, json_int_t want, int line)
{
	json_t *j = jp(o, path);

	if (!json_is_integer(j))
		fail_msg("line %d: %s: expected integer %lld", line, path, (long long)want);
	if (json_integer_value(j) != want)
		fail_msg("line %d: %s: %lld != %lld", line, path,
			 (long long)json_integer_value(j), (long long)want);
}

#define STR(o, p, w) check_str(o, p, w, __LINE__)
#define INT(o, p, w) check_int(o, p, w, __LINE__)
#define TRUE(o, p) assert_true(json_is_true(jp(o, p)))
#define FALSE(o, p) assert_true(json_is_false(jp(o, p)))
#define NUL(o, p) assert_true(json_is_null(jp(o, p)))

/* The element of array arr whose key equals value, or NULL. */
static json_t *find(const json_t *arr, const char *key, const char *value)
{
	json_t *e;
	size_t i;

	json_array_foreach(arr, i, e) {
		const char *s = json_string_value(json_object_get(e, key));
		if (s && !strcmp(s, value))
			return e;
	}
	return NULL;
}

static json_t *collect(const char *root)
{
	struct kerr e = { 0 };
	json_t *f = NULL;
	int r = facts_collect(root, &f, &e);

	if (r < 0)
		fail_msg("facts_collect(%s): %d %s", root, r, e.msg);
	assert_true(json_is_object(f));
	INT(f, "schema", FACTS_SCHEMA);
	return f;
}

static void write_file(const char *root, const char *rel, const char *content)
{
	char *p = path_join(root, rel), *dir = xstrdup(p);

	*strrchr(dir, '/') = '\0';
	assert_int_equal(mkdir_p(dir, 0755), 0);
	assert_int_equal(file_write_atomic(p, content, strlen(content), 0644, -1, -1), 0);
	free(dir);
	free(p);
}

static int setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	gpu_root = xasprintf("%s/gpu", tmpdir);
	char *argv[] = { "sh", GPU_SCRIPT, gpu_root, NULL };
	struct kerr e = { 0 };
	if (run_ok(argv, &(struct run_opts){ .timeout_ms = 60000 }, &e) < 0) {
		fprintf(stderr, "make-gpu-fixture.sh: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	rm_rf(tmpdir);
	free(gpu_root);
	return 0;
}

/* ---- the generated multi-GPU server ---------------------------------- */

static void test_gpu_server_system(void **state)
{
	json_t *f = collect(gpu_root);

	STR(f, "hostname", "gpu-07");
	STR(f, "os.id", "ubuntu");
	STR(f, "os.id_like", "debian");
	STR(f, "os.version_id", "22.04");
	STR(f, "os.pretty_name", "Ubuntu 22.04.3 LTS");
	STR(f, "os.family", "debian");
	STR(f, "kernel.release", "5.15.0-91-generic");
	STR(f, "kernel.version", "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023");
	STR(f, "kernel.machine", "x86_64");
	char *fs = json_dumps(json_object_get(json_object_get(f, "kernel"), "filesystems"),
			      JSON_COMPACT);
	assert_string_equal(fs, "[\"ceph\",\"ext4\",\"nfs\",\"proc\",\"sysfs\",\"tmpfs\",\"xfs\"]");
	free(fs);
	STR(f, "cpu.model", "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz");
	INT(f, "cpu.sockets", 2);
	INT(f, "cpu.cores", 64);
	INT(f, "cpu.threads", 128);
	INT(f, "memory.total_bytes", 1056127760LL * 1024);
	assert_int_equal(json_array_size(jp(f, "numa")), 2);
	INT(f, "numa.0.id", 0);
	STR(f, "numa.0.cpus", "0-31,64-95");
	INT(f, "numa.0.memory_bytes", 528063880LL * 1024);
	INT(f, "numa.1.id", 1);
	STR(f, "numa.1.cpus", "32-63,96-127");
	STR(f, "dmi.sys_vendor", "Supermicro");
	STR(f, "dmi.product_name", "SYS-420GP-TNAR");
	STR(f, "dmi.product_serial", "S123456X1234567");
	STR(f, "dmi.board_vendor", "Supermicro");
	STR(f, "dmi.board_name", "X12DPG-OA6");
	STR(f, "dmi.bios_version", "1.4a");
	TRUE(f, "init.systemd");
	STR(f, "virtualization", "none");
	assert_int_equal(json_array_size(jp(f, "swaps")), 1);
	STR(f, "swaps.0.name", "/dev/sdb1");
	STR(f, "swaps.0.type", "partition");
	INT(f, "swaps.0.size_bytes", 16777212LL * 1024);
	json_decref(f);
}

static void test_gpu_server_pci_gpus(void **state)
{
	json_t *f = collect(gpu_root), *p, *gpus = jp(f, "gpus");

	assert_int_equal(json_array_size(jp(f, "pci")), 13);
	p = find(jp(f, "pci"), "slot", "0000:17:00.0");
	assert_non_null(p);
	STR(p, "class", "0x030200");
	STR(p, "vendor_id", "0x10de");
	STR(p, "device_id", "0x20b0");
	STR(p, "subsystem_vendor_id", "0x10de");
	STR(p, "subsystem_device_id", "0x134f");
	STR(p, "driver", "nvidia");
	INT(p, "numa_node", 0);
	p = find(jp(f, "pci"), "slot", "0000:00:00.0");
	NUL(p, "driver");
	NUL(p, "numa_node");   /* -1 in sysfs */

	/* 4 A100 + 1 MI210; the ASPEED VGA and the NVSwitch are not GPUs */
	assert_int_equal(json_array_size(gpus), 5);
	assert_null(find(gpus, "slot", "0000:03:00.0"));
	assert_null(find(gpus, "slot", "0000:4b:00.0"));
	static const char *const nv[] = { "0000:17:00.0", "0000:31:00.0",
					  "0000:b1:00.0", "0000:ca:00.0" };
	for (size_t i = 0; i < 4; i++) {
		json_t *g = find(gpus, "slot", nv[i]);
		char uuid[64];
		assert_non_null(g);
		STR(g, "vendor", "nvidia");
		STR(g, "vendor_id", "0x10de");
		STR(g, "device_id", "0x20b0");
		STR(g, "driver", "nvidia");
		INT(g, "numa_node", i < 2 ? 0 : 1);
		/* from /proc/driver/nvidia, no NVML involved */
		STR(g, "model", "NVIDIA A100-SXM4-40GB");
		STR(g, "driver_version", "535.104.05");
		snprintf(uuid, sizeof(uuid), "GPU-0000000%zu-1111-2222-3333-444444444444", i);
		STR(g, "uuid", uuid);
		assert_null(json_object_get(g, "memory_bytes"));
	}
	json_t *amd = find(gpus, "slot", "0000:e3:00.0");
	assert_non_null(amd);
	STR(amd, "vendor", "amd");
	STR(amd, "vendor_id", "0x1002");
	STR(amd, "device_id", "0x740f");
	STR(amd, "driver", "amdgpu");
	INT(amd, "numa_node", 1);
	INT(amd, "memory_bytes", 68702699520LL);
	assert_null(json_object_get(amd, "driver_version"));
	assert_null(json_object_get(amd, "uuid"));
	json_decref(f);
}

static void test_gpu_server_disks(void **state)
{
	json_t *f = collect(gpu_root), *disks = jp(f, "disks"), *d;

	/* loop0, md0, dm-0 and zram0 are never candidates */
	assert_int_equal(json_array_size(disks), 5);
	STR(disks, "0.name", "nvme0n1");
	STR(disks, "1.name", "nvme1n1");
	STR(disks, "2.name", "sda");
	STR(disks, "3.name", "sdb");
	STR(disks, "4.name", "sdc");

	d = find(disks, "name", "nvme0n1");
	INT(d, "size_bytes", 3750748848LL * 512);
	FALSE(d, "rotational");
	FALSE(d, "removable");
	STR(d, "model", "SAMSUNG MZQL21T9HCJR-00A07");
	STR(d, "serial", "S64GNE0R123456");
	assert_int_equal(json_array_size(jp(d, "partitions")), 2);
	TRUE(d, "in_use");
	const char *why = json_string_value(jp(d, "in_use_reason"));
	assert_non_null(why);
	assert_non_null(strstr(why, "nvme0n1p2 mounted at /"));
	assert_non_null(strstr(why, "nvme0n1p1 mounted at /boot/efi"));

	d = find(disks, "name", "nvme1n1");
	INT(d, "size_bytes", 7501476528LL * 512);
	STR(d, "serial", "S64HNE0R654321");
	FALSE(d, "in_use");
	NUL(d, "in_use_reason");

	d = find(disks, "name", "sda");   /* LVM PV: held by dm-0 */
	TRUE(d, "rotational");
	STR(d, "model", "ST8000NM000A-2KE");
	STR(d, "serial", "WKD0ABCD");     /* from VPD page 0x80 */
	TRUE(d, "in_use");
	assert_non_null(strstr(json_string_value(jp(d, "in_use_reason")), "held by dm-0"));

	d = find(disks, "name", "sdb");   /* partition is swap */
	TRUE(d, "in_use");
	assert_non_null(strstr(json_string_value(jp(d, "in_use_reason")), "sdb1 is swap"));
	NUL(d, "serial");

	d = find(disks, "name", "sdc");
	FALSE(d, "in_use");
	STR(d, "serial", "WKD0WXYZ");
	json_decref(f);
}

static void test_gpu_server_nics(void **state)
{
	json_t *f = collect(gpu_root), *nics = jp(f, "nics"), *n;

	/* lo and the bonding_masters file are not interfaces we report */
	assert_int_equal(json_array_size(nics), 4);
	assert_null(find(nics, "name", "lo"));
	assert_null(find(nics, "name", "bonding_masters"));
	n = find(nics, "name", "eno1");
	STR(n, "mac", "3c:ec:ef:10:20:30");
	INT(n, "mtu", 1500);
	INT(n, "speed_mbps", 10000);
	STR(n, "driver", "i40e");
	STR(n, "link", "up");
	FALSE(n, "virtual");
	assert_null(json_object_get(n, "addresses"));   /* fixture: not live */
	n = find(nics, "name", "eno2");
	NUL(n, "speed_mbps");
	STR(n, "link", "down");
	n = find(nics, "name", "ib0");
	INT(n, "speed_mbps", 200000);
	INT(n, "mtu", 4092);
	STR(n, "driver", "mlx5_core");
	STR(n, "mac", "00:00:10:29:fe:80:00:00:00:00:00:00:0c:42:a1:03:00:5e:7f:10");
	n = find(nics, "name", "docker0");
	TRUE(n, "virtual");
	NUL(n, "driver");
	json_decref(f);
}

/* ---- the tree captured from a Debian 12 VM ---------------------------- */

static void test_captured_vm(void **state)
{
	json_t *f = collect(VM_ROOT), *d, *n;

	STR(f, "hostname", "vm");
	STR(f, "os.id", "debian");
	NUL(f, "os.id_like");
	STR(f, "os.version_id", "12");
	STR(f, "os.pretty_name", "Debian GNU/Linux 12 (bookworm)");
	STR(f, "os.family", "debian");
	STR(f, "kernel.release", "6.18.44-fc-v769");
	STR(f, "kernel.machine", "x86_64");
	STR(f, "cpu.model", "AMD EPYC");
	INT(f, "cpu.sockets", 1);
	INT(f, "cpu.cores", 2);
	INT(f, "cpu.threads", 2);
	INT(f, "memory.total_bytes", 24683620LL * 1024);
	assert_int_equal(json_array_size(jp(f, "numa")), 1);
	STR(f, "numa.0.cpus", "0-1");
	INT(f, "numa.0.memory_bytes", 4548384LL * 1024);

	assert_int_equal(json_array_size(jp(f, "pci")), 6);
	STR(f, "pci.2.slot", "0000:00:02.0");
	STR(f, "pci.2.class", "0x018000");
	STR(f, "pci.2.vendor_id", "0x1af4");
	STR(f, "pci.2.device_id", "0x1042");
	STR(f, "pci.2.driver", "virtio-pci");
	assert_int_equal(json_array_size(jp(f, "gpus")), 0);

	/* loop0-7 and zram0 skipped; vda holds / (found through mountinfo) */
	assert_int_equal(json_array_size(jp(f, "disks")), 1);
	d = jp(f, "disks.0");
	STR(d, "name", "vda");
	INT(d, "size_bytes", 536870912LL * 512);
	STR(d, "serial", "181664372688709");
	TRUE(d, "in_use");
	STR(d, "in_use_reason", "mounted at /");

	assert_int_equal(json_array_size(jp(f, "nics")), 3);
	n = find(jp(f, "nics"), "name", "eth0");
	STR(n, "mac", "02:fc:00:00:00:01");
	INT(n, "mtu", 1400);
	NUL(n, "speed_mbps");    /* virtio reports -1 */
	STR(n, "driver", "virtio_net");
	STR(n, "link", "up");
	n = find(jp(f, "nics"), "name", "ifb0");
	STR(n, "link", "down");
	TRUE(n, "virtual");

	static const char *const dmi[] = { "sys_vendor", "product_name", "product_serial",
					   "board_vendor", "board_name", "bios_version" };
	for (size_t i = 0; i < ARRAY_SIZE(dmi); i++) {   /* this VM has no DMI */
		json_t *v = json_object_get(jp(f, "dmi"), dmi[i]);
		assert_non_null(v);
		assert_true(json_is_null(v));
	}
	FALSE(f, "init.systemd");
	assert_int_equal(json_array_size(jp(f, "swaps")), 0);
	STR(f, "virtualization", "vm");   /* the CPU's hypervisor flag */
	json_decref(f);
}

/* ---- the live machine, checked against other sources ----------------- */

static void test_live(void **state)
{
	json_t *f = collect("/");
	struct utsname u;
	struct sysinfo si;
	char host[256];

	assert_int_equal(uname(&u), 0);
	STR(f, "kernel.release", u.release);
	STR(f, "kernel.machine", u.machine);
	/* /proc is mounted here, so the kernel has it */
	const json_t *fs = json_object_get(json_object_get(f, "kernel"), "filesystems");
	bool proc = false;
	for (size_t k = 0; k < json_array_size(fs); k++)
		proc |= !strcmp(json_string_value(json_array_get(fs, k)), "proc");
	assert_true(proc);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	STR(f, "hostname", host);
	assert_int_equal(sysinfo(&si), 0);
	INT(f, "memory.total_bytes", (json_int_t)si.totalram * si.mem_unit);
	INT(f, "cpu.threads", sysconf(_SC_NPROCESSORS_ONLN));
	assert_true(json_integer_value(jp(f, "cpu.cores")) >= 1);
	assert_true(json_integer_value(jp(f, "cpu.cores")) <= sysconf(_SC_NPROCESSORS_ONLN));

	/* every interface the kernel lists (but lo) is reported, with addresses */
	struct if_nameindex *ifs = if_nameindex(), *i;
	size_t want = 0;
	assert_non_null(ifs);
	for (i = ifs; i->if_index; i++) {
		if (!strcmp(i->if_name, "lo"))
			continue;
		want++;
		json_t *n = find(jp(f, "nics"), "name", i->if_name);
		if (!n)
			fail_msg("interface %s missing", i->if_name);
		assert_true(json_is_array(json_object_get(n, "addresses")));
	}
	if_freenameindex(ifs);
	assert_int_equal(json_array_size(jp(f, "nics")), want);

	json_decref(f);
}

/*
 * The disk holding / (per stat and /sys/dev/block) is in use.  Where no
 * listed disk backs / — an overlay, tmpfs or btrfs root (no block device
 * behind st_dev), or a dm-/md device (facts do not list those) — there is
 * nothing to compare: the test says SKIPPED and why, instead of passing.
 */
static void test_live_root_disk(void **state)
{
	struct stat st;
	char link[PATH_MAX], *lp, *b;
	json_t *f, *d;
	ssize_t ln = -1;

	assert_int_equal(stat("/", &st), 0);
	if (major(st.st_dev)) {
		lp = xasprintf("/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
		ln = readlink(lp, link, sizeof(link) - 1);
		free(lp);
	}
	if (ln <= 0) {
		print_message("SKIPPED: / is on device %u:%u, not a block device (overlay, "
			      "tmpfs or btrfs root): no disk to find in use\n",
			      major(st.st_dev), minor(st.st_dev));
		skip();
	}
	link[ln] = '\0';
	b = strstr(link, "/block/");
	assert_non_null(b);
	b += 7;
	*strchrnul(b, '/') = '\0';
	f = collect("/");
	d = find(jp(f, "disks"), "name", b);
	if (!d && (!strncmp(b, "dm-", 3) || !strncmp(b, "md", 2))) {
		print_message("SKIPPED: / is on %s, a dm-/md device, which facts do not "
			      "list as a disk\n", b);
		json_decref(f);
		skip();
	}
	if (!d)
		fail_msg("/ is on disk %s, which facts do not list", b);
	TRUE(d, "in_use");
	assert_non_null(strstr(json_string_value(jp(d, "in_use_reason")), "mounted at"));
	json_decref(f);
}

/* ---- os-release and odd roots ----------------------------------------- */

static void test_os_release(void **state)
{
	static const struct { const char *text, *id, *family, *pretty; } cases[] = {
		{ "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n"
		  "PRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n",
		  "rocky", "redhat", "Rocky Linux 9.3 (Blue Onyx)" },
		{ "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nPRETTY_NAME='Linux Mint 21'\n",
		  "linuxmint", "debian", "Linux Mint 21" },
		{ "ID=almalinux\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\n",
		  "almalinux", "redhat", "A \"quoted\" name" },
		{ "ID=arch\n", "arch", "arch", NULL },
		{ "# comment\n  ID=opensuse-leap\nID_LIKE=\"suse opensuse\"\n",
		  "opensuse-leap", "opensuse-leap", NULL },
		{ "ID=fedora\nVERSION_ID=39", "fedora", "redhat", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *root = xasprintf("%s/os%zu", tmpdir, i);
		/* the last case lives only in /usr/lib/os-release */
		write_file(root, i == ARRAY_SIZE(cases) - 1 ? "/usr/lib/os-release"
			   : "/etc/os-release", cases[i].text);
		json_t *f = collect(root);
		STR(f, "os.id", cases[i].id);
		STR(f, "os.family", cases[i].family);
		STR(f, "os.pretty_name", cases[i].pretty);
		json_decref(f);
		free(root);
	}
}

static void test_bad_and_empty_roots(void **state)
{
	struct kerr e = { 0 };
	json_t *f = (json_t *)1;
	char *missing = xasprintf("%s/nope", tmpdir), *file = xasprintf("%s/file", tmpdir);
	char *empty = xasprintf("%s/empty", tmpdir);

	assert_int_equal(facts_collect(missing, &f, &e), -ENOENT);
	assert_null(f);
	assert_non_null(strstr(e.msg, "nope"));
	write_file(tmpdir, "/file", "x");
	assert_int_equal(facts_collect(file, &f, &e), -ENOTDIR);
	assert_int_equal(mkdir_p(empty, 0755), 0);

	/* nothing readable: every key present, unknowns null, lists empty */
	f = collect(empty);
	NUL(f, "hostname");
	NUL(f, "os.id");
	NUL(f, "os.family");
	NUL(f, "kernel.release");
	NUL(f, "cpu.threads");
	NUL(f, "memory.total_bytes");
	static const char *const lists[] = { "numa", "pci", "gpus", "disks", "nics", "swaps" };
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		assert_true(json_is_array(jp(f, lists[i])));
		assert_int_equal(json_array_size(jp(f, lists[i])), 0);
	}
	FALSE(f, "init.systemd");
	assert_null(json_object_get(f, "virtualization"));
	json_decref(f);
	free(missing);
	free(file);
	free(empty);
}

/* A device file under root: len bytes, zero but for magic at off. */
static void write_dev(const char *root, const char *name, size_t len, size_t off,
		      const void *magic, size_t mlen)
{
	char *rel = xasprintf("/dev/%s", name), *p = path_join(root, rel), *dir = xstrdup(p);
	char *b = xcalloc(len, 1);

	memcpy(b + off, magic, mlen);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(mkdir_p(dir, 0755), 0);
	assert_int_equal(file_write_atomic(p, b, len, 0644, -1, -1), 0);
	free(b);
	free(dir);
	free(p);
	free(rel);
}

/*
 * signature: what the first bytes of each disk hold (blkid's names), and a
 * BlueStore label's ceph_fsid and whoami; read_only and vendor from sysfs.
 * Nothing else of a label is copied (its osd_key stays on the node).
 */
static void test_disk_signatures(void **state)
{
	static const char label[] = "bluestore block device\n"
		"0e4e1b3c-58b7-4a3e-a6f0-2b2c9c1f1d11\n\x02\x01\x00\x00\x00\x00"
		"\x04\x00\x00\x00" "type\x09\x00\x00\x00" "bluestore"
		"\x09\x00\x00\x00" "ceph_fsid\x24\x00\x00\x00" "5b0f6c2e-8a1d-4c3e-9f70-1a2b3c4d5e6f"
		"\x06\x00\x00\x00" "whoami\x02\x00\x00\x00" "17"
		"\x07\x00\x00\x00" "osd_key\x28\x00\x00\x00" "AQBsecretsecretsecretsecretsecretsecret==";
	static const struct { const char *name; size_t off; const char *magic; size_t n;
			      const char *want; } cases[] = {
		{ "sda", 0, label, sizeof(label) - 1, "bluestore" },
		{ "sdb", 512, "EFI PART", 8, "gpt" },
		{ "sdc", 536, "LVM2 001", 8, "LVM2_member" },
		{ "sdd", 4096, "\xfc\x4e\x2b\xa9", 4, "linux_raid_member" },
		{ "sde", 1080, "\x53\xef", 2, "ext4" },
		{ "sdf", 0, "XFSB", 4, "xfs" },
		{ "sdg", 65536 + 64, "_BHRfS_M", 8, "btrfs" },
		{ "sdh", 4086, "SWAPSPACE2", 10, "swap" },
		{ "sdi", 510, "\x55\xaa", 2, "dos" },
		{ "sdj", 0, "LUKS\xba\xbe", 6, "crypto_LUKS" },
		{ "sdk", 100, "x", 1, NULL },
	};
	char *root = xasprintf("%s/sigroot", tmpdir);

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *p = xasprintf("/sys/block/%s/size", cases[i].name);
		write_file(root, p, "16777216\n");
		free(p);
		write_dev(root, cases[i].name, 70000, cases[i].off, cases[i].magic, cases[i].n);
	}
	write_file(root, "/sys/block/sda/ro", "1\n");
	write_file(root, "/sys/block/sdb/ro", "0\n");
	write_file(root, "/sys/block/sda/device/vendor", "ATA\n");
	write_file(root, "/sys/block/sdl/size", "16777216\n");   /* no /dev node: unknown */
	json_t *f = collect(root), *d;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		d = find(jp(f, "disks"), "name", cases[i].name);
		if (cases[i].want)
			STR(d, "signature", cases[i].want);
		else
			NUL(d, "signature");
		FALSE(d, "in_use");   /* a signature alone is not "in use" */
	}
	d = find(jp(f, "disks"), "name", "sda");
	STR(d, "bluestore_fsid", "5b0f6c2e-8a1d-4c3e-9f70-1a2b3c4d5e6f");
	assert_int_equal(json_integer_value(json_object_get(d, "bluestore_osd")), 17);
	TRUE(d, "read_only");
	STR(d, "vendor", "ATA");
	char *all = json_dumps(f, 0);
	assert_null(strstr(all, "AQBsecret"));
	free(all);
	d = find(jp(f, "disks"), "name", "sdb");
	FALSE(d, "read_only");
	assert_null(json_object_get(d, "bluestore_fsid"));
	NUL(find(jp(f, "disks"), "name", "sdl"), "signature");
	json_decref(f);
	free(root);
}

/* A disk mounted as "/dev/root" is still found, by device number. */
static void test_dev_root_and_escapes(void **state)
{
	char *root = xasprintf("%s/devroot", tmpdir);

	write_file(root, "/proc/self/mountinfo",
		   "25 1 8:2 / / rw - ext4 /dev/root rw\n"
		   "26 25 8:17 / /mnt/with\\040space rw shared:1 - xfs /dev/sdb1 rw\n"
		   "27 25 0:30 / /tmp rw - tmpfs tmpfs rw\n");
	write_file(root, "/sys/block/sda/dev", "8:0\n");
	write_file(root, "/sys/block/sda/sda2/partition", "2\n");
	write_file(root, "/sys/block/sda/sda2/dev", "8:2\n");
	write_file(root, "/sys/block/sdb/dev", "8:16\n");
	write_file(root, "/sys/block/sdb/sdb1/partition", "1\n");
	write_file(root, "/sys/block/sdb/sdb1/dev", "8:17\n");
	write_file(root, "/sys/block/sdc/dev", "8:32\n");
	write_file(root, "/sys/block/sdc/size", "garbage\n");
	json_t *f = collect(root), *d;
	d = find(jp(f, "disks"), "name", "sda");
	TRUE(d, "in_use");
	assert_non_null(strstr(json_string_value(jp(d, "in_use_reason")), "sda2 mounted at /"));
	d = find(jp(f, "disks"), "name", "sdb");
	assert_non_null(strstr(json_string_value(jp(d, "in_use_reason")),
			       "sdb1 mounted at /mnt/with space"));
	d = find(jp(f, "disks"), "name", "sdc");
	FALSE(d, "in_use");
	NUL(d, "size_bytes");   /* unparsable, not 0 */
	json_decref(f);
	free(root);
}

/* ---- PCI names (libpci + the real pci.ids) ---------------------------- */

static void test_resolve_names(void **state)
{
	json_t *f = collect(gpu_root), *g, *p;
	struct kerr e = { 0 };

	/* an id no database knows keeps no names */
	json_array_append_new(jp(f, "pci"), json_pack("{s:s, s:s, s:s, s:s}",
		"slot", "0000:ff:1f.7", "class", "0xff0000", "vendor_id", "0xfff0",
		"device_id", "0x0001"));
	assert_int_equal(facts_resolve_names(f, &e), 0);
	g = find(jp(f, "gpus"), "slot", "0000:17:00.0");
	STR(g, "vendor_name", "NVIDIA Corporation");
	assert_non_null(strstr(json_string_value(jp(g, "device_name")), "A100"));
	STR(g, "class_name", "3D controller");
	g = find(jp(f, "gpus"), "slot", "0000:e3:00.0");
	assert_non_null(strstr(json_string_value(jp(g, "vendor_name")), "Advanced Micro Devices"));
	assert_non_null(strstr(json_string_value(jp(g, "device_name")), "MI210"));
	STR(g, "class_name", "Display controller");
	p = find(jp(f, "pci"), "slot", "0000:03:00.0");
	STR(p, "class_name", "VGA compatible controller");
	assert_non_null(strstr(json_string_value(jp(p, "vendor_name")), "ASPEED"));
	p = find(jp(f, "pci"), "slot", "0000:5e:00.0");
	assert_non_null(strstr(json_string_value(jp(p, "device_name")), "ConnectX-6"));
	p = find(jp(f, "pci"), "slot", "0000:ff:1f.7");
	assert_null(json_object_get(p, "vendor_name"));
	assert_null(json_object_get(p, "device_name"));
	json_t *arr = json_array();
	assert_int_equal(facts_resolve_names(arr, &e), -EINVAL);
	json_decref(arr);
	json_decref(f);
}

/* ---- NVML through a fake libnvidia-ml --------------------------------- */

static void test_nvml(void **state)
{
	json_t *f = collect(gpu_root), *before = json_deep_copy(f), *g;
	struct kerr e = { 0 };

	/* absent library, library without NVML, failing init: facts untouched */
	assert_int_equal(facts_merge_nvml(f, "/nonexistent/libnvidia-ml.so.1", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "cannot load"));
	assert_int_equal(facts_merge_nvml(f, "libm.so.6", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "lacks"));
	setenv("FAKE_NVML_FAIL", "init", 1);
	assert_int_equal(facts_merge_nvml(f, FAKE_NVML_PATH, &e), -EIO);
	unsetenv("FAKE_NVML_FAIL");
	assert_true(json_equal(f, before));

	/* four of the fake's five GPUs are on this machine's PCI bus */
	assert_int_equal(facts_merge_nvml(f, FAKE_NVML_PATH, &e), 4);
	static const char *const nv[] = { "0000:17:00.0", "0000:31:00.0",
					  "0000:b1:00.0", "0000:ca:00.0" };
	for (size_t i = 0; i < 4; i++) {
		char uuid[64];
		g = find(jp(f, "gpus"), "slot", nv[i]);
		STR(g, "model", "NVIDIA A100-SXM4-40GB");
		INT(g, "memory_bytes", 40LL << 30);
		STR(g, "driver_version", "550.54.15");   /* NVML's, over /proc's */
		snprintf(uuid, sizeof(uuid), "GPU-fa4e0000-0000-0000-0000-00000000000%zu", i);
		STR(g, "uuid", uuid);
	}
	g = find(jp(f, "gpus"), "slot", "0000:e3:00.0");   /* AMD: untouched */
	assert_true(json_equal(g, find(jp(before, "gpus"), "slot", "0000:e3:00.0")));
	assert_int_equal(json_array_size(jp(f, "gpus")), 5);   /* nothing invented */
	json_decref(before);
	json_decref(f);
}

/* ---- nvidia-smi fallback through a fake program ----------------------- */

static void test_nvidia_smi(void **state)
{
	json_t *f = collect(gpu_root), *before = json_deep_copy(f), *g;
	struct kerr e = { 0 };
	char *smi = xasprintf("%s/nvidia-smi", tmpdir), *bad = xasprintf("%s/smi-bad", tmpdir);

	/* the fake checks it was asked for CSV of the fields we parse */
	write_file(tmpdir, "/nvidia-smi",
		   "#!/bin/sh\n"
		   "[ \"$1\" = --query-gpu=pci.bus_id,name,memory.total,driver_version,uuid ] || exit 3\n"
		   "[ \"$2\" = --format=csv,noheader,nounits ] || exit 4\n"
		   "echo '00000000:17:00.0, NVIDIA A100-SXM4-40GB, 40960, 550.90.07, GPU-aaaa'\n"
		   "echo '00000000:CA:00.0, NVIDIA A100-SXM4-40GB, 40960, 550.90.07, GPU-dddd'\n"
		   "echo '00000000:DD:00.0, NVIDIA H100 80GB HBM3, 81559, 550.90.07, GPU-eeee'\n"
		   "echo 'garbage line'\n");
	write_file(tmpdir, "/smi-bad", "#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n");
	assert_int_equal(chmod(smi, 0755), 0);
	assert_int_equal(chmod(bad, 0755), 0);

	assert_int_equal(facts_merge_nvidia_smi(f, "/nonexistent/nvidia-smi", &e), -ENOENT);
	assert_int_equal(facts_merge_nvidia_smi(f, bad, &e), -EIO);
	assert_non_null(strstr(e.msg, "NVIDIA-SMI has failed"));
	assert_true(json_equal(f, before));

	assert_int_equal(facts_merge_nvidia_smi(f, smi, &e), 2);
	g = find(jp(f, "gpus"), "slot", "0000:17:00.0");
	INT(g, "memory_bytes", 40960LL << 20);
	STR(g, "driver_version", "550.90.07");
	STR(g, "uuid", "GPU-aaaa");
	g = find(jp(f, "gpus"), "slot", "0000:ca:00.0");
	STR(g, "uuid", "GPU-dddd");
	g = find(jp(f, "gpus"), "slot", "0000:31:00.0");   /* not listed: as before */
	assert_true(json_equal(g, find(jp(before, "gpus"), "slot", "0000:31:00.0")));
	assert_int_equal(json_array_size(jp(f, "gpus")), 5);
	free(smi);
	free(bad);
	json_decref(before);
	json_decref(f);
}

/* ---- human output ------------------------------------------------------ */

static void test_format(void **state)
{
	json_t *f = collect(gpu_root), *vm = collect(VM_ROOT);
	struct kerr e = { 0 };
	struct buf b;

	assert_int_equal(facts_merge_nvml(f, FAKE_NVML_PATH, &e), 4);
	assert_int_equal(facts_resolve_names(f, &e), 0);
	buf_init(&b, 0);
	assert_int_equal(facts_format(f, &b), 0);
	static const char *const want[] = {
		"Host:      gpu-07\n",
		"OS:        Ubuntu 22.04.3 LTS (family debian)\n",
		"Hardware:  Supermicro SYS-420GP-TNAR, serial S123456X1234567",
		"CPU:       Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz, 2 sockets, 64 cores, 128 threads\n",
		"NUMA:      node0: cpus 0-31,64-95, 504 GiB\n",
		"GPUs:      4x NVIDIA A100-SXM4-40GB, 1x AMD Aldebaran/MI200 [Instinct MI210]\n",
		"Disks:     5, free: 2 (10.8 TiB)\n",
		"in use: disk held by dm-0\n",
		"Swap:      /dev/sdb1 (16.0 GiB)\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		if (!strstr(b.s, want[i]))
			fail_msg("missing '%s' in:\n%s", want[i], b.s);
	/* one table row per GPU, with NVML's memory */
	assert_non_null(strstr(b.s, "  0000:b1:00.0  NVIDIA A100-SXM4-40GB"));
	assert_non_null(strstr(strstr(b.s, "0000:b1:00.0"), "40 GiB"));
	/* the free NVMe row says free */
	const char *row = strstr(b.s, "  nvme1n1 ");
	assert_non_null(row);
	assert_true(strchr(row, '\n') - row > 4 &&
		    !strncmp(strchr(row, '\n') - 4, "free", 4));
	assert_non_null(strstr(b.s, "  ib0 "));
	assert_null(strstr(b.s, "  lo "));

	/* a capped buffer gets all or nothing */
	struct buf small;
	buf_init(&small, 64);
	assert_int_equal(facts_format(f, &small), -E2BIG);
	assert_int_equal(small.len, 0);
	buf_release(&small);
	json_t *arr = json_array();
	assert_int_equal(facts_format(arr, &b), -EINVAL);
	json_decref(arr);

	/* the table: header, one row per node, a row for a node without facts */
	const char *names[] = { "gpu-07", "vm", "lost" };
	json_t *all[] = { f, vm, NULL };
	buf_reset(&b);
	assert_int_equal(facts_format_table(names, all, 3, &b), 0);
	char *l1 = b.s, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
	char *l4 = strchr(l3, '\n') + 1;
	assert_true(str_starts(l1, "NAME"));
	assert_non_null(strstr(l1, "GPUS"));
	assert_true(str_starts(l2, "gpu-07  "));
	assert_non_null(strstr(l2, "ubuntu 22.04"));
	assert_non_null(strstr(l2, "2s/64c/128t"));
	assert_non_null(strstr(l2, "4x NVIDIA A100-SXM4-40GB, 1x AMD"));
	assert_non_null(strstr(l2, "2 (10.8 TiB)"));
	assert_true(str_starts(l3, "vm  "));
	assert_non_null(strstr(l3, "debian 12"));
	assert_true(str_starts(l4, "lost  "));
	assert_non_null(strstr(l4, "(no facts)"));
	/* columns line up: GPUS starts at the same offset on every line */
	size_t col = (size_t)(strstr(l1, "GPUS") - l1);
	assert_true(!strncmp(l2 + col, "4x", 2));
	assert_true(!strncmp(l3 + col, "- ", 2));
	buf_release(&b);
	json_decref(vm);
	json_decref(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpu_server_system),
		cmocka_unit_test(test_gpu_server_pci_gpus),
		cmocka_unit_test(test_gpu_server_disks),
		cmocka_unit_test(test_gpu_server_nics),
		cmocka_unit_test(test_captured_vm),
		cmocka_unit_test(test_live),
		cmocka_unit_test(test_live_root_disk),
		cmocka_unit_test(test_os_release),
		cmocka_unit_test(test_bad_and_empty_roots),
		cmocka_unit_test(test_dev_root_and_escapes),
		cmocka_unit_test(test_disk_signatures),
		cmocka_unit_test(test_resolve_names),
		cmocka_unit_test(test_nvml),
		cmocka_unit_test(test_nvidia_smi),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
