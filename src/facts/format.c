/* Human-readable renderings of facts: one node's summary, many nodes' table. */
#include "facts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers --------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool jint(const json_t *o, const char *key, int64_t *v)
{
	const json_t *j = json_object_get(o, key);

	if (!json_is_integer(j))
		return false;
	*v = json_integer_value(j);
	return true;
}

/* "1.5 TiB", "512 GiB", "900 B": binary units, one decimal below 100. */
static char *fmt_bytes(int64_t n)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 0)
		return xstrdup("?");
	while (v >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	if (u == 0 || v >= 100 || v == (double)(int64_t)v)
		return xasprintf("%.0f %s", v, unit[u]);
	return xasprintf("%.1f %s", v, unit[u]);
}

static char *fmt_bytes_key(const json_t *o, const char *key)
{
	int64_t v;

	return jint(o, key, &v) ? fmt_bytes(v) : xstrdup("-");
}

/* A simple left-aligned text table. */
struct table {
	struct strv cells;
	size_t ncols;
};

/* Add one row of t->ncols strings (NULL or "" shows as "-"). */
static void table_row(struct table *t, ...)
{
	va_list ap;

	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++) {
		const char *c = va_arg(ap, const char *);
		strv_push(&t->cells, c && *c ? c : "-");
	}
	va_end(ap);
}

/* Append the rows with columns padded to their widest cell; releases t. */
static int table_render(struct table *t, struct buf *out, const char *indent)
{
	size_t *w = xcalloc(t->ncols, sizeof(*w));
	size_t rows = t->ncols ? t->cells.n / t->ncols : 0;
	int r = 0;

	for (size_t i = 0; i < t->cells.n; i++) {
		size_t l = strlen(t->cells.v[i]);
		if (l > w[i % t->ncols])
			w[i % t->ncols] = l;
	}
	for (size_t row = 0; row < rows && r == 0; row++) {
		r = buf_adds(out, indent);
		for (size_t c = 0; c < t->ncols && r == 0; c++) {
			const char *s = t->cells.v[row * t->ncols + c];
			if (c + 1 == t->ncols)
				r = buf_printf(out, "%s\n", s);
			else
				r = buf_printf(out, "%-*s  ", (int)w[c], s);
		}
	}
	free(w);
	strv_release(&t->cells);
	return r;
}

/* The name to show for a GPU: NVML/driver model, else libpci name, else ids. */
static char *gpu_label(const json_t *g)
{
	const char *m = jstr(g, "model");

	if (m)
		return xstrdup(m);
	const char *v = jstr(g, "vendor") ?: "GPU";
	if (!strcmp(v, "nvidia"))
		v = "NVIDIA";
	else if (!strcmp(v, "amd"))
		v = "AMD";
	if ((m = jstr(g, "device_name")))
		return xasprintf("%s %s", v, m);
	return xasprintf("%s %s:%s", v, jstr(g, "vendor_id") ?: "?", jstr(g, "device_id") ?: "?");
}

/* "4x NVIDIA A100-SXM4-80GB, 1x AMD Instinct MI210" (first-seen order). */
static char *gpu_summary(const json_t *facts)
{
	struct strv labels = STRV_INIT;
	size_t *count = NULL, alloc = 0;
	struct buf b;
	json_t *g;
	size_t i;

	json_array_foreach(json_object_get(facts, "gpus"), i, g) {
		char *l = gpu_label(g);
		size_t k;
		for (k = 0; k < labels.n && strcmp(labels.v[k], l); k++)
			;
		if (k == labels.n) {
			count = xgrow(count, labels.n + 1, &alloc, sizeof(*count));
			count[k] = 0;
			strv_take(&labels, l);
		} else {
			free(l);
		}
		count[k]++;
	}
	buf_init(&b, 0);
	for (size_t k = 0; k < labels.n; k++)
		buf_printf(&b, "%s%zux %s", k ? ", " : "", count[k], labels.v[k]);
	free(count);
	strv_release(&labels);
	return buf_detach(&b, NULL);
}

/* "2 sockets, 64 cores, 128 threads" from facts.cpu. */
static char *cpu_counts(const json_t *cpu, bool terse)
{
	int64_t s = 0, c = 0, t = 0;
	bool hs = jint(cpu, "sockets", &s), hc = jint(cpu, "cores", &c), ht = jint(cpu, "threads", &t);

	if (!ht)
		return xstrdup("-");
	if (terse)
		return hs && hc ? xasprintf("%" PRId64 "s/%" PRId64 "c/%" PRId64 "t", s, c, t)
				: xasprintf("%" PRId64 "t", t);
	if (hs && hc)
		return xasprintf("%" PRId64 " socket%s, %" PRId64 " cores, %" PRId64 " threads",
				 s, s == 1 ? "" : "s", c, t);
	return xasprintf("%" PRId64 " threads", t);
}

/* Count and total size of the disks not in use: what a storage stack may take. */
static char *free_disks(const json_t *facts)
{
	json_t *d;
	size_t i, n = 0;
	int64_t total = 0, v;

	json_array_foreach(json_object_get(facts, "disks"), i, d) {
		if (json_is_false(json_object_get(d, "in_use"))) {
			n++;
			if (jint(d, "size_bytes", &v))
				total += v;
		}
	}
	if (!n)
		return xstrdup("none");
	char *sz = fmt_bytes(total);
	char *r = xasprintf("%zu (%s)", n, sz);
	free(sz);
	return r;
}

/* One "Label:    value" line of the summary. */
static void line(struct buf *out, const char *label, const char *fmt, ...) PRINTF(3, 4);
static void line(struct buf *out, const char *label, const char *fmt, ...)
{
	va_list ap;

	buf_printf(out, "%-10s ", label);
	va_start(ap, fmt);
	buf_vprintf(out, fmt, ap);
	va_end(ap);
	buf_addch(out, '\n');
}

/* ---- sections of the summary ----------------------------------------- */

/* Host, OS, kernel, hardware, CPU, memory, NUMA and swap lines. */
static void fmt_system(const json_t *f, struct buf *out)
{
	const json_t *os = json_object_get(f, "os"), *k = json_object_get(f, "kernel");
	const json_t *dmi = json_object_get(f, "dmi"), *cpu = json_object_get(f, "cpu");
	const char *v;

	line(out, "Host:", "%s", jstr(f, "hostname") ?: "?");
	line(out, "OS:", "%s (family %s)", jstr(os, "pretty_name") ?: jstr(os, "id") ?: "?",
	     jstr(os, "family") ?: "?");
	line(out, "Kernel:", "%s %s", jstr(k, "release") ?: "?", jstr(k, "machine") ?: "");
	if (jstr(dmi, "sys_vendor") || jstr(dmi, "product_name")) {
		struct buf h;
		buf_init(&h, 0);
		buf_printf(&h, "%s %s", jstr(dmi, "sys_vendor") ?: "", jstr(dmi, "product_name") ?: "");
		if ((v = jstr(dmi, "product_serial")))
			buf_printf(&h, ", serial %s", v);
		if ((v = jstr(dmi, "board_name")))
			buf_printf(&h, ", board %s %s", jstr(dmi, "board_vendor") ?: "", v);
		if ((v = jstr(dmi, "bios_version")))
			buf_printf(&h, ", BIOS %s", v);
		line(out, "Hardware:", "%s", h.s);
		buf_release(&h);
	}
	if ((v = jstr(f, "virtualization")) && strcmp(v, "none"))
		line(out, "Virtual:", "%s", v);
	line(out, "Init:", "%s", json_is_true(json_object_get(json_object_get(f, "init"), "systemd"))
	     ? "systemd" : "not systemd");
	char *cc = cpu_counts(cpu, false);
	line(out, "CPU:", "%s, %s", jstr(cpu, "model") ?: "unknown model", cc);
	free(cc);
	char *mem = fmt_bytes_key(json_object_get(f, "memory"), "total_bytes");
	line(out, "Memory:", "%s", mem);
	free(mem);

	json_t *n;
	size_t i;
	json_array_foreach(json_object_get(f, "numa"), i, n) {
		int64_t id = -1;
		char *m = fmt_bytes_key(n, "memory_bytes");
		jint(n, "id", &id);
		line(out, i ? "" : "NUMA:", "node%" PRId64 ": cpus %s, %s", id,
		     jstr(n, "cpus") ?: "?", m);
		free(m);
	}
	json_array_foreach(json_object_get(f, "swaps"), i, n) {
		char *m = fmt_bytes_key(n, "size_bytes");
		line(out, i ? "" : "Swap:", "%s (%s)", jstr(n, "name") ?: "?", m);
		free(m);
	}
}

/* A one-line GPU summary and a row per GPU. */
static void fmt_gpus(const json_t *f, struct buf *out)
{
	const json_t *gpus = json_object_get(f, "gpus");
	struct table t = { STRV_INIT, 7 };
	json_t *g;
	size_t i;

	if (!json_array_size(gpus)) {
		line(out, "GPUs:", "none");
		return;
	}
	char *sum = gpu_summary(f);
	line(out, "GPUs:", "%s", sum);
	free(sum);
	table_row(&t, "SLOT", "MODEL", "MEMORY", "DRIVER", "VERSION", "NUMA", "UUID");
	json_array_foreach(gpus, i, g) {
		char *label = gpu_label(g), *mem = fmt_bytes_key(g, "memory_bytes"), numa[24] = "-";
		int64_t nn;
		if (jint(g, "numa_node", &nn))
			snprintf(numa, sizeof(numa), "%" PRId64, nn);
		table_row(&t, jstr(g, "slot"), label, mem, jstr(g, "driver"),
			  jstr(g, "driver_version"), numa, jstr(g, "uuid"));
		free(label);
		free(mem);
	}
	table_render(&t, out, "  ");
}

/* Disk count, free capacity, and a row per disk with why it is in use. */
static void fmt_disks(const json_t *f, struct buf *out)
{
	const json_t *disks = json_object_get(f, "disks");
	struct table t = { STRV_INIT, 6 };
	json_t *d;
	size_t i;

	if (!json_array_size(disks)) {
		line(out, "Disks:", "none");
		return;
	}
	char *fd = free_disks(f);
	line(out, "Disks:", "%zu, free: %s", json_array_size(disks), fd);
	free(fd);
	table_row(&t, "NAME", "SIZE", "TYPE", "MODEL", "SERIAL", "STATUS");
	json_array_foreach(disks, i, d) {
		const json_t *rot = json_object_get(d, "rotational");
		char *size = fmt_bytes_key(d, "size_bytes"), *status;
		const char *type = json_is_true(rot) ? "hdd" : json_is_false(rot) ? "ssd" : "-";
		if (json_is_true(json_object_get(d, "removable")))
			type = "removable";
		if (json_is_true(json_object_get(d, "in_use")))
			status = xasprintf("in use: %s", jstr(d, "in_use_reason") ?: "?");
		else
			status = xstrdup("free");
		table_row(&t, jstr(d, "name"), size, type, jstr(d, "model"), jstr(d, "serial"), status);
		free(size);
		free(status);
	}
	table_render(&t, out, "  ");
}

/* A row per interface. */
static void fmt_nics(const json_t *f, struct buf *out)
{
	const json_t *nics = json_object_get(f, "nics");
	struct table t = { STRV_INIT, 7 };
	json_t *n, *a;
	size_t i, k;

	if (!json_array_size(nics)) {
		line(out, "NICs:", "none");
		return;
	}
	line(out, "NICs:", "%zu", json_array_size(nics));
	table_row(&t, "NAME", "MAC", "LINK", "SPEED", "MTU", "DRIVER", "ADDRESSES");
	json_array_foreach(nics, i, n) {
		char speed[32] = "-", mtu[24] = "-";
		int64_t v;
		struct buf addrs;
		if (jint(n, "speed_mbps", &v))
			snprintf(speed, sizeof(speed), v >= 1000 && v % 1000 == 0
				 ? "%" PRId64 "G" : "%" PRId64 "M", v >= 1000 && v % 1000 == 0 ? v / 1000 : v);
		if (jint(n, "mtu", &v))
			snprintf(mtu, sizeof(mtu), "%" PRId64, v);
		buf_init(&addrs, 0);
		json_array_foreach(json_object_get(n, "addresses"), k, a)
			buf_printf(&addrs, "%s%s", k ? " " : "", json_string_value(a) ?: "");
		table_row(&t, jstr(n, "name"), jstr(n, "mac"), jstr(n, "link"), speed, mtu,
			  jstr(n, "driver") ?: (json_is_true(json_object_get(n, "virtual"))
						? "(virtual)" : NULL),
			  addrs.len ? addrs.s : NULL);
		buf_release(&addrs);
	}
	table_render(&t, out, "  ");
}

int facts_format(const json_t *facts, struct buf *out)
{
	struct buf b;
	int r;

	if (!json_is_object(facts))
		return -EINVAL;
	/* Render unbounded, then append once: a capped out gets all or nothing. */
	buf_init(&b, 0);
	fmt_system(facts, &b);
	fmt_gpus(facts, &b);
	fmt_disks(facts, &b);
	fmt_nics(facts, &b);
	r = buf_add(out, b.s, b.len);
	buf_release(&b);
	return r;
}

int facts_format_table(const char *const *names, json_t *const *facts,
		       size_t n, struct buf *out)
{
	struct table t = { STRV_INIT, 8 };

	table_row(&t, "NAME", "OS", "KERNEL", "CPU", "MEMORY", "GPUS", "FREE DISKS", "HARDWARE");
	for (size_t i = 0; i < n; i++) {
		const json_t *f = facts ? facts[i] : NULL;
		const json_t *os = json_object_get(f, "os"), *dmi = json_object_get(f, "dmi");
		if (!json_is_object(f)) {
			table_row(&t, names[i], "(no facts)", NULL, NULL, NULL, NULL, NULL, NULL);
			continue;
		}
		char *osn = xasprintf("%s %s", jstr(os, "id") ?: "?", jstr(os, "version_id") ?: "");
		char *cpu = cpu_counts(json_object_get(f, "cpu"), true);
		char *mem = fmt_bytes_key(json_object_get(f, "memory"), "total_bytes");
		char *gpus = gpu_summary(f);
		char *fd = free_disks(f);
		char *hw = xasprintf("%s %s", jstr(dmi, "sys_vendor") ?: "", jstr(dmi, "product_name") ?: "");
		str_trim(osn);
		str_trim(hw);
		table_row(&t, names[i], osn, jstr(json_object_get(f, "kernel"), "release"), cpu,
			  mem, gpus, fd, hw);
		free(osn);
		free(cpu);
		free(mem);
		free(gpus);
		free(fd);
		free(hw);
	}
	struct buf b;
	buf_init(&b, 0);
	table_render(&t, &b, "");
	int r = buf_add(out, b.s, b.len);
	buf_release(&b);
	return r;
}
