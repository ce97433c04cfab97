/* A spec turned into the daemon's configuration, and the per-MAC iPXE script. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_int.h"

void serve_config_free(struct serve_config *c)
{
	if (!c)
		return;
	free(c->boot.nets);
	free(c->boot.hosts);
	free(c->http_base);
	cluster_free(c->cluster);
	free(c);
}

/* The boot networks and reservations of the spec in the engine's terms. */
static void build_boot(struct serve_config *sc)
{
	const struct boot_conf *b = &sc->cluster->boot;
	struct boot_config *bc = &sc->boot;

	bc->server_ip = b->server_ip;
	bc->http_base = sc->http_base;
	bc->loader[BOOT_LOADER_BIOS] = b->loader_bios;
	bc->loader[BOOT_LOADER_EFI64] = b->loader_efi64;
	bc->loader[BOOT_LOADER_ARM64] = b->loader_arm64;
	bc->nets = xcalloc(b->nnetworks + 1, sizeof(*bc->nets));
	bc->n_nets = b->nnetworks;
	for (size_t i = 0; i < b->nnetworks; i++) {
		const struct boot_network *n = &b->networks[i];
		struct boot_net *o = &bc->nets[i];
		o->iface = n->iface;
		o->subnet = n->subnet;
		o->prefix = n->prefix;
		o->router = n->router;
		memcpy(o->dns, n->dns, sizeof(o->dns[0]) * n->n_dns);
		o->n_dns = n->n_dns;
		o->pool_start = n->pool_start;
		o->pool_end = n->pool_end;
		o->lease_time = n->lease_time;
		o->allow_unknown = n->allow_unknown;
	}
	bc->hosts = xcalloc(sc->cluster->nnodes + 1, sizeof(*bc->hosts));
	for (size_t i = 0; i < sc->cluster->nnodes; i++) {
		struct node *n = &sc->cluster->nodes[i];
		uint32_t ip;
		struct boot_host *h = &bc->hosts[bc->n_hosts];
		if (!n->mac || boot_parse_ip(n->address, &ip) < 0 ||
		    boot_net_find(bc, ip) < 0)
			continue;
		if (boot_parse_mac(n->mac, h->mac) < 0)
			continue;
		h->ip = ip;
		h->name = n->name;
		bc->n_hosts++;
	}
}

int serve_config_load(const char *path, struct spec_files *files,
		      struct serve_config **out, struct kerr *e)
{
	struct serve_config *sc = xcalloc(1, sizeof(*sc));
	struct lease_db *db = NULL;
	struct dhcp_engine *eng = NULL;
	int r;

	*out = NULL;
	if ((r = spec_load_files(path, files, &sc->cluster, e)) < 0)
		goto fail;
	const struct boot_conf *b = &sc->cluster->boot;
	if (!b->enabled) {
		r = kerr_set(e, -EINVAL, "%s: no 'boot' section: nothing to serve", path);
		goto fail;
	}
	sc->http_base = xasprintf("http://%s:%d", b->server, b->http_port);
	build_boot(sc);
	/* the engine's own checks, so that a config that loads also starts */
	if ((r = lease_db_open(":memory:", &db, e)) < 0 ||
	    (r = dhcp_engine_new(&sc->boot, db, &eng, e)) < 0) {
		kerr_prefix(e, "%s", path);
		goto fail;
	}
	dhcp_engine_free(eng);
	lease_db_close(db);
	*out = sc;
	return 0;
fail:
	lease_db_close(db);
	serve_config_free(sc);
	return r;
}

const struct node *serve_config_node(const struct serve_config *c, const char *mac)
{
	return cluster_node_by_mac(c->cluster, mac);
}

char *serve_image_url(const struct serve_config *c, const struct boot_image *im,
		      bool initrd)
{
	const char *src = initrd ? im->initrd : im->kernel;
	if (!src)
		return NULL;
	if (str_starts(src, "http://") || str_starts(src, "https://"))
		return xstrdup(src);
	return xasprintf("%s/images/%s/%s", c->http_base, im->name,
			 initrd ? "initrd" : "kernel");
}

/* Does an unknown machine at client_ip get the discovery image? */
static bool discovery_allowed(const struct serve_config *c, uint32_t client_ip)
{
	if (!c->cluster->boot.discovery_image)
		return false;
	int ni = client_ip ? boot_net_find(&c->boot, client_ip) : -1;
	if (ni >= 0)
		return c->boot.nets[ni].allow_unknown;
	for (size_t i = 0; i < c->boot.n_nets; i++)
		if (c->boot.nets[i].allow_unknown)
			return true;
	return false;
}

int serve_ipxe_for(const struct serve_config *c, const char *mac, uint32_t client_ip,
		   bool provisioned, struct buf *out, enum ipxe_kind *kind_out,
		   struct kerr *e)
{
	const struct node *n = serve_config_node(c, mac);
	const struct boot_image *im = NULL;
	enum ipxe_kind kind;
	char *kurl = NULL, *iurl = NULL, *icmd = NULL, *cmd = NULL;
	const char *iarg = "";
	int r;

	if (n) {
		im = cluster_boot_image(c->cluster, n->boot_image);
		kind = provisioned || !im ? IPXE_LOCAL : IPXE_INSTALL;
	} else if (discovery_allowed(c, client_ip)) {
		im = cluster_boot_image(c->cluster, c->cluster->boot.discovery_image);
		kind = IPXE_DISCOVERY;
	} else {
		kind = IPXE_UNKNOWN;
	}
	if (im && (kind == IPXE_INSTALL || kind == IPXE_DISCOVERY)) {
		kurl = serve_image_url(c, im, false);
		iurl = serve_image_url(c, im, true);
		/* Named, and named on the kernel's command line: a kernel booted
		 * through its EFI stub loads the initrd itself, by that name,
		 * from iPXE's image list (Debian's iPXE predates the LoadFile2
		 * initrd protocol); a BIOS kernel ignores the argument. */
		icmd = iurl ? xasprintf("initrd --name initrd %s", iurl) : xstrdup("");
		iarg = iurl ? "initrd=initrd " : "";
		/* the template puts kiln's own arguments right after it */
		cmd = im->cmdline && *im->cmdline ? xasprintf("%s ", im->cmdline) : xstrdup("");
	}
	const struct tmpl_var vars[] = {
		{ "node", n ? n->name : "" },
		{ "mac", mac },
		{ "image", im ? im->name : "" },
		{ "kernel_url", kurl ? kurl : "" },
		{ "initrd_cmd", icmd ? icmd : "" },
		{ "initrd_arg", iarg },
		{ "cmdline", cmd ? cmd : "" },
		{ "server_url", c->http_base },
	};
	r = ipxe_render(ipxe_template(kind), vars, ARRAY_SIZE(vars), out, e);
	free(kurl);
	free(iurl);
	free(icmd);
	free(cmd);
	if (kind_out)
		*kind_out = kind;
	return r;
}

int serve_read_token(const char *path, char **out, struct kerr *e)
{
	struct buf b;
	int r;

	*out = NULL;
	buf_init(&b, 0);
	if ((r = file_read(path, &b, 4096)) < 0) {
		r = kerr_set(e, r, "api token file '%s': %s", path,
			     r == -E2BIG ? "larger than 4 KiB" : strerror(-r));
		goto out;
	}
	bool ok = !memchr(b.s, '\0', b.len);
	str_trim(b.s);
	size_t n = strlen(b.s);
	ok = ok && n >= 16 && n <= 512;
	for (size_t i = 0; ok && i < n; i++)
		ok = b.s[i] > ' ' && b.s[i] < 0x7f;
	if (!ok) {
		r = kerr_set(e, -EINVAL, "api token file '%s': expected one line of 16..512 "
			     "printable characters without spaces", path);
		goto out;
	}
	*out = xstrdup(b.s);
out:
	buf_release(&b);
	return r;
}

/* ---- images ------------------------------------------------------------- */

/* A local image file, open for reading; -1 (and a warning) when it cannot be. */
static int open_image_file(const char *image, const char *file)
{
	struct stat st;
	if (!file || str_starts(file, "http://") || str_starts(file, "https://"))
		return -1;
	/* O_NONBLOCK: a FIFO put in an image's place must not hang us */
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return fd;
	if (fd >= 0)
		close(fd);
	slog(LOG_WARN, "image", "image=%s file=%s error=\"cannot open a regular file\"",
	     image, file);
	return -1;
}

void serve_images_open(const struct cluster *c, struct serve_images *out)
{
	const struct boot_conf *b = &c->boot;
	out->v = xcalloc(b->nimages + 1, sizeof(*out->v));
	out->n = b->nimages;
	for (size_t i = 0; i < b->nimages; i++) {
		out->v[i].name = xstrdup(b->images[i].name);
		out->v[i].fd[0] = open_image_file(b->images[i].name, b->images[i].kernel);
		out->v[i].fd[1] = open_image_file(b->images[i].name, b->images[i].initrd);
	}
}

void serve_images_release(struct serve_images *im)
{
	for (size_t i = 0; im && i < im->n; i++) {
		free(im->v[i].name);
		for (int k = 0; k < 2; k++)
			if (im->v[i].fd[k] >= 0)
				close(im->v[i].fd[k]);
	}
	if (im) {
		free(im->v);
		im->v = NULL;
		im->n = 0;
	}
}
