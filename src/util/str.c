/* String helpers: prefixes, trimming, checked numbers, quoting, escaping, vectors. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool str_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_ends(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

bool str_is_ident(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!n || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

char *str_trim(char *s)
{
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	size_t i = 0;
	while (isspace((unsigned char)s[i]))
		i++;
	if (i)
		memmove(s, s + i, n - i + 1);
	return s;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;

	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || end == s)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

void str_sanitize(char *dst, size_t n, const char *s, size_t len)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < len && i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

/*
 * The code point of the UTF-8 sequence at p (n bytes left) in *cp and its
 * length, or 0 when p does not start a valid, shortest-form sequence of a
 * Unicode scalar value (no surrogates, nothing past U+10FFFF).
 */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	uint32_t v, min;
	size_t len;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2, v = p[0] & 0x1f, min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3, v = p[0] & 0x0f, min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4, v = p[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Code points a terminal acts on or that reorder what it shows. */
static bool tty_special(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) ||          /* C1 controls (CSI, OSC, ...) */
	       (cp >= 0x202a && cp <= 0x202e) ||      /* bidi embeddings, overrides */
	       (cp >= 0x2066 && cp <= 0x2069);        /* bidi isolates */
}

int buf_add_tty(struct buf *b, const char *s, size_t len, unsigned flags)
{
	static const char named[] = "\\a\\b\\t\\n\\v\\f\\r";   /* 0x07..0x0d */
	const unsigned char *p = (const unsigned char *)s;
	struct buf out;
	size_t i = 0;
	int r;

	/* Built aside, so that a cap leaves b unchanged as buf_add does. */
	buf_init(&out, 0);
	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t n;

		if (c == '\n' || c == '\t') {
			if (flags & TTY_LINES)
				buf_addch(&out, (char)c);
			else
				buf_add(&out, &named[(c - 0x07) * 2], 2);
			i++;
		} else if (c >= 0x07 && c <= 0x0d) {
			buf_add(&out, &named[(c - 0x07) * 2], 2);
			i++;
		} else if (c == 0x1b) {
			buf_adds(&out, "\\e");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(&out, "\\x%02x", c);
			i++;
		} else if (c < 0x80) {
			buf_addch(&out, (char)c);
			i++;
		} else if (!(n = utf8_decode(p + i, len - i, &cp))) {
			buf_printf(&out, "\\x%02x", c);
			i++;
		} else if (tty_special(cp)) {
			buf_printf(&out, "\\u%04x", (unsigned)cp);
			i += n;
		} else {
			buf_add(&out, p + i, n);
			i += n;
		}
	}
	r = buf_add(b, out.s ? out.s : "", out.len);
	buf_release(&out);
	return r;
}

char *str_tty(const char *s, unsigned flags)
{
	struct buf b;

	buf_init(&b, 0);
	if (s)
		buf_add_tty(&b, s, strlen(s), flags);
	return buf_detach(&b, NULL);
}

int buf_add_shquote(struct buf *b, const char *s)
{
	int r = buf_addch(b, '\'');
	for (; r == 0 && *s; s++)
		r = *s == '\'' ? buf_adds(b, "'\\''") : buf_addch(b, *s);
	return r ? r : buf_addch(b, '\'');
}

void strv_take(struct strv *sv, char *s)
{
	sv->v = xgrow(sv->v, sv->n + 2, &sv->alloc, sizeof(*sv->v));
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void strv_push(struct strv *sv, const char *s)
{
	strv_take(sv, xstrdup(s));
}

void strv_pushf(struct strv *sv, const char *fmt, ...)
{
	va_list ap;
	struct buf b;

	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	strv_take(sv, buf_detach(&b, NULL));
}

bool strv_contains(const struct strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

bool strv_push_unique(struct strv *sv, const char *s)
{
	if (strv_contains(sv, s))
		return false;
	strv_push(sv, s);
	return true;
}

int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void strv_sort(struct strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof(*sv->v), str_ptr_cmp);
}

void strv_release(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->alloc = 0;
}
