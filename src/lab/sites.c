/*
 * kiln lab --sites: hosts grouped into sites on separate networks, the
 * shape of on-prem machines behind NAT joined to a cloud (docs/lab.md,
 * Sites).
 *
 * The first site is on-prem: its nodes stay on br0 (the lab's subnet)
 * behind the bastion, which becomes their NAT router.  Every further site
 * is a "cloud": its hosts hang off a second bridge "pub" in the switch
 * namespace, the public network, with a subnet of their own.  Address plan
 * for SUBNET = B/p of size S (2^(32-p)) and sites 0..K-1:
 *   site 0      B/p (unchanged: bastion .2, nodes .11 + i)
 *   site k      B + k*S /p: its nodes .11 + i
 *   public      B + K*S /p: the machine's veth ks-NAME .1, the bastion's
 *               wan0 .2
 * Everything on "pub" is on-link for everything else there (routes per
 * subnet, no gateway); the machine gets no route to site 0.
 *
 * Filtering is nftables inside the host namespaces: cloud hosts accept
 * SSH and UDP 51820 from anywhere and everything from their own site;
 * on-prem nodes accept nothing from outside their site (nodes accept
 * whatever comes out of a tunnel: not eth0); the bastion
 * forwards (and masquerades out of wan0) only UDP 51820 from site 0, and
 * accepts only SSH from outside.  Forwarding stays off everywhere else.
 */
#include "lab_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SITE_NAME_MAX 64
#define SITES_MAX 16

static char *ip_str(uint32_t v)
{
	return xasprintf("%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
}

static bool site_name_valid(const char *s, size_t n)
{
	/* A node's site in the spec: [a-z0-9_-]{1,64} (docs/spec.md). */
	if (!n || n > SITE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * Parse "NAME:N,..." into names and counts (counts holds SITES_MAX); checks names (unique),
 * counts (1..LAB_MAX_NODES) and the number of sites (2..SITES_MAX).
 */
static int sites_parse(const char *spec, struct strv *names, unsigned *counts,
		       struct kerr *e)
{
	const char *p = spec;

	while (*p) {
		const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
		const char *colon = memchr(p, ':', (size_t)(end - p));
		uint64_t n;
		if (!colon || !site_name_valid(p, (size_t)(colon - p)))
			return kerr_set(e, -EINVAL, "--sites '%s': expected NAME:N,... with NAME of [a-z0-9_-]{1,64}",
					spec);
		char *name = xstrndup(p, (size_t)(colon - p));
		char *num = xstrndup(colon + 1, (size_t)(end - colon - 1));
		int r = parse_u64(num, 1, LAB_MAX_NODES, &n);
		free(num);
		bool dup = false;
		for (size_t i = 0; i < names->n; i++)
			dup |= !strcmp(names->v[i], name);
		if (r < 0)
			r = kerr_set(e, -EINVAL, "--sites '%s': site '%s' needs 1 to %d nodes", spec,
				     name, LAB_MAX_NODES);
		else if (dup)
			r = kerr_set(e, -EINVAL, "--sites '%s': site '%s' is named twice", spec, name);
		else if (names->n >= SITES_MAX)
			r = kerr_set(e, -EINVAL, "--sites '%s': at most %d sites", spec, SITES_MAX);
		if (r < 0) {
			free(name);
			return r;
		}
		counts[names->n] = (unsigned)n;
		strv_take(names, name);
		p = comma ? comma + 1 : end;
		if (comma && !*p)
			return kerr_set(e, -EINVAL, "--sites '%s': trailing ','", spec);
	}
	if (names->n < 2)
		return kerr_set(e, -EINVAL, "--sites '%s': name at least two sites (the first is on-prem)",
				spec);
	return 0;
}

int sites_nodes(const char *spec, unsigned *n, unsigned *first, struct kerr *e)
{
	struct strv names = STRV_INIT;
	unsigned counts[SITES_MAX];
	int r = sites_parse(spec, &names, counts, e);

	*n = 0;
	*first = r == 0 ? counts[0] : 0;
	for (size_t i = 0; r == 0 && i < names.n; i++)
		*n += counts[i];
	if (r == 0 && *n > LAB_MAX_NODES)
		r = kerr_set(e, -EINVAL, "--sites '%s': %u nodes, at most %d", spec, *n, LAB_MAX_NODES);
	strv_release(&names);
	return r;
}

int sites_plan(const char *spec, struct lab *l, uint32_t net, struct kerr *e)
{
	struct strv names = STRV_INIT;
	unsigned counts[SITES_MAX];
	uint64_t size = 1ULL << (32 - l->prefix);
	int r;

	if (!l->bastion)
		return kerr_set(e, -EINVAL, "--sites needs --bastion (the first site's NAT router)");
	if ((r = sites_parse(spec, &names, counts, e)) < 0)
		goto out;
	/* The sites' subnets and the public one follow SUBNET, same size. */
	if ((uint64_t)net + (names.n + 1) * size > (1ULL << 32)) {
		r = kerr_set(e, -EINVAL, "--sites: %zu subnets of /%d after %s run past 255.255.255.255",
			     names.n, l->prefix, l->subnet);
		goto out;
	}
	l->sites = xcalloc(names.n, sizeof(*l->sites));
	for (size_t k = 0; k < names.n; k++) {
		struct lab_site *s = &l->sites[l->nsites++];
		char *a = ip_str(net + (uint32_t)(k * size));
		s->name = xstrdup(names.v[k]);
		s->subnet = xasprintf("%s/%d", a, l->prefix);
		s->cloud = k > 0;
		free(a);
		if (s->cloud && 11 + counts[k] - 1 > size - 2) {
			r = kerr_set(e, -EINVAL, "--sites: site '%s' has %u nodes, a /%d holds %u",
				     s->name, counts[k], l->prefix, (unsigned)(size - 12));
			goto out;
		}
	}
	uint32_t pub = net + (uint32_t)(names.n * size);
	l->pub_addr = ip_str(pub + 1);
	uint32_t h = 2166136261u;
	/* "ks-NAME", or a hash of NAME when it would pass IFNAMSIZ (as kl-). */
	if (strlen(l->name) <= IFNAMSIZ - 1 - 3) {
		l->pub_link = xasprintf("ks-%s", l->name);
	} else {
		for (const char *p = l->name; *p; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		l->pub_link = xasprintf("ks-%08x", h);
	}
	size_t k = 0, in_site = 0;
	for (size_t i = 0; i < l->nhosts; i++) {
		struct lab_host *hh = &l->hosts[i];
		if (hh->bastion) {
			hh->site = xstrdup(l->sites[0].name);
			hh->wan = ip_str(pub + 2);
			continue;
		}
		while (in_site == counts[k]) {
			k++;
			in_site = 0;
		}
		hh->site = xstrdup(l->sites[k].name);
		hh->cloud = l->sites[k].cloud;
		if (hh->cloud) {
			free(hh->addr);
			hh->addr = ip_str(net + (uint32_t)(k * size) + 11 + (uint32_t)in_site);
		}
		in_site++;
	}
out:
	strv_release(&names);
	return r;
}

size_t sites_ranges(const struct lab *l, uint32_t *nets, int *prefixes, size_t max)
{
	struct in_addr a;
	size_t n = 0;

	/* Sites are consecutive blocks from SUBNET; the public one follows. */
	char ip[16];
	size_t len = strcspn(l->subnet, "/");
	if (len >= sizeof(ip) || !max)
		return 0;
	memcpy(ip, l->subnet, len);
	ip[len] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1)
		return 0;
	uint64_t prefix;
	if (parse_u64(l->subnet + len + 1, 16, 26, &prefix) < 0)
		return 0;
	uint64_t size = 1ULL << (32 - prefix);
	size_t blocks = l->nsites ? l->nsites + 1 : 1;
	for (size_t k = 0; k < blocks && n < max; k++) {
		nets[n] = ntohl(a.s_addr) + (uint32_t)(k * size);
		prefixes[n++] = (int)prefix;
	}
	return n;
}

/* Run cmd in netns with in (or nothing) on its stdin. */
static int ns_run(const char *netns, char *const *cmd, const char *in, struct kerr *e)
{
	char *argv[12] = { "ip", "netns", "exec", (char *)netns };
	size_t n = 4;
	for (; cmd[n - 4] && n < ARRAY_SIZE(argv) - 1; n++)
		argv[n] = cmd[n - 4];
	argv[n] = NULL;
	struct run_opts o = { .in = in, .in_len = in ? strlen(in) : 0, .timeout_ms = 30000 };
	int r = run_ok(argv, &o, e);
	if (r < 0)
		kerr_prefix(e, "network setup in %s", netns);
	return r;
}

static const struct lab_site *site_of(const struct lab *l, const struct lab_host *h)
{
	for (size_t k = 0; k < l->nsites; k++)
		if (h->site && !strcmp(l->sites[k].name, h->site))
			return &l->sites[k];
	return NULL;
}

/* The public subnet ("a.b.c.d/p"), from the machine's address on it. */
static char *pub_subnet(const struct lab *l)
{
	struct in_addr a;
	inet_pton(AF_INET, l->pub_addr, &a);
	uint32_t v = (ntohl(a.s_addr) - 1);
	char *ip = ip_str(v);
	char *s = xasprintf("%s/%d", ip, l->prefix);
	free(ip);
	return s;
}

/* The nftables ruleset of host h (docs/lab.md, Sites). */
static char *host_rules(const struct lab *l, const struct lab_host *h)
{
	const struct lab_site *s = site_of(l, h);
	struct buf b;

	buf_init(&b, 0);
	buf_adds(&b, "table inet kiln_lab {\n"
		     "\tchain input {\n"
		     "\t\ttype filter hook input priority 0; policy drop;\n"
		     "\t\tct state established,related accept\n"
		     "\t\tiifname \"lo\" accept\n");
	if (h->bastion) {
		/* Its site talks to it freely; from outside only its one SSH port. */
		buf_printf(&b, "\t\tiifname \"eth0\" ip saddr %s accept\n"
			       "\t\ttcp dport 22 accept\n\t}\n", s->subnet);
		buf_printf(&b, "\tchain forward {\n"
			       "\t\ttype filter hook forward priority 0; policy drop;\n"
			       "\t\tct state established,related accept\n"
			       "\t\tiifname \"eth0\" oifname \"wan0\" ip saddr %s udp dport %d accept\n"
			       "\t}\n}\n", s->subnet, LAB_WG_PORT);
		buf_printf(&b, "table ip kiln_lab_nat {\n"
			       "\tchain postrouting {\n"
			       "\t\ttype nat hook postrouting priority 100; policy accept;\n"
			       "\t\toifname \"wan0\" ip saddr %s masquerade\n"
			       "\t}\n}\n", s->subnet);
	} else if (h->cloud) {
		/* The rules are the physical network's: what comes out of a tunnel
		 * (the mesh's kiln0) has passed WireGuard's own check. */
		buf_printf(&b, "\t\tiifname != \"eth0\" accept\n\t\tip saddr %s accept\n"
			       "\t\ttcp dport 22 accept\n"
			       "\t\tudp dport %d accept\n\t}\n}\n", s->subnet, LAB_WG_PORT);
	} else {
		buf_printf(&b, "\t\tiifname != \"eth0\" accept\n\t\tip saddr %s accept\n\t}\n}\n",
			   s->subnet);
	}
	return b.s;  /* the caller frees it */
}

int sites_network(const struct lab *l, struct kerr *e)
{
	struct buf root, sw, hb;
	const struct lab_host *bastion = &l->hosts[0];
	int r = 0;

	if (!l->nsites)
		return 0;
	/* Checked here, not in sites_plan(): planning reads nothing of the machine. */
	if (access("/usr/sbin/nft", X_OK) < 0)
		return kerr_set(e, -ENOENT, "--sites: /usr/sbin/nft is missing (apt-get install nftables)");
	buf_init(&root, 0);
	buf_init(&sw, 0);
	buf_init(&hb, 0);
	char *pub = pub_subnet(l);
	buf_printf(&root, "link add %s type veth peer name pub0 netns %s\n", l->pub_link,
		   l->sw_netns);
	buf_printf(&root, "addr add %s/%d dev %s\nlink set %s up\n", l->pub_addr, l->prefix,
		   l->pub_link, l->pub_link);
	for (size_t k = 1; k < l->nsites; k++)
		buf_printf(&root, "route add %s dev %s\n", l->sites[k].subnet, l->pub_link);
	if ((r = lab_ip_batch(NULL, root.s, e)) < 0)
		goto out;

	buf_adds(&sw, "link add pub type bridge\nlink set pub up\n"
		      "link set pub0 master pub\nlink set pub0 up\n");
	buf_printf(&sw, "link add w0 type veth peer name wan0 netns %s\n"
			"link set w0 master pub\nlink set w0 up\n", bastion->netns);
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		if (!h->cloud)
			continue;
		buf_printf(&sw, "link add c%zu type veth peer name eth0 netns %s\n"
				"link set c%zu master pub\nlink set c%zu up\n", i, h->netns, i, i);
	}
	if ((r = lab_ip_batch(l->sw_netns, sw.s, e)) < 0)
		goto out;

	buf_printf(&hb, "addr add %s/%d dev wan0\nlink set wan0 up\n", bastion->wan, l->prefix);
	for (size_t k = 1; k < l->nsites; k++)
		buf_printf(&hb, "route add %s dev wan0\n", l->sites[k].subnet);
	if ((r = lab_ip_batch(bastion->netns, hb.s, e)) < 0)
		goto out;
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		if (!h->cloud)
			continue;
		buf_reset(&hb);
		buf_printf(&hb, "link set lo up\naddr add %s/%d dev eth0\nlink set eth0 up\n"
				"route add %s dev eth0\n", h->addr, l->prefix, pub);
		for (size_t k = 1; k < l->nsites; k++)
			if (strcmp(l->sites[k].name, h->site))
				buf_printf(&hb, "route add %s dev eth0\n", l->sites[k].subnet);
		if ((r = lab_ip_batch(h->netns, hb.s, e)) < 0)
			goto out;
	}

	char *nft[] = { "nft", "-f", "-", NULL };
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		char *rules = host_rules(l, h);
		r = ns_run(h->netns, nft, rules, e);
		free(rules);
		if (r < 0)
			goto out;
	}
	/* The bastion's init turns its forwarding on (host.c), after these rules. */
out:
	free(pub);
	buf_release(&root);
	buf_release(&sw);
	buf_release(&hb);
	return r;
}

void sites_to_json(const struct lab *l, json_t *state)
{
	json_t *sites = json_array(), *hosts = json_object_get(state, "hosts");

	for (size_t k = 0; k < l->nsites; k++)
		json_array_append_new(sites, json_pack("{s:s, s:s, s:b}", "name", l->sites[k].name,
						       "subnet", l->sites[k].subnet,
						       "cloud", l->sites[k].cloud));
	json_object_set_new(state, "sites", sites);
	json_object_set_new(state, "public_link",
			    l->pub_link ? json_string(l->pub_link) : json_null());
	json_object_set_new(state, "public_address",
			    l->pub_addr ? json_string(l->pub_addr) : json_null());
	if (l->pub_link)
		json_array_append_new(json_object_get(state, "made_links"),
				      json_string(l->pub_link));
	for (size_t i = 0; i < l->nhosts && i < json_array_size(hosts); i++) {
		const struct lab_host *h = &l->hosts[i];
		json_t *hj = json_array_get(hosts, i);
		json_object_set_new(hj, "site", h->site ? json_string(h->site) : json_null());
		json_object_set_new(hj, "cloud", json_boolean(h->cloud));
		json_object_set_new(hj, "wan", h->wan ? json_string(h->wan) : json_null());
	}
}

static char *jdup_or_null(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? xstrdup(s) : NULL;
}

int sites_from_json(struct lab *l, const json_t *state, struct kerr *e)
{
	json_t *sites = json_object_get(state, "sites"), *hosts = json_object_get(state, "hosts");
	size_t i;
	json_t *sj;

	/* No "sites" (an older state file, or none asked for): nothing to do. */
	l->pub_link = jdup_or_null(state, "public_link");
	l->pub_addr = jdup_or_null(state, "public_address");
	if (json_is_array(sites) && json_array_size(sites)) {
		l->sites = xcalloc(json_array_size(sites), sizeof(*l->sites));
		json_array_foreach(sites, i, sj) {
			struct lab_site *s = &l->sites[l->nsites++];
			s->name = jdup_or_null(sj, "name");
			s->subnet = jdup_or_null(sj, "subnet");
			s->cloud = json_is_true(json_object_get(sj, "cloud"));
			if (!s->name || !s->subnet)
				return kerr_set(e, -EINVAL, "site %zu is incomplete", i);
		}
	}
	for (i = 0; i < l->nhosts && i < json_array_size(hosts); i++) {
		json_t *hj = json_array_get(hosts, i);
		l->hosts[i].site = jdup_or_null(hj, "site");
		l->hosts[i].wan = jdup_or_null(hj, "wan");
		l->hosts[i].cloud = json_is_true(json_object_get(hj, "cloud"));
	}
	return 0;
}

void sites_free(struct lab *l)
{
	for (size_t k = 0; k < l->nsites; k++) {
		free(l->sites[k].name);
		free(l->sites[k].subnet);
	}
	free(l->sites);
	free(l->pub_link);
	free(l->pub_addr);
	for (size_t i = 0; i < l->nhosts; i++) {
		free(l->hosts[i].site);
		free(l->hosts[i].wan);
	}
}
