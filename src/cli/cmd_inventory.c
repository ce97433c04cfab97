/*
 * kiln inventory: the nodes, groups and variables of a spec as kiln resolved
 * them (like `ansible-inventory --list`), offline: nothing is contacted.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"

static bool arg_vars;

/* Does group g hold a selected node, directly or through its children? */
static bool group_selected(const struct cluster *c, const char *g, const bool *sel)
{
	for (size_t i = 0; i < c->nnodes; i++)
		if (sel[i] && cluster_node_in_group(c, &c->nodes[i], g))
			return true;
	return false;
}

/* The groups that are shown: every one, or with --limit those holding a selected node. */
static bool *groups_shown(const struct cluster *c, const bool *sel, bool limited)
{
	bool *shown = xcalloc(c->ngroups + 1, sizeof(*shown));

	for (size_t k = 0; k < c->ngroups; k++)
		shown[k] = !limited || group_selected(c, c->groups[k].name, sel);
	return shown;
}

static bool group_is_shown(const struct cluster *c, const bool *shown, const char *name)
{
	for (size_t k = 0; k < c->ngroups; k++)
		if (!strcmp(c->groups[k].name, name))
			return shown[k];
	return false;
}

/*
 * Every group n is in, directly or through children, sorted, then "all"
 * (its last entry).  The vector borrows the names from c.
 */
static const char **node_groups(const struct cluster *c, const struct node *n, size_t *count)
{
	const char **v = xcalloc(c->ngroups + 2, sizeof(*v));
	size_t k = 0;

	for (size_t g = 0; g < c->ngroups; g++)
		if (strcmp(c->groups[g].name, "all") &&
		    cluster_node_in_group(c, n, c->groups[g].name))
			v[k++] = c->groups[g].name;
	qsort(v, k, sizeof(*v), str_ptr_cmp);
	v[k++] = "all";
	*count = k;
	return v;
}

/*
 * The variables a template sees on n: every name set on the node, on a
 * group it is in (directly or through children) or on the cluster, each
 * with the value cluster_var() gives it, so the precedence is kiln's own.
 */
static json_t *node_vars(const struct cluster *c, const struct node *n)
{
	json_t *names = json_object(), *out = json_object();
	const char *key;
	json_t *val;

	json_object_update(names, c->vars);
	for (size_t g = 0; g < c->ngroups; g++)
		if (cluster_node_in_group(c, n, c->groups[g].name))
			json_object_update(names, c->groups[g].vars);
	json_object_update(names, n->vars);
	json_object_foreach(names, key, val) {
		const json_t *v = cluster_var(c, n, key);
		if (v)
			json_object_set(out, key, (json_t *)v);
	}
	json_decref(names);
	return out;
}

static json_t *strv_json(const struct strv *sv)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* A node's BMC without its secret: where the password comes from, never what it is. */
static json_t *bmc_json(const struct bmc_conf *b)
{
	if (!b)
		return json_null();
	int port = b->port ? b->port : b->type == BMC_REDFISH ? 443 : 623;
	return json_pack("{s:s, s:s, s:i, s:o, s:o, s:o}",
			 "type", b->type == BMC_REDFISH ? "redfish" : "ipmi",
			 "address", b->address, "port", port,
			 "user", str_or_null(b->user),
			 "password_file", str_or_null(b->password_file),
			 "password_env", str_or_null(b->password_env));
}

static json_t *bastion_json(const struct cluster *c, const struct node *n)
{
	const struct endpoint *b = node_bastion(c, n);

	if (!b)
		return json_null();
	/* a bastion without user is reached as the node's user (docs/spec.md) */
	return json_pack("{s:s, s:i, s:s}", "host", b->host, "port", b->port ? b->port : 22,
			 "user", b->user ? b->user : node_user(c, n));
}

static json_t *node_json(const struct cluster *c, const struct node *n)
{
	size_t ng;
	const char **groups = node_groups(c, n, &ng);
	json_t *g = json_array();

	for (size_t i = 0; i < ng; i++)
		json_array_append_new(g, json_string(groups[i]));
	free(groups);
	return json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:O, s:o, s:o, s:o, s:o, s:o, s:b}",
			 "address", n->address, "port", node_port(c, n),
			 "user", node_user(c, n), "site", n->site ? n->site : "default",
			 "roles", strv_json(&n->roles), "groups", g, "labels", n->labels,
			 "vars", node_vars(c, n), "bastion", bastion_json(c, n),
			 "bmc", bmc_json(n->bmc), "mac", str_or_null(n->mac),
			 "boot_image", str_or_null(n->boot_image), "enrolled", n->enrolled);
}

/* The whole inventory of the selected nodes (docs/spec.md "kiln inventory"). */
static json_t *inventory_json(const struct cluster *c, const bool *sel, const bool *shown)
{
	json_t *nodes = json_object(), *groups = json_object(), *all = json_array();

	for (size_t i = 0; i < c->nnodes; i++) {
		if (!sel[i])
			continue;
		json_object_set_new(nodes, c->nodes[i].name, node_json(c, &c->nodes[i]));
		json_array_append_new(all, json_string(c->nodes[i].name));
	}
	for (size_t k = 0; k < c->ngroups; k++) {
		const struct group *g = &c->groups[k];
		if (!shown[k])
			continue;
		json_t *children = json_array(), *hosts = json_array();
		for (size_t i = 0; i < g->children.n; i++)
			if (group_is_shown(c, shown, g->children.v[i]))
				json_array_append_new(children, json_string(g->children.v[i]));
		for (size_t i = 0; i < c->nnodes; i++)
			if (sel[i] && strv_contains(&c->nodes[i].groups, g->name))
				json_array_append_new(hosts, json_string(c->nodes[i].name));
		json_object_set_new(groups, g->name,
				    json_pack("{s:o, s:o, s:O}", "children", children,
					      "hosts", hosts, "vars", g->vars));
	}
	return json_pack("{s:s, s:o, s:o, s:{s:o, s:O}}", "cluster", c->name,
			 "nodes", nodes, "groups", groups,
			 "all", "hosts", all, "vars", c->vars);
}

/* ---- text ------------------------------------------------------------- */

/* Print s escaped for the terminal (one field, one line). */
static void put_tty(const char *s)
{
	char *t = str_tty(s, 0);
	fputs(t, stdout);
	free(t);
}

/* One variable as key=value: strings as they are, other values as compact JSON. */
static void put_var(const char *key, const json_t *v)
{
	fputs("    ", stdout);
	put_tty(key);
	putchar('=');
	if (json_is_string(v)) {
		put_tty(json_string_value(v));
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS |
					JSON_ENSURE_ASCII);
		put_tty(s);
		free(s);
	}
	putchar('\n');
}

/* A group and what is under it, indented by depth (children cannot cycle: spec_load refuses). */
static void put_group(const struct cluster *c, size_t k, const bool *sel,
		      const bool *shown, int depth)
{
	const struct group *g = &c->groups[k];

	printf("%*s@", depth * 2, "");
	put_tty(g->name);
	fputs(":\n", stdout);
	for (size_t i = 0; i < g->children.n; i++)
		for (size_t j = 0; j < c->ngroups; j++)
			if (shown[j] && !strcmp(c->groups[j].name, g->children.v[i]))
				put_group(c, j, sel, shown, depth + 1);
	for (size_t i = 0; i < c->nnodes; i++) {
		if (sel[i] && strv_contains(&c->nodes[i].groups, g->name)) {
			printf("%*s", (depth + 1) * 2, "");
			put_tty(c->nodes[i].name);
			putchar('\n');
		}
	}
}

static bool is_child(const struct cluster *c, const char *name)
{
	for (size_t k = 0; k < c->ngroups; k++)
		if (strv_contains(&c->groups[k].children, name))
			return true;
	return false;
}

/* Has n a direct group other than "all"? */
static bool has_group(const struct node *n)
{
	for (size_t i = 0; i < n->groups.n; i++)
		if (strcmp(n->groups.v[i], "all"))
			return true;
	return false;
}

static void put_text(const struct cluster *c, const bool *sel, const bool *shown)
{
	size_t wname = 0, waddr = 0;

	fputs("cluster ", stdout);
	put_tty(c->name);
	fputs("\n\n@all:\n", stdout);
	/* the tree: groups nobody names as a child at the top, then the ungrouped */
	for (size_t k = 0; k < c->ngroups; k++)
		if (shown[k] && !is_child(c, c->groups[k].name))
			put_group(c, k, sel, shown, 1);
	for (size_t i = 0; i < c->nnodes; i++) {
		if (sel[i] && !has_group(&c->nodes[i])) {
			fputs("  ", stdout);
			put_tty(c->nodes[i].name);
			putchar('\n');
		}
	}
	putchar('\n');
	for (size_t i = 0; i < c->nnodes; i++) {
		if (!sel[i])
			continue;
		char *name = str_tty(c->nodes[i].name, 0), *addr = str_tty(c->nodes[i].address, 0);
		if (strlen(name) > wname)
			wname = strlen(name);
		if (strlen(addr) > waddr)
			waddr = strlen(addr);
		free(name);
		free(addr);
	}
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[i];
		if (!sel[i])
			continue;
		char *name = str_tty(n->name, 0), *addr = str_tty(n->address, 0);
		printf("%-*s  %-*s  site=", (int)wname, name, (int)waddr, addr);
		free(name);
		free(addr);
		put_tty(n->site ? n->site : "default");
		fputs(" roles=", stdout);
		for (size_t r = 0; r < n->roles.n; r++) {
			if (r)
				putchar(',');
			put_tty(n->roles.v[r]);
		}
		if (!n->roles.n)
			putchar('-');
		size_t ng;
		const char **groups = node_groups(c, n, &ng);
		fputs(" groups=", stdout);
		for (size_t g = 0; g < ng; g++) {
			if (g)
				putchar(',');
			put_tty(groups[g]);
		}
		free(groups);
		putchar('\n');
		if (arg_vars) {
			json_t *vars = node_vars(c, n);
			const char **keys = xcalloc(json_object_size(vars) + 1, sizeof(*keys));
			const char *key;
			json_t *v;
			size_t nk = 0;
			json_object_foreach(vars, key, v)
				keys[nk++] = key;
			qsort(keys, nk, sizeof(*keys), str_ptr_cmp);
			for (size_t k = 0; k < nk; k++)
				put_var(keys[k], json_object_get(vars, keys[k]));
			free(keys);
			json_decref(vars);
		}
	}
}

static int run(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	const char *limit = NULL;
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	bool *sel = NULL, *shown = NULL;
	int rc = 1;

	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			return 1;
		if (n > 0)
			continue;
		if (!strcmp(argv[i], "--limit") || !strcmp(argv[i], "-l")) {
			if (i + 1 >= argc)
				return cli_error("inventory: option '%s' needs a value", argv[i]);
			limit = argv[i + 1];
			i += 2;
		} else if (str_starts(argv[i], "--limit=")) {
			limit = argv[i] + 8;
			i++;
		} else if (!strcmp(argv[i], "--vars")) {
			arg_vars = true;
			i++;
		} else {
			return cli_error("inventory: unknown argument '%s' (see 'kiln inventory --help')",
					 argv[i]);
		}
	}
	if ((rc = cli_open(&a, &c, NULL, CLI_STATE_READ)))
		goto out;
	sel = xcalloc(c->nnodes + 1, sizeof(*sel));
	if (limit) {
		if (cluster_select(c, limit, sel, &e) < 0) {
			rc = cli_error("%s", e.msg);
			goto out;
		}
	} else {
		for (size_t i = 0; i < c->nnodes; i++)
			sel[i] = true;
	}
	shown = groups_shown(c, sel, limit != NULL);
	if (arg_output == OUTPUT_JSON) {
		json_t *j = inventory_json(c, sel, shown);
		/* sorted keys: the same spec always prints the same bytes */
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else {
		put_text(c, sel, shown);
	}
	rc = 0;
out:
	free(sel);
	free(shown);
	cluster_free(c);
	return rc;
}

const struct command cmd_inventory = {
	.name = "inventory",
	.run = run,
	.summary = "show nodes, groups and variables as kiln resolved them",
	.help = "NAME\n    kiln inventory - the nodes, groups and variables of a spec, resolved\n\n"
		"SYNOPSIS\n    kiln inventory [-f FILE] [--limit PATTERN] [--vars] [-o json]\n\n"
		"DESCRIPTION\n"
		"    Loads the spec (and the Ansible inventories it imports) and shows what\n"
		"    kiln made of it, like 'ansible-inventory --list': every node with its\n"
		"    effective address, port, user, site, roles, labels and BMC, every group\n"
		"    with its children, member nodes and variables, and each node's variables\n"
		"    merged as templates see them. Nothing is contacted; no state is read.\n\n"
		"    A node's variables: its own vars win over its groups' vars, which win\n"
		"    over the cluster's vars. Among several groups, the node's own groups\n"
		"    come first (in the order listed for the node), then their parent groups\n"
		"    breadth-first, nearest first; the first group that sets a name wins.\n\n"
		"    Text output: the group tree under @all (children indented under their\n"
		"    parents, member nodes under their groups, nodes in no group last), then\n"
		"    one line per node: NAME  ADDRESS  site=SITE roles=ROLES groups=GROUPS\n"
		"    (every group the node is in, directly or through children, and all).\n"
		"    Text from the spec is shown escaped, never interpreted by the terminal.\n\n"
		"    JSON output (-o json), keys sorted:\n"
		"      {\"cluster\": NAME,\n"
		"       \"nodes\": {NAME: {address, port, user, site, roles, groups, labels,\n"
		"                        vars, bastion, bmc, mac, boot_image, enrolled}},\n"
		"       \"groups\": {NAME: {children, hosts, vars}},\n"
		"       \"all\": {hosts, vars}}\n"
		"    A group's hosts are its direct members; \"all\".hosts is every node in spec\n"
		"    order. bmc shows where the password comes from (password_file,\n"
		"    password_env), never the password. Absent mac, boot_image, bastion and\n"
		"    bmc are null.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE   the cluster spec (default cluster.yaml)\n"
		"    -l, --limit PATTERN\n"
		"                      only these nodes (names, groups, globs, !exclusions);\n"
		"                      groups holding none of them are left out\n"
		"    --vars            text output: each node's merged variables, one\n"
		"                      key=value line each (non-strings as JSON)\n"
		"    -o json           the inventory as JSON\n\n"
		"EXIT STATUS\n    0 the inventory was printed; 1 a bad spec or a --limit matching nothing\n\n"
		"EXAMPLES\n    kiln inventory -f lab/cluster.yaml\n"
		"    kiln inventory --limit gpu --vars\n"
		"    kiln inventory -o json | jq '.nodes.node1.vars'\n",
};
