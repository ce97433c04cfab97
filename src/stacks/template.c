/* "{{ name }}" templates over node and cluster variables (see stacks.h). */
#include "stacks.h"

#include <errno.h>
#include <string.h>

/* Append a scalar JSON value as text; objects and arrays are errors. */
static int add_value(struct buf *out, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return buf_add(out, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		return buf_printf(out, "%.17g", json_real_value(v));
	case JSON_TRUE:
		return buf_adds(out, "true");
	case JSON_FALSE:
		return buf_adds(out, "false");
	case JSON_NULL:
		return 0;
	default:
		return -EINVAL;
	}
}

/* Descend "a.b.c" from an object value; NULL if any step is missing. */
static const json_t *descend(const json_t *v, const char *path)
{
	char key[256];

	while (v && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key) || !json_is_object(v))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		v = json_object_get(v, key);
		path += n;
		if (*path == '.')
			path++;
	}
	return v;
}

static int lookup(const char *name, const struct render_ctx *rc, const struct node *n,
		  struct buf *out)
{
	const struct cluster *c = rc->c;

	if (!strcmp(name, "node.mesh_address")) {
		/* made by the mesh stack's prepare, before any phase */
		const char *a = rc->exports ? exports_get(rc->exports, n->name, "mesh", "address")
					    : NULL;
		return a ? buf_adds(out, a) : -ENOENT;
	}
	if (!strcmp(name, "node.name"))
		return buf_adds(out, n->name);
	if (!strcmp(name, "node.address"))
		return buf_adds(out, n->address);
	if (!strcmp(name, "node.site"))
		return buf_adds(out, n->site ? n->site : "default");
	if (!strcmp(name, "cluster.name"))
		return buf_adds(out, c->name);
	if (!strcmp(name, "node.roles")) {
		for (size_t i = 0; i < n->roles.n; i++)
			buf_printf(out, "%s%s", i ? "," : "", n->roles.v[i]);
		return 0;
	}
	if (str_starts(name, "node.labels.")) {
		const json_t *v = json_object_get(n->labels, name + 12);
		return v ? add_value(out, v) : -ENOENT;
	}
	char head[256];
	size_t k = strcspn(name, ".");
	if (k >= sizeof(head))
		return -ENOENT;
	memcpy(head, name, k);
	head[k] = '\0';
	const json_t *v = cluster_var(c, n, head);
	if (v && name[k] == '.')
		v = descend(v, name + k + 1);
	return v ? add_value(out, v) : -ENOENT;
}

int template_render(const char *tmpl, const struct render_ctx *rc, const struct node *n,
		    struct buf *out, struct kerr *e)
{
	const char *p = tmpl;
	int line = 1;

	for (;;) {
		const char *open = strstr(p, "{{");
		if (!open)
			return buf_adds(out, p);
		for (const char *q = p; q < open; q++)
			line += *q == '\n';
		buf_add(out, p, (size_t)(open - p));
		const char *close = strstr(open + 2, "}}");
		if (!close)
			return kerr_set(e, -EINVAL, "template line %d: '{{' without '}}'", line);
		char name[256];
		const char *s = open + 2, *t = close;
		while (s < t && (*s == ' ' || *s == '\t'))
			s++;
		while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if (t == s || (size_t)(t - s) >= sizeof(name))
			return kerr_set(e, -EINVAL, "template line %d: empty or overlong name in '{{ }}'", line);
		memcpy(name, s, (size_t)(t - s));
		name[t - s] = '\0';
		int r = lookup(name, rc, n, out);
		if (r == -ENOENT)
			return kerr_set(e, -EINVAL, "template line %d: unknown variable '%s'", line, name);
		if (r < 0)
			return kerr_set(e, r, "template line %d: variable '%s' is not a scalar", line, name);
		p = close + 2;
	}
}
