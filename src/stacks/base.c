/*
 * The base stack: node preparation as in the hybrid-cluster seed — kernel
 * modules for container networking, the Kubernetes sysctls, swap off, the
 * hostname, an /etc/hosts naming every node, an admin user with the
 * operator's key, free-form managed files and per-OS-family packages.
 */
#include "stacks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "resources/resources.h"

#define BASE_MODULES_FILE "/etc/modules-load.d/kiln.conf"
#define BASE_SYSCTL_FILE "/etc/sysctl.d/90-kiln.conf"

static bool is_ip_literal(const char *s)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* /etc/hosts: localhost lines, then every node with an address literal. */
static json_t *render_hosts(const struct cluster *c)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "# managed by kiln (cluster %s): local edits are replaced\n"
		       "127.0.0.1\tlocalhost\n"
		       "::1\tlocalhost ip6-localhost ip6-loopback\n"
		       "ff02::1\tip6-allnodes\n"
		       "ff02::2\tip6-allrouters\n",
		   c->name);
	for (size_t i = 0; i < c->nnodes; i++)
		if (is_ip_literal(c->nodes[i].address))
			buf_printf(&b, "%s\t%s\n", c->nodes[i].address, c->nodes[i].name);
	json_t *r = res_file("/etc/hosts", b.s, 0644, "root", "root");
	buf_release(&b);
	return r;
}

/* The package list for the node's OS family, if facts name one. */
static json_t *render_packages(const struct stack_base *b, const json_t *facts)
{
	const char *family = json_string_value(json_object_get(json_object_get(facts, "os"), "family"));
	const json_t *list = family ? json_object_get(b->packages, family) : NULL;
	size_t n = json_array_size(list);

	if (!n)
		return NULL;
	const char **names = xcalloc(n, sizeof(*names));
	for (size_t i = 0; i < n; i++)
		names[i] = json_string_value(json_array_get(list, i));
	json_t *r = res_package(names, n, true);
	free(names);
	return r;
}

static int render_files(const struct cluster *c, const struct node *n, json_t *out,
			struct kerr *e)
{
	const struct stack_base *b = &c->base;

	for (size_t i = 0; i < b->nfiles; i++) {
		const struct spec_file *f = &b->files[i];
		const char *content = f->content;
		struct buf t;

		buf_init(&t, 0);
		if (f->template) {
			int r = template_render(f->template, c, n, &t, e);
			if (r < 0) {
				buf_release(&t);
				kerr_prefix(e, "%s:%d:%d: file '%s' for node '%s'", f->mark.file,
					    f->mark.line, f->mark.col, f->path, n->name);
				return r;
			}
			content = t.s;
		}
		json_array_append_new(out, res_file(f->path, content ? content : "", f->mode,
						    f->owner ? f->owner : "root",
						    f->group ? f->group : "root"));
		buf_release(&t);
	}
	return 0;
}

int stack_base_render(const struct cluster *c, const struct node *n, const json_t *facts,
		      json_t *out, struct kerr *e)
{
	const struct stack_base *b = &c->base;

	if (!b->enabled)
		return 0;
	if (b->modules.n)
		json_array_append_new(out, res_kmod(BASE_MODULES_FILE,
						    (const char *const *)b->modules.v,
						    b->modules.n));
	if (b->nsysctls) {
		const char **k = xcalloc(b->nsysctls, sizeof(*k));
		const char **v = xcalloc(b->nsysctls, sizeof(*v));
		for (size_t i = 0; i < b->nsysctls; i++) {
			k[i] = b->sysctls[i].key;
			v[i] = b->sysctls[i].value;
		}
		json_array_append_new(out, res_sysctl(BASE_SYSCTL_FILE, k, v, b->nsysctls));
		free(k);
		free(v);
	}
	if (b->swap_off)
		json_array_append_new(out, res_swap_off());
	if (b->hostname)
		json_array_append_new(out, res_hostname(n->name));
	if (b->hosts_file)
		json_array_append_new(out, render_hosts(c));
	if (b->admin.name)
		json_array_append_new(out, res_user(b->admin.name,
						    b->admin.shell ? b->admin.shell : "/bin/bash",
						    (const char *const *)b->admin.groups.v,
						    b->admin.groups.n,
						    (const char *const *)b->admin.keys.v,
						    b->admin.keys.n));
	/*
	 * Files before packages: a file may add a package source (apt's
	 * sources.list.d); a package's own conffile that kiln also manages is
	 * kept as kiln wrote it (dpkg --force-confold).
	 */
	int r = render_files(c, n, out, e);
	if (r < 0)
		return r;
	json_t *pkgs = render_packages(b, facts);
	if (pkgs)
		json_array_append_new(out, pkgs);
	/* after files and packages: a unit file or a package may bring the unit */
	for (size_t i = 0; i < b->nservices; i++) {
		const struct spec_service *sv = &b->services[i];
		const char **w = xcalloc(sv->watch.n + 1, sizeof(*w));
		char **ids = xcalloc(sv->watch.n + 1, sizeof(*ids));
		for (size_t j = 0; j < sv->watch.n; j++)
			w[j] = ids[j] = xasprintf("file:%s", sv->watch.v[j]);
		json_array_append_new(out, res_service(sv->name, sv->enabled, sv->running, w,
						       sv->watch.n));
		for (size_t j = 0; j < sv->watch.n; j++)
			free(ids[j]);
		free(ids);
		free(w);
	}
	return 0;
}

int stacks_render(const struct cluster *c, const struct node *n, const json_t *facts,
		  json_t **out, struct kerr *e)
{
	json_t *list = json_array();
	int r = stack_base_render(c, n, facts, list, e);

	if (r < 0) {
		json_decref(list);
		return r;
	}
	*out = list;
	return 0;
}
