/* Growable, capped byte buffers (see struct buf in util.h). */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char empty[1];

void buf_init(struct buf *b, size_t cap)
{
	b->s = empty;
	b->len = b->alloc = 0;
	b->cap = cap;
}

void buf_release(struct buf *b)
{
	if (b->alloc)
		free(b->s);
	b->s = empty;
	b->len = b->alloc = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->alloc)
		b->s[0] = '\0';
}

static int reserve(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		return -E2BIG;
	size_t need = b->len + extra + 1;
	if (b->cap && b->len + extra > b->cap)
		return -E2BIG;
	if (!b->alloc || !b->s)
		b->s = NULL;
	size_t alloc = b->alloc;
	b->s = xgrow(b->s, need, &alloc, 1);
	if (!b->alloc)
		b->s[0] = '\0';
	b->alloc = alloc;
	return 0;
}

void buf_reserve(struct buf *b, size_t extra)
{
	size_t room = b->len < b->cap ? b->cap - b->len : 0;

	reserve(b, b->cap && extra > room ? room : extra);
}

int buf_add(struct buf *b, const void *data, size_t n)
{
	int r = reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->s + b->len, data, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

int buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addch(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	char small[256];

	va_copy(cp, ap);
	int n = vsnprintf(small, sizeof(small), fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return buf_add(b, small, (size_t)n);
	int r = reserve(b, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *s = b->alloc ? b->s : xstrdup("");

	if (len)
		*len = b->len;
	b->s = empty;
	b->len = b->alloc = 0;
	return s;
}
