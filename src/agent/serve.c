/*
 * The agent protocol loop (docs/agent-protocol.md): read a request line,
 * dispatch on "op", stream replies.  Replies are flushed line by line so kiln
 * sees results as soon as each resource is done.
 */
#include "agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "resources/resources.h"
#include "facts/facts.h"

struct emit_ctx {
	FILE *out;
	int err;     /* first write error */
};

/* Write one compact JSON object and a newline, then flush; steals obj. */
static int reply(FILE *out, json_t *obj)
{
	int r = 0;

	errno = 0;
	if (!obj)
		return -ENOMEM;
	if (json_dumpf(obj, out, JSON_COMPACT | JSON_ENSURE_ASCII) < 0 ||
	    fputc('\n', out) == EOF || fflush(out) == EOF)
		r = errno ? -errno : -EIO;
	json_decref(obj);
	return r;
}

static int reply_error(FILE *out, const char *fmt, ...) PRINTF(2, 3);
static int reply_error(FILE *out, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	json_t *o = json_pack("{s:s,s:s}", "op", "error", "message", b.s);
	buf_release(&b);
	return reply(out, o);
}

int agent_facts(const char *root, json_t **out, struct kerr *e)
{
	return facts_collect(root, out, e);
}

/* A JSON string for s; bytes that are not valid UTF-8 become '?' (diffs of
 * Latin-1 files must still reach kiln). */
static json_t *string_lossy(const char *s)
{
	json_t *j = json_string(s);

	if (j)
		return j;
	char *copy = xstrdup(s);
	for (char *c = copy; *c; c++)
		if ((unsigned char)*c >= 0x80)
			*c = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* The result line of docs/agent-protocol.md. */
static json_t *result_json(size_t index, const char *id, const struct res_result *r)
{
	json_t *o = json_pack("{s:s,s:I,s:s,s:s}", "op", "result", "index",
			      (json_int_t)index, "id", id, "status",
			      res_status_name(r->status));
	if (r->diff)
		json_object_set_new(o, "diff", string_lossy(r->diff));
	if (r->message)
		json_object_set_new(o, "message", string_lossy(r->message));
	if (json_object_size(r->exports))
		json_object_set(o, "exports", r->exports);
	return o;
}

/* Send one result; a dead output stops the list (nobody hears the rest). */
static int emit_result(void *arg, size_t index, const char *id,
		       const struct res_result *r)
{
	struct emit_ctx *ec = arg;
	int q = reply(ec->out, result_json(index, id, r));

	if (q < 0 && !ec->err)
		ec->err = q;
	return q < 0;
}

static int done_line(FILE *out, const size_t counts[3])
{
	return reply(out, json_pack("{s:s,s:I,s:I,s:I}", "op", "done",
				    "ok", (json_int_t)counts[RES_OK],
				    "changed", (json_int_t)counts[RES_CHANGED],
				    "failed", (json_int_t)counts[RES_FAILED]));
}

/* Run a resource list and stream results; returns a write error if any. */
static int run_list(const json_t *list, const char *root, bool check_only,
		    FILE *out, size_t counts[3])
{
	struct emit_ctx ec = { .out = out };
	struct res_ctx ctx;

	res_ctx_init(&ctx, root, check_only);
	resource_run_list(&ctx, list, emit_result, &ec, counts);
	res_ctx_release(&ctx);
	if (ec.err)
		return ec.err;
	return done_line(out, counts);
}

/* Handle one request line.  Returns 1 to stop (exit), 0 to go on, -errno
 * when writing failed. */
static int handle(const char *line, size_t len, const char *root, FILE *out)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	int r = 0;

	if (!req)
		return reply_error(out, "bad request: %s (column %d)", jerr.text,
				   jerr.column);
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!json_is_object(req) || !op) {
		r = reply_error(out, "bad request: expected an object with \"op\"");
	} else if (!strcmp(op, "exit")) {
		r = 1;
	} else if (!strcmp(op, "facts")) {
		struct kerr e = { 0 };
		json_t *facts = NULL;
		if (agent_facts(root, &facts, &e) < 0)
			r = reply_error(out, "facts: %s", e.msg);
		else
			r = reply(out, json_pack("{s:s,s:o}", "op", "facts", "facts", facts));
	} else if (!strcmp(op, "check") || !strcmp(op, "apply")) {
		json_t *list = json_object_get(req, "resources");
		size_t counts[3];
		if (!json_is_array(list))
			r = reply_error(out, "%s: \"resources\" must be an array", op);
		else
			r = run_list(list, root, !strcmp(op, "check"), out, counts);
	} else {
		char safe[64];
		str_sanitize(safe, sizeof(safe), op, strlen(op));
		r = reply_error(out, "unknown op '%s'", safe);
	}
	json_decref(req);
	return r;
}

/*
 * Read one line into b (without the newline).  Returns 1 for a line, 0 at
 * end of input, -E2BIG for an over-long line (consumed and dropped), -errno
 * on read errors.
 */
static int read_line(FILE *in, struct buf *b)
{
	char chunk[65536];
	bool toobig = false, any = false;

	buf_reset(b);
	while (fgets(chunk, sizeof(chunk), in)) {
		size_t n = strlen(chunk);
		bool nl = n && chunk[n - 1] == '\n';
		any = true;
		if (!toobig && buf_add(b, chunk, n - nl) < 0)
			toobig = true;
		if (nl)
			return toobig ? -E2BIG : 1;
	}
	if (ferror(in))
		return errno ? -errno : -EIO;
	if (!any)
		return 0;
	return toobig ? -E2BIG : 1;   /* last line without newline */
}

int agent_serve(FILE *in, FILE *out, const char *root)
{
	struct buf line;
	int r;

	buf_init(&line, AGENT_LINE_MAX);
	r = reply(out, json_pack("{s:s,s:s,s:i}", "op", "hello", "version",
				 KILN_VERSION, "protocol", AGENT_PROTOCOL));
	while (r == 0) {
		int q = read_line(in, &line);
		if (q == 0)
			break;
		if (q == -E2BIG)
			r = reply_error(out, "request line longer than %u bytes",
					AGENT_LINE_MAX);
		else if (q < 0)
			r = q;
		else if (line.len == 0)
			continue;
		else
			r = handle(line.s, line.len, root, out);
	}
	buf_release(&line);
	return r == 1 ? 0 : r;
}

int agent_run_file(const char *path, const char *root, bool check_only, FILE *out,
		   size_t *failed, struct kerr *e)
{
	json_error_t jerr;
	size_t counts[3] = { 0 };
	json_t *list = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	int r;

	if (!list)
		return kerr_set(e, -EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column,
				jerr.text);
	if (!json_is_array(list)) {
		json_decref(list);
		return kerr_set(e, -EINVAL, "%s: expected a JSON array of resources", path);
	}
	r = run_list(list, root, check_only, out, counts);
	if (r < 0)
		kerr_set(e, r, "write: %s", strerror(-r));
	if (failed)
		*failed = counts[RES_FAILED];
	json_decref(list);
	return r;
}
