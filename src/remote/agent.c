/*
 * remote: installing and talking to kiln-agent over one exec channel
 * (docs/agent-protocol.md).
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

#define AGENT_MAX (256u * 1024 * 1024)       /* local agent binary */
/*
 * What one node may make kiln hold (docs/agent-protocol.md "Limits"): a
 * reply line, and all reply bytes of one session (one node, one run) —
 * so 50 nodes at once cannot hold more than 50 x REPLY_MAX_BYTES.
 */
#define LINE_MAX_BYTES (16u * 1024 * 1024)
#define REPLY_MAX_BYTES (64u * 1024 * 1024)
#define STDERR_CAP (16 * 1024)
#define EXIT_MISSING 97
#define EXIT_BADSUM 98
#define CLOSE_WAIT_MS 5000

struct agent_session {
	struct remote_conn *c;
	ssh_channel ch;
	struct buf rx, err;
	size_t scan;              /* rx[0..scan) holds no '\n' */
	size_t consumed;          /* reply bytes taken out of rx this session */
	bool uploaded;
	char *version;
	/* per request */
	int (*on_msg)(const json_t *msg, void *arg);
	void *arg;
	int abort_rc;
	struct kerr *e;
	struct pump *pump;        /* the request's pump: its deadline moves */
};

/* The node-side directory, as a shell word. */
static void add_dir_word(struct buf *b, const struct remote *r)
{
	if (r->agent_dir)
		buf_add_shquote(b, r->agent_dir);
	else
		buf_adds(b, "\"$HOME/.cache/kiln\"");
}

/* Last line of the agent's stderr, sanitised, for messages. */
static const char *err_tail(struct agent_session *s, char *dst, size_t n)
{
	size_t end = s->err.len, start;

	while (end && (s->err.s[end - 1] == '\n' || s->err.s[end - 1] == '\r'))
		end--;
	start = end;
	while (start && s->err.s[start - 1] != '\n')
		start--;
	str_sanitize(dst, n, s->err.s ? s->err.s + start : "", end - start);
	return dst;
}

/*
 * The first '\n' in rx, or NULL.  Resumes where the last search stopped,
 * so a long line arriving in many reads is scanned once, not once per read.
 */
static char *next_nl(struct agent_session *s)
{
	char *nl;

	if (s->scan >= s->rx.len)
		return NULL;
	nl = memchr(s->rx.s + s->scan, '\n', s->rx.len - s->scan);
	s->scan = nl ? (size_t)(nl - s->rx.s) : s->rx.len;
	return nl;
}

/* Has the node sent more than REPLY_MAX_BYTES in this session? */
static bool over_total(const struct agent_session *s)
{
	return s->consumed + s->rx.len > REPLY_MAX_BYTES;
}

static int have_line(void *arg)
{
	if (over_total(arg))
		return -EMSGSIZE;
	return next_nl(arg) ? 1 : 0;
}

/* Drop the first n bytes of rx (through a '\n'; the rest is unscanned). */
static void rx_consume(struct agent_session *s, size_t n)
{
	struct buf *b = &s->rx;

	memmove(b->s, b->s + n, b->len - n);
	b->len -= n;
	s->consumed += n;
	b->s[b->len] = '\0';
	s->scan = 0;
}

/* Drop the channel without the exit handshake (the agent misbehaved). */
static void chan_drop(struct agent_session *s)
{
	if (!s->ch)
		return;
	ssh_channel_close(s->ch);
	ssh_channel_free(s->ch);
	s->ch = NULL;
}

/* Exec the bootstrap and read the hello line.  1 = binary missing (exit 97). */
static int agent_start(struct agent_session *s, const char *hash16, struct kerr *e)
{
	struct remote_conn *c = s->c;
	struct buf cmd = BUF_INIT;
	struct pump p = { .out = &s->rx, .err = &s->err, .out_strict = true,
			  .check = have_line, .arg = s,
			  .deadline_ms = now_ms() + conn_command_timeout_ms(c) };
	json_t *hello = NULL;
	json_error_t jerr;
	const char *op = NULL, *ver = NULL;
	char *nl, tail[256];
	int rc, proto = 0;

	buf_init(&cmd, 0);
	buf_adds(&cmd, "d=");
	add_dir_word(&cmd, c->r);
	buf_printf(&cmd, "; f=\"$d/kiln-agent-%s\"; if [ -x \"$f\" ]; then exec \"$f\" serve; fi;"
		   " exit %d", hash16, EXIT_MISSING);
	buf_reset(&s->rx);
	buf_reset(&s->err);
	s->scan = 0;
	rc = chan_exec(c, cmd.s, &s->ch, e);
	if (rc < 0)
		goto out;
	p.ch = s->ch;
	rc = chan_pump(c, &p);
	if (rc == 1) {
		int st = ssh_channel_get_exit_status(s->ch);

		chan_drop(s);
		if (st == EXIT_MISSING && !s->rx.len) {
			rc = 1;
			goto out;
		}
		rc = kerr_set(e, -EPROTO, "agent: exited before saying hello (status %d): %s",
			      st, err_tail(s, tail, sizeof(tail)));
		goto out;
	}
	if (rc == -ETIMEDOUT) {
		rc = kerr_set(e, rc, "agent: no hello, timed out after %lld s",
			      (long long)(conn_command_timeout_ms(c) / 1000));
		goto out;
	}
	if (rc == -E2BIG || rc == -EMSGSIZE) {
		rc = kerr_set(e, -EPROTO, "agent: hello line too long");
		goto out;
	}
	if (rc < 0) {
		rc = conn_broken(c, e, "agent start");
		goto out;
	}
	nl = next_nl(s);
	hello = json_loadb(s->rx.s, (size_t)(nl - s->rx.s), 0, &jerr);
	if (!hello || json_unpack(hello, "{s:s, s:s, s:i}", "op", &op, "version", &ver,
				  "protocol", &proto) != 0 || strcmp(op, "hello")) {
		rc = kerr_set(e, -EPROTO, "agent: bad hello line");
		goto out;
	}
	if (proto != 1) {
		rc = kerr_set(e, -EPROTO, "agent: speaks protocol %d, kiln speaks 1", proto);
		goto out;
	}
	s->version = xstrdup(ver);
	rx_consume(s, (size_t)(nl - s->rx.s) + 1);
	rc = 0;
out:
	if (rc < 0)
		chan_drop(s);
	json_decref(hello);
	buf_release(&cmd);
	return rc;
}

/*
 * Copy the binary to a temporary name beside its final one, verify its
 * sha256 on the node, flush it to disk, then rename it into place and
 * flush the directory: after a crash the cached name holds either nothing
 * or the whole binary.  A mismatch removes the temporary file, so a
 * corrupted upload is never executed.  replace: first remove a cached
 * copy that failed to start.
 */
static int agent_upload(struct remote_conn *c, const char *hash16, const char *hash,
			const struct buf *bin, bool replace, struct kerr *e)
{
	struct buf cmd = BUF_INIT, err = BUF_INIT;
	char tail[256];
	int rc, st;

	buf_init(&cmd, 0);
	buf_init(&err, STDERR_CAP);
	buf_adds(&cmd, "set -e; umask 077; d=");
	add_dir_word(&cmd, c->r);
	buf_printf(&cmd, "; f=\"$d/kiln-agent-%s\";", hash16);
	if (replace)
		buf_adds(&cmd, " rm -f \"$f\";");
	/* sync FILE needs coreutils >= 8.24; elsewhere a full sync does it. */
	buf_printf(&cmd,
		   " mkdir -p \"$d\"; t=$(mktemp \"$d/.kiln-agent-%s.XXXXXX\");"
		   " trap 'rm -f \"$t\"' EXIT; cat >\"$t\"; s=$(sha256sum \"$t\"); s=${s%%%% *};"
		   " if [ \"$s\" != %s ]; then echo \"checksum mismatch: got $s\" >&2; exit %d; fi;"
		   " chmod 0755 \"$t\"; sync \"$t\" 2>/dev/null || sync;"
		   " mv -f \"$t\" \"$f\"; trap - EXIT; sync \"$d\" 2>/dev/null || sync",
		   hash16, hash, EXIT_BADSUM);
	rc = remote_exec(c, cmd.s, bin->s, bin->len, NULL, &err, &st, e);
	if (rc < 0)
		goto out;
	str_sanitize(tail, sizeof(tail), err.s ? err.s : "", err.len);
	str_trim(tail);
	if (st == EXIT_BADSUM)
		rc = kerr_set(e, -EIO, "agent: upload corrupted in transit (%s); not installed",
			      tail);
	else if (st != 0)
		rc = kerr_set(e, -EIO, "agent: upload failed (status %d): %s", st, tail);
out:
	buf_release(&cmd);
	buf_release(&err);
	return rc;
}

/* Read path into b and put its sha256 (hex) in hash. */
static int agent_read(const char *path, struct buf *b, char hash[65], struct kerr *e)
{
	unsigned char sum[crypto_hash_sha256_BYTES];
	int rc;

	if (sodium_init() < 0)
		return kerr_set(e, -EIO, "agent: cannot initialise libsodium");
	rc = file_read(path, b, AGENT_MAX);
	if (rc < 0)
		return kerr_set(e, rc, "agent: cannot read %s: %s", path, strerror(-rc));
	crypto_hash_sha256(sum, (const unsigned char *)b->s, b->len);
	sodium_bin2hex(hash, 65, sum, sizeof(sum));
	return 0;
}

/*
 * The local agent binary and its sha256 (hex).  The first path asked for
 * is read and hashed once per run, however many nodes ask (under
 * agent_lock), and never replaced, so *bin stays valid until remote_free.
 * Another path (tests only) is read into own each time.
 */
static int agent_binary(struct remote *r, const char *path, const struct buf **bin,
			struct buf *own, char hash[65], struct kerr *e)
{
	int rc = 0;

	pthread_mutex_lock(&r->agent_lock);
	if (!r->agent_path) {
		rc = agent_read(path, &r->agent_bin, r->agent_hash, e);
		if (rc == 0)
			r->agent_path = xstrdup(path);
		else
			buf_release(&r->agent_bin);
	}
	if (r->agent_path && !strcmp(r->agent_path, path)) {
		*bin = &r->agent_bin;
		memcpy(hash, r->agent_hash, 65);
	} else if (rc == 0) {
		rc = agent_read(path, own, hash, e);
		*bin = own;
	}
	pthread_mutex_unlock(&r->agent_lock);
	return rc;
}

/*
 * Try the cached agent; upload once if it is missing, then try again.  A
 * cached copy that runs but never says a valid hello (truncated by a
 * crash, say) is replaced by one upload instead of failing every run.
 */
int agent_open(struct remote_conn *c, const char *agent_path,
	       struct agent_session **out, struct kerr *e)
{
	struct agent_session *s;
	const struct buf *bin = NULL;
	struct buf own = BUF_INIT;
	char hash[65], hash16[17];
	bool replace = false;
	int rc;

	*out = NULL;
	rc = agent_binary(c->r, agent_path, &bin, &own, hash, e);
	if (rc < 0) {
		buf_release(&own);
		return rc;
	}
	memcpy(hash16, hash, 16);
	hash16[16] = '\0';

	s = xcalloc(1, sizeof(*s));
	s->c = c;
	buf_init(&s->rx, LINE_MAX_BYTES + 1);
	buf_init(&s->err, STDERR_CAP);
	rc = agent_start(s, hash16, e);
	if (rc == -EPROTO) {
		/* The cached copy is broken: its name is its content's hash, so
		 * a good copy always says a valid hello. */
		replace = true;
		rc = 1;
	}
	if (rc == 1) {
		rc = agent_upload(c, hash16, hash, bin, replace, e);
		if (rc < 0)
			goto fail;
		s->uploaded = true;
		rc = agent_start(s, hash16, e);
		if (rc == 1)
			rc = kerr_set(e, -EIO, "agent: still missing after upload");
	}
	if (rc < 0)
		goto fail;
	buf_release(&own);
	*out = s;
	return 0;
fail:
	buf_release(&own);
	agent_close(s);
	return rc;
}

/*
 * Hand every complete line in rx to on_msg; 1 after the terminal reply.
 * Each result line on_msg accepts moves the deadline forward: that is
 * progress, so command_timeout limits silence, not the whole request.
 * Other lines do not, so chatter without results still times out.
 */
static int process_lines(void *arg)
{
	struct agent_session *s = arg;
	char *nl;

	/* Counted as bytes arrive, before any is parsed or kept. */
	if (over_total(s))
		return -EMSGSIZE;
	while ((nl = next_nl(s))) {
		size_t n = (size_t)(nl - s->rx.s);
		json_error_t jerr;
		json_t *msg = json_loadb(s->rx.s, n, 0, &jerr);
		const char *op;
		bool terminal;
		int rc;

		rx_consume(s, n + 1);
		if (!msg || !json_is_object(msg)) {
			json_decref(msg);
			return kerr_set(s->e, -EPROTO, "agent: invalid reply line: %s",
					jerr.text);
		}
		op = json_string_value(json_object_get(msg, "op"));
		terminal = op && (!strcmp(op, "facts") || !strcmp(op, "done") ||
				  !strcmp(op, "error"));
		rc = s->on_msg ? s->on_msg(msg, s->arg) : 0;
		if (rc == 0 && s->pump && op && !strcmp(op, "result"))
			s->pump->deadline_ms = now_ms() + conn_command_timeout_ms(s->c);
		json_decref(msg);
		if (rc != 0) {
			s->abort_rc = rc;
			return -ECANCELED;
		}
		if (terminal)
			return 1;
	}
	return 0;
}

/* One request line out, reply lines in until the terminal one, all in one pump. */
int agent_request(struct agent_session *s, const json_t *req,
		  int (*on_msg)(const json_t *msg, void *arg), void *arg,
		  struct kerr *e)
{
	struct pump p = { .ch = s->ch, .out = &s->rx, .err = &s->err, .out_strict = true,
			  .check = process_lines, .arg = s };
	char *line, tail[256];
	size_t len;
	int rc;

	if (!s->ch)
		return kerr_set(e, -EPIPE, "agent: session is closed");
	line = json_dumps(req, JSON_COMPACT);
	if (!line)
		return kerr_set(e, -EINVAL, "agent: request cannot be encoded");
	len = strlen(line);
	line = xrealloc(line, len + 2);
	line[len++] = '\n';
	line[len] = '\0';

	s->on_msg = on_msg;
	s->arg = arg;
	s->abort_rc = 0;
	s->e = e;
	s->pump = &p;
	p.in = line;
	p.in_len = len;
	p.deadline_ms = now_ms() + conn_command_timeout_ms(s->c);
	/* Lines left over from before are answers too (none in practice). */
	rc = s->rx.len ? process_lines(s) : 0;
	if (rc == 0)
		rc = chan_pump(s->c, &p);
	else if (rc == 1)
		rc = 0;
	if (rc == 0 && p.in_off < p.in_len)
		rc = kerr_set(e, -EPROTO, "agent: replied before reading the request");
	free(line);
	s->pump = NULL;

	if (rc == -ECANCELED && s->abort_rc) {
		if (s->abort_rc < 0)
			kerr_set(e, s->abort_rc, "agent: reply rejected by the caller: %s",
				 strerror(-s->abort_rc));
		else
			kerr_set(e, s->abort_rc, "agent: reply rejected by the caller (%d)",
				 s->abort_rc);
		return s->abort_rc;
	}
	if (rc == 1)
		rc = kerr_set(e, -EPROTO, "agent: exited during the request (status %d): %s",
			      ssh_channel_get_exit_status(s->ch), err_tail(s, tail, sizeof(tail)));
	else if (rc == -ETIMEDOUT)
		kerr_set(e, rc, "agent: request timed out after %lld s without a result",
			 (long long)(conn_command_timeout_ms(s->c) / 1000));
	else if (rc == -E2BIG)
		rc = kerr_set(e, -EPROTO, "agent: reply line longer than %u MiB", LINE_MAX_BYTES >> 20);
	else if (rc == -EMSGSIZE)
		kerr_set(e, rc, "agent: replies exceed %u MiB in this run", REPLY_MAX_BYTES >> 20);
	else if (rc == -EIO)
		conn_broken(s->c, e, "agent request");
	return rc;
}

void agent_close(struct agent_session *s)
{
	static const char bye[] = "{\"op\":\"exit\"}\n";

	if (!s)
		return;
	if (s->ch) {
		struct pump p = { .ch = s->ch, .in = bye, .in_len = sizeof(bye) - 1,
				  .send_eof = true, .deadline_ms = now_ms() + CLOSE_WAIT_MS };

		if (ssh_channel_is_open(s->ch) && !ssh_channel_is_eof(s->ch))
			chan_pump(s->c, &p);
		ssh_channel_close(s->ch);
		ssh_channel_free(s->ch);
	}
	buf_release(&s->rx);
	buf_release(&s->err);
	free(s->version);
	free(s);
}

bool agent_was_uploaded(const struct agent_session *s)
{
	return s->uploaded;
}

const char *agent_version(const struct agent_session *s)
{
	return s->version;
}
