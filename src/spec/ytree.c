/* ytree: libyaml events -> a marked, bounded, acyclic tree; scalars -> JSON. */
#include "spec_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_STR "tag:yaml.org,2002:"

struct ybuild {
	struct ydoc *d;
	struct ynode *stack[YTREE_MAX_DEPTH + 1];
	char *stack_anchor[YTREE_MAX_DEPTH + 1];
	int depth;
	struct kerr *e;
};

/* A node owned by d (freed with it), marked 1-based. */
static struct ynode *ynode_new(struct ydoc *d, enum ykind k, const yaml_mark_t *m)
{
	struct ynode *n = xcalloc(1, sizeof(*n));
	n->kind = k;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	d->all = xgrow(d->all, d->nall + 1, &d->allocall, sizeof(*d->all));
	d->all[d->nall++] = n;
	return n;
}

void ydoc_release(struct ydoc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nall; i++) {
		free(d->all[i]->str);
		free(d->all[i]->kids);
		free(d->all[i]);
	}
	free(d->all);
	for (size_t i = 0; i < d->nanchors; i++)
		free(d->anchors[i].name);
	free(d->anchors);
	memset(d, 0, sizeof(*d));
}

struct ynode *ymap_get(const struct ynode *n, const char *key)
{
	if (!n || n->kind != Y_MAP)
		return NULL;
	for (size_t i = 0; i < ymap_len(n); i++)
		if (!strcmp(ymap_key(n, i)->str, key))
			return ymap_val(n, i);
	return NULL;
}

/* Later definitions of an anchor name replace earlier ones (YAML rule). */
static void anchor_add(struct ydoc *d, const char *name, struct ynode *n)
{
	for (size_t i = 0; i < d->nanchors; i++)
		if (!strcmp(d->anchors[i].name, name)) {
			d->anchors[i].node = n;
			return;
		}
	d->anchors = xgrow(d->anchors, d->nanchors + 1, &d->allocanchors,
			   sizeof(*d->anchors));
	d->anchors[d->nanchors].name = xstrdup(name);
	d->anchors[d->nanchors++].node = n;
}

static struct ynode *anchor_find(struct ydoc *d, const char *name)
{
	for (size_t i = 0; i < d->nanchors; i++)
		if (!strcmp(d->anchors[i].name, name))
			return d->anchors[i].node;
	return NULL;
}

static int sanitized_err(struct kerr *e, const char *file, const struct ynode *at,
			 const char *what, const char *s, size_t len, const char *tail)
{
	char tmp[80];
	str_sanitize(tmp, sizeof(tmp), s, len);
	return err_at(e, file, at->line, at->col, "%s '%s'%s", what, tmp, tail);
}

struct kidx {
	const struct ynode *k;
	size_t i;
};

static int kidx_cmp(const void *a, const void *b)
{
	const struct kidx *x = a, *y = b;
	int r = strcmp(x->k->str, y->k->str);
	if (r)
		return r;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Reject repeated keys in a finished mapping.  Sorting keeps this
 * O(n log n) for huge mappings; we report the earliest repetition.
 */
static int map_check_dups(struct ybuild *b, const struct ynode *m)
{
	size_t n = ymap_len(m);
	if (n < 2)
		return 0;
	if (n <= 16) {
		/* the usual small mapping (a node): pairwise, no allocation */
		for (size_t i = 1; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (!strcmp(ymap_key(m, j)->str, ymap_key(m, i)->str)) {
					char tail[64];
					snprintf(tail, sizeof(tail), " (first at line %d)",
						 ymap_key(m, j)->line);
					return sanitized_err(b->e, b->d->file, ymap_key(m, i),
							     "duplicate key", ymap_key(m, i)->str,
							     ymap_key(m, i)->len, tail);
				}
		return 0;
	}
	struct kidx *v = xmalloc(n * sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i].k = ymap_key(m, i);
		v[i].i = i;
	}
	qsort(v, n, sizeof(*v), kidx_cmp);
	const struct kidx *first = NULL, *dup = NULL;
	size_t run = 0;   /* start of the current run of equal keys */
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1].k->str, v[i].k->str)) {
			run = i;
			continue;
		}
		if (!dup || v[i].i < dup->i) {
			dup = &v[i];
			first = &v[run];
		}
	}
	int r = 0;
	if (dup) {
		char tail[64];
		snprintf(tail, sizeof(tail), " (first at line %d)", first->k->line);
		r = sanitized_err(b->e, b->d->file, dup->k, "duplicate key",
				  dup->k->str, dup->k->len, tail);
	}
	free(v);
	return r;
}

/* Attach a finished node to the collection on top of the stack. */
static int attach(struct ybuild *b, struct ynode *n)
{
	if (b->depth == 0) {
		b->d->root = n;
		return 0;
	}
	struct ynode *p = b->stack[b->depth - 1];
	if (p->kind == Y_MAP && p->nkids % 2 == 0 && n->kind != Y_SCALAR)
		return err_at(b->e, b->d->file, n->line, n->col,
			      "expected a scalar as mapping key, found %s",
			      ynode_kind_name(n));
	p->kids = xgrow(p->kids, p->nkids + 1, &p->alloc, sizeof(*p->kids));
	p->kids[p->nkids++] = n;
	return 0;
}

/* Core-schema tags are accepted (!!str forces a string); others refused. */
static int scalar_tag(struct ybuild *b, struct ynode *n, const char *tag)
{
	if (!tag || !strcmp(tag, "!"))
		return 0;
	if (str_starts(tag, TAG_STR)) {
		const char *t = tag + strlen(TAG_STR);
		if (!strcmp(t, "str")) {
			n->tag_str = true;
			return 0;
		}
		if (!strcmp(t, "int") || !strcmp(t, "float") ||
		    !strcmp(t, "bool") || !strcmp(t, "null"))
			return 0;
	}
	return sanitized_err(b->e, b->d->file, n, "unsupported tag", tag,
			     strlen(tag), "");
}

static int coll_tag(struct ybuild *b, struct ynode *n, const char *tag)
{
	if (!tag || !strcmp(tag, "!") || !strcmp(tag, TAG_STR "map") ||
	    !strcmp(tag, TAG_STR "seq"))
		return 0;
	return sanitized_err(b->e, b->d->file, n, "unsupported tag", tag,
			     strlen(tag), "");
}

/* Handle one event; returns 1 at stream end, 0 to go on, <0 on error. */
static int on_event(struct ybuild *b, yaml_event_t *ev)
{
	struct ydoc *d = b->d;
	struct ynode *n;
	int r;

	if (ev->type != YAML_STREAM_END_EVENT && ev->type != YAML_STREAM_START_EVENT &&
	    ev->type != YAML_DOCUMENT_START_EVENT && ev->type != YAML_DOCUMENT_END_EVENT &&
	    d->nall >= YTREE_MAX_NODES)
		return err_at(b->e, d->file, (int)ev->start_mark.line + 1,
			      (int)ev->start_mark.column + 1,
			      "document too large (more than %d values)", YTREE_MAX_NODES);
	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (d->root || d->nall)
			return err_at(b->e, d->file, (int)ev->start_mark.line + 1,
				      (int)ev->start_mark.column + 1,
				      "expected a single YAML document");
		return 0;
	case YAML_ALIAS_EVENT: {
		const char *a = (const char *)ev->data.alias.anchor;
		n = anchor_find(d, a);
		if (!n)
			return err_at(b->e, d->file, (int)ev->start_mark.line + 1,
				      (int)ev->start_mark.column + 1,
				      "unknown alias '*%.64s'", a);
		if (b->depth > 0 && b->stack[b->depth - 1]->kind == Y_MAP &&
		    b->stack[b->depth - 1]->nkids % 2 == 0 && n->kind != Y_SCALAR)
			return err_at(b->e, d->file, (int)ev->start_mark.line + 1,
				      (int)ev->start_mark.column + 1,
				      "expected a scalar as mapping key, found %s",
				      ynode_kind_name(n));
		return attach(b, n);
	}
	case YAML_SCALAR_EVENT:
		n = ynode_new(d, Y_SCALAR, &ev->start_mark);
		if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
			return err_at(b->e, d->file, n->line, n->col,
				      "NUL bytes are not allowed in strings");
		n->str = xstrndup((const char *)ev->data.scalar.value,
				  ev->data.scalar.length);
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if ((r = scalar_tag(b, n, (const char *)ev->data.scalar.tag)) < 0)
			return r;
		if (ev->data.scalar.anchor)
			anchor_add(d, (const char *)ev->data.scalar.anchor, n);
		return attach(b, n);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
		n = ynode_new(d, seq ? Y_SEQ : Y_MAP, &ev->start_mark);
		const char *tag = (const char *)(seq ? ev->data.sequence_start.tag
					       : ev->data.mapping_start.tag);
		const char *anchor = (const char *)(seq ? ev->data.sequence_start.anchor
						  : ev->data.mapping_start.anchor);
		if ((r = coll_tag(b, n, tag)) < 0)
			return r;
		if (b->depth >= YTREE_MAX_DEPTH)
			return err_at(b->e, d->file, n->line, n->col,
				      "nesting deeper than %d levels", YTREE_MAX_DEPTH);
		if ((r = attach(b, n)) < 0)
			return r;
		b->stack_anchor[b->depth] = anchor ? xstrdup(anchor) : NULL;
		b->stack[b->depth++] = n;
		return 0;
	}
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		n = b->stack[--b->depth];
		if (n->kind == Y_MAP && (r = map_check_dups(b, n)) < 0) {
			free(b->stack_anchor[b->depth]);
			b->stack_anchor[b->depth] = NULL;
			return r;
		}
		if (b->stack_anchor[b->depth]) {
			anchor_add(d, b->stack_anchor[b->depth], n);
			free(b->stack_anchor[b->depth]);
			b->stack_anchor[b->depth] = NULL;
		}
		return 0;
	default:
		return 0;
	}
}

/*
 * libyaml's own complaint, as one line with its mark.  Reader errors
 * (bad encoding) carry only a byte offset: we count lines ourselves.
 */
static int parser_error(yaml_parser_t *p, const char *file, const char *text, size_t len,
			struct kerr *e)
{
	const char *problem = p->problem ? p->problem : "invalid YAML";
	const yaml_mark_t *m = &p->problem_mark;
	char prob[160];

	str_sanitize(prob, sizeof(prob), problem, strlen(problem));
	if (p->error == YAML_READER_ERROR) {
		size_t off = p->problem_offset < len ? p->problem_offset : len;
		int line = 1, col = 1;
		for (size_t i = 0; i < off; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
				col++;   /* count characters, not UTF-8 continuation bytes */
			}
		}
		return err_at(e, file, line, col, "invalid input: %s", prob);
	}
	if (p->context)
		return err_at(e, file, (int)m->line + 1, (int)m->column + 1,
			      "YAML syntax error: %s (%s at line %d)", prob,
			      p->context, (int)p->context_mark.line + 1);
	return err_at(e, file, (int)m->line + 1, (int)m->column + 1,
		      "YAML syntax error: %s", prob);
}

int ydoc_parse(struct ydoc *d, const char *file, const char *text, size_t len,
	       struct kerr *e)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct ybuild b = { .d = d, .e = e };
	int r = 0;

	memset(d, 0, sizeof(*d));
	d->file = file;
	if (!yaml_parser_initialize(&p))
		return kerr_set(e, -ENOMEM, "%s: cannot initialise the YAML parser", file);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			r = parser_error(&p, file, text, len, e);
			break;
		}
		r = on_event(&b, &ev);
		yaml_event_delete(&ev);
		if (r)
			break;
	}
	if (r > 0)
		r = 0;
	for (int i = 0; i < b.depth; i++)
		free(b.stack_anchor[i]);
	yaml_parser_delete(&p);
	if (r < 0)
		ydoc_release(d);
	return r;
}

/* ---- scalars ---------------------------------------------------------- */

static bool is_one_of(const char *s, const char *const *v)
{
	for (; *v; v++)
		if (!strcmp(s, *v))
			return true;
	return false;
}

/* [-+]?digits (decimal), 0x.., 0o..  Sets *range on overflow. */
static bool parse_yint(const char *s, int64_t *out, bool *range)
{
	const char *p = s;
	int base = 10;
	bool neg = false;

	*range = false;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o') && p == s) {
		base = p[1] == 'x' ? 16 : 8;
		p += 2;
	}
	if (!*p)
		return false;
	for (const char *q = p; *q; q++) {
		int v;
		if (*q >= '0' && *q <= '9')
			v = *q - '0';
		else if (*q >= 'a' && *q <= 'f')
			v = *q - 'a' + 10;
		else if (*q >= 'A' && *q <= 'F')
			v = *q - 'A' + 10;
		else
			return false;
		if (v >= base)
			return false;
	}
	errno = 0;
	char *end;
	unsigned long long u = strtoull(p, &end, base);
	if (*end)
		return false;
	if (errno == ERANGE || u > (unsigned long long)INT64_MAX + (neg ? 1 : 0)) {
		*range = true;
		return true;
	}
	*out = neg ? (int64_t)(0 - u) : (int64_t)u;
	return true;
}

/* YAML core floats: [-+]?(digits[.digits]|.digits)([eE][-+]?digits)?, .inf, .nan. */
static bool parse_yfloat(const char *s, double *out)
{
	static const char *const inf[] = { ".inf", ".Inf", ".INF", "+.inf",
		"+.Inf", "+.INF", NULL };
	static const char *const ninf[] = { "-.inf", "-.Inf", "-.INF", NULL };
	static const char *const nan_[] = { ".nan", ".NaN", ".NAN", NULL };
	const char *p = s;
	bool digits = false, dot = false;

	if (is_one_of(s, inf)) {
		*out = INFINITY;
		return true;
	}
	if (is_one_of(s, ninf)) {
		*out = -INFINITY;
		return true;
	}
	if (is_one_of(s, nan_)) {
		*out = NAN;
		return true;
	}
	if (*p == '-' || *p == '+')
		p++;
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits = true;
		else if (*p == '.' && !dot)
			dot = true;
		else
			break;
	}
	if (!digits)
		return false;
	bool exp = false;
	if (*p == 'e' || *p == 'E') {
		exp = true;
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p || (!dot && !exp))
		return false;
	*out = strtod(s, NULL);
	return true;
}

enum yscalar yscalar_type(const struct ynode *n, bool *b, int64_t *i, double *d)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	bool range;
	int64_t iv;
	double dv;

	if (n->kind != Y_SCALAR)
		return YS_STR;
	if (!n->plain || n->tag_str)
		return YS_STR;
	if (is_one_of(n->str, nulls))
		return YS_NULL;
	if (is_one_of(n->str, trues) || is_one_of(n->str, falses)) {
		if (b)
			*b = is_one_of(n->str, trues);
		return YS_BOOL;
	}
	if (parse_yint(n->str, &iv, &range)) {
		if (range) {
			/* too big for JSON's int: keep the digits as a float */
			if (d)
				*d = strtod(n->str, NULL);
			return YS_FLOAT;
		}
		if (i)
			*i = iv;
		return YS_INT;
	}
	if (parse_yfloat(n->str, &dv)) {
		if (d)
			*d = dv;
		return YS_FLOAT;
	}
	return YS_STR;
}

bool ynode_is_null(const struct ynode *n)
{
	return !n || (n->kind == Y_SCALAR && yscalar_type(n, NULL, NULL, NULL) == YS_NULL);
}

const char *ynode_kind_name(const struct ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->kind) {
	case Y_SEQ:
		return "a sequence";
	case Y_MAP:
		return "a mapping";
	case Y_SCALAR:
		break;
	}
	switch (yscalar_type(n, NULL, NULL, NULL)) {
	case YS_NULL:
		return "nothing";
	case YS_BOOL:
		return "a boolean";
	case YS_INT:
		return "an integer";
	case YS_FLOAT:
		return "a number";
	case YS_STR:
		break;
	}
	return "a string";
}

size_t ydoc_budget(const struct ydoc *d)
{
	return 10 * d->nall + 10000;
}

/* ynode_to_json()'s walk; sets *spent when the budget ran out. */
static json_t *to_json(const struct ynode *n, const char *file, size_t *budget,
		       struct kerr *e, bool *spent)
{
	bool bv = false;
	int64_t iv = 0;
	double dv = 0;

	if (*budget == 0) {
		*spent = true;
		return NULL;
	}
	(*budget)--;
	if (n->kind == Y_SCALAR) {
		switch (yscalar_type(n, &bv, &iv, &dv)) {
		case YS_NULL:
			return json_null();
		case YS_BOOL:
			return json_boolean(bv);
		case YS_INT:
			return json_integer(iv);
		case YS_FLOAT:
			if (!isfinite(dv)) {
				err_at(e, file, n->line, n->col,
				       "'%s' cannot be stored (not a finite number)", n->str);
				return NULL;
			}
			return json_real(dv);
		case YS_STR:
			break;
		}
		json_t *s = json_stringn(n->str, n->len);
		if (!s)
			err_at(e, file, n->line, n->col, "invalid UTF-8 in string");
		return s;
	}
	json_t *out = n->kind == Y_SEQ ? json_array() : json_object();
	if (!out)
		abort();
	if (n->kind == Y_SEQ) {
		for (size_t i = 0; i < n->nkids; i++) {
			json_t *v = to_json(n->kids[i], file, budget, e, spent);
			if (!v)
				goto fail;
			json_array_append_new(out, v);
		}
		return out;
	}
	for (size_t i = 0; i < ymap_len(n); i++) {
		json_t *v = to_json(ymap_val(n, i), file, budget, e, spent);
		if (!v)
			goto fail;
		if (json_object_set_new(out, ymap_key(n, i)->str, v) < 0) {
			err_at(e, file, ymap_key(n, i)->line, ymap_key(n, i)->col,
			       "invalid UTF-8 in key");
			goto fail;
		}
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

json_t *ynode_to_json(const struct ynode *n, const char *file, size_t *budget,
		      struct kerr *e)
{
	bool spent = false;
	json_t *j = to_json(n, file, budget, e, &spent);

	/* report where the value starts: where it ran out means little */
	if (spent)
		err_at(e, file, n->line, n->col, "too many values after expanding aliases");
	return j;
}
