/* One-line error messages passed from library code to the command layer. */
#include "util.h"

#include <stdio.h>
#include <string.h>

int kerr_set(struct kerr *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return code;
}

int kerr_prefix(struct kerr *e, const char *fmt, ...)
{
	char pre[512], old[sizeof(e->msg)];
	va_list ap;

	if (!e)
		return 0;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s: %s", pre, old);
	size_t n = b.len < sizeof(e->msg) - 1 ? b.len : sizeof(e->msg) - 1;
	memcpy(e->msg, b.s, n);
	e->msg[n] = '\0';
	buf_release(&b);
	return e->code;
}

void kerr_clear(struct kerr *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}
