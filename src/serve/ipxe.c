/* iPXE scripts: a tiny "{{ name }}" template renderer and the built-in templates. */
#include <errno.h>
#include <string.h>

#include "serve/serve.h"

static const char tmpl_install[] =
	"#!ipxe\n"
	"# kiln: node {{node}} ({{mac}}) installs image {{image}}\n"
	"echo kiln: booting {{image}} for {{node}}\n"
	"kernel {{kernel_url}} {{initrd_arg}}{{cmdline}}kiln.node={{node}} kiln.server={{server_url}}\n"
	"{{initrd_cmd}}\n"
	"boot\n";

static const char tmpl_discovery[] =
	"#!ipxe\n"
	"# kiln: unknown machine {{mac}}: discovery image {{image}}\n"
	"echo kiln: discovering {{mac}}\n"
	"kernel {{kernel_url}} {{initrd_arg}}{{cmdline}}kiln.mac={{mac}} kiln.server={{server_url}}\n"
	"{{initrd_cmd}}\n"
	"boot\n";

static const char tmpl_unknown[] =
	"#!ipxe\n"
	"# kiln: unknown machine {{mac}}\n"
	"echo kiln: machine {{mac}} is not in the cluster spec and discovery is off\n"
	"sleep 5\n"
	"exit 1\n";

static const char tmpl_local[] =
	"#!ipxe\n"
	"# kiln: node {{node}} ({{mac}}) is provisioned: local disk\n"
	"echo kiln: {{node}} is provisioned, booting from the local disk\n"
	"sanboot --no-describe --drive 0x80 || exit\n";

const char *ipxe_template(enum ipxe_kind kind)
{
	switch (kind) {
	case IPXE_INSTALL: return tmpl_install;
	case IPXE_DISCOVERY: return tmpl_discovery;
	case IPXE_UNKNOWN: return tmpl_unknown;
	case IPXE_LOCAL: return tmpl_local;
	}
	return tmpl_unknown;
}

static const char *var_find(const struct tmpl_var *vars, size_t n, const char *name,
			    size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(vars[i].name) == len && !memcmp(vars[i].name, name, len))
			return vars[i].value ? vars[i].value : "";
	return NULL;
}

/*
 * Substitute "{{ name }}" by its value.  Values cannot hold control
 * bytes: a newline in, say, a cmdline would add iPXE commands.
 */
int ipxe_render(const char *tmpl, const struct tmpl_var *vars, size_t nvars,
		struct buf *out, struct kerr *e)
{
	size_t cap_before = out->cap;
	const char *p = tmpl;
	int r = 0;

	if (!out->cap || out->cap > out->len + IPXE_MAX_SCRIPT)
		out->cap = out->len + IPXE_MAX_SCRIPT;
	while (*p) {
		const char *open = strstr(p, "{{");
		if (!open) {
			r = buf_adds(out, p);
			break;
		}
		if ((r = buf_add(out, p, (size_t)(open - p))) < 0)
			break;
		const char *close = strstr(open + 2, "}}");
		if (!close) {
			r = kerr_set(e, -EINVAL, "template: '{{' at offset %zu is not closed",
				     (size_t)(open - tmpl));
			break;
		}
		const char *n = open + 2, *end = close;
		while (n < end && *n == ' ')
			n++;
		while (end > n && end[-1] == ' ')
			end--;
		const char *v = var_find(vars, nvars, n, (size_t)(end - n));
		if (!v) {
			char name[64];
			str_sanitize(name, sizeof(name), n, (size_t)(end - n));
			r = kerr_set(e, -EINVAL, "template: unknown variable '%s'", name);
			break;
		}
		for (const char *c = v; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f) {
				r = kerr_set(e, -EINVAL, "template: variable '%.*s' holds a "
					     "control byte", (int)(end - n > 60 ? 60 : end - n), n);
				goto out;
			}
		if ((r = buf_adds(out, v)) < 0)
			break;
		p = close + 2;
	}
out:
	if (r == -E2BIG)
		kerr_set(e, r, "template: script larger than %u bytes", IPXE_MAX_SCRIPT);
	out->cap = cap_before;
	return r;
}
