/*
 * kiln boot enroll: a discovered machine becomes a node, appended to the
 * spec's boot.enrolled file (docs/serve.md says why a file and not a
 * state overlay).  The file is rewritten atomically and the whole spec is
 * loaded again before we call it done; a spec that no longer loads gets
 * the old file back.  The read-modify-write holds an exclusive flock on
 * the file's directory, so `kiln boot enroll` and the daemon's privileged
 * side (enrolling for POST /api/enroll) never lose each other's nodes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/serve.h"

static bool name_chars(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      (*s >= 'A' && *s <= 'Z' && strchr(extra, 'A')) || strchr(extra, *s)))
			return false;
	return true;
}

static bool address_taken(const struct cluster *c, uint32_t ip)
{
	for (size_t i = 0; i < c->nnodes; i++) {
		uint32_t a;
		if (boot_parse_ip(c->nodes[i].address, &a) == 0 && a == ip)
			return true;
	}
	return false;
}

/*
 * The first address of the boot network holding hint (else the first
 * network) that is not the network, broadcast, server, router, in the
 * pool, or any node's.
 */
static int pick_address(const struct cluster *c, uint32_t hint, char out[16],
			struct kerr *e)
{
	const struct boot_conf *b = &c->boot;
	const struct boot_network *n = NULL;
	for (size_t i = 0; i < b->nnetworks; i++)
		if (hint && ipv4_in_subnet(hint, b->networks[i].subnet, b->networks[i].prefix))
			n = &b->networks[i];
	if (!n && b->nnetworks)
		n = &b->networks[0];
	if (!n)
		return kerr_set(e, -EINVAL, "no boot network to take an address from "
				"(give --address)");
	uint32_t last = n->subnet | ~ipv4_prefix_mask(n->prefix);
	for (uint32_t ip = n->subnet + 1; ip < last; ip++) {
		if (ip == b->server_ip || ip == n->router || address_taken(c, ip) ||
		    (n->pool_start && ip >= n->pool_start && ip <= n->pool_end))
			continue;
		boot_fmt_ip(ip, out);
		return 0;
	}
	return kerr_set(e, -ENOSPC, "boot network '%s' has no free address outside its pool",
			n->name);
}

/* An exclusive flock on the directory of path (blocks while another holds it). */
static int lock_dir_of(const char *path, int *fd, struct kerr *e)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	*fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;
	if (*fd < 0)
		r = kerr_set(e, -errno, "cannot open '%s': %s", dir, strerror(errno));
	else
		while (flock(*fd, LOCK_EX) < 0)
			if (errno != EINTR) {
				r = kerr_set(e, -errno, "cannot lock '%s': %s", dir, strerror(errno));
				break;
			}
	free(dir);
	return r;
}

int serve_enroll(const char *spec_path, const struct enroll_req *q, char **address_out,
		 struct kerr *e)
{
	struct cluster *c = NULL, *check = NULL;
	struct buf old, nu;
	char mac[18], addr[16];
	bool had_file = false;
	int r, lockfd = -1;

	*address_out = NULL;
	buf_init(&old, 0);
	buf_init(&nu, 0);
	if (!spec_mac_normalize(q->mac, mac)) {
		r = kerr_set(e, -EINVAL, "'%s' is not a MAC address", q->mac);
		goto out;
	}
	if (!name_chars(q->name, "-.", 63) || q->name[0] == '-' || q->name[0] == '.') {
		r = kerr_set(e, -EINVAL, "'%s' is not a valid node name (a-z, 0-9, '-', '.')",
			     q->name);
		goto out;
	}
	for (size_t i = 0; q->roles && i < q->roles->n; i++)
		if (!name_chars(q->roles->v[i], "-_", 64)) {
			r = kerr_set(e, -EINVAL, "'%s' is not a valid role name", q->roles->v[i]);
			goto out;
		}
	if (q->image && !name_chars(q->image, "-_", 64)) {
		r = kerr_set(e, -EINVAL, "'%s' is not a valid image name", q->image);
		goto out;
	}
	if ((r = spec_load(spec_path, &c, e)) < 0)
		goto out;
	if (!c->boot.enabled) {
		r = kerr_set(e, -EINVAL, "%s: no 'boot' section", spec_path);
		goto out;
	}
	/* lock, then read again: what another enroll wrote meanwhile counts */
	if ((r = lock_dir_of(c->boot.enrolled, &lockfd, e)) < 0)
		goto out;
	cluster_free(c);
	c = NULL;
	if ((r = spec_load(spec_path, &c, e)) < 0)
		goto out;
	const struct node *o;
	if ((o = cluster_node_by_mac(c, mac))) {
		r = kerr_set(e, -EEXIST, "%s is already node '%s'", mac, o->name);
		goto out;
	}
	if (cluster_node(c, q->name)) {
		r = kerr_set(e, -EEXIST, "node '%s' already exists", q->name);
		goto out;
	}
	if (q->image && !cluster_boot_image(c, q->image)) {
		r = kerr_set(e, -EINVAL, "no image '%s' under boot.images", q->image);
		goto out;
	}
	if (q->address) {
		struct in_addr a;
		if (inet_pton(AF_INET, q->address, &a) != 1) {
			r = kerr_set(e, -EINVAL, "'%s' is not an IPv4 address", q->address);
			goto out;
		}
		snprintf(addr, sizeof(addr), "%s", q->address);
	} else {
		uint32_t hint = 0;
		if (q->ip_hint)
			boot_parse_ip(q->ip_hint, &hint);
		if ((r = pick_address(c, hint, addr, e)) < 0)
			goto out;
	}
	const char *path = c->boot.enrolled;
	if (path_exists(path)) {
		had_file = true;
		if ((r = file_read(path, &old, 16u << 20)) < 0) {
			r = kerr_set(e, r, "cannot read '%s': %s", path, strerror(-r));
			goto out;
		}
	}
	if (old.len)
		buf_add(&nu, old.s, old.len);
	else
		buf_adds(&nu, "# Nodes enrolled by `kiln boot enroll` (boot.enrolled).\nnodes:\n");
	if (nu.len && nu.s[nu.len - 1] != '\n')
		buf_addch(&nu, '\n');
	buf_printf(&nu, "  - name: %s\n    address: %s\n    mac: \"%s\"\n", q->name, addr, mac);
	if (q->roles && q->roles->n) {
		buf_adds(&nu, "    roles: [");
		for (size_t i = 0; i < q->roles->n; i++)
			buf_printf(&nu, "%s%s", i ? ", " : "", q->roles->v[i]);
		buf_adds(&nu, "]\n");
	}
	if (q->image)
		buf_printf(&nu, "    boot_image: %s\n", q->image);
	if ((r = file_write_atomic(path, nu.s, nu.len, 0644, (uid_t)-1, (gid_t)-1)) < 0) {
		r = kerr_set(e, r, "cannot write '%s': %s", path, strerror(-r));
		goto out;
	}
	if ((r = spec_load(spec_path, &check, e)) < 0) {
		/* put the old file back: the spec must keep loading */
		if (had_file)
			file_write_atomic(path, old.s, old.len, 0644, (uid_t)-1, (gid_t)-1);
		else
			unlink(path);
		goto out;
	}
	*address_out = xstrdup(addr);
out:
	if (lockfd >= 0)
		close(lockfd);   /* releases the lock */
	cluster_free(c);
	cluster_free(check);
	buf_release(&old);
	buf_release(&nu);
	return r;
}
