/* HTTP Range (RFC 9110 14.2): one byte range, or the whole body. */
#include <errno.h>
#include <string.h>

#include "serve/serve.h"

/* Digits s[0..n) as a number; false for none, non-digits or overflow. */
static bool num(const char *s, size_t n, uint64_t *v)
{
	char tmp[24];
	if (n == 0 || n >= sizeof(tmp))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return parse_u64(tmp, 0, UINT64_MAX, v) == 0;
}

int http_range_parse(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last)
{
	uint64_t a, b;

	if (!hdr)
		return 1;
	while (*hdr == ' ' || *hdr == '\t')
		hdr++;
	if (strncmp(hdr, "bytes=", 6))
		return 1;
	const char *s = hdr + 6;
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	if (memchr(s, ',', len))
		return 1;            /* several ranges: we send the whole body */
	const char *dash = memchr(s, '-', len);
	if (!dash)
		return 1;
	size_t la = (size_t)(dash - s), lb = len - la - 1;
	if (la == 0) {           /* suffix: the last b bytes */
		if (!num(dash + 1, lb, &b))
			return 1;
		if (b == 0 || size == 0)
			return -ERANGE;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 0;
	}
	if (!num(s, la, &a))
		return 1;
	if (lb == 0) {
		b = UINT64_MAX;
	} else if (!num(dash + 1, lb, &b) || b < a) {
		return 1;            /* invalid: ignored, as the RFC says */
	}
	if (a >= size)
		return -ERANGE;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return 0;
}
