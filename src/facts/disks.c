/*
 * Block devices from /sys/block, and whether each is in use.  The point is
 * to tell a storage stack (Ceph) which disks are free to take: a disk is in
 * use when it or one of its partitions is mounted or used as swap, when it
 * has partitions at all, or when LVM, device-mapper or md holds it or one of
 * its partitions.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mnt {
	char *dev;      /* kernel name of the source device ("sda1"), or NULL */
	char *majmin;   /* "8:1" from mountinfo, or NULL */
	char *target;
};

struct mnts {
	struct mnt *v;
	size_t n, alloc;
};

/*
 * The kernel name of the block device a /dev path names: symlinks such as
 * /dev/disk/by-uuid/... or /dev/mapper/vg-lv are resolved under the root.
 */
static char *dev_name(const struct fx *x, const char *src)
{
	char *full, real[PATH_MAX];
	const char *base;

	if (!str_starts(src, "/dev/"))
		return NULL;
	full = path_join(x->root, src);
	base = realpath(full, real) ? real : src;
	free(full);
	const char *slash = strrchr(base, '/');
	return xstrdup(slash ? slash + 1 : base);
}

static void mnt_add(struct mnts *m, char *dev, const char *majmin, const char *target)
{
	m->v = xgrow(m->v, m->n + 1, &m->alloc, sizeof(*m->v));
	m->v[m->n].dev = dev;
	m->v[m->n].majmin = majmin && !str_starts(majmin, "0:") ? xstrdup(majmin) : NULL;
	m->v[m->n++].target = xstrdup(target);
}

/*
 * Mounted filesystems: /proc/self/mountinfo (which also gives the device
 * number, needed for "/dev/root"), else /proc/self/mounts or /proc/mounts.
 */
static void read_mounts(const struct fx *x, struct mnts *m)
{
	char *t = fx_read_cap(x, "/proc/self/mountinfo", FX_BIG_CAP);
	bool info = t != NULL;
	char *save = NULL;

	if (!t)
		t = fx_read_cap(x, "/proc/self/mounts", FX_BIG_CAP);
	if (!t)
		t = fx_read_cap(x, "/proc/mounts", FX_BIG_CAP);
	for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		char *f[12], *s2 = NULL;
		size_t nf = 0;
		for (char *w = strtok_r(l, " ", &s2); w && nf < ARRAY_SIZE(f); w = strtok_r(NULL, " ", &s2))
			f[nf++] = w;
		if (info) {
			/* id parent maj:min root mountpoint opts [optional...] - fstype source super */
			size_t dash;
			for (dash = 6; dash < nf && strcmp(f[dash], "-"); dash++)
				;
			if (nf < 5 || dash + 2 >= nf)
				continue;
			fx_unescape_octal(f[4]);
			fx_unescape_octal(f[dash + 2]);
			mnt_add(m, dev_name(x, f[dash + 2]), f[2], f[4]);
		} else {
			if (nf < 2)
				continue;
			fx_unescape_octal(f[0]);
			fx_unescape_octal(f[1]);
			mnt_add(m, dev_name(x, f[0]), NULL, f[1]);
		}
	}
	free(t);
}

static void mnts_release(struct mnts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].dev);
		free(m->v[i].majmin);
		free(m->v[i].target);
	}
	free(m->v);
}

/* Where the block device name (with device number majmin, may be NULL) is mounted, or NULL. */
static const char *mounted_at(const struct mnts *m, const char *name, const char *majmin)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].dev && !strcmp(m->v[i].dev, name))
			return m->v[i].target;
		if (majmin && m->v[i].majmin && !strcmp(m->v[i].majmin, majmin))
			return m->v[i].target;
	}
	return NULL;
}

/* True if the device is an active swap area (facts.swaps[].name). */
static bool is_swap(const struct fx *x, const json_t *swaps, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(swaps, i, s) {
		char *d = dev_name(x, json_string_value(json_object_get(s, "name")) ?: "");
		bool hit = d && !strcmp(d, name);
		free(d);
		if (hit)
			return true;
	}
	return false;
}

/* Serial number from a SCSI VPD page 0x80 (unit serial number), or NULL. */
static char *vpd80_serial(const struct fx *x, const char *disk)
{
	char *p = xasprintf("/sys/block/%s/device/vpd_pg80", disk);
	char *full = path_join(x->root, p);
	struct buf b;
	char *res = NULL;

	buf_init(&b, 0);
	if (file_read(full, &b, 4096) == 0 && b.len > 4 && (unsigned char)b.s[1] == 0x80) {
		size_t n = ((size_t)(unsigned char)b.s[2] << 8) | (unsigned char)b.s[3];
		if (n > b.len - 4)
			n = b.len - 4;
		res = xmalloc(n + 1);
		str_sanitize(res, n + 1, b.s + 4, n);
		str_trim(res);
		if (!*res) {
			free(res);
			res = NULL;
		}
	}
	buf_release(&b);
	free(full);
	free(p);
	return res;
}

/* Virtual and stacked devices are never candidates (but make their slaves in use). */
static bool skip_disk(const char *name)
{
	static const char *const skip[] = { "loop", "ram", "zram", "dm-", "md" };

	for (size_t i = 0; i < ARRAY_SIZE(skip); i++)
		if (str_starts(name, skip[i]))
			return true;
	return false;
}

static void add_reason(struct buf *why, const char *fmt, const char *a, const char *b)
{
	if (why->len)
		buf_adds(why, "; ");
	buf_printf(why, fmt, a, b);
}

/* Note the holders of /sys/block/<path>/holders (e.g. "dm-0") as reasons. */
static bool held(const struct fx *x, const char *path, const char *who, struct buf *why)
{
	struct strv h = STRV_INIT;
	char *p = xasprintf("/sys/block/%s/holders", path);
	bool any;

	fx_list(x, p, &h);
	any = h.n > 0;
	for (size_t i = 0; i < h.n; i++)
		add_reason(why, "%s held by %s", who, h.v[i]);
	strv_release(&h);
	free(p);
	return any;
}

/* Bytes at off of the device, or false when it is shorter or unreadable. */
static bool at(int fd, off_t off, void *b, size_t n)
{
	return pread(fd, b, n, off) == (ssize_t)n;
}

static bool magic_at(int fd, off_t off, const char *m, size_t n)
{
	char b[16];
	return n <= sizeof(b) && at(fd, off, b, n) && !memcmp(b, m, n);
}

/*
 * The value of key in a BlueStore label's metadata map (a 4-byte length
 * and the key, a 4-byte length and the value) into v (cap bytes, NUL
 * included), when it is 1 to cap - 1 characters of allowed; else v is "".
 */
static void label_value(const unsigned char *b, ssize_t n, const char *key, const char *allowed,
			char *v, size_t cap)
{
	size_t kl = strlen(key);

	v[0] = '\0';
	for (ssize_t i = 60; i + 8 + (ssize_t)kl <= n; i++) {
		if (b[i] != kl || b[i + 1] || b[i + 2] || b[i + 3] || memcmp(b + i + 4, key, kl))
			continue;
		const unsigned char *l = b + i + 4 + kl, *x = l + 4;
		size_t vl = l[0] | (size_t)l[1] << 8;
		if (l[2] || l[3] || !vl || vl >= cap || x + vl > b + n)
			return;
		for (size_t k = 0; k < vl; k++)
			if (!x[k] || !strchr(allowed, x[k]))
				return;
		memcpy(v, x, vl);
		v[vl] = '\0';
		return;
	}
}

/*
 * The fsid a BlueStore label names ("ceph_fsid", 36 characters) and the
 * OSD it holds ("whoami", the id as digits); the rest of the label (the
 * OSD's own key among it) is never copied.
 */
static void bluestore_label(int fd, char fsid[37], char whoami[12])
{
	unsigned char b[4096];
	ssize_t n = pread(fd, b, sizeof(b), 0);
	char f[40];

	label_value(b, n, "ceph_fsid", "0123456789abcdef-", f, sizeof(f));
	fsid[0] = '\0';
	if (strlen(f) == 36)
		memcpy(fsid, f, 37);
	label_value(b, n, "whoami", "0123456789", whoami, 12);
}

/*
 * What the first bytes of the device say it holds, as blkid would name it
 * ("bluestore", "gpt", "dos", "LVM2_member", "linux_raid_member", "ext4",
 * "xfs", "btrfs", "swap", "crypto_LUKS"), or NULL: nothing known, or the
 * device cannot be read.  Checked in that order; ceph-volume refuses a disk
 * with any of them (an own BlueStore label aside).
 */
static const char *signature(int fd, char fsid[37], char whoami[12])
{
	unsigned char b[4];

	fsid[0] = whoami[0] = '\0';
	if (magic_at(fd, 0, "bluestore block ", 16)) {
		bluestore_label(fd, fsid, whoami);
		return "bluestore";
	}
	if (magic_at(fd, 512, "EFI PART", 8))
		return "gpt";
	if (magic_at(fd, 512, "LABELONE", 8) || magic_at(fd, 536, "LVM2 001", 8))
		return "LVM2_member";
	if (at(fd, 4096, b, 4) && b[0] == 0xfc && b[1] == 0x4e && b[2] == 0x2b && b[3] == 0xa9)
		return "linux_raid_member";
	if (at(fd, 0, b, 4) && b[0] == 0xfc && b[1] == 0x4e && b[2] == 0x2b && b[3] == 0xa9)
		return "linux_raid_member";
	if (magic_at(fd, 0, "LUKS\xba\xbe", 6))
		return "crypto_LUKS";
	if (magic_at(fd, 0, "XFSB", 4))
		return "xfs";
	if (at(fd, 1080, b, 2) && b[0] == 0x53 && b[1] == 0xef)
		return "ext4";
	if (magic_at(fd, 65536 + 64, "_BHRfS_M", 8))
		return "btrfs";
	if (magic_at(fd, 4096 - 10, "SWAPSPACE2", 10) || magic_at(fd, 4096 - 10, "SWAP-SPACE", 10))
		return "swap";
	if (at(fd, 510, b, 2) && b[0] == 0x55 && b[1] == 0xaa)
		return "dos";
	return NULL;
}

/* facts.disks[].signature, .bluestore_fsid and .bluestore_osd, read from ROOT/dev/NAME. */
static void disk_signature(const struct fx *x, const char *name, json_t *o)
{
	char *p = xasprintf("/dev/%s", name), *full = path_join(x->root, p);
	int fd = open(full, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	const char *sig = NULL;
	char fsid[37] = "", whoami[12] = "";

	if (fd >= 0) {
		sig = signature(fd, fsid, whoami);
		close(fd);
	}
	json_object_set_new(o, "signature", sig ? json_string(sig) : json_null());
	if (sig && !strcmp(sig, "bluestore")) {
		json_object_set_new(o, "bluestore_fsid", fsid[0] ? json_string(fsid) : json_null());
		json_object_set_new(o, "bluestore_osd", whoami[0] && strlen(whoami) <= 9
				    ? json_integer(strtoll(whoami, NULL, 10)) : json_null());
	}
	free(full);
	free(p);
}

/* One facts.disks[] entry: identity, partitions, and why it is in use, if it is. */
static json_t *disk_entry(const struct fx *x, const char *name, const struct mnts *m,
			  const json_t *swaps)
{
	json_t *o = json_object(), *parts = json_array();
	struct strv sub = STRV_INIT;
	struct buf why;
	int64_t v;
	char *s, *p;
	const char *at;

	buf_init(&why, 0);
	json_object_set_new(o, "name", json_string(name));
	p = xasprintf("/sys/block/%s/size", name);
	json_object_set_new(o, "size_bytes",
			    fx_read_i64(x, p, &v) == 0 && v >= 0 && v <= INT64_MAX / 512
			    ? json_integer(v * 512) : json_null());
	free(p);
	s = fx_readf(x, "/sys/block/%s/queue/rotational", name);
	json_object_set_new(o, "rotational", s ? json_boolean(!strcmp(s, "1")) : json_null());
	free(s);
	json_object_set_new(o, "model", fx_jstr_take(fx_readf(x, "/sys/block/%s/device/model", name)));
	json_object_set_new(o, "vendor", fx_jstr_take(fx_readf(x, "/sys/block/%s/device/vendor", name)));
	if (!(s = fx_readf(x, "/sys/block/%s/device/serial", name)) &&
	    !(s = fx_readf(x, "/sys/block/%s/serial", name)))
		s = vpd80_serial(x, name);
	json_object_set_new(o, "serial", fx_jstr_take(s));
	s = fx_readf(x, "/sys/block/%s/removable", name);
	json_object_set_new(o, "removable", s ? json_boolean(!strcmp(s, "1")) : json_null());
	free(s);
	s = fx_readf(x, "/sys/block/%s/ro", name);
	json_object_set_new(o, "read_only", s ? json_boolean(!strcmp(s, "1")) : json_null());
	free(s);
	disk_signature(x, name, o);

	char *majmin = fx_readf(x, "/sys/block/%s/dev", name);
	if ((at = mounted_at(m, name, majmin)))
		add_reason(&why, "mounted at %s%s", at, "");
	free(majmin);
	if (is_swap(x, swaps, name))
		add_reason(&why, "swap%s%s", "", "");
	held(x, name, "disk", &why);

	/* Partitions are the subdirectories that have a "partition" attribute. */
	p = xasprintf("/sys/block/%s", name);
	fx_list(x, p, &sub);
	free(p);
	for (size_t i = 0; i < sub.n; i++) {
		const char *pn = sub.v[i];
		p = xasprintf("/sys/block/%s/%s/partition", name, pn);
		bool is_part = fx_exists(x, p);
		free(p);
		if (!is_part)
			continue;
		json_array_append_new(parts, json_string(pn));
		majmin = fx_readf(x, "/sys/block/%s/%s/dev", name, pn);
		if ((at = mounted_at(m, pn, majmin)))
			add_reason(&why, "%s mounted at %s", pn, at);
		free(majmin);
		if (is_swap(x, swaps, pn))
			add_reason(&why, "%s is swap%s", pn, "");
		p = xasprintf("%s/%s", name, pn);
		held(x, p, pn, &why);
		free(p);
	}
	if (json_array_size(parts))
		add_reason(&why, "has partitions%s%s", "", "");
	json_object_set_new(o, "partitions", parts);
	json_object_set_new(o, "in_use", json_boolean(why.len > 0));
	json_object_set_new(o, "in_use_reason", why.len ? fx_jstr(why.s) : json_null());
	buf_release(&why);
	strv_release(&sub);
	return o;
}

/* facts.disks[]: the candidate disks of /sys/block, in name order. */
void fx_collect_disks(const struct fx *x, json_t *facts)
{
	struct strv names = STRV_INIT;
	struct mnts m = { 0 };
	json_t *arr = json_array();
	const json_t *swaps = json_object_get(facts, "swaps");

	read_mounts(x, &m);
	fx_list(x, "/sys/block", &names);
	for (size_t i = 0; i < names.n; i++)
		if (!skip_disk(names.v[i]))
			json_array_append_new(arr, disk_entry(x, names.v[i], &m, swaps));
	json_object_set_new(facts, "disks", arr);
	mnts_release(&m);
	strv_release(&names);
}
