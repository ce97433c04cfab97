/*
 * HTTP: iPXE scripts, images with Range, cloud-init NoCloud, discovery and
 * the JSON API, all on one evhttp server; this file routes and serves the
 * boot content, http_api.c answers the API.  Everything here runs after
 * the privilege drop and treats its input as hostile: bodies are capped,
 * paths decoded once and checked, peer strings sanitised before they are
 * logged or stored.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/serve_int.h"
#include "stacks/base.h"

/* ---- replies -------------------------------------------------------- */

static const char *method_name(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_POST: return "POST";
	default: return "OTHER";
	}
}

/* The peer's address as text and (IPv4) host-order number. */
void http_peer_of(struct evhttp_request *req, char out[64], uint32_t *ip)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	str_sanitize(out, 64, addr ? addr : "?", addr ? strlen(addr) : 1);
	*ip = 0;
	if (addr)
		boot_parse_ip(addr, ip);
}

static void log_req(struct evhttp_request *req, int code, const char *path, size_t bytes)
{
	char peer[64], p[200];
	uint32_t ip;
	http_peer_of(req, peer, &ip);
	str_sanitize(p, sizeof(p), path, strlen(path));
	for (char *c = p; *c; c++)
		if (*c == ' ' || *c == '"')
			*c = '?';
	slog(code >= 500 ? LOG_WARN : LOG_INFO, "http", "method=%s path=%s status=%d "
	     "client=%s bytes=%zu", method_name(req), p, code, peer, bytes);
}

static void reply_buf(struct evhttp_request *req, int code, const char *ctype,
		      const char *data, size_t len, const char *path)
{
	struct evbuffer *b = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char n[24];
		snprintf(n, sizeof(n), "%zu", len);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", n);
	} else if (len) {
		evbuffer_add(b, data, len);
	}
	log_req(req, code, path, len);
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
}

/* Send j (stolen) as the JSON body. */
void http_reply_json(struct evhttp_request *req, int code, json_t *j, const char *path)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = strlen(s);
	s = xrealloc(s, n + 2);
	s[n++] = '\n';
	s[n] = '\0';
	reply_buf(req, code, "application/json", s, n, path);
	free(s);
	json_decref(j);
}

void http_reply_error(struct evhttp_request *req, int code, const char *msg,
			const char *path)
{
	http_reply_json(req, code, json_pack("{s:s}", "error", msg), path);
}

/* Constant-time check of "Authorization: Bearer TOKEN". */
bool http_authorized(struct serve *s, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
					   "Authorization");
	if (!s->token || !h || strncmp(h, "Bearer ", 7))
		return false;
	h += 7;
	size_t a = strlen(h), b = strlen(s->token);
	unsigned char diff = a != b;
	for (size_t i = 0; i < b; i++)
		diff |= (unsigned char)(h[i < a ? i : 0] ^ s->token[i]);
	return diff == 0;
}

/* The request body as a NUL-terminated string; NULL when over the cap. */
char *http_body_of(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	if (n > SERVE_MAX_BODY)
		return NULL;
	char *s = xmalloc(n + 1);
	evbuffer_copyout(in, s, n);
	s[n] = '\0';
	*len = n;
	return s;
}

/*
 * Reply with the regular file open on fd (size bytes; fd is consumed):
 * HEAD, Range (206, 416) and streaming without copying through us.
 */
static void serve_file(struct evhttp_request *req, const char *path, int fd, uint64_t size)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	uint64_t first = 0, last = 0;
	char tmp[96];
	int r = http_range_parse(evhttp_find_header(evhttp_request_get_input_headers(req),
						    "Range"), size, &first, &last);
	evhttp_add_header(oh, "Accept-Ranges", "bytes");
	if (r == -ERANGE) {
		close(fd);
		snprintf(tmp, sizeof(tmp), "bytes */%llu", (unsigned long long)size);
		evhttp_add_header(oh, "Content-Range", tmp);
		http_reply_error(req, 416, "range not satisfiable", path);
		return;
	}
	int code = 200;
	if (r == 0) {
		code = 206;
		snprintf(tmp, sizeof(tmp), "bytes %llu-%llu/%llu", (unsigned long long)first,
			 (unsigned long long)last, (unsigned long long)size);
		evhttp_add_header(oh, "Content-Range", tmp);
	} else {
		first = 0;
		last = size ? size - 1 : 0;
	}
	uint64_t len = size ? last - first + 1 : 0;
	evhttp_add_header(oh, "Content-Type", "application/octet-stream");
	snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)len);
	evhttp_add_header(oh, "Content-Length", tmp);
	struct evbuffer *b = evbuffer_new();
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD || len == 0) {
		close(fd);
	} else if (evbuffer_add_file(b, fd, (ev_off_t)first, (ev_off_t)len) < 0) {
		/* evbuffer_add_file closed fd */
		evbuffer_free(b);
		evhttp_remove_header(oh, "Content-Length");
		evhttp_remove_header(oh, "Content-Range");
		evhttp_remove_header(oh, "Content-Type");
		http_reply_error(req, 500, "cannot stream the file", path);
		return;
	}
	log_req(req, code, path, (size_t)len);
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
}

/* ---- GET /boot/MAC.ipxe, GET/HEAD /boot/LOADER --------------------------- */

/*
 * A boot loader for UEFI HTTP boot (the DHCP engine hands such clients
 * http://SERVER/boot/snponly.efi): the file of that name in tftp_root,
 * opened under the same rules as TFTP (no "..", no absolute path, no
 * symlink out of the root).
 */
static void handle_loader(struct serve *s, struct evhttp_request *req, const char *path,
			  const char *name)
{
	uint64_t size;
	int fd = s->tftp_rootfd < 0 ? -ENOENT : tftp_open_beneath(s->tftp_rootfd, name, &size);
	if (fd < 0) {
		http_reply_error(req, 404, "no such boot file", path);
		return;
	}
	serve_file(req, path, fd, size);
}


/*
 * Whether an unauthenticated request from peer that would store
 * something may go on; if not, a 429 is sent.  Bounded per source
 * (docs/serve.md "Bounds").
 */
bool http_rate_ok(struct serve *s, struct evhttp_request *req, const char *peer,
		    const char *path)
{
	if (rate_limit_allow(s->rl, peer, now_ms()))
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	http_reply_error(req, 429, "too many requests from this address", path);
	return false;
}

static void handle_script(struct serve *s, struct evhttp_request *req, const char *path,
			  const char *arg)
{
	char mac[18], peer[64];
	uint32_t ip;
	enum ipxe_kind kind;
	enum sstate state = SSTATE_SEEN;
	struct kerr e = { 0 };
	struct buf out;

	if (!str_ends(arg, ".ipxe")) {
		handle_loader(s, req, path, arg);
		return;
	}
	if (strlen(arg) != 17 + 5) {
		http_reply_error(req, 404, "expected /boot/MAC.ipxe", path);
		return;
	}
	char raw[18];
	memcpy(raw, arg, 17);
	raw[17] = '\0';
	if (!spec_mac_normalize(raw, mac)) {
		http_reply_error(req, 404, "not a MAC address", path);
		return;
	}
	http_peer_of(req, peer, &ip);
	const struct node *n = serve_config_node(s->cfg, mac);
	/* a node's script is never refused; an unknown MAC adds a row */
	if (!n && !http_rate_ok(s, req, peer, path))
		return;
	serve_state_get(s->st, mac, &state);
	buf_init(&out, 0);
	if (serve_ipxe_for(s->cfg, mac, ip, state == SSTATE_PROVISIONED, &out, &kind,
			   &e) < 0) {
		http_reply_error(req, 500, e.msg, path);
		buf_release(&out);
		return;
	}
	static const char *const kinds[] = { "install", "discovery", "unknown", "local" };
	/* the row and its event in one commit */
	bool batch = serve_state_begin(s->st) == 0;
	serve_state_fetch(s->st, mac, n ? n->name : NULL, peer, "script");
	serve_state_event(s->st, mac, "script", kinds[kind]);
	if (batch)
		serve_state_end(s->st, true);
	slog(LOG_INFO, "script", "mac=%s node=%s kind=%s client=%s", mac, n ? n->name : "-",
	     kinds[kind], peer);
	reply_buf(req, 200, "text/plain; charset=utf-8", out.s, out.len, path);
	buf_release(&out);
}

/* ---- GET/HEAD /images/NAME/kernel|initrd ------------------------------- */

static void handle_image(struct serve *s, struct evhttp_request *req, const char *path,
			 const char *arg)
{
	char name[80];
	const char *slash = strchr(arg, '/');

	if (!slash || (size_t)(slash - arg) >= sizeof(name)) {
		http_reply_error(req, 404, "no such image", path);
		return;
	}
	memcpy(name, arg, (size_t)(slash - arg));
	name[slash - arg] = '\0';
	/* the privileged side opened the image files (we are chrooted); each
	 * reply streams from its own duplicate, by offset, never the shared
	 * file position */
	const struct serve_image *im = NULL;
	for (size_t i = 0; i < s->images.n && !im; i++)
		if (!strcmp(s->images.v[i].name, name))
			im = &s->images.v[i];
	bool initrd = !strcmp(slash + 1, "initrd");
	if (!im || (!initrd && strcmp(slash + 1, "kernel")) || im->fd[initrd] < 0) {
		http_reply_error(req, 404, "no such image file", path);
		return;
	}
	int fd = fcntl(im->fd[initrd], F_DUPFD_CLOEXEC, 3);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		http_reply_error(req, 500, "image file cannot be read", path);
		return;
	}
	serve_file(req, path, fd, (uint64_t)st.st_size);
}

/* ---- GET /cloud-init/MAC/{meta-data,user-data,vendor-data} -------------- */

/* A string as a YAML (JSON) scalar, appended to b. */
static void yaml_str(struct buf *b, const char *s)
{
	json_t *j = json_string(s);
	char *t = json_dumps(j, JSON_ENCODE_ANY);
	buf_adds(b, t ? t : "\"\"");
	free(t);
	json_decref(j);
}

static void handle_cloud_init(struct serve *s, struct evhttp_request *req,
			      const char *path, const char *arg)
{
	char raw[18], mac[18], id[13];
	const struct node *n = NULL;
	struct buf b;

	if (strlen(arg) < 18 || arg[17] != '/') {
		http_reply_error(req, 404, "expected /cloud-init/MAC/FILE", path);
		return;
	}
	memcpy(raw, arg, 17);
	raw[17] = '\0';
	if (!spec_mac_normalize(raw, mac) || !(n = serve_config_node(s->cfg, mac))) {
		http_reply_error(req, 404, "no node with this MAC", path);
		return;
	}
	for (int i = 0, j = 0; i < 17; i++)
		if (mac[i] != ':')
			id[j++] = mac[i];
	id[12] = '\0';
	const char *file = arg + 18;
	const struct stack_base *base = stack_base_conf(s->cfg->cluster);
	const struct admin_user *a = base ? &base->admin : NULL;
	buf_init(&b, 0);
	if (!strcmp(file, "meta-data")) {
		buf_printf(&b, "instance-id: kiln-%s-%s\nlocal-hostname: %s\n", n->name, id,
			   n->name);
	} else if (!strcmp(file, "user-data")) {
		buf_printf(&b, "#cloud-config\nhostname: %s\n", n->name);
		if (a && a->name) {
			buf_adds(&b, "users:\n  - name: ");
			yaml_str(&b, a->name);
			buf_adds(&b, "\n    shell: ");
			yaml_str(&b, a->shell ? a->shell : "/bin/bash");
			buf_adds(&b, "\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n");
			if (a->keys.n)
				buf_adds(&b, "    ssh_authorized_keys:\n");
			for (size_t i = 0; i < a->keys.n; i++) {
				buf_adds(&b, "      - ");
				yaml_str(&b, a->keys.v[i]);
				buf_addch(&b, '\n');
			}
		}
		buf_printf(&b, "phone_home:\n  url: \"%s/api/nodes/%s/provisioned\"\n"
			   "  post: [instance_id, hostname]\n  tries: 10\n",
			   s->cfg->http_base, n->name);
	} else if (!strcmp(file, "vendor-data")) {
		buf_adds(&b, "#cloud-config\n{}\n");
	} else {
		buf_release(&b);
		http_reply_error(req, 404, "expected meta-data, user-data or vendor-data", path);
		return;
	}
	serve_state_fetch(s->st, mac, n->name, NULL, file);
	reply_buf(req, 200, "text/plain; charset=utf-8", b.s, b.len, path);
	buf_release(&b);
}

/* ---- the router ------------------------------------------------------- */

static void on_request(struct evhttp_request *req, void *arg)
{
	struct serve *s = arg;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *raw = u ? evhttp_uri_get_path(u) : NULL;
	size_t plen = 0;
	char *path = raw ? evhttp_uridecode(raw, 0, &plen) : NULL;
	const char *a;
	bool get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD, post = m == EVHTTP_REQ_POST;

	/* decoded once; a %00 inside, ".." or a huge path is refused */
	if (!path || strlen(path) != plen || plen > 512 || strstr(path, "..")) {
		http_reply_error(req, 400, "bad path", "?");
		free(path);
		return;
	}
	if (get && str_starts(path, "/boot/"))
		handle_script(s, req, path, path + 6);
	else if (get && str_starts(path, "/images/"))
		handle_image(s, req, path, path + 8);
	else if (get && str_starts(path, "/cloud-init/"))
		handle_cloud_init(s, req, path, path + 12);
	else if (post && !strcmp(path, "/api/discover"))
		http_api_discover(s, req, path);
	else if (post && str_starts(path, "/api/nodes/"))
		http_api_node_post(s, req, path, path + 11);
	else if (post && (!strcmp(path, "/api/reload") || !strcmp(path, "/api/enroll"))) {
		if (!http_authorized(s, req))
			http_reply_error(req, 401, s->token ? "missing or wrong bearer token"
				    : "no boot.api_token_file configured", path);
		else if (path[5] == 'r')
			http_api_reload(s, req, path);
		else
			http_api_enroll(s, req, path);
	} else if (get && str_starts(path, "/api/") && (a = path + 5))
		http_api_get(s, req, path, a);
	else
		http_reply_error(req, 404, "not found", path);
	free(path);
}

int serve_http_start(struct serve *s, struct kerr *e)
{
	const struct boot_conf *b = &s->cfg->cluster->boot;
	s->http = evhttp_new(s->base);
	if (!s->http)
		return kerr_set(e, -ENOMEM, "http: cannot create the server");
	evhttp_set_max_body_size(s->http, SERVE_MAX_BODY);
	evhttp_set_max_headers_size(s->http, 16 << 10);
	evhttp_set_timeout(s->http, 60);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(s->http, on_request, s);
	if (!s->rl)
		s->rl = rate_limit_new(SERVE_RL_SLOTS, SERVE_RL_PER_S, SERVE_RL_BURST);
	size_t n = b->listen.n ? b->listen.n : 1;
	for (size_t i = 0; i < n; i++) {
		const char *addr = b->listen.n ? b->listen.v[i] : "0.0.0.0";
		if (!evhttp_bind_socket_with_handle(s->http, addr, (ev_uint16_t)b->http_port))
			return kerr_set(e, -EADDRINUSE, "http: cannot bind %s:%d", addr,
					b->http_port);
	}
	return 0;
}
