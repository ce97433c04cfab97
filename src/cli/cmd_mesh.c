/* kiln mesh: the WireGuard overlay's health, a node's key rotation, its graph. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan/plan.h"
#include "spec/spec.h"
#include "stacks/stacks.h"
#include "state/state.h"

#define MESH_UP_S 180   /* a peer is up while its last handshake is younger */

static const char *peer_name(const struct cluster *c, const struct exports *ex, const char *key)
{
	for (size_t i = 0; key && i < c->nnodes; i++) {
		const char *k = exports_get(ex, c->nodes[i].name, "mesh", "public_key");
		if (k && !strcmp(k, key))
			return c->nodes[i].name;
	}
	return "?";
}

/* One node's interface from its facts, as the status object. */
static json_t *node_status(const struct cluster *c, const struct exports *ex,
			   const struct node_run *nr, const char *iface, int64_t now, int *down)
{
	json_t *ifc = json_object_get(json_object_get(nr->facts, "wireguard"), iface);
	json_t *o = json_pack("{s:s}", "name", nr->node->name), *peers = json_array();
	size_t i;
	json_t *p;

	if (nr->error)
		json_object_set_new(o, "error", json_string(nr->error));
	if (!ifc) {
		(*down)++;
		json_object_set_new(o, "interface", json_null());
		json_object_set_new(o, "peers", peers);
		return o;
	}
	json_object_set_new(o, "interface", json_string(iface));
	json_object_set(o, "public_key", json_object_get(ifc, "public_key"));
	json_array_foreach(json_object_get(ifc, "peers"), i, p) {
		json_int_t hs = json_integer_value(json_object_get(p, "latest_handshake"));
		json_t *q = json_deep_copy(p);
		bool up = hs > 0 && now - hs < MESH_UP_S;
		json_object_set_new(q, "node", json_string(peer_name(c, ex,
			json_string_value(json_object_get(p, "public_key")))));
		json_object_set_new(q, "age_s", hs > 0 ? json_integer(now - hs) : json_null());
		json_object_set_new(q, "up", json_boolean(up));
		*down += !up;
		json_array_append_new(peers, q);
	}
	json_object_set_new(o, "peers", peers);
	return o;
}

static void print_status(const json_t *nodes)
{
	size_t i, j;
	json_t *n, *p;

	printf("%-16s %-16s %-24s %-10s %12s %12s %s\n", "NODE", "PEER", "ENDPOINT",
	       "HANDSHAKE", "RX", "TX", "STATE");
	json_array_foreach(nodes, i, n) {
		char *name = str_tty(json_string_value(json_object_get(n, "name")), 0);
		if (json_is_null(json_object_get(n, "interface"))) {
			char *err = str_tty(json_string_value(json_object_get(n, "error")), 0);
			printf("%-16s %-16s %s\n", name, "-", *err ? err : "no interface");
			free(err);
		}
		json_array_foreach(json_object_get(n, "peers"), j, p) {
			char *ep = str_tty(json_string_value(json_object_get(p, "endpoint")), 0);
			json_t *age = json_object_get(p, "age_s");
			char hs[32];
			if (json_is_integer(age))
				snprintf(hs, sizeof(hs), "%llds ago",
					 (long long)json_integer_value(age));
			else
				snprintf(hs, sizeof(hs), "never");
			printf("%-16s %-16s %-24s %-10s %12lld %12lld %s\n", name,
			       json_string_value(json_object_get(p, "node")), *ep ? ep : "(roaming)",
			       hs, (long long)json_integer_value(json_object_get(p, "rx_bytes")),
			       (long long)json_integer_value(json_object_get(p, "tx_bytes")),
			       json_is_true(json_object_get(p, "up")) ? "up" : "DOWN");
			free(ep);
		}
		free(name);
	}
}

static int mesh_status(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	const char *limit = NULL;
	struct cluster *c = NULL;
	struct state *st = NULL;
	struct plan_run *run = NULL;
	struct exports ex;
	struct kerr e = { 0 };
	char *agent = NULL;
	int rc = 1, down = 0;

	exports_init(&ex);
	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			return 1;
		if (n > 0)
			continue;
		if ((!strcmp(argv[i], "--limit") || !strcmp(argv[i], "-l")) && i + 1 < argc) {
			limit = argv[i + 1];
			i += 2;
		} else {
			return cli_error("mesh status: unknown argument '%s' (see 'kiln mesh --help')",
					 argv[i]);
		}
	}
	if ((rc = cli_open(&a, &c, &st, CLI_STATE_MAKE)))
		goto out;
	if (!mesh_interface(c)) {
		rc = cli_error("%s: no stacks.mesh in the spec", c->path);
		goto out;
	}
	rc = 1;
	if (!(agent = cli_agent_path(&a)))
		goto out;
	if (plan_exports_load(st, c, &ex, false, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	struct plan_opts o = { .mode = PLAN_FACTS, .limit = limit, .agent_path = agent,
			       .state = st, .progress = cli_progress };
	if (plan_execute(c, &o, &run, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	cli_progress_end();
	json_t *nodes = json_array();
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < run->n; i++)
		json_array_append_new(nodes, node_status(c, &ex, &run->nodes[i], mesh_interface(c), now,
							 &down));
	if (arg_output == OUTPUT_JSON) {
		json_t *j = json_pack("{s:s,s:o,s:i}", "cluster", c->name, "nodes", nodes,
				      "down", down);
		cli_print_json(j);
		json_decref(j);
	} else {
		print_status(nodes);
		json_decref(nodes);
	}
	rc = down ? 1 : 0;
out:
	exports_release(&ex);
	plan_run_free(run);
	state_close(st);
	cluster_free(c);
	free(agent);
	return rc;
}

static int mesh_graph(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	const char *svg = NULL;
	struct cluster *c = NULL;
	struct state *st = NULL;
	struct exports ex;
	struct kerr e = { 0 };
	struct buf dot;
	int rc = 1;

	exports_init(&ex);
	buf_init(&dot, 0);
	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			return 1;
		if (n > 0)
			continue;
		if (!strcmp(argv[i], "--svg") && i + 1 < argc) {
			svg = argv[i + 1];
			i += 2;
		} else {
			return cli_error("mesh graph: unknown argument '%s' (see 'kiln mesh --help')",
					 argv[i]);
		}
	}
	if ((rc = cli_open(&a, &c, &st, CLI_STATE_READ)))
		goto out;
	if (st && plan_exports_load(st, c, &ex, false, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	if (mesh_graph_dot(c, &ex, &dot) < 0) {
		rc = cli_error("%s: no stacks.mesh in the spec", c->path);
		goto out;
	}
	if (!svg) {
		fputs(dot.s, stdout);
		rc = 0;
		goto out;
	}
	char *dargv[] = { "dot", "-Tsvg", "-o", (char *)svg, NULL };
	struct buf err;
	buf_init(&err, 4096);
	struct run_opts ro = { .in = dot.s, .in_len = dot.len, .err = &err, .timeout_ms = 30000 };
	int status = 0, r = run_argv(dargv, &ro, &status);
	if (r < 0 || status != 0)
		rc = cli_error("mesh graph: dot -Tsvg failed: %s",
			       r < 0 ? (r == -ENOENT ? "dot is not installed (apt-get install graphviz)"
					: strerror(-r)) : err.s);
	else
		rc = 0;
	buf_release(&err);
out:
	buf_release(&dot);
	exports_release(&ex);
	state_close(st);
	cluster_free(c);
	return rc;
}

/* kiln mesh rotate NODE [apply options]: an apply that remakes NODE's key. */
static int mesh_rotate(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-')
		return cli_error("mesh rotate: name the node whose key to remake");
	char **av = xcalloc((size_t)argc + 3, sizeof(*av));
	int n = 0;
	av[n++] = "apply";
	av[n++] = "--rotate";
	av[n++] = argv[1];
	for (int i = 2; i < argc; i++)
		av[n++] = argv[i];
	int rc = cmd_apply.run(n, av);
	free(av);
	return rc;
}

static int run(int argc, char **argv)
{
	if (argc < 2)
		return cli_error("mesh: name a subcommand: status, rotate or graph (see 'kiln mesh --help')");
	if (!strcmp(argv[1], "status"))
		return mesh_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rotate"))
		return mesh_rotate(argc - 1, argv + 1);
	if (!strcmp(argv[1], "graph"))
		return mesh_graph(argc - 1, argv + 1);
	return cli_error("mesh: unknown subcommand '%s' (status, rotate or graph)", argv[1]);
}

const struct command cmd_mesh = {
	.name = "mesh",
	.run = run,
	.summary = "the WireGuard overlay: health per peer, key rotation, topology graph",
	.help = "NAME\n    kiln mesh - the WireGuard overlay of the mesh stack\n\n"
		"SYNOPSIS\n    kiln mesh status [-f FILE] [--limit PATTERN] [-o json]\n"
		"    kiln mesh rotate NODE [-f FILE] [apply options]\n"
		"    kiln mesh graph [-f FILE] [--svg OUT]\n\n"
		"DESCRIPTION\n"
		"    status: collects facts from every selected node and shows each WireGuard\n"
		"    peer of its kiln0 interface: the peer's node (by public key), endpoint,\n"
		"    last handshake, bytes received and sent, and up (a handshake younger\n"
		"    than 180 s) or DOWN. A node without the interface is shown as such.\n\n"
		"    rotate: an apply ('kiln apply --rotate NODE') in which NODE makes a new\n"
		"    private key and every peer of NODE takes the new public key, peer by\n"
		"    peer; no other tunnel is touched. The old key is gone from the node.\n\n"
		"    graph: the topology as Graphviz dot on stdout, or as SVG with --svg\n"
		"    (needs graphviz's dot): nodes with overlay address and site, hubs and\n"
		"    gateways bold, an edge for every tunnel the topology makes. Offline:\n"
		"    addresses come from the state database.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE\n        The cluster spec (default: cluster.yaml).\n\n"
		"    --state FILE\n        The state database (default: SPECDIR/.kiln/state.db).\n\n"
		"    -l, --limit PATTERN\n        status: only these nodes.\n\n"
		"    --svg OUT\n        graph: write SVG to OUT.\n\n"
		"    -o json\n        status as JSON: nodes[] with peers[] (node, public_key,\n"
		"        endpoint, allowed_ips, latest_handshake, age_s, rx_bytes, tx_bytes,\n"
		"        up) and the count of peers down.\n\n"
		"EXIT STATUS\n    0  status: every peer up; rotate, graph: done\n"
		"    1  a peer down or a node without the interface; an error\n\n"
		"EXAMPLES\n    kiln mesh status -f lab/cluster.yaml\n"
		"    kiln mesh rotate node2 -f lab/cluster.yaml\n"
		"    kiln mesh graph --svg mesh.svg\n",
};
