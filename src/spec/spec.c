/* cluster.yaml -> struct cluster: the schema walk and its checks. */
#include "spec_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_FILE_MAX (1u << 20)

/* A group name used somewhere, to be checked once every group is known. */
struct gref {
	char *name;
	char *what;          /* message prefix, e.g. "node 'n1'" */
	const char *file;
	int line, col;
};

struct sctx {
	struct cluster *c;
	struct kerr *e;
	const char *file;    /* display name (in c->files) */
	struct gref *refs;
	size_t nrefs, arefs;
	size_t budget;       /* JSON values left for the whole document */
};

static int err_n(struct sctx *x, const struct ynode *n, const char *fmt, ...) PRINTF(3, 4);

/* Error at node n of the spec file being walked. */
static int err_n(struct sctx *x, const struct ynode *n, const char *fmt, ...)
{
	char msg[800];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_at(x->e, x->file, n->line, n->col, "%s", msg);
}

/* A scalar's text shortened and made printable, for messages. */
static const char *shown(const struct ynode *n, char *tmp, size_t size)
{
	str_sanitize(tmp, size, n->str, n->len);
	return tmp;
}

static int expect(struct sctx *x, const struct ynode *n, enum ykind k, const char *what)
{
	static const char *const names[] = { "a scalar", "a sequence", "a mapping" };
	if (n->kind == k)
		return 0;
	return err_n(x, n, "%s: expected %s, found %s", what, names[k], ynode_kind_name(n));
}

/* Every key of map m must be in allowed (NULL-terminated). */
static int check_keys(struct sctx *x, const struct ynode *m, const char *what,
		      const char *const *allowed)
{
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i);
		const char *const *a;
		for (a = allowed; *a; a++)
			if (!strcmp(k->str, *a))
				break;
		if (*a)
			continue;
		struct buf b;
		buf_init(&b, 0);
		for (a = allowed; *a; a++)
			buf_printf(&b, "%s%s", a == allowed ? "" : ", ", *a);
		char tmp[64];
		int r = err_n(x, k, "unknown key '%s' in %s (expected one of: %s)",
			      shown(k, tmp, sizeof(tmp)), what, b.s);
		buf_release(&b);
		return r;
	}
	return 0;
}

/* Any non-null scalar's text; the caller copies what it keeps. */
static int get_text(struct sctx *x, const struct ynode *n, const char *what,
		    const char **out)
{
	*out = NULL;
	if (n->kind != Y_SCALAR || ynode_is_null(n))
		return err_n(x, n, "%s: expected a string, found %s", what, ynode_kind_name(n));
	*out = n->str;
	return 0;
}

/* A plain integer scalar in [min, max]. */
static int get_int(struct sctx *x, const struct ynode *n, const char *what,
		   int64_t min, int64_t max, int *out)
{
	int64_t v;
	char tmp[40];

	if (n->kind != Y_SCALAR || yscalar_type(n, NULL, &v, NULL) != YS_INT) {
		if (n->kind == Y_SCALAR && !ynode_is_null(n))
			return err_n(x, n, "%s: expected an integer in %lld..%lld, found '%s'",
				     what, (long long)min, (long long)max,
				     shown(n, tmp, sizeof(tmp)));
		return err_n(x, n, "%s: expected an integer in %lld..%lld, found %s", what,
			     (long long)min, (long long)max, ynode_kind_name(n));
	}
	if (v < min || v > max)
		return err_n(x, n, "%s: %lld is out of range %lld..%lld", what,
			     (long long)v, (long long)min, (long long)max);
	*out = (int)v;
	return 0;
}

/* true/false (and their capitalised forms) only: "yes" is a string. */
static int get_bool(struct sctx *x, const struct ynode *n, const char *what, bool *out)
{
	char tmp[40];
	if (n->kind != Y_SCALAR || yscalar_type(n, out, NULL, NULL) != YS_BOOL) {
		if (n->kind == Y_SCALAR && !ynode_is_null(n))
			return err_n(x, n, "%s: expected true or false, found '%s'", what,
				     shown(n, tmp, sizeof(tmp)));
		return err_n(x, n, "%s: expected true or false, found %s", what,
			     ynode_kind_name(n));
	}
	return 0;
}

/*
 * A sequence of strings, each passing ok() (NULL: any); desc says what a
 * valid item is, for the message.
 */
static int get_strv(struct sctx *x, const struct ynode *n, const char *what,
		    bool (*ok)(const char *), const char *desc, struct strv *out)
{
	int r;
	char tmp[80];

	if ((r = expect(x, n, Y_SEQ, what)) < 0)
		return r;
	for (size_t i = 0; i < n->nkids; i++) {
		const struct ynode *it = n->kids[i];
		const char *s;
		if ((r = get_text(x, it, what, &s)) < 0)
			return r;
		if (ok && !ok(s))
			return err_n(x, it, "%s: '%s' is not %s", what,
				     shown(it, tmp, sizeof(tmp)), desc);
		strv_push(out, s);
	}
	return 0;
}

/* A JSON object from a YAML mapping (null = empty). */
static int get_vars(struct sctx *x, const struct ynode *n, const char *what, json_t **out)
{
	int r;

	if (ynode_is_null(n)) {
		*out = json_object();
		return 0;
	}
	if ((r = expect(x, n, Y_MAP, what)) < 0)
		return r;
	*out = ynode_to_json(n, x->file, &x->budget, x->e);
	return *out ? 0 : -EINVAL;
}

static void add_ref(struct sctx *x, const struct ynode *at, const char *name, char *what)
{
	x->refs = xgrow(x->refs, x->nrefs + 1, &x->arefs, sizeof(*x->refs));
	struct gref *g = &x->refs[x->nrefs++];
	g->name = xstrdup(name);
	g->what = what;
	g->file = x->file;
	g->line = at->line;
	g->col = at->col;
}

/* ---- ssh ---------------------------------------------------------------- */

/* bastion: "[user@]host[:port]" or {user, host, port}. */
static int parse_endpoint(struct sctx *x, const struct ynode *n, const char *what,
			  struct endpoint **out)
{
	static const char *const keys[] = { "user", "host", "port", NULL };
	struct endpoint ep = { 0 };
	const char *s;
	char tmp[80];
	int r;

	if (n->kind == Y_SCALAR) {
		if ((r = get_text(x, n, what, &s)) < 0)
			return r;
		if (endpoint_parse(s, &ep) < 0)
			return err_n(x, n, "%s: '%s' is not [user@]host[:port]", what,
				     shown(n, tmp, sizeof(tmp)));
		*out = xcalloc(1, sizeof(**out));
		**out = ep;
		return 0;
	}
	if ((r = expect(x, n, Y_MAP, what)) < 0 || (r = check_keys(x, n, what, keys)) < 0)
		return r;
	const struct ynode *h = ymap_get(n, "host"), *u = ymap_get(n, "user"),
			   *p = ymap_get(n, "port");
	if (!h) {
		r = err_n(x, n, "missing required key 'host' in %s", what);
		goto out;
	}
	if ((r = get_text(x, h, what, &s)) < 0)
		goto out;
	if (!valid_address(s)) {
		r = err_n(x, h, "%s: host '%s' is not an IPv4/IPv6 address or DNS name",
			  what, shown(h, tmp, sizeof(tmp)));
		goto out;
	}
	ep.host = xstrdup(s);
	if (u) {
		if ((r = get_text(x, u, what, &s)) < 0)
			goto out;
		if (!valid_user_name(s)) {
			r = err_n(x, u, "%s: '%s' is not a valid user name", what,
				  shown(u, tmp, sizeof(tmp)));
			goto out;
		}
		ep.user = xstrdup(s);
	}
	if (p && (r = get_int(x, p, what, 1, 65535, &ep.port)) < 0)
		goto out;
	*out = xcalloc(1, sizeof(**out));
	**out = ep;
	ep.host = ep.user = NULL;
out:
	endpoint_release(&ep);
	return r;
}

/* A user name scalar, replacing *out. */
static int get_user(struct sctx *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	char tmp[80];
	int r = get_text(x, n, what, &s);
	if (r < 0)
		return r;
	if (!valid_user_name(s))
		return err_n(x, n, "%s: '%s' is not a valid user name", what,
			     shown(n, tmp, sizeof(tmp)));
	free(*out);
	*out = xstrdup(s);
	return 0;
}

/* A path scalar, made absolute against the spec's directory. */
static int get_path(struct sctx *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	int r = get_text(x, n, what, &s);
	if (r < 0)
		return r;
	free(*out);
	*out = spec_abs_path(x->c->dir, s);
	return 0;
}

/* "ssh:" — required for known_hosts; the rest keeps cluster_alloc() defaults. */
static int parse_ssh(struct sctx *x, const struct ynode *root)
{
	static const char *const keys[] = { "user", "port", "key", "known_hosts",
		"host_key_checking", "bastion", "connect_timeout", "command_timeout",
		"concurrency", NULL };
	struct ssh_conf *s = &x->c->ssh;
	const struct ynode *m = ymap_get(root, "ssh"), *v;
	char tmp[80];
	int r;

	if (!m)
		return err_n(x, root, "missing required key 'ssh' (ssh.known_hosts is required)");
	if ((r = expect(x, m, Y_MAP, "ssh")) < 0 || (r = check_keys(x, m, "ssh", keys)) < 0)
		return r;
	if ((v = ymap_get(m, "user")) && (r = get_user(x, v, "ssh.user", &s->user)) < 0)
		return r;
	if ((v = ymap_get(m, "port")) && (r = get_int(x, v, "ssh.port", 1, 65535, &s->port)) < 0)
		return r;
	if ((v = ymap_get(m, "key")) && (r = get_path(x, v, "ssh.key", &s->key)) < 0)
		return r;
	if (!(v = ymap_get(m, "known_hosts")))
		return err_n(x, m, "missing required key 'known_hosts' in ssh");
	if ((r = get_path(x, v, "ssh.known_hosts", &s->known_hosts)) < 0)
		return r;
	if ((v = ymap_get(m, "host_key_checking"))) {
		const char *t;
		if ((r = get_text(x, v, "ssh.host_key_checking", &t)) < 0)
			return r;
		if (!strcmp(t, "strict"))
			s->hostkey = HOSTKEY_STRICT;
		else if (!strcmp(t, "accept-new"))
			s->hostkey = HOSTKEY_ACCEPT_NEW;
		else
			return err_n(x, v, "ssh.host_key_checking: expected 'strict' or "
				     "'accept-new', found '%s'", shown(v, tmp, sizeof(tmp)));
	}
	if ((v = ymap_get(m, "bastion")) &&
	    (r = parse_endpoint(x, v, "ssh.bastion", &s->bastion)) < 0)
		return r;
	if ((v = ymap_get(m, "connect_timeout")) &&
	    (r = get_int(x, v, "ssh.connect_timeout", 1, 3600, &s->connect_timeout_s)) < 0)
		return r;
	if ((v = ymap_get(m, "command_timeout")) &&
	    (r = get_int(x, v, "ssh.command_timeout", 1, 7 * 86400, &s->command_timeout_s)) < 0)
		return r;
	if ((v = ymap_get(m, "concurrency")) &&
	    (r = get_int(x, v, "ssh.concurrency", 1, 10000, &s->concurrency)) < 0)
		return r;
	return 0;
}

/* ---- groups ------------------------------------------------------------- */

/* One entry of "groups:"; the array has room for it. */
static int parse_group(struct sctx *x, const struct ynode *k, const struct ynode *g)
{
	static const char *const keys[] = { "vars", "children", NULL };
	struct cluster *c = x->c;
	const struct ynode *v;
	const char *name = k->str;
	char tmp[80], *what, *w = NULL;
	int r;

	if (!strcmp(name, "all"))
		return err_n(x, k, "group name 'all' is reserved (use the top-level "
			     "'vars' for cluster-wide variables)");
	if (!valid_group_name(name))
		return err_n(x, k, "group name '%s' is not valid (letters, digits, "
			     "'_', '-' and '.')", shown(k, tmp, sizeof(tmp)));
	struct group *grp = &c->groups[c->ngroups++];
	memset(grp, 0, sizeof(*grp));
	grp->name = xstrdup(name);
	grp->mark = (struct mark){ x->file, k->line, k->col };
	what = xasprintf("group '%s'", name);
	if (ynode_is_null(g)) {
		grp->vars = json_object();
		r = 0;
		goto out;
	}
	if ((r = expect(x, g, Y_MAP, what)) < 0 || (r = check_keys(x, g, what, keys)) < 0)
		goto out;
	w = xasprintf("%s: vars", what);
	if ((r = get_vars(x, ymap_get(g, "vars"), w, &grp->vars)) < 0)
		goto out;
	if ((v = ymap_get(g, "children")) && !ynode_is_null(v)) {
		free(w);
		w = xasprintf("%s: children", what);
		if ((r = get_strv(x, v, w, valid_group_name, "a valid group name",
				  &grp->children)) < 0)
			goto out;
		for (size_t j = 0; j < v->nkids; j++)
			add_ref(x, v->kids[j], v->kids[j]->str,
				xasprintf("%s: child group", what));
	}
out:
	free(what);
	free(w);
	return r;
}

static int parse_groups(struct sctx *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "groups");
	struct cluster *c = x->c;
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	if ((r = expect(x, m, Y_MAP, "groups")) < 0)
		return r;
	/* one allocation: appending one by one is quadratic for big specs */
	c->groups = xrealloc(c->groups, (c->ngroups + ymap_len(m)) * sizeof(*c->groups));
	for (size_t i = 0; i < ymap_len(m); i++)
		if ((r = parse_group(x, ymap_key(m, i), ymap_val(m, i))) < 0)
			return r;
	return 0;
}

/* ---- nodes -------------------------------------------------------------- */

bool valid_label_key(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-_./", *s)))
			return false;
	return true;
}

/* "first at line N", or "first at FILE:N" when the other is elsewhere. */
static void where_first(char *out, size_t n, const char *file, const struct mark *m)
{
	if (m->file && strcmp(m->file, file))
		snprintf(out, n, "%s:%d", m->file, m->line);
	else
		snprintf(out, n, "line %d", m->line);
}

/* labels: {key: scalar} into out, values kept as strings. */
static int parse_labels(struct sctx *x, const struct ynode *n, const char *what, json_t *out)
{
	char tmp[80];
	int r;

	if (ynode_is_null(n))
		return 0;
	if ((r = expect(x, n, Y_MAP, what)) < 0)
		return r;
	for (size_t i = 0; i < ymap_len(n); i++) {
		const struct ynode *k = ymap_key(n, i), *v = ymap_val(n, i);
		const char *s;
		if (!valid_label_key(k->str))
			return err_n(x, k, "%s: '%s' is not a valid label key", what,
				     shown(k, tmp, sizeof(tmp)));
		if ((r = get_text(x, v, what, &s)) < 0)
			return r;
		json_object_set_new(out, k->str, json_string(s));
	}
	return 0;
}

/* ---- boot --------------------------------------------------------------- */

/* A dotted-quad scalar into a host-order address. */
static int get_ipv4(struct sctx *x, const struct ynode *n, const char *what, uint32_t *out)
{
	const char *s;
	struct in_addr a;
	char tmp[80];
	int r = get_text(x, n, what, &s);
	if (r < 0)
		return r;
	if (inet_pton(AF_INET, s, &a) != 1)
		return err_n(x, n, "%s: '%s' is not an IPv4 address", what,
			     shown(n, tmp, sizeof(tmp)));
	*out = ntohl(a.s_addr);
	return 0;
}

/* The part of s before sep into a bounded copy; false when too long or missing. */
static bool split_at(const char *s, char sep, char *head, size_t n, const char **tail)
{
	const char *p = strchr(s, sep);
	if (!p || (size_t)(p - s) >= n)
		return false;
	memcpy(head, s, (size_t)(p - s));
	head[p - s] = '\0';
	*tail = p + 1;
	return true;
}

static bool parse_v4(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

/* An image's kernel/initrd: an http(s) URL, or a file that must exist. */
static int get_image_file(struct sctx *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	struct stat st;
	int r = get_text(x, n, what, &s);
	if (r < 0)
		return r;
	if (str_starts(s, "http://") || str_starts(s, "https://")) {
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				return err_n(x, n, "%s: URL contains a space or control byte", what);
		*out = xstrdup(s);
		return 0;
	}
	char *abs = spec_abs_path(x->c->dir, s);
	/* a replayed load has no disk: the loader that recorded it checked */
	bool replay = x->c->src && x->c->src->replay;
	if (!replay && (stat(abs, &st) < 0 || !S_ISREG(st.st_mode))) {
		bool missing = errno == ENOENT;
		r = err_n(x, n, "%s: cannot use '%s': %s", what, abs,
			  missing ? "No such file or directory" : "not a regular file");
		free(abs);
		return r;
	}
	*out = abs;
	return 0;
}

/* One entry of boot.networks; the array has room for it. */
static int parse_boot_net(struct sctx *x, const struct ynode *m, size_t idx)
{
	static const char *const keys[] = { "name", "interface", "subnet", "router", "dns",
		"pool", "lease_time", "allow_unknown", NULL };
	struct boot_conf *b = &x->c->boot;
	const struct ynode *v;
	char *what = xasprintf("boot.networks[%zu]", idx), *w = NULL, tmp[80], head[64];
	const char *s, *tail;
	int r, lt;

	if ((r = expect(x, m, Y_MAP, what)) < 0 || (r = check_keys(x, m, what, keys)) < 0)
		goto out;
	struct boot_network *n = &b->networks[b->nnetworks++];
	memset(n, 0, sizeof(*n));
	n->lease_time = 3600;
	n->mark = (struct mark){ x->file, m->line, m->col };
	if (!(v = ymap_get(m, "name"))) {
		r = err_n(x, m, "missing required key 'name' in %s", what);
		goto out;
	}
	if ((r = get_text(x, v, what, &s)) < 0)
		goto out;
	if (!valid_role(s)) {
		r = err_n(x, v, "%s: name '%s' is not valid (a-z, 0-9, '-', '_')", what,
			  shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	for (size_t i = 0; i + 1 < b->nnetworks; i++)
		if (!strcmp(b->networks[i].name, s)) {
			r = err_n(x, v, "%s: duplicate network name '%s' (first at line %d)",
				  what, s, b->networks[i].mark.line);
			goto out;
		}
	n->name = xstrdup(s);
	free(what);
	what = xasprintf("boot network '%s'", n->name);
	if ((v = ymap_get(m, "interface"))) {
		if ((r = get_text(x, v, what, &s)) < 0)
			goto out;
		if (!*s || strlen(s) > 15 || strchr(s, '/') || strchr(s, ' ')) {
			r = err_n(x, v, "%s: interface '%s' is not a valid interface name",
				  what, shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		n->iface = xstrdup(s);
	}
	if (!(v = ymap_get(m, "subnet"))) {
		r = err_n(x, m, "missing required key 'subnet' in %s", what);
		goto out;
	}
	if ((r = get_text(x, v, what, &s)) < 0)
		goto out;
	uint64_t pfx;
	if (!split_at(s, '/', head, sizeof(head), &tail) || !parse_v4(head, &n->subnet) ||
	    parse_u64(tail, 8, 30, &pfx) < 0) {
		r = err_n(x, v, "%s: subnet '%s' is not A.B.C.D/P with P in 8..30", what,
			  shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	n->prefix = (int)pfx;
	uint32_t mk = ipv4_prefix_mask(n->prefix);
	if (n->subnet & ~mk) {
		r = err_n(x, v, "%s: subnet '%s' has host bits set", what,
			  shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	if ((v = ymap_get(m, "router"))) {
		free(w);
		w = xasprintf("%s: router", what);
		if ((r = get_ipv4(x, v, w, &n->router)) < 0)
			goto out;
		if (!ipv4_in_subnet(n->router, n->subnet, n->prefix)) {
			r = err_n(x, v, "%s: %s is outside %s", w, v->str,
				  ymap_get(m, "subnet")->str);
			goto out;
		}
	}
	if ((v = ymap_get(m, "dns"))) {
		free(w);
		w = xasprintf("%s: dns", what);
		if ((r = expect(x, v, Y_SEQ, w)) < 0)
			goto out;
		if (v->nkids > SPEC_BOOT_MAX_DNS) {
			r = err_n(x, v, "%s: at most %d servers", w, SPEC_BOOT_MAX_DNS);
			goto out;
		}
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = get_ipv4(x, v->kids[i], w, &n->dns[n->n_dns++])) < 0)
				goto out;
	}
	if ((v = ymap_get(m, "pool"))) {
		if ((r = get_text(x, v, what, &s)) < 0)
			goto out;
		if (!split_at(s, '-', head, sizeof(head), &tail) ||
		    !parse_v4(head, &n->pool_start) || !parse_v4(tail, &n->pool_end) ||
		    n->pool_start > n->pool_end) {
			r = err_n(x, v, "%s: pool '%s' is not FIRST-LAST (two IPv4 addresses, "
				  "first <= last)", what, shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		if (!ipv4_in_subnet(n->pool_start, n->subnet, n->prefix) ||
		    !ipv4_in_subnet(n->pool_end, n->subnet, n->prefix) ||
		    n->pool_start == n->subnet || n->pool_end == (n->subnet | ~mk)) {
			r = err_n(x, v, "%s: pool '%s' is not inside subnet %s (network and "
				  "broadcast addresses excluded)", what, shown(v, tmp, sizeof(tmp)),
				  ymap_get(m, "subnet")->str);
			goto out;
		}
		if ((b->server_ip >= n->pool_start && b->server_ip <= n->pool_end) ||
		    (n->router && n->router >= n->pool_start && n->router <= n->pool_end)) {
			r = err_n(x, v, "%s: pool '%s' contains the server or router address",
				  what, shown(v, tmp, sizeof(tmp)));
			goto out;
		}
	}
	if ((v = ymap_get(m, "lease_time"))) {
		free(w);
		w = xasprintf("%s: lease_time", what);
		if ((r = get_int(x, v, w, 60, 1 << 30, &lt)) < 0)
			goto out;
		n->lease_time = (uint32_t)lt;
	}
	if ((v = ymap_get(m, "allow_unknown"))) {
		free(w);
		w = xasprintf("%s: allow_unknown", what);
		if ((r = get_bool(x, v, w, &n->allow_unknown)) < 0)
			goto out;
	}
	for (size_t i = 0; i + 1 < b->nnetworks; i++) {
		const struct boot_network *o = &b->networks[i];
		if (ipv4_subnets_overlap(o->subnet, o->prefix, n->subnet, n->prefix)) {
			r = err_n(x, ymap_get(m, "subnet"), "%s: subnet overlaps network '%s'",
				  what, o->name);
			goto out;
		}
	}
out:
	free(what);
	free(w);
	return r;
}

/* One entry of boot.images; the array has room for it. */
static int parse_boot_image(struct sctx *x, const struct ynode *k, const struct ynode *m)
{
	static const char *const keys[] = { "kernel", "initrd", "cmdline", NULL };
	struct boot_conf *b = &x->c->boot;
	const struct ynode *v;
	char *what = NULL, tmp[80];
	const char *s;
	int r;

	if (!valid_role(k->str))
		return err_n(x, k, "boot.images: name '%s' is not valid (a-z, 0-9, '-', '_')",
			     shown(k, tmp, sizeof(tmp)));
	struct boot_image *im = &b->images[b->nimages++];
	memset(im, 0, sizeof(*im));
	im->name = xstrdup(k->str);
	im->mark = (struct mark){ x->file, k->line, k->col };
	what = xasprintf("boot image '%s'", im->name);
	if ((r = expect(x, m, Y_MAP, what)) < 0 || (r = check_keys(x, m, what, keys)) < 0)
		goto out;
	if (!(v = ymap_get(m, "kernel"))) {
		r = err_n(x, m, "missing required key 'kernel' in %s", what);
		goto out;
	}
	if ((r = get_image_file(x, v, what, &im->kernel)) < 0)
		goto out;
	if ((v = ymap_get(m, "initrd")) && (r = get_image_file(x, v, what, &im->initrd)) < 0)
		goto out;
	if ((v = ymap_get(m, "cmdline"))) {
		if ((r = get_text(x, v, what, &s)) < 0)
			goto out;
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				r = err_n(x, v, "%s: cmdline contains a control byte", what);
				goto out;
			}
		im->cmdline = xstrdup(s);
	}
out:
	free(what);
	return r;
}

/*
 * A boot loader's file name under tftp_root, as TFTP will look it up: a
 * relative path of printable characters, no "." or ".." component, no
 * empty one, at most 127 bytes.
 */
static int get_loader(struct sctx *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	char tmp[80];
	int r = get_text(x, n, what, &s);
	if (r < 0)
		return r;
	bool ok = *s && *s != '/' && strlen(s) <= 127;
	for (const char *p = s; ok && *p; p++)
		ok = (unsigned char)*p > ' ' && (unsigned char)*p < 0x7f &&
		     !strchr("\\%#?", *p);   /* the name also goes into an URL */
	for (const char *c = s; ok && c;) {
		const char *slash = strchr(c, '/');
		size_t l = slash ? (size_t)(slash - c) : strlen(c);
		ok = l && !(l == 1 && c[0] == '.') && !(l == 2 && c[0] == '.' && c[1] == '.');
		c = slash ? slash + 1 : NULL;
	}
	if (!ok)
		return err_n(x, n, "%s: '%s' is not a file name under tftp_root (relative, "
			     "printable, no '.' or '..' parts, none of \\ %% # ?, at most 127 "
			     "bytes)", what,
			     shown(n, tmp, sizeof(tmp)));
	*out = xstrdup(s);
	return 0;
}

/* "boot:" — what `kiln serve` needs; parsed before the nodes that use it. */
static int parse_boot(struct sctx *x, const struct ynode *root)
{
	static const char *const keys[] = { "server", "http_port", "tftp_root", "state_dir",
		"user", "api_token_file", "listen", "networks", "images", "discovery_image",
		"enrolled", "loaders", NULL };
	struct boot_conf *b = &x->c->boot;
	const struct ynode *m = ymap_get(root, "boot"), *v;
	char tmp[80];
	const char *s;
	int r;

	if (!m)
		return 0;
	if ((r = expect(x, m, Y_MAP, "boot")) < 0 || (r = check_keys(x, m, "boot", keys)) < 0)
		return r;
	b->enabled = true;
	b->mark = (struct mark){ x->file, m->line, m->col };
	b->http_port = 80;
	if (!(v = ymap_get(m, "server")))
		return err_n(x, m, "missing required key 'server' in boot");
	if ((r = get_ipv4(x, v, "boot.server", &b->server_ip)) < 0)
		return r;
	b->server = xstrdup(v->str);
	if ((v = ymap_get(m, "http_port")) &&
	    (r = get_int(x, v, "boot.http_port", 1, 65535, &b->http_port)) < 0)
		return r;
	if ((v = ymap_get(m, "tftp_root")) && (r = get_path(x, v, "boot.tftp_root",
							    &b->tftp_root)) < 0)
		return r;
	if (!b->tftp_root)
		b->tftp_root = xstrdup("/usr/lib/ipxe");
	if ((v = ymap_get(m, "state_dir")) && (r = get_path(x, v, "boot.state_dir",
							    &b->state_dir)) < 0)
		return r;
	if (!b->state_dir)
		b->state_dir = xasprintf("%s/.kiln/boot", x->c->dir);
	if ((v = ymap_get(m, "user")) && (r = get_user(x, v, "boot.user", &b->user)) < 0)
		return r;
	if (!b->user)
		b->user = xstrdup(BOOT_DEFAULT_USER);
	if ((v = ymap_get(m, "api_token_file")) &&
	    (r = get_path(x, v, "boot.api_token_file", &b->api_token_file)) < 0)
		return r;
	if ((v = ymap_get(m, "enrolled")) && (r = get_path(x, v, "boot.enrolled",
							   &b->enrolled)) < 0)
		return r;
	if (!b->enrolled)
		b->enrolled = xasprintf("%s/enrolled.yaml", x->c->dir);
	if ((v = ymap_get(m, "listen"))) {
		if ((r = expect(x, v, Y_SEQ, "boot.listen")) < 0)
			return r;
		for (size_t i = 0; i < v->nkids; i++) {
			uint32_t ip;
			if ((r = get_ipv4(x, v->kids[i], "boot.listen", &ip)) < 0)
				return r;
			strv_push(&b->listen, v->kids[i]->str);
		}
	}
	if ((v = ymap_get(m, "networks")) && !ynode_is_null(v)) {
		if ((r = expect(x, v, Y_SEQ, "boot.networks")) < 0)
			return r;
		b->networks = xcalloc(v->nkids + 1, sizeof(*b->networks));
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = parse_boot_net(x, v->kids[i], i)) < 0)
				return r;
	}
	if ((v = ymap_get(m, "images")) && !ynode_is_null(v)) {
		if ((r = expect(x, v, Y_MAP, "boot.images")) < 0)
			return r;
		b->images = xcalloc(ymap_len(v) + 1, sizeof(*b->images));
		for (size_t i = 0; i < ymap_len(v); i++)
			if ((r = parse_boot_image(x, ymap_key(v, i), ymap_val(v, i))) < 0)
				return r;
	}
	if ((v = ymap_get(m, "discovery_image"))) {
		if ((r = get_text(x, v, "boot.discovery_image", &s)) < 0)
			return r;
		if (!cluster_boot_image(x->c, s))
			return err_n(x, v, "boot.discovery_image: no image '%s' under boot.images",
				     shown(v, tmp, sizeof(tmp)));
		b->discovery_image = xstrdup(s);
	}
	if ((v = ymap_get(m, "loaders"))) {
		static const char *const lkeys[] = { "bios", "efi64", "arm64", NULL };
		const struct ynode *l;
		if ((r = expect(x, v, Y_MAP, "boot.loaders")) < 0 ||
		    (r = check_keys(x, v, "boot.loaders", lkeys)) < 0)
			return r;
		if (((l = ymap_get(v, "bios")) &&
		     (r = get_loader(x, l, "boot.loaders.bios", &b->loader_bios)) < 0) ||
		    ((l = ymap_get(v, "efi64")) &&
		     (r = get_loader(x, l, "boot.loaders.efi64", &b->loader_efi64)) < 0) ||
		    ((l = ymap_get(v, "arm64")) &&
		     (r = get_loader(x, l, "boot.loaders.arm64", &b->loader_arm64)) < 0))
			return r;
	}
	return 0;
}

/* A node's "bmc:" mapping; an inline password is refused. */
static int parse_bmc(struct sctx *x, const struct ynode *m, const char *what,
		     struct bmc_conf **out)
{
	static const char *const keys[] = { "type", "address", "port", "user",
		"password_file", "password_env", "password", NULL };
	const struct ynode *v;
	const char *s;
	char tmp[80];
	int r;

	if ((r = expect(x, m, Y_MAP, what)) < 0 || (r = check_keys(x, m, what, keys)) < 0)
		return r;
	if ((v = ymap_get(m, "password")))
		return err_n(x, v, "%s: an inline password is not allowed (use password_file "
			     "or password_env)", what);
	struct bmc_conf *b = *out = xcalloc(1, sizeof(*b));
	b->mark = (struct mark){ x->file, m->line, m->col };
	if (!(v = ymap_get(m, "type")))
		return err_n(x, m, "missing required key 'type' in %s", what);
	if ((r = get_text(x, v, what, &s)) < 0)
		return r;
	if (!strcmp(s, "ipmi"))
		b->type = BMC_IPMI;
	else if (!strcmp(s, "redfish"))
		b->type = BMC_REDFISH;
	else
		return err_n(x, v, "%s: type: expected 'ipmi' or 'redfish', found '%s'", what,
			     shown(v, tmp, sizeof(tmp)));
	if (!(v = ymap_get(m, "address")))
		return err_n(x, m, "missing required key 'address' in %s", what);
	if ((r = get_text(x, v, what, &s)) < 0)
		return r;
	if (!valid_address(s))
		return err_n(x, v, "%s: address '%s' is not an IPv4/IPv6 address or DNS name",
			     what, shown(v, tmp, sizeof(tmp)));
	b->address = xstrdup(s);
	if ((v = ymap_get(m, "port")) && (r = get_int(x, v, what, 1, 65535, &b->port)) < 0)
		return r;
	if ((v = ymap_get(m, "user"))) {
		if ((r = get_text(x, v, what, &s)) < 0)
			return r;
		if (strlen(s) > 64 || strpbrk(s, "\n\r\t"))
			return err_n(x, v, "%s: user '%s' is not valid", what,
				     shown(v, tmp, sizeof(tmp)));
		b->user = xstrdup(s);
	}
	const struct ynode *pf = ymap_get(m, "password_file"), *pe = ymap_get(m, "password_env");
	if (pf && pe)
		return err_n(x, pe, "%s: expected one of 'password_file' or 'password_env', "
			     "not both", what);
	if (pf && (r = get_path(x, pf, what, &b->password_file)) < 0)
		return r;
	if (pe) {
		if ((r = get_text(x, pe, what, &s)) < 0)
			return r;
		bool ok = *s && !(*s >= '0' && *s <= '9') && strlen(s) <= 128;
		for (const char *p = s; ok && *p; p++)
			ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			     (*p >= '0' && *p <= '9') || *p == '_';
		if (!ok)
			return err_n(x, pe, "%s: password_env '%s' is not a variable name",
				     what, shown(pe, tmp, sizeof(tmp)));
		b->password_env = xstrdup(s);
	}
	return 0;
}

/*
 * A node's boot keys: mac (unique), boot_image (defined), and when its
 * address lies in a boot network, not inside that network's pool.
 */
static int parse_node_boot(struct sctx *x, const struct ynode *m, struct node *n,
			   const char *what)
{
	struct cluster *c = x->c;
	const struct ynode *v;
	const char *s;
	char tmp[80], mac[18];
	int r;

	if ((v = ymap_get(m, "mac"))) {
		if ((r = get_text(x, v, what, &s)) < 0)
			return r;
		if (!spec_mac_normalize(s, mac))
			return err_n(x, v, "%s: mac '%s' is not a MAC address like "
				     "52:54:00:12:34:56", what, shown(v, tmp, sizeof(tmp)));
		const struct node *o = cluster_node_by_mac(c, mac);
		if (o) {
			char first[300];
			where_first(first, sizeof(first), x->file, &o->mark);
			return err_n(x, v, "%s: duplicate mac '%s' (node '%s' at %s has it)",
				     what, mac, o->name, first);
		}
		n->mac = xstrdup(mac);
		uint32_t ip;
		for (size_t i = 0; parse_v4(n->address, &ip) && i < c->boot.nnetworks; i++) {
			const struct boot_network *bn = &c->boot.networks[i];
			if (!ipv4_in_subnet(ip, bn->subnet, bn->prefix))
				continue;
			if (bn->pool_start && ip >= bn->pool_start && ip <= bn->pool_end)
				return err_n(x, ymap_get(m, "address"), "%s: reserved address %s "
					     "lies inside the pool of boot network '%s'", what,
					     n->address, bn->name);
			if (ip == c->boot.server_ip || ip == bn->router)
				return err_n(x, ymap_get(m, "address"), "%s: address %s is the "
					     "boot server's or the router's", what, n->address);
		}
	}
	if ((v = ymap_get(m, "boot_image"))) {
		if ((r = get_text(x, v, what, &s)) < 0)
			return r;
		if (!cluster_boot_image(c, s))
			return err_n(x, v, "%s: boot_image: no image '%s' under boot.images",
				     what, shown(v, tmp, sizeof(tmp)));
		n->boot_image = xstrdup(s);
	}
	if ((v = ymap_get(m, "bmc"))) {
		char *w = xasprintf("%s: bmc", what);
		r = parse_bmc(x, v, w, &n->bmc);
		free(w);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * One entry of "nodes:"; the array has room for it.  The node is added
 * before its fields are checked, so cluster_free() releases a half-read one.
 */
static int parse_node(struct sctx *x, const struct ynode *m)
{
	static const char *const keys[] = { "name", "address", "port", "user", "roles",
		"site", "groups", "labels", "vars", "bastion", "mac", "boot_image", "bmc", NULL };
	struct cluster *c = x->c;
	const struct ynode *v;
	char *what = NULL, *w = NULL, tmp[80];
	const char *s;
	int r;

	if ((r = expect(x, m, Y_MAP, "node")) < 0 || (r = check_keys(x, m, "node", keys)) < 0)
		return r;
	if (!(v = ymap_get(m, "name")))
		return err_n(x, m, "missing required key 'name' in node");
	if ((r = get_text(x, v, "node: name", &s)) < 0)
		return r;
	if (!valid_node_name(s))
		return err_n(x, v, "node name '%s' is not a valid host name (letters, digits, "
			     "'-' and '.')", shown(v, tmp, sizeof(tmp)));
	const struct node *old = cluster_node(c, s);
	if (old) {
		char first[300];
		where_first(first, sizeof(first), x->file, &old->mark);
		return err_n(x, v, "duplicate node name '%s' (first at %s)", s, first);
	}
	struct node *n = &c->nodes[c->nnodes++];   /* reserved by parse_nodes() */
	memset(n, 0, sizeof(*n));
	n->name = xstrdup(s);
	n->mark = (struct mark){ x->file, m->line, m->col };
	n->labels = json_object();
	what = xasprintf("node '%s'", n->name);

	if (!(v = ymap_get(m, "address"))) {
		r = err_n(x, m, "missing required key 'address' in %s", what);
		goto out;
	}
	w = xasprintf("%s: address", what);
	if ((r = get_text(x, v, w, &s)) < 0)
		goto out;
	if (!valid_address(s)) {
		r = err_n(x, v, "%s: address '%s' is not an IPv4/IPv6 address or DNS name",
			  what, shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	n->address = xstrdup(s);

#define FIELD(key, call)                                        \
	if ((v = ymap_get(m, key))) {                           \
		free(w);                                        \
		w = xasprintf("%s: %s", what, key);             \
		if ((r = (call)) < 0)                           \
			goto out;                               \
	}
	FIELD("port", get_int(x, v, w, 1, 65535, &n->port));
	FIELD("user", get_user(x, v, w, &n->user));
	FIELD("roles", get_strv(x, v, w, valid_role, "a valid role name "
				"(a-z, 0-9, '-', '_')", &n->roles));
	FIELD("groups", get_strv(x, v, w, valid_group_name, "a valid group name", &n->groups));
	FIELD("labels", parse_labels(x, v, w, n->labels));
	FIELD("bastion", parse_endpoint(x, v, w, &n->bastion));
	FIELD("site", get_text(x, v, w, &s));
#undef FIELD
	if (v) {
		if (!valid_role(s)) {
			r = err_n(x, v, "%s: site '%s' is not a valid name (a-z, 0-9, '-', '_')",
				  what, shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		n->site = xstrdup(s);
	}
	free(w);
	w = xasprintf("%s: vars", what);
	if ((r = get_vars(x, ymap_get(m, "vars"), w, &n->vars)) < 0)
		goto out;
	if ((v = ymap_get(m, "groups")))
		for (size_t j = 0; j < v->nkids; j++)
			if (strcmp(v->kids[j]->str, "all"))
				add_ref(x, v->kids[j], v->kids[j]->str,
					xasprintf("%s: group", what));
	r = parse_node_boot(x, m, n, what);
out:
	if (!n->vars)
		n->vars = json_object();
	free(what);
	free(w);
	return r;
}

/* "nodes:", in order; the array is grown once for all of them. */
static int parse_nodes(struct sctx *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "nodes");
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	if ((r = expect(x, m, Y_SEQ, "nodes")) < 0)
		return r;
	x->c->nodes = xrealloc(x->c->nodes, (x->c->nnodes + m->nkids) * sizeof(*x->c->nodes));
	for (size_t i = 0; i < m->nkids; i++)
		if ((r = parse_node(x, m->kids[i])) < 0)
			return r;
	return 0;
}

/*
 * boot.enrolled: nodes that `kiln boot enroll` wrote, in the node format
 * under a single "nodes:" key.  A missing file means none yet.
 */
static int parse_enrolled(struct sctx *x)
{
	static const char *const keys[] = { "nodes", NULL };
	struct cluster *c = x->c;
	struct buf b;
	struct ydoc d;
	int r;

	if (!c->boot.enabled || !c->boot.enrolled)
		return 0;
	buf_init(&b, 0);
	if ((r = spec_read_file(c, c->boot.enrolled, &b, SPEC_MAX_FILE)) == -ENOENT) {
		r = 0;   /* none enrolled yet */
		goto out_buf;
	}
	if (r < 0) {
		r = err_at(x->e, x->file, c->boot.mark.line, c->boot.mark.col,
			   "boot.enrolled: cannot read '%s': %s", c->boot.enrolled,
			   spec_read_error(r));
		goto out_buf;
	}
	char *display = spec_display_path(x->file, c->boot.enrolled);
	const char *saved_file = x->file;
	size_t saved_budget = x->budget, before = c->nnodes;
	x->file = cluster_add_file(c, display);
	free(display);
	if ((r = ydoc_parse(&d, x->file, b.s, b.len, x->e)) < 0)
		goto out_file;
	x->budget = ydoc_budget(&d);
	if (d.root && !ynode_is_null(d.root)) {
		if ((r = expect(x, d.root, Y_MAP, "the top level")) == 0 &&
		    (r = check_keys(x, d.root, "the top level", keys)) == 0)
			r = parse_nodes(x, d.root);
	}
	for (size_t i = before; i < c->nnodes; i++)
		c->nodes[i].enrolled = true;
	ydoc_release(&d);
out_file:
	x->file = saved_file;
	x->budget = saved_budget;
out_buf:
	buf_release(&b);
	return r;
}

/* ---- inventory ---------------------------------------------------------- */

static int load_inventory(struct sctx *x, const struct ynode *n)
{
	struct buf b;
	const char *s;
	char tmp[80];
	int r;

	if ((r = get_text(x, n, "inventory", &s)) < 0)
		return r;
	char *abs = spec_abs_path(x->c->dir, s);
	char *display = spec_display_path(x->file, s);
	buf_init(&b, 0);
	r = spec_read_file(x->c, abs, &b, SPEC_MAX_FILE);
	if (r < 0) {
		r = err_n(x, n, "inventory '%s': cannot read '%s': %s",
			  shown(n, tmp, sizeof(tmp)), abs, spec_read_error(r));
		goto out;
	}
	r = inventory_parse(x->c, cluster_add_file(x->c, display), b.s, b.len, x->e);
out:
	buf_release(&b);
	free(abs);
	free(display);
	return r;
}

/* "inventory:": one path or a list, imported in order. */
static int parse_inventory(struct sctx *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "inventory");
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	if (m->kind == Y_SCALAR)
		return load_inventory(x, m);
	if ((r = expect(x, m, Y_SEQ, "inventory")) < 0)
		return r;
	for (size_t i = 0; i < m->nkids; i++)
		if ((r = load_inventory(x, m->kids[i])) < 0)
			return r;
	return 0;
}

/* ---- stacks: base ------------------------------------------------------- */

static bool valid_module(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* A sysctl name in dotted or slashed form, never escaping /proc/sys. */
static bool valid_sysctl_key(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 256 || s[0] == '.' || s[0] == '/' || strstr(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.-/", *s)))
			return false;
	return true;
}

/* A package name (with optional version pin), nothing a shell would read. */
static bool valid_package(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 200 || s[0] == '-')
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == 0x7f || strchr("'\"`$;&|<>\\", *s))
			return false;
	return true;
}

/* A user or group name, or a numeric id. */
static bool valid_owner(const char *s)
{
	uint64_t v;
	return valid_user_name(s) || parse_u64(s, 0, UINT32_MAX - 1, &v) == 0;
}

/* An authorized_keys line: printable, and a known key type followed by data. */
static bool valid_pubkey(const char *s)
{
	static const char *const types[] = { "ssh-", "ecdsa-sha2-", "sk-ssh-",
		"sk-ecdsa-sha2-", NULL };
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return false;
	for (const char *p = s; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *f = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		for (const char *const *t = types; *t; t++)
			if (str_starts(f, *t)) {
				while (*p == ' ' || *p == '\t')
					p++;
				return *p != '\0';
			}
	}
	return false;
}

/* Absolute, printable, no ".." component and no trailing slash. */
static bool valid_abs_path(const char *s)
{
	if (s[0] != '/' || strlen(s) > 4096 || (s[1] && str_ends(s, "/")))
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	for (const char *p = s; (p = strstr(p, "/..")); p += 3)
		if (p[3] == '/' || p[3] == '\0')
			return false;
	return true;
}

/* "0644", "644", 0644 or 644 (always octal), or "0o644"; at most 07777. */
static int get_mode(struct sctx *x, const struct ynode *n, const char *what, unsigned *out)
{
	char tmp[40];
	if (n->kind != Y_SCALAR || ynode_is_null(n))
		return err_n(x, n, "%s: expected an octal mode like \"0644\", found %s", what,
			     ynode_kind_name(n));
	const char *p = n->str;
	if (str_starts(p, "0o"))
		p += 2;
	unsigned v = 0;
	size_t digits = 0;
	for (; *p >= '0' && *p <= '7' && digits < 6; p++, digits++)
		v = v * 8 + (unsigned)(*p - '0');
	if (*p || !digits || v > 07777)
		return err_n(x, n, "%s: expected an octal mode like \"0644\", found '%s'", what,
			     shown(n, tmp, sizeof(tmp)));
	*out = v;
	return 0;
}

/*
 * An admin_user.key_files entry: every non-comment line of the file must
 * be a public key; they are appended to keys.
 */
static int read_key_file(struct sctx *x, const struct ynode *n, struct strv *keys)
{
	const char *what = "stacks.base.admin_user.key_files";
	struct buf b;
	const char *s;
	char tmp[80];
	int r;
	size_t before = keys->n;

	if ((r = get_text(x, n, what, &s)) < 0)
		return r;
	char *abs = spec_abs_path(x->c->dir, s);
	buf_init(&b, 0);
	if ((r = spec_read_file(x->c, abs, &b, KEY_FILE_MAX)) < 0) {
		r = err_n(x, n, "%s: cannot read '%s': %s", what, abs, spec_read_error(r));
		goto out;
	}
	if (memchr(b.s, '\0', b.len)) {
		r = err_n(x, n, "%s: '%s' is not a public key file", what, abs);
		goto out;
	}
	for (char *line = b.s, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		str_trim(line);
		if (!*line || *line == '#')
			continue;
		if (!valid_pubkey(line)) {
			r = err_n(x, n, "%s: '%s' holds a line that is not an SSH public key",
				  what, shown(n, tmp, sizeof(tmp)));
			goto out;
		}
		strv_push(keys, line);
	}
	if (keys->n == before)
		r = err_n(x, n, "%s: '%s' holds no public key", what, shown(n, tmp, sizeof(tmp)));
out:
	buf_release(&b);
	free(abs);
	return r;
}

/* stacks.base.admin_user (null: no admin user). */
static int parse_admin(struct sctx *x, const struct ynode *m, struct admin_user *a)
{
	static const char *const keys[] = { "name", "shell", "keys", "key_files",
		"groups", NULL };
	const char *what = "stacks.base.admin_user";
	const struct ynode *v;
	const char *s;
	char tmp[80];
	int r;

	if (ynode_is_null(m))
		return 0;
	if ((r = expect(x, m, Y_MAP, what)) < 0 || (r = check_keys(x, m, what, keys)) < 0)
		return r;
	if (!(v = ymap_get(m, "name")))
		return err_n(x, m, "missing required key 'name' in %s", what);
	if ((r = get_user(x, v, "stacks.base.admin_user.name", &a->name)) < 0)
		return r;
	if ((v = ymap_get(m, "shell"))) {
		if ((r = get_text(x, v, "stacks.base.admin_user.shell", &s)) < 0)
			return r;
		if (!valid_abs_path(s))
			return err_n(x, v, "stacks.base.admin_user.shell: '%s' is not an "
				     "absolute path", shown(v, tmp, sizeof(tmp)));
		free(a->shell);
		a->shell = xstrdup(s);
	}
	if ((v = ymap_get(m, "keys")) &&
	    (r = get_strv(x, v, "stacks.base.admin_user.keys", valid_pubkey,
			  "an SSH public key line", &a->keys)) < 0)
		return r;
	if ((v = ymap_get(m, "key_files"))) {
		if ((r = expect(x, v, Y_SEQ, "stacks.base.admin_user.key_files")) < 0)
			return r;
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = read_key_file(x, v->kids[i], &a->keys)) < 0)
				return r;
	}
	if ((v = ymap_get(m, "groups")) &&
	    (r = get_strv(x, v, "stacks.base.admin_user.groups", valid_user_name,
			  "a valid group name", &a->groups)) < 0)
		return r;
	return 0;
}

/* stacks.base.packages: os family -> list of package names, as JSON. */
static int parse_packages(struct sctx *x, const struct ynode *m, json_t *out)
{
	static const char *const keys[] = { "debian", "redhat", "suse", "arch", "alpine",
		NULL };
	int r;

	if (ynode_is_null(m))
		return 0;
	if ((r = expect(x, m, Y_MAP, "stacks.base.packages")) < 0 ||
	    (r = check_keys(x, m, "stacks.base.packages", keys)) < 0)
		return r;
	for (size_t i = 0; i < ymap_len(m); i++) {
		struct strv sv = STRV_INIT;
		char *what = xasprintf("stacks.base.packages.%s", ymap_key(m, i)->str);
		r = get_strv(x, ymap_val(m, i), what, valid_package, "a package name", &sv);
		free(what);
		if (r == 0) {
			json_t *a = json_array();
			for (size_t j = 0; j < sv.n; j++)
				json_array_append_new(a, json_string(sv.v[j]));
			json_object_set_new(out, ymap_key(m, i)->str, a);
		}
		strv_release(&sv);
		if (r < 0)
			return r;
	}
	return 0;
}

/* stacks.base.sysctls in file order, values as the text written. */
static int parse_sysctls(struct sctx *x, const struct ynode *m, struct stack_base *b)
{
	const char *what = "stacks.base.sysctls";
	char tmp[80];
	int r;

	if ((r = expect(x, m, Y_MAP, what)) < 0)
		return r;
	b->sysctls = xrealloc(b->sysctls, (b->nsysctls + ymap_len(m)) * sizeof(*b->sysctls));
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i), *v = ymap_val(m, i);
		if (!valid_sysctl_key(k->str))
			return err_n(x, k, "%s: '%s' is not a sysctl name", what,
				     shown(k, tmp, sizeof(tmp)));
		enum yscalar t = v->kind == Y_SCALAR ? yscalar_type(v, NULL, NULL, NULL) : YS_NULL;
		if (v->kind != Y_SCALAR || t == YS_NULL || t == YS_BOOL || strchr(v->str, '\n'))
			return err_n(x, v, "%s: %s: expected a number or a string, found %s", what,
				     shown(k, tmp, sizeof(tmp)), ynode_kind_name(v));
		b->sysctls[b->nsysctls].key = xstrdup(k->str);
		b->sysctls[b->nsysctls++].value = xstrdup(v->str);
	}
	return 0;
}

/* One entry of stacks.base.files; the array has room for it. */
static int parse_file(struct sctx *x, const struct ynode *m, size_t idx, struct stack_base *b)
{
	static const char *const keys[] = { "path", "content", "template", "mode", "owner",
		"group", NULL };
	const struct ynode *v, *content, *tmpl;
	char *what = xasprintf("stacks.base.files[%zu]", idx), *w = NULL, tmp[80];
	const char *s;
	int r;

	if ((r = expect(x, m, Y_MAP, what)) < 0 || (r = check_keys(x, m, what, keys)) < 0)
		goto out;
	if (!(v = ymap_get(m, "path"))) {
		r = err_n(x, m, "missing required key 'path' in %s", what);
		goto out;
	}
	w = xasprintf("%s.path", what);
	if ((r = get_text(x, v, w, &s)) < 0)
		goto out;
	if (!valid_abs_path(s)) {
		r = err_n(x, v, "%s: '%s' is not an absolute path without '..'", w,
			  shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	for (size_t i = 0; i < b->nfiles; i++)
		if (!strcmp(b->files[i].path, s)) {
			r = err_n(x, v, "%s: duplicate path '%s' (first at line %d)", what, s,
				  b->files[i].mark.line);
			goto out;
		}
	content = ymap_get(m, "content");
	tmpl = ymap_get(m, "template");
	if (!content == !tmpl) {
		r = err_n(x, m, "%s: expected exactly one of 'content' or 'template'", what);
		goto out;
	}
	struct spec_file *f = &b->files[b->nfiles++];   /* reserved by parse_base() */
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(s);
	f->mode = 0644;
	f->mark = (struct mark){ x->file, m->line, m->col };
	v = content ? content : tmpl;
	free(w);
	w = xasprintf("%s.%s", what, content ? "content" : "template");
	if (v->kind != Y_SCALAR) {
		r = err_n(x, v, "%s: expected a string, found %s", w, ynode_kind_name(v));
		goto out;
	}
	if (content)
		f->content = xstrdup(v->str);
	else
		f->template = xstrdup(v->str);
	if ((v = ymap_get(m, "mode"))) {
		free(w);
		w = xasprintf("%s.mode", what);
		if ((r = get_mode(x, v, w, &f->mode)) < 0)
			goto out;
	}
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "group" : "owner";
		char **dst = i ? &f->group : &f->owner;
		if (!(v = ymap_get(m, key)))
			continue;
		free(w);
		w = xasprintf("%s.%s", what, key);
		if ((r = get_text(x, v, w, &s)) < 0)
			goto out;
		if (!valid_owner(s)) {
			r = err_n(x, v, "%s: '%s' is not a user/group name or id", w,
				  shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		*dst = xstrdup(s);
	}
	if (!f->owner)
		f->owner = xstrdup("root");
	if (!f->group)
		f->group = xstrdup("root");
out:
	free(what);
	free(w);
	return r;
}

/* stacks.base: present means enabled; absent keys take their defaults. */
/* A systemd unit name: [A-Za-z0-9@._:-], 1..255, not starting with '-' or '.'. */
static bool valid_unit(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("@._:-", *s))
			return false;
	return true;
}

/* One entry of stacks.base.services (after files: watch names them). */
static int parse_service(struct sctx *x, const struct ynode *m, size_t idx,
			 struct stack_base *b)
{
	static const char *const keys[] = { "name", "enabled", "state", "watch", NULL };
	const struct ynode *v;
	char *what = xasprintf("stacks.base.services[%zu]", idx), tmp[80];
	const char *s;
	int r;

	if ((r = expect(x, m, Y_MAP, what)) < 0 || (r = check_keys(x, m, what, keys)) < 0)
		goto out;
	if (!(v = ymap_get(m, "name"))) {
		r = err_n(x, m, "missing required key 'name' in %s", what);
		goto out;
	}
	if ((r = get_text(x, v, what, &s)) < 0)
		goto out;
	if (!valid_unit(s)) {
		r = err_n(x, v, "%s.name: '%s' is not a systemd unit name", what,
			  shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	for (size_t i = 0; i < b->nservices; i++)
		if (!strcmp(b->services[i].name, s)) {
			r = err_n(x, v, "%s: duplicate service '%s' (first at line %d)", what, s,
				  b->services[i].mark.line);
			goto out;
		}
	struct spec_service *sv = &b->services[b->nservices++];   /* reserved by parse_base() */
	memset(sv, 0, sizeof(*sv));
	sv->name = xstrdup(s);
	sv->enabled = sv->running = true;
	sv->mark = (struct mark){ x->file, m->line, m->col };
	if ((v = ymap_get(m, "enabled")) && (r = get_bool(x, v, what, &sv->enabled)) < 0)
		goto out;
	if ((v = ymap_get(m, "state"))) {
		if ((r = get_text(x, v, what, &s)) < 0)
			goto out;
		if (strcmp(s, "running") && strcmp(s, "stopped")) {
			r = err_n(x, v, "%s.state: expected running or stopped, found '%s'", what,
				  shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		sv->running = s[0] == 'r';
	}
	if ((v = ymap_get(m, "watch")) && !ynode_is_null(v)) {
		if ((r = get_strv(x, v, what, NULL, NULL, &sv->watch)) < 0)
			goto out;
		for (size_t i = 0; i < sv->watch.n; i++) {
			bool known = false;
			for (size_t j = 0; j < b->nfiles && !known; j++)
				known = !strcmp(b->files[j].path, sv->watch.v[i]);
			if (!known) {
				r = err_n(x, v->kids[i], "%s.watch: '%s' is not a path of "
					  "stacks.base.files", what, sv->watch.v[i]);
				goto out;
			}
		}
	}
out:
	free(what);
	return r;
}

static int parse_base(struct sctx *x, const struct ynode *m)
{
	static const char *const keys[] = { "modules", "sysctls", "swap_off", "hostname",
		"hosts_file", "admin_user", "packages", "files", "services", NULL };
	static const char *const def_sysctls[][2] = {
		{ "net.bridge.bridge-nf-call-iptables", "1" },
		{ "net.bridge.bridge-nf-call-ip6tables", "1" },
		{ "net.ipv4.ip_forward", "1" },
	};
	struct stack_base *b = &x->c->base;
	const struct ynode *v;
	int r;

	if (!ynode_is_null(m) && ((r = expect(x, m, Y_MAP, "stacks.base")) < 0 ||
				  (r = check_keys(x, m, "stacks.base", keys)) < 0))
		return r;
	b->enabled = true;
	b->swap_off = b->hostname = b->hosts_file = true;
	if ((v = ymap_get(m, "modules"))) {
		if (!ynode_is_null(v) &&
		    (r = get_strv(x, v, "stacks.base.modules", valid_module,
				  "a kernel module name", &b->modules)) < 0)
			return r;
	} else {
		strv_push(&b->modules, "overlay");
		strv_push(&b->modules, "br_netfilter");
	}
	if ((v = ymap_get(m, "sysctls"))) {
		if (!ynode_is_null(v) && (r = parse_sysctls(x, v, b)) < 0)
			return r;
	} else {
		b->nsysctls = ARRAY_SIZE(def_sysctls);
		b->sysctls = xcalloc(b->nsysctls, sizeof(*b->sysctls));
		for (size_t i = 0; i < b->nsysctls; i++) {
			b->sysctls[i].key = xstrdup(def_sysctls[i][0]);
			b->sysctls[i].value = xstrdup(def_sysctls[i][1]);
		}
	}
	if ((v = ymap_get(m, "swap_off")) &&
	    (r = get_bool(x, v, "stacks.base.swap_off", &b->swap_off)) < 0)
		return r;
	if ((v = ymap_get(m, "hostname")) &&
	    (r = get_bool(x, v, "stacks.base.hostname", &b->hostname)) < 0)
		return r;
	if ((v = ymap_get(m, "hosts_file")) &&
	    (r = get_bool(x, v, "stacks.base.hosts_file", &b->hosts_file)) < 0)
		return r;
	if ((v = ymap_get(m, "admin_user")) && (r = parse_admin(x, v, &b->admin)) < 0)
		return r;
	if (b->admin.name && !b->admin.shell)
		b->admin.shell = xstrdup("/bin/bash");
	if ((v = ymap_get(m, "packages")) && (r = parse_packages(x, v, b->packages)) < 0)
		return r;
	if ((v = ymap_get(m, "files")) && !ynode_is_null(v)) {
		if ((r = expect(x, v, Y_SEQ, "stacks.base.files")) < 0)
			return r;
		b->files = xrealloc(b->files, (b->nfiles + v->nkids) * sizeof(*b->files));
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = parse_file(x, v->kids[i], i, b)) < 0)
				return r;
	}
	if ((v = ymap_get(m, "services")) && !ynode_is_null(v)) {
		if ((r = expect(x, v, Y_SEQ, "stacks.base.services")) < 0)
			return r;
		b->services = xrealloc(b->services,
				       (b->nservices + v->nkids) * sizeof(*b->services));
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = parse_service(x, v->kids[i], i, b)) < 0)
				return r;
	}
	return 0;
}

/* Known stacks; a new stack adds its parser here. */
static const struct {
	const char *name;
	int (*parse)(struct sctx *x, const struct ynode *m);
} stack_parsers[] = {
	{ "base", parse_base },
};

/* "stacks:": each known stack's parser, in file order. */
static int parse_stacks(struct sctx *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "stacks");
	const char *keys[ARRAY_SIZE(stack_parsers) + 1];
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(stack_parsers); i++)
		keys[i] = stack_parsers[i].name;
	keys[ARRAY_SIZE(stack_parsers)] = NULL;
	if ((r = expect(x, m, Y_MAP, "stacks")) < 0 || (r = check_keys(x, m, "stacks", keys)) < 0)
		return r;
	for (size_t i = 0; i < ymap_len(m); i++)
		for (size_t j = 0; j < ARRAY_SIZE(stack_parsers); j++)
			if (!strcmp(ymap_key(m, i)->str, stack_parsers[j].name) &&
			    (r = stack_parsers[j].parse(x, ymap_val(m, i))) < 0)
				return r;
	return 0;
}

/* ---- the whole file ----------------------------------------------------- */

/* Every group named by a node or as a child must exist by now. */
static int check_refs(struct sctx *x)
{
	for (size_t i = 0; i < x->nrefs; i++) {
		const struct gref *g = &x->refs[i];
		if (!cluster_group(x->c, g->name))
			return err_at(x->e, g->file, g->line, g->col,
				      "%s '%s' is not defined (define it under 'groups' or "
				      "in the inventory)", g->what, g->name);
	}
	return 0;
}

/*
 * The whole document.  Order matters: groups before nodes (refs are
 * checked at the end anyway), nodes before inventories (spec order
 * first), whole-model checks last.
 */
static int parse_root(struct sctx *x, const struct ynode *root)
{
	static const char *const keys[] = { "cluster", "ssh", "vars", "groups", "nodes",
		"inventory", "stacks", "boot", NULL };
	struct cluster *c = x->c;
	const struct ynode *v;
	const char *s;
	char tmp[80];
	int r;

	if (!root || ynode_is_null(root))
		return err_at(x->e, x->file, 1, 1,
			      "expected a mapping at the top level, found nothing");
	if (root->kind != Y_MAP)
		return err_n(x, root, "expected a mapping at the top level, found %s",
			     ynode_kind_name(root));
	if ((r = check_keys(x, root, "the top level", keys)) < 0)
		return r;
	if (!(v = ymap_get(root, "cluster")))
		return err_n(x, root, "missing required key 'cluster'");
	if ((r = get_text(x, v, "cluster", &s)) < 0)
		return r;
	if (!valid_cluster_name(s))
		return err_n(x, v, "cluster name '%s' is not valid (a-z, 0-9 and '-', "
			     "starting with a letter or digit, at most 63)",
			     shown(v, tmp, sizeof(tmp)));
	c->name = xstrdup(s);
	if ((r = parse_ssh(x, root)) < 0)
		return r;
	if ((v = ymap_get(root, "vars"))) {
		json_decref(c->vars);
		c->vars = NULL;
		if ((r = get_vars(x, v, "vars", &c->vars)) < 0)
			return r;
	}
	if ((r = parse_boot(x, root)) < 0 || (r = parse_groups(x, root)) < 0 ||
	    (r = parse_nodes(x, root)) < 0 || (r = parse_enrolled(x)) < 0 ||
	    (r = parse_inventory(x, root)) < 0 || (r = parse_stacks(x, root)) < 0)
		return r;
	if ((r = check_refs(x)) < 0 || (r = cluster_check_groups(c, x->e)) < 0 ||
	    (r = cluster_check_addresses(c, x->e)) < 0)
		return r;
	return 0;
}

/* Parse text into c (whose files.v[0] names it). */
static int spec_parse(struct cluster *c, const char *text, size_t len, struct kerr *e)
{
	struct sctx x = { .c = c, .e = e, .file = c->files.v[0] };
	struct ydoc d;
	int r;

	if ((r = ydoc_parse(&d, x.file, text, len, e)) < 0)
		return r;
	x.budget = ydoc_budget(&d);
	r = parse_root(&x, d.root);
	if (!c->vars)
		c->vars = json_object();
	for (size_t i = 0; i < x.nrefs; i++) {
		free(x.refs[i].name);
		free(x.refs[i].what);
	}
	free(x.refs);
	ydoc_release(&d);
	return r;
}

static int load_string(const char *name, const char *text, size_t len,
		       struct spec_files *f, struct cluster **out, struct kerr *e)
{
	struct cluster *c = cluster_alloc(name, f ? f->cwd : NULL);
	c->src = f;
	int r = spec_parse(c, text, len, e);

	c->src = NULL;
	if (r < 0) {
		cluster_free(c);
		c = NULL;
	}
	*out = c;
	return r;
}

int spec_load_string(const char *name, const char *text, size_t len,
		     struct cluster **out, struct kerr *e)
{
	return load_string(name, text, len, NULL, out, e);
}

int spec_load_files(const char *path, struct spec_files *f, struct cluster **out,
		    struct kerr *e)
{
	struct cluster tmp = { .src = f };
	struct buf b;
	int r;

	*out = NULL;
	if (f && !f->replay && !f->cwd) {
		char cwd[PATH_MAX];
		f->cwd = xstrdup(getcwd(cwd, sizeof(cwd)) ? cwd : "/");
	}
	/* the spec file itself is recorded under its absolute name */
	char *abs = spec_abs_path(path[0] != '/' && f ? f->cwd : NULL, path);
	buf_init(&b, 0);
	r = spec_read_file(&tmp, abs, &b, SPEC_MAX_FILE);
	if (r < 0)
		r = kerr_set(e, r, "%s: %s", path, spec_read_error(r));
	else
		r = load_string(path, b.s, b.len, f, out, e);
	buf_release(&b);
	free(abs);
	return r;
}

int spec_load(const char *path, struct cluster **out, struct kerr *e)
{
	return spec_load_files(path, NULL, out, e);
}
