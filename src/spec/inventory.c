/*
 * Ansible inventories (INI and YAML) imported into the model.
 *
 * Both forms are first read into a small inventory of hosts and groups
 * whose variables keep their line:column; then each host's connection
 * settings (ansible_host/port/user, jump host from ansible_ssh_common_args,
 * kiln_roles/site/labels) are resolved the way Ansible would (host, then
 * nearest groups, then "all"), checked, and the result appended to the
 * cluster.  Variables that were consumed that way are not kept as vars.
 */
#include "inventory_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INV_MAX_HOSTS 100000
#define INV_MAX_RANGE 10000

static const char *const consumed[] = { "ansible_host", "ansible_ssh_host", "ansible_port",
	"ansible_ssh_port", "ansible_user", "ansible_ssh_user", "ansible_ssh_common_args",
	"ansible_ssh_extra_args", "kiln_roles", "kiln_site", "kiln_labels", NULL };

static bool is_consumed(const char *k)
{
	for (const char *const *p = consumed; *p; p++)
		if (!strcmp(k, *p))
			return true;
	return false;
}

void inv_vars_set(struct ivars *vs, const char *key, json_t *val, const char *file,
		      int line, int col)
{
	for (size_t i = 0; i < vs->n; i++)
		if (!strcmp(vs->v[i].key, key)) {
			json_decref(vs->v[i].val);
			vs->v[i] = (struct ivar){ vs->v[i].key, val, file, line, col };
			return;
		}
	vs->v = xgrow(vs->v, vs->n + 1, &vs->alloc, sizeof(*vs->v));
	vs->v[vs->n++] = (struct ivar){ xstrdup(key), val, file, line, col };
}

static const struct ivar *ivars_get(const struct ivars *vs, const char *key)
{
	for (size_t i = 0; i < vs->n; i++)
		if (!strcmp(vs->v[i].key, key))
			return &vs->v[i];
	return NULL;
}

static void ivars_release(struct ivars *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		free(vs->v[i].key);
		json_decref(vs->v[i].val);
	}
	free(vs->v);
}

static void inv_release(struct inv *iv)
{
	for (size_t i = 0; i < iv->nhosts; i++) {
		free(iv->hosts[i].name);
		ivars_release(&iv->hosts[i].vars);
		strv_release(&iv->hosts[i].groups);
	}
	free(iv->hosts);
	free(iv->htab);
	for (size_t i = 0; i < iv->ngroups; i++) {
		free(iv->groups[i].name);
		ivars_release(&iv->groups[i].vars);
		strv_release(&iv->groups[i].children);
		free(iv->groups[i].parents);
	}
	free(iv->groups);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void htab_insert(struct inv *iv, size_t idx)
{
	size_t mask = iv->htab_size - 1, i = hash_str(iv->hosts[idx].name) & mask;
	while (iv->htab[i])
		i = (i + 1) & mask;
	iv->htab[i] = idx + 1;
}

static ssize_t host_find(const struct inv *iv, const char *name)
{
	if (!iv->htab_size)
		return -1;
	size_t mask = iv->htab_size - 1, i = hash_str(name) & mask;
	for (; iv->htab[i]; i = (i + 1) & mask)
		if (!strcmp(iv->hosts[iv->htab[i] - 1].name, name))
			return (ssize_t)(iv->htab[i] - 1);
	return -1;
}

/* The host called name, created (with this mark) on first sight. */
int inv_host_get(struct inv *iv, const char *name, int line, int col, struct ihost **out)
{
	ssize_t k = host_find(iv, name);
	if (k >= 0) {
		*out = &iv->hosts[k];
		return 0;
	}
	if (iv->nhosts >= INV_MAX_HOSTS)
		return err_at(iv->e, iv->file, line, col, "more than %d hosts",
			      INV_MAX_HOSTS);
	if (!valid_node_name(name)) {
		char tmp[80];
		str_sanitize(tmp, sizeof(tmp), name, strlen(name));
		return err_at(iv->e, iv->file, line, col, "host name '%s' is not a valid "
			      "host name (letters, digits, '-' and '.')", tmp);
	}
	if ((iv->nhosts + 1) * 2 > iv->htab_size) {
		size_t n = iv->htab_size ? iv->htab_size * 2 : 64;
		free(iv->htab);
		iv->htab = xcalloc(n, sizeof(*iv->htab));
		iv->htab_size = n;
		for (size_t i = 0; i < iv->nhosts; i++)
			htab_insert(iv, i);
	}
	iv->hosts = xgrow(iv->hosts, iv->nhosts + 1, &iv->ahosts, sizeof(*iv->hosts));
	struct ihost *h = &iv->hosts[iv->nhosts];
	memset(h, 0, sizeof(*h));
	h->name = xstrdup(name);
	h->line = line;
	h->col = col;
	htab_insert(iv, iv->nhosts++);
	*out = h;
	return 0;
}

static ssize_t group_find(const struct inv *iv, const char *name)
{
	for (size_t i = 0; i < iv->ngroups; i++)
		if (!strcmp(iv->groups[i].name, name))
			return (ssize_t)i;
	return -1;
}

/* The group called name, created (with this mark) on first sight. */
int inv_group_get(struct inv *iv, const char *name, int line, int col, struct igroup **out)
{
	ssize_t k = group_find(iv, name);
	if (k >= 0) {
		*out = &iv->groups[k];
		return 0;
	}
	if (!valid_group_name(name)) {
		char tmp[80];
		str_sanitize(tmp, sizeof(tmp), name, strlen(name));
		return err_at(iv->e, iv->file, line, col, "group name '%s' is not valid "
			      "(letters, digits, '_', '-' and '.')", tmp);
	}
	iv->groups = xgrow(iv->groups, iv->ngroups + 1, &iv->agroups, sizeof(*iv->groups));
	struct igroup *g = &iv->groups[iv->ngroups++];
	memset(g, 0, sizeof(*g));
	g->name = xstrdup(name);
	g->line = line;
	g->col = col;
	*out = g;
	return 0;
}

/* Ansible variable names: [A-Za-z_][A-Za-z0-9_]*. */
bool inv_valid_var_name(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/*
 * Expand Ansible host ranges: "node[1:4]", "n[01:10]" (zero-padded),
 * "x[a:c]", "y[1:9:2]"; several ranges multiply.  *at is set to the
 * offset of a bad range.
 */
static int range_expand(const char *pat, struct strv *out, size_t *at)
{
	const char *lb = strchr(pat, '[');
	if (!lb) {
		if (strchr(pat, ']'))
			goto bad_here;
		if (out->n >= INV_MAX_RANGE)
			return -E2BIG;
		strv_push(out, pat);
		return 0;
	}
	*at = (size_t)(lb - pat);
	const char *rb = strchr(lb, ']');
	if (!rb)
		return -EINVAL;
	char *in = xstrndup(lb + 1, (size_t)(rb - lb - 1));
	char *p1 = in, *p2 = strchr(in, ':'), *p3 = NULL;
	int r = -EINVAL;
	if (!p2)
		goto out;
	*p2++ = '\0';
	if ((p3 = strchr(p2, ':')))
		*p3++ = '\0';
	uint64_t stride = 1;
	if (p3 && parse_u64(p3, 1, INV_MAX_RANGE, &stride) < 0)
		goto out;
	bool alpha = strlen(p1) == 1 && strlen(p2) == 1 &&
		     p1[0] >= 'a' && p1[0] <= 'z' && p2[0] >= 'a' && p2[0] <= 'z';
	uint64_t lo, hi;
	int width = 0;
	if (alpha) {
		lo = (uint64_t)p1[0];
		hi = (uint64_t)p2[0];
	} else {
		if (parse_u64(p1, 0, 999999999, &lo) < 0 || parse_u64(p2, 0, 999999999, &hi) < 0)
			goto out;
		if (p1[0] == '0' && p1[1])
			width = (int)strlen(p1);
	}
	if (lo > hi)
		goto out;
	if ((hi - lo) / stride + 1 > INV_MAX_RANGE) {
		r = -E2BIG;
		goto out;
	}
	for (uint64_t v = lo; v <= hi; v += stride) {
		char *s = alpha ? xasprintf("%.*s%c%s", (int)(lb - pat), pat, (char)v, rb + 1)
				: xasprintf("%.*s%0*llu%s", (int)(lb - pat), pat, width,
					    (unsigned long long)v, rb + 1);
		size_t sub_at = 0;
		r = range_expand(s, out, &sub_at);
		free(s);
		if (r < 0) {
			/* offsets past this range shift with its expansion; point at it */
			goto out;
		}
	}
	r = 0;
out:
	free(in);
	return r;
bad_here:
	*at = (size_t)(strchr(pat, ']') - pat);
	return -EINVAL;
}

/* Hosts named by pattern (with ranges) at line:col; errors carry the mark. */
int inv_hosts_from_pattern(struct inv *iv, const char *pat, int line, int col,
			      struct strv *names)
{
	size_t at = 0;
	int r = range_expand(pat, names, &at);
	char tmp[80];

	str_sanitize(tmp, sizeof(tmp), pat, strlen(pat));
	if (r == -E2BIG)
		return err_at(iv->e, iv->file, line, col, "host range '%s' names more "
			      "than %d hosts", tmp, INV_MAX_RANGE);
	if (r < 0)
		return err_at(iv->e, iv->file, line, col + (int)at, "host pattern '%s': "
			      "bad range (expected [START:END] or [START:END:STEP], with "
			      "START <= END)", tmp);
	return 0;
}

/* ---- shell words (INI lines, ansible_ssh_common_args) ------------------ */

void inv_toks_release(struct toks *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].s);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/*
 * Split a line the way Python's shlex does for Ansible: whitespace
 * separates, '...' is literal, "..." honours \" and \\, a backslash
 * outside quotes escapes the next byte, '#' at a token's start ends the
 * line.  Column of each token (1-based) is kept.  *bad: offset of an
 * unterminated quote (out is then released).
 */
int inv_shell_split(const char *line, struct toks *out, size_t *bad)
{
	const char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			return 0;
		struct buf b;
		buf_init(&b, 0);
		int col = (int)(p - line) + 1;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\'') {
				const char *q = strchr(p + 1, '\'');
				if (!q) {
					*bad = (size_t)(p - line);
					buf_release(&b);
					inv_toks_release(out);
					return -EINVAL;
				}
				buf_add(&b, p + 1, (size_t)(q - p - 1));
				p = q + 1;
			} else if (*p == '"') {
				const char *q = p + 1;
				for (; *q && *q != '"'; q++) {
					if (*q == '\\' && (q[1] == '"' || q[1] == '\\'))
						q++;
					buf_addch(&b, *q);
				}
				if (!*q) {
					*bad = (size_t)(p - line);
					buf_release(&b);
					inv_toks_release(out);
					return -EINVAL;
				}
				p = q + 1;
			} else if (*p == '\\' && p[1]) {
				buf_addch(&b, p[1]);
				p += 2;
			} else {
				buf_addch(&b, *p++);
			}
		}
		out->v = xgrow(out->v, out->n + 1, &out->alloc, sizeof(*out->v));
		out->v[out->n++] = (struct tok){ buf_detach(&b, NULL), col };
	}
}

/* ---- resolution and import ---------------------------------------------- */

/* parents[] of every group, from children lists (children are created). */
static void build_parents(struct inv *iv)
{
	for (size_t p = 0; p < iv->ngroups; p++)
		for (size_t i = 0; i < iv->groups[p].children.n; i++) {
			ssize_t k = group_find(iv, iv->groups[p].children.v[i]);
			if (k < 0)
				continue;
			struct igroup *c = &iv->groups[k];
			c->parents = xgrow(c->parents, c->nparents + 1, &c->aparents,
					   sizeof(*c->parents));
			c->parents[c->nparents++] = p;
		}
}

/*
 * The groups whose vars apply to host h, nearest first: its own groups,
 * then their parents breadth-first, "all" last.  Returns the count.
 */
static size_t host_chain(const struct inv *iv, const struct ihost *h, size_t *chain,
			 bool *seen)
{
	size_t n = 0;
	ssize_t all = group_find(iv, "all");

	memset(seen, 0, iv->ngroups * sizeof(*seen));
	if (all >= 0)
		seen[all] = true;
	for (size_t i = 0; i < h->groups.n; i++) {
		ssize_t k = group_find(iv, h->groups.v[i]);
		if (k >= 0 && !seen[k]) {
			seen[k] = true;
			chain[n++] = (size_t)k;
		}
	}
	for (size_t head = 0; head < n; head++) {
		const struct igroup *g = &iv->groups[chain[head]];
		for (size_t i = 0; i < g->nparents; i++)
			if (!seen[g->parents[i]]) {
				seen[g->parents[i]] = true;
				chain[n++] = g->parents[i];
			}
	}
	if (all >= 0)
		chain[n++] = (size_t)all;
	return n;
}

static const struct ivar *host_var(const struct inv *iv, const struct ihost *h,
				   const size_t *chain, size_t nchain, const char *key)
{
	const struct ivar *v = ivars_get(&h->vars, key);
	for (size_t i = 0; !v && i < nchain; i++)
		v = ivars_get(&iv->groups[chain[i]].vars, key);
	return v;
}

static int var_err(struct inv *iv, const struct ivar *v, const char *host, const char *fmt,
		   ...) PRINTF(4, 5);

static int var_err(struct inv *iv, const struct ivar *v, const char *host, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_at(iv->e, v->file, v->line, v->col, "host '%s': %s: %s", host, v->key, msg);
}

/* A var as text: strings as they are, integers printed; else NULL. */
static const char *var_text(const struct ivar *v, char *tmp, size_t n)
{
	if (json_is_string(v->val))
		return json_string_value(v->val);
	if (json_is_integer(v->val)) {
		snprintf(tmp, n, "%lld", (long long)json_integer_value(v->val));
		return tmp;
	}
	return NULL;
}

/*
 * The jump host in ssh arguments: "-J x", "-o ProxyJump=x", or
 * "-o ProxyCommand=ssh -W %h:%p [-q] [-l user] [-p port] [user@]host".
 * *found is false when the arguments name none.
 */
static int ssh_args_bastion(const char *args, struct endpoint *out, bool *found, char *why,
			    size_t nwhy)
{
	struct toks t = { 0 }, pc = { 0 };
	size_t bad;
	int r = 0;

	*found = false;
	if (inv_shell_split(args, &t, &bad) < 0) {
		snprintf(why, nwhy, "unterminated quote");
		return -EINVAL;
	}
	for (size_t i = 0; i < t.n && r == 0; i++) {
		const char *a = t.v[i].s, *jump = NULL, *cmd = NULL, *opt = NULL;
		if (!strcmp(a, "-J") || !strcmp(a, "-o")) {
			if (i + 1 >= t.n) {
				snprintf(why, nwhy, "'%s' needs a value", a);
				r = -EINVAL;
				break;
			}
			if (a[1] == 'J')
				jump = t.v[++i].s;
			else
				opt = t.v[++i].s;
		} else if (str_starts(a, "-J")) {
			jump = a + 2;
		} else if (str_starts(a, "-o")) {
			opt = a + 2;
		}
		if (opt) {
			size_t kl = strcspn(opt, "= \t");
			const char *val = opt + kl;
			while (*val == '=' || *val == ' ' || *val == '\t')
				val++;
			if (kl == 9 && !strncasecmp(opt, "ProxyJump", 9))
				jump = val;
			else if (kl == 12 && !strncasecmp(opt, "ProxyCommand", 12))
				cmd = val;
		}
		if (jump) {
			if (!strcmp(jump, "none"))
				continue;
			if (strchr(jump, ',')) {
				snprintf(why, nwhy, "more than one jump host is not supported");
				r = -EINVAL;
				break;
			}
			endpoint_release(out);
			if (endpoint_parse(jump, out) < 0) {
				snprintf(why, nwhy, "jump host '%.80s' is not [user@]host[:port]",
					 jump);
				r = -EINVAL;
				break;
			}
			*found = true;
		}
		if (cmd) {
			const char *user = NULL, *dest = NULL;
			uint64_t port = 0;
			bool w = false;
			inv_toks_release(&pc);
			if (!strcmp(cmd, "none"))
				continue;
			if (inv_shell_split(cmd, &pc, &bad) < 0 || pc.n == 0 ||
			    (strcmp(pc.v[0].s, "ssh") && !str_ends(pc.v[0].s, "/ssh")))
				goto bad_cmd;
			/* ssh takes options before and after the destination */
			size_t j, rest = 0;
			for (j = 1; j < pc.n && !rest; j++) {
				const char *o = pc.v[j].s;
				if (o[0] != '-') {
					if (dest)
						rest = j;   /* a remote command */
					else
						dest = o;
					continue;
				}
				if (o[1] && strchr("WplioFJ", o[1]) && !o[2]) {
					if (j + 1 >= pc.n)
						goto bad_cmd;
					const char *v = pc.v[++j].s;
					if (o[1] == 'W')
						w = strstr(v, "%h") != NULL;
					else if (o[1] == 'p' && parse_u64(v, 1, 65535, &port) < 0)
						goto bad_cmd;
					else if (o[1] == 'l')
						user = v;
				} else if (o[1] == 'p' && o[2]) {
					if (parse_u64(o + 2, 1, 65535, &port) < 0)
						goto bad_cmd;
				} else if (o[1] == 'l' && o[2]) {
					user = o + 2;
				} else if (o[1] == 'W' && o[2]) {
					w = strstr(o + 2, "%h") != NULL;
				} else if (!o[1] || !strchr("qATNCvx46aKknst", o[1])) {
					goto bad_cmd;
				}
			}
			if (!dest)
				goto bad_cmd;
			/* "ssh bastion nc %h %p" is the older spelling of -W */
			if (rest) {
				if (w || rest + 3 != pc.n ||
				    (strcmp(pc.v[rest].s, "nc") && strcmp(pc.v[rest].s, "netcat")) ||
				    strcmp(pc.v[rest + 1].s, "%h") || strcmp(pc.v[rest + 2].s, "%p"))
					goto bad_cmd;
				w = true;
			}
			if (!w)
				goto bad_cmd;
			endpoint_release(out);
			if (endpoint_parse(dest, out) < 0)
				goto bad_cmd;
			if (user && !out->user) {
				if (!valid_user_name(user))
					goto bad_cmd;
				out->user = xstrdup(user);
			}
			if (port)
				out->port = (int)port;
			*found = true;
			continue;
bad_cmd:
			snprintf(why, nwhy, "unsupported ProxyCommand '%.100s' (expected "
				 "'ssh -W %%h:%%p [-p PORT] [user@]host')", cmd);
			r = -EINVAL;
		}
	}
	inv_toks_release(&t);
	inv_toks_release(&pc);
	if (r < 0) {
		endpoint_release(out);
		*found = false;
	}
	return r;
}

/* Turn inventory host h into a node of the cluster. */
static int import_host(struct inv *iv, const struct ihost *h, const size_t *chain,
		       size_t nchain)
{
	struct cluster *c = iv->c;
	const struct ivar *v;
	char tmp[40], why[300];
	const char *s;
	int r = 0;

	struct node *n = &c->nodes[c->nnodes++];   /* reserved by inv_import() */
	memset(n, 0, sizeof(*n));
	n->name = xstrdup(h->name);
	cluster_index_node(c, c->nnodes - 1);
	n->mark = (struct mark){ iv->file, h->line, h->col };
	n->labels = json_object();
	n->vars = json_object();

	if ((v = host_var(iv, h, chain, nchain, "ansible_host")) ||
	    (v = host_var(iv, h, chain, nchain, "ansible_ssh_host"))) {
		if (!json_is_string(v->val) || !valid_address(json_string_value(v->val)))
			return var_err(iv, v, h->name, "not an IPv4/IPv6 address or DNS name");
		n->address = xstrdup(json_string_value(v->val));
	} else {
		if (!valid_address(h->name))
			return err_at(iv->e, iv->file, h->line, h->col, "host '%s': the name is "
				      "not an address and no ansible_host is set", h->name);
		n->address = xstrdup(h->name);
	}
	if ((v = host_var(iv, h, chain, nchain, "ansible_port")) ||
	    (v = host_var(iv, h, chain, nchain, "ansible_ssh_port"))) {
		uint64_t p;
		s = var_text(v, tmp, sizeof(tmp));
		if (!s || parse_u64(s, 1, 65535, &p) < 0)
			return var_err(iv, v, h->name, "expected an integer in 1..65535");
		n->port = (int)p;
	}
	if ((v = host_var(iv, h, chain, nchain, "ansible_user")) ||
	    (v = host_var(iv, h, chain, nchain, "ansible_ssh_user"))) {
		s = var_text(v, tmp, sizeof(tmp));
		if (!s || !valid_user_name(s))
			return var_err(iv, v, h->name, "not a valid user name");
		n->user = xstrdup(s);
	}
	static const char *const argkeys[] = { "ansible_ssh_common_args",
		"ansible_ssh_extra_args" };
	for (size_t k = 0; k < ARRAY_SIZE(argkeys); k++) {
		struct endpoint ep = { 0 };
		bool found;
		if (!(v = host_var(iv, h, chain, nchain, argkeys[k])))
			continue;
		if (!json_is_string(v->val))
			return var_err(iv, v, h->name, "expected a string");
		if (ssh_args_bastion(json_string_value(v->val), &ep, &found, why,
				     sizeof(why)) < 0)
			return var_err(iv, v, h->name, "%s", why);
		if (found) {
			endpoint_release(n->bastion);
			free(n->bastion);
			n->bastion = xcalloc(1, sizeof(*n->bastion));
			*n->bastion = ep;
		}
	}
	if ((v = host_var(iv, h, chain, nchain, "kiln_roles"))) {
		if (json_is_string(v->val)) {
			char *copy = xstrdup(json_string_value(v->val)), *save = NULL;
			for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
				strv_push(&n->roles, str_trim(t));
			free(copy);
		} else if (json_is_array(v->val)) {
			size_t i;
			json_t *it;
			json_array_foreach(v->val, i, it) {
				if (!json_is_string(it))
					return var_err(iv, v, h->name, "expected a list of role names");
				strv_push(&n->roles, json_string_value(it));
			}
		} else {
			return var_err(iv, v, h->name, "expected a list of role names");
		}
		for (size_t i = 0; i < n->roles.n; i++)
			if (!valid_role(n->roles.v[i]))
				return var_err(iv, v, h->name, "'%.64s' is not a valid role name "
					       "(a-z, 0-9, '-', '_')", n->roles.v[i]);
	}
	if ((v = host_var(iv, h, chain, nchain, "kiln_site"))) {
		if (!json_is_string(v->val) || !valid_role(json_string_value(v->val)))
			return var_err(iv, v, h->name, "expected a site name (a-z, 0-9, '-', '_')");
		n->site = xstrdup(json_string_value(v->val));
	}
	if ((v = host_var(iv, h, chain, nchain, "kiln_labels"))) {
		const char *k;
		json_t *it;
		if (!json_is_object(v->val))
			return var_err(iv, v, h->name, "expected a mapping of labels");
		json_object_foreach(v->val, k, it) {
			if (!valid_label_key(k) || !json_is_string(it))
				return var_err(iv, v, h->name, "label '%.64s': expected a valid "
					       "key and a string value", k);
			json_object_set(n->labels, k, it);
		}
	}
	for (size_t i = 0; i < h->groups.n; i++)
		if (strcmp(h->groups.v[i], "all") && strcmp(h->groups.v[i], "ungrouped"))
			strv_push(&n->groups, h->groups.v[i]);
	for (size_t i = 0; i < h->vars.n; i++)
		if (!is_consumed(h->vars.v[i].key))
			json_object_set(n->vars, h->vars.v[i].key, h->vars.v[i].val);
	return r;
}

/* Groups into the model; an existing (spec) group keeps its own values. */
static void import_groups(struct inv *iv)
{
	struct cluster *c = iv->c;

	c->groups = xrealloc(c->groups, (c->ngroups + iv->ngroups) * sizeof(*c->groups));
	for (size_t i = 0; i < iv->ngroups; i++) {
		const struct igroup *ig = &iv->groups[i];
		json_t *target;
		if (!strcmp(ig->name, "ungrouped"))
			continue;
		if (!strcmp(ig->name, "all")) {
			target = c->vars;
		} else {
			struct group *g = cluster_group(c, ig->name);
			if (!g) {
				g = &c->groups[c->ngroups++];   /* reserved below */
				memset(g, 0, sizeof(*g));
				g->name = xstrdup(ig->name);
				g->vars = json_object();
				g->mark = (struct mark){ iv->file, ig->line, ig->col };
			}
			for (size_t k = 0; k < ig->children.n; k++)
				if (strcmp(ig->children.v[k], "ungrouped") &&
				    strcmp(ig->children.v[k], "all"))
					strv_push_unique(&g->children, ig->children.v[k]);
			target = g->vars;
		}
		for (size_t k = 0; k < ig->vars.n; k++)
			if (!is_consumed(ig->vars.v[k].key) &&
			    !json_object_get(target, ig->vars.v[k].key))
				json_object_set(target, ig->vars.v[k].key, ig->vars.v[k].val);
	}
}

/*
 * A host that is already a node (from the spec or an earlier inventory)
 * is an error; we report the earliest such host.  Looking the existing
 * nodes up in our hash keeps this linear.
 */
static int check_dup_names(struct inv *iv)
{
	const struct cluster *c = iv->c;
	ssize_t first_host = -1;
	const struct node *old = NULL;

	for (size_t i = 0; i < c->nnodes; i++) {
		ssize_t k = host_find(iv, c->nodes[i].name);
		if (k >= 0 && (first_host < 0 || k < first_host)) {
			first_host = k;
			old = &c->nodes[i];
		}
	}
	if (!old)
		return 0;
	const struct ihost *h = &iv->hosts[first_host];
	char first[300];
	if (old->mark.file && strcmp(old->mark.file, iv->file))
		snprintf(first, sizeof(first), "%s:%d", old->mark.file, old->mark.line);
	else
		snprintf(first, sizeof(first), "line %d", old->mark.line);
	return err_at(iv->e, iv->file, h->line, h->col,
		      "duplicate node name '%s' (first at %s)", h->name, first);
}

/* Resolve every host (in order of first appearance), then the groups. */
static int inv_import(struct inv *iv)
{
	size_t *chain = xmalloc((iv->ngroups + 1) * sizeof(*chain));
	bool *seen = xcalloc(iv->ngroups + 1, sizeof(*seen));
	int r;

	if ((r = check_dup_names(iv)) < 0)
		goto out;
	build_parents(iv);
	/* one allocation: appending one by one is quadratic for big inventories */
	iv->c->nodes = xrealloc(iv->c->nodes, (iv->c->nnodes + iv->nhosts) * sizeof(*iv->c->nodes));
	for (size_t i = 0; i < iv->nhosts && r == 0; i++) {
		size_t n = host_chain(iv, &iv->hosts[i], chain, seen);
		r = import_host(iv, &iv->hosts[i], chain, n);
	}
out:
	free(chain);
	free(seen);
	if (r == 0)
		import_groups(iv);
	return r;
}

/* Parse an inventory (form detected from content) and import it into c. */
int inventory_parse(struct cluster *c, const char *display, const char *text, size_t len,
		    struct kerr *e)
{
	struct inv iv = { .c = c, .file = display, .e = e };
	int r;

	/* a UTF-8 byte order mark: libyaml skips it, INI lines must too */
	size_t bom = len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? 3 : 0;
	if (inv_looks_like_yaml(text + bom, len - bom))
		r = inv_yaml_parse(&iv, text, len);
	else
		r = inv_ini_parse(&iv, text + bom, len - bom);
	if (r == 0)
		r = inv_import(&iv);
	inv_release(&iv);
	return r;
}

int inventory_load_string(struct cluster *c, const char *name, const char *text, size_t len,
			  struct kerr *e)
{
	int r = inventory_parse(c, cluster_add_file(c, name), text, len, e);
	if (r == 0)
		r = cluster_check_groups(c, e);
	if (r == 0)
		r = cluster_check_addresses(c, e);
	return r;
}

int inventory_load(struct cluster *c, const char *path, struct kerr *e)
{
	struct buf b;
	int r;

	char *abs = spec_abs_path(c->dir, path);
	char *display = c->files.n ? spec_display_path(c->files.v[0], path) : xstrdup(path);
	buf_init(&b, 0);
	r = spec_read_file(c, abs, &b, SPEC_MAX_FILE);
	if (r < 0)
		r = kerr_set(e, r, "%s: %s", display, spec_read_error(r));
	else
		r = inventory_load_string(c, display, b.s, b.len, e);
	buf_release(&b);
	free(abs);
	free(display);
	return r;
}
