/* exports: named values per (node, stack, name) in a small hash (stacks.h). */
#include "stacks.h"

#include <stdlib.h>
#include <string.h>

/*
 * FNV-1a over the three names, 0xff-separated, then a 64-bit finalizer:
 * FNV's multiply carries only upward, so its low bits (the slot mask) see
 * only the low bits of each byte; the finalizer folds the high bits in.
 */
static size_t key_hash(const char *node, const char *stack, const char *name)
{
	uint64_t h = 1469598103934665603ull;
	const char *parts[] = { node, stack, name };

	for (size_t i = 0; i < 3; i++) {
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ull;
		h = (h ^ 0xff) * 1099511628211ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h;
}

static bool key_eq(const struct export_entry *x, const char *node, const char *stack,
		   const char *name)
{
	return !strcmp(x->node, node) && !strcmp(x->stack, stack) && !strcmp(x->name, name);
}

void exports_init(struct exports *x)
{
	memset(x, 0, sizeof(*x));
}

static void entry_release(struct export_entry *en)
{
	free(en->node);
	free(en->stack);
	free(en->name);
	free(en->value);
}

void exports_release(struct exports *x)
{
	for (size_t i = 0; i < x->n; i++)
		entry_release(&x->v[i]);
	free(x->v);
	free(x->slots);
	memset(x, 0, sizeof(*x));
}

/* The slot holding the key, or the empty slot where it would go. */
static size_t *slot_for(const struct exports *x, const char *node, const char *stack,
			const char *name)
{
	size_t mask = x->nslots - 1;

	for (size_t i = key_hash(node, stack, name) & mask;; i = (i + 1) & mask) {
		size_t *s = &x->slots[i];
		if (!*s || key_eq(&x->v[*s - 1], node, stack, name))
			return s;
	}
}

static void rehash(struct exports *x, size_t nslots)
{
	free(x->slots);
	x->slots = xcalloc(nslots, sizeof(*x->slots));
	x->nslots = nslots;
	for (size_t i = 0; i < x->n; i++) {
		const struct export_entry *en = &x->v[i];
		*slot_for(x, en->node, en->stack, en->name) = i + 1;
	}
}

const struct export_entry *exports_find(const struct exports *x, const char *node,
					const char *stack, const char *name)
{
	if (!x->nslots)
		return NULL;
	size_t s = *slot_for(x, node, stack, name);
	return s ? &x->v[s - 1] : NULL;
}

const char *exports_get(const struct exports *x, const char *node, const char *stack,
			const char *name)
{
	const struct export_entry *en = exports_find(x, node, stack, name);
	return en ? en->value : NULL;
}

bool exports_set(struct exports *x, const char *node, const char *stack, const char *name,
		 const char *value, bool secret)
{
	if ((x->n + 1) * 2 > x->nslots)
		rehash(x, x->nslots ? x->nslots * 2 : 64);
	size_t *s = slot_for(x, node, stack, name);
	if (*s) {
		struct export_entry *en = &x->v[*s - 1];
		bool same = (!en->value && !value) ||
			    (en->value && value && !strcmp(en->value, value));
		if (same && en->secret == secret)
			return false;
		free(en->value);
		en->value = value ? xstrdup(value) : NULL;
		en->secret = secret;
		return true;
	}
	if (x->n == x->alloc) {
		x->alloc = x->alloc ? x->alloc * 2 : 32;
		x->v = xrealloc(x->v, x->alloc * sizeof(*x->v));
	}
	x->v[x->n] = (struct export_entry){ xstrdup(node), xstrdup(stack), xstrdup(name),
					    value ? xstrdup(value) : NULL, secret };
	*s = ++x->n;
	return true;
}

void exports_drop_node(struct exports *x, const char *node)
{
	size_t k = 0;

	for (size_t i = 0; i < x->n; i++) {
		if (!strcmp(x->v[i].node, node))
			entry_release(&x->v[i]);
		else
			x->v[k++] = x->v[i];
	}
	x->n = k;
	if (x->nslots)
		rehash(x, x->nslots);
}
