/* Shared checks of the spec: names, addresses, endpoints, paths, messages. */
#include "spec_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int err_at(struct kerr *e, const char *file, int line, int col, const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* one line, whatever the input held */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return kerr_set(e, -EINVAL, "%s:%d:%d: %s", file, line, col, msg);
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool valid_cluster_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

/*
 * Dot-separated labels of [A-Za-z0-9-], 1..63 each, no '-' at either end,
 * at most 253 in all (RFC 1123).  *last_numeric: the last label is digits.
 */
static bool valid_labels(const char *s, bool *last_numeric)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	if (n > 1 && s[n - 1] == '.')
		n--;    /* a fully qualified name may end with a dot */
	size_t start = 0;
	bool numeric = true;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			size_t len = i - start;
			if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
				return false;
			if (i < n)
				numeric = true;   /* a new label starts */
			start = i + 1;
			continue;
		}
		if (!is_alnum(s[i]) && s[i] != '-')
			return false;
		if (!(s[i] >= '0' && s[i] <= '9'))
			numeric = false;
	}
	if (last_numeric)
		*last_numeric = numeric;
	return true;
}

bool valid_node_name(const char *s)
{
	return valid_labels(s, NULL);
}

bool valid_group_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!is_alnum(*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

bool valid_user_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32 || !(is_alnum(s[0]) || s[0] == '_'))
		return false;
	for (; *s; s++)
		if (!is_alnum(*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

bool valid_address(const char *s)
{
	unsigned char tmp[16];
	char v6[64];

	if (inet_pton(AF_INET, s, tmp) == 1)
		return true;
	if (strchr(s, ':')) {
		const char *pct = strchr(s, '%');
		size_t n = pct ? (size_t)(pct - s) : strlen(s);
		if (n >= sizeof(v6))
			return false;
		memcpy(v6, s, n);
		v6[n] = '\0';
		if (pct) {
			const char *z = pct + 1;
			if (!*z || strlen(z) > 15)
				return false;
			for (; *z; z++)
				if (!is_alnum(*z) && *z != '_' && *z != '-' && *z != '.')
					return false;
		}
		return inet_pton(AF_INET6, v6, tmp) == 1;
	}
	bool last_numeric = false;
	/* "10.0.0.300" is a bad IPv4 address, not a host name (RFC 3696 2) */
	return valid_labels(s, &last_numeric) && !last_numeric;
}

void endpoint_release(struct endpoint *ep)
{
	if (!ep)
		return;
	free(ep->user);
	free(ep->host);
	ep->user = ep->host = NULL;
}

struct endpoint *endpoint_dup(const struct endpoint *ep)
{
	if (!ep)
		return NULL;
	struct endpoint *d = xcalloc(1, sizeof(*d));
	d->user = ep->user ? xstrdup(ep->user) : NULL;
	d->host = xstrdup(ep->host);
	d->port = ep->port;
	return d;
}

int endpoint_parse(const char *s, struct endpoint *out)
{
	char *user = NULL, *host = NULL;
	const char *p = s, *at, *hs, *he, *colon = NULL;
	uint64_t port = 0;

	memset(out, 0, sizeof(*out));
	if (str_starts(p, "ssh://"))
		p += 6;
	at = strrchr(p, '@');
	if (at) {
		user = xstrndup(p, (size_t)(at - p));
		if (!valid_user_name(user))
			goto bad;
		p = at + 1;
	}
	if (*p == '[') {
		hs = p + 1;
		he = strchr(hs, ']');
		if (!he)
			goto bad;
		if (he[1] == ':')
			colon = he + 1;
		else if (he[1])
			goto bad;
	} else {
		hs = p;
		colon = strchr(p, ':');
		/* more than one ':' and no brackets: a bare IPv6 address */
		if (colon && strchr(colon + 1, ':'))
			colon = NULL;
		he = colon ? colon : p + strlen(p);
	}
	host = xstrndup(hs, (size_t)(he - hs));
	if (!valid_address(host))
		goto bad;
	if (colon && parse_u64(colon + 1, 1, 65535, &port) < 0)
		goto bad;
	out->user = user;
	out->host = host;
	out->port = (int)port;
	return 0;
bad:
	free(user);
	free(host);
	return -EINVAL;
}

/* Collapse "//", "/./" and "/x/.." in an absolute path, in place. */
static void path_normalise(char *p)
{
	char *out = p, *in = p;

	while (*in) {
		while (*in == '/')
			in++;
		char *seg = in;
		while (*in && *in != '/')
			in++;
		size_t len = (size_t)(in - seg);
		if (len == 0 || (len == 1 && seg[0] == '.'))
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			while (out > p && *--out != '/')
				;
			continue;
		}
		*out++ = '/';
		memmove(out, seg, len);
		out += len;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

char *spec_abs_path(const char *dir, const char *p)
{
	char *r;

	if (p[0] == '/') {
		r = xstrdup(p);
	} else if (dir && dir[0] == '/') {
		r = path_join(dir, p);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			strcpy(cwd, "/");
		char *d = dir && *dir ? path_join(cwd, dir) : xstrdup(cwd);
		r = path_join(d, p);
		free(d);
	}
	path_normalise(r);
	return r;
}

char *spec_display_path(const char *from, const char *p)
{
	const char *slash = strrchr(from, '/');
	if (p[0] == '/' || !slash)
		return xstrdup(p);
	return xasprintf("%.*s/%s", (int)(slash - from), from, p);
}

const char *cluster_add_file(struct cluster *c, const char *display)
{
	for (size_t i = 0; i < c->files.n; i++)
		if (!strcmp(c->files.v[i], display))
			return c->files.v[i];
	strv_push(&c->files, display);
	return c->files.v[c->files.n - 1];
}

bool valid_role(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_'))
			return false;
	return true;
}

static int read_regular(const char *path, struct buf *b, size_t cap)
{
	struct stat st;

	/* a FIFO or device would block or never end: only regular files */
	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return file_read(path, b, cap);
}

int spec_read_file(struct cluster *c, const char *path, struct buf *b, size_t cap)
{
	struct spec_files *f = c ? c->src : NULL;

	if (f && f->replay) {
		for (size_t i = 0; i < f->n; i++) {
			if (strcmp(f->v[i].path, path))
				continue;
			if (!f->v[i].data)
				return -ENOENT;
			if (f->v[i].len > cap)
				return -EFBIG;
			buf_add(b, f->v[i].data, f->v[i].len);
			return 0;
		}
		return -ENOENT;
	}
	int r = read_regular(path, b, cap);
	if (f && (r == 0 || r == -ENOENT))
		spec_files_add(f, path, r == 0 ? b->s : NULL, r == 0 ? b->len : 0);
	return r;
}

void spec_files_add(struct spec_files *f, const char *path, const char *data, size_t len)
{
	f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
	struct spec_source_file *x = &f->v[f->n++];
	x->path = xstrdup(path);
	x->len = len;
	x->data = NULL;
	if (data) {
		x->data = xmalloc(len + 1);
		memcpy(x->data, data, len);
		x->data[len] = '\0';
	}
}

void spec_files_release(struct spec_files *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].path);
		free(f->v[i].data);
	}
	free(f->v);
	free(f->cwd);
	memset(f, 0, sizeof(*f));
}

const char *spec_read_error(int r)
{
	if (r == -EINVAL)
		return "not a regular file";
	if (r == -EFBIG)
		return "file too large";
	return strerror(-r);
}
