/*
 * "{{ name }}" templates over node and cluster variables (see stacks.h).
 * A template is cut into parts once, when the spec is parsed: literal text
 * and placeholders whose kind (node.name, a variable path...) is decided
 * then, so a render per node only looks values up and copies bytes.
 */
#include "stacks.h"

#include <errno.h>
#include <string.h>

enum part_kind {
	PART_TEXT,
	PART_NODE_NAME,
	PART_NODE_ADDRESS,
	PART_NODE_SITE,
	PART_NODE_ROLES,
	PART_NODE_LABEL,         /* node.labels.KEY: path[0] = KEY */
	PART_MESH_ADDRESS,
	PART_CLUSTER_NAME,
	PART_VAR,                /* a variable: path[0], then keys into its object */
};

struct part {
	enum part_kind kind;
	const char *text;        /* PART_TEXT: into struct template.src */
	size_t len;
	char *name;              /* a placeholder as written, for errors */
	struct strv path;
	int line;
};

struct template {
	char *src;
	struct part *v;
	size_t n;
	size_t text_len;         /* the literal bytes, a floor for the output */
};

static const struct {
	const char *name;
	enum part_kind kind;
} fixed[] = {
	{ "node.name", PART_NODE_NAME },
	{ "node.address", PART_NODE_ADDRESS },
	{ "node.site", PART_NODE_SITE },
	{ "node.roles", PART_NODE_ROLES },
	{ "node.mesh_address", PART_MESH_ADDRESS },   /* made by the mesh's prepare */
	{ "cluster.name", PART_CLUSTER_NAME },
};

static struct part *part_add(struct template *t, enum part_kind kind, int line)
{
	t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
	struct part *p = &t->v[t->n++];
	*p = (struct part){ .kind = kind, .line = line };
	return p;
}

/* The placeholder name (trimmed, NUL-terminated in place) as a part. */
static void placeholder(struct template *t, char *name, int line)
{
	struct part *p;

	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		if (!strcmp(name, fixed[i].name)) {
			p = part_add(t, fixed[i].kind, line);
			p->name = xstrdup(name);
			return;
		}
	if (str_starts(name, "node.labels.")) {
		p = part_add(t, PART_NODE_LABEL, line);
		strv_push(&p->path, name + strlen("node.labels."));
	} else {
		/* a variable, then keys into it: "site_info.dc" */
		p = part_add(t, PART_VAR, line);
		for (char *s = name, *dot;; s = dot + 1) {
			dot = strchr(s, '.');
			if (!dot) {
				strv_push(&p->path, s);
				break;
			}
			*dot = '\0';
			strv_push(&p->path, s);
			*dot = '.';
		}
	}
	p->name = xstrdup(name);
}

int template_compile(const char *text, struct template **out, struct kerr *e)
{
	struct template *t = xcalloc(1, sizeof(*t));
	char *p;
	int line = 1, r = 0;

	t->src = xstrdup(text);
	for (p = t->src;;) {
		char *open = strstr(p, "{{");
		if (!open) {
			struct part *x = part_add(t, PART_TEXT, line);
			x->text = p;
			x->len = strlen(p);
			t->text_len += x->len;
			break;
		}
		if (open > p) {
			struct part *x = part_add(t, PART_TEXT, line);
			x->text = p;
			x->len = (size_t)(open - p);
			t->text_len += x->len;
		}
		for (const char *q = p; q < open; q++)
			line += *q == '\n';
		char *close = strstr(open + 2, "}}");
		if (!close) {
			r = kerr_set(e, -EINVAL, "template line %d: '{{' without '}}'", line);
			break;
		}
		char *s = open + 2, *z = close;
		while (s < z && (*s == ' ' || *s == '\t'))
			s++;
		while (z > s && (z[-1] == ' ' || z[-1] == '\t'))
			z--;
		if (z == s || z - s >= 256) {
			r = kerr_set(e, -EINVAL, "template line %d: empty or overlong name in '{{ }}'",
				     line);
			break;
		}
		/* the literal parts before it end at open: the name can be cut here */
		*z = '\0';
		placeholder(t, s, line);
		for (const char *q = open; q < close; q++)
			line += *q == '\n';
		p = close + 2;
	}
	if (r < 0) {
		template_free(t);
		return r;
	}
	*out = t;
	return 0;
}

void template_free(struct template *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].name);
		strv_release(&t->v[i].path);
	}
	free(t->v);
	free(t->src);
	free(t);
}

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

/* One placeholder's value for node n into out; -ENOENT when it has none. */
static int expand(const struct part *p, const struct render_ctx *rc, const struct node *n,
		  struct buf *out)
{
	const struct cluster *c = rc->c;
	const json_t *v;
	const char *a;

	switch (p->kind) {
	case PART_TEXT:
		return buf_add(out, p->text, p->len);
	case PART_NODE_NAME:
		return buf_adds(out, n->name);
	case PART_NODE_ADDRESS:
		return buf_adds(out, n->address);
	case PART_NODE_SITE:
		return buf_adds(out, n->site ? n->site : "default");
	case PART_CLUSTER_NAME:
		return buf_adds(out, c->name);
	case PART_NODE_ROLES:
		for (size_t i = 0; i < n->roles.n; i++) {
			if (i)
				buf_addch(out, ',');
			buf_adds(out, n->roles.v[i]);
		}
		return 0;
	case PART_MESH_ADDRESS:
		a = rc->exports ? exports_get(rc->exports, n->name, "mesh", "address") : NULL;
		return a ? buf_adds(out, a) : -ENOENT;
	case PART_NODE_LABEL:
		v = json_object_get(n->labels, p->path.v[0]);
		return v ? add_value(out, v) : -ENOENT;
	case PART_VAR:
		v = cluster_var(c, n, p->path.v[0]);
		for (size_t i = 1; v && i < p->path.n; i++)
			v = json_is_object(v) ? json_object_get(v, p->path.v[i]) : NULL;
		return v ? add_value(out, v) : -ENOENT;
	}
	return -ENOENT;
}

int template_render(const struct template *t, const struct render_ctx *rc, const struct node *n,
		    struct buf *out, struct kerr *e)
{
	/* the literal bytes and a little for each value: mostly one allocation */
	int r = 0;

	buf_reserve(out, t->text_len + 32 * t->n);
	for (size_t i = 0; r == 0 && i < t->n; i++) {
		const struct part *p = &t->v[i];
		if ((r = expand(p, rc, n, out)) == -ENOENT)
			return kerr_set(e, -EINVAL, "template line %d: unknown variable '%s'",
					p->line, p->name);
		if (r == -EINVAL)
			return kerr_set(e, r, "template line %d: variable '%s' is not a scalar",
					p->line, p->name);
	}
	return r < 0 ? kerr_set(e, r, "template: %s", strerror(-r)) : 0;
}
