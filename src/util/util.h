/*
 * util — small, dependency-free helpers shared by every part of kiln,
 * including the static kiln-agent.
 *
 * Contract:
 *  - Out of memory is fatal: x*alloc() print one line and abort (git's
 *    policy).  Buffers fed by peers are capped by their owners, so a peer
 *    cannot drive kiln out of memory.
 *  - Functions that act return 0 or a negative errno; predicates return bool.
 *  - Nothing here prints except log_*() and the x*alloc() failure path.
 *  - Every fd opened here is O_CLOEXEC.
 */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- memory ---------------------------------------------------------- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Grow *p (an array of *alloc elements of size elem) to hold at least need. */
void *xgrow(void *p, size_t need, size_t *alloc, size_t elem);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF(1, 2);

/* ---- errors ---------------------------------------------------------- */
/*
 * A place for library code to leave a one-line, human message for the
 * command layer to print.  kerr_set() returns code (a negative errno) so
 * callers can write `return kerr_set(e, -EINVAL, "...")`.  e may be NULL.
 */
struct kerr {
	int code;
	char msg[1024];
};
int kerr_set(struct kerr *e, int code, const char *fmt, ...) PRINTF(3, 4);
/* Prefix the message already in e with "what: " (keeps the code). */
int kerr_prefix(struct kerr *e, const char *fmt, ...) PRINTF(2, 3);
void kerr_clear(struct kerr *e);

/* ---- growable byte buffer -------------------------------------------- */
/*
 * Always NUL-terminated after len bytes (so .s is a C string when the
 * content has no NULs).  cap is a hard limit (0 = unlimited); appends that
 * would exceed it return -E2BIG and leave the buffer unchanged.
 */
struct buf {
	char *s;
	size_t len, alloc, cap;
};
#define BUF_INIT { 0 }
void buf_init(struct buf *b, size_t cap);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
int buf_add(struct buf *b, const void *data, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) PRINTF(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Room for extra more bytes at once, as far as cap allows (a size hint). */
void buf_reserve(struct buf *b, size_t extra);
/* Hand the string to the caller (who frees it); b is reset. Never NULL. */
char *buf_detach(struct buf *b, size_t *len);

/* ---- strings --------------------------------------------------------- */
bool str_starts(const char *s, const char *prefix);
bool str_ends(const char *s, const char *suffix);
/* s is 1..max characters of [a-z0-9_] (an export's name). */
bool str_is_ident(const char *s, size_t max);
/* Trim ASCII whitespace in place; returns s. */
char *str_trim(char *s);
/*
 * Range-checked number parsing (strtonum-style): the whole string must be
 * a number in [min, max].  Returns 0, -EINVAL (not a number) or -ERANGE.
 */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Copy s into dst (size n), replacing non-printable bytes by '?'. */
void str_sanitize(char *dst, size_t n, const char *s, size_t len);
/*
 * Append s (len bytes, NULs allowed) to b as text that is safe to print on
 * a terminal: nothing in it is interpreted (kiln prints what nodes send
 * through this; docs/agent-protocol.md "Showing what nodes send").  Printable ASCII and
 * valid UTF-8 are copied; the rest is shown: \a \b \t \n \v \f \r and \e
 * for those controls, \xHH for other C0 bytes, DEL and each byte that is
 * not valid UTF-8 (overlong, surrogate, cut short, past U+10FFFF), \uHHHH
 * for C1 controls (U+0080..U+009F) and the bidi overrides and isolates
 * (U+202A..U+202E, U+2066..U+2069).  TTY_LINES keeps '\n' and '\t' as
 * they are (multi-line text such as diffs); without it one field stays on
 * one line.  A backslash is copied: the result is for reading, not for
 * decoding.  -E2BIG (b unchanged) when b's cap would be exceeded.
 */
#define TTY_LINES 1u
int buf_add_tty(struct buf *b, const char *s, size_t len, unsigned flags);
/* The same for a C string (NULL = ""), as a new string the caller frees. */
char *str_tty(const char *s, unsigned flags);
/* Shell-quote s with single quotes, appended to b. */
int buf_add_shquote(struct buf *b, const char *s);

/* NULL-terminated string vectors. */
struct strv {
	char **v;
	size_t n, alloc;
};
#define STRV_INIT { 0 }
void strv_push(struct strv *sv, const char *s);          /* copies s */
void strv_pushf(struct strv *sv, const char *fmt, ...) PRINTF(2, 3);
void strv_take(struct strv *sv, char *s);                /* takes s */
bool strv_contains(const struct strv *sv, const char *s);
/* Push a copy of s unless sv holds it; whether it was pushed. */
bool strv_push_unique(struct strv *sv, const char *s);
void strv_sort(struct strv *sv);                         /* byte order */
/* qsort's comparator for an array of C strings (char * or const char *). */
int str_ptr_cmp(const void *a, const void *b);
void strv_release(struct strv *sv);

/* ---- files ----------------------------------------------------------- */
/* Read a whole file (at most cap bytes, 0 = unlimited) into b. */
int file_read(const char *path, struct buf *b, size_t cap);
/*
 * Write a file atomically: create a new "path.kiln-tmp-RANDOM" (O_EXCL,
 * O_NOFOLLOW: nothing planted at a guessable name is followed), write,
 * fsync, set mode and owner (uid/gid -1 = leave), rename over path, fsync
 * the directory.  A crash leaves either the old or the new content.  The
 * temporary file is flock()ed until the rename; after a write, the
 * temporaries of path that no one holds (left by a writer killed before
 * its rename) are removed, so a crash leaves no litter past the next write.
 */
int file_write_atomic(const char *path, const void *data, size_t len,
		      mode_t mode, uid_t uid, gid_t gid);
/* mkdir -p with the given mode for the directories it creates. */
int mkdir_p(const char *path, mode_t mode);
/* Remove a tree (like rm -rf); does not cross mount points. */
int rm_rf(const char *path);
bool path_exists(const char *path);
/* Join a root prefix and an absolute path: ("/tmp/r", "/etc/x") -> "/tmp/r/etc/x". */
char *path_join(const char *root, const char *path);

/* ---- IPv4 prefixes (host byte order) -------------------------------- */
/* The netmask of a prefix length: 24 -> 0xffffff00; <= 0 -> 0, >= 32 -> all ones. */
uint32_t ipv4_prefix_mask(int prefix);
/* Whether ip lies in subnet/prefix (host bits of subnet are ignored). */
bool ipv4_in_subnet(uint32_t ip, uint32_t subnet, int prefix);
/* Whether a/pa and b/pb share any address. */
bool ipv4_subnets_overlap(uint32_t a, int pa, uint32_t b, int pb);
/* "10.0.0.0/24" into net (host order) and prefix (0..32); host bits allowed. */
bool ipv4_cidr_parse(const char *s, uint32_t *net, int *prefix);

/* ---- child processes ------------------------------------------------- */
/*
 * Run argv[0] with argv, feeding in (may be NULL) on stdin and collecting
 * stdout/stderr into out/err (each may be NULL to discard; capped by the
 * buffers' caps, extra output is discarded).  argv[0] without a '/' is
 * looked up in $PATH before fork: a missing program is -ENOENT (only
 * something not executable found: -EACCES) and nothing is started.
 * The child runs in its own process group, with every signal at SIG_DFL
 * and none blocked, whatever the caller ignores, handles or blocks.
 * timeout_ms <= 0 means no limit; on timeout the child's process group is
 * killed and -ETIMEDOUT returned.  On success *status holds the wait
 * status.  Returns once the child exits (output is drained 200 ms more),
 * even if a daemon it left behind still holds the pipes.  Exec failures
 * are reported as -errno via a CLOEXEC pipe.
 */
struct run_opts {
	const char *in;
	size_t in_len;
	struct buf *out, *err;
	int timeout_ms;
	const char *cwd;
	char *const *env;   /* NULL = inherit */
};
int run_argv(char *const argv[], const struct run_opts *o, int *status);
/* Convenience: run, and succeed only if it exited 0; err text into e. */
int run_ok(char *const argv[], const struct run_opts *o, struct kerr *e);

/* ---- time and logging ------------------------------------------------ */
int64_t now_ms(void);     /* CLOCK_MONOTONIC */
void sleep_ms(int ms);    /* the whole time, across signals */
int64_t wall_ms(void);    /* CLOCK_REALTIME */

/*
 * Logging to stderr, one write per line, for levels up to log_threshold.
 * LOG_FORMAT_CLI (the default) writes "kiln: LEVEL: [EVENT: ]text";
 * LOG_FORMAT_KV, which a daemon sets once at startup before it logs, writes
 * "ts=... level=... event=EVENT" then msg="text" (log_msg: event=log) or
 * the pairs of log_event().  Bytes outside printable ASCII in the text are
 * written as \xHH in both formats, and in msg="..." '"' and '\' are
 * backslash-escaped: text may carry what a peer sent.  log_event()'s
 * pairs are the caller's to keep well formed (no space or '"' inside a
 * value); only their bytes are escaped.
 */
enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_CLI, LOG_FORMAT_KV };
extern enum log_level log_threshold;
void log_set_format(enum log_format f);
void log_msg(enum log_level lvl, const char *fmt, ...) PRINTF(2, 3);
/* Free text from one subsystem ("dhcp", "tftp"): event=EVENT msg="text". */
void log_note(enum log_level lvl, const char *event, const char *fmt, ...) PRINTF(3, 4);
/* A structured event: fmt gives "key=value key=value" (may be NULL or ""). */
void log_event(enum log_level lvl, const char *event, const char *fmt, ...) PRINTF(3, 4);
void log_vevent(enum log_level lvl, const char *event, const char *fmt, va_list ap);
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
