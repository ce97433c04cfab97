/*
 * The mesh stack: a WireGuard overlay across sites (docs/mesh.md), the
 * hybrid network of the seed in which on-prem GPU machines behind NAT join
 * a cloud control plane.
 *
 *   prepare   kiln gives every node an overlay address, kept in the state
 *             (exports mesh.address): stable across runs and spec
 *             reorderings, never two nodes with one, never another node's
 *             while that node exists.
 *   keys      the node makes its private key (it never leaves the node,
 *             0600) and exports its public key.
 *   link      the interface and its peers, as the topology says, converged
 *             live peer by peer (the wireguard resource).
 *   check     every pair the topology lets talk exchanges packets over the
 *             overlay; the phase fails naming the pairs that cannot.
 *
 * Topologies: hub (spokes talk through named hub nodes), full (every pair
 * directly, where one side can reach the other), site (one gateway per
 * site; gateways in full mesh, full mesh inside a site).
 */
#include "stacks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources/resources.h"
#include "spec/parse.h"

#define MESH_STACK "mesh"
#define MESH_KEY_DIR "/etc/kiln/mesh"
#define MESH_SYSCTL_FILE "/etc/sysctl.d/91-kiln-mesh.conf"

enum mesh_topology { MESH_HUB, MESH_FULL, MESH_SITE };
static const char *const topology_names[] = { "hub", "full", "site" };

struct mesh_route {
	char *site;
	struct strv subnets;          /* "10.50.0.0/16" */
};

struct mesh_gateway {
	char *site, *node;
};

/* A site as the renders see it (mesh_index). */
struct mesh_site {
	const char *name;             /* borrowed from a node */
	size_t gw;                    /* its gateway's index in c->nodes */
	size_t *nodes;                /* its nodes' indices, in name order */
	size_t n;
};

struct mesh_conf {
	uint32_t net;                 /* overlay network, host order */
	int prefix;
	enum mesh_topology topology;
	struct strv hubs;             /* hub: node names */
	struct mesh_gateway *gateways; /* site: explicit gateways (else the site's first node) */
	size_t ngateways;
	int port;                     /* 51820 */
	int mtu;                      /* 0 = auto */
	int keepalive;                /* 25; for nodes without a public endpoint */
	char *iface;                  /* kiln0 */
	struct mesh_route *routes;    /* extra subnets routed to a site */
	size_t nroutes;
	/* Made at parse (nodes come first), so renders are O(nodes) and no
	 * output depends on the spec's node order: */
	size_t *order;                /* node indices in name order */
	size_t *hub_idx;              /* hubs' node indices, in name order */
	size_t nhub;
	struct mesh_site *sites;      /* in order of first appearance by name */
	size_t nsites;
	size_t *site_idx;             /* per node index: its site in sites[] */
	struct mark mark;             /* of stacks.mesh.network, for errors */
};

/* ---- the spec: stacks.mesh ----------------------------------------------- */

static bool parse_cidr(const char *s, uint32_t *net, int *prefix)
{
	return ipv4_cidr_parse(s, net, prefix);
}

static bool valid_cidr(const char *s)
{
	uint32_t n;
	int p;
	return parse_cidr(s, &n, &p) && !(n & ~ipv4_prefix_mask(p));
}

static bool valid_iface(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 15)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-'))
			return false;
	return true;
}

static void mesh_free(void *p)
{
	struct mesh_conf *m = p;

	strv_release(&m->hubs);
	for (size_t i = 0; i < m->ngateways; i++) {
		free(m->gateways[i].site);
		free(m->gateways[i].node);
	}
	free(m->gateways);
	free(m->order);
	free(m->hub_idx);
	for (size_t i = 0; i < m->nsites; i++)
		free(m->sites[i].nodes);
	free(m->sites);
	free(m->site_idx);
	for (size_t i = 0; i < m->nroutes; i++) {
		free(m->routes[i].site);
		strv_release(&m->routes[i].subnets);
	}
	free(m->routes);
	free(m->iface);
	free(m);
}

static int parse_network(struct spec_parser *x, const struct ynode *v, struct mesh_conf *m)
{
	const char *s;
	char tmp[64];
	int r;

	if ((r = spec_get_text(x, v, "stacks.mesh.network", &s)) < 0)
		return r;
	if (!parse_cidr(s, &m->net, &m->prefix) || m->prefix < 8 || m->prefix > 30)
		return spec_err(x, v, "stacks.mesh.network: '%s' is not an IPv4 network "
			       "like 10.99.0.0/24 (prefix 8..30)", spec_shown(v, tmp, sizeof(tmp)));
	if (m->net & ~ipv4_prefix_mask(m->prefix))
		return spec_err(x, v, "stacks.mesh.network: '%s' has host bits set",
				spec_shown(v, tmp, sizeof(tmp)));
	m->mark = (struct mark){ x->file, v->line, v->col };   /* "too small" points here */
	return 0;
}

/* A node name the spec defines (nodes are parsed before stacks). */
static int get_node_name(struct spec_parser *x, const struct ynode *v, const char *what,
			 const char **out)
{
	char tmp[80];
	int r = spec_get_text(x, v, what, out);
	if (r < 0)
		return r;
	if (!cluster_node(x->c, *out))
		return spec_err(x, v, "%s: no node '%s' in the spec", what,
				spec_shown(v, tmp, sizeof(tmp)));
	return 0;
}

static int parse_gateways(struct spec_parser *x, const struct ynode *m, struct mesh_conf *c)
{
	int r;

	if ((r = spec_expect(x, m, Y_MAP, "stacks.mesh.gateways")) < 0)
		return r;
	c->gateways = xcalloc(ymap_len(m) + 1, sizeof(*c->gateways));
	for (size_t i = 0; i < ymap_len(m); i++) {
		const char *node;
		if ((r = get_node_name(x, ymap_val(m, i), "stacks.mesh.gateways", &node)) < 0)
			return r;
		const struct node *n = cluster_node(x->c, node);
		const char *site = n->site ? n->site : "default";
		if (strcmp(site, ymap_key(m, i)->str))
			return spec_err(x, ymap_val(m, i), "stacks.mesh.gateways.%s: node '%s' is "
					"in site '%s'", ymap_key(m, i)->str, node, site);
		c->gateways[c->ngateways].site = xstrdup(site);
		c->gateways[c->ngateways++].node = xstrdup(node);
	}
	return 0;
}

static int parse_routes(struct spec_parser *x, const struct ynode *m, struct mesh_conf *c)
{
	int r;

	if ((r = spec_expect(x, m, Y_MAP, "stacks.mesh.routes")) < 0)
		return r;
	c->routes = xcalloc(ymap_len(m) + 1, sizeof(*c->routes));
	for (size_t i = 0; i < ymap_len(m); i++) {
		struct mesh_route *rt = &c->routes[c->nroutes++];
		rt->site = xstrdup(ymap_key(m, i)->str);
		if ((r = spec_get_strv(x, ymap_val(m, i), "stacks.mesh.routes", valid_cidr,
				       "an IPv4 network like 10.50.0.0/16", &rt->subnets)) < 0)
			return r;
	}
	return 0;
}

static const char *site_of(const struct node *n);

static int by_name(const void *a, const void *b)
{
	const struct node *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/*
 * Name order; the hubs; every site with its nodes in name order and its
 * gateway: the one named, else its first node by name.
 */
static void mesh_index(struct mesh_conf *m, const struct cluster *c)
{
	const struct node **p = xcalloc(c->nnodes + 1, sizeof(*p));

	for (size_t i = 0; i < c->nnodes; i++)
		p[i] = &c->nodes[i];
	qsort(p, c->nnodes, sizeof(*p), by_name);
	m->order = xcalloc(c->nnodes + 1, sizeof(*m->order));
	m->hub_idx = xcalloc(c->nnodes + 1, sizeof(*m->hub_idx));
	m->sites = xcalloc(c->nnodes + 1, sizeof(*m->sites));
	m->site_idx = xcalloc(c->nnodes + 1, sizeof(*m->site_idx));
	for (size_t k = 0; k < c->nnodes; k++) {
		size_t i = (size_t)(p[k] - c->nodes), g;
		m->order[k] = i;
		if (strv_contains(&m->hubs, p[k]->name))
			m->hub_idx[m->nhub++] = i;
		for (g = 0; g < m->nsites; g++)
			if (!strcmp(m->sites[g].name, site_of(p[k])))
				break;
		if (g == m->nsites) {
			m->sites[g] = (struct mesh_site){ .name = site_of(p[k]), .gw = i };
			m->sites[g].nodes = xcalloc(c->nnodes + 1, sizeof(size_t));
			for (size_t j = 0; j < m->ngateways; j++)
				if (!strcmp(m->gateways[j].site, site_of(p[k])))
					m->sites[g].gw = (size_t)(cluster_node(c, m->gateways[j].node) -
								  c->nodes);
			m->nsites++;
		}
		m->sites[g].nodes[m->sites[g].n++] = i;
		m->site_idx[i] = g;
	}
	free(p);
}

static int mesh_parse(struct spec_parser *x, const struct ynode *m, void **conf)
{
	static const char *const keys[] = { "network", "topology", "hubs", "gateways", "port",
		"mtu", "keepalive", "interface", "routes", NULL };
	struct mesh_conf *c = xcalloc(1, sizeof(*c));
	const struct ynode *v;
	const char *s;
	char tmp[64];
	int r;

	*conf = c;
	c->port = 51820;
	c->keepalive = 25;
	c->topology = MESH_FULL;
	c->mark = (struct mark){ x->file, m->line, m->col };
	if ((r = spec_expect(x, m, Y_MAP, "stacks.mesh")) < 0 ||
	    (r = spec_check_keys(x, m, "stacks.mesh", keys)) < 0)
		return r;
	if (!(v = ymap_get(m, "network")))
		return spec_err(x, m, "stacks.mesh: 'network' is required (the overlay, "
				"like 10.99.0.0/24)");
	if ((r = parse_network(x, v, c)) < 0)
		return r;
	if ((v = ymap_get(m, "topology"))) {
		int t;
		if ((r = spec_get_choice(x, v, "stacks.mesh.topology", topology_names,
					 ARRAY_SIZE(topology_names), &t)) < 0)
			return r;
		c->topology = (enum mesh_topology)t;
	}
	if ((v = ymap_get(m, "hubs"))) {
		if ((r = spec_expect(x, v, Y_SEQ, "stacks.mesh.hubs")) < 0)
			return r;
		for (size_t i = 0; i < v->nkids; i++) {
			if ((r = get_node_name(x, v->kids[i], "stacks.mesh.hubs", &s)) < 0)
				return r;
			strv_push(&c->hubs, s);
		}
	}
	if (c->topology == MESH_HUB && !c->hubs.n)
		return spec_err(x, v ? v : m, "stacks.mesh: topology hub needs 'hubs' (the "
				"node names spokes connect to)");
	if (c->topology != MESH_HUB && c->hubs.n)
		return spec_err(x, v, "stacks.mesh.hubs: only for topology hub");
	if ((v = ymap_get(m, "gateways")) && (r = parse_gateways(x, v, c)) < 0)
		return r;
	if ((v = ymap_get(m, "port")) &&
	    (r = spec_get_int(x, v, "stacks.mesh.port", 1, 65535, &c->port)) < 0)
		return r;
	if ((v = ymap_get(m, "mtu"))) {
		if (v->kind == Y_SCALAR && !strcmp(v->str, "auto"))
			c->mtu = 0;
		else if ((r = spec_get_int(x, v, "stacks.mesh.mtu", 1280, 9000, &c->mtu)) < 0)
			return r;
	}
	if ((v = ymap_get(m, "keepalive")) &&
	    (r = spec_get_int(x, v, "stacks.mesh.keepalive", 0, 3600, &c->keepalive)) < 0)
		return r;
	if ((v = ymap_get(m, "interface"))) {
		if ((r = spec_get_text(x, v, "stacks.mesh.interface", &s)) < 0)
			return r;
		if (!valid_iface(s))
			return spec_err(x, v, "stacks.mesh.interface: '%s' is not an interface "
					"name ([a-z0-9_-], at most 15)", spec_shown(v, tmp, sizeof(tmp)));
		c->iface = xstrdup(s);
	} else {
		c->iface = xstrdup("kiln0");
	}
	if ((v = ymap_get(m, "routes")) && (r = parse_routes(x, v, c)) < 0)
		return r;
	mesh_index(c, x->c);
	return 0;
}

/* ---- prepare: overlay addresses ------------------------------------------ */

static void ip_text(uint32_t ip, char out[16])
{
	struct in_addr a = { htonl(ip) };
	inet_ntop(AF_INET, &a, out, 16);
}

/*
 * Keep every node's recorded address that is still in the network and not
 * claimed by a node earlier in name order; give the others the lowest free
 * host addresses, in name order.  Pure: the same spec and recorded
 * addresses give the same result, whatever the spec's node order.
 */
static int mesh_prepare(const struct render_ctx *rc, const void *conf, struct exports *made,
			struct kerr *e)
{
	const struct mesh_conf *m = conf;
	const struct cluster *c = rc->c;
	uint32_t size = 1u << (32 - m->prefix), first = m->net + 1, last = m->net + size - 2;
	uint8_t *used = xcalloc(size, 1);
	const struct node **order = xcalloc(c->nnodes + 1, sizeof(*order));
	uint32_t *got = xcalloc(c->nnodes + 1, sizeof(*got));
	int r = 0;

	for (size_t i = 0; i < c->nnodes; i++)
		order[i] = &c->nodes[m->order[i]];
	for (size_t i = 0; i < c->nnodes; i++) {
		const char *old = exports_get(rc->exports, order[i]->name, MESH_STACK, "address");
		struct in_addr a;
		if (!old || inet_pton(AF_INET, old, &a) != 1)
			continue;
		uint32_t ip = ntohl(a.s_addr);
		if (ip < first || ip > last || used[ip - m->net])
			continue;
		used[ip - m->net] = 1;
		got[i] = ip;
	}
	uint32_t next = first;
	for (size_t i = 0; i < c->nnodes; i++) {
		if (got[i])
			continue;
		while (next <= last && used[next - m->net])
			next++;
		if (next > last) {
			char net[16];
			ip_text(m->net, net);
			r = kerr_set(e, -ENOSPC, "%s:%d:%d: stacks.mesh.network %s/%d has room for "
				     "%u nodes, the spec has %zu", m->mark.file, m->mark.line,
				     m->mark.col, net, m->prefix, last - first + 1, c->nnodes);
			goto out;
		}
		used[next - m->net] = 1;
		got[i] = next;
	}
	for (size_t i = 0; i < c->nnodes; i++) {
		char ip[16];
		ip_text(got[i], ip);
		exports_set(made, order[i]->name, MESH_STACK, "address", ip, false);
	}
out:
	free(used);
	free(order);
	free(got);
	return r;
}

/* ---- the topology ---------------------------------------------------------- */

static const char *site_of(const struct node *n)
{
	return n->site ? n->site : "default";
}

static bool is_hub(const struct mesh_conf *m, const struct node *n)
{
	return m->topology == MESH_HUB && strv_contains(&m->hubs, n->name);
}

static const struct mesh_site *site_rec(const struct mesh_conf *m, const struct cluster *c,
				       const struct node *n)
{
	return &m->sites[m->site_idx[n - c->nodes]];
}

static bool is_gateway(const struct mesh_conf *m, const struct cluster *c, const struct node *n)
{
	return site_rec(m, c, n)->gw == (size_t)(n - c->nodes);
}

static bool same_site(const struct mesh_conf *m, const struct cluster *c,
		      const struct node *a, const struct node *b)
{
	return m->site_idx[a - c->nodes] == m->site_idx[b - c->nodes];
}

/* The node's public endpoint (vars.endpoint, "host:port"), or NULL: behind NAT. */
static const char *public_endpoint(const struct cluster *c, const struct node *n)
{
	return json_string_value(cluster_var(c, n, "endpoint"));
}

/*
 * Where n sends to peer p: inside a site, p's own address; across sites,
 * p's public endpoint, or nowhere (p is behind NAT: it must come to n).
 * A WireGuard endpoint is an address, and a render resolves nothing: a p
 * whose spec address is a DNS name is reached at its public endpoint even
 * inside its site, or not at all.
 */
static char *endpoint_for(const struct mesh_conf *m, const struct cluster *c,
			  const struct node *n, const struct node *p)
{
	if (!strcmp(site_of(n), site_of(p))) {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, p->address, &a6) == 1)
			return xasprintf("[%s]:%d", p->address, m->port);
		if (inet_pton(AF_INET, p->address, &a6) == 1)
			return xasprintf("%s:%d", p->address, m->port);
	}
	const char *pub = public_endpoint(c, p);
	return pub ? xstrdup(pub) : NULL;
}

/* Does the topology give n a tunnel of its own to p? */
static bool direct_peer(const struct mesh_conf *m, const struct cluster *c,
			const struct node *n, const struct node *p)
{
	if (n == p)
		return false;
	switch (m->topology) {
	case MESH_HUB:
		return is_hub(m, n) || is_hub(m, p);
	case MESH_SITE:
		return same_site(m, c, n, p) || (is_gateway(m, c, n) && is_gateway(m, c, p));
	case MESH_FULL:
		break;
	}
	return true;
}

/* Can a tunnel between n and p come up: one side can send to the other. */
static bool tunnel_possible(const struct mesh_conf *m, const struct cluster *c,
			    const struct node *n, const struct node *p)
{
	char *a = endpoint_for(m, c, n, p), *b = endpoint_for(m, c, p, n);
	bool ok = a || b;
	free(a);
	free(b);
	return ok;
}

static const struct mesh_route *routes_of(const struct mesh_conf *m, const char *site)
{
	for (size_t i = 0; i < m->nroutes; i++)
		if (!strcmp(m->routes[i].site, site))
			return &m->routes[i];
	return NULL;
}

static void push_routes(const struct mesh_conf *m, const char *site, json_t *allowed)
{
	const struct mesh_route *rt = routes_of(m, site);
	for (size_t i = 0; rt && i < rt->subnets.n; i++)
		json_array_append_new(allowed, json_string(rt->subnets.v[i]));
}

/* What n routes to peer p: p itself, and whatever p carries for others. */
static json_t *allowed_ips(const struct mesh_conf *m, const struct cluster *c,
			   const struct exports *ex, const struct node *n, const struct node *p)
{
	json_t *a = json_array();
	const char *addr = exports_get(ex, p->name, MESH_STACK, "address");
	char net[16];

	json_array_append_new(a, json_sprintf("%s/32", addr));
	switch (m->topology) {
	case MESH_HUB:
		if (!is_hub(m, n) && is_hub(m, p) && !strcmp(p->name, m->hubs.v[0])) {
			/* a spoke reaches the rest of the overlay, and every routed
			 * subnet, through the first hub */
			ip_text(m->net, net);
			json_array_append_new(a, json_sprintf("%s/%d", net, m->prefix));
			for (size_t i = 0; i < m->nroutes; i++)
				if (strcmp(m->routes[i].site, site_of(n)))
					push_routes(m, m->routes[i].site, a);
		} else if (is_hub(m, n) && is_gateway(m, c, p)) {
			push_routes(m, site_of(p), a);
		}
		break;
	case MESH_SITE:
		if (!same_site(m, c, n, p)) {
			/* gateway to gateway: every node of p's site, and its subnets */
			const struct mesh_site *ps = site_rec(m, c, p);
			for (size_t i = 0; i < ps->n; i++) {
				const struct node *o = &c->nodes[ps->nodes[i]];
				const char *oa = exports_get(ex, o->name, MESH_STACK, "address");
				if (o != p && oa)
					json_array_append_new(a, json_sprintf("%s/32", oa));
			}
			push_routes(m, site_of(p), a);
		} else if (!is_gateway(m, c, n) && is_gateway(m, c, p)) {
			/* inside a site: the rest of the overlay goes by the gateway
			 * (the site's own nodes are more specific /32s) */
			ip_text(m->net, net);
			json_array_append_new(a, json_sprintf("%s/%d", net, m->prefix));
			for (size_t i = 0; i < m->nroutes; i++)
				if (strcmp(m->routes[i].site, site_of(n)))
					push_routes(m, m->routes[i].site, a);
		}
		break;
	case MESH_FULL:
		if (is_gateway(m, c, p) && strcmp(site_of(n), site_of(p)))
			push_routes(m, site_of(p), a);
		break;
	}
	return a;
}

/*
 * A WireGuard public key as the node exported it: 44 base64 characters of
 * 32 bytes.  The 43rd character's 2 low bits are padding and must be zero,
 * as the agent's decoder (resource_validate) requires.
 */
static bool valid_wg_key(const char *s)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s);
	if (n != 44 || s[43] != '=')
		return false;
	for (size_t i = 0; i < 43; i++) {
		const char *p = s[i] ? strchr(b64, s[i]) : NULL;
		if (!p || (i == 42 && ((p - b64) & 3)))
			return false;
	}
	return true;
}

/* p's public key, or NULL (noted in out->needs) when missing or malformed. */
static const char *peer_key(const struct render_ctx *rc, struct render_out *out,
			    const struct node *p)
{
	const char *k = render_export(rc, out, p->name, MESH_STACK, "public_key");
	if (k && !valid_wg_key(k)) {
		strv_pushf(&out->needs, "%s mesh.public_key (the one recorded is malformed)",
			   p->name);
		return NULL;
	}
	return k;
}

/* A list of nodes, borrowed. */
struct nodes {
	const struct node **v;
	size_t n, alloc;
};

static void nodes_push(struct nodes *l, const struct node *n)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 16;
		l->v = xrealloc(l->v, l->alloc * sizeof(*l->v));
	}
	l->v[l->n++] = n;
}

/*
 * The nodes n has a tunnel of its own to (direct_peer) and could bring up
 * (tunnel_possible), in a fixed order: a spoke's are the hubs; a site's
 * node's are its site (and, for a gateway, the other gateways).  O(peers),
 * so a spoke of a 10,000-node hub costs what a spoke of ten does.
 */
static void peers_of(const struct mesh_conf *m, const struct cluster *c, const struct node *n,
		     struct nodes *out)
{
	struct nodes all = { 0 };

	if (m->topology == MESH_HUB && !is_hub(m, n)) {
		for (size_t i = 0; i < m->nhub; i++)
			nodes_push(&all, &c->nodes[m->hub_idx[i]]);
	} else if (m->topology == MESH_SITE) {
		const struct mesh_site *own = site_rec(m, c, n);
		for (size_t i = 0; i < own->n; i++)
			nodes_push(&all, &c->nodes[own->nodes[i]]);
		for (size_t i = 0; is_gateway(m, c, n) && i < m->nsites; i++)
			if (&m->sites[i] != own)
				nodes_push(&all, &c->nodes[m->sites[i].gw]);
	} else {
		for (size_t i = 0; i < c->nnodes; i++)
			nodes_push(&all, &c->nodes[m->order[i]]);
	}
	for (size_t i = 0; i < all.n; i++)
		if (all.v[i] != n && tunnel_possible(m, c, n, all.v[i]))
			nodes_push(out, all.v[i]);
	free(all.v);
}

/* ---- phases ------------------------------------------------------------------ */

static char *key_path(const struct mesh_conf *m)
{
	return xasprintf("%s/%s.key", MESH_KEY_DIR, m->iface);
}

/* Phase keys: the tools, and the node's key (its public half exported). */
static int render_keys(const struct render_ctx *rc, const void *conf, const struct node *n,
		       struct render_out *out, struct kerr *e)
{
	const struct mesh_conf *m = conf;
	const char *family = json_string_value(json_object_get(render_fact(rc, n, "os"),
								"family"));
	char *path = key_path(m);

	if (family && !strcmp(family, "debian")) {
		static const char *const pkgs[] = { "wireguard-tools", "wireguard-go" };
		json_array_append_new(out->resources, res_package(pkgs, ARRAY_SIZE(pkgs), true));
	} else if (family && !strcmp(family, "redhat")) {
		static const char *const pkgs[] = { "wireguard-tools" };
		json_array_append_new(out->resources, res_package(pkgs, ARRAY_SIZE(pkgs), true));
	}
	json_array_append_new(out->resources,
			      res_wgkey(path, rc->rotate &&
						   strv_contains(rc->rotate, n->name)));
	free(path);
	return 0;
}

/* Phase link: forwarding where the node carries others' traffic, the interface. */
static int render_link(const struct render_ctx *rc, const void *conf, const struct node *n,
		       struct render_out *out, struct kerr *e)
{
	const struct mesh_conf *m = conf;
	const struct cluster *c = rc->c;
	const char *addr = render_export(rc, out, n->name, MESH_STACK, "address");
	json_t *peers = json_array(), *routes = json_array();
	char *path = key_path(m);

	if (!addr) {
		json_decref(peers);
		json_decref(routes);
		free(path);
		return 0;
	}
	/*
	 * Hubs and site gateways carry the overlay; in every topology a site's
	 * gateway carries its routed subnets (allowed_ips sends them to it).
	 * A carrier forwards out of the interface a packet came in by: no ICMP
	 * redirects, which no peer could follow (WireGuard routes by key).  The
	 * interface takes "default" when it is made, after this resource; one
	 * made before the node became a carrier keeps its own value (a check
	 * could not name it before it exists).
	 */
	bool carrier = is_hub(m, n) || (is_gateway(m, c, n) &&
					(m->topology == MESH_SITE || routes_of(m, site_of(n))));
	if (carrier) {
		const char *k[] = { "net.ipv4.ip_forward", "net.ipv4.conf.all.send_redirects",
				    "net.ipv4.conf.default.send_redirects" };
		const char *v[] = { "1", "0", "0" };
		json_array_append_new(out->resources, res_sysctl(MESH_SYSCTL_FILE, k, v, 3));
	}
	struct nodes direct = { 0 };
	peers_of(m, c, n, &direct);
	for (size_t i = 0; i < direct.n; i++) {
		const struct node *p = direct.v[i];
		const char *key = peer_key(rc, out, p);
		if (!key || !exports_get(rc->exports, p->name, MESH_STACK, "address"))
			continue;
		json_t *peer = json_pack("{s:s,s:o}", "public_key", key, "allowed_ips",
					 allowed_ips(m, c, rc->exports, n, p));
		char *ep = endpoint_for(m, c, n, p);
		if (ep) {
			json_object_set_new(peer, "endpoint", json_string(ep));
			if (!public_endpoint(c, n) && m->keepalive)
				json_object_set_new(peer, "keepalive", json_integer(m->keepalive));
		}
		free(ep);
		json_array_append_new(peers, peer);
	}
	free(direct.v);
	for (size_t i = 0; i < m->nroutes; i++)
		if (strcmp(m->routes[i].site, site_of(n)))
			for (size_t j = 0; j < m->routes[i].subnets.n; j++)
				json_array_append_new(routes,
						      json_string(m->routes[i].subnets.v[j]));
	char *cfg = xasprintf("/etc/wireguard/%s.conf", m->iface);
	json_t *r = json_pack("{s:s,s:s,s:s,s:i,s:o,s:o,s:s,s:o,s:o}", "type", "wireguard",
			      "interface", m->iface, "private_key_file", path, "listen_port",
			      m->port, "address", json_sprintf("%s/%d", addr, m->prefix),
			      "mtu", m->mtu ? json_integer(m->mtu) : json_string("auto"),
			      "config_file", cfg, "peers", peers, "routes", routes);
	json_array_append_new(out->resources, r);
	free(cfg);
	free(path);
	return 0;
}

/* Up to this many nodes the check pings every pair the topology lets
 * talk; beyond, every tunnel and MESH_CHECK_THROUGH nodes per node through
 * its hub or gateway (every pair of 10,000 nodes would be 10^8 pings). */
#define MESH_CHECK_ALL_PAIRS 64
#define MESH_CHECK_THROUGH 8
/*
 * How long a pair may take to answer.  A healthy tunnel answers in
 * milliseconds; a first handshake lost to a peer that was not configured
 * yet is retried by WireGuard after 5 s; a session whose keys the two ends
 * disagree on after simultaneous handshakes (seen twice in ~40 lab runs
 * with wireguard-go 0.0.20220316) is rekeyed by the side that hears
 * nothing back, 15 s after it sent (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT).
 * Past that, the pair is broken, and the check says so.
 */
#define MESH_CHECK_TIMEOUT_MS 25000

static void push_target(const struct render_ctx *rc, json_t *targets, const struct node *p)
{
	const char *a = exports_get(rc->exports, p->name, MESH_STACK, "address");

	if (a && exports_get(rc->exports, p->name, MESH_STACK, "public_key"))
		json_array_append_new(targets, json_pack("{s:s,s:s}", "name", p->name,
							 "address", a));
}

/*
 * Phase check: n pings, over the overlay, every peer it has a tunnel to —
 * so every tunnel is proven from both ends — and, in hub and site
 * topologies, the nodes it reaches through a hub or gateway: all of them
 * up to MESH_CHECK_ALL_PAIRS nodes, else the first MESH_CHECK_THROUGH (by
 * name), which proves the forwarding.  O(peers) per node at scale.
 */
static int render_check(const struct render_ctx *rc, const void *conf, const struct node *n,
			struct render_out *out, struct kerr *e)
{
	const struct mesh_conf *m = conf;
	const struct cluster *c = rc->c;
	json_t *targets = json_array();
	struct nodes direct = { 0 };
	size_t through = 0, most = c->nnodes <= MESH_CHECK_ALL_PAIRS ? c->nnodes
								      : MESH_CHECK_THROUGH;

	peers_of(m, c, n, &direct);
	for (size_t i = 0; i < direct.n; i++)
		push_target(rc, targets, direct.v[i]);
	for (size_t i = 0; m->topology != MESH_FULL && i < c->nnodes &&
			   through < most; i++) {
		const struct node *p = &c->nodes[m->order[i]];
		if (p == n || direct_peer(m, c, n, p))
			continue;
		push_target(rc, targets, p);
		through++;
	}
	free(direct.v);
	if (!json_array_size(targets)) {
		json_decref(targets);
		return 0;
	}
	json_array_append_new(out->resources,
			      json_pack("{s:s,s:o,s:i}", "type", "reach", "targets", targets,
					"timeout_ms", MESH_CHECK_TIMEOUT_MS));
	return 0;
}

static const struct stack_phase mesh_phases[] = {
	{ "keys", render_keys },
	{ "link", render_link },
	{ "check", render_check },
};

const struct stack_type stack_mesh = {
	.name = MESH_STACK,
	.summary = "a WireGuard overlay across sites: hub, full or per-site topology",
	.parse = mesh_parse,
	.free = mesh_free,
	.prepare = mesh_prepare,
	.phases = mesh_phases,
	.nphases = ARRAY_SIZE(mesh_phases),
	.facts = (const char *const[]){ "os", NULL },
};

/* ---- kiln mesh graph -------------------------------------------------------- */

int mesh_graph_dot(const struct cluster *c, const struct exports *ex, struct buf *out)
{
	const struct mesh_conf *m = stack_conf(c, &stack_mesh);

	if (!m)
		return -ENOENT;
	buf_printf(out, "graph \"%s\" {\n  label=\"%s mesh (%s)\";\n  node [shape=box];\n",
		   c->name, c->name, topology_names[m->topology]);
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[i];
		const char *a = exports_get(ex, n->name, MESH_STACK, "address");
		buf_printf(out, "  \"%s\" [label=\"%s\\n%s\\n%s%s\"%s];\n", n->name, n->name,
			   a ? a : "(no address yet)", site_of(n),
			   public_endpoint(c, n) ? "" : " (NAT)",
			   is_hub(m, n) || (m->topology == MESH_SITE && is_gateway(m, c, n))
			   ? ", style=bold" : "");
	}
	for (size_t i = 0; i < c->nnodes; i++)
		for (size_t j = i + 1; j < c->nnodes; j++) {
			const struct node *a = &c->nodes[i], *b = &c->nodes[j];
			if (direct_peer(m, c, a, b) && tunnel_possible(m, c, a, b))
				buf_printf(out, "  \"%s\" -- \"%s\";\n", a->name, b->name);
		}
	buf_adds(out, "}\n");
	return 0;
}

const char *mesh_interface(const struct cluster *c)
{
	const struct mesh_conf *m = stack_conf(c, &stack_mesh);
	return m ? m->iface : NULL;
}
