/* Bounded, absence-tolerant readers under a root prefix, and JSON helpers. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *fx_read_cap(const struct fx *x, const char *path, size_t cap)
{
	char *full = path_join(x->root, path);
	struct buf b;
	int r;

	buf_init(&b, 0);
	r = file_read(full, &b, cap);
	free(full);
	if (r < 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

char *fx_read(const struct fx *x, const char *path)
{
	char *s = fx_read_cap(x, path, FX_SMALL_CAP);

	if (!s)
		return NULL;
	/* Attributes are text; a NUL ends them (vpd-style files are parsed elsewhere). */
	str_trim(s);
	if (!*s) {
		free(s);
		return NULL;
	}
	return s;
}

char *fx_readf(const struct fx *x, const char *fmt, ...)
{
	va_list ap;
	struct buf p;
	char *s;

	buf_init(&p, 0);
	va_start(ap, fmt);
	buf_vprintf(&p, fmt, ap);
	va_end(ap);
	s = fx_read(x, p.s);
	buf_release(&p);
	return s;
}

int fx_read_i64(const struct fx *x, const char *path, int64_t *out)
{
	char *s = fx_read(x, path);
	int r;

	if (!s)
		return -ENOENT;
	r = parse_i64(s, INT64_MIN, INT64_MAX, out);
	free(s);
	return r;
}

char *fx_link_base(const struct fx *x, const char *path)
{
	char *full = path_join(x->root, path);
	char target[PATH_MAX];
	ssize_t n = readlink(full, target, sizeof(target) - 1);
	char *slash;

	free(full);
	if (n <= 0)
		return NULL;
	target[n] = '\0';
	slash = strrchr(target, '/');
	return xstrdup(slash ? slash + 1 : target);
}

void fx_list(const struct fx *x, const char *path, struct strv *out)
{
	char *full = path_join(x->root, path);
	DIR *d = opendir(full);
	struct dirent *de;

	free(full);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		strv_push(out, de->d_name);
	}
	closedir(d);
	strv_sort(out);
}

/* lstat, so that a dangling sysfs-style link in a fixture still counts. */
bool fx_exists(const struct fx *x, const char *path)
{
	char *full = path_join(x->root, path);
	struct stat st;
	bool r = lstat(full, &st) == 0;

	free(full);
	return r;
}

json_t *fx_jstr(const char *s)
{
	json_t *j;

	if (!s)
		return json_null();
	j = json_string(s);
	if (!j) {
		size_t n = strlen(s) + 1;
		char *t = xmalloc(n);
		str_sanitize(t, n, s, n - 1);
		j = json_string(t);
		free(t);
	}
	return j ? j : json_null();
}

json_t *fx_jstr_take(char *s)
{
	json_t *j = fx_jstr(s);

	free(s);
	return j;
}

json_t *fx_jint(int r, int64_t v)
{
	return r < 0 ? json_null() : json_integer(v);
}

void fx_unescape_octal(char *s)
{
	char *w = s;

	for (const char *p = s; *p;) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' &&
		    p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 4;
		} else {
			*w++ = *p++;
		}
	}
	*w = '\0';
}

bool fx_pci_slot_norm(const char *in, char *out, size_t n)
{
	unsigned int dom, bus, dev, fn;
	int used = 0;

	if (!in)
		return false;
	if (sscanf(in, "%x:%x:%x.%x%n", &dom, &bus, &dev, &fn, &used) != 4 ||
	    in[used] != '\0' || bus > 0xff || dev > 0x1f || fn > 7)
		return false;
	snprintf(out, n, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return true;
}
