/* Minimal leveled logging to stderr. */
#include "util.h"

#include <stdio.h>
#include <time.h>

enum log_level log_threshold = LOG_WARN;

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (lvl > log_threshold)
		return;
	/* One write per line (stderr is unbuffered): no interleaving, one syscall. */
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "kiln: %s: ", names[lvl]);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_addch(&b, '\n');
	fwrite(b.s, 1, b.len, stderr);
	buf_release(&b);
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
