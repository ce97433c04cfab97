/* cluster.yaml -> struct cluster: the schema walk and its checks. */
#include "parse.h"
#include "stacks/stacks.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* A group name used somewhere, to be checked once every group is known. */
struct gref {
	char *name;
	char *what;          /* message prefix, e.g. "node 'n1'" */
	const char *file;
	int line, col;
};

/* Error at node n of the spec file being walked. */
int spec_err(struct spec_parser *x, const struct ynode *n, const char *fmt, ...)
{
	char msg[800];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_at(x->e, x->file, n->line, n->col, "%s", msg);
}

/* A scalar's text shortened and made printable, for messages. */
const char *spec_shown(const struct ynode *n, char *tmp, size_t size)
{
	str_sanitize(tmp, size, n->str, n->len);
	return tmp;
}

int spec_expect(struct spec_parser *x, const struct ynode *n, enum ykind k, const char *what)
{
	static const char *const names[] = { "a scalar", "a sequence", "a mapping" };
	if (n->kind == k)
		return 0;
	return spec_err(x, n, "%s: expected %s, found %s", what, names[k], ynode_kind_name(n));
}

/* Every key of map m must be in allowed (NULL-terminated). */
int spec_check_keys(struct spec_parser *x, const struct ynode *m, const char *what,
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
		int r = spec_err(x, k, "unknown key '%s' in %s (expected one of: %s)",
			      spec_shown(k, tmp, sizeof(tmp)), what, b.s);
		buf_release(&b);
		return r;
	}
	return 0;
}

/* Any non-null scalar's text; the caller copies what it keeps. */
int spec_get_text(struct spec_parser *x, const struct ynode *n, const char *what,
		    const char **out)
{
	*out = NULL;
	if (n->kind != Y_SCALAR || ynode_is_null(n))
		return spec_err(x, n, "%s: expected a string, found %s", what, ynode_kind_name(n));
	*out = n->str;
	return 0;
}

/* One word of a fixed vocabulary (names[0..count)): its index in *out;
 * else "WHAT: expected a, b or c, found 'x'". */
int spec_get_choice(struct spec_parser *x, const struct ynode *n, const char *what,
		    const char *const *names, size_t count, int *out)
{
	const char *s;
	char tmp[64];
	struct buf list;
	int r;

	if ((r = spec_get_text(x, n, what, &s)) < 0)
		return r;
	for (size_t i = 0; i < count; i++)
		if (!strcmp(s, names[i])) {
			*out = (int)i;
			return 0;
		}
	buf_init(&list, 0);
	for (size_t i = 0; i < count; i++)
		buf_printf(&list, "%s%s", !i ? "" : i + 1 == count ? " or " : ", ", names[i]);
	r = spec_err(x, n, "%s: expected %s, found '%s'", what, list.s,
		     spec_shown(n, tmp, sizeof(tmp)));
	buf_release(&list);
	return r;
}

/* A plain integer scalar in [min, max]. */
int spec_get_int(struct spec_parser *x, const struct ynode *n, const char *what,
		   int64_t min, int64_t max, int *out)
{
	int64_t v;
	char tmp[40];

	if (n->kind != Y_SCALAR || yscalar_type(n, NULL, &v, NULL) != YS_INT) {
		if (n->kind == Y_SCALAR && !ynode_is_null(n))
			return spec_err(x, n, "%s: expected an integer in %lld..%lld, found '%s'",
				     what, (long long)min, (long long)max,
				     spec_shown(n, tmp, sizeof(tmp)));
		return spec_err(x, n, "%s: expected an integer in %lld..%lld, found %s", what,
			     (long long)min, (long long)max, ynode_kind_name(n));
	}
	if (v < min || v > max)
		return spec_err(x, n, "%s: %lld is out of range %lld..%lld", what,
			     (long long)v, (long long)min, (long long)max);
	*out = (int)v;
	return 0;
}

/* true/false (and their capitalised forms) only: "yes" is a string. */
int spec_get_bool(struct spec_parser *x, const struct ynode *n, const char *what, bool *out)
{
	char tmp[40];
	if (n->kind != Y_SCALAR || yscalar_type(n, out, NULL, NULL) != YS_BOOL) {
		if (n->kind == Y_SCALAR && !ynode_is_null(n))
			return spec_err(x, n, "%s: expected true or false, found '%s'", what,
				     spec_shown(n, tmp, sizeof(tmp)));
		return spec_err(x, n, "%s: expected true or false, found %s", what,
			     ynode_kind_name(n));
	}
	return 0;
}

/*
 * A sequence of strings, each passing ok() (NULL: any); desc says what a
 * valid item is, for the message.
 */
int spec_get_strv(struct spec_parser *x, const struct ynode *n, const char *what,
		    bool (*ok)(const char *), const char *desc, struct strv *out)
{
	int r;
	char tmp[80];

	if ((r = spec_expect(x, n, Y_SEQ, what)) < 0)
		return r;
	for (size_t i = 0; i < n->nkids; i++) {
		const struct ynode *it = n->kids[i];
		const char *s;
		if ((r = spec_get_text(x, it, what, &s)) < 0)
			return r;
		if (ok && !ok(s))
			return spec_err(x, it, "%s: '%s' is not %s", what,
				     spec_shown(it, tmp, sizeof(tmp)), desc);
		strv_push(out, s);
	}
	return 0;
}

/* A JSON object from a YAML mapping (null = empty). */
int spec_get_vars(struct spec_parser *x, const struct ynode *n, const char *what, json_t **out)
{
	int r;

	if (ynode_is_null(n)) {
		*out = json_object();
		return 0;
	}
	if ((r = spec_expect(x, n, Y_MAP, what)) < 0)
		return r;
	*out = ynode_to_json(n, x->file, &x->budget, x->e);
	return *out ? 0 : -EINVAL;
}

static void add_ref(struct spec_parser *x, const struct ynode *at, const char *name, char *what)
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
static int parse_endpoint(struct spec_parser *x, const struct ynode *n, const char *what,
			  struct endpoint **out)
{
	static const char *const keys[] = { "user", "host", "port", NULL };
	struct endpoint ep = { 0 };
	const char *s;
	char tmp[80];
	int r;

	if (n->kind == Y_SCALAR) {
		if ((r = spec_get_text(x, n, what, &s)) < 0)
			return r;
		if (endpoint_parse(s, &ep) < 0)
			return spec_err(x, n, "%s: '%s' is not [user@]host[:port]", what,
				     spec_shown(n, tmp, sizeof(tmp)));
		*out = xcalloc(1, sizeof(**out));
		**out = ep;
		return 0;
	}
	if ((r = spec_expect(x, n, Y_MAP, what)) < 0 || (r = spec_check_keys(x, n, what, keys)) < 0)
		return r;
	const struct ynode *h = ymap_get(n, "host"), *u = ymap_get(n, "user"),
			   *p = ymap_get(n, "port");
	if (!h) {
		r = spec_err(x, n, "missing required key 'host' in %s", what);
		goto out;
	}
	if ((r = spec_get_text(x, h, what, &s)) < 0)
		goto out;
	if (!valid_address(s)) {
		r = spec_err(x, h, "%s: host '%s' is not an IPv4/IPv6 address or DNS name",
			  what, spec_shown(h, tmp, sizeof(tmp)));
		goto out;
	}
	ep.host = xstrdup(s);
	if (u) {
		if ((r = spec_get_text(x, u, what, &s)) < 0)
			goto out;
		if (!valid_user_name(s)) {
			r = spec_err(x, u, "%s: '%s' is not a valid user name", what,
				  spec_shown(u, tmp, sizeof(tmp)));
			goto out;
		}
		ep.user = xstrdup(s);
	}
	if (p && (r = spec_get_int(x, p, what, 1, 65535, &ep.port)) < 0)
		goto out;
	*out = xcalloc(1, sizeof(**out));
	**out = ep;
	ep.host = ep.user = NULL;
out:
	endpoint_release(&ep);
	return r;
}

/* A user name scalar, replacing *out. */
int spec_get_user(struct spec_parser *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	char tmp[80];
	int r = spec_get_text(x, n, what, &s);
	if (r < 0)
		return r;
	if (!valid_user_name(s))
		return spec_err(x, n, "%s: '%s' is not a valid user name", what,
			     spec_shown(n, tmp, sizeof(tmp)));
	free(*out);
	*out = xstrdup(s);
	return 0;
}

/* A path scalar, made absolute against the spec's directory. */
int spec_get_path(struct spec_parser *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	int r = spec_get_text(x, n, what, &s);
	if (r < 0)
		return r;
	free(*out);
	*out = spec_abs_path(x->c->dir, s);
	return 0;
}

/* "ssh:" — required for known_hosts; the rest keeps cluster_alloc() defaults. */
static int parse_ssh(struct spec_parser *x, const struct ynode *root)
{
	static const char *const keys[] = { "user", "port", "key", "known_hosts",
		"host_key_checking", "bastion", "connect_timeout", "command_timeout",
		"concurrency", NULL };
	struct ssh_conf *s = &x->c->ssh;
	const struct ynode *m = ymap_get(root, "ssh"), *v;
	char tmp[80];
	int r;

	if (!m)
		return spec_err(x, root, "missing required key 'ssh' (ssh.known_hosts is required)");
	if ((r = spec_expect(x, m, Y_MAP, "ssh")) < 0 || (r = spec_check_keys(x, m, "ssh", keys)) < 0)
		return r;
	if ((v = ymap_get(m, "user")) && (r = spec_get_user(x, v, "ssh.user", &s->user)) < 0)
		return r;
	if ((v = ymap_get(m, "port")) && (r = spec_get_int(x, v, "ssh.port", 1, 65535, &s->port)) < 0)
		return r;
	if ((v = ymap_get(m, "key")) && (r = spec_get_path(x, v, "ssh.key", &s->key)) < 0)
		return r;
	if (!(v = ymap_get(m, "known_hosts")))
		return spec_err(x, m, "missing required key 'known_hosts' in ssh");
	if ((r = spec_get_path(x, v, "ssh.known_hosts", &s->known_hosts)) < 0)
		return r;
	if ((v = ymap_get(m, "host_key_checking"))) {
		const char *t;
		if ((r = spec_get_text(x, v, "ssh.host_key_checking", &t)) < 0)
			return r;
		if (!strcmp(t, "strict"))
			s->hostkey = HOSTKEY_STRICT;
		else if (!strcmp(t, "accept-new"))
			s->hostkey = HOSTKEY_ACCEPT_NEW;
		else
			return spec_err(x, v, "ssh.host_key_checking: expected 'strict' or "
				     "'accept-new', found '%s'", spec_shown(v, tmp, sizeof(tmp)));
	}
	if ((v = ymap_get(m, "bastion")) &&
	    (r = parse_endpoint(x, v, "ssh.bastion", &s->bastion)) < 0)
		return r;
	if ((v = ymap_get(m, "connect_timeout")) &&
	    (r = spec_get_int(x, v, "ssh.connect_timeout", 1, 3600, &s->connect_timeout_s)) < 0)
		return r;
	if ((v = ymap_get(m, "command_timeout")) &&
	    (r = spec_get_int(x, v, "ssh.command_timeout", 1, 7 * 86400, &s->command_timeout_s)) < 0)
		return r;
	if ((v = ymap_get(m, "concurrency")) &&
	    (r = spec_get_int(x, v, "ssh.concurrency", 1, 10000, &s->concurrency)) < 0)
		return r;
	return 0;
}

/* ---- groups ------------------------------------------------------------- */

/* One entry of "groups:"; the array has room for it. */
static int parse_group(struct spec_parser *x, const struct ynode *k, const struct ynode *g)
{
	static const char *const keys[] = { "vars", "children", NULL };
	struct cluster *c = x->c;
	const struct ynode *v;
	const char *name = k->str;
	char tmp[80], *what, *w = NULL;
	int r;

	if (!strcmp(name, "all"))
		return spec_err(x, k, "group name 'all' is reserved (use the top-level "
			     "'vars' for cluster-wide variables)");
	if (!valid_group_name(name))
		return spec_err(x, k, "group name '%s' is not valid (letters, digits, "
			     "'_', '-' and '.')", spec_shown(k, tmp, sizeof(tmp)));
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
	if ((r = spec_expect(x, g, Y_MAP, what)) < 0 || (r = spec_check_keys(x, g, what, keys)) < 0)
		goto out;
	w = xasprintf("%s: vars", what);
	if ((r = spec_get_vars(x, ymap_get(g, "vars"), w, &grp->vars)) < 0)
		goto out;
	if ((v = ymap_get(g, "children")) && !ynode_is_null(v)) {
		free(w);
		w = xasprintf("%s: children", what);
		if ((r = spec_get_strv(x, v, w, valid_group_name, "a valid group name",
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

static int parse_groups(struct spec_parser *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "groups");
	struct cluster *c = x->c;
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	if ((r = spec_expect(x, m, Y_MAP, "groups")) < 0)
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
void spec_where_first(char *out, size_t n, const char *file, const struct mark *m)
{
	if (m->file && strcmp(m->file, file))
		snprintf(out, n, "%s:%d", m->file, m->line);
	else
		snprintf(out, n, "line %d", m->line);
}

/* labels: {key: scalar} into out, values kept as strings. */
static int parse_labels(struct spec_parser *x, const struct ynode *n, const char *what, json_t *out)
{
	char tmp[80];
	int r;

	if (ynode_is_null(n))
		return 0;
	if ((r = spec_expect(x, n, Y_MAP, what)) < 0)
		return r;
	for (size_t i = 0; i < ymap_len(n); i++) {
		const struct ynode *k = ymap_key(n, i), *v = ymap_val(n, i);
		const char *s;
		if (!valid_label_key(k->str))
			return spec_err(x, k, "%s: '%s' is not a valid label key", what,
				     spec_shown(k, tmp, sizeof(tmp)));
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			return r;
		json_object_set_new(out, k->str, json_string(s));
	}
	return 0;
}

/*
 * One entry of "nodes:"; the array has room for it.  The node is added
 * before its fields are checked, so cluster_free() releases a half-read one.
 */
static int parse_node(struct spec_parser *x, const struct ynode *m)
{
	static const char *const keys[] = { "name", "address", "port", "user", "roles",
		"site", "groups", "labels", "vars", "bastion", "mac", "boot_image", "bmc", NULL };
	struct cluster *c = x->c;
	const struct ynode *v;
	char *what = NULL, *w = NULL, tmp[80];
	const char *s;
	int r;

	if ((r = spec_expect(x, m, Y_MAP, "node")) < 0 || (r = spec_check_keys(x, m, "node", keys)) < 0)
		return r;
	if (!(v = ymap_get(m, "name")))
		return spec_err(x, m, "missing required key 'name' in node");
	if ((r = spec_get_text(x, v, "node: name", &s)) < 0)
		return r;
	if (!valid_node_name(s))
		return spec_err(x, v, "node name '%s' is not a valid host name (letters, digits, "
			     "'-' and '.')", spec_shown(v, tmp, sizeof(tmp)));
	const struct node *old = cluster_node(c, s);
	if (old) {
		char first[300];
		spec_where_first(first, sizeof(first), x->file, &old->mark);
		return spec_err(x, v, "duplicate node name '%s' (first at %s)", s, first);
	}
	struct node *n = &c->nodes[c->nnodes++];   /* reserved by parse_nodes() */
	memset(n, 0, sizeof(*n));
	n->name = xstrdup(s);
	cluster_index_node(c, c->nnodes - 1);
	n->mark = (struct mark){ x->file, m->line, m->col };
	n->labels = json_object();
	what = xasprintf("node '%s'", n->name);

	if (!(v = ymap_get(m, "address"))) {
		r = spec_err(x, m, "missing required key 'address' in %s", what);
		goto out;
	}
	w = xasprintf("%s: address", what);
	if ((r = spec_get_text(x, v, w, &s)) < 0)
		goto out;
	if (!valid_address(s)) {
		r = spec_err(x, v, "%s: address '%s' is not an IPv4/IPv6 address or DNS name",
			  what, spec_shown(v, tmp, sizeof(tmp)));
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
	FIELD("port", spec_get_int(x, v, w, 1, 65535, &n->port));
	FIELD("user", spec_get_user(x, v, w, &n->user));
	FIELD("roles", spec_get_strv(x, v, w, valid_role, "a valid role name "
				"(a-z, 0-9, '-', '_')", &n->roles));
	FIELD("groups", spec_get_strv(x, v, w, valid_group_name, "a valid group name", &n->groups));
	FIELD("labels", parse_labels(x, v, w, n->labels));
	FIELD("bastion", parse_endpoint(x, v, w, &n->bastion));
	FIELD("site", spec_get_text(x, v, w, &s));
#undef FIELD
	if (v) {
		if (!valid_role(s)) {
			r = spec_err(x, v, "%s: site '%s' is not a valid name (a-z, 0-9, '-', '_')",
				  what, spec_shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		n->site = xstrdup(s);
	}
	free(w);
	w = xasprintf("%s: vars", what);
	if ((r = spec_get_vars(x, ymap_get(m, "vars"), w, &n->vars)) < 0)
		goto out;
	if ((v = ymap_get(m, "groups")))
		for (size_t j = 0; j < v->nkids; j++)
			if (strcmp(v->kids[j]->str, "all"))
				add_ref(x, v->kids[j], v->kids[j]->str,
					xasprintf("%s: group", what));
	r = spec_parse_node_boot(x, m, n, what);
out:
	if (!n->vars)
		n->vars = json_object();
	free(what);
	free(w);
	return r;
}

/* "nodes:", in order; the array is grown once for all of them. */
static int parse_nodes(struct spec_parser *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "nodes");
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	if ((r = spec_expect(x, m, Y_SEQ, "nodes")) < 0)
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
static int parse_enrolled(struct spec_parser *x)
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
		if ((r = spec_expect(x, d.root, Y_MAP, "the top level")) == 0 &&
		    (r = spec_check_keys(x, d.root, "the top level", keys)) == 0)
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

static int load_inventory(struct spec_parser *x, const struct ynode *n)
{
	struct buf b;
	const char *s;
	char tmp[80];
	int r;

	if ((r = spec_get_text(x, n, "inventory", &s)) < 0)
		return r;
	char *abs = spec_abs_path(x->c->dir, s);
	char *display = spec_display_path(x->file, s);
	buf_init(&b, 0);
	r = spec_read_file(x->c, abs, &b, SPEC_MAX_FILE);
	if (r < 0) {
		r = spec_err(x, n, "inventory '%s': cannot read '%s': %s",
			  spec_shown(n, tmp, sizeof(tmp)), abs, spec_read_error(r));
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
static int parse_inventory(struct spec_parser *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "inventory");
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	if (m->kind == Y_SCALAR)
		return load_inventory(x, m);
	if ((r = spec_expect(x, m, Y_SEQ, "inventory")) < 0)
		return r;
	for (size_t i = 0; i < m->nkids; i++)
		if ((r = load_inventory(x, m->kids[i])) < 0)
			return r;
	return 0;
}

/*
 * "stacks:": each key names a stack of the registry (stacks/stacks.h),
 * which parses its own part; in file order.
 */
static int parse_stacks(struct spec_parser *x, const struct ynode *root)
{
	const struct ynode *m = ymap_get(root, "stacks");
	const char *keys[SPEC_STACKS_MAX + 1];
	int r;

	if (!m || ynode_is_null(m))
		return 0;
	for (size_t i = 0; i < stack_types_n; i++)
		keys[i] = stack_types[i]->name;
	keys[stack_types_n] = NULL;
	if ((r = spec_expect(x, m, Y_MAP, "stacks")) < 0 ||
	    (r = spec_check_keys(x, m, "stacks", keys)) < 0)
		return r;
	for (size_t i = 0; i < ymap_len(m); i++)
		for (size_t j = 0; j < stack_types_n; j++) {
			if (strcmp(ymap_key(m, i)->str, stack_types[j]->name))
				continue;
			if ((r = stack_types[j]->parse(x, ymap_val(m, i), &x->c->stacks[j])) < 0)
				return r;
		}
	return 0;
}

/* ---- the whole file ----------------------------------------------------- */

/* Every group named by a node or as a child must exist by now. */
static int check_refs(struct spec_parser *x)
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
static int parse_root(struct spec_parser *x, const struct ynode *root)
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
		return spec_err(x, root, "expected a mapping at the top level, found %s",
			     ynode_kind_name(root));
	if ((r = spec_check_keys(x, root, "the top level", keys)) < 0)
		return r;
	if (!(v = ymap_get(root, "cluster")))
		return spec_err(x, root, "missing required key 'cluster'");
	if ((r = spec_get_text(x, v, "cluster", &s)) < 0)
		return r;
	if (!valid_cluster_name(s))
		return spec_err(x, v, "cluster name '%s' is not valid (a-z, 0-9 and '-', "
			     "starting with a letter or digit, at most 63)",
			     spec_shown(v, tmp, sizeof(tmp)));
	c->name = xstrdup(s);
	if ((r = parse_ssh(x, root)) < 0)
		return r;
	if ((v = ymap_get(root, "vars"))) {
		json_decref(c->vars);
		c->vars = NULL;
		if ((r = spec_get_vars(x, v, "vars", &c->vars)) < 0)
			return r;
	}
	if ((r = spec_parse_boot(x, root)) < 0 || (r = parse_groups(x, root)) < 0 ||
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
	struct spec_parser x = { .c = c, .e = e, .file = c->files.v[0] };
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
