/*
 * HTTP: iPXE scripts, images with Range, cloud-init NoCloud, discovery and
 * the JSON API, all on one evhttp server.  Everything here runs after the
 * privilege drop and treats its input as hostile: bodies are capped,
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
static void peer_of(struct evhttp_request *req, char out[64], uint32_t *ip)
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
	peer_of(req, peer, &ip);
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
static void reply_json(struct evhttp_request *req, int code, json_t *j, const char *path)
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

static void reply_error(struct evhttp_request *req, int code, const char *msg,
			const char *path)
{
	reply_json(req, code, json_pack("{s:s}", "error", msg), path);
}

/* Constant-time check of "Authorization: Bearer TOKEN". */
static bool authorized(struct serve *s, struct evhttp_request *req)
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
static char *body_of(struct evhttp_request *req, size_t *len)
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
		reply_error(req, 416, "range not satisfiable", path);
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
		reply_error(req, 500, "cannot stream the file", path);
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
		reply_error(req, 404, "no such boot file", path);
		return;
	}
	serve_file(req, path, fd, size);
}


/*
 * Whether an unauthenticated request from peer that would store
 * something may go on; if not, a 429 is sent.  Bounded per source
 * (docs/serve.md "Bounds").
 */
static bool rate_ok(struct serve *s, struct evhttp_request *req, const char *peer,
		    const char *path)
{
	if (rate_limit_allow(s->rl, peer, now_ms()))
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	reply_error(req, 429, "too many requests from this address", path);
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
		reply_error(req, 404, "expected /boot/MAC.ipxe", path);
		return;
	}
	char raw[18];
	memcpy(raw, arg, 17);
	raw[17] = '\0';
	if (!spec_mac_normalize(raw, mac)) {
		reply_error(req, 404, "not a MAC address", path);
		return;
	}
	peer_of(req, peer, &ip);
	const struct node *n = serve_config_node(s->cfg, mac);
	/* a node's script is never refused; an unknown MAC adds a row */
	if (!n && !rate_ok(s, req, peer, path))
		return;
	serve_state_get(s->st, mac, &state);
	buf_init(&out, 0);
	if (serve_ipxe_for(s->cfg, mac, ip, state == SSTATE_PROVISIONED, &out, &kind,
			   &e) < 0) {
		reply_error(req, 500, e.msg, path);
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
		reply_error(req, 404, "no such image", path);
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
		reply_error(req, 404, "no such image file", path);
		return;
	}
	int fd = fcntl(im->fd[initrd], F_DUPFD_CLOEXEC, 3);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		reply_error(req, 500, "image file cannot be read", path);
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
		reply_error(req, 404, "expected /cloud-init/MAC/FILE", path);
		return;
	}
	memcpy(raw, arg, 17);
	raw[17] = '\0';
	if (!spec_mac_normalize(raw, mac) || !(n = serve_config_node(s->cfg, mac))) {
		reply_error(req, 404, "no node with this MAC", path);
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
		reply_error(req, 404, "expected meta-data, user-data or vendor-data", path);
		return;
	}
	serve_state_fetch(s->st, mac, n->name, NULL, file);
	reply_buf(req, 200, "text/plain; charset=utf-8", b.s, b.len, path);
	buf_release(&b);
}

/* ---- POST /api/discover ----------------------------------------------- */

#define FACTS_MAX_DEPTH 16
#define FACTS_MAX_VALUES 20000
#define FACTS_MAX_STR 1024

/*
 * A copy of untrusted JSON with every key and string sanitised (printable,
 * at most FACTS_MAX_STR bytes), bounded depth and value count.  NULL when
 * it is too deep or too big.
 */
static json_t *clean_json(const json_t *v, int depth, size_t *budget)
{
	char tmp[FACTS_MAX_STR + 1];
	if (depth > FACTS_MAX_DEPTH || *budget == 0)
		return NULL;
	(*budget)--;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		json_t *o = json_object();
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x) {
			json_t *c = clean_json(x, depth + 1, budget);
			if (!c) {
				json_decref(o);
				return NULL;
			}
			str_sanitize(tmp, 129, k, strlen(k));
			json_object_set_new(o, tmp, c);
		}
		return o;
	}
	case JSON_ARRAY: {
		json_t *a = json_array();
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			json_t *c = clean_json(x, depth + 1, budget);
			if (!c) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, c);
		}
		return a;
	}
	case JSON_STRING: {
		size_t n = json_string_length(v);
		str_sanitize(tmp, sizeof(tmp), json_string_value(v), n);
		return json_string(tmp);
	}
	default:
		return json_deep_copy(v);
	}
}

/* The address kiln's DHCP leases (or offers) to mac now, into ip; false if none. */
static bool leased_ip(struct serve *s, const char *mac, char ip[16])
{
	uint8_t m[6];
	struct lease l;
	int64_t now = wall_ms() / 1000;
	if (!s->leases || boot_parse_mac(mac, m) < 0 ||
	    lease_db_find_mac(s->leases, m, now, &l) < 0 ||
	    !(l.state == LEASE_BOUND || l.state == LEASE_OFFERED) || l.expires <= now)
		return false;
	boot_fmt_ip(l.ip, ip);
	return true;
}

/*
 * An unknown machine's facts.  Unauthenticated, so: rate-limited per
 * source, never for a node's MAC (409, facts untouched), a discovered
 * machine's facts replaced only from the address it was discovered from
 * or the one kiln leases to its MAC (409), and a full table refuses
 * (503) rather than evict recent machines.
 */
static void handle_discover(struct serve *s, struct evhttp_request *req, const char *path)
{
	size_t len = 0, budget = FACTS_MAX_VALUES;
	char peer[64], mac[18], lip[16];
	uint32_t ip;
	json_error_t je;
	json_t *j = NULL, *facts = NULL;

	peer_of(req, peer, &ip);
	if (!rate_ok(s, req, peer, path))
		return;
	char *body = body_of(req, &len);
	if (!body) {
		reply_error(req, 413, "body too large", path);
		return;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	free(body);
	const char *m = json_string_value(json_object_get(j, "mac"));
	const json_t *f = json_object_get(j, "facts");
	if (!json_is_object(j) || !m || !spec_mac_normalize(m, mac) ||
	    (f && !json_is_object(f))) {
		reply_error(req, 400, "expected {\"mac\": \"aa:bb:cc:dd:ee:ff\", \"facts\": {...}}",
			    path);
		goto out;
	}
	/*
	 * A node's own install posts its facts too: accepted only from the
	 * node's address in the spec or the one kiln's DHCP leases to its
	 * MAC, so a machine elsewhere cannot overwrite a node's facts.
	 */
	const struct node *n = serve_config_node(s->cfg, mac);
	bool leased = leased_ip(s, mac, lip);
	if (n && !(n->address && !strcmp(n->address, peer)) &&
	    !(leased && !strcmp(lip, peer))) {
		serve_state_event(s->st, mac, "discover-refused", peer);
		slog(LOG_WARN, "discover", "mac=%s client=%s node=%s result=refused", mac, peer,
		     n->name);
		reply_error(req, 409, "this MAC is a node's: only the node, from its own "
			    "address, may post its facts", path);
		goto out;
	}
	if (f && !(facts = clean_json(f, 0, &budget))) {
		reply_error(req, 413, "facts too deep or too many values", path);
		goto out;
	}
	if (!facts)
		facts = json_object();
	char *text = json_dumps(facts, JSON_COMPACT | JSON_SORT_KEYS);
	bool batch = serve_state_begin(s->st) == 0;   /* row and event: one commit */
	int r = n ? serve_state_node_facts(s->st, mac, n->name, peer, text)
		: serve_state_discovered(s->st, mac, peer, text, leased ? lip : NULL);
	free(text);
	/* a full table is logged, not recorded: a flood would only churn events */
	if (r == -EEXIST || r == -EPERM)
		serve_state_event(s->st, mac, "discover-refused", peer);
	else if (r == 0)
		serve_state_event(s->st, mac, "discover", peer);
	if (batch && serve_state_end(s->st, true) < 0 && r == 0)
		r = -EIO;
	if (r == -EEXIST || r == -EPERM || r == -ENOSPC) {
		const char *why = r == -EEXIST ? "this MAC is a node's: its facts are not changed"
			: r == -EPERM ? "this MAC was discovered from another address"
			: "too many discovered machines: enroll or wait";
		slog(LOG_WARN, "discover", "mac=%s client=%s result=refused reason=%s", mac, peer,
		     r == -ENOSPC ? "full" : r == -EPERM ? "address" : "node");
		reply_error(req, r == -ENOSPC ? 503 : 409, why, path);
		goto out;
	}
	if (r < 0) {
		reply_error(req, 500, "state database error", path);
		goto out;
	}
	slog(LOG_INFO, "discover", "mac=%s client=%s node=%s", mac, peer, n ? n->name : "-");
	if (n)
		reply_json(req, 200, json_pack("{s:s, s:s}", "mac", mac, "node", n->name), path);
	else
		reply_json(req, 200, json_pack("{s:s, s:s}", "mac", mac, "state",
					       sstate_name(SSTATE_DISCOVERED)), path);
out:
	json_decref(j);
	json_decref(facts);
}

/* ---- POST /api/nodes/NAME/{provisioned,reprovision} -------------------- */

static void handle_node_post(struct serve *s, struct evhttp_request *req, const char *path,
			     const char *arg)
{
	char name[128], peer[64];
	uint32_t ip;
	const char *slash = strchr(arg, '/');

	if (!slash || (size_t)(slash - arg) >= sizeof(name)) {
		reply_error(req, 404, "expected /api/nodes/NAME/ACTION", path);
		return;
	}
	memcpy(name, arg, (size_t)(slash - arg));
	name[slash - arg] = '\0';
	const char *action = slash + 1;
	const struct node *n = cluster_node(s->cfg->cluster, name);
	if (!n) {
		reply_error(req, 404, "no such node", path);
		return;
	}
	if (!n->mac) {
		reply_error(req, 409, "node has no mac: not provisioned by kiln serve", path);
		return;
	}
	peer_of(req, peer, &ip);
	if (!strcmp(action, "provisioned")) {
		/* unauthenticated, so only the node itself may say so */
		if (strcmp(peer, n->address)) {
			slog(LOG_WARN, "provisioned", "node=%s client=%s result=refused", n->name,
			     peer);
			reply_error(req, 403, "only the node's own address may report it", path);
			return;
		}
	} else if (!strcmp(action, "reprovision")) {
		if (!authorized(s, req)) {
			reply_error(req, 401, "missing or wrong bearer token", path);
			return;
		}
	} else {
		reply_error(req, 404, "expected provisioned or reprovision", path);
		return;
	}
	enum sstate state = action[0] == 'p' ? SSTATE_PROVISIONED : SSTATE_BOOTING;
	if (serve_state_set(s->st, n->mac, n->name, state) < 0) {
		reply_error(req, 500, "state database error", path);
		return;
	}
	serve_state_event(s->st, n->mac, action, peer);
	slog(LOG_INFO, action, "node=%s mac=%s client=%s", n->name, n->mac, peer);
	reply_json(req, 200, json_pack("{s:s, s:s}", "node", n->name, "state",
				       sstate_name(state)), path);
}

/* ---- token API: reload, enroll ----------------------------------------- */

/* The answer comes from the privileged side (daemon.c: on_priv_msg). */
static void handle_reload(struct serve *s, struct evhttp_request *req, const char *path)
{
	if (serve_ask_reload(s, req, path) < 0)
		reply_error(req, 503, "too many requests wait for the privileged process", path);
}

void serve_http_answer(struct evhttp_request *req, const char *path, int status,
		       json_t *body)
{
	reply_json(req, status, body, path);
}

static void handle_enroll(struct serve *s, struct evhttp_request *req, const char *path)
{
	size_t len = 0;
	json_error_t je;
	struct strv roles = STRV_INIT;
	char *body = body_of(req, &len);
	json_t *j = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
	free(body);
	struct enroll_req q = {
		.mac = json_string_value(json_object_get(j, "mac")),
		.name = json_string_value(json_object_get(j, "name")),
		.image = json_string_value(json_object_get(j, "image")),
		.address = json_string_value(json_object_get(j, "address")),
		.roles = &roles,
	};
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(j, "roles"), i, v)
		if (json_is_string(v) && roles.n <= PS_MAX_ROLES)
			strv_push(&roles, json_string_value(v));
	if (!q.mac || !q.name) {
		reply_error(req, 400, "expected {\"mac\", \"name\", \"roles\", \"image\", "
			    "\"address\"}", path);
		goto out;
	}
	char st_ip[64] = "";
	json_t *rows = serve_state_machines(s->st);
	json_array_foreach(rows, i, v) {
		const char *m = json_string_value(json_object_get(v, "mac"));
		char norm[18];
		if (m && spec_mac_normalize(q.mac, norm) && !strcmp(m, norm) &&
		    json_string_value(json_object_get(v, "ip")))
			snprintf(st_ip, sizeof(st_ip), "%s",
				 json_string_value(json_object_get(v, "ip")));
	}
	json_decref(rows);
	q.ip_hint = st_ip[0] ? st_ip : NULL;
	/* the privileged side validates, writes boot.enrolled, reloads and
	 * answers (daemon.c: on_priv_msg) */
	int r = serve_ask_enroll(s, req, path, &q);
	if (r == -EBUSY)
		reply_error(req, 503, "too many requests wait for the privileged process", path);
	else if (r < 0)
		reply_error(req, 400, "a field is too long, or more than 16 roles", path);
out:
	strv_release(&roles);
	json_decref(j);
}

/* ---- read-only API ---------------------------------------------------- */

static int lease_row(const struct lease *l, void *arg)
{
	char ip[16], mac[18];
	static const char *const states[] = { "?", "offered", "bound", "released", "declined" };
	boot_fmt_ip(l->ip, ip);
	boot_fmt_mac(l->mac, mac);
	json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:I, s:s}", "ip", ip, "mac", mac,
					     "state", states[l->state <= 4 ? l->state : 0],
					     "expires", (json_int_t)l->expires,
					     "hostname", l->hostname));
	return 0;
}

static void handle_api_get(struct serve *s, struct evhttp_request *req, const char *path,
			   const char *what)
{
	if (!strcmp(what, "status")) {
		const char *dhcp_err = s->dhcp ? boot_dhcp_error(s->dhcp) : NULL;
		reply_json(req, 200, json_pack("{s:s, s:i, s:i, s:I, s:I, s:i, s:i, s:i, s:o, s:o}",
			"server", s->cfg->http_base, "pid", (int)getpid(), "uid", (int)getuid(),
			"started", (json_int_t)s->started, "reloads", (json_int_t)s->reloads,
			"nodes", (int)s->cfg->cluster->nnodes, "reservations",
			(int)s->cfg->boot.n_hosts, "tftp_active", s->tftp ? boot_tftp_active(s->tftp) : 0,
			"last_reload_error", s->reload_error ? json_string(s->reload_error)
			: json_null(), "dhcp_error", dhcp_err ? json_string(dhcp_err) : json_null()),
			path);
	} else if (!strcmp(what, "leases")) {
		json_t *a = json_array();
		lease_db_foreach(s->leases, lease_row, a);
		reply_json(req, 200, a, path);
	} else if (!strcmp(what, "nodes") || !strcmp(what, "discovered")) {
		json_t *st = serve_status_json(s->cfg->cluster, s->st, s->leases);
		json_t *part = json_incref(json_object_get(st, what));
		json_decref(st);
		reply_json(req, 200, part, path);
	} else {
		reply_error(req, 404, "no such API", path);
	}
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
		reply_error(req, 400, "bad path", "?");
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
		handle_discover(s, req, path);
	else if (post && str_starts(path, "/api/nodes/"))
		handle_node_post(s, req, path, path + 11);
	else if (post && (!strcmp(path, "/api/reload") || !strcmp(path, "/api/enroll"))) {
		if (!authorized(s, req))
			reply_error(req, 401, s->token ? "missing or wrong bearer token"
				    : "no boot.api_token_file configured", path);
		else if (path[5] == 'r')
			handle_reload(s, req, path);
		else
			handle_enroll(s, req, path);
	} else if (get && str_starts(path, "/api/") && (a = path + 5))
		handle_api_get(s, req, path, a);
	else
		reply_error(req, 404, "not found", path);
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
