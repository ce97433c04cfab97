/* The model: allocation, lookups, node selection, variables, whole-model checks. */
#include "spec_int.h"
#include "stacks/stacks.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An empty cluster with the documented defaults, named after display. */
struct cluster *cluster_alloc(const char *display, const char *cwd)
{
	struct cluster *c = xcalloc(1, sizeof(*c));

	strv_push(&c->files, display);
	c->path = spec_abs_path(display[0] != '/' ? cwd : NULL, display);
	const char *slash = strrchr(c->path, '/');
	c->dir = slash == c->path ? xstrdup("/") : xstrndup(c->path, (size_t)(slash - c->path));
	c->ssh.user = xstrdup("root");
	c->ssh.port = 22;
	c->ssh.hostkey = HOSTKEY_STRICT;
	c->ssh.connect_timeout_s = 10;
	c->ssh.command_timeout_s = 600;
	c->ssh.concurrency = 50;
	c->vars = json_object();
	return c;
}

void node_release(struct node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->address);
	free(n->user);
	endpoint_release(n->bastion);
	free(n->bastion);
	strv_release(&n->roles);
	free(n->site);
	strv_release(&n->groups);
	json_decref(n->labels);
	json_decref(n->vars);
	free(n->mac);
	free(n->boot_image);
	bmc_conf_free(n->bmc);
}

void group_release(struct group *g)
{
	if (!g)
		return;
	free(g->name);
	strv_release(&g->children);
	json_decref(g->vars);
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->path);
	free(c->dir);
	free(c->ssh.user);
	free(c->ssh.key);
	free(c->ssh.known_hosts);
	endpoint_release(c->ssh.bastion);
	free(c->ssh.bastion);
	json_decref(c->vars);
	for (size_t i = 0; i < c->ngroups; i++)
		group_release(&c->groups[i]);
	free(c->groups);
	for (size_t i = 0; i < c->nnodes; i++)
		node_release(&c->nodes[i]);
	free(c->nodes);
	for (size_t i = 0; i < stack_types_n; i++)
		if (c->stacks[i])
			stack_types[i]->free(c->stacks[i]);
	boot_conf_release(&c->boot);
	strv_release(&c->files);
	free(c->name_slots);
	free(c);
}

/* FNV-1a with a 64-bit finalizer (the slot mask takes the low bits). */
static size_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h;
}

static size_t *name_slot(const struct cluster *c, const char *name)
{
	size_t mask = c->name_nslots - 1;

	for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask)
		if (!c->name_slots[i] || !strcmp(c->nodes[c->name_slots[i] - 1].name, name))
			return &c->name_slots[i];
}

void cluster_index_node(struct cluster *c, size_t i)
{
	if ((c->name_n + 1) * 2 > c->name_nslots) {
		size_t n = c->name_nslots ? c->name_nslots * 2 : 64;
		free(c->name_slots);
		c->name_slots = xcalloc(n, sizeof(*c->name_slots));
		c->name_nslots = n;
		c->name_n = 0;
		for (size_t k = 0; k < c->nnodes; k++)
			if (k != i && c->nodes[k].name) {
				*name_slot(c, c->nodes[k].name) = k + 1;
				c->name_n++;
			}
	}
	*name_slot(c, c->nodes[i].name) = i + 1;
	c->name_n++;
}

struct node *cluster_node(const struct cluster *c, const char *name)
{
	if (!c->name_nslots)
		return NULL;
	size_t s = *name_slot(c, name);
	return s ? &c->nodes[s - 1] : NULL;
}

struct group *cluster_group(const struct cluster *c, const char *name)
{
	for (size_t i = 0; i < c->ngroups; i++)
		if (!strcmp(c->groups[i].name, name))
			return &c->groups[i];
	return NULL;
}

static ssize_t group_idx(const struct cluster *c, const char *name)
{
	const struct group *g = cluster_group(c, name);
	return g ? g - c->groups : -1;
}

bool cluster_node_in_group(const struct cluster *c, const struct node *n, const char *g)
{
	if (!strcmp(g, "all") || strv_contains(&n->groups, g))
		return true;
	ssize_t start = group_idx(c, g);
	if (start < 0)
		return false;
	/* breadth-first down through children; visited guards against cycles */
	bool *seen = xcalloc(c->ngroups, sizeof(*seen));
	size_t *queue = xmalloc(c->ngroups * sizeof(*queue)), head = 0, tail = 0;
	bool found = false;
	queue[tail++] = (size_t)start;
	seen[start] = true;
	while (head < tail && !found) {
		const struct group *grp = &c->groups[queue[head++]];
		for (size_t i = 0; i < grp->children.n && !found; i++) {
			const char *child = grp->children.v[i];
			if (strv_contains(&n->groups, child)) {
				found = true;
				break;
			}
			ssize_t k = group_idx(c, child);
			if (k >= 0 && !seen[k]) {
				seen[k] = true;
				queue[tail++] = (size_t)k;
			}
		}
	}
	free(seen);
	free(queue);
	return found;
}

const json_t *cluster_var(const struct cluster *c, const struct node *n, const char *name)
{
	const json_t *v = NULL;

	if (n && (v = json_object_get(n->vars, name)))
		return v;
	if (n && c->ngroups) {
		/* direct groups first, then their parents, nearest first; on the
		 * stack for the usual handful of groups (templates call this per
		 * variable per node) */
		bool seen_s[64] = { 0 };
		size_t queue_s[64], head = 0, tail = 0;
		bool small = c->ngroups <= ARRAY_SIZE(seen_s);
		bool *seen = small ? seen_s : xcalloc(c->ngroups, sizeof(*seen));
		size_t *queue = small ? queue_s : xmalloc(c->ngroups * sizeof(*queue));
		for (size_t i = 0; i < n->groups.n; i++) {
			ssize_t k = group_idx(c, n->groups.v[i]);
			if (k >= 0 && !seen[k]) {
				seen[k] = true;
				queue[tail++] = (size_t)k;
			}
		}
		while (head < tail && !v) {
			const struct group *g = &c->groups[queue[head++]];
			if ((v = json_object_get(g->vars, name)))
				break;
			for (size_t k = 0; k < c->ngroups; k++)
				if (!seen[k] && strv_contains(&c->groups[k].children, g->name)) {
					seen[k] = true;
					queue[tail++] = k;
				}
		}
		if (!small) {
			free(seen);
			free(queue);
		}
		if (v)
			return v;
	}
	return json_object_get(c->vars, name);
}

const char *node_user(const struct cluster *c, const struct node *n)
{
	if (n && n->user)
		return n->user;
	return c->ssh.user ? c->ssh.user : "root";
}

int node_port(const struct cluster *c, const struct node *n)
{
	if (n && n->port)
		return n->port;
	return c->ssh.port ? c->ssh.port : 22;
}

const struct endpoint *node_bastion(const struct cluster *c, const struct node *n)
{
	if (n && n->bastion)
		return n->bastion;
	return c->ssh.bastion;
}

/* Apply one --limit term to sel (set, or clear when excluding). */
static int select_term(const struct cluster *c, const char *t, bool *sel, bool on)
{
	int hits = 0;
	const struct node *n = cluster_node(c, t);

	if (n) {
		sel[n - c->nodes] = on;
		return 1;
	}
	bool is_group = !strcmp(t, "all") || cluster_group(c, t);
	for (size_t i = 0; i < c->nnodes; i++) {
		bool m = is_group ? cluster_node_in_group(c, &c->nodes[i], t)
				  : fnmatch(t, c->nodes[i].name, 0) == 0;
		if (m) {
			sel[i] = on;
			hits++;
		}
	}
	return is_group ? INT_MAX : hits;   /* a defined group may be empty */
}

int cluster_select(const struct cluster *c, const char *pattern, bool *sel, struct kerr *e)
{
	char *copy = xstrdup(pattern ? pattern : ""), *save = NULL;
	int r = 0, count = 0;
	bool any_include = false;

	memset(sel, 0, c->nnodes * sizeof(*sel));
	/* with only exclusions ("!gpu"), start from every node */
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (*str_trim(t) && t[0] != '!')
			any_include = true;
	free(copy);
	if (!any_include)
		for (size_t i = 0; i < c->nnodes; i++)
			sel[i] = true;
	copy = xstrdup(pattern ? pattern : "");
	save = NULL;
	bool terms = false;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		str_trim(t);
		if (!*t)
			continue;
		terms = true;
		bool on = t[0] != '!';
		const char *term = on ? t : t + 1;
		if (!*term || select_term(c, term, sel, on) == 0) {
			r = kerr_set(e, -EINVAL, "--limit: '%s' matches no node or group", term);
			goto out;
		}
	}
	if (!terms) {
		r = kerr_set(e, -EINVAL, "--limit: empty pattern");
		goto out;
	}
	for (size_t i = 0; i < c->nnodes; i++)
		count += sel[i];
	r = count;
out:
	free(copy);
	return r;
}

/* ---- whole-model checks --------------------------------------------------- */

/*
 * Reject cycles in group children.  Iterative depth-first search (groups
 * may be many), reporting the cycle as "a -> b -> a" at the first group.
 */
int cluster_check_groups(struct cluster *c, struct kerr *e)
{
	size_t ng = c->ngroups;
	unsigned char *color = xcalloc(ng, 1);     /* 0 new, 1 on stack, 2 done */
	size_t *stk = xmalloc((ng + 1) * sizeof(*stk)), *next = xmalloc((ng + 1) * sizeof(*next));
	int r = 0;

	for (size_t s = 0; s < ng && r == 0; s++) {
		if (color[s])
			continue;
		size_t top = 0;
		stk[top] = s;
		next[top] = 0;
		color[s] = 1;
		while (r == 0) {
			struct group *g = &c->groups[stk[top]];
			if (next[top] >= g->children.n) {
				color[stk[top]] = 2;
				if (top == 0)
					break;
				top--;
				continue;
			}
			ssize_t k = group_idx(c, g->children.v[next[top]++]);
			if (k < 0 || color[k] == 2)
				continue;
			if (color[k] == 0) {
				color[k] = 1;
				stk[++top] = (size_t)k;
				next[top] = 0;
				continue;
			}
			/* k is on the stack: the cycle runs from k to the top */
			size_t from = 0;
			while (stk[from] != (size_t)k)
				from++;
			struct buf b;
			buf_init(&b, 600);
			for (size_t i = from; i <= top; i++)
				buf_printf(&b, "%s -> ", c->groups[stk[i]].name);
			if (buf_adds(&b, c->groups[k].name) < 0)
				buf_adds(&b, "...");
			const struct group *first = &c->groups[k];
			r = err_at(e, first->mark.file ? first->mark.file : c->files.v[0],
				   first->mark.line, first->mark.col,
				   "group '%s': cycle in children: %s", first->name, b.s);
			buf_release(&b);
		}
	}
	free(color);
	free(stk);
	free(next);
	return r;
}

struct addr_key {
	const struct cluster *c;
	size_t i;
};

/* Order by (address, port, bastion host, bastion port), then position. */
static int addr_cmp(const void *a, const void *b)
{
	const struct addr_key *x = a, *y = b;
	const struct cluster *c = x->c;
	const struct node *n = &c->nodes[x->i], *m = &c->nodes[y->i];
	int r = strcasecmp(n->address, m->address);
	if (r)
		return r;
	int pn = node_port(c, n), pm = node_port(c, m);
	if (pn != pm)
		return pn < pm ? -1 : 1;
	const struct endpoint *bn = node_bastion(c, n), *bm = node_bastion(c, m);
	r = strcasecmp(bn ? bn->host : "", bm ? bm->host : "");
	if (r)
		return r;
	int qn = bn ? bn->port : 0, qm = bm ? bm->port : 0;
	if (qn != qm)
		return qn < qm ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Two nodes reached at the same address and port through the same bastion
 * are one machine written twice.  Sorting keeps this O(n log n).
 */
int cluster_check_addresses(struct cluster *c, struct kerr *e)
{
	if (c->nnodes < 2)
		return 0;
	struct addr_key *v = xmalloc(c->nnodes * sizeof(*v));
	for (size_t i = 0; i < c->nnodes; i++)
		v[i] = (struct addr_key){ c, i };
	qsort(v, c->nnodes, sizeof(*v), addr_cmp);
	size_t run = 0, dup = SIZE_MAX, first = 0;
	for (size_t i = 1; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[v[i - 1].i], *m = &c->nodes[v[i].i];
		const struct endpoint *bn = node_bastion(c, n), *bm = node_bastion(c, m);
		bool same = !strcasecmp(n->address, m->address) &&
			    node_port(c, n) == node_port(c, m) &&
			    !strcasecmp(bn ? bn->host : "", bm ? bm->host : "") &&
			    (bn ? bn->port : 0) == (bm ? bm->port : 0);
		if (!same) {
			run = i;
			continue;
		}
		if (dup == SIZE_MAX || v[i].i < dup) {
			dup = v[i].i;
			first = v[run].i;
		}
	}
	free(v);
	if (dup == SIZE_MAX)
		return 0;
	const struct node *n = &c->nodes[dup], *f = &c->nodes[first];
	char where[300];
	if (f->mark.file && n->mark.file && strcmp(f->mark.file, n->mark.file))
		snprintf(where, sizeof(where), "%s:%d", f->mark.file, f->mark.line);
	else
		snprintf(where, sizeof(where), "line %d", f->mark.line);
	return err_at(e, n->mark.file ? n->mark.file : c->files.v[0], n->mark.line,
		      n->mark.col, "node '%s': duplicate address '%s' port %d (node '%s' "
		      "at %s has the same)", n->name, n->address, node_port(c, n), f->name,
		      where);
}
