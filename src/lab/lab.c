/*
 * kiln lab: making and removing a lab (addresses, network, files, state).
 * The per-host processes live in host.c.
 *
 * Address plan for SUBNET (default 10.213.0.0/24), offsets from its base:
 *   .1        the machine's veth on the lab bridge (no bastion)
 *   .2        the bastion's leg on the lab bridge (--bastion)
 *   .11 + i   node(i+1)
 *   last /30  --bastion only: the uplink between the machine (.253 in a
 *             /24) and the bastion (.254); the rest of SUBNET gets an
 *             "unreachable" route in the machine's namespace, so nodes are
 *             not reachable from the machine and no probe leaves the box.
 */
#include "lab_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>


/* ---- names and addresses -------------------------------------------- */


/* Parse "a.b.c.d/p" (host bits zero, p in 16..26). */
static int subnet_parse(const char *s, uint32_t *net, int *prefix, struct kerr *e)
{
	const char *slash = strchr(s, '/');
	struct in_addr a;
	uint64_t p;

	if (!slash || slash - s > 15)
		return kerr_set(e, -EINVAL, "subnet '%s': expected an IPv4 CIDR like %s",
				s, LAB_DEFAULT_SUBNET);
	char ip[16];
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1)
		return kerr_set(e, -EINVAL, "subnet '%s': '%s' is not an IPv4 address", s, ip);
	if (parse_u64(slash + 1, 16, 26, &p) < 0)
		return kerr_set(e, -EINVAL, "subnet '%s': prefix length must be 16..26", s);
	uint32_t mask = ipv4_prefix_mask((int)p), v = ntohl(a.s_addr);
	if (v & ~mask)
		return kerr_set(e, -EINVAL, "subnet '%s': host bits are set (did you mean %u.%u.%u.%u/%d?)",
				s, (v & mask) >> 24, ((v & mask) >> 16) & 255,
				((v & mask) >> 8) & 255, (v & mask) & 255, (int)p);
	*net = v;
	*prefix = (int)p;
	return 0;
}

static char *addr_at(uint32_t net, uint32_t off)
{
	uint32_t v = net + off;
	return xasprintf("%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
}

/*
 * A machine-side veth: "PFX-NAME" ("kl" the lab bridge, "km" the management
 * bridge), or "PFX-" + a hash when NAME is long.
 */
static char *root_link_name(const char *pfx, const char *name)
{
	uint32_t h = 2166136261u;

	if (strlen(name) <= IFNAMSIZ - 1 - 3)
		return xasprintf("%s-%s", pfx, name);
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return xasprintf("%s-%08x", pfx, h);
}

/* ---- helpers -------------------------------------------------------- */

int lab_ip_batch(const char *netns, const char *script, struct kerr *e)
{
	char *argv[] = { "ip", "-n", (char *)netns, "-batch", "-", NULL };
	char *argv_root[] = { "ip", "-batch", "-", NULL };
	struct run_opts o = { .in = script, .in_len = strlen(script), .timeout_ms = 60000 };
	int r = run_ok(netns ? argv : argv_root, &o, e);

	if (r < 0)
		kerr_prefix(e, "network setup%s%s", netns ? " in " : "", netns ? netns : "");
	return r;
}

static int write_text(const char *path, const char *text, mode_t mode, struct kerr *e)
{
	int r = file_write_atomic(path, text, strlen(text), mode, -1, -1);
	if (r < 0)
		kerr_set(e, r, "write %s: %s", path, strerror(-r));
	return r;
}

/* Generate an ed25519 key pair at path (and path.pub). */
int lab_keygen(const char *path, const char *comment, struct kerr *e)
{
	char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
			 (char *)comment, "-f", (char *)path, NULL };
	char *pub = xasprintf("%s.pub", path);
	unlink(path);
	unlink(pub);
	free(pub);
	int r = run_ok(argv, &(struct run_opts){ .timeout_ms = 30000 }, e);
	if (r < 0)
		kerr_prefix(e, "key %s", path);
	return r;
}

/* Read an OpenSSH public key file as "type base64" (comment dropped). */
static int read_pubkey(const char *path, char **out, struct kerr *e)
{
	struct buf b;
	int r;

	buf_init(&b, 16384);
	if ((r = file_read(path, &b, 16384)) < 0) {
		kerr_set(e, r, "read %s: %s", path, strerror(-r));
		goto out;
	}
	char *type = strtok(b.s, " \t\n"), *data = type ? strtok(NULL, " \t\n") : NULL;
	if (!data) {
		r = kerr_set(e, -EINVAL, "%s: not a public key", path);
		goto out;
	}
	*out = xasprintf("%s %s", type, data);
out:
	buf_release(&b);
	return r;
}

char *lab_host_path(const struct lab_host *h, const char *sub)
{
	return xasprintf("%s/%s", h->rt, sub);
}

/* ---- making the lab ------------------------------------------------- */

/*
 * --bmc: the management network is SUBNET with its second octet plus one
 * (10.213.5.0/24 -> 10.214.5.0/24): .1 the machine, .11 + i node(i+1)'s
 * BMC, as on the lab bridge.  No side effects.
 */
static int bmc_plan(struct lab *l, uint32_t net, struct kerr *e)
{
	char *cidr;
	size_t k = 0;

	if (((net >> 16) & 255) == 255)
		return kerr_set(e, -EINVAL, "--bmc: subnet %s has no management subnet (its second octet + 1): pick another with --subnet",
				l->subnet);
	uint32_t m = net + (1U << 16);
	cidr = addr_at(m, 0);
	l->bmc_subnet = xasprintf("%s/%d", cidr, l->prefix);
	free(cidr);
	l->bmc_netns = xasprintf("%s-mgmt", l->name);
	l->bmc_link = root_link_name("km", l->name);
	l->bmc_root_addr = addr_at(m, 1);
	for (size_t i = 0; i < l->nhosts; i++) {
		struct lab_host *h = &l->hosts[i];
		if (h->bastion)
			continue;
		h->bmc_netns = xasprintf("%s-bmc-%s", l->name, h->name);
		h->bmc_addr = addr_at(m, 11 + (uint32_t)k++);
	}
	return 0;
}

/* Fill l (names, addresses, hosts) from the options; no side effects. */
static int lab_plan(const struct lab_opts *o, struct lab *l, struct kerr *e)
{
	uint32_t net;
	int prefix, r;
	unsigned nodes = o->nodes ? o->nodes : LAB_DEFAULT_NODES;
	unsigned in_subnet = nodes;  /* nodes on br0: all, or the first site's */

	/* --sites names the node count; --nodes, if given, must agree: the
	 * sum, or the first site's (the rack: `--nodes 4 --sites onprem:4,cloud:2`). */
	if (o->sites) {
		if ((r = sites_nodes(o->sites, &nodes, &in_subnet, e)) < 0)
			return r;
		if (o->nodes && o->nodes != nodes && o->nodes != in_subnet)
			return kerr_set(e, -EINVAL, "--nodes %u but --sites '%s' names %u in all, "
					"%u in its first site", o->nodes, o->sites, nodes, in_subnet);
	}

	l->name = xstrdup(o->name ? o->name : LAB_DEFAULT_NAME);
	if (!lab_name_valid(l->name))
		return kerr_set(e, -EINVAL,
				"lab name '%s': use 1-%d lower-case letters, digits or '-', not starting with '-'",
				l->name, LAB_NAME_MAX);
	if (nodes > LAB_MAX_NODES)
		return kerr_set(e, -EINVAL, "%u nodes: at most %d", nodes, LAB_MAX_NODES);
	l->subnet = xstrdup(o->subnet ? o->subnet : LAB_DEFAULT_SUBNET);
	if ((r = subnet_parse(l->subnet, &net, &prefix, e)) < 0)
		return r;
	l->prefix = prefix;
	l->bastion = o->bastion;
	uint32_t size = 1U << (32 - prefix);
	uint32_t last = o->bastion ? size - 5 : size - 2;
	if (11 + in_subnet - 1 > last)
		return kerr_set(e, -EINVAL, "subnet %s holds at most %u nodes%s", l->subnet,
				last - 10, o->bastion ? " with a bastion" : "");
	l->rt = xasprintf("%s/%s", LAB_RUNTIME_DIR, l->name);
	l->state_path = lab_state_path(l->name);
	l->sw_netns = xasprintf("%s-sw", l->name);
	l->root_link = root_link_name("kl", l->name);
	if (o->bastion) {
		l->root_addr = addr_at(net, size - 3);
		l->unreachable = xstrdup(l->subnet);
	} else {
		l->root_addr = addr_at(net, 1);
	}
	l->hosts = xcalloc(nodes + 1, sizeof(*l->hosts));
	if (o->bastion) {
		struct lab_host *h = &l->hosts[l->nhosts++];
		h->name = xstrdup("bastion");
		h->bastion = true;
		h->addr = addr_at(net, 2);
		h->uplink = addr_at(net, size - 2);
	}
	for (unsigned i = 0; i < nodes; i++) {
		struct lab_host *h = &l->hosts[l->nhosts++];
		h->name = xasprintf("node%u", i + 1);
		h->addr = addr_at(net, 11 + i);
	}
	if (o->sites && (r = sites_plan(o->sites, l, net, e)) < 0)
		return r;
	bool systemd;
	if (!o->init)
		systemd = !strcmp(lab_default_init(), "systemd");
	else if (!strcmp(o->init, "systemd"))
		systemd = true;
	else if (!strcmp(o->init, "tiny"))
		systemd = false;
	else
		return kerr_set(e, -EINVAL, "--init '%s': expected systemd or tiny", o->init);
	if (systemd && (r = host_systemd_usable(e)) < 0) {
		kerr_prefix(e, "--init systemd");
		return r;
	}
	for (size_t i = 0; i < l->nhosts; i++) {
		l->hosts[i].systemd = systemd;
		l->hosts[i].netns = xasprintf("%s-%s", l->name, l->hosts[i].name);
		l->hosts[i].rt = xasprintf("%s/%s", l->rt, l->hosts[i].name);
	}
	return o->bmc ? bmc_plan(l, net, e) : 0;
}

/* Every IPv4 range l claims: its subnet, its sites' and the public one
 * (sites.c), its management subnet (--bmc).  Returns how many. */
#define LAB_RANGES (LAB_SITES_RANGES + 1)
static size_t lab_ranges(const struct lab *l, uint32_t *nets, int *prefixes)
{
	size_t n = sites_ranges(l, nets, prefixes, LAB_SITES_RANGES);
	if (l->bmc_subnet && subnet_parse(l->bmc_subnet, &nets[n], &prefixes[n], NULL) == 0)
		n++;
	return n;
}

/* Refuse a lab whose name, namespaces or subnet are taken. */
static int lab_check_free(const struct lab *l, struct kerr *e)
{
	struct strv names = STRV_INIT;
	uint32_t nets[LAB_RANGES], onets[LAB_RANGES];
	int prefixes[LAB_RANGES], oprefixes[LAB_RANGES], r;

	if (path_exists(l->state_path) || path_exists(l->rt))
		return kerr_set(e, -EEXIST, "lab '%s' already exists (remove it with 'kiln lab down --name %s')",
				l->name, l->name);
	char *ns = xasprintf("/run/netns/%s", l->sw_netns);
	bool taken = path_exists(ns);
	free(ns);
	for (size_t i = 0; !taken && i < l->nhosts; i++) {
		ns = xasprintf("/run/netns/%s", l->hosts[i].netns);
		taken = path_exists(ns);
		free(ns);
	}
	for (size_t i = 0; !taken && l->bmc_netns && i <= l->nhosts; i++) {
		const char *n = i < l->nhosts ? l->hosts[i].bmc_netns : l->bmc_netns;
		ns = n ? xasprintf("/run/netns/%s", n) : NULL;
		taken = ns && path_exists(ns);
		free(ns);
	}
	if (taken)
		return kerr_set(e, -EEXIST, "network namespaces named '%s-*' already exist",
				l->name);
	if (if_nametoindex(l->root_link))
		return kerr_set(e, -EEXIST, "network interface '%s' already exists", l->root_link);
	if (l->pub_link && if_nametoindex(l->pub_link))
		return kerr_set(e, -EEXIST, "network interface '%s' already exists", l->pub_link);
	if (l->bmc_link && if_nametoindex(l->bmc_link))
		return kerr_set(e, -EEXIST, "network interface '%s' already exists", l->bmc_link);
	/* A lab claims its subnet, its sites' and the public one, and its
	 * management subnet. */
	size_t n = lab_ranges(l, nets, prefixes);
	if ((r = lab_list(&names, e)) < 0)
		return r;
	for (size_t i = 0; i < names.n && r == 0; i++) {
		struct lab *o = NULL;
		if (lab_load(names.v[i], &o, NULL) == 0) {
			size_t on = lab_ranges(o, onets, oprefixes);
			for (size_t a = 0; a < n && r == 0; a++)
				for (size_t b = 0; b < on && r == 0; b++)
					if (ipv4_subnets_overlap(nets[a], prefixes[a], onets[b], oprefixes[b]))
						r = kerr_set(e, -EEXIST, "subnet %s%s overlaps lab '%s' (%s%s): pick another with --subnet",
							     l->subnet, n > 1 ? " (with its sites' or management subnet)" : "",
							     o->name, o->subnet,
							     on > 1 ? " with its sites' or management subnet" : "");
		}
		lab_free(o);
	}
	strv_release(&names);
	return r;
}

static int mkdir_or_fail(const char *path, mode_t mode, struct kerr *e)
{
	int r = mkdir_p(path, mode);
	if (r < 0)
		kerr_set(e, r, "mkdir %s: %s", path, strerror(-r));
	return r;
}

/* The files a host sees in its /etc and /root, written into its upper dirs. */
static int host_write_files(const struct lab *l, const struct lab_host *h,
			    const char *client_pub, const char *etc_hosts, struct kerr *e)
{
	char *p = NULL, *text = NULL;
	int r;

	p = lab_host_path(h, "fs/upper/etc/hostname");
	text = xasprintf("%s\n", h->name);
	if ((r = write_text(p, text, 0644, e)) < 0)
		goto out;
	free(p);
	p = lab_host_path(h, "fs/upper/etc/hosts");
	if ((r = write_text(p, etc_hosts, 0644, e)) < 0)
		goto out;
	free(p);
	/* A minimal shell init: the machine's may be slow (PEERS.md). */
	p = lab_host_path(h, "fs/upper/root/.bashrc");
	if ((r = write_text(p, "# kiln lab: minimal shell init\n", 0644, e)) < 0)
		goto out;
	free(p);
	p = lab_host_path(h, "fs/upper/root/.profile");
	if ((r = write_text(p, "# kiln lab: minimal login init\n"
			    "[ -n \"$BASH_VERSION\" ] && [ -f ~/.bashrc ] && . ~/.bashrc\n",
			    0644, e)) < 0)
		goto out;
	free(p);
	/* ~/.ssh is opaque: the machine's own /root/.ssh stays invisible. */
	p = lab_host_path(h, "fs/upper/root/.ssh");
	if ((r = mkdir_or_fail(p, 0700, e)) < 0)
		goto out;
	if (setxattr(p, "trusted.overlay.opaque", "y", 1, 0) < 0) {
		r = kerr_set(e, -errno, "mark %s opaque: %s", p, strerror(errno));
		goto out;
	}
	free(p);
	p = lab_host_path(h, "fs/upper/root/.ssh/authorized_keys");
	free(text);
	text = xasprintf("%s kiln-lab@%s\n", client_pub, l->name);
	r = write_text(p, text, 0600, e);
out:
	free(p);
	free(text);
	return r;
}

/* Host key, sshd_config and overlay dirs for one host. */
static int host_prepare(const struct lab *l, const struct lab_host *h,
			const char *client_pub, const char *etc_hosts, struct kerr *e)
{
	char *ssh = lab_host_path(h, "ssh"), *key = lab_host_path(h, "ssh/ssh_host_ed25519_key");
	char *cfg = lab_host_path(h, "ssh/sshd_config"), *comment = xasprintf("root@%s", h->name);
	struct buf b;
	int r;

	buf_init(&b, 0);
	if ((r = mkdir_or_fail(ssh, 0700, e)) < 0 || (r = host_prepare_fs(h, e)) < 0 ||
	    (r = hw_host_prepare(h, e)) < 0 || (r = lab_keygen(key, comment, e)) < 0)
		goto out;
	buf_printf(&b, "# kiln lab '%s': sshd of host '%s'\n", l->name, h->name);
	buf_printf(&b, "ListenAddress %s:22\n", h->addr);
	if (h->uplink)
		buf_printf(&b, "ListenAddress %s:22\n", h->uplink);
	buf_printf(&b, "HostKey %s\nPidFile %s/sshd.pid\n", key, ssh);
	buf_adds(&b, "AuthorizedKeysFile .ssh/authorized_keys\n"
		     "UsePAM no\n"
		     "PermitRootLogin prohibit-password\n"
		     "PasswordAuthentication no\n"
		     "KbdInteractiveAuthentication no\n"
		     "PubkeyAuthentication yes\n"
		     "MaxStartups 200:30:400\n"
		     "AllowTcpForwarding yes\n"
		     "UseDNS no\n"
		     "PrintMotd no\n"
		     "PrintLastLog no\n"
		     "AcceptEnv LANG LC_*\n"
		     "Subsystem sftp /usr/lib/openssh/sftp-server\n");
	if ((r = write_text(cfg, b.s, 0600, e)) < 0 ||
	    (r = host_systemd_files(h, e)) < 0)
		goto out;
	r = host_write_files(l, h, client_pub, etc_hosts, e);
out:
	buf_release(&b);
	free(ssh);
	free(key);
	free(cfg);
	free(comment);
	return r;
}

/*
 * --bmc: the management namespace NAME-mgmt with bridge br0, the machine's
 * veth on it, and each node's BMC namespace NAME-bmc-HOST with one leg.
 */
static int bmc_network(const struct lab *l, struct kerr *e)
{
	struct buf root, sw, hb;
	int r;

	buf_init(&root, 0);
	buf_init(&sw, 0);
	buf_init(&hb, 0);
	buf_printf(&root, "netns add %s\n", l->bmc_netns);
	for (size_t i = 0; i < l->nhosts; i++)
		if (l->hosts[i].bmc_netns)
			buf_printf(&root, "netns add %s\n", l->hosts[i].bmc_netns);
	buf_printf(&root, "link add %s type veth peer name up0 netns %s\n", l->bmc_link,
		   l->bmc_netns);
	buf_printf(&root, "addr add %s/%d dev %s\nlink set %s up\n", l->bmc_root_addr,
		   l->prefix, l->bmc_link, l->bmc_link);
	if ((r = lab_ip_batch(NULL, root.s, e)) < 0)
		goto out;
	buf_adds(&sw, "link set lo up\nlink add br0 type bridge\nlink set br0 up\n"
		      "link set up0 master br0\nlink set up0 up\n");
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		if (!h->bmc_netns)
			continue;
		buf_printf(&sw, "link add b%zu type veth peer name eth0 netns %s\n", i, h->bmc_netns);
		buf_printf(&sw, "link set b%zu master br0\nlink set b%zu up\n", i, i);
	}
	if ((r = lab_ip_batch(l->bmc_netns, sw.s, e)) < 0)
		goto out;
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		if (!h->bmc_netns)
			continue;
		buf_reset(&hb);
		buf_printf(&hb, "link set lo up\naddr add %s/%d dev eth0\nlink set eth0 up\n",
			   h->bmc_addr, l->prefix);
		if ((r = lab_ip_batch(h->bmc_netns, hb.s, e)) < 0)
			goto out;
	}
out:
	buf_release(&root);
	buf_release(&sw);
	buf_release(&hb);
	return r;
}

/* Namespaces, the bridge, veths, addresses and routes. */
static int lab_network(const struct lab *l, struct kerr *e)
{
	struct buf root, sw, hb;
	struct lab_host *bastion = l->bastion ? &l->hosts[0] : NULL;
	int r;

	buf_init(&root, 0);
	buf_init(&sw, 0);
	buf_init(&hb, 0);
	buf_printf(&root, "netns add %s\n", l->sw_netns);
	for (size_t i = 0; i < l->nhosts; i++)
		buf_printf(&root, "netns add %s\n", l->hosts[i].netns);
	buf_printf(&root, "link add %s type veth peer name up0 netns %s\n", l->root_link,
		   bastion ? bastion->netns : l->sw_netns);
	buf_printf(&root, "addr add %s/%d dev %s\n", l->root_addr,
		   bastion ? 30 : l->prefix, l->root_link);
	buf_printf(&root, "link set %s up\n", l->root_link);
	if (l->unreachable)
		buf_printf(&root, "route add unreachable %s\n", l->unreachable);
	if ((r = lab_ip_batch(NULL, root.s, e)) < 0)
		goto out;

	buf_adds(&sw, "link set lo up\nlink add br0 type bridge\nlink set br0 up\n");
	if (!bastion)
		buf_adds(&sw, "link set up0 master br0\nlink set up0 up\n");
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		if (h->cloud)  /* on the public bridge (sites_network) */
			continue;
		/* Switch port names are private to the switch namespace. */
		char port[16];
		if (h->bastion)
			snprintf(port, sizeof(port), "b0");
		else
			snprintf(port, sizeof(port), "n%zu", i + (bastion ? 0 : 1));
		buf_printf(&sw, "link add %s type veth peer name eth0 netns %s\n", port, h->netns);
		buf_printf(&sw, "link set %s master br0\nlink set %s up\n", port, port);
	}
	if ((r = lab_ip_batch(l->sw_netns, sw.s, e)) < 0)
		goto out;

	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		if (h->cloud)
			continue;
		buf_reset(&hb);
		buf_printf(&hb, "link set lo up\naddr add %s/%d dev eth0\nlink set eth0 up\n",
			   h->addr, l->prefix);
		if (h->bastion)
			buf_printf(&hb, "addr add %s/30 dev up0\nlink set up0 up\n", h->uplink);
		else
			buf_printf(&hb, "route add default via %s\n",
				   bastion ? bastion->addr : l->root_addr);
		if ((r = lab_ip_batch(h->netns, hb.s, e)) < 0)
			goto out;
	}
	r = sites_network(l, e);
	if (r == 0 && l->bmc_netns)
		r = bmc_network(l, e);
out:
	buf_release(&root);
	buf_release(&sw);
	buf_release(&hb);
	return r;
}

/* cluster.yaml, known_hosts, ssh_config and the marker in the lab's dir. */
static int lab_write_dir(const struct lab *l, struct kerr *e)
{
	struct buf y, kh, sc;
	const struct lab_host *bastion = l->bastion ? &l->hosts[0] : NULL;
	char *p = NULL;
	int r = 0;

	buf_init(&y, 0);
	buf_init(&kh, 0);
	buf_init(&sc, 0);
	buf_printf(&y, "# Written by 'kiln lab up': lab '%s', subnet %s.\n"
		       "# Its hosts are namespaces on this machine; 'kiln lab down --name %s' removes them.\n",
		   l->name, l->subnet, l->name);
	buf_printf(&y, "cluster: %s\n\nssh:\n  user: root\n  key: keys/id_ed25519\n"
		       "  known_hosts: known_hosts\n", l->name);
	/* With sites only the on-prem nodes go through the bastion (per node). */
	if (bastion && !l->nsites)
		buf_printf(&y, "  bastion: root@%s:22\n", bastion->uplink);
	buf_adds(&y, "\nnodes:\n");
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		if (h->bastion)
			continue;
		buf_printf(&y, "  - name: %s\n    address: %s\n    roles: [worker]\n    site: %s\n",
			   h->name, h->addr, h->site ? h->site : "lab");
		if (l->nsites && !h->cloud)
			buf_printf(&y, "    bastion: root@%s:22\n", bastion->uplink);
		if (h->cloud)
			buf_printf(&y, "    vars:\n      endpoint: \"%s:%d\"\n", h->addr, LAB_WG_PORT);
		if (h->bmc_addr)
			buf_printf(&y, "    bmc:\n      type: ipmi\n      address: %s\n"
				       "      user: %s\n      password_file: %s\n",
				   h->bmc_addr, LAB_BMC_USER, LAB_BMC_PASSWORD_FILE);
	}
	buf_adds(&y, "\nstacks:\n  base:\n    admin_user:\n      name: kiln\n"
		     "      key_files: [keys/id_ed25519.pub]\n");
	/* Sites: the seed's hybrid network, spokes joined to the first cloud node. */
	for (size_t i = 0; l->nsites && i < l->nhosts; i++)
		if (l->hosts[i].cloud) {
			buf_printf(&y, "  mesh:\n    network: %s\n    topology: hub\n"
				       "    hubs: [%s]\n", LAB_MESH_NETWORK, l->hosts[i].name);
			break;
		}

	buf_printf(&sc, "# Written by 'kiln lab up': ssh -F %s/ssh_config node1\n"
			"Host *\n  User root\n  IdentityFile %s/keys/id_ed25519\n"
			"  IdentitiesOnly yes\n  UserKnownHostsFile %s/known_hosts\n"
			"  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
			"  LogLevel ERROR\n",
		   l->dir, l->dir, l->dir);
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		char *pubpath = lab_host_path(h, "ssh/ssh_host_ed25519_key.pub"), *pub = NULL;
		r = read_pubkey(pubpath, &pub, e);
		free(pubpath);
		if (r < 0)
			goto out;
		if (h->bastion) {
			buf_printf(&kh, "%s,%s,%s %s\n", h->uplink, h->addr, h->name, pub);
			buf_printf(&sc, "Host %s\n  HostName %s\n", h->name, h->uplink);
		} else {
			buf_printf(&kh, "%s,%s %s\n", h->addr, h->name, pub);
			buf_printf(&sc, "Host %s\n  HostName %s\n", h->name, h->addr);
			if (bastion && !h->cloud)
				buf_adds(&sc, "  ProxyJump bastion\n");
		}
		free(pub);
	}
	p = path_join(l->dir, "cluster.yaml");
	if ((r = write_text(p, y.s, 0644, e)) < 0)
		goto out;
	free(p);
	p = path_join(l->dir, "known_hosts");
	if ((r = write_text(p, kh.s, 0644, e)) < 0)
		goto out;
	free(p);
	p = path_join(l->dir, "ssh_config");
	if ((r = write_text(p, sc.s, 0644, e)) < 0)
		goto out;
	free(p);
	p = path_join(l->dir, LAB_MARKER_FILE);
	char *marker = xasprintf("%s\n", l->name);
	r = write_text(p, marker, 0644, e);
	free(marker);
out:
	free(p);
	buf_release(&y);
	buf_release(&kh);
	buf_release(&sc);
	return r;
}

/* The lab's client key: reuse DIR/keys/id_ed25519 if there, else make it. */
static int lab_client_key(const struct lab *l, char **pub, struct kerr *e)
{
	char *keys = path_join(l->dir, "keys"), *key = path_join(l->dir, "keys/id_ed25519");
	char *pubpath = xasprintf("%s.pub", key), *comment = xasprintf("kiln-lab@%s", l->name);
	int r;

	if ((r = mkdir_or_fail(keys, 0700, e)) < 0)
		goto out;
	if (!path_exists(key) || !path_exists(pubpath))
		if ((r = lab_keygen(key, comment, e)) < 0)
			goto out;
	r = read_pubkey(pubpath, pub, e);
out:
	free(keys);
	free(key);
	free(pubpath);
	free(comment);
	return r;
}

/*
 * Start every host's init, record the pids, collect each setup report and
 * wait until every sshd accepts.  Inits are all started before any report
 * is read, so hosts set up (and sshd loads its keys) in parallel.
 */
static int lab_start_hosts(struct lab *l, struct kerr *e)
{
	int *fds = xcalloc(l->nhosts, sizeof(*fds));
	struct lab_host **all = xcalloc(l->nhosts, sizeof(*all));
	int r = 0;
	size_t started = 0;

	for (size_t i = 0; i < l->nhosts; i++)
		fds[i] = -1;
	for (; started < l->nhosts; started++)
		if ((r = host_spawn(&l->hosts[started], &fds[started], e)) < 0)
			break;
	int q = lab_save(l, r < 0 ? NULL : e);
	if (r == 0)
		r = q;
	for (size_t i = 0; i < started; i++) {
		struct kerr tmp;
		int qq = host_read_report(fds[i], &l->hosts[i], LAB_REPORT_WAIT_MS, &tmp);
		if (qq < 0 && r == 0) {
			r = qq;
			if (e)
				*e = tmp;
		}
	}
	if (r == 0) {
		for (size_t i = 0; i < l->nhosts; i++)
			all[i] = &l->hosts[i];
		r = hosts_wait_sshd(all, l->nhosts, LAB_SSHD_WAIT_MS, e);
	}
	free(fds);
	free(all);
	return r;
}

/*
 * Remove everything the lab (possibly half made) has: processes, the
 * machine-side veth and route, namespaces, the runtime tmpfs, the state.
 * Carries on past errors and reports the first.
 */
static int lab_teardown(struct lab *l, struct kerr *e)
{
	const char **ns = xcalloc(2 * l->nhosts + 2, sizeof(*ns));
	pid_t *pids = xcalloc(2 * l->nhosts + 1, sizeof(*pids));
	unsigned long long *starts = xcalloc(2 * l->nhosts + 1, sizeof(*starts));
	size_t nns = l->nhosts + 1, npids = l->nhosts;
	struct buf b;
	struct kerr tmp;
	int r = 0, q;

	buf_init(&b, 0);
	ns[0] = l->sw_netns;
	for (size_t i = 0; i < l->nhosts; i++) {
		ns[i + 1] = l->hosts[i].netns;
		pids[i] = l->hosts[i].pid;
		starts[i] = l->hosts[i].start;
	}
	/* --bmc: the ipmi_sims (and any bmc-action they run) and their namespaces. */
	if (l->bmc_netns)
		ns[nns++] = l->bmc_netns;
	for (size_t i = 0; i < l->nhosts; i++)
		if (l->hosts[i].bmc_netns) {
			ns[nns++] = l->hosts[i].bmc_netns;
			pids[npids] = l->hosts[i].bmc_pid;
			starts[npids++] = l->hosts[i].bmc_start;
		}
	if ((q = host_kill_netns(ns, nns, pids, starts, npids, &tmp)) < 0 && !r) {
		r = q;
		if (e)
			*e = tmp;
	}
	for (size_t i = 0; i < l->nhosts; i++)
		if ((q = host_cgroups_remove(&l->hosts[i], &tmp)) < 0 && !r) {
			r = q;
			if (e)
				*e = tmp;
		}
	if ((q = mirror_stop(l->mirror, &tmp)) < 0 && !r) {
		r = q;
		if (e)
			*e = tmp;
	}
	/* With the hosts gone, nothing holds the disks: detach and remove them. */
	if ((q = hw_teardown(l, &tmp)) < 0 && !r) {
		r = q;
		if (e)
			*e = tmp;
	}
	/* The machine-side veth first: it outlives its peer's namespace briefly. */
	if (if_nametoindex(l->root_link))
		buf_printf(&b, "link del %s\n", l->root_link);
	if (l->pub_link && if_nametoindex(l->pub_link))
		buf_printf(&b, "link del %s\n", l->pub_link);
	if (l->bmc_link && if_nametoindex(l->bmc_link))
		buf_printf(&b, "link del %s\n", l->bmc_link);
	if (l->unreachable) {
		char *argv[] = { "ip", "route", "del", "unreachable", l->unreachable, NULL };
		struct buf out;
		buf_init(&out, 4096);
		char *show[] = { "ip", "route", "show", "type", "unreachable", l->unreachable, NULL };
		if (run_argv(show, &(struct run_opts){ .out = &out, .timeout_ms = 10000 }, NULL) == 0 &&
		    out.len && (q = run_ok(argv, NULL, &tmp)) < 0 && !r) {
			r = q;
			if (e)
				*e = tmp;
		}
		buf_release(&out);
	}
	for (size_t i = 0; i < nns; i++) {
		char *p = xasprintf("/run/netns/%s", ns[i]);
		if (path_exists(p))
			buf_printf(&b, "netns del %s\n", ns[i]);
		free(p);
	}
	if (b.len && (q = lab_ip_batch(NULL, b.s, &tmp)) < 0 && !r) {
		r = q;
		if (e)
			*e = tmp;
	}
	if (umount2(l->rt, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT && !r)
		r = kerr_set(e, -errno, "umount %s: %s", l->rt, strerror(errno));
	if ((q = rm_rf(l->rt)) < 0 && !r)
		r = kerr_set(e, q, "remove %s: %s", l->rt, strerror(-q));
	if (r == 0) {
		if (unlink(l->state_path) < 0 && errno != ENOENT)
			r = kerr_set(e, -errno, "remove %s: %s", l->state_path, strerror(errno));
		char *marker = path_join(l->dir, "/" LAB_MARKER_FILE);
		unlink(marker);
		free(marker);
	}
	buf_release(&b);
	free(ns);
	free(pids);
	free(starts);
	return r;
}

/* Root and the programs a lab runs, checked before anything is made. */
static int lab_check_tools(struct kerr *e)
{
	static const char *const tools[] = { "/usr/sbin/sshd", "/usr/bin/ssh-keygen" };

	if (geteuid() != 0)
		return kerr_set(e, -EPERM, "kiln lab needs root (it makes namespaces and mounts)");
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
		if (access(tools[i], X_OK) < 0)
			return kerr_set(e, -ENOENT, "%s is missing (apt-get install openssh-server)",
					tools[i]);
	return 0;
}

int lab_up(const struct lab_opts *o, json_t **status, struct kerr *e)
{
	struct lab *l = xcalloc(1, sizeof(*l));
	char *client_pub = NULL;
	struct buf hosts;
	int r;

	buf_init(&hosts, 0);
	if (status)
		*status = NULL;
	if (o->bmc && access(LAB_IPMI_SIM, X_OK) < 0) {
		r = kerr_set(e, -ENOENT, "--bmc: %s is missing (apt-get install openipmi)",
			     LAB_IPMI_SIM);
		goto out;
	}
	if ((r = lab_check_tools(e)) < 0 || (r = lab_plan(o, l, e)) < 0 ||
	    (r = mirror_plan(l, o->mirror, e)) < 0 ||
	    (r = mkdir_or_fail(LAB_RUNTIME_DIR, 0755, e)) < 0 || (r = lab_check_free(l, e)) < 0)
		goto out;
	char *dir = o->dir ? xstrdup(o->dir) : xasprintf("./%s", l->name);
	if ((r = mkdir_or_fail(dir, 0755, e)) < 0) {
		free(dir);
		goto out;
	}
	l->dir = realpath(dir, NULL);
	free(dir);
	if (!l->dir) {
		r = kerr_set(e, -errno, "lab directory: %s", strerror(errno));
		goto out;
	}
	if ((r = hw_plan(o, l, e)) < 0)
		goto out;
	if (mkdir(l->rt, 0700) < 0) {
		r = errno == EEXIST ? kerr_set(e, -EEXIST, "lab '%s' already exists", l->name)
				    : kerr_set(e, -errno, "mkdir %s: %s", l->rt, strerror(errno));
		goto out;
	}
	/* From here on, a failure undoes everything (the state file says what). */
	if ((r = lab_save(l, e)) < 0)
		goto fail;
	if (mount("tmpfs", l->rt, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0) {
		r = kerr_set(e, -errno, "tmpfs on %s: %s", l->rt, strerror(errno));
		goto fail;
	}
	l->rt_mounted = true;
	if ((r = lab_save(l, e)) < 0 || (r = lab_client_key(l, &client_pub, e)) < 0 ||
	    (r = hw_disks_make(l, e)) < 0 || (r = lab_save(l, e)) < 0)
		goto fail;
	buf_adds(&hosts, "# kiln lab hosts\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	for (size_t i = 0; i < l->nhosts; i++)
		buf_printf(&hosts, "%s\t%s\n", l->hosts[i].addr, l->hosts[i].name);
	for (size_t i = 0; i < l->nhosts; i++)
		if ((r = host_prepare(l, &l->hosts[i], client_pub, hosts.s, e)) < 0 ||
		    (r = mirror_host_files(l, &l->hosts[i], e)) < 0)
			goto fail;
	if ((r = host_neigh_limits(l->nhosts, e)) < 0)
		goto fail;
	if (l->nhosts && l->hosts[0].systemd && (r = host_systemd_limits(l->nhosts, e)) < 0)
		goto fail;
	/* The mirror lives in the switch namespace: teardown's sweep of it stops it. */
	if ((r = lab_network(l, e)) < 0 || (r = mirror_start(l, e)) < 0 ||
	    (r = bmc_start(l, e)) < 0 ||
	    (r = lab_save(l, e)) < 0 || (r = lab_start_hosts(l, e)) < 0 ||
	    (r = lab_write_dir(l, e)) < 0 || (r = lab_save(l, e)) < 0)
		goto fail;
	if (status)
		r = lab_status(l->name, status, e);
	goto out;
fail:
	lab_teardown(l, NULL);
out:
	buf_release(&hosts);
	free(client_pub);
	lab_free(l);
	return r;
}

int lab_down(const char *name_or_dir, struct kerr *e)
{
	struct lab *l = NULL;
	int r;

	if ((r = lab_open(name_or_dir, &l, e)) < 0) {
		/* An up killed before its first state write left only its dir. */
		char *rt = name_or_dir && lab_name_valid(name_or_dir)
			? xasprintf("%s/%s", LAB_RUNTIME_DIR, name_or_dir) : NULL;
		if (r == -ENOENT && rt && path_exists(rt)) {
			umount2(rt, MNT_DETACH);
			r = rm_rf(rt);
			if (r < 0)
				kerr_set(e, r, "remove %s: %s", rt, strerror(-r));
		}
		free(rt);
		return r;
	}
	r = lab_teardown(l, e);
	lab_free(l);
	return r;
}

int lab_status(const char *name_or_dir, json_t **out, struct kerr *e)
{
	struct lab *l = NULL;
	int r;

	*out = NULL;
	if ((r = lab_open(name_or_dir, &l, e)) < 0)
		return r;
	const struct lab_host *bastion = l->bastion ? &l->hosts[0] : NULL;
	json_t *hosts = json_array();
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		bool alive = host_alive(h);
		pid_t sshd = alive ? host_sshd_pid(h) : 0;
		json_t *addrs = json_array();
		json_array_append_new(addrs, json_string(h->addr));
		if (h->wan)
			json_array_append_new(addrs, json_string(h->wan));
		if (h->uplink)  /* last: the one the machine reaches */
			json_array_append_new(addrs, json_string(h->uplink));
		json_array_append_new(hosts, json_pack(
			"{s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:b, s:o}",
			"name", h->name, "role", h->bastion ? "bastion" : "node",
			"init", h->systemd ? "systemd" : "tiny",
			"address", h->addr, "addresses", addrs, "netns", h->netns,
			"init_pid", alive ? json_integer(h->pid) : json_null(),
			"sshd_pid", sshd ? json_integer(sshd) : json_null(),
			"alive", alive && sshd, "site", h->site ? json_string(h->site) : json_null()));
		json_t *bmc = json_null();
		if (h->bmc_netns)
			bmc = json_pack("{s:s, s:s, s:o, s:b, s:s, s:s}", "address", h->bmc_addr,
					"netns", h->bmc_netns,
					"pid", bmc_alive(h) ? json_integer(h->bmc_pid) : json_null(),
					"alive", bmc_alive(h), "power", alive ? "on" : "off",
					"bootdev", h->bootdev ? h->bootdev : "default");
		json_object_set_new(json_array_get(hosts, i), "bmc", bmc);
	}
	*out = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:o, s:o}", "name", l->name,
			 "dir", l->dir, "subnet", l->subnet,
			 "bastion", bastion ? json_string(bastion->uplink) : json_null(),
			 "machine_address", l->root_addr, "runtime", l->rt,
			 "mirror", mirror_status(l->mirror), "hosts", hosts);
	json_t *sites = json_array();
	for (size_t k = 0; k < l->nsites; k++)
		json_array_append_new(sites, json_pack("{s:s, s:s, s:s}", "name", l->sites[k].name,
						       "subnet", l->sites[k].subnet, "network",
						       l->sites[k].cloud ? "public" : "nat"));
	json_object_set_new(*out, "sites", sites);
	json_object_set_new(*out, "public_address",
			    l->pub_addr ? json_string(l->pub_addr) : json_null());
	json_object_set_new(*out, "bmc_subnet", lab_jstr_or_null(l->bmc_subnet));
	lab_free(l);
	return 0;
}
