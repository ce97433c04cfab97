/*
 * WireGuard interfaces as `wg show all dump` prints them (wireguard-tools):
 * what `kiln mesh status` reads.  The interface line's private key is
 * dropped here, at the source: it never enters facts, the state or output.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define WG_DUMP_MAX (4u << 20)
#define WG_PEERS_MAX 10000

/* Split a tab-separated line in place into at most max fields. */
static size_t split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;

	while (n < max) {
		f[n++] = line;
		char *t = strchr(line, '\t');
		if (!t)
			break;
		*t = '\0';
		line = t + 1;
	}
	return n;
}

static json_t *num(const char *s)
{
	uint64_t v;
	return parse_u64(s, 0, INT64_MAX, &v) == 0 ? json_integer((json_int_t)v) : json_null();
}

/*
 * Interface lines: name, private key, public key, listen port, fwmark.
 * Peer lines: name, public key, preshared key, endpoint, allowed ips,
 * latest handshake (epoch s, 0 = never), rx bytes, tx bytes, keepalive.
 */
void fx_collect_wireguard(const struct fx *x, json_t *facts)
{
	char *argv[] = { "wg", "show", "all", "dump", NULL };
	struct buf out;
	struct run_opts o = { .out = &out, .timeout_ms = 5000 };
	json_t *all;
	size_t npeers = 0;
	int st;

	if (!x->live)
		return;
	all = json_object();
	buf_init(&out, WG_DUMP_MAX);
	if (run_argv(argv, &o, &st) < 0 || st != 0)
		goto out;
	for (char *line = out.s, *nl; line && *line; line = nl) {
		char *f[9];
		if ((nl = strchr(line, '\n')))
			*nl++ = '\0';
		size_t n = split_tabs(line, f, ARRAY_SIZE(f));
		json_t *ifc = json_object_get(all, f[0]);
		if (n == 5 && !ifc) {
			json_object_set_new(all, f[0], json_pack("{s:s,s:o,s:[]}", "public_key",
								 f[2], "listen_port", num(f[3]),
								 "peers"));
		} else if (n == 9 && ifc && npeers++ < WG_PEERS_MAX) {
			json_t *p = json_pack("{s:s,s:s,s:o,s:o,s:o}", "public_key", f[1],
					      "allowed_ips", f[4], "latest_handshake", num(f[5]),
					      "rx_bytes", num(f[6]), "tx_bytes", num(f[7]));
			if (p && strcmp(f[3], "(none)"))
				json_object_set_new(p, "endpoint", json_string(f[3]));
			if (p)
				json_array_append_new(json_object_get(ifc, "peers"), p);
		}
	}
out:
	buf_release(&out);
	if (json_object_size(all))
		json_object_set_new(facts, "wireguard", all);
	else
		json_decref(all);
}
