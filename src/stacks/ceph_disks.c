/* Which disks become OSDs, and why the others do not (ceph.h). */
#include "ceph.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ceph_size_text(uint64_t b, char *buf, size_t n)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)b;
	size_t i = 0;

	while (v >= 1024 && i + 1 < ARRAY_SIZE(u)) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, n, "%.1f %s", v, u[i]);
	return buf;
}

bool ceph_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	int shift = 0;

	if (!*s || !strchr("0123456789.", *s))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return false;
	switch (*end) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	case 'P': shift = 50; end++; break;
	default: break;
	}
	if (shift && !strcmp(end, "iB"))
		end += 2;
	else if (!strcmp(end, "B"))
		end++;
	if (*end)
		return false;
	v *= (double)(1ull << shift);
	if (v >= 18446744073709551615.0)
		return false;
	*out = (uint64_t)v;
	return true;
}

bool ceph_parse_size_range(const char *s, struct ceph_osd_filter *f)
{
	const char *colon = strchr(s, ':');
	uint64_t a = 0, b = 0;

	if (!colon) {
		if (!ceph_parse_size(s, &a) || !a)
			return false;
		f->size_min = f->size_max = a;
		return true;
	}
	char *lo = xstrdup(s);
	lo[colon - s] = '\0';
	const char *hi = colon + 1;
	bool ok = (*lo || *hi) && (!*lo || ceph_parse_size(lo, &a)) &&
		  (!*hi || ceph_parse_size(hi, &b)) && (!*hi || b > 0) && (!*hi || !*lo || a <= b);
	free(lo);
	if (ok) {
		f->size_min = a;
		f->size_max = b;
	}
	return ok;
}

static void why(struct buf *w, const char *fmt, ...) PRINTF(2, 3);
static void why(struct buf *w, const char *fmt, ...)
{
	va_list ap;
	char tmp[512];

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (w->len)
		buf_adds(w, "; ");
	buf_adds(w, tmp);
}

/* A facts string for reasons: at most 64 printable characters (a node sent it). */
static void shown(const char *s, char out[80])
{
	size_t k = 0;

	for (; s && *s && k < 64; s++)
		out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	out[k] = '\0';
}

/* What the signature means, for a reason; NULL for this cluster's BlueStore. */
static void signature_reason(const json_t *d, const char *fsid, struct buf *w, bool *ours)
{
	const char *sig = json_string_value(json_object_get(d, "signature"));
	const char *bfs = json_string_value(json_object_get(d, "bluestore_fsid"));
	char t[80];

	*ours = false;
	if (!sig)
		return;
	if (!strcmp(sig, "bluestore")) {
		if (fsid && bfs && !strcmp(fsid, bfs)) {
			*ours = true;
			return;
		}
		shown(bfs ? bfs : "unknown", t);
		why(w, "BlueStore label of another cluster (fsid %s)", t);
	} else if (!strcmp(sig, "gpt") || !strcmp(sig, "dos")) {
		why(w, "has a %s partition table", !strcmp(sig, "gpt") ? "GPT" : "DOS");
	} else if (!strcmp(sig, "LVM2_member")) {
		why(w, "LVM physical volume");
	} else if (!strcmp(sig, "linux_raid_member")) {
		why(w, "RAID member");
	} else if (!strcmp(sig, "crypto_LUKS")) {
		why(w, "LUKS volume");
	} else {
		shown(sig, t);
		why(w, "has a %s filesystem", t);
	}
}

static bool prefix_ok(const char *want, const char *have)
{
	return !want || (have && !strncmp(have, want, strlen(want)));
}

void ceph_select_disks(const struct ceph_osd_filter *f, const json_t *disks, const char *fsid,
		       size_t gone, struct ceph_disks *out)
{
	size_t n = json_array_size(disks);
	bool *used_path = xcalloc(f->paths.n + 1, sizeof(bool));
	struct buf w;

	memset(out, 0, sizeof(*out));
	out->v = xcalloc(n + 1, sizeof(*out->v));
	buf_init(&w, 0);
	for (size_t i = 0; i < n; i++) {
		const json_t *d = json_array_get(disks, i);
		const char *name = json_string_value(json_object_get(d, "name"));
		const json_t *sz = json_object_get(d, "size_bytes");
		struct ceph_disk_choice *c;
		char t[80], s1[32], s2[32];
		bool ours = false;

		if (!name)
			continue;
		c = &out->v[out->n++];
		shown(name, t);
		c->name = xstrdup(t);
		c->size = json_is_integer(sz) && json_integer_value(sz) > 0
			  ? (uint64_t)json_integer_value(sz) : 0;
		buf_reset(&w);
		/* the name goes into commands on the node: a kernel name only */
		if (!*name || strlen(name) > 32 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789")
		    != strlen(name))
			why(&w, "not a plain device name");
		/* ceph-volume's availability rules */
		if (json_is_true(json_object_get(d, "removable")))
			why(&w, "removable");
		if (json_is_true(json_object_get(d, "read_only")))
			why(&w, "read-only");
		if (!c->size)
			why(&w, "size unknown");
		else if (c->size < CEPH_MIN_DISK)
			why(&w, "smaller than 5 GiB (%s)", ceph_size_text(c->size, s1, sizeof(s1)));
		if (json_is_true(json_object_get(d, "in_use"))) {
			const char *r = json_string_value(json_object_get(d, "in_use_reason"));
			char rt[80];
			shown(r ? r : "in use", rt);
			why(&w, "%s", rt);
		}
		signature_reason(d, fsid, &w, &ours);
		c->ours = ours;
		/* the spec's filters */
		if (f->paths.n) {
			bool hit = false;
			for (size_t k = 0; k < f->paths.n; k++)
				if (!strcmp(f->paths.v[k] + 5, name)) {
					hit = used_path[k] = true;
				}
			if (!hit)
				why(&w, "not in osds.paths");
		}
		const json_t *rot = json_object_get(d, "rotational");
		if (f->rotational >= 0 && (!json_is_boolean(rot) ||
					   json_is_true(rot) != (f->rotational == 1)))
			why(&w, "%s (osds.rotational: %s)",
			    !json_is_boolean(rot) ? "rotational unknown"
			    : json_is_true(rot) ? "rotational" : "not rotational",
			    f->rotational ? "true" : "false");
		if (c->size && ((f->size_min && c->size < f->size_min) ||
				(f->size_max && c->size > f->size_max)))
			why(&w, "size %s outside osds.size %s",
			    ceph_size_text(c->size, s2, sizeof(s2)), f->size_text);
		const char *model = json_string_value(json_object_get(d, "model"));
		if (!prefix_ok(f->model, model)) {
			shown(model ? model : "unknown", t);
			why(&w, "model '%s' does not start with '%s'", t, f->model);
		}
		const char *vendor = json_string_value(json_object_get(d, "vendor"));
		if (!prefix_ok(f->vendor, vendor)) {
			shown(vendor ? vendor : "unknown", t);
			why(&w, "vendor '%s' does not start with '%s'", t, f->vendor);
		}
		if (!w.len && f->limit && out->nosd + gone >= (size_t)f->limit) {
			if (gone)
				why(&w, "over osds.limit %d (with %zu OSD%s whose disk is gone)",
				    f->limit, gone, gone == 1 ? "" : "s");
			else
				why(&w, "over osds.limit %d", f->limit);
		}
		if (w.len) {
			c->reason = xstrdup(w.s);
		} else {
			c->osd = true;
			out->nosd++;
		}
	}
	for (size_t k = 0; k < f->paths.n; k++)
		if (!used_path[k])
			strv_push(&out->missing, f->paths.v[k]);
	buf_release(&w);
	free(used_path);
}

/* ---- the record of OSDs per disk ------------------------------------------ */

struct osd_rec {
	long id;
	char name[33];
};

static int rec_by_id(const void *a, const void *b)
{
	const struct osd_rec *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static bool plain_name(const char *s)
{
	size_t n = strlen(s);
	return n && n <= 32 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") == n;
}

/* The disk named name in disks, or NULL. */
static const json_t *disk_named(const json_t *disks, const char *name)
{
	size_t i;
	const json_t *d;

	json_array_foreach(disks, i, d) {
		const char *s = json_string_value(json_object_get(d, "name"));
		if (s && !strcmp(s, name))
			return d;
	}
	return NULL;
}

/* The id of this cluster's OSD on disk d, or -1. */
static long our_osd(const json_t *d, const char *fsid)
{
	const char *sig = json_string_value(json_object_get(d, "signature"));
	const char *bfs = json_string_value(json_object_get(d, "bluestore_fsid"));
	const json_t *id = json_object_get(d, "bluestore_osd");

	if (!sig || strcmp(sig, "bluestore") || !fsid || !bfs || strcmp(bfs, fsid) ||
	    !json_is_integer(id) || json_integer_value(id) < 0 ||
	    json_integer_value(id) > 999999999)
		return -1;
	return (long)json_integer_value(id);
}

static bool has_id(const struct osd_rec *v, size_t n, long id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return true;
	return false;
}

char *ceph_osd_record(const char *rec, const json_t *disks, const char *fsid, struct strv *gone)
{
	size_t cap = json_array_size(disks) + 1, n = 0;
	struct osd_rec *v;
	struct buf b;
	size_t i;
	const json_t *d;

	/* what facts show now */
	v = xcalloc(cap, sizeof(*v));
	json_array_foreach(disks, i, d) {
		const char *name = json_string_value(json_object_get(d, "name"));
		long id = our_osd(d, fsid);
		if (id < 0 || !name || !plain_name(name) || has_id(v, n, id))
			continue;
		v[n].id = id;
		snprintf(v[n].name, sizeof(v[n].name), "%s", name);
		n++;
	}
	/* what was recorded: kept while its disk is gone */
	char *words = xstrdup(rec ? rec : ""), *save = NULL;
	for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		char *colon = strchr(w, ':'), *end;
		if (!colon || colon == w || colon - w > 9 || !plain_name(colon + 1))
			continue;
		*colon = '\0';
		errno = 0;
		long id = strtol(w, &end, 10);
		if (errno || *end || id < 0 || strspn(w, "0123456789") != strlen(w) ||
		    has_id(v, n, id))
			continue;
		const json_t *there = disk_named(disks, colon + 1);
		if (there && our_osd(there, fsid) < 0)
			continue;   /* a new disk in its place */
		if (n == cap)
			v = xrealloc(v, (cap *= 2) * sizeof(*v));
		v[n].id = id;
		snprintf(v[n].name, sizeof(v[n].name), "%s", colon + 1);
		strv_pushf(gone, "osd.%ld on /dev/%s", id, colon + 1);
		n++;
	}
	free(words);
	qsort(v, n, sizeof(*v), rec_by_id);
	buf_init(&b, 0);
	for (i = 0; i < n; i++)
		buf_printf(&b, "%s%ld:%s", i ? " " : "", v[i].id, v[i].name);
	free(v);
	char *out = xstrdup(b.s);
	buf_release(&b);
	return out;
}

void ceph_disks_release(struct ceph_disks *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].name);
		free(d->v[i].reason);
	}
	free(d->v);
	strv_release(&d->missing);
	memset(d, 0, sizeof(*d));
}
