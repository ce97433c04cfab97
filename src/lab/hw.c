/*
 * A lab host's hardware: NVIDIA GPUs (--gpus) and disks (--disks,
 * --used-disk), made so that kiln's facts code finds them through the same
 * paths as on a real server, on that host only.
 *
 * GPUs are PCI functions in a per-host copy of /sys/bus/pci/devices (the
 * machine's functions as symlinks, minus its display controllers, plus one
 * directory per lab GPU with the model's real ids) and /dev/nvidiaN,
 * /dev/nvidiactl in the host's private /dev.  Disks are sparse files in
 * DIR/disks attached to loop devices; each host's /sys/block holds only its
 * own, under disk names (sda, sdb, ...), with matching block nodes in its
 * /dev.  The trees are built here in the host's runtime dir and
 * bind-mounted read-only by the host's init (hw_init_*), inside the host's
 * mount namespace only.
 */
#include "lab_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define PCI_DEVICES_REL "sys/bus/pci/devices"   /* under a root */
#define PCI_DEVICES "/" PCI_DEVICES_REL
#define GPU_MAX 16
#define DISKS_MAX 16
#define DISK_MIN (1ULL << 20)
#define DISK_MAX (16ULL << 40)
#define NVIDIA_MAJOR 195
#define NVIDIACTL_MINOR 255
#define USED_DISK_MOUNT "/srv/data"

/*
 * The models --gpus knows.  Vendor and device ids as in pci.ids (Debian
 * pciutils' /usr/share/misc/pci.ids, version 2023.04.10, vendor 10de
 * "NVIDIA Corporation"); the name column is that file's device name, which
 * tests/unit/lab checks against libpci.  Subsystem ids only where pci.ids
 * lists the board (the RTX 3090 Founders Edition); elsewhere the files are
 * absent rather than made up.  Class 0x030200 (3D controller) for
 * data-centre cards, 0x030000 (VGA) for GeForce cards, as those boards
 * report themselves.
 */
static const struct lab_gpu_model gpu_models[] = {
	{ "a100",      0x20b0, 0x030200, 0,      0,      "GA100 [A100 SXM4 40GB]" },
	{ "a100-80g",  0x20b2, 0x030200, 0,      0,      "GA100 [A100 SXM4 80GB]" },
	{ "a100-pcie", 0x20f1, 0x030200, 0,      0,      "GA100 [A100 PCIe 40GB]" },
	{ "h100",      0x2330, 0x030200, 0,      0,      "GH100[H100 SXM5 80GB]" },
	{ "h100-pcie", 0x2331, 0x030200, 0,      0,      "GH100 [H100 PCIe]" },
	{ "t4",        0x1eb8, 0x030200, 0,      0,      "TU104GL [Tesla T4]" },
	{ "v100",      0x1db1, 0x030200, 0,      0,      "GV100GL [Tesla V100 SXM2 16GB]" },
	{ "v100-pcie", 0x1db4, 0x030200, 0,      0,      "GV100GL [Tesla V100 PCIe 16GB]" },
	{ "rtx3090",   0x2204, 0x030000, 0x10de, 0x147d, "GA102 [GeForce RTX 3090]" },
	{ "rtx4090",   0x2684, 0x030000, 0,      0,      "AD102 [GeForce RTX 4090]" },
};

const struct lab_gpu_model *lab_gpu_models(size_t *n)
{
	*n = ARRAY_SIZE(gpu_models);
	return gpu_models;
}

static const struct lab_gpu_model *gpu_model_find(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(gpu_models); i++)
		if (!strcmp(gpu_models[i].key, key))
			return &gpu_models[i];
	return NULL;
}

static char *model_keys(void)
{
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; i < ARRAY_SIZE(gpu_models); i++)
		buf_printf(&b, "%s%s", i ? ", " : "", gpu_models[i].key);
	return buf_detach(&b, NULL);
}

/* ---- planning -------------------------------------------------------- */

/* One "HOST=MODEL:N" item of --gpus. */
static int gpus_item(struct lab *l, const char *item, struct kerr *e)
{
	const char *eq = strchr(item, '='), *colon = eq ? strchr(eq, ':') : NULL;
	uint64_t n;

	if (!eq || !colon || eq == item)
		return kerr_set(e, -EINVAL, "--gpus '%s': expected HOST=MODEL:COUNT", item);
	char *host = xstrndup(item, (size_t)(eq - item));
	char *model = xstrndup(eq + 1, (size_t)(colon - eq - 1));
	struct lab_host *h = lab_host_find(l, host);
	const struct lab_gpu_model *m = gpu_model_find(model);
	int r = 0;

	if (!h)
		r = kerr_set(e, -EINVAL, "--gpus '%s': the lab has no host '%s'", item, host);
	else if (!m) {
		char *keys = model_keys();
		r = kerr_set(e, -EINVAL, "--gpus '%s': unknown model '%s' (known: %s)", item,
			     model, keys);
		free(keys);
	} else if (parse_u64(colon + 1, 1, GPU_MAX, &n) < 0)
		r = kerr_set(e, -EINVAL, "--gpus '%s': COUNT must be 1 to %d", item, GPU_MAX);
	else if (h->gpu)
		r = kerr_set(e, -EINVAL, "--gpus: host '%s' named twice", host);
	else {
		h->gpu = m;
		h->ngpus = (unsigned)n;
	}
	free(host);
	free(model);
	return r;
}

/* "8G" -> bytes: a number with an optional K, M, G or T (powers of 1024). */
static int size_parse(const char *s, uint64_t *out)
{
	size_t len = strlen(s);
	unsigned shift = 0;
	uint64_t v;

	if (len > 1) {
		switch (toupper((unsigned char)s[len - 1])) {
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		case 'T': shift = 40; break;
		}
	}
	char *num = xstrndup(s, shift ? len - 1 : len);
	int r = parse_u64(num, 1, DISK_MAX >> shift, &v);
	free(num);
	if (r < 0)
		return r;
	*out = v << shift;
	return *out >= DISK_MIN && *out <= DISK_MAX && *out % 512 == 0 ? 0 : -ERANGE;
}

int hw_plan(const struct lab_opts *o, struct lab *l, struct kerr *e)
{
	uint64_t count = 0, size = 1ULL << 30;
	int r = 0;

	if (o->gpus) {
		char *list = xstrdup(o->gpus), *save = NULL;
		for (char *it = strtok_r(list, ",", &save); it && r == 0;
		     it = strtok_r(NULL, ",", &save))
			r = gpus_item(l, it, e);
		free(list);
		if (r < 0)
			return r;
	}
	if (o->disks) {
		const char *x = strchr(o->disks, 'x');
		char *c = x ? xstrndup(o->disks, (size_t)(x - o->disks)) : NULL;
		r = c ? parse_u64(c, 1, DISKS_MAX, &count) : -EINVAL;
		free(c);
		if (r < 0 || size_parse(x + 1, &size) < 0)
			return kerr_set(e, -EINVAL,
					"--disks '%s': expected COUNTxSIZE, COUNT 1 to %d, SIZE 1M to 16T in whole sectors (e.g. 2x8G)",
					o->disks, DISKS_MAX);
	}
	for (size_t i = 0; i < l->nhosts; i++) {
		struct lab_host *h = &l->hosts[i];
		if (h->bastion)
			continue;   /* the bastion is not a cluster node */
		h->ndisks = (size_t)count + (o->used_disk ? 1 : 0);
		h->disks = xcalloc(h->ndisks ? h->ndisks : 1, sizeof(*h->disks));
		for (size_t k = 0; k < h->ndisks; k++) {
			struct lab_disk *d = &h->disks[k];
			snprintf(d->name, sizeof(d->name), "sd%c", (char)('a' + k));
			d->size = size;
			d->used = k == count;
			d->file = xasprintf("%s/disks/%s-%s.img", l->dir, h->name, d->name);
		}
	}
	return 0;
}

/* ---- the state file -------------------------------------------------- */

json_t *hw_host_json(const struct lab_host *h, json_t **disks)
{
	json_t *arr = json_array();

	for (size_t k = 0; k < h->ndisks; k++) {
		const struct lab_disk *d = &h->disks[k];
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:b, s:o}",
			"name", d->name, "file", d->file, "size", (json_int_t)d->size,
			"used", d->used, "loop", d->loop[0] ? json_string(d->loop) : json_null()));
	}
	*disks = arr;
	return h->gpu ? json_pack("{s:s, s:i}", "model", h->gpu->key, "count", (int)h->ngpus)
		      : json_null();
}

static int loop_devno(struct lab_disk *d, struct kerr *e);

int hw_host_load(struct lab_host *h, const json_t *gpus, const json_t *disks,
		 struct kerr *e)
{
	json_t *dj;
	size_t k;

	if (json_is_object(gpus)) {
		h->gpu = gpu_model_find(json_string_value(json_object_get(gpus, "model")) ?: "");
		h->ngpus = (unsigned)json_integer_value(json_object_get(gpus, "count"));
	}
	h->disks = xcalloc(json_array_size(disks) + 1, sizeof(*h->disks));
	json_array_foreach(disks, k, dj) {
		struct lab_disk *d = &h->disks[h->ndisks++];
		const char *name = json_string_value(json_object_get(dj, "name"));
		const char *file = json_string_value(json_object_get(dj, "file"));
		const char *loop = json_string_value(json_object_get(dj, "loop"));
		if (!name || !file || strlen(name) >= sizeof(d->name) ||
		    (loop && strlen(loop) >= sizeof(d->loop)))
			return kerr_set(e, -EINVAL, "host '%s': disk %zu is incomplete", h->name, k);
		snprintf(d->name, sizeof(d->name), "%s", name);
		snprintf(d->loop, sizeof(d->loop), "%s", loop ? loop : "");
		d->file = xstrdup(file);
		d->size = (uint64_t)json_integer_value(json_object_get(dj, "size"));
		d->used = json_is_true(json_object_get(dj, "used"));
		/* the device number is not in the state: a host started again
		 * (lab reboot) makes its disk nodes from it.  Best effort: `down`
		 * loads the state too, and must work with the loop device gone. */
		if (d->loop[0]) {
			struct kerr ignored = { 0 };
			loop_devno(d, &ignored);
		}
	}
	return 0;
}

void hw_host_release(struct lab_host *h)
{
	for (size_t k = 0; k < h->ndisks; k++)
		free(h->disks[k].file);
	free(h->disks);
	h->disks = NULL;
	h->ndisks = 0;
}

/* ---- loop devices ---------------------------------------------------- */

/* Read a sysfs attribute, trimmed, into a new string; NULL if absent. */
static char *sys_read(const char *path)
{
	struct buf b;

	buf_init(&b, 4096);
	if (file_read(path, &b, 4096) < 0) {
		buf_release(&b);
		return NULL;
	}
	str_trim(b.s);
	return buf_detach(&b, NULL);
}

/* d->major and d->minor of the loop device d->loop, from sysfs. */
static int loop_devno(struct lab_disk *d, struct kerr *e)
{
	char *p = xasprintf("/sys/block/%s/dev", d->loop), *mm = sys_read(p);
	unsigned ma, mi;
	int r = 0;

	if (!mm || sscanf(mm, "%u:%u", &ma, &mi) != 2)
		r = kerr_set(e, -EIO, "%s: no device number", p);
	else {
		d->major = ma;
		d->minor = mi;
	}
	free(p);
	free(mm);
	return r;
}

/* Attach file to a free loop device; fills d->loop, d->major, d->minor. */
static int loop_attach(struct lab_disk *d, struct kerr *e)
{
	int ctl = -1, fd = -1, r = 0;

	if ((ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC)) < 0)
		return kerr_set(e, -errno, "/dev/loop-control: %s", strerror(errno));
	if ((fd = open(d->file, O_RDWR | O_CLOEXEC)) < 0) {
		r = kerr_set(e, -errno, "%s: %s", d->file, strerror(errno));
		goto out;
	}
	/* Another process may take the free device first: then ask again. */
	for (int tries = 0;; tries++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = kerr_set(e, -errno, "no free loop device: %s", strerror(errno));
			goto out;
		}
		char dev[32];
		snprintf(dev, sizeof(dev), "/dev/loop%d", n);
		int lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			r = kerr_set(e, -errno, "%s: %s", dev, strerror(errno));
			goto out;
		}
		struct loop_config cfg = { .fd = (unsigned)fd };
		snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s",
			 d->file);
		int ok = ioctl(lfd, LOOP_CONFIGURE, &cfg), err = errno;
		close(lfd);
		if (ok == 0) {
			snprintf(d->loop, sizeof(d->loop), "loop%d", n);
			break;
		}
		if (err != EBUSY || tries >= 50) {
			r = kerr_set(e, -err, "attach %s to %s: %s", d->file, dev, strerror(err));
			goto out;
		}
	}
	r = loop_devno(d, e);
out:
	if (fd >= 0)
		close(fd);
	close(ctl);
	return r;
}

/*
 * Detach every loop device whose backing file is file, and wait (bounded)
 * until the kernel has let go of them: a device still open somewhere is
 * only marked for detaching at its last close.
 */
static int loop_detach_file(const char *file, struct kerr *e)
{
	int64_t deadline = now_ms() + 10000;
	int r = 0;

	for (;;) {
		DIR *dir = opendir("/sys/block");
		struct dirent *de;
		int left = 0;

		if (!dir)
			return kerr_set(e, -errno, "/sys/block: %s", strerror(errno));
		while ((de = readdir(dir))) {
			if (!str_starts(de->d_name, "loop"))
				continue;
			char *p = xasprintf("/sys/block/%s/loop/backing_file", de->d_name);
			char *bf = sys_read(p);
			free(p);
			/* A deleted file shows as "PATH (deleted)". */
			bool ours = bf && (!strcmp(bf, file) ||
					   (str_starts(bf, file) && !strcmp(bf + strlen(file), " (deleted)")));
			free(bf);
			if (!ours)
				continue;
			left++;
			char *dev = xasprintf("/dev/%s", de->d_name);
			int fd = open(dev, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				if (ioctl(fd, LOOP_CLR_FD) < 0 && errno != ENXIO && !r)
					r = kerr_set(e, -errno, "detach %s: %s", dev, strerror(errno));
				close(fd);
			}
			free(dev);
		}
		closedir(dir);
		if (!left || r < 0)
			return r;
		if (now_ms() > deadline)
			return kerr_set(e, -EBUSY, "%s: its loop device stays attached", file);
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Make a sparse file of the disk's size; the used disk gets ext4 with a file. */
static int disk_file_make(const struct lab *l, const struct lab_disk *d, struct kerr *e)
{
	int fd = open(d->file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r = 0;

	if (fd < 0)
		return kerr_set(e, -errno, "%s: %s", d->file, strerror(errno));
	if (ftruncate(fd, (off_t)d->size) < 0)
		r = kerr_set(e, -errno, "%s: size %llu: %s", d->file,
			     (unsigned long long)d->size, strerror(errno));
	close(fd);
	if (r < 0 || !d->used)
		return r;
	/* A small fixed inode count and no lazy init: quick, and quiet once mounted. */
	char *seed = xasprintf("%s/seed", l->rt);
	char *argv[] = { "mkfs.ext4", "-q", "-F", "-m", "0", "-N", "1024", "-L", "kiln-data",
			 "-E", "lazy_itable_init=0,lazy_journal_init=1,nodiscard",
			 "-d", seed, d->file, NULL };
	if ((r = run_ok(argv, &(struct run_opts){ .timeout_ms = 60000 }, e)) < 0)
		kerr_prefix(e, "%s", d->file);
	free(seed);
	return r;
}

int hw_disks_make(struct lab *l, struct kerr *e)
{
	bool any = false, used = false;
	int r;

	for (size_t i = 0; i < l->nhosts; i++)
		for (size_t k = 0; k < l->hosts[i].ndisks; k++) {
			any = true;
			used |= l->hosts[i].disks[k].used;
		}
	if (!any)
		return 0;
	char *dir = xasprintf("%s/disks", l->dir);
	r = mkdir_p(dir, 0700);
	if (r < 0)
		kerr_set(e, r, "mkdir %s: %s", dir, strerror(-r));
	free(dir);
	if (r < 0)
		return r;
	if (used) {
		char *seed = xasprintf("%s/seed", l->rt), *readme = xasprintf("%s/README", seed);
		if ((r = mkdir_p(seed, 0755)) < 0)
			kerr_set(e, r, "mkdir %s: %s", seed, strerror(-r));
		else if ((r = file_write_atomic(readme, "kiln lab: data on a used disk\n", 30,
						0644, -1, -1)) < 0)
			kerr_set(e, r, "write %s: %s", readme, strerror(-r));
		free(seed);
		free(readme);
		if (r < 0)
			return r;
	}
	/* The state file already names every file: `down` finds them by name. */
	for (size_t i = 0; i < l->nhosts; i++)
		for (size_t k = 0; k < l->hosts[i].ndisks; k++) {
			struct lab_disk *d = &l->hosts[i].disks[k];
			if ((r = disk_file_make(l, d, e)) < 0 || (r = loop_attach(d, e)) < 0)
				return r;
		}
	return 0;
}

int hw_teardown(const struct lab *l, struct kerr *e)
{
	int r = 0, q;

	for (size_t i = 0; i < l->nhosts; i++)
		for (size_t k = 0; k < l->hosts[i].ndisks; k++) {
			const char *file = l->hosts[i].disks[k].file;
			struct kerr tmp;
			if ((q = loop_detach_file(file, &tmp)) < 0 && !r) {
				r = q;
				if (e)
					*e = tmp;
			}
			if (unlink(file) < 0 && errno != ENOENT && !r)
				r = kerr_set(e, -errno, "remove %s: %s", file, strerror(errno));
		}
	char *dir = xasprintf("%s/disks", l->dir);
	rmdir(dir);   /* only when empty: other files there are the user's */
	free(dir);
	return r;
}

/* ---- the host's views ------------------------------------------------ */

static int write_attr(const char *dir, const char *name, const char *fmt, unsigned v,
		      struct kerr *e)
{
	char *p = xasprintf("%s/%s", dir, name), *text = xasprintf(fmt, v);
	int r = file_write_atomic(p, text, strlen(text), 0444, -1, -1);

	if (r < 0)
		kerr_set(e, r, "write %s: %s", p, strerror(-r));
	free(p);
	free(text);
	return r;
}

/* Is the machine's PCI function a display controller (class 0x03xxxx)? */
static bool machine_display(const char *slot)
{
	char *p = xasprintf("%s/%s/class", PCI_DEVICES, slot), *c = sys_read(p);
	bool r = c && str_starts(c, "0x03");

	free(p);
	free(c);
	return r;
}

/*
 * h->rt/hw/pci: the machine's PCI functions (the same relative symlinks as
 * in /sys/bus/pci/devices) except its display controllers, and a directory
 * per lab GPU with vendor, device, class, subsystem ids and numa_node.
 */
static int pci_tree(const struct lab_host *h, struct kerr *e)
{
	char *root = xasprintf("%s/hw/pci", h->rt), *numa = NULL;
	struct strv used = STRV_INIT;
	DIR *dir = NULL;
	struct dirent *de;
	int r;

	if ((r = mkdir_p(root, 0755)) < 0) {
		kerr_set(e, r, "mkdir %s: %s", root, strerror(-r));
		goto out;
	}
	if (!(dir = opendir(PCI_DEVICES)))
		goto gpus;   /* no PCI on this machine: only the lab's GPUs */
	while ((de = readdir(dir))) {
		char target[4096];
		if (de->d_name[0] == '.')
			continue;
		char *src = xasprintf("%s/%s", PCI_DEVICES, de->d_name);
		ssize_t n = readlink(src, target, sizeof(target) - 1);
		if (!numa) {
			char *p = xasprintf("%s/numa_node", src);
			numa = sys_read(p);
			free(p);
		}
		free(src);
		strv_push(&used, de->d_name);
		if (n < 0 || machine_display(de->d_name))
			continue;
		target[n] = '\0';
		char *dst = xasprintf("%s/%s", root, de->d_name);
		if (symlink(target, dst) < 0)
			r = kerr_set(e, -errno, "symlink %s: %s", dst, strerror(errno));
		free(dst);
		if (r < 0)
			goto out;
	}
gpus:
	for (unsigned i = 0, bus = 0x07; i < h->ngpus; i++, bus += 0x0d) {
		char slot[16];
		/* A bus where the machine has nothing, so slots stay unique. */
		for (;; bus++) {
			snprintf(slot, sizeof(slot), "0000:%02x:00.0", bus & 0xff);
			if (!strv_contains(&used, slot))
				break;
		}
		strv_push(&used, slot);
		char *d = xasprintf("%s/%s", root, slot);
		const struct lab_gpu_model *m = h->gpu;
		if (mkdir(d, 0755) < 0)
			r = kerr_set(e, -errno, "mkdir %s: %s", d, strerror(errno));
		if (r == 0)
			r = write_attr(d, "vendor", "0x%04x\n", LAB_GPU_VENDOR, e);
		if (r == 0)
			r = write_attr(d, "device", "0x%04x\n", m->device, e);
		if (r == 0)
			r = write_attr(d, "class", "0x%06x\n", m->class_code, e);
		if (r == 0 && m->subsys_vendor)
			r = write_attr(d, "subsystem_vendor", "0x%04x\n", m->subsys_vendor, e);
		if (r == 0 && m->subsys_vendor)
			r = write_attr(d, "subsystem_device", "0x%04x\n", m->subsys_device, e);
		if (r == 0) {
			char *p = xasprintf("%s/numa_node", d), *t = xasprintf("%s\n", numa ? numa : "-1");
			if ((r = file_write_atomic(p, t, strlen(t), 0444, -1, -1)) < 0)
				kerr_set(e, r, "write %s: %s", p, strerror(-r));
			free(p);
			free(t);
		}
		free(d);
		if (r < 0)
			goto out;
	}
out:
	if (dir)
		closedir(dir);
	strv_release(&used);
	free(numa);
	free(root);
	return r;
}

/* h->rt/hw/block: the host's own disks, each a link to its loop device. */
static int block_tree(const struct lab_host *h, struct kerr *e)
{
	char *root = xasprintf("%s/hw/block", h->rt);
	int r;

	if ((r = mkdir_p(root, 0755)) < 0)
		kerr_set(e, r, "mkdir %s: %s", root, strerror(-r));
	for (size_t k = 0; r == 0 && k < h->ndisks; k++) {
		char *dst = xasprintf("%s/%s", root, h->disks[k].name);
		char *target = xasprintf("../devices/virtual/block/%s", h->disks[k].loop);
		if (symlink(target, dst) < 0)
			r = kerr_set(e, -errno, "symlink %s: %s", dst, strerror(errno));
		free(dst);
		free(target);
	}
	free(root);
	return r;
}

int hw_host_prepare(const struct lab_host *h, struct kerr *e)
{
	int r = pci_tree(h, e);

	if (r == 0)
		r = block_tree(h, e);
	if (r < 0)
		kerr_prefix(e, "host '%s'", h->name);
	return r;
}

/* ---- inside the host's init (after fork: no allocation) -------------- */

/* Describe a failed step into why (errno kept) and return -errno. */
static int PRINTF(3, 4) why_fail(char *why, size_t n, const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -err;
}

/* A device node at newroot/dev/name, with mode exactly perm. */
static int dev_node(const char *newroot, const char *name, mode_t type, unsigned ma,
		    unsigned mi, mode_t perm, char *why, size_t n)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/dev/%s", newroot, name);
	if (mknod(p, type | perm, makedev(ma, mi)) < 0 || chmod(p, perm) < 0)
		return why_fail(why, n, "mknod %s", p);
	return 0;
}

/* Bind the machine's /dev/name into newroot's /dev when the machine has it. */
static int dev_bind(const char *newroot, const char *name, char *why, size_t n)
{
	char src[256], p[4096];
	struct stat st;

	snprintf(src, sizeof(src), "/dev/%s", name);
	if (stat(src, &st) < 0 || !S_ISCHR(st.st_mode))
		return 0;
	snprintf(p, sizeof(p), "%s/dev/%s", newroot, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return why_fail(why, n, "create %s", p);
	close(fd);
	if (mount(src, p, NULL, MS_BIND, NULL) < 0)
		return why_fail(why, n, "bind mount %s", src);
	return 0;
}

int hw_init_dev(const struct lab_host *h, const char *newroot, char *why, size_t n)
{
	static const struct { const char *name; unsigned ma, mi; } std[] = {
		{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
		{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
	};
	static const struct { const char *name, *target; } links[] = {
		{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
		{ "ptmx", "pts/ptmx" },
	};
	char p[4096], name[32];
	int r;

	snprintf(p, sizeof(p), "%s/dev", newroot);
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return why_fail(why, n, "mkdir %s", p);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m") < 0)
		return why_fail(why, n, "tmpfs on %s", p);
	for (size_t i = 0; i < ARRAY_SIZE(std); i++)
		if ((r = dev_node(newroot, std[i].name, S_IFCHR, std[i].ma, std[i].mi, 0666,
				  why, n)) < 0)
			return r;
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		snprintf(p, sizeof(p), "%s/dev/%s", newroot, links[i].name);
		if (symlink(links[i].target, p) < 0)
			return why_fail(why, n, "symlink %s", p);
	}
	snprintf(p, sizeof(p), "%s/dev/net", newroot);
	if (mkdir(p, 0755) < 0)
		return why_fail(why, n, "mkdir %s", p);
	if ((r = dev_bind(newroot, "net/tun", why, n)) < 0 ||
	    (r = dev_bind(newroot, "kvm", why, n)) < 0 ||
	    (r = dev_bind(newroot, "fuse", why, n)) < 0)
		return r;
	/* What the NVIDIA driver makes: one node per GPU and the control node. */
	for (unsigned i = 0; i < h->ngpus; i++) {
		snprintf(name, sizeof(name), "nvidia%u", i);
		if ((r = dev_node(newroot, name, S_IFCHR, NVIDIA_MAJOR, i, 0666, why, n)) < 0)
			return r;
	}
	if (h->ngpus &&
	    (r = dev_node(newroot, "nvidiactl", S_IFCHR, NVIDIA_MAJOR, NVIDIACTL_MINOR, 0666,
			  why, n)) < 0)
		return r;
	for (size_t k = 0; k < h->ndisks; k++)
		if ((r = dev_node(newroot, h->disks[k].name, S_IFBLK, h->disks[k].major,
				  h->disks[k].minor, 0660, why, n)) < 0)
			return r;
	return 0;
}

/* Bind src over newroot/sub, read-only. */
static int bind_ro(const char *src, const char *newroot, const char *sub, char *why, size_t n)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", newroot, sub);
	if (mount(src, p, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		return why_fail(why, n, "bind mount %s on /%s", src, sub);
	return 0;
}

int hw_init_sys(const struct lab_host *h, const char *newroot, char *why, size_t n)
{
	char src[4096], p[4096];
	int r;

	snprintf(p, sizeof(p), "%s/%s", newroot, PCI_DEVICES_REL);
	snprintf(src, sizeof(src), "%s/hw/pci", h->rt);
	if ((h->ngpus || access(p, F_OK) == 0) &&
	    (r = bind_ro(src, newroot, PCI_DEVICES_REL, why, n)) < 0)
		return r;
	snprintf(src, sizeof(src), "%s/hw/block", h->rt);
	if ((r = bind_ro(src, newroot, "sys/block", why, n)) < 0)
		return r;
	/* The used disk's mount point, in the host's own /srv. */
	for (size_t k = 0; k < h->ndisks; k++) {
		if (!h->disks[k].used)
			continue;
		snprintf(p, sizeof(p), "%s%s", newroot, USED_DISK_MOUNT);
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return why_fail(why, n, "mkdir %s", p);
	}
	return 0;
}

int hw_init_mounts(const struct lab_host *h, char *why, size_t n)
{
	char dev[64];

	for (size_t k = 0; k < h->ndisks; k++) {
		if (!h->disks[k].used)
			continue;
		snprintf(dev, sizeof(dev), "/dev/%s", h->disks[k].name);
		if (mount(dev, USED_DISK_MOUNT, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
			return why_fail(why, n, "mount %s on %s", dev, USED_DISK_MOUNT);
	}
	return 0;
}
