/* What `kiln boot status` and GET /api/nodes show: spec nodes joined with state and leases. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

static json_t *find_row(json_t *rows, const char *mac)
{
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		const char *m = json_string_value(json_object_get(r, "mac"));
		if (m && !strcmp(m, mac))
			return r;
	}
	return NULL;
}

/* "vendor product, cpu model, 8 threads, 16 GiB, 2 GPUs" from posted facts. */
static char *hw_summary(const json_t *f)
{
	struct buf b;
	const json_t *dmi = json_object_get(f, "dmi"), *cpu = json_object_get(f, "cpu");
	const char *v;

	buf_init(&b, 512);
	if ((v = json_string_value(json_object_get(dmi, "product_name"))))
		buf_printf(&b, "%s", v);
	if ((v = json_string_value(json_object_get(cpu, "model"))))
		buf_printf(&b, "%s%s", b.len ? ", " : "", v);
	json_int_t t = json_integer_value(json_object_get(cpu, "threads"));
	if (t > 0)
		buf_printf(&b, "%s%" JSON_INTEGER_FORMAT " threads", b.len ? ", " : "", t);
	json_int_t mem = json_integer_value(json_object_get(json_object_get(f, "memory"),
							    "total_bytes"));
	if (mem > 0)
		buf_printf(&b, "%s%.1f GiB", b.len ? ", " : "", (double)mem / (1 << 30));
	size_t g = json_array_size(json_object_get(f, "gpus"));
	if (g)
		buf_printf(&b, "%s%zu GPU%s", b.len ? ", " : "", g, g == 1 ? "" : "s");
	return buf_detach(&b, NULL);
}

json_t *serve_status_json(const struct cluster *c, struct serve_state *st,
			  struct lease_db *leases)
{
	json_t *rows = st ? serve_state_machines(st) : json_array();
	json_t *nodes = json_array(), *disc = json_array();
	int64_t now = wall_ms() / 1000;

	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[i];
		json_t *o = json_object(), *row = n->mac ? find_row(rows, n->mac) : NULL;
		enum sstate state = n->mac ? SSTATE_NEW : SSTATE_UNMANAGED;
		json_object_set_new(o, "name", json_string(n->name));
		json_object_set_new(o, "mac", n->mac ? json_string(n->mac) : json_null());
		json_object_set_new(o, "address", json_string(n->address));
		json_object_set_new(o, "image", n->boot_image ? json_string(n->boot_image)
				    : json_null());
		json_object_set_new(o, "enrolled", json_boolean(n->enrolled));
		json_t *lj = json_null();
		uint8_t mac[6];
		struct lease l;
		if (n->mac && leases && boot_parse_mac(n->mac, mac) == 0 &&
		    lease_db_find_mac(leases, mac, now, &l) == 0) {
			char ip[16];
			boot_fmt_ip(l.ip, ip);
			lj = json_pack("{s:s, s:I, s:s}", "ip", ip, "expires", (json_int_t)l.expires,
				       "state", l.state == LEASE_BOUND ? "bound"
				       : l.state == LEASE_OFFERED ? "offered"
				       : l.state == LEASE_RELEASED ? "released" : "declined");
			if (l.state == LEASE_BOUND)
				state = SSTATE_BOOTING;
		}
		/* a stored state other than seen wins over what the lease says */
		int rs = sstate_parse(json_string_value(json_object_get(row, "state")));
		if (rs >= 0 && rs != SSTATE_SEEN)
			state = (enum sstate)rs;
		json_object_set_new(o, "state", json_string(sstate_name(state)));
		json_object_set_new(o, "lease", lj);
		json_t *lf = json_object_get(row, "last_fetch");
		json_object_set_new(o, "last_fetch", lf ? json_incref(lf) : json_null());
		json_t *lw = json_object_get(row, "last_fetch_what");
		json_object_set_new(o, "last_fetch_what", lw ? json_incref(lw) : json_null());
		json_array_append_new(nodes, o);
	}
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		const char *mac = json_string_value(json_object_get(r, "mac"));
		int state = sstate_parse(json_string_value(json_object_get(r, "state")));
		if (!mac || cluster_node_by_mac(c, mac) || state != SSTATE_DISCOVERED)
			continue;
		json_t *o = json_object();
		char *hw = hw_summary(json_object_get(r, "facts"));
		json_object_set_new(o, "mac", json_string(mac));
		json_object_set(o, "ip", json_object_get(r, "ip"));
		json_object_set(o, "last_seen", json_object_get(r, "last_seen"));
		json_object_set_new(o, "hardware", json_string(hw[0] ? hw : "-"));
		free(hw);
		json_array_append_new(disc, o);
	}
	json_decref(rows);
	return json_pack("{s:o, s:o}", "nodes", nodes, "discovered", disc);
}
