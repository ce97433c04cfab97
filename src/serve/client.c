/* A small blocking HTTP client for the daemon's API (kiln boot enroll → reload). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

struct call {
	int status;          /* 0 = no answer */
	struct buf body;
	struct event_base *base;
};

static void on_done(struct evhttp_request *req, void *arg)
{
	struct call *c = arg;
	/* answered (or failed): stop, rather than wait for the server to
	 * close a kept-alive connection */
	event_base_loopexit(c->base, NULL);
	if (!req)
		return;
	c->status = evhttp_request_get_response_code(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	if (n > 1 << 20)
		n = 1 << 20;
	char *tmp = xmalloc(n + 1);
	evbuffer_copyout(in, tmp, n);
	buf_add(&c->body, tmp, n);
	free(tmp);
}

int serve_api_call(const struct cluster *cl, const char *method, const char *path,
		   const char *body, int *status, json_t **resp, struct kerr *e)
{
	const struct boot_conf *b = &cl->boot;
	struct event_base *base = event_base_new();
	struct evhttp_connection *conn = NULL;
	struct call c = { .base = base };
	char *token = NULL, *auth = NULL;
	int r = 0;

	*status = 0;
	if (resp)
		*resp = NULL;
	buf_init(&c.body, 1 << 20);
	if (!base)
		return kerr_set(e, -ENOMEM, "cannot create an event loop");
	if (b->api_token_file && (r = serve_read_token(b->api_token_file, &token, e)) < 0)
		goto out;
	const char *host = b->listen.n ? b->listen.v[0] : b->server;
	conn = evhttp_connection_base_new(base, NULL, host, (ev_uint16_t)b->http_port);
	if (!conn) {
		r = kerr_set(e, -ENOMEM, "cannot create a connection");
		goto out;
	}
	evhttp_connection_set_timeout(conn, 10);
	evhttp_connection_set_retries(conn, 0);
	struct evhttp_request *req = evhttp_request_new(on_done, &c);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Content-Type", "application/json");
	if (token) {
		auth = xasprintf("Bearer %s", token);
		evhttp_add_header(h, "Authorization", auth);
	}
	if (body)
		evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	if (evhttp_make_request(conn, req, !strcmp(method, "POST") ? EVHTTP_REQ_POST
				: EVHTTP_REQ_GET, path) < 0) {
		r = kerr_set(e, -EIO, "cannot send the request");
		goto out;
	}
	event_base_dispatch(base);
	if (!c.status) {
		r = kerr_set(e, -ECONNREFUSED, "no answer from http://%s:%d (is kiln serve "
			     "running?)", host, b->http_port);
		goto out;
	}
	*status = c.status;
	if (resp && c.body.len)
		*resp = json_loadb(c.body.s, c.body.len, 0, NULL);
out:
	if (conn)
		evhttp_connection_free(conn);
	event_base_free(base);
	buf_release(&c.body);
	free(token);
	free(auth);
	return r;
}
