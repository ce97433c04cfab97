/*
 * boot: and the per-node boot keys (mac, boot_image, bmc): their schema walk
 * (called from spec.c's) and the model helpers (release, look-ups, MAC
 * normalisation).
 */
#include "parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

void bmc_conf_free(struct bmc_conf *b)
{
	if (!b)
		return;
	free(b->address);
	free(b->user);
	free(b->password_file);
	free(b->password_env);
	free(b);
}

void boot_conf_release(struct boot_conf *b)
{
	if (!b)
		return;
	free(b->server);
	free(b->tftp_root);
	free(b->state_dir);
	free(b->user);
	free(b->api_token_file);
	free(b->enrolled);
	strv_release(&b->listen);
	for (size_t i = 0; i < b->nnetworks; i++) {
		free(b->networks[i].name);
		free(b->networks[i].iface);
	}
	free(b->networks);
	for (size_t i = 0; i < b->nimages; i++) {
		free(b->images[i].name);
		free(b->images[i].kernel);
		free(b->images[i].initrd);
		free(b->images[i].cmdline);
	}
	free(b->images);
	free(b->discovery_image);
	free(b->loader_bios);
	free(b->loader_efi64);
	free(b->loader_arm64);
	memset(b, 0, sizeof(*b));
}

const struct boot_image *cluster_boot_image(const struct cluster *c, const char *name)
{
	for (size_t i = 0; name && i < c->boot.nimages; i++)
		if (!strcmp(c->boot.images[i].name, name))
			return &c->boot.images[i];
	return NULL;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Six pairs of hex digits separated by ':' or '-' (one kind throughout);
 * written back lower case with ':', the form iPXE's ${net0/mac} uses.
 */
bool spec_mac_normalize(const char *s, char out[18])
{
	static const char hex[] = "0123456789abcdef";
	if (strlen(s) != 17)
		return false;
	char sep = s[2];
	if (sep != ':' && sep != '-')
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != sep))
			return false;
		out[3 * i] = hex[hi];
		out[3 * i + 1] = hex[lo];
		out[3 * i + 2] = i < 5 ? ':' : '\0';
	}
	return true;
}

struct node *cluster_node_by_mac(const struct cluster *c, const char *mac)
{
	char m[18];
	if (!spec_mac_normalize(mac, m))
		return NULL;
	for (size_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].mac && !strcmp(c->nodes[i].mac, m))
			return &c->nodes[i];
	return NULL;
}

/* ---- boot --------------------------------------------------------------- */

/* A dotted-quad scalar into a host-order address. */
static int get_ipv4(struct spec_parser *x, const struct ynode *n, const char *what, uint32_t *out)
{
	const char *s;
	struct in_addr a;
	char tmp[80];
	int r = spec_get_text(x, n, what, &s);
	if (r < 0)
		return r;
	if (inet_pton(AF_INET, s, &a) != 1)
		return spec_err(x, n, "%s: '%s' is not an IPv4 address", what,
			     spec_shown(n, tmp, sizeof(tmp)));
	*out = ntohl(a.s_addr);
	return 0;
}

/* The part of s before sep into a bounded copy; false when too long or missing. */
static bool split_at(const char *s, char sep, char *head, size_t n, const char **tail)
{
	const char *p = strchr(s, sep);
	if (!p || (size_t)(p - s) >= n)
		return false;
	memcpy(head, s, (size_t)(p - s));
	head[p - s] = '\0';
	*tail = p + 1;
	return true;
}

static bool parse_v4(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

/* An image's kernel/initrd: an http(s) URL, or a file that must exist. */
static int get_image_file(struct spec_parser *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	struct stat st;
	int r = spec_get_text(x, n, what, &s);
	if (r < 0)
		return r;
	if (str_starts(s, "http://") || str_starts(s, "https://")) {
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				return spec_err(x, n, "%s: URL contains a space or control byte", what);
		*out = xstrdup(s);
		return 0;
	}
	char *abs = spec_abs_path(x->c->dir, s);
	/* a replayed load has no disk: the loader that recorded it checked */
	bool replay = x->c->src && x->c->src->replay;
	if (!replay && (stat(abs, &st) < 0 || !S_ISREG(st.st_mode))) {
		bool missing = errno == ENOENT;
		r = spec_err(x, n, "%s: cannot use '%s': %s", what, abs,
			  missing ? "No such file or directory" : "not a regular file");
		free(abs);
		return r;
	}
	*out = abs;
	return 0;
}

/* One entry of boot.networks; the array has room for it. */
static int parse_boot_net(struct spec_parser *x, const struct ynode *m, size_t idx)
{
	static const char *const keys[] = { "name", "interface", "subnet", "router", "dns",
		"pool", "lease_time", "allow_unknown", NULL };
	struct boot_conf *b = &x->c->boot;
	const struct ynode *v;
	char *what = xasprintf("boot.networks[%zu]", idx), *w = NULL, tmp[80], head[64];
	const char *s, *tail;
	int r, lt;

	if ((r = spec_expect(x, m, Y_MAP, what)) < 0 || (r = spec_check_keys(x, m, what, keys)) < 0)
		goto out;
	struct boot_network *n = &b->networks[b->nnetworks++];
	memset(n, 0, sizeof(*n));
	n->lease_time = 3600;
	n->mark = (struct mark){ x->file, m->line, m->col };
	if (!(v = ymap_get(m, "name"))) {
		r = spec_err(x, m, "missing required key 'name' in %s", what);
		goto out;
	}
	if ((r = spec_get_text(x, v, what, &s)) < 0)
		goto out;
	if (!valid_role(s)) {
		r = spec_err(x, v, "%s: name '%s' is not valid (a-z, 0-9, '-', '_')", what,
			  spec_shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	for (size_t i = 0; i + 1 < b->nnetworks; i++)
		if (!strcmp(b->networks[i].name, s)) {
			r = spec_err(x, v, "%s: duplicate network name '%s' (first at line %d)",
				  what, s, b->networks[i].mark.line);
			goto out;
		}
	n->name = xstrdup(s);
	free(what);
	what = xasprintf("boot network '%s'", n->name);
	if ((v = ymap_get(m, "interface"))) {
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			goto out;
		if (!*s || strlen(s) > 15 || strchr(s, '/') || strchr(s, ' ')) {
			r = spec_err(x, v, "%s: interface '%s' is not a valid interface name",
				  what, spec_shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		n->iface = xstrdup(s);
	}
	if (!(v = ymap_get(m, "subnet"))) {
		r = spec_err(x, m, "missing required key 'subnet' in %s", what);
		goto out;
	}
	if ((r = spec_get_text(x, v, what, &s)) < 0)
		goto out;
	uint64_t pfx;
	if (!split_at(s, '/', head, sizeof(head), &tail) || !parse_v4(head, &n->subnet) ||
	    parse_u64(tail, 8, 30, &pfx) < 0) {
		r = spec_err(x, v, "%s: subnet '%s' is not A.B.C.D/P with P in 8..30", what,
			  spec_shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	n->prefix = (int)pfx;
	uint32_t mk = ipv4_prefix_mask(n->prefix);
	if (n->subnet & ~mk) {
		r = spec_err(x, v, "%s: subnet '%s' has host bits set", what,
			  spec_shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	if ((v = ymap_get(m, "router"))) {
		free(w);
		w = xasprintf("%s: router", what);
		if ((r = get_ipv4(x, v, w, &n->router)) < 0)
			goto out;
		if (!ipv4_in_subnet(n->router, n->subnet, n->prefix)) {
			r = spec_err(x, v, "%s: %s is outside %s", w, v->str,
				  ymap_get(m, "subnet")->str);
			goto out;
		}
	}
	if ((v = ymap_get(m, "dns"))) {
		free(w);
		w = xasprintf("%s: dns", what);
		if ((r = spec_expect(x, v, Y_SEQ, w)) < 0)
			goto out;
		if (v->nkids > SPEC_BOOT_MAX_DNS) {
			r = spec_err(x, v, "%s: at most %d servers", w, SPEC_BOOT_MAX_DNS);
			goto out;
		}
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = get_ipv4(x, v->kids[i], w, &n->dns[n->n_dns++])) < 0)
				goto out;
	}
	if ((v = ymap_get(m, "pool"))) {
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			goto out;
		if (!split_at(s, '-', head, sizeof(head), &tail) ||
		    !parse_v4(head, &n->pool_start) || !parse_v4(tail, &n->pool_end) ||
		    n->pool_start > n->pool_end) {
			r = spec_err(x, v, "%s: pool '%s' is not FIRST-LAST (two IPv4 addresses, "
				  "first <= last)", what, spec_shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		if (!ipv4_in_subnet(n->pool_start, n->subnet, n->prefix) ||
		    !ipv4_in_subnet(n->pool_end, n->subnet, n->prefix) ||
		    n->pool_start == n->subnet || n->pool_end == (n->subnet | ~mk)) {
			r = spec_err(x, v, "%s: pool '%s' is not inside subnet %s (network and "
				  "broadcast addresses excluded)", what, spec_shown(v, tmp, sizeof(tmp)),
				  ymap_get(m, "subnet")->str);
			goto out;
		}
		if ((b->server_ip >= n->pool_start && b->server_ip <= n->pool_end) ||
		    (n->router && n->router >= n->pool_start && n->router <= n->pool_end)) {
			r = spec_err(x, v, "%s: pool '%s' contains the server or router address",
				  what, spec_shown(v, tmp, sizeof(tmp)));
			goto out;
		}
	}
	if ((v = ymap_get(m, "lease_time"))) {
		free(w);
		w = xasprintf("%s: lease_time", what);
		if ((r = spec_get_int(x, v, w, 60, 1 << 30, &lt)) < 0)
			goto out;
		n->lease_time = (uint32_t)lt;
	}
	if ((v = ymap_get(m, "allow_unknown"))) {
		free(w);
		w = xasprintf("%s: allow_unknown", what);
		if ((r = spec_get_bool(x, v, w, &n->allow_unknown)) < 0)
			goto out;
	}
	for (size_t i = 0; i + 1 < b->nnetworks; i++) {
		const struct boot_network *o = &b->networks[i];
		if (ipv4_subnets_overlap(o->subnet, o->prefix, n->subnet, n->prefix)) {
			r = spec_err(x, ymap_get(m, "subnet"), "%s: subnet overlaps network '%s'",
				  what, o->name);
			goto out;
		}
	}
out:
	free(what);
	free(w);
	return r;
}

/* One entry of boot.images; the array has room for it. */
static int parse_boot_image(struct spec_parser *x, const struct ynode *k, const struct ynode *m)
{
	static const char *const keys[] = { "kernel", "initrd", "cmdline", NULL };
	struct boot_conf *b = &x->c->boot;
	const struct ynode *v;
	char *what = NULL, tmp[80];
	const char *s;
	int r;

	if (!valid_role(k->str))
		return spec_err(x, k, "boot.images: name '%s' is not valid (a-z, 0-9, '-', '_')",
			     spec_shown(k, tmp, sizeof(tmp)));
	struct boot_image *im = &b->images[b->nimages++];
	memset(im, 0, sizeof(*im));
	im->name = xstrdup(k->str);
	im->mark = (struct mark){ x->file, k->line, k->col };
	what = xasprintf("boot image '%s'", im->name);
	if ((r = spec_expect(x, m, Y_MAP, what)) < 0 || (r = spec_check_keys(x, m, what, keys)) < 0)
		goto out;
	if (!(v = ymap_get(m, "kernel"))) {
		r = spec_err(x, m, "missing required key 'kernel' in %s", what);
		goto out;
	}
	if ((r = get_image_file(x, v, what, &im->kernel)) < 0)
		goto out;
	if ((v = ymap_get(m, "initrd")) && (r = get_image_file(x, v, what, &im->initrd)) < 0)
		goto out;
	if ((v = ymap_get(m, "cmdline"))) {
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			goto out;
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				r = spec_err(x, v, "%s: cmdline contains a control byte", what);
				goto out;
			}
		im->cmdline = xstrdup(s);
	}
out:
	free(what);
	return r;
}

/*
 * A boot loader's file name under tftp_root, as TFTP will look it up: a
 * relative path of printable characters, no "." or ".." component, no
 * empty one, at most 127 bytes.
 */
static int get_loader(struct spec_parser *x, const struct ynode *n, const char *what, char **out)
{
	const char *s;
	char tmp[80];
	int r = spec_get_text(x, n, what, &s);
	if (r < 0)
		return r;
	bool ok = *s && *s != '/' && strlen(s) <= 127;
	for (const char *p = s; ok && *p; p++)
		ok = (unsigned char)*p > ' ' && (unsigned char)*p < 0x7f &&
		     !strchr("\\%#?", *p);   /* the name also goes into an URL */
	for (const char *c = s; ok && c;) {
		const char *slash = strchr(c, '/');
		size_t l = slash ? (size_t)(slash - c) : strlen(c);
		ok = l && !(l == 1 && c[0] == '.') && !(l == 2 && c[0] == '.' && c[1] == '.');
		c = slash ? slash + 1 : NULL;
	}
	if (!ok)
		return spec_err(x, n, "%s: '%s' is not a file name under tftp_root (relative, "
			     "printable, no '.' or '..' parts, none of \\ %% # ?, at most 127 "
			     "bytes)", what,
			     spec_shown(n, tmp, sizeof(tmp)));
	*out = xstrdup(s);
	return 0;
}

/* "boot:" — what `kiln serve` needs; parsed before the nodes that use it. */
int spec_parse_boot(struct spec_parser *x, const struct ynode *root)
{
	static const char *const keys[] = { "server", "http_port", "tftp_root", "state_dir",
		"user", "api_token_file", "listen", "networks", "images", "discovery_image",
		"enrolled", "loaders", NULL };
	struct boot_conf *b = &x->c->boot;
	const struct ynode *m = ymap_get(root, "boot"), *v;
	char tmp[80];
	const char *s;
	int r;

	if (!m)
		return 0;
	if ((r = spec_expect(x, m, Y_MAP, "boot")) < 0 || (r = spec_check_keys(x, m, "boot", keys)) < 0)
		return r;
	b->enabled = true;
	b->mark = (struct mark){ x->file, m->line, m->col };
	b->http_port = 80;
	if (!(v = ymap_get(m, "server")))
		return spec_err(x, m, "missing required key 'server' in boot");
	if ((r = get_ipv4(x, v, "boot.server", &b->server_ip)) < 0)
		return r;
	b->server = xstrdup(v->str);
	if ((v = ymap_get(m, "http_port")) &&
	    (r = spec_get_int(x, v, "boot.http_port", 1, 65535, &b->http_port)) < 0)
		return r;
	if ((v = ymap_get(m, "tftp_root")) && (r = spec_get_path(x, v, "boot.tftp_root",
							    &b->tftp_root)) < 0)
		return r;
	if (!b->tftp_root)
		b->tftp_root = xstrdup("/usr/lib/ipxe");
	if ((v = ymap_get(m, "state_dir")) && (r = spec_get_path(x, v, "boot.state_dir",
							    &b->state_dir)) < 0)
		return r;
	if (!b->state_dir)
		b->state_dir = xasprintf("%s/.kiln/boot", x->c->dir);
	if ((v = ymap_get(m, "user")) && (r = spec_get_user(x, v, "boot.user", &b->user)) < 0)
		return r;
	if (!b->user)
		b->user = xstrdup(BOOT_DEFAULT_USER);
	if ((v = ymap_get(m, "api_token_file")) &&
	    (r = spec_get_path(x, v, "boot.api_token_file", &b->api_token_file)) < 0)
		return r;
	if ((v = ymap_get(m, "enrolled")) && (r = spec_get_path(x, v, "boot.enrolled",
							   &b->enrolled)) < 0)
		return r;
	if (!b->enrolled)
		b->enrolled = xasprintf("%s/enrolled.yaml", x->c->dir);
	if ((v = ymap_get(m, "listen"))) {
		if ((r = spec_expect(x, v, Y_SEQ, "boot.listen")) < 0)
			return r;
		for (size_t i = 0; i < v->nkids; i++) {
			uint32_t ip;
			if ((r = get_ipv4(x, v->kids[i], "boot.listen", &ip)) < 0)
				return r;
			strv_push(&b->listen, v->kids[i]->str);
		}
	}
	if ((v = ymap_get(m, "networks")) && !ynode_is_null(v)) {
		if ((r = spec_expect(x, v, Y_SEQ, "boot.networks")) < 0)
			return r;
		b->networks = xcalloc(v->nkids + 1, sizeof(*b->networks));
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = parse_boot_net(x, v->kids[i], i)) < 0)
				return r;
	}
	if ((v = ymap_get(m, "images")) && !ynode_is_null(v)) {
		if ((r = spec_expect(x, v, Y_MAP, "boot.images")) < 0)
			return r;
		b->images = xcalloc(ymap_len(v) + 1, sizeof(*b->images));
		for (size_t i = 0; i < ymap_len(v); i++)
			if ((r = parse_boot_image(x, ymap_key(v, i), ymap_val(v, i))) < 0)
				return r;
	}
	if ((v = ymap_get(m, "discovery_image"))) {
		if ((r = spec_get_text(x, v, "boot.discovery_image", &s)) < 0)
			return r;
		if (!cluster_boot_image(x->c, s))
			return spec_err(x, v, "boot.discovery_image: no image '%s' under boot.images",
				     spec_shown(v, tmp, sizeof(tmp)));
		b->discovery_image = xstrdup(s);
	}
	if ((v = ymap_get(m, "loaders"))) {
		static const char *const lkeys[] = { "bios", "efi64", "arm64", NULL };
		const struct ynode *l;
		if ((r = spec_expect(x, v, Y_MAP, "boot.loaders")) < 0 ||
		    (r = spec_check_keys(x, v, "boot.loaders", lkeys)) < 0)
			return r;
		if (((l = ymap_get(v, "bios")) &&
		     (r = get_loader(x, l, "boot.loaders.bios", &b->loader_bios)) < 0) ||
		    ((l = ymap_get(v, "efi64")) &&
		     (r = get_loader(x, l, "boot.loaders.efi64", &b->loader_efi64)) < 0) ||
		    ((l = ymap_get(v, "arm64")) &&
		     (r = get_loader(x, l, "boot.loaders.arm64", &b->loader_arm64)) < 0))
			return r;
	}
	return 0;
}

/* A node's "bmc:" mapping; an inline password is refused. */
static int parse_bmc(struct spec_parser *x, const struct ynode *m, const char *what,
		     struct bmc_conf **out)
{
	static const char *const keys[] = { "type", "address", "port", "user",
		"password_file", "password_env", "password", NULL };
	const struct ynode *v;
	const char *s;
	char tmp[80];
	int r;

	if ((r = spec_expect(x, m, Y_MAP, what)) < 0 || (r = spec_check_keys(x, m, what, keys)) < 0)
		return r;
	if ((v = ymap_get(m, "password")))
		return spec_err(x, v, "%s: an inline password is not allowed (use password_file "
			     "or password_env)", what);
	struct bmc_conf *b = *out = xcalloc(1, sizeof(*b));
	b->mark = (struct mark){ x->file, m->line, m->col };
	if (!(v = ymap_get(m, "type")))
		return spec_err(x, m, "missing required key 'type' in %s", what);
	if ((r = spec_get_text(x, v, what, &s)) < 0)
		return r;
	if (!strcmp(s, "ipmi"))
		b->type = BMC_IPMI;
	else if (!strcmp(s, "redfish"))
		b->type = BMC_REDFISH;
	else
		return spec_err(x, v, "%s: type: expected 'ipmi' or 'redfish', found '%s'", what,
			     spec_shown(v, tmp, sizeof(tmp)));
	if (!(v = ymap_get(m, "address")))
		return spec_err(x, m, "missing required key 'address' in %s", what);
	if ((r = spec_get_text(x, v, what, &s)) < 0)
		return r;
	if (!valid_address(s))
		return spec_err(x, v, "%s: address '%s' is not an IPv4/IPv6 address or DNS name",
			     what, spec_shown(v, tmp, sizeof(tmp)));
	b->address = xstrdup(s);
	if ((v = ymap_get(m, "port")) && (r = spec_get_int(x, v, what, 1, 65535, &b->port)) < 0)
		return r;
	if ((v = ymap_get(m, "user"))) {
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			return r;
		if (strlen(s) > 64 || strpbrk(s, "\n\r\t"))
			return spec_err(x, v, "%s: user '%s' is not valid", what,
				     spec_shown(v, tmp, sizeof(tmp)));
		b->user = xstrdup(s);
	}
	const struct ynode *pf = ymap_get(m, "password_file"), *pe = ymap_get(m, "password_env");
	if (pf && pe)
		return spec_err(x, pe, "%s: expected one of 'password_file' or 'password_env', "
			     "not both", what);
	if (pf && (r = spec_get_path(x, pf, what, &b->password_file)) < 0)
		return r;
	if (pe) {
		if ((r = spec_get_text(x, pe, what, &s)) < 0)
			return r;
		bool ok = *s && !(*s >= '0' && *s <= '9') && strlen(s) <= 128;
		for (const char *p = s; ok && *p; p++)
			ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			     (*p >= '0' && *p <= '9') || *p == '_';
		if (!ok)
			return spec_err(x, pe, "%s: password_env '%s' is not a variable name",
				     what, spec_shown(pe, tmp, sizeof(tmp)));
		b->password_env = xstrdup(s);
	}
	return 0;
}

/*
 * A node's boot keys: mac (unique), boot_image (defined), and when its
 * address lies in a boot network, not inside that network's pool.
 */
int spec_parse_node_boot(struct spec_parser *x, const struct ynode *m, struct node *n,
			   const char *what)
{
	struct cluster *c = x->c;
	const struct ynode *v;
	const char *s;
	char tmp[80], mac[18];
	int r;

	if ((v = ymap_get(m, "mac"))) {
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			return r;
		if (!spec_mac_normalize(s, mac))
			return spec_err(x, v, "%s: mac '%s' is not a MAC address like "
				     "52:54:00:12:34:56", what, spec_shown(v, tmp, sizeof(tmp)));
		const struct node *o = cluster_node_by_mac(c, mac);
		if (o) {
			char first[300];
			spec_where_first(first, sizeof(first), x->file, &o->mark);
			return spec_err(x, v, "%s: duplicate mac '%s' (node '%s' at %s has it)",
				     what, mac, o->name, first);
		}
		n->mac = xstrdup(mac);
		uint32_t ip;
		for (size_t i = 0; parse_v4(n->address, &ip) && i < c->boot.nnetworks; i++) {
			const struct boot_network *bn = &c->boot.networks[i];
			if (!ipv4_in_subnet(ip, bn->subnet, bn->prefix))
				continue;
			if (bn->pool_start && ip >= bn->pool_start && ip <= bn->pool_end)
				return spec_err(x, ymap_get(m, "address"), "%s: reserved address %s "
					     "lies inside the pool of boot network '%s'", what,
					     n->address, bn->name);
			if (ip == c->boot.server_ip || ip == bn->router)
				return spec_err(x, ymap_get(m, "address"), "%s: address %s is the "
					     "boot server's or the router's", what, n->address);
		}
	}
	if ((v = ymap_get(m, "boot_image"))) {
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			return r;
		if (!cluster_boot_image(c, s))
			return spec_err(x, v, "%s: boot_image: no image '%s' under boot.images",
				     what, spec_shown(v, tmp, sizeof(tmp)));
		n->boot_image = xstrdup(s);
	}
	if ((v = ymap_get(m, "bmc"))) {
		char *w = xasprintf("%s: bmc", what);
		r = parse_bmc(x, v, w, &n->bmc);
		free(w);
		if (r < 0)
			return r;
	}
	return 0;
}
