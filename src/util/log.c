/*
 * Leveled logging to stderr, in one of two formats chosen by the process:
 * the CLI's "kiln: LEVEL: text" lines, or, in a daemon, one key=value line
 * per event ("ts=... level=... event=... key=value ...") so that every
 * line the daemon writes, from whichever subsystem, parses the same way.
 * Text that may carry a peer's bytes is escaped here, once, for both.
 */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

enum log_level log_threshold = LOG_WARN;
static enum log_format log_format = LOG_FORMAT_CLI;

void log_set_format(enum log_format f)
{
	log_format = f;
}

/*
 * Append s[0..n) to b with every byte outside printable ASCII as \xHH (a
 * terminal sees no control sequence, a line stays one line); in_quotes
 * also escapes '"' and '\' so the text can sit inside msg="...".
 */
static void add_escaped(struct buf *b, const char *s, size_t n, bool in_quotes)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f)
			buf_printf(b, "\\x%02x", c);
		else if (in_quotes && (c == '"' || c == '\\'))
			buf_printf(b, "\\%c", c);
		else
			buf_addch(b, (char)c);
	}
}

/* "ts=2026-11-23T03:45:31.303Z level=info event=EVENT" */
static void add_kv_head(struct buf *b, enum log_level lvl, const char *event)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	struct timespec now;
	struct tm tm;
	char ts[32];

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	buf_printf(b, "ts=%s.%03ldZ level=%s event=%s", ts, now.tv_nsec / 1000000,
		   names[lvl], event);
}

/*
 * One line for (event, text): as_pairs says text is "key=value ..." (kept
 * as it is but for the byte escapes), else it is free text (msg="...").
 * One write per line: stderr is unbuffered, and lines from a busy daemon
 * must neither interleave nor cost a syscall per fragment.
 */
static void log_line(enum log_level lvl, const char *event, bool as_pairs,
		     const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	struct buf text, line;

	buf_init(&text, 0);
	if (fmt)
		buf_vprintf(&text, fmt, ap);
	buf_init(&line, 0);
	if (log_format == LOG_FORMAT_KV) {
		add_kv_head(&line, lvl, event ? event : "log");
		if (as_pairs && text.len) {
			buf_addch(&line, ' ');
			add_escaped(&line, text.s, text.len, false);
		} else if (!as_pairs) {
			buf_adds(&line, " msg=\"");
			add_escaped(&line, text.s, text.len, true);
			buf_addch(&line, '"');
		}
	} else {
		buf_printf(&line, "kiln: %s: ", names[lvl]);
		if (event)
			buf_printf(&line, text.len ? "%s: " : "%s", event);
		add_escaped(&line, text.s, text.len, false);
	}
	buf_addch(&line, '\n');
	fwrite(line.s, 1, line.len, stderr);
	buf_release(&line);
	buf_release(&text);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (lvl > log_threshold)
		return;
	va_start(ap, fmt);
	log_line(lvl, NULL, false, fmt, ap);
	va_end(ap);
}

void log_note(enum log_level lvl, const char *event, const char *fmt, ...)
{
	va_list ap;

	if (lvl > log_threshold)
		return;
	va_start(ap, fmt);
	log_line(lvl, event, false, fmt, ap);
	va_end(ap);
}

void log_vevent(enum log_level lvl, const char *event, const char *fmt, va_list ap)
{
	if (lvl > log_threshold)
		return;
	log_line(lvl, event, true, fmt && *fmt ? fmt : NULL, ap);
}

void log_event(enum log_level lvl, const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vevent(lvl, event, fmt, ap);
	va_end(ap);
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
