/*
 * Per-source rate limit: one token bucket per source address in a table
 * of fixed size.  A hash chain finds a source's bucket, an LRU list says
 * whose bucket a new source takes when the table is full, so the limiter
 * itself is bounded however many sources there are.  Tokens are counted
 * in thousandths so refills need no floating point.
 */
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

struct rl_slot {
	uint64_t key;
	int64_t t_ms;      /* when tokens was last brought up to date */
	int64_t milli;     /* tokens * 1000 */
	int32_t prev, next; /* LRU list, most recent first; -1 ends */
	int32_t chain;     /* next slot in the same hash bucket; -1 ends */
};

struct rate_limit {
	struct rl_slot *slot;
	int32_t *bucket;   /* heads of the hash chains, nbuckets of them */
	uint32_t nslots, used, nbuckets;
	int32_t head, tail;
	int64_t rate_milli_per_s, burst_milli;
};

/* FNV-1a: the source address as a table key. */
static uint64_t key_of(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

struct rate_limit *rate_limit_new(unsigned slots, unsigned per_s, unsigned burst)
{
	struct rate_limit *rl = xcalloc(1, sizeof(*rl));
	rl->nslots = slots ? slots : 1;
	rl->nbuckets = 1;
	while (rl->nbuckets < rl->nslots)
		rl->nbuckets <<= 1;
	rl->slot = xcalloc(rl->nslots, sizeof(*rl->slot));
	rl->bucket = xcalloc(rl->nbuckets, sizeof(*rl->bucket));
	for (uint32_t i = 0; i < rl->nbuckets; i++)
		rl->bucket[i] = -1;
	rl->head = rl->tail = -1;
	rl->rate_milli_per_s = (int64_t)per_s * 1000;
	rl->burst_milli = (int64_t)(burst ? burst : 1) * 1000;
	return rl;
}

void rate_limit_free(struct rate_limit *rl)
{
	if (!rl)
		return;
	free(rl->slot);
	free(rl->bucket);
	free(rl);
}

static void lru_unlink(struct rate_limit *rl, int32_t i)
{
	struct rl_slot *s = &rl->slot[i];
	if (s->prev >= 0)
		rl->slot[s->prev].next = s->next;
	else
		rl->head = s->next;
	if (s->next >= 0)
		rl->slot[s->next].prev = s->prev;
	else
		rl->tail = s->prev;
}

static void lru_push_front(struct rate_limit *rl, int32_t i)
{
	struct rl_slot *s = &rl->slot[i];
	s->prev = -1;
	s->next = rl->head;
	if (rl->head >= 0)
		rl->slot[rl->head].prev = i;
	rl->head = i;
	if (rl->tail < 0)
		rl->tail = i;
}

static void chain_unlink(struct rate_limit *rl, int32_t i)
{
	int32_t *p = &rl->bucket[rl->slot[i].key & (rl->nbuckets - 1)];
	while (*p >= 0 && *p != i)
		p = &rl->slot[*p].chain;
	if (*p == i)
		*p = rl->slot[i].chain;
}

/* The slot of key: found, a free one, or the least recently used one. */
static int32_t slot_for(struct rate_limit *rl, uint64_t key, int64_t now_ms)
{
	uint32_t b = (uint32_t)(key & (rl->nbuckets - 1));
	for (int32_t i = rl->bucket[b]; i >= 0; i = rl->slot[i].chain)
		if (rl->slot[i].key == key) {
			lru_unlink(rl, i);
			lru_push_front(rl, i);
			return i;
		}
	int32_t i;
	if (rl->used < rl->nslots) {
		i = (int32_t)rl->used++;
	} else {
		i = rl->tail;
		lru_unlink(rl, i);
		chain_unlink(rl, i);
	}
	struct rl_slot *s = &rl->slot[i];
	s->key = key;
	s->t_ms = now_ms;
	s->milli = rl->burst_milli;   /* a new source starts with a full bucket */
	s->chain = rl->bucket[b];
	rl->bucket[b] = i;
	lru_push_front(rl, i);
	return i;
}

bool rate_limit_allow(struct rate_limit *rl, const char *source, int64_t now_ms)
{
	struct rl_slot *s = &rl->slot[slot_for(rl, key_of(source), now_ms)];
	if (now_ms > s->t_ms) {
		int64_t dt = now_ms - s->t_ms;
		/* dt beyond what refills a bucket cannot add more: no overflow */
		if (dt > rl->burst_milli)
			dt = rl->burst_milli;
		s->milli += dt * rl->rate_milli_per_s / 1000;
		if (s->milli > rl->burst_milli)
			s->milli = rl->burst_milli;
	}
	s->t_ms = now_ms;
	if (s->milli < 1000)
		return false;
	s->milli -= 1000;
	return true;
}

unsigned rate_limit_sources(const struct rate_limit *rl)
{
	return rl->used;
}
