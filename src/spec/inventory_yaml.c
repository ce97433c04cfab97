/*
 * Ansible YAML inventories into the small inventory (inventory_int.h):
 * groups with hosts, vars and children, nested under "all" or not.
 */
#include "inventory_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int yinv_vars(struct inv *iv, const struct ynode *m, struct ivars *vs,
		     const char *what)
{
	if (ynode_is_null(m))
		return 0;
	if (m->kind != Y_MAP)
		return err_at(iv->e, iv->file, m->line, m->col, "%s: expected a mapping, "
			      "found %s", what, ynode_kind_name(m));
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i), *v = ymap_val(m, i);
		if (!inv_valid_var_name(k->str)) {
			char tmp[80];
			str_sanitize(tmp, sizeof(tmp), k->str, k->len);
			return err_at(iv->e, iv->file, k->line, k->col,
				      "invalid variable name '%s'", tmp);
		}
		json_t *j = ynode_to_json(v, iv->file, &iv->budget, iv->e);
		if (!j)
			return -EINVAL;
		inv_vars_set(vs, k->str, j, iv->file, v->line, v->col);
	}
	return 0;
}

/*
 * A group of a YAML inventory: {hosts, children, vars}; children are
 * walked recursively (the YAML depth limit bounds the recursion).
 */
static int yinv_group(struct inv *iv, const struct ynode *key, const struct ynode *m)
{
	static const char *const keys[] = { "hosts", "children", "vars", NULL };
	struct igroup *g;
	char tmp[80];
	int r;

	if ((r = inv_group_get(iv, key->str, key->line, key->col, &g)) < 0)
		return r;
	size_t gi = (size_t)(g - iv->groups);
	char *what = xasprintf("group '%s'", key->str);
	if (ynode_is_null(m))
		goto out;
	if (m->kind != Y_MAP) {
		r = err_at(iv->e, iv->file, m->line, m->col, "%s: expected a mapping, found %s",
			   what, ynode_kind_name(m));
		goto out;
	}
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i);
		const char *const *a;
		for (a = keys; *a && strcmp(*a, k->str); a++)
			;
		if (!*a) {
			str_sanitize(tmp, sizeof(tmp), k->str, k->len);
			r = err_at(iv->e, iv->file, k->line, k->col, "unknown key '%s' in %s "
				   "(expected one of: hosts, children, vars)", tmp, what);
			goto out;
		}
	}
	const struct ynode *hosts = ymap_get(m, "hosts"), *children = ymap_get(m, "children");
	char *w = xasprintf("%s: vars", what);
	r = yinv_vars(iv, ymap_get(m, "vars"), &iv->groups[gi].vars, w);
	free(w);
	if (r < 0)
		goto out;
	if (hosts && !ynode_is_null(hosts)) {
		if (hosts->kind != Y_MAP) {
			r = err_at(iv->e, iv->file, hosts->line, hosts->col, "%s: hosts: expected "
				   "a mapping of host names, found %s", what,
				   ynode_kind_name(hosts));
			goto out;
		}
		for (size_t i = 0; i < ymap_len(hosts); i++) {
			const struct ynode *hk = ymap_key(hosts, i), *hv = ymap_val(hosts, i);
			struct strv names = STRV_INIT;
			if ((r = inv_hosts_from_pattern(iv, hk->str, hk->line, hk->col, &names)) < 0) {
				strv_release(&names);
				goto out;
			}
			w = xasprintf("host '%s'", hk->str);
			for (size_t j = 0; j < names.n && r == 0; j++) {
				struct ihost *h;
				if ((r = inv_host_get(iv, names.v[j], hk->line, hk->col, &h)) < 0)
					break;
				strv_push_unique(&h->groups, iv->groups[gi].name);
				r = yinv_vars(iv, hv, &h->vars, w);
			}
			free(w);
			strv_release(&names);
			if (r < 0)
				goto out;
		}
	}
	if (children && !ynode_is_null(children)) {
		if (children->kind != Y_MAP) {
			r = err_at(iv->e, iv->file, children->line, children->col, "%s: children: "
				   "expected a mapping of groups, found %s", what,
				   ynode_kind_name(children));
			goto out;
		}
		for (size_t i = 0; i < ymap_len(children); i++) {
			const struct ynode *ck = ymap_key(children, i);
			if ((r = yinv_group(iv, ck, ymap_val(children, i))) < 0)
				goto out;
			strv_push_unique(&iv->groups[gi].children, ck->str);
		}
	}
out:
	free(what);
	return r;
}

/* A YAML inventory: the top level maps group names (normally "all"). */
int inv_yaml_parse(struct inv *iv, const char *text, size_t len)
{
	struct ydoc d;
	int r;

	if ((r = ydoc_parse(&d, iv->file, text, len, iv->e)) < 0)
		return r;
	iv->budget = ydoc_budget(&d);
	const struct ynode *root = d.root;
	if (root && !ynode_is_null(root)) {
		if (root->kind != Y_MAP) {
			r = err_at(iv->e, iv->file, root->line, root->col, "expected a mapping of "
				   "groups at the top level, found %s", ynode_kind_name(root));
			goto out;
		}
		for (size_t i = 0; i < ymap_len(root) && r == 0; i++)
			r = yinv_group(iv, ymap_key(root, i), ymap_val(root, i));
	}
out:
	ydoc_release(&d);
	return r;
}

/*
 * YAML when the first meaningful line is "---" or "key:" (a mapping key
 * without '='), INI otherwise (sections, "host k=v", "host:port").
 */
bool inv_looks_like_yaml(const char *text, size_t len)
{
	size_t off = 0;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		const char *s = text + off, *e = s + n;
		off += n + 1;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (s == e || *s == '#' || *s == ';')
			continue;
		if (*s == '[')
			return false;
		if (e - s >= 3 && !memcmp(s, "---", 3))
			return true;
		if (*s == '{')
			return true;
		const char *colon = memchr(s, ':', (size_t)(e - s));
		if (!colon || memchr(s, '=', (size_t)(e - s)))
			return false;
		return colon + 1 == e || colon[1] == ' ' || colon[1] == '\t';
	}
	return false;
}
