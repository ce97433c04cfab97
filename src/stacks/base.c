/*
 * The base stack: node preparation as in the hybrid-cluster seed — kernel
 * modules for container networking, the Kubernetes sysctls, swap off, the
 * hostname, an /etc/hosts naming every node, an admin user with the
 * operator's key, free-form managed files and per-OS-family packages.
 */
#include "base.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resources/resources.h"
#include "spec/parse.h"

#define KEY_FILE_MAX (1u << 20)
#define BASE_MODULES_FILE "/etc/modules-load.d/kiln.conf"
#define BASE_SYSCTL_FILE "/etc/sysctl.d/90-kiln.conf"

static bool is_ip_literal(const char *s)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

static json_t *render_hosts(const struct cluster *c);
static void base_share(struct stack_base *b, const struct cluster *c);

/* ---- the spec: stacks.base ---------------------------------------------- */

static bool valid_module(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* A sysctl name in dotted or slashed form, never escaping /proc/sys. */
static bool valid_sysctl_key(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 256 || s[0] == '.' || s[0] == '/' || strstr(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.-/", *s)))
			return false;
	return true;
}

/* A package name (with optional version pin), nothing a shell would read. */
static bool valid_package(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 200 || s[0] == '-')
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == 0x7f || strchr("'\"`$;&|<>\\", *s))
			return false;
	return true;
}

/* A user or group name, or a numeric id. */
static bool valid_owner(const char *s)
{
	uint64_t v;
	return valid_user_name(s) || parse_u64(s, 0, UINT32_MAX - 1, &v) == 0;
}

/* An authorized_keys line: printable, and a known key type followed by data. */
static bool valid_pubkey(const char *s)
{
	static const char *const types[] = { "ssh-", "ecdsa-sha2-", "sk-ssh-",
		"sk-ecdsa-sha2-", NULL };
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return false;
	for (const char *p = s; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *f = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		for (const char *const *t = types; *t; t++)
			if (str_starts(f, *t)) {
				while (*p == ' ' || *p == '\t')
					p++;
				return *p != '\0';
			}
	}
	return false;
}

/* Absolute, printable, no ".." component and no trailing slash. */
static bool valid_abs_path(const char *s)
{
	if (s[0] != '/' || strlen(s) > 4096 || (s[1] && str_ends(s, "/")))
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	for (const char *p = s; (p = strstr(p, "/..")); p += 3)
		if (p[3] == '/' || p[3] == '\0')
			return false;
	return true;
}

/* "0644", "644", 0644 or 644 (always octal), or "0o644"; at most 07777. */
static int get_mode(struct spec_parser *x, const struct ynode *n, const char *what, unsigned *out)
{
	char tmp[40];
	if (n->kind != Y_SCALAR || ynode_is_null(n))
		return spec_err(x, n, "%s: expected an octal mode like \"0644\", found %s", what,
			     ynode_kind_name(n));
	const char *p = n->str;
	if (str_starts(p, "0o"))
		p += 2;
	unsigned v = 0;
	size_t digits = 0;
	for (; *p >= '0' && *p <= '7' && digits < 6; p++, digits++)
		v = v * 8 + (unsigned)(*p - '0');
	if (*p || !digits || v > 07777)
		return spec_err(x, n, "%s: expected an octal mode like \"0644\", found '%s'", what,
			     spec_shown(n, tmp, sizeof(tmp)));
	*out = v;
	return 0;
}

/*
 * An admin_user.key_files entry: every non-comment line of the file must
 * be a public key; they are appended to keys.
 */
static int read_key_file(struct spec_parser *x, const struct ynode *n, struct strv *keys)
{
	const char *what = "stacks.base.admin_user.key_files";
	struct buf b;
	const char *s;
	char tmp[80];
	int r;
	size_t before = keys->n;

	if ((r = spec_get_text(x, n, what, &s)) < 0)
		return r;
	char *abs = spec_abs_path(x->c->dir, s);
	buf_init(&b, 0);
	if ((r = spec_read_file(x->c, abs, &b, KEY_FILE_MAX)) < 0) {
		r = spec_err(x, n, "%s: cannot read '%s': %s", what, abs, spec_read_error(r));
		goto out;
	}
	if (memchr(b.s, '\0', b.len)) {
		r = spec_err(x, n, "%s: '%s' is not a public key file", what, abs);
		goto out;
	}
	for (char *line = b.s, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		str_trim(line);
		if (!*line || *line == '#')
			continue;
		if (!valid_pubkey(line)) {
			r = spec_err(x, n, "%s: '%s' holds a line that is not an SSH public key",
				  what, spec_shown(n, tmp, sizeof(tmp)));
			goto out;
		}
		strv_push(keys, line);
	}
	if (keys->n == before)
		r = spec_err(x, n, "%s: '%s' holds no public key", what, spec_shown(n, tmp, sizeof(tmp)));
out:
	buf_release(&b);
	free(abs);
	return r;
}

/* stacks.base.admin_user (null: no admin user). */
static int parse_admin(struct spec_parser *x, const struct ynode *m, struct admin_user *a)
{
	static const char *const keys[] = { "name", "shell", "keys", "key_files",
		"groups", NULL };
	const char *what = "stacks.base.admin_user";
	const struct ynode *v;
	const char *s;
	char tmp[80];
	int r;

	if (ynode_is_null(m))
		return 0;
	if ((r = spec_expect(x, m, Y_MAP, what)) < 0 || (r = spec_check_keys(x, m, what, keys)) < 0)
		return r;
	if (!(v = ymap_get(m, "name")))
		return spec_err(x, m, "missing required key 'name' in %s", what);
	if ((r = spec_get_user(x, v, "stacks.base.admin_user.name", &a->name)) < 0)
		return r;
	if ((v = ymap_get(m, "shell"))) {
		if ((r = spec_get_text(x, v, "stacks.base.admin_user.shell", &s)) < 0)
			return r;
		if (!valid_abs_path(s))
			return spec_err(x, v, "stacks.base.admin_user.shell: '%s' is not an "
				     "absolute path", spec_shown(v, tmp, sizeof(tmp)));
		free(a->shell);
		a->shell = xstrdup(s);
	}
	if ((v = ymap_get(m, "keys")) &&
	    (r = spec_get_strv(x, v, "stacks.base.admin_user.keys", valid_pubkey,
			  "an SSH public key line", &a->keys)) < 0)
		return r;
	if ((v = ymap_get(m, "key_files"))) {
		if ((r = spec_expect(x, v, Y_SEQ, "stacks.base.admin_user.key_files")) < 0)
			return r;
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = read_key_file(x, v->kids[i], &a->keys)) < 0)
				return r;
	}
	if ((v = ymap_get(m, "groups")) &&
	    (r = spec_get_strv(x, v, "stacks.base.admin_user.groups", valid_user_name,
			  "a valid group name", &a->groups)) < 0)
		return r;
	return 0;
}

/* stacks.base.packages: os family -> list of package names, as JSON. */
static int parse_packages(struct spec_parser *x, const struct ynode *m, json_t *out)
{
	static const char *const keys[] = { "debian", "redhat", "suse", "arch", "alpine",
		NULL };
	int r;

	if (ynode_is_null(m))
		return 0;
	if ((r = spec_expect(x, m, Y_MAP, "stacks.base.packages")) < 0 ||
	    (r = spec_check_keys(x, m, "stacks.base.packages", keys)) < 0)
		return r;
	for (size_t i = 0; i < ymap_len(m); i++) {
		struct strv sv = STRV_INIT;
		char *what = xasprintf("stacks.base.packages.%s", ymap_key(m, i)->str);
		r = spec_get_strv(x, ymap_val(m, i), what, valid_package, "a package name", &sv);
		free(what);
		if (r == 0) {
			json_t *a = json_array();
			for (size_t j = 0; j < sv.n; j++)
				json_array_append_new(a, json_string(sv.v[j]));
			json_object_set_new(out, ymap_key(m, i)->str, a);
		}
		strv_release(&sv);
		if (r < 0)
			return r;
	}
	return 0;
}

/* stacks.base.sysctls in file order, values as the text written. */
static int parse_sysctls(struct spec_parser *x, const struct ynode *m, struct stack_base *b)
{
	const char *what = "stacks.base.sysctls";
	char tmp[80];
	int r;

	if ((r = spec_expect(x, m, Y_MAP, what)) < 0)
		return r;
	b->sysctls = xrealloc(b->sysctls, (b->nsysctls + ymap_len(m)) * sizeof(*b->sysctls));
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i), *v = ymap_val(m, i);
		if (!valid_sysctl_key(k->str))
			return spec_err(x, k, "%s: '%s' is not a sysctl name", what,
				     spec_shown(k, tmp, sizeof(tmp)));
		enum yscalar t = v->kind == Y_SCALAR ? yscalar_type(v, NULL, NULL, NULL) : YS_NULL;
		if (v->kind != Y_SCALAR || t == YS_NULL || t == YS_BOOL || strchr(v->str, '\n'))
			return spec_err(x, v, "%s: %s: expected a number or a string, found %s", what,
				     spec_shown(k, tmp, sizeof(tmp)), ynode_kind_name(v));
		b->sysctls[b->nsysctls].key = xstrdup(k->str);
		b->sysctls[b->nsysctls++].value = xstrdup(v->str);
	}
	return 0;
}

/* One entry of stacks.base.files; the array has room for it. */
static int parse_file(struct spec_parser *x, const struct ynode *m, size_t idx, struct stack_base *b)
{
	static const char *const keys[] = { "path", "content", "template", "mode", "owner",
		"group", NULL };
	const struct ynode *v, *content, *tmpl;
	char *what = xasprintf("stacks.base.files[%zu]", idx), *w = NULL, tmp[80];
	const char *s;
	int r;

	if ((r = spec_expect(x, m, Y_MAP, what)) < 0 || (r = spec_check_keys(x, m, what, keys)) < 0)
		goto out;
	if (!(v = ymap_get(m, "path"))) {
		r = spec_err(x, m, "missing required key 'path' in %s", what);
		goto out;
	}
	w = xasprintf("%s.path", what);
	if ((r = spec_get_text(x, v, w, &s)) < 0)
		goto out;
	if (!valid_abs_path(s)) {
		r = spec_err(x, v, "%s: '%s' is not an absolute path without '..'", w,
			  spec_shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	for (size_t i = 0; i < b->nfiles; i++)
		if (!strcmp(b->files[i].path, s)) {
			r = spec_err(x, v, "%s: duplicate path '%s' (first at line %d)", what, s,
				  b->files[i].mark.line);
			goto out;
		}
	content = ymap_get(m, "content");
	tmpl = ymap_get(m, "template");
	if (!content == !tmpl) {
		r = spec_err(x, m, "%s: expected exactly one of 'content' or 'template'", what);
		goto out;
	}
	struct spec_file *f = &b->files[b->nfiles++];   /* reserved by parse_base() */
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(s);
	f->mode = 0644;
	f->mark = (struct mark){ x->file, m->line, m->col };
	v = content ? content : tmpl;
	free(w);
	w = xasprintf("%s.%s", what, content ? "content" : "template");
	if (v->kind != Y_SCALAR) {
		r = spec_err(x, v, "%s: expected a string, found %s", w, ynode_kind_name(v));
		goto out;
	}
	if (content) {
		f->content = xstrdup(v->str);
	} else {
		struct kerr te = { 0 };
		if (template_compile(v->str, &f->template, &te) < 0) {
			r = spec_err(x, v, "%s: %s", w, te.msg);
			goto out;
		}
	}
	if ((v = ymap_get(m, "mode"))) {
		free(w);
		w = xasprintf("%s.mode", what);
		if ((r = get_mode(x, v, w, &f->mode)) < 0)
			goto out;
	}
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "group" : "owner";
		char **dst = i ? &f->group : &f->owner;
		if (!(v = ymap_get(m, key)))
			continue;
		free(w);
		w = xasprintf("%s.%s", what, key);
		if ((r = spec_get_text(x, v, w, &s)) < 0)
			goto out;
		if (!valid_owner(s)) {
			r = spec_err(x, v, "%s: '%s' is not a user/group name or id", w,
				  spec_shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		*dst = xstrdup(s);
	}
	if (!f->owner)
		f->owner = xstrdup("root");
	if (!f->group)
		f->group = xstrdup("root");
out:
	free(what);
	free(w);
	return r;
}

/* stacks.base: present means enabled; absent keys take their defaults. */
/* A systemd unit name: [A-Za-z0-9@._:-], 1..255, not starting with '-' or '.'. */
static bool valid_unit(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("@._:-", *s))
			return false;
	return true;
}

/* One entry of stacks.base.services (after files: watch names them). */
static int parse_service(struct spec_parser *x, const struct ynode *m, size_t idx,
			 struct stack_base *b)
{
	static const char *const keys[] = { "name", "enabled", "state", "watch", NULL };
	const struct ynode *v;
	char *what = xasprintf("stacks.base.services[%zu]", idx), tmp[80];
	const char *s;
	int r;

	if ((r = spec_expect(x, m, Y_MAP, what)) < 0 || (r = spec_check_keys(x, m, what, keys)) < 0)
		goto out;
	if (!(v = ymap_get(m, "name"))) {
		r = spec_err(x, m, "missing required key 'name' in %s", what);
		goto out;
	}
	if ((r = spec_get_text(x, v, what, &s)) < 0)
		goto out;
	if (!valid_unit(s)) {
		r = spec_err(x, v, "%s.name: '%s' is not a systemd unit name", what,
			  spec_shown(v, tmp, sizeof(tmp)));
		goto out;
	}
	for (size_t i = 0; i < b->nservices; i++)
		if (!strcmp(b->services[i].name, s)) {
			r = spec_err(x, v, "%s: duplicate service '%s' (first at line %d)", what, s,
				  b->services[i].mark.line);
			goto out;
		}
	struct spec_service *sv = &b->services[b->nservices++];   /* reserved by parse_base() */
	memset(sv, 0, sizeof(*sv));
	sv->name = xstrdup(s);
	sv->enabled = sv->running = true;
	sv->mark = (struct mark){ x->file, m->line, m->col };
	if ((v = ymap_get(m, "enabled")) && (r = spec_get_bool(x, v, what, &sv->enabled)) < 0)
		goto out;
	if ((v = ymap_get(m, "state"))) {
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			goto out;
		if (strcmp(s, "running") && strcmp(s, "stopped")) {
			r = spec_err(x, v, "%s.state: expected running or stopped, found '%s'", what,
				  spec_shown(v, tmp, sizeof(tmp)));
			goto out;
		}
		sv->running = s[0] == 'r';
	}
	if ((v = ymap_get(m, "watch")) && !ynode_is_null(v)) {
		if ((r = spec_get_strv(x, v, what, NULL, NULL, &sv->watch)) < 0)
			goto out;
		for (size_t i = 0; i < sv->watch.n; i++) {
			bool known = false;
			for (size_t j = 0; j < b->nfiles && !known; j++)
				known = !strcmp(b->files[j].path, sv->watch.v[i]);
			if (!known) {
				r = spec_err(x, v->kids[i], "%s.watch: '%s' is not a path of "
					  "stacks.base.files", what, sv->watch.v[i]);
				goto out;
			}
		}
	}
out:
	free(what);
	return r;
}

static int base_parse(struct spec_parser *x, const struct ynode *m, void **conf)
{
	static const char *const keys[] = { "modules", "sysctls", "swap_off", "hostname",
		"hosts_file", "admin_user", "packages", "files", "services", "reboot", NULL };
	static const char *const def_sysctls[][2] = {
		{ "net.bridge.bridge-nf-call-iptables", "1" },
		{ "net.bridge.bridge-nf-call-ip6tables", "1" },
		{ "net.ipv4.ip_forward", "1" },
	};
	struct stack_base *b = xcalloc(1, sizeof(*b));
	const struct ynode *v;
	int r;

	*conf = b;
	b->packages = json_object();

	if (!ynode_is_null(m) && ((r = spec_expect(x, m, Y_MAP, "stacks.base")) < 0 ||
				  (r = spec_check_keys(x, m, "stacks.base", keys)) < 0))
		return r;
	b->swap_off = b->hostname = b->hosts_file = true;
	if ((v = ymap_get(m, "modules"))) {
		if (!ynode_is_null(v) &&
		    (r = spec_get_strv(x, v, "stacks.base.modules", valid_module,
				  "a kernel module name", &b->modules)) < 0)
			return r;
	} else {
		strv_push(&b->modules, "overlay");
		strv_push(&b->modules, "br_netfilter");
	}
	if ((v = ymap_get(m, "sysctls"))) {
		if (!ynode_is_null(v) && (r = parse_sysctls(x, v, b)) < 0)
			return r;
	} else {
		b->nsysctls = ARRAY_SIZE(def_sysctls);
		b->sysctls = xcalloc(b->nsysctls, sizeof(*b->sysctls));
		for (size_t i = 0; i < b->nsysctls; i++) {
			b->sysctls[i].key = xstrdup(def_sysctls[i][0]);
			b->sysctls[i].value = xstrdup(def_sysctls[i][1]);
		}
	}
	if ((v = ymap_get(m, "swap_off")) &&
	    (r = spec_get_bool(x, v, "stacks.base.swap_off", &b->swap_off)) < 0)
		return r;
	if ((v = ymap_get(m, "hostname")) &&
	    (r = spec_get_bool(x, v, "stacks.base.hostname", &b->hostname)) < 0)
		return r;
	if ((v = ymap_get(m, "hosts_file")) &&
	    (r = spec_get_bool(x, v, "stacks.base.hosts_file", &b->hosts_file)) < 0)
		return r;
	if ((v = ymap_get(m, "reboot")) &&
	    (r = spec_get_bool(x, v, "stacks.base.reboot", &b->reboot)) < 0)
		return r;
	if ((v = ymap_get(m, "admin_user")) && (r = parse_admin(x, v, &b->admin)) < 0)
		return r;
	if (b->admin.name && !b->admin.shell)
		b->admin.shell = xstrdup("/bin/bash");
	if ((v = ymap_get(m, "packages")) && (r = parse_packages(x, v, b->packages)) < 0)
		return r;
	if ((v = ymap_get(m, "files")) && !ynode_is_null(v)) {
		if ((r = spec_expect(x, v, Y_SEQ, "stacks.base.files")) < 0)
			return r;
		b->files = xrealloc(b->files, (b->nfiles + v->nkids) * sizeof(*b->files));
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = parse_file(x, v->kids[i], i, b)) < 0)
				return r;
	}
	if ((v = ymap_get(m, "services")) && !ynode_is_null(v)) {
		if ((r = spec_expect(x, v, Y_SEQ, "stacks.base.services")) < 0)
			return r;
		b->services = xrealloc(b->services,
				       (b->nservices + v->nkids) * sizeof(*b->services));
		for (size_t i = 0; i < v->nkids; i++)
			if ((r = parse_service(x, v->kids[i], i, b)) < 0)
				return r;
	}
	/* Every node is parsed by now (stacks come last). */
	base_share(b, x->c);
	return 0;
}

/* ---- render -------------------------------------------------------------- */

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

static int render_files(const struct render_ctx *rc, const struct stack_base *b,
			const struct node *n, json_t *out, struct kerr *e)
{
	for (size_t i = 0; i < b->nfiles; i++) {
		const struct spec_file *f = &b->files[i];
		struct buf t;

		if (b->file_res[i]) {
			json_array_append(out, b->file_res[i]);
			continue;
		}
		buf_init(&t, 0);
		int r = template_render(f->template, rc, n, &t, e);
		if (r < 0) {
			buf_release(&t);
			kerr_prefix(e, "%s:%d:%d: file '%s' for node '%s'", f->mark.file,
				    f->mark.line, f->mark.col, f->path, n->name);
			return r;
		}
		json_array_append_new(out, res_file(f->path, t.s, f->mode,
						    f->owner ? f->owner : "root",
						    f->group ? f->group : "root"));
		buf_release(&t);
	}
	return 0;
}

static void append_all(json_t *out, const json_t *list)
{
	size_t i;
	json_t *r;

	json_array_foreach(list, i, r)
		json_array_append(out, r);
}

/*
 * The resources that are the same on every node, made once at parse
 * (struct stack_base): all but the hostname, templated files and nothing
 * else.  Packages per OS family, as facts will name it.
 */
static void base_share(struct stack_base *b, const struct cluster *c)
{
	b->head = json_array();
	if (b->modules.n)
		json_array_append_new(b->head, res_kmod(BASE_MODULES_FILE,
							(const char *const *)b->modules.v,
							b->modules.n));
	if (b->nsysctls) {
		const char **k = xcalloc(b->nsysctls, sizeof(*k));
		const char **v = xcalloc(b->nsysctls, sizeof(*v));
		for (size_t i = 0; i < b->nsysctls; i++) {
			k[i] = b->sysctls[i].key;
			v[i] = b->sysctls[i].value;
		}
		json_array_append_new(b->head, res_sysctl(BASE_SYSCTL_FILE, k, v, b->nsysctls));
		free(k);
		free(v);
	}
	if (b->swap_off)
		json_array_append_new(b->head, res_swap_off());
	if (b->hosts_file)
		b->hosts = render_hosts(c);
	if (b->admin.name)
		b->user = res_user(b->admin.name, b->admin.shell ? b->admin.shell : "/bin/bash",
				   (const char *const *)b->admin.groups.v, b->admin.groups.n,
				   (const char *const *)b->admin.keys.v, b->admin.keys.n);
	b->file_res = xcalloc(b->nfiles + 1, sizeof(*b->file_res));
	for (size_t i = 0; i < b->nfiles; i++) {
		const struct spec_file *f = &b->files[i];
		if (!f->template)
			b->file_res[i] = res_file(f->path, f->content ? f->content : "", f->mode,
						  f->owner ? f->owner : "root",
						  f->group ? f->group : "root");
	}
	b->pkgs = json_object();
	const char *family;
	json_t *list;
	json_object_foreach(b->packages, family, list) {
		size_t n = json_array_size(list);
		if (!n)
			continue;
		const char **names = xcalloc(n, sizeof(*names));
		for (size_t i = 0; i < n; i++)
			names[i] = json_string_value(json_array_get(list, i));
		json_object_set_new(b->pkgs, family, res_package(names, n, true));
		free(names);
	}
	b->tail = json_array();
	for (size_t i = 0; i < b->nservices; i++) {
		const struct spec_service *sv = &b->services[i];
		const char **w = xcalloc(sv->watch.n + 1, sizeof(*w));
		char **ids = xcalloc(sv->watch.n + 1, sizeof(*ids));
		for (size_t j = 0; j < sv->watch.n; j++)
			w[j] = ids[j] = xasprintf("file:%s", sv->watch.v[j]);
		json_array_append_new(b->tail, res_service(sv->name, sv->enabled, sv->running, w,
							   sv->watch.n));
		for (size_t j = 0; j < sv->watch.n; j++)
			free(ids[j]);
		free(ids);
		free(w);
	}
	/* last: what a package asked for (/run/reboot-required) */
	if (b->reboot)
		json_array_append_new(b->tail, res_reboot("required", NULL, NULL));
}

/* Everything in one phase: nothing in base waits for another node. */
static int base_render(const struct render_ctx *rc, const void *conf, const struct node *n,
		       struct render_out *ro, struct kerr *e)
{
	const struct stack_base *b = conf;
	json_t *out = ro->resources;

	append_all(out, b->head);
	if (b->hostname)
		json_array_append_new(out, res_hostname(n->name));
	if (b->hosts)
		json_array_append(out, b->hosts);
	if (b->user)
		json_array_append(out, b->user);
	/*
	 * Files before packages: a file may add a package source (apt's
	 * sources.list.d); a package's own conffile that kiln also manages is
	 * kept as kiln wrote it (dpkg --force-confold).
	 */
	int r = render_files(rc, b, n, out, e);
	if (r < 0)
		return r;
	/* the package list for the node's OS family, if facts name one */
	const char *family = json_string_value(json_object_get(render_fact(rc, n, "os"),
								"family"));
	json_t *pkgs = family ? json_object_get(b->pkgs, family) : NULL;
	if (pkgs)
		json_array_append(out, pkgs);
	/* after files and packages: a unit file or a package may bring the unit */
	append_all(out, b->tail);
	return 0;
}

static void base_free(void *conf)
{
	struct stack_base *b = conf;

	strv_release(&b->modules);
	for (size_t i = 0; i < b->nsysctls; i++) {
		free(b->sysctls[i].key);
		free(b->sysctls[i].value);
	}
	free(b->sysctls);
	free(b->admin.name);
	free(b->admin.shell);
	strv_release(&b->admin.keys);
	strv_release(&b->admin.groups);
	json_decref(b->packages);
	for (size_t i = 0; i < b->nservices; i++) {
		free(b->services[i].name);
		strv_release(&b->services[i].watch);
	}
	free(b->services);
	for (size_t i = 0; i < b->nfiles; i++) {
		free(b->files[i].path);
		free(b->files[i].content);
		template_free(b->files[i].template);
		free(b->files[i].owner);
		free(b->files[i].group);
	}
	free(b->files);
	json_decref(b->head);
	json_decref(b->hosts);
	json_decref(b->user);
	for (size_t i = 0; b->file_res && i < b->nfiles; i++)
		json_decref(b->file_res[i]);
	free(b->file_res);
	json_decref(b->pkgs);
	json_decref(b->tail);
	free(b);
}

static const struct stack_phase base_phases[] = {
	{ "prepare", base_render },
};

const struct stack_type stack_base = {
	.name = "base",
	.summary = "node preparation: modules, sysctls, swap, hostname, /etc/hosts, admin user, files, packages, services",
	.parse = base_parse,
	.free = base_free,
	.phases = base_phases,
	.nphases = ARRAY_SIZE(base_phases),
	.facts = (const char *const[]){ "os", NULL },
};
