/*
 * Kernel and host settings: sysctl, kmod, swap and hostname.  Each has a
 * persistent file (checked and written like a file resource) and a live
 * state (/proc/sys, /sys/module, /proc/swaps, uname) that is read under the
 * root prefix, so tests can fake it with a directory tree.
 */
#include "res_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#define LIVE_CAP (1u << 20)

static const char managed_header[] = "# managed by kiln\n";

/* Read ROOT/path into b; -errno on failure. */
static int read_under(const struct res_ctx *ctx, const char *path, struct buf *b,
		      size_t cap)
{
	char *full = path_join(ctx->root, path);
	int r;

	buf_init(b, cap);
	r = file_read(full, b, cap);
	free(full);
	return r;
}

/* Collapse runs of blanks into one space and trim (sysctl values). */
static char *ws_normalize(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;
	bool space = false;

	for (; *s; s++) {
		if (isspace((unsigned char)*s)) {
			space = o != out;
			continue;
		}
		if (space)
			*o++ = ' ';
		space = false;
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* ---- sysctl ---- */

/* The value of a sysctl entry as text (strings as-is, integers printed). */
static char *sysctl_value(const json_t *v)
{
	if (json_is_integer(v))
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return xstrdup(json_string_value(v));
}

/* "/proc/sys/net/ipv4/ip_forward" for "net.ipv4.ip_forward" (or its slash form). */
static char *sysctl_path(const char *key)
{
	char *p = xasprintf("/proc/sys/%s", key);
	if (!strchr(key, '/'))
		for (char *c = p + strlen("/proc/sys/"); *c; c++)
			if (*c == '.')
				*c = '/';
	return p;
}

static bool sysctl_key_ok(const char *k)
{
	if (!*k || *k == '.' || *k == '/' || strstr(k, ".."))
		return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && !strchr("_-./", *k))
			return false;
	return true;
}

/* Keys are sysctl names (dots or slashes), never paths out of /proc/sys. */
static int sysctl_validate(const json_t *r, const char *id, struct kerr *e)
{
	const char *k;
	json_t *v;

	if (!json_object_size(json_object_get(r, "values")))
		return kerr_set(e, -EINVAL, "resource '%s': field 'values': empty", id);
	json_object_foreach(json_object_get(r, "values"), k, v)
		if (!sysctl_key_ok(k))
			return kerr_set(e, -EINVAL, "resource '%s': field 'values': bad "
					"key '%s'", id, k);
	return 0;
}

/*
 * sysctl: the persistent file plus the live values under ROOT/proc/sys.
 * Unknown keys fail before anything is written (in check mode not while a
 * kmod resource earlier in the list is pending); apply writes the file,
 * then only the live values that differ.
 */
static void sysctl_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	json_t *vals = json_object_get(r, "values");
	struct strv keys = STRV_INIT, want = STRV_INIT, paths = STRV_INIT;
	bool *differs = NULL;
	bool live_changed = false;
	struct buf content;
	const char *k;
	json_t *v;

	buf_init(&content, 0);
	/*
	 * Check mode only: a kmod resource earlier in this run would load
	 * modules, and a key may appear with them; apply (after the load)
	 * fails if the key is still missing.
	 */
	bool kmod_pending = false;
	for (size_t i = 0; ctx->check_only && i < ctx->changed.n; i++)
		kmod_pending |= str_starts(ctx->changed.v[i], "kmod:");
	json_object_foreach(vals, k, v)
		strv_push(&keys, k);
	strv_sort(&keys);
	differs = xcalloc(keys.n + 1, sizeof(*differs));
	buf_adds(&content, managed_header);

	/* Every key must exist before anything is touched. */
	for (size_t i = 0; i < keys.n; i++) {
		strv_take(&want, sysctl_value(json_object_get(vals, keys.v[i])));
		strv_take(&paths, sysctl_path(keys.v[i]));
		buf_printf(&content, "%s = %s\n", keys.v[i], want.v[i]);
		struct buf cur;
		int q = read_under(ctx, paths.v[i], &cur, LIVE_CAP);
		if (q == -ENOENT && kmod_pending) {
			/* net.bridge.* appear only once br_netfilter is loaded. */
			live_changed = true;
			res_note(out, "%s: would set after module load", keys.v[i]);
		} else if (q == -ENOENT) {
			res_fail(out, "sysctl '%s': no such kernel parameter (%s does not "
				 "exist)", keys.v[i], paths.v[i]);
		} else if (q < 0) {
			res_fail(out, "sysctl '%s': read %s: %s", keys.v[i], paths.v[i],
				 strerror(-q));
		} else {
			char *a = ws_normalize(cur.s), *b = ws_normalize(want.v[i]);
			if (strcmp(a, b)) {
				differs[i] = live_changed = true;
				res_note(out, "%s: %s -> %s", keys.v[i], a, b);
			}
			free(a);
			free(b);
		}
		buf_release(&cur);
	}
	if (out->status == RES_FAILED)
		goto out;

	struct file_want w = {
		.path = res_str(r, "file"), .content = content.s, .len = content.len,
		.mode = 0644, .uid = (uid_t)-1, .gid = (gid_t)-1,
	};
	out->status = res_file_converge(ctx, &w, out);
	if (out->status == RES_FAILED)
		goto out;
	if (live_changed)
		out->status = RES_CHANGED;
	if (ctx->check_only)
		goto out;
	for (size_t i = 0; i < keys.n; i++) {
		if (!differs[i])
			continue;
		char *full = path_join(ctx->root, paths.v[i]);
		int fd = open(full, O_WRONLY | O_TRUNC | O_CLOEXEC);
		size_t n = strlen(want.v[i]);
		if (fd < 0 || write(fd, want.v[i], n) != (ssize_t)n)
			res_fail(out, "sysctl '%s': write '%s': %s", keys.v[i], want.v[i],
				 strerror(errno));
		if (fd >= 0 && close(fd) < 0 && out->status != RES_FAILED)
			res_fail(out, "sysctl '%s': write '%s': %s", keys.v[i], want.v[i],
				 strerror(errno));
		free(full);
	}
out:
	free(differs);
	buf_release(&content);
	strv_release(&keys);
	strv_release(&want);
	strv_release(&paths);
}

static const struct field sysctl_fields[] = {
	{ "file", F_PATH, true, NULL },
	{ "values", F_MAP, true, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_sysctl = {
	.name = "sysctl", .id_field = "file", .fields = sysctl_fields,
	.validate = sysctl_validate, .run = sysctl_run,
};

/* ---- kmod ---- */

/* Module names compare with '-' and '_' as the same character. */
static char *mod_norm(const char *s, size_t n)
{
	char *m = xstrndup(s, n);
	for (char *c = m; *c; c++)
		if (*c == '-')
			*c = '_';
	return m;
}

/* Names of built-in modules from ROOT/lib/modules/RELEASE/modules.builtin. */
static void builtin_modules(const struct res_ctx *ctx, struct strv *out)
{
	struct utsname u;
	struct buf b;

	if (uname(&u) < 0)
		return;
	char *path = xasprintf("/lib/modules/%s/modules.builtin", u.release);
	if (read_under(ctx, path, &b, 16u << 20) == 0) {
		for (const char *p = b.s; *p;) {
			size_t n = strcspn(p, "\n");
			const char *base = p;
			for (size_t i = 0; i < n; i++)
				if (p[i] == '/')
					base = p + i + 1;
			size_t bl = (size_t)(p + n - base);
			if (bl > 3 && !strncmp(base + bl - 3, ".ko", 3))
				strv_take(out, mod_norm(base, bl - 3));
			p += n + (p[n] == '\n');
		}
	}
	buf_release(&b);
	free(path);
}

/*
 * Is this a kernel without loadable-module support (CONFIG_MODULES=n)?
 * Then ROOT/proc is a real procfs without /proc/modules, modprobe can do
 * nothing, and every module the kernel has is built in (the lab's kernel).
 */
static bool kernel_without_modules(const struct res_ctx *ctx)
{
	char *proc = path_join(ctx->root, "/proc");
	char *mods = path_join(ctx->root, "/proc/modules");
	struct statfs sf;
	bool yes = statfs(proc, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC &&
		   !path_exists(mods);

	free(proc);
	free(mods);
	return yes;
}

static bool mod_loaded(const struct res_ctx *ctx, const char *name,
		       const struct strv *builtin)
{
	char *norm = mod_norm(name, strlen(name));
	char *rel = xasprintf("/sys/module/%s", norm);
	char *full = path_join(ctx->root, rel);
	bool yes = path_exists(full) || strv_contains(builtin, norm);

	free(norm);
	free(rel);
	free(full);
	return yes;
}

/* Module names only: they end up on modprobe's command line. */
static int kmod_validate(const json_t *r, const char *id, struct kerr *e)
{
	size_t i;
	json_t *x;

	json_array_foreach(json_object_get(r, "modules"), i, x) {
		const char *s = json_string_value(x);
		if (*s == '-' || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "0123456789_-") != strlen(s))
			return kerr_set(e, -EINVAL, "resource '%s': field 'modules': '%s' "
					"is not a module name", id, s);
	}
	return 0;
}

/* kmod: the modules-load file, then modprobe for modules neither loaded nor built in. */
static void kmod_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	json_t *mods = json_object_get(r, "modules");
	struct strv builtin = STRV_INIT, missing = STRV_INIT;
	struct buf content;
	size_t i;
	json_t *x;

	buf_init(&content, 0);
	buf_adds(&content, managed_header);
	builtin_modules(ctx, &builtin);
	bool monolithic = kernel_without_modules(ctx);
	json_array_foreach(mods, i, x) {
		const char *m = json_string_value(x);
		buf_printf(&content, "%s\n", m);
		if (!monolithic && !mod_loaded(ctx, m, &builtin)) {
			strv_push(&missing, m);
			res_note(out, "load module %s", m);
		}
	}
	struct file_want w = {
		.path = res_str(r, "file"), .content = content.s, .len = content.len,
		.mode = 0644, .uid = (uid_t)-1, .gid = (gid_t)-1,
	};
	out->status = res_file_converge(ctx, &w, out);
	if (out->status == RES_FAILED)
		goto out;
	if (missing.n)
		out->status = RES_CHANGED;
	if (ctx->check_only)
		goto out;
	for (i = 0; i < missing.n; i++) {
		struct kerr e = { 0 };
		char *argv[] = { "modprobe", "-d", (char *)ctx->root, missing.v[i], NULL };
		char *live_argv[] = { "modprobe", missing.v[i], NULL };
		if (res_run(res_is_live(ctx) ? live_argv : argv, NULL, NULL, NULL, 120000,
			    &e) < 0)
			res_fail(out, "module '%s': %s", missing.v[i], e.msg);
	}
out:
	buf_release(&content);
	strv_release(&builtin);
	strv_release(&missing);
}

static const struct field kmod_fields[] = {
	{ "file", F_PATH, true, NULL },
	{ "modules", F_STRV, true, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_kmod = {
	.name = "kmod", .id_field = "file", .fields = kmod_fields,
	.validate = kmod_validate, .run = kmod_run,
};

/* ---- swap ---- */

/* Active swap devices from ROOT/proc/swaps (header line skipped). */
static int swaps_active(const struct res_ctx *ctx, struct strv *out)
{
	struct buf b;
	int r = read_under(ctx, "/proc/swaps", &b, LIVE_CAP);

	if (r == -ENOENT)
		r = 0;
	const char *p = b.s;
	p += strcspn(p, "\n");
	while (*p) {
		p++;
		size_t n = strcspn(p, " \t\n");
		if (n)
			strv_take(out, xstrndup(p, n));
		p += strcspn(p, "\n");
	}
	buf_release(&b);
	return r;
}

/* Is this fstab line an uncommented swap entry (third field "swap")? */
static bool fstab_is_swap(const char *line, size_t n)
{
	char *l = xstrndup(line, n), *save = NULL;
	char *f = strtok_r(l, " \t", &save);
	bool yes = false;

	if (f && *f != '#' && strtok_r(NULL, " \t", &save)) {
		f = strtok_r(NULL, " \t", &save);
		yes = f && !strcmp(f, "swap");
	}
	free(l);
	return yes;
}

/* swap off: nothing in ROOT/proc/swaps, no uncommented swap line in fstab. */
static void swap_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	struct strv active = STRV_INIT;
	struct buf fstab, next;
	bool swap_lines = false;
	int q;

	buf_init(&next, RES_FILE_CAP);
	if ((q = swaps_active(ctx, &active)) < 0) {
		res_fail(out, "/proc/swaps: %s", strerror(-q));
		buf_init(&fstab, 0);
		goto out;
	}
	for (size_t i = 0; i < active.n; i++)
		res_note(out, "swapoff %s", active.v[i]);
	if ((q = read_under(ctx, "/etc/fstab", &fstab, RES_FILE_CAP)) < 0 &&
	    q != -ENOENT) {
		res_fail(out, "/etc/fstab: %s", strerror(-q));
		goto out;
	}
	for (const char *p = fstab.s; *p;) {
		size_t n = strcspn(p, "\n");
		bool sw = fstab_is_swap(p, n);
		swap_lines |= sw;
		if (sw)
			buf_addch(&next, '#');
		buf_add(&next, p, n + (p[n] == '\n'));
		p += n + (p[n] == '\n');
	}
	if (active.n)
		out->status = RES_CHANGED;
	if (!active.n && !swap_lines)
		goto out;
	if (!ctx->check_only && active.n) {
		struct kerr e = { 0 };
		char *argv[] = { "swapoff", "-a", NULL };
		if (!res_is_live(ctx)) {
			res_fail(out, "swap still active (%s): swapoff only runs on a live "
				 "root, not under %s", active.v[0], ctx->root);
			goto out;
		}
		if (res_run(argv, NULL, NULL, NULL, 600000, &e) < 0) {
			res_fail(out, "%s", e.msg);
			goto out;
		}
	}
	if (swap_lines) {
		struct file_want w = {
			.path = "/etc/fstab", .content = next.s, .len = next.len,
			.mode = -1, .uid = (uid_t)-1, .gid = (gid_t)-1,
		};
		if (res_file_converge(ctx, &w, out) != RES_OK && out->status != RES_FAILED)
			out->status = RES_CHANGED;
	}
out:
	strv_release(&active);
	buf_release(&fstab);
	buf_release(&next);
}

static const struct field swap_fields[] = {
	{ "state", F_ENUM, true, "off" },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_swap = {
	.name = "swap", .id_field = "state", .fields = swap_fields, .run = swap_run,
};

/* ---- hostname ---- */

/* RFC 1123 host name characters, at most 64. */
static int hostname_validate(const json_t *r, const char *id, struct kerr *e)
{
	const char *n = res_str(r, "name");
	size_t len = strlen(n);

	if (len > 64 || *n == '-' || *n == '.' || n[len - 1] == '-' || n[len - 1] == '.' ||
	    strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != len)
		return kerr_set(e, -EINVAL, "resource '%s': field 'name': not a valid "
				"host name", id);
	return 0;
}

/* hostname: ROOT/etc/hostname, and the running name when root is "/". */
static void hostname_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *name = res_str(r, "name");
	char *content = xasprintf("%s\n", name);
	bool live_differs = false;
	struct utsname u;

	if (res_is_live(ctx)) {
		if (uname(&u) < 0) {
			res_fail(out, "uname: %s", strerror(errno));
			goto out;
		}
		if (strcmp(u.nodename, name)) {
			live_differs = true;
			res_note(out, "hostname %s -> %s", u.nodename, name);
		}
	}
	struct file_want w = {
		.path = "/etc/hostname", .content = content, .len = strlen(content),
		.mode = -1, .uid = (uid_t)-1, .gid = (gid_t)-1,
	};
	out->status = res_file_converge(ctx, &w, out);
	if (out->status == RES_FAILED)
		goto out;
	if (live_differs)
		out->status = RES_CHANGED;
	if (!ctx->check_only && live_differs && sethostname(name, strlen(name)) < 0)
		res_fail(out, "sethostname '%s': %s", name, strerror(errno));
out:
	free(content);
}

static const struct field hostname_fields[] = {
	{ "name", F_STR, true, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_hostname = {
	.name = "hostname", .id_field = "name", .fields = hostname_fields,
	.validate = hostname_validate, .run = hostname_run,
};
