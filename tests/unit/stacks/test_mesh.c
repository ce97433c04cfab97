/*
 * The mesh stack: golden files pin every node's resources per topology
 * (hub, full, site) for one 6-node, 2-site spec (KILN_UPDATE_GOLDEN=1
 * rewrites them after an intended change); every resource passes the
 * agent's resource_validate(); rendering is pure; missing or malformed
 * public keys are waited for, never used; overlay addresses (prepare) stay
 * unique, inside the network and stable across random churn and spec
 * reorderings; stacks.mesh's spec errors; key rotation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resources/resources.h"
#include "purity.h"
#include "stacks/stacks.h"

#define DIR KILN_TEST_DATA "/stacks/mesh"

/* ---- helpers ----------------------------------------------------------- */

static struct cluster *load_file(const char *name)
{
	return spec_fixture(DIR, name);
}

/* Parse text as the spec DIR/NAME; returns the result, the message in e. */
static int load_text(const char *name, const char *text, struct cluster **c, struct kerr *e)
{
	char *path = xasprintf("%s/%s", DIR, name);
	int r = spec_load_string(path, text, strlen(text), c, e);
	free(path);
	return r;
}

/*
 * A made-up but well-formed WireGuard public key for node number i: 44
 * base64 characters of 32 bytes (the 43rd carries 2 padding bits, zero),
 * different for every i.
 */
static void fake_key(unsigned i, char out[45])
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (unsigned k = 0; k < 42; k++)
		out[k] = b64[(i * 37 + k * 11 + (k * k) % 7) % 64];
	out[42] = b64[(i % 16) * 4];
	out[43] = '=';
	out[44] = '\0';
}

/* Copy every entry of from into to. */
static void exports_merge(struct exports *to, const struct exports *from)
{
	for (size_t i = 0; i < from->n; i++) {
		const struct export_entry *x = &from->v[i];
		exports_set(to, x->node, x->stack, x->name, x->value, x->secret);
	}
}

/* stacks_prepare over known into made (made is initialised here); pure. */
static int prepare(const struct cluster *c, const struct exports *known, struct exports *made,
		   struct kerr *e)
{
	struct render_ctx rc = { .c = c, .exports = known };
	exports_init(made);
	purity_start();
	int r = stacks_prepare(&rc, made, e);
	purity_stop("stacks_prepare");
	return r;
}

/* The exports a run would render with: prepared addresses, and (with_keys)
 * every node's public key as its keys phase would have exported it. */
static void exports_for(const struct cluster *c, bool with_keys, struct exports *ex)
{
	struct exports none, made;
	struct kerr e = { 0 };

	exports_init(&none);
	exports_init(ex);
	if (prepare(c, &none, &made, &e) < 0)
		fail_msg("prepare: %s", e.msg);
	exports_merge(ex, &made);
	for (size_t i = 0; with_keys && i < c->nnodes; i++) {
		char k[45];
		fake_key((unsigned)i + 1, k);
		exports_set(ex, c->nodes[i].name, "mesh", "public_key", k, false);
	}
	exports_release(&made);
	exports_release(&none);
}

/*
 * Every phase for node n (stacks_render_node), every node with Debian
 * facts; fails if it touched a file or the clock, and checks that every
 * resource passes the agent's validation.  needs (may be NULL) gets what
 * the render waited for.
 */
static json_t *render(const struct cluster *c, const struct node *n, const struct exports *ex,
		      const struct strv *rotate, struct strv *needs)
{
	json_t *debian = json_pack("{s:{s:s}}", "os", "family", "debian");
	const json_t **all = xcalloc(c->nnodes, sizeof(*all));
	for (size_t i = 0; i < c->nnodes; i++)
		all[i] = debian;
	struct render_ctx rc = { .c = c, .facts = all, .exports = ex, .rotate = rotate };
	json_t *out = render_node_checked(&rc, n, needs);
	free(all);
	json_decref(debian);
	return out;
}

/* The resource of a type (the first), or NULL. */
static json_t *resource_of(const json_t *list, const char *type)
{
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "type")), type))
			return r;
	return NULL;
}

static void check_golden(const char *name, const json_t *got)
{
	golden_check_in(DIR, name, got);
}

/* ---- 1-3: goldens, validation, purity ---------------------------------- */

/* Render every node of a topology's spec into one object, node -> resources. */
static void golden_topology(const char *topology)
{
	char *file = xasprintf("%s.yaml", topology);
	struct cluster *c = load_file(file);
	struct exports ex;
	json_t *all = json_object();

	exports_for(c, true, &ex);
	for (size_t i = 0; i < c->nnodes; i++) {
		struct strv needs = STRV_INIT;
		json_t *out = render(c, &c->nodes[i], &ex, NULL, &needs);
		/* with every key and address known, nothing is waited for */
		if (needs.n)
			fail_msg("%s: node %s waits for %s", topology, c->nodes[i].name,
				 needs.v[0]);
		json_t *again = render(c, &c->nodes[i], &ex, NULL, NULL);
		assert_true(json_equal(out, again));
		json_decref(again);
		json_object_set_new(all, c->nodes[i].name, out);
		strv_release(&needs);
	}
	check_golden(topology, all);
	json_decref(all);
	exports_release(&ex);
	cluster_free(c);
	free(file);
}

static void test_watch_works(void **s)
{
	/* The watch itself sees kiln's file and clock helpers (else "no calls"
	 * would prove nothing). */
	struct buf b;
	buf_init(&b, 0);
	purity_watching = true;
	purity_calls = 0;
	assert_int_equal(file_read(DIR "/hub.yaml", &b, 0), 0);
	assert_int_equal(purity_calls, 1);
	(void)now_ms();
	(void)time(NULL);
	assert_int_equal(purity_calls, 3);
	purity_watching = false;
	buf_release(&b);
}

static void test_golden_hub(void **s)
{
	golden_topology("hub");
}

static void test_golden_full(void **s)
{
	golden_topology("full");
}

static void test_golden_site(void **s)
{
	golden_topology("site");
}

/* ---- 4: what a render waits for ---------------------------------------- */

static void test_needs_keys(void **s)
{
	struct cluster *c = load_file("full.yaml");
	struct exports ex;
	const struct node *op1 = cluster_node(c, "op1");
	struct strv needs = STRV_INIT;

	/* Addresses known, no public key yet: no peer, each one waited for. */
	exports_for(c, false, &ex);
	json_t *out = render(c, op1, &ex, NULL, &needs);
	json_t *wg = resource_of(out, "wireguard");
	assert_non_null(wg);
	assert_int_equal(json_array_size(json_object_get(wg, "peers")), 0);
	assert_null(resource_of(out, "reach"));
	assert_int_equal(needs.n, c->nnodes - 1);
	for (size_t i = 0; i < c->nnodes; i++) {
		char *want = xasprintf("%s mesh.public_key", c->nodes[i].name);
		assert_int_equal(strv_contains(&needs, want), &c->nodes[i] != op1);
		free(want);
	}
	json_decref(out);
	strv_release(&needs);
	exports_release(&ex);

	/* Malformed keys (an injection attempt, a key whose padding bits are
	 * not zero: the agent's base64 decoder refuses it) are not used. */
	exports_for(c, true, &ex);
	char odd[45];
	fake_key(99, odd);
	odd[42] = 'B';
	exports_set(&ex, "cl1", "mesh", "public_key", "evil\nPrivateKey = x", false);
	exports_set(&ex, "op2", "mesh", "public_key", odd, false);
	out = render(c, op1, &ex, NULL, &needs);
	wg = resource_of(out, "wireguard");
	assert_int_equal(json_array_size(json_object_get(wg, "peers")), c->nnodes - 3);
	char *text = json_dumps(out, JSON_COMPACT);
	assert_null(strstr(text, "evil"));
	assert_null(strstr(text, odd));
	free(text);
	assert_int_equal(needs.n, 2);
	assert_true(strv_contains(&needs, "cl1 mesh.public_key (the one recorded is malformed)"));
	assert_true(strv_contains(&needs, "op2 mesh.public_key (the one recorded is malformed)"));
	json_decref(out);
	strv_release(&needs);
	exports_release(&ex);

	/* No address of its own yet: the node gets no interface at all. */
	exports_init(&ex);
	out = render(c, op1, &ex, NULL, &needs);
	assert_null(resource_of(out, "wireguard"));
	assert_non_null(resource_of(out, "wgkey"));
	assert_true(strv_contains(&needs, "op1 mesh.address"));
	json_decref(out);
	strv_release(&needs);
	exports_release(&ex);
	cluster_free(c);
}

/* ---- 5: overlay addresses ---------------------------------------------- */

#define POOL 40

static void shuffle(int *v, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = rand() % (i + 1);
		int t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
}

/* A spec of the present nodes of the pool, in the order given. */
static struct cluster *pool_spec(const int *order, int n)
{
	struct buf b;
	struct cluster *c = NULL;
	struct kerr e = { 0 };

	buf_init(&b, 0);
	buf_adds(&b, "cluster: ipam\nssh:\n  known_hosts: ../known_hosts\nnodes:\n");
	for (int i = 0; i < n; i++)
		buf_printf(&b, "  - name: n%02d\n    address: 10.1.0.%d\n", order[i],
			   order[i] + 1);
	buf_adds(&b, "stacks:\n  mesh:\n    network: 10.77.3.0/26\n");
	if (load_text("ipam.yaml", b.s, &c, &e) < 0)
		fail_msg("spec: %s\n%s", e.msg, b.s);
	buf_release(&b);
	return c;
}

static uint32_t addr_of(const struct exports *x, const char *node)
{
	const char *s = exports_get(x, node, "mesh", "address");
	struct in_addr a;
	if (!s)
		fail_msg("no address for %s", node);
	if (inet_pton(AF_INET, s, &a) != 1)
		fail_msg("address of %s: '%s'", node, s);
	return ntohl(a.s_addr);
}

/*
 * Random churn (fixed seed): nodes join and leave, the spec is reordered;
 * the state carries the previous run's addresses minus the nodes that left
 * (plan.c's load_state).  After every step: one address per node, each a
 * host of the network, a node that stays keeps its address, and another
 * order of the same spec gives the same addresses.
 */
static void test_ipam_churn(void **s)
{
	const uint32_t net = (10u << 24) | (77u << 16) | (3u << 8), size = 64;
	bool present[POOL] = { false };
	uint32_t prev[POOL] = { 0 };
	struct exports state;
	int newcomers = 0, maxn = 0;

	srand(20240611);
	exports_init(&state);
	for (int step = 0; step < 2000; step++) {
		int op = rand() % 10, k = 1 + rand() % 3;
		for (int j = 0; j < k; j++) {
			int pick = rand() % POOL;
			if (op < 5 && !present[pick]) {
				present[pick] = true;
			} else if (op >= 5 && op < 8 && present[pick]) {
				present[pick] = false;
				prev[pick] = 0;
				char name[8];
				snprintf(name, sizeof(name), "n%02d", pick);
				exports_drop_node(&state, name);
			}
		}
		int order[POOL], n = 0;
		for (int i = 0; i < POOL; i++)
			if (present[i])
				order[n++] = i;
		shuffle(order, n);
		struct cluster *c = pool_spec(order, n);
		struct exports made, again;
		struct kerr e = { 0 };
		if (prepare(c, &state, &made, &e) < 0)
			fail_msg("step %d: %s", step, e.msg);
		assert_int_equal(made.n, (size_t)n);

		uint8_t used[64] = { 0 }, kept[64] = { 0 };
		for (int p = 0; p < POOL; p++)
			if (prev[p])
				kept[prev[p] - net] = 1;
		for (int i = 0; i < n; i++) {
			char name[8];
			snprintf(name, sizeof(name), "n%02d", order[i]);
			uint32_t a = addr_of(&made, name);
			if (a <= net || a >= net + size - 1)
				fail_msg("step %d: %s got %s, not a host of 10.77.3.0/26", step,
					 name, exports_get(&made, name, "mesh", "address"));
			if (used[a - net]++)
				fail_msg("step %d: two nodes have %s", step,
					 exports_get(&made, name, "mesh", "address"));
			if (prev[order[i]] && prev[order[i]] != a)
				fail_msg("step %d: %s moved", step, name);
		}
		/* newcomers take the lowest hosts the others leave free, in name
		 * order (n00 < n01 < ...) */
		uint32_t next = 1;
		for (int p = 0; p < POOL; p++) {
			if (!present[p] || prev[p])
				continue;
			char name[8];
			snprintf(name, sizeof(name), "n%02d", p);
			while (kept[next])
				next++;
			assert_int_equal(addr_of(&made, name), net + next);
			next++;
			newcomers++;
		}
		for (int p = 0; p < POOL; p++) {
			char name[8];
			snprintf(name, sizeof(name), "n%02d", p);
			prev[p] = present[p] ? addr_of(&made, name) : 0;
		}
		maxn = n > maxn ? n : maxn;
		cluster_free(c);

		/* the same nodes in another order, the same state: the same result */
		shuffle(order, n);
		c = pool_spec(order, n);
		if (prepare(c, &state, &again, &e) < 0)
			fail_msg("step %d: %s", step, e.msg);
		assert_int_equal(again.n, made.n);
		for (size_t i = 0; i < made.n; i++)
			assert_string_equal(exports_get(&again, made.v[i].node, "mesh", "address"),
					    made.v[i].value);
		exports_release(&again);
		cluster_free(c);

		exports_merge(&state, &made);
		exports_release(&made);
	}
	/* the walk did churn: many joins, and a spec near the pool's size */
	assert_true(newcomers > 500);
	assert_true(maxn > 30);
	exports_release(&state);
}

/*
 * A state that does not hold up (two nodes recorded with one address, one
 * outside the network, its network and broadcast addresses): the first in
 * name order keeps a shared address, the others get the lowest free hosts.
 */
static void test_ipam_bad_state(void **s)
{
	int order[] = { 3, 1, 0, 2, 4 };
	struct cluster *c = pool_spec(order, 5);
	struct exports state, made;
	struct kerr e = { 0 };

	exports_init(&state);
	exports_set(&state, "n01", "mesh", "address", "10.77.3.5", false);
	exports_set(&state, "n03", "mesh", "address", "10.77.3.5", false);
	exports_set(&state, "n00", "mesh", "address", "10.77.4.1", false);
	exports_set(&state, "n02", "mesh", "address", "10.77.3.0", false);
	exports_set(&state, "n04", "mesh", "address", "10.77.3.63", false); /* broadcast */
	assert_int_equal(prepare(c, &state, &made, &e), 0);
	assert_string_equal(exports_get(&made, "n00", "mesh", "address"), "10.77.3.1");
	assert_string_equal(exports_get(&made, "n01", "mesh", "address"), "10.77.3.5");
	assert_string_equal(exports_get(&made, "n02", "mesh", "address"), "10.77.3.2");
	assert_string_equal(exports_get(&made, "n03", "mesh", "address"), "10.77.3.3");
	assert_string_equal(exports_get(&made, "n04", "mesh", "address"), "10.77.3.4");
	exports_release(&made);
	exports_release(&state);
	cluster_free(c);
}

/* A network with fewer hosts than nodes: -ENOSPC, naming the spec line. */
static void test_ipam_full(void **s)
{
	static const char text[] =
		"cluster: small\n"
		"ssh:\n  known_hosts: ../known_hosts\n"
		"nodes:\n"
		"  - {name: a, address: 10.1.0.1}\n"
		"  - {name: b, address: 10.1.0.2}\n"
		"  - {name: c, address: 10.1.0.3}\n"
		"stacks:\n"
		"  mesh:\n"
		"    topology: full\n"
		"    network: 10.77.3.0/30\n";
	struct cluster *c = NULL;
	struct exports none, made;
	struct kerr e = { 0 };

	if (load_text("small.yaml", text, &c, &e) < 0)
		fail_msg("spec: %s", e.msg);
	exports_init(&none);
	assert_int_equal(prepare(c, &none, &made, &e), -ENOSPC);
	assert_string_equal(e.msg, "stack mesh: " DIR "/small.yaml:11:14: stacks.mesh.network "
			    "10.77.3.0/30 has room for 2 nodes, the spec has 3");
	exports_release(&made);
	exports_release(&none);
	cluster_free(c);
}

/* ---- 6: spec errors ------------------------------------------------------ */

static void spec_error(const char *mesh, const char *want)
{
	char *text = xasprintf("cluster: bad\n"
			       "ssh:\n  known_hosts: ../known_hosts\n"
			       "nodes:\n"
			       "  - {name: a1, address: 10.1.0.1, site: east}\n"
			       "  - {name: a2, address: 10.1.0.2, site: east}\n"
			       "  - {name: b1, address: 10.2.0.1, site: west}\n"
			       "stacks:\n"
			       "  mesh:\n"
			       "%s", mesh);
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	char *full = xasprintf("%s/bad.yaml:%s", DIR, want);

	if (load_text("bad.yaml", text, &c, &e) == 0)
		fail_msg("spec accepted:\n%s", text);
	assert_null(c);
	assert_string_equal(e.msg, full);
	free(full);
	free(text);
}

static void test_spec_errors(void **s)
{
	/* stacks.mesh is line 9; its first key line 10, column 5 */
	spec_error("    network: 10.99.0.0/24\n    colour: blue\n",
		   "11:5: unknown key 'colour' in stacks.mesh (expected one of: network, "
		   "topology, hubs, gateways, port, mtu, keepalive, interface, routes)");
	spec_error("    topology: full\n",
		   "10:5: stacks.mesh: 'network' is required (the overlay, like 10.99.0.0/24)");
	spec_error("    network: 10.99.0.1/24\n",
		   "10:14: stacks.mesh.network: '10.99.0.1/24' has host bits set");
	spec_error("    network: 10.99.0.0/31\n",
		   "10:14: stacks.mesh.network: '10.99.0.0/31' is not an IPv4 network like "
		   "10.99.0.0/24 (prefix 8..30)");
	spec_error("    network: 10.99.0.0/24\n    topology: star\n",
		   "11:15: stacks.mesh.topology: expected hub, full or site, found 'star'");
	spec_error("    network: 10.99.0.0/24\n    topology: hub\n",
		   "10:5: stacks.mesh: topology hub needs 'hubs' (the node names spokes "
		   "connect to)");
	spec_error("    network: 10.99.0.0/24\n    topology: hub\n    hubs: [a1, zz]\n",
		   "12:16: stacks.mesh.hubs: no node 'zz' in the spec");
	spec_error("    network: 10.99.0.0/24\n    topology: full\n    hubs: [a1]\n",
		   "12:11: stacks.mesh.hubs: only for topology hub");
	spec_error("    network: 10.99.0.0/24\n    topology: site\n    gateways: {east: b1}\n",
		   "12:22: stacks.mesh.gateways.east: node 'b1' is in site 'west'");
	spec_error("    network: 10.99.0.0/24\n    mtu: 9001\n",
		   "11:10: stacks.mesh.mtu: 9001 is out of range 1280..9000");
	spec_error("    network: 10.99.0.0/24\n    mtu: 1000\n",
		   "11:10: stacks.mesh.mtu: 1000 is out of range 1280..9000");
	spec_error("    network: 10.99.0.0/24\n    interface: Kiln0\n",
		   "11:16: stacks.mesh.interface: 'Kiln0' is not an interface name "
		   "([a-z0-9_-], at most 15)");
	spec_error("    network: 10.99.0.0/24\n    interface: kiln-overlay-1234\n",
		   "11:16: stacks.mesh.interface: 'kiln-overlay-1234' is not an interface name "
		   "([a-z0-9_-], at most 15)");
}

/* ---- 7: rotate --------------------------------------------------------- */

static void test_rotate(void **s)
{
	struct cluster *c = load_file("site.yaml");
	struct exports ex;
	struct strv rotate = STRV_INIT;
	size_t seen = 0;

	exports_for(c, true, &ex);
	strv_push(&rotate, "op2");
	for (size_t i = 0; i < c->nnodes; i++) {
		json_t *out = render(c, &c->nodes[i], &ex, &rotate, NULL);
		json_t *k = resource_of(out, "wgkey");
		assert_non_null(k);
		assert_true(json_is_boolean(json_object_get(k, "rotate")));
		bool want = !strcmp(c->nodes[i].name, "op2");
		assert_int_equal(json_is_true(json_object_get(k, "rotate")), want);
		seen += want;
		json_decref(out);
	}
	assert_int_equal(seen, 1);
	strv_release(&rotate);
	exports_release(&ex);
	cluster_free(c);
}

/* ---- full mesh between two NAT sites ----------------------------------- */

/*
 * Topology full: nodes of two sites that are both behind NAT can reach
 * neither way, so they get no tunnel and no reach target; inside a site
 * they do.
 */
static void test_full_nat(void **s)
{
	static const char text[] =
		"cluster: nat\n"
		"ssh:\n  known_hosts: ../known_hosts\n"
		"nodes:\n"
		"  - {name: a1, address: 10.1.0.1, site: east}\n"
		"  - {name: a2, address: 10.1.0.2, site: east}\n"
		"  - {name: b1, address: 10.2.0.1, site: west}\n"
		"stacks:\n"
		"  mesh:\n"
		"    network: 10.99.0.0/24\n";
	struct cluster *c = NULL;
	struct exports ex;
	struct kerr e = { 0 };

	if (load_text("nat.yaml", text, &c, &e) < 0)
		fail_msg("spec: %s", e.msg);
	exports_for(c, true, &ex);
	json_t *out = render(c, cluster_node(c, "a1"), &ex, NULL, NULL);
	json_t *peers = json_object_get(resource_of(out, "wireguard"), "peers");
	assert_int_equal(json_array_size(peers), 1);
	char k[45];
	fake_key(2, k); /* a2 */
	assert_string_equal(json_string_value(json_object_get(json_array_get(peers, 0),
							      "public_key")), k);
	assert_string_equal(json_string_value(json_object_get(json_array_get(peers, 0),
							      "endpoint")), "10.1.0.2:51820");
	json_t *targets = json_object_get(resource_of(out, "reach"), "targets");
	assert_int_equal(json_array_size(targets), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(targets, 0),
							      "name")), "a2");
	json_decref(out);
	out = render(c, cluster_node(c, "b1"), &ex, NULL, NULL);
	assert_int_equal(json_array_size(json_object_get(resource_of(out, "wireguard"),
							  "peers")), 0);
	assert_null(resource_of(out, "reach"));
	json_decref(out);
	exports_release(&ex);
	cluster_free(c);
}

/*
 * A node's address may be a DNS name (spec.md); a WireGuard endpoint must
 * be an address (render is pure: no resolving).  Inside a site such a peer
 * is reached at its public endpoint if it has one, else it must come to
 * us: every resource still validates (render() checks).
 */
static void test_dns_address(void **s)
{
	static const char text[] =
		"cluster: dns\n"
		"ssh:\n  known_hosts: ../known_hosts\n"
		"nodes:\n"
		"  - {name: a1, address: a1.example.org, site: east}\n"
		"  - {name: a2, address: a2.example.org, site: east,"
		" vars: {endpoint: \"192.0.2.2:51820\"}}\n"
		"  - {name: a3, address: 10.1.0.3, site: east}\n"
		"stacks:\n"
		"  mesh:\n"
		"    network: 10.99.0.0/24\n";
	struct cluster *c = NULL;
	struct exports ex;
	struct kerr e = { 0 };

	if (load_text("dns.yaml", text, &c, &e) < 0)
		fail_msg("spec: %s", e.msg);
	exports_for(c, true, &ex);
	json_t *out = render(c, cluster_node(c, "a3"), &ex, NULL, NULL);
	json_t *peers = json_object_get(resource_of(out, "wireguard"), "peers");
	assert_int_equal(json_array_size(peers), 2);
	/* a1: no address to send to (it comes to a3); a2: its public endpoint */
	assert_null(json_object_get(json_array_get(peers, 0), "endpoint"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(peers, 1),
							      "endpoint")), "192.0.2.2:51820");
	json_decref(out);
	/* a1 and a2 reach each other by a2's public endpoint */
	out = render(c, cluster_node(c, "a1"), &ex, NULL, NULL);
	peers = json_object_get(resource_of(out, "wireguard"), "peers");
	assert_int_equal(json_array_size(peers), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(peers, 0),
							      "endpoint")), "192.0.2.2:51820");
	assert_string_equal(json_string_value(json_object_get(json_array_get(peers, 1),
							      "endpoint")), "10.1.0.3:51820");
	json_decref(out);
	exports_release(&ex);
	cluster_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch_works),
		cmocka_unit_test(test_golden_hub),
		cmocka_unit_test(test_golden_full),
		cmocka_unit_test(test_golden_site),
		cmocka_unit_test(test_needs_keys),
		cmocka_unit_test(test_ipam_churn),
		cmocka_unit_test(test_ipam_bad_state),
		cmocka_unit_test(test_ipam_full),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_rotate),
		cmocka_unit_test(test_full_nat),
		cmocka_unit_test(test_dns_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
