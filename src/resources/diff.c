/*
 * Unified diffs of two texts, for check reports.  Lines are compared
 * including their newline, so a missing final newline is a difference (and
 * is shown the way diff(1) shows it).  The edit script comes from Myers'
 * O(ND) algorithm on the part left after trimming the common prefix and
 * suffix; beyond DIFF_MAX_D edits the middle is shown as one replacement.
 */
#include "resources.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DIFF_MAX_D 2000
#define DIFF_CONTEXT 3

struct line {
	const char *p;
	size_t len;   /* including the '\n' when there is one */
};

struct lines {
	struct line *v;
	size_t n, alloc;
};

/* One step of the edit script: ai/bi are the positions in a and b. */
struct edit {
	char op;      /* ' ' keep, '-' delete from a, '+' insert from b */
	size_t ai, bi;
};

struct script {
	struct edit *v;
	size_t n, alloc;
};

static void lines_split(const char *s, struct lines *out)
{
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) + 1 : strlen(s);
		out->v = xgrow(out->v, out->n + 1, &out->alloc, sizeof(*out->v));
		out->v[out->n++] = (struct line){ s, len };
		s += len;
	}
}

static bool line_eq(const struct line *x, const struct line *y)
{
	return x->len == y->len && memcmp(x->p, y->p, x->len) == 0;
}

static void script_push(struct script *s, char op, size_t ai, size_t bi)
{
	s->v = xgrow(s->v, s->n + 1, &s->alloc, sizeof(*s->v));
	s->v[s->n++] = (struct edit){ op, ai, bi };
}

/*
 * Myers' greedy diff of a[0..n) and b[0..m), edits appended to s with
 * offsets added.  Returns false (s untouched) when more than DIFF_MAX_D
 * edits would be needed.
 */
static bool myers(const struct line *a, long n, const struct line *b, long m,
		  size_t aoff, size_t boff, struct script *s)
{
	long maxd = n + m < DIFF_MAX_D ? n + m : DIFF_MAX_D;
	long off = maxd + 1;
	long *v = xcalloc((size_t)(2 * maxd + 3), sizeof(long));
	long **trace = xcalloc((size_t)maxd + 1, sizeof(long *));
	long d, found = -1;
	bool ok = false;

	for (d = 0; d <= maxd && found < 0; d++) {
		/* Snapshot v[-d..d] before step d, for the walk back. */
		trace[d] = xmalloc(sizeof(long) * (size_t)(2 * d + 1));
		memcpy(trace[d], v + off - d, sizeof(long) * (size_t)(2 * d + 1));
		for (long k = -d; k <= d; k += 2) {
			long x;
			if (k == -d || (k != d && v[off + k - 1] < v[off + k + 1]))
				x = v[off + k + 1];
			else
				x = v[off + k - 1] + 1;
			long y = x - k;
			while (x < n && y < m && line_eq(&a[x], &b[y])) {
				x++;
				y++;
			}
			v[off + k] = x;
			if (x >= n && y >= m) {
				found = d;
				break;
			}
		}
	}
	if (found < 0)
		goto out;

	/* Walk back from (n, m), collecting edits in reverse. */
	struct script rev = { 0 };
	long x = n, y = m;
	for (d = found; d > 0; d--) {
		const long *pv = trace[d] + d;   /* pv[k] for k in -d..d */
		long k = x - y;
		long pk = (k == -d || (k != d && pv[k - 1] < pv[k + 1])) ? k + 1 : k - 1;
		long px = pv[pk], py = px - pk;
		while (x > px && y > py) {
			x--;
			y--;
			script_push(&rev, ' ', aoff + (size_t)x, boff + (size_t)y);
		}
		if (x == px) {
			y--;
			script_push(&rev, '+', aoff + (size_t)x, boff + (size_t)y);
		} else {
			x--;
			script_push(&rev, '-', aoff + (size_t)x, boff + (size_t)y);
		}
	}
	while (x > 0 && y > 0) {
		x--;
		y--;
		script_push(&rev, ' ', aoff + (size_t)x, boff + (size_t)y);
	}
	for (size_t i = rev.n; i > 0; i--)
		script_push(s, rev.v[i - 1].op, rev.v[i - 1].ai, rev.v[i - 1].bi);
	free(rev.v);
	ok = true;
out:
	for (d = 0; d <= maxd; d++)
		free(trace[d]);
	free(trace);
	free(v);
	return ok;
}

/* The whole edit script: common prefix, middle (Myers), common suffix. */
static void edit_script(const struct lines *a, const struct lines *b,
			struct script *s)
{
	size_t pre = 0, suf = 0;

	while (pre < a->n && pre < b->n && line_eq(&a->v[pre], &b->v[pre]))
		pre++;
	while (suf < a->n - pre && suf < b->n - pre &&
	       line_eq(&a->v[a->n - 1 - suf], &b->v[b->n - 1 - suf]))
		suf++;
	for (size_t i = 0; i < pre; i++)
		script_push(s, ' ', i, i);
	size_t na = a->n - pre - suf, nb = b->n - pre - suf;
	if (!myers(a->v + pre, (long)na, b->v + pre, (long)nb, pre, pre, s)) {
		for (size_t i = 0; i < na; i++)
			script_push(s, '-', pre + i, pre);
		for (size_t i = 0; i < nb; i++)
			script_push(s, '+', pre + na, pre + i);
	}
	for (size_t i = 0; i < suf; i++)
		script_push(s, ' ', a->n - suf + i, b->n - suf + i);
}

/* "start,count" the way diff -u writes it (",1" omitted; empty = line before). */
static int add_range(struct buf *out, size_t start, size_t count)
{
	if (count == 0)
		return buf_printf(out, "%zu,0", start);
	if (count == 1)
		return buf_printf(out, "%zu", start + 1);
	return buf_printf(out, "%zu,%zu", start + 1, count);
}

static int add_line(struct buf *out, char op, const struct line *l)
{
	int r = buf_addch(out, op);
	if (!r)
		r = buf_add(out, l->p, l->len);
	if (!r && (l->len == 0 || l->p[l->len - 1] != '\n'))
		r = buf_adds(out, "\n\\ No newline at end of file\n");
	return r;
}

/* Print the hunk covering script entries [s, e). */
static int add_hunk(struct buf *out, const struct script *sc, size_t s, size_t e,
		    const struct lines *a, const struct lines *b)
{
	size_t na = 0, nb = 0;
	int r;

	for (size_t i = s; i < e; i++) {
		na += sc->v[i].op != '+';
		nb += sc->v[i].op != '-';
	}
	if ((r = buf_adds(out, "@@ -")) || (r = add_range(out, sc->v[s].ai, na)) ||
	    (r = buf_adds(out, " +")) || (r = add_range(out, sc->v[s].bi, nb)) ||
	    (r = buf_adds(out, " @@\n")))
		return r;
	for (size_t i = s; i < e && !r; i++) {
		const struct edit *ed = &sc->v[i];
		r = add_line(out, ed->op, ed->op == '+' ? &b->v[ed->bi] : &a->v[ed->ai]);
	}
	return r;
}

int diff_unified(const char *label_a, const char *a, const char *label_b,
		 const char *b, struct buf *out)
{
	struct lines la = { 0 }, lb = { 0 };
	struct script sc = { 0 };
	int r = 0;

	if (!strcmp(a, b))
		return 0;
	lines_split(a, &la);
	lines_split(b, &lb);
	edit_script(&la, &lb, &sc);
	if ((r = buf_printf(out, "--- %s\n+++ %s\n", label_a, label_b)))
		goto out;
	for (size_t i = 0; i < sc.n && !r;) {
		if (sc.v[i].op == ' ') {
			i++;
			continue;
		}
		/* A change at i: extend while the next change is within 2*context. */
		size_t s = i > DIFF_CONTEXT ? i - DIFF_CONTEXT : 0;
		size_t last = i, j = i + 1;
		for (; j < sc.n && j - last <= 2 * DIFF_CONTEXT + 1; j++)
			if (sc.v[j].op != ' ')
				last = j;
		size_t e = last + 1 + DIFF_CONTEXT;
		if (e > sc.n)
			e = sc.n;
		r = add_hunk(out, &sc, s, e, &la, &lb);
		i = e;
	}
out:
	free(la.v);
	free(lb.v);
	free(sc.v);
	return r;
}
