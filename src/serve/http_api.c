/*
 * HTTP: the JSON API on kiln serve's evhttp server (http.c routes to it) —
 * discovery posts, a node's provisioned/reprovision, the token API (reload,
 * enroll) and the read-only views.  After the privilege drop; every body is
 * capped and every string a peer sent is cleaned before it is kept.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_int.h"

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
void http_api_discover(struct serve *s, struct evhttp_request *req, const char *path)
{
	size_t len = 0, budget = FACTS_MAX_VALUES;
	char peer[64], mac[18], lip[16];
	uint32_t ip;
	json_error_t je;
	json_t *j = NULL, *facts = NULL;

	http_peer_of(req, peer, &ip);
	if (!http_rate_ok(s, req, peer, path))
		return;
	char *body = http_body_of(req, &len);
	if (!body) {
		http_reply_error(req, 413, "body too large", path);
		return;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	free(body);
	const char *m = json_string_value(json_object_get(j, "mac"));
	const json_t *f = json_object_get(j, "facts");
	if (!json_is_object(j) || !m || !spec_mac_normalize(m, mac) ||
	    (f && !json_is_object(f))) {
		http_reply_error(req, 400, "expected {\"mac\": \"aa:bb:cc:dd:ee:ff\", \"facts\": {...}}",
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
		http_reply_error(req, 409, "this MAC is a node's: only the node, from its own "
			    "address, may post its facts", path);
		goto out;
	}
	if (f && !(facts = clean_json(f, 0, &budget))) {
		http_reply_error(req, 413, "facts too deep or too many values", path);
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
		http_reply_error(req, r == -ENOSPC ? 503 : 409, why, path);
		goto out;
	}
	if (r < 0) {
		http_reply_error(req, 500, "state database error", path);
		goto out;
	}
	slog(LOG_INFO, "discover", "mac=%s client=%s node=%s", mac, peer, n ? n->name : "-");
	if (n)
		http_reply_json(req, 200, json_pack("{s:s, s:s}", "mac", mac, "node", n->name), path);
	else
		http_reply_json(req, 200, json_pack("{s:s, s:s}", "mac", mac, "state",
					       sstate_name(SSTATE_DISCOVERED)), path);
out:
	json_decref(j);
	json_decref(facts);
}

/* ---- POST /api/nodes/NAME/{provisioned,reprovision} -------------------- */

void http_api_node_post(struct serve *s, struct evhttp_request *req, const char *path,
			     const char *arg)
{
	char name[128], peer[64];
	uint32_t ip;
	const char *slash = strchr(arg, '/');

	if (!slash || (size_t)(slash - arg) >= sizeof(name)) {
		http_reply_error(req, 404, "expected /api/nodes/NAME/ACTION", path);
		return;
	}
	memcpy(name, arg, (size_t)(slash - arg));
	name[slash - arg] = '\0';
	const char *action = slash + 1;
	const struct node *n = cluster_node(s->cfg->cluster, name);
	if (!n) {
		http_reply_error(req, 404, "no such node", path);
		return;
	}
	if (!n->mac) {
		http_reply_error(req, 409, "node has no mac: not provisioned by kiln serve", path);
		return;
	}
	http_peer_of(req, peer, &ip);
	if (!strcmp(action, "provisioned")) {
		/* unauthenticated, so only the node itself may say so */
		if (strcmp(peer, n->address)) {
			slog(LOG_WARN, "provisioned", "node=%s client=%s result=refused", n->name,
			     peer);
			http_reply_error(req, 403, "only the node's own address may report it", path);
			return;
		}
	} else if (!strcmp(action, "reprovision")) {
		if (!http_authorized(s, req)) {
			http_reply_error(req, 401, "missing or wrong bearer token", path);
			return;
		}
	} else {
		http_reply_error(req, 404, "expected provisioned or reprovision", path);
		return;
	}
	enum sstate state = action[0] == 'p' ? SSTATE_PROVISIONED : SSTATE_BOOTING;
	if (serve_state_set(s->st, n->mac, n->name, state) < 0) {
		http_reply_error(req, 500, "state database error", path);
		return;
	}
	serve_state_event(s->st, n->mac, action, peer);
	slog(LOG_INFO, action, "node=%s mac=%s client=%s", n->name, n->mac, peer);
	http_reply_json(req, 200, json_pack("{s:s, s:s}", "node", n->name, "state",
				       sstate_name(state)), path);
}

/* ---- token API: reload, enroll ----------------------------------------- */

/* The answer comes from the privileged side (daemon.c: on_priv_msg). */
void http_api_reload(struct serve *s, struct evhttp_request *req, const char *path)
{
	if (serve_ask_reload(s, req, path) < 0)
		http_reply_error(req, 503, "too many requests wait for the privileged process", path);
}

void serve_http_answer(struct evhttp_request *req, const char *path, int status,
		       json_t *body)
{
	http_reply_json(req, status, body, path);
}

void http_api_enroll(struct serve *s, struct evhttp_request *req, const char *path)
{
	size_t len = 0;
	json_error_t je;
	struct strv roles = STRV_INIT;
	char *body = http_body_of(req, &len);
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
		http_reply_error(req, 400, "expected {\"mac\", \"name\", \"roles\", \"image\", "
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
		http_reply_error(req, 503, "too many requests wait for the privileged process", path);
	else if (r < 0)
		http_reply_error(req, 400, "a field is too long, or more than 16 roles", path);
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

void http_api_get(struct serve *s, struct evhttp_request *req, const char *path,
			   const char *what)
{
	if (!strcmp(what, "status")) {
		const char *dhcp_err = s->dhcp ? boot_dhcp_error(s->dhcp) : NULL;
		http_reply_json(req, 200, json_pack("{s:s, s:i, s:i, s:I, s:I, s:i, s:i, s:i, s:o, s:o}",
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
		http_reply_json(req, 200, a, path);
	} else if (!strcmp(what, "nodes") || !strcmp(what, "discovered")) {
		json_t *st = serve_status_json(s->cfg->cluster, s->st, s->leases);
		json_t *part = json_incref(json_object_get(st, what));
		json_decref(st);
		http_reply_json(req, 200, part, path);
	} else {
		http_reply_error(req, 404, "no such API", path);
	}
}
