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
#define LINE_MAX_BYTES (64u * 1024 * 1024)    /* protocol: one line */
#define STDERR_CAP (16 * 1024)
#define EXIT_MISSING 97
#define EXIT_BADSUM 98
#define CLOSE_WAIT_MS 5000

struct agent_session {
	struct remote_conn *c;
	ssh_channel ch;
	struct buf rx, err;
	bool uploaded;
	char *version;
	/* per request */
	int (*on_msg)(const json_t *msg, void *arg);
	void *arg;
	int abort_rc;
	struct kerr *e;
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

static int have_line(void *arg)
{
	struct agent_session *s = arg;

	return memchr(s->rx.s, '\n', s->rx.len) ? 1 : 0;
}

/* Drop the first n bytes of b. */
static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->s, b->s + n, b->len - n);
	b->len -= n;
	b->s[b->len] = '\0';
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
	rc = chan_exec(c, cmd.s, &s->ch, e);
	if (rc < 0)
		goto out;
	p.ch = s->ch;
	rc = chan_pump(c, &p);
	if (rc == 1) {
		int st = ssh_channel_get_exit_status(s->ch);

		ssh_channel_close(s->ch);
		ssh_channel_free(s->ch);
		s->ch = NULL;
		if (st == EXIT_MISSING && !s->rx.len) {
			rc = 1;
			goto out;
		}
		rc = kerr_set(e, -EPROTO, "agent: exited before saying hello (status %d): %s",
			      st, err_tail(s, tail, sizeof(tail)));
		goto out;
	}
	if (rc == -ETIMEDOUT) {
		rc = kerr_set(e, rc, "agent: no hello after %lld s",
			      (long long)(conn_command_timeout_ms(c) / 1000));
		goto out;
	}
	if (rc == -E2BIG) {
		rc = kerr_set(e, -EPROTO, "agent: hello line too long");
		goto out;
	}
	if (rc < 0) {
		rc = conn_broken(c, e, "agent start");
		goto out;
	}
	nl = memchr(s->rx.s, '\n', s->rx.len);
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
	buf_consume(&s->rx, (size_t)(nl - s->rx.s) + 1);
	rc = 0;
out:
	json_decref(hello);
	buf_release(&cmd);
	return rc;
}

/*
 * Copy the binary to a temporary name beside its final one, verify its
 * sha256 on the node, then rename it into place.  A mismatch removes the
 * temporary file, so a corrupted upload is never executed.
 */
static int agent_upload(struct remote_conn *c, const char *hash16, const char *hash,
			const struct buf *bin, struct kerr *e)
{
	struct buf cmd = BUF_INIT, err = BUF_INIT;
	char tail[256];
	int rc, st;

	buf_init(&cmd, 0);
	buf_init(&err, STDERR_CAP);
	buf_adds(&cmd, "set -e; umask 077; d=");
	add_dir_word(&cmd, c->r);
	buf_printf(&cmd,
		   "; mkdir -p \"$d\"; t=$(mktemp \"$d/.kiln-agent-%s.XXXXXX\");"
		   " trap 'rm -f \"$t\"' EXIT; cat >\"$t\"; s=$(sha256sum \"$t\"); s=${s%%%% *};"
		   " if [ \"$s\" != %s ]; then echo \"checksum mismatch: got $s\" >&2; exit %d; fi;"
		   " chmod 0755 \"$t\"; mv -f \"$t\" \"$d/kiln-agent-%s\"; trap - EXIT",
		   hash16, hash, EXIT_BADSUM, hash16);
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

/* Try the cached agent; upload once if it is missing, then try again. */
int agent_open(struct remote_conn *c, const char *agent_path,
	       struct agent_session **out, struct kerr *e)
{
	struct agent_session *s;
	struct buf bin = BUF_INIT;
	unsigned char sum[crypto_hash_sha256_BYTES];
	char hash[2 * crypto_hash_sha256_BYTES + 1], hash16[17];
	int rc;

	*out = NULL;
	if (sodium_init() < 0)
		return kerr_set(e, -EIO, "agent: cannot initialise libsodium");
	rc = file_read(agent_path, &bin, AGENT_MAX);
	if (rc < 0)
		return kerr_set(e, rc, "agent: cannot read %s: %s", agent_path, strerror(-rc));
	crypto_hash_sha256(sum, (const unsigned char *)bin.s, bin.len);
	sodium_bin2hex(hash, sizeof(hash), sum, sizeof(sum));
	memcpy(hash16, hash, 16);
	hash16[16] = '\0';

	s = xcalloc(1, sizeof(*s));
	s->c = c;
	buf_init(&s->rx, LINE_MAX_BYTES + 1);
	buf_init(&s->err, STDERR_CAP);
	rc = agent_start(s, hash16, e);
	if (rc == 1) {
		rc = agent_upload(c, hash16, hash, &bin, e);
		if (rc < 0)
			goto fail;
		s->uploaded = true;
		rc = agent_start(s, hash16, e);
		if (rc == 1)
			rc = kerr_set(e, -EIO, "agent: still missing after upload");
	}
	if (rc < 0)
		goto fail;
	buf_release(&bin);
	*out = s;
	return 0;
fail:
	buf_release(&bin);
	agent_close(s);
	return rc;
}

/* Hand every complete line in rx to on_msg; 1 after the terminal reply. */
static int process_lines(void *arg)
{
	struct agent_session *s = arg;
	char *nl;

	while ((nl = memchr(s->rx.s, '\n', s->rx.len))) {
		size_t n = (size_t)(nl - s->rx.s);
		json_error_t jerr;
		json_t *msg = json_loadb(s->rx.s, n, 0, &jerr);
		const char *op;
		bool terminal;
		int rc;

		buf_consume(&s->rx, n + 1);
		if (!msg || !json_is_object(msg)) {
			json_decref(msg);
			return kerr_set(s->e, -EPROTO, "agent: invalid reply line: %s",
					jerr.text);
		}
		op = json_string_value(json_object_get(msg, "op"));
		terminal = op && (!strcmp(op, "facts") || !strcmp(op, "done") ||
				  !strcmp(op, "error"));
		rc = s->on_msg ? s->on_msg(msg, s->arg) : 0;
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

	if (rc == -ECANCELED && s->abort_rc)
		return s->abort_rc;
	if (rc == 1)
		rc = kerr_set(e, -EPROTO, "agent: exited during the request (status %d): %s",
			      ssh_channel_get_exit_status(s->ch), err_tail(s, tail, sizeof(tail)));
	else if (rc == -ETIMEDOUT)
		kerr_set(e, rc, "agent: request timed out after %lld s",
			 (long long)(conn_command_timeout_ms(s->c) / 1000));
	else if (rc == -E2BIG)
		kerr_set(e, -EPROTO, "agent: reply line longer than %u bytes", LINE_MAX_BYTES);
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
