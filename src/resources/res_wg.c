/*
 * WireGuard for the mesh stack: wgkey (a private key made on the node,
 * exporting its public key) and wireguard (one interface converged live
 * with `wg set` and `ip`, never `wg setconf`, so sessions and roamed
 * endpoints survive a run).  Private keys never reach a diff, a message or
 * a log: buffers that held one are wiped before they are freed.
 */
#include "res_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WG_KEY_B64 44               /* base64 of 32 bytes, with one '=' */
#define WG_MAX_PEERS 10000
#define WG_CMD_MS (30 * 1000)
#define WG_DUMP_CAP (32u << 20)
#define WG_JSON_CAP (8u << 20)
#define WG_BATCH 200                /* peers per `wg set` */
#define WG_ROAM_S 180               /* a handshake newer than this keeps a roamed endpoint */

/* ---- keys ---- */

/* Decode a base64 WireGuard key (exactly 44 characters) into k. */
static bool wg_key_decode(const char *s, size_t len, uint8_t k[32])
{
	size_t n = 0;
	const char *end = NULL;

	if (len != WG_KEY_B64 || s[WG_KEY_B64 - 1] != '=')
		return false;
	if (sodium_base642bin(k, 32, s, len, NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return n == 32 && end == s + len;
}

static bool wg_key_ok(const char *s)
{
	uint8_t k[32];
	bool ok = s && wg_key_decode(s, strlen(s), k);
	sodium_memzero(k, sizeof(k));
	return ok;
}

/* The base64 public key of a private key (clamped first, RFC 7748). */
static int wg_public(const uint8_t priv[32], char pub[WG_KEY_B64 + 1])
{
	uint8_t c[32], p[32];
	int r;

	memcpy(c, priv, 32);
	c[0] &= 248;
	c[31] = (c[31] & 127) | 64;
	r = crypto_scalarmult_base(p, c);
	sodium_memzero(c, sizeof(c));
	if (r != 0)
		return -EINVAL;
	sodium_bin2base64(pub, WG_KEY_B64 + 1, p, 32, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

/*
 * Read a key file (no symlink, regular, at most 128 bytes) and decode it.
 * Returns 0, -ENOENT, -EBADMSG (not a key) or -errno; st gets its stat.
 */
static int wg_key_read(const char *full, uint8_t k[32], struct stat *st)
{
	char b[129];
	ssize_t n;
	int fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		r = -errno;
	} else if (!S_ISREG(st->st_mode)) {
		r = -EBADF;
	} else if ((n = read(fd, b, sizeof(b) - 1)) < 0) {
		r = -errno;
	} else {
		while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
			n--;
		b[n] = '\0';
		if (!wg_key_decode(b, (size_t)n, k))
			r = -EBADMSG;
	}
	sodium_memzero(b, sizeof(b));
	close(fd);
	return r;
}

static const char *key_err(int r)
{
	switch (r) {
	case -ELOOP:
		return "is a symlink: not followed";
	case -EBADF:
		return "is not a regular file";
	case -EBADMSG:
		return "does not hold a WireGuard key (44 base64 characters)";
	default:
		return strerror(-r);
	}
}

/* A new private key, clamped, as `wg genkey` prints it (with a newline). */
static void wg_genkey(char b64[WG_KEY_B64 + 2], uint8_t k[32])
{
	randombytes_buf(k, 32);
	k[0] &= 248;
	k[31] = (k[31] & 127) | 64;
	sodium_bin2base64(b64, WG_KEY_B64 + 1, k, 32, sodium_base64_VARIANT_ORIGINAL);
	b64[WG_KEY_B64] = '\n';
	b64[WG_KEY_B64 + 1] = '\0';
}

/* Write a key file 0600 root:root, parents 0700. */
static int wg_key_write(const char *full, const uint8_t k[32], struct kerr *e)
{
	char b64[WG_KEY_B64 + 2];
	char *dir = xstrdup(full);
	int r;

	*strrchr(dir, '/') = '\0';
	r = *dir ? mkdir_p(dir, 0700) : 0;
	free(dir);
	if (r < 0)
		return kerr_set(e, r, "parent directory: %s", strerror(-r));
	sodium_bin2base64(b64, WG_KEY_B64 + 1, k, 32, sodium_base64_VARIANT_ORIGINAL);
	b64[WG_KEY_B64] = '\n';
	b64[WG_KEY_B64 + 1] = '\0';
	r = file_write_atomic(full, b64, WG_KEY_B64 + 1, 0600, 0, 0);
	sodium_memzero(b64, sizeof(b64));
	if (r < 0)
		return kerr_set(e, r, "write: %s", strerror(-r));
	return 0;
}

/*
 * wgkey: keep the key that is there (fixing mode and owner), make one when
 * missing, a new one on rotate.  Exports the public key whenever the key
 * it names exists (in check mode: not for a key still to be made).
 */
static void wgkey_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *path = res_str(r, "path");
	bool rotate = res_bool(r, "rotate", false);
	char *full = path_join(ctx->root, path);
	char pub[WG_KEY_B64 + 1], gen[WG_KEY_B64 + 2];
	uint8_t k[32];
	struct stat st;
	struct kerr e = { 0 };
	bool fix = false;
	int q;

	if (sodium_init() < 0) {
		res_fail(out, "libsodium: init failed");
		goto out;
	}
	q = wg_key_read(full, k, &st);
	if (q < 0 && q != -ENOENT && !(rotate && q == -EBADMSG)) {
		res_fail(out, "%s %s", path, key_err(q));
		goto out;
	}
	if (q == 0 && !rotate) {
		if ((st.st_mode & 07777) != 0600) {
			res_note(out, "mode %04o -> 0600", (unsigned)(st.st_mode & 07777));
			fix = true;
		}
		if (st.st_uid != 0 || st.st_gid != 0) {
			res_note(out, "owner %u:%u -> root:root", (unsigned)st.st_uid,
				 (unsigned)st.st_gid);
			fix = true;
		}
		if (wg_public(k, pub) < 0) {
			res_fail(out, "%s: not a usable X25519 key", path);
			goto out;
		}
		if (fix) {
			out->status = RES_CHANGED;
			if (!ctx->check_only && wg_key_write(full, k, &e) < 0) {
				res_fail(out, "%s: %s", path, e.msg);
				goto out;
			}
		}
		res_export(out, "public_key", pub);
		goto out;
	}
	out->status = RES_CHANGED;
	res_note(out, q == 0 || q == -EBADMSG ? "rotate key %s" : "create key %s", path);
	if (ctx->check_only)
		goto out;
	wg_genkey(gen, k);
	sodium_memzero(gen, sizeof(gen));
	if (wg_key_write(full, k, &e) < 0 || wg_public(k, pub) < 0) {
		res_fail(out, "%s: %s", path, e.msg[0] ? e.msg : "bad key");
		goto out;
	}
	res_export(out, "public_key", pub);
out:
	sodium_memzero(k, sizeof(k));
	free(full);
}

static const struct field wgkey_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "rotate", F_BOOL, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_wgkey = {
	.name = "wgkey", .id_field = "path", .fields = wgkey_fields,
	.run = wgkey_run,
};

/* ---- addresses ---- */

/*
 * Canonical text of an IPv4 or IPv6 prefix "ADDR/LEN" (LEN optional when
 * need_len is false: a host).  With strict, host bits set are an error.
 */
static int cidr_canon(const char *s, bool need_len, bool strict, char *outs, size_t n)
{
	char a[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned char bin[16];
	int fam, max;
	uint64_t len;

	if (!alen || alen >= sizeof(a) || (!slash && need_len))
		return -EINVAL;
	memcpy(a, s, alen);
	a[alen] = '\0';
	if (inet_pton(AF_INET, a, bin) == 1)
		fam = AF_INET, max = 32;
	else if (inet_pton(AF_INET6, a, bin) == 1)
		fam = AF_INET6, max = 128;
	else
		return -EINVAL;
	if (!slash)
		len = (uint64_t)max;
	else if (parse_u64(slash + 1, 0, (uint64_t)max, &len) < 0)
		return -EINVAL;
	for (int bit = (int)len; bit < max; bit++) {
		if (bin[bit / 8] & (0x80 >> (bit % 8))) {
			if (strict)
				return -EINVAL;
			bin[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
		}
	}
	inet_ntop(fam, bin, a, sizeof(a));
	snprintf(outs, n, "%s/%u", a, (unsigned)len);
	return fam;
}

/* Canonical "IP:PORT" / "[IP6]:PORT"; the IP alone into ip when not NULL. */
static int endpoint_canon(const char *s, char *outs, size_t n, char *ip, size_t ipn)
{
	char a[INET6_ADDRSTRLEN + 1];
	const char *colon, *start = s;
	size_t alen;
	unsigned char bin[16];
	uint64_t port;
	bool v6 = s[0] == '[';

	if (v6) {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		start = s + 1;
		alen = (size_t)(rb - start);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		alen = (size_t)(colon - s);
	}
	if (!alen || alen >= sizeof(a))
		return -EINVAL;
	memcpy(a, start, alen);
	a[alen] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, a, bin) != 1 ||
	    parse_u64(colon + 1, 1, 65535, &port) < 0)
		return -EINVAL;
	inet_ntop(v6 ? AF_INET6 : AF_INET, bin, a, sizeof(a));
	snprintf(outs, n, v6 ? "[%s]:%u" : "%s:%u", a, (unsigned)port);
	if (ip)
		snprintf(ip, ipn, "%s", a);
	return 0;
}

/* Sorted canonical comma list of a JSON array or a "a,b" string (live side). */
static char *allowed_canon(const json_t *arr, const char *list)
{
	struct strv v = STRV_INIT;
	struct buf b;
	char c[64];

	if (arr) {
		size_t i;
		json_t *x;
		json_array_foreach(arr, i, x)
			if (cidr_canon(json_string_value(x), true, false, c, sizeof(c)) > 0)
				strv_push(&v, c);
	} else if (list && strcmp(list, "(none)")) {
		char *copy = xstrdup(list), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			strv_push(&v, cidr_canon(t, false, false, c, sizeof(c)) > 0 ? c : t);
		free(copy);
	}
	strv_sort(&v);
	buf_init(&b, 0);
	for (size_t i = 0; i < v.n; i++) {
		if (i)
			buf_addch(&b, ',');
		buf_adds(&b, v.v[i]);
	}
	strv_release(&v);
	return buf_detach(&b, NULL);
}

/* ---- validation ---- */

static bool ifname_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > 15)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-'))
			return false;
	return true;
}

static bool int_in(const json_t *v, json_int_t lo, json_int_t hi)
{
	return json_is_integer(v) && json_integer_value(v) >= lo &&
	       json_integer_value(v) <= hi;
}

/* An array of canonical prefixes (no host bits set), at most max. */
static bool cidrs_ok(const json_t *a, size_t max)
{
	size_t i;
	json_t *x;
	char c[64];

	if (!json_is_array(a) || json_array_size(a) > max)
		return false;
	json_array_foreach(a, i, x)
		if (!json_is_string(x) ||
		    cidr_canon(json_string_value(x), true, true, c, sizeof(c)) < 0)
			return false;
	return true;
}

static int peer_validate(const json_t *p, size_t i, const char *id, struct kerr *e)
{
	const char *k;
	json_t *v;
	char c[80];

	if (!json_is_object(p))
		return kerr_set(e, -EINVAL, "resource '%s': peers[%zu]: expected an object",
				id, i);
	json_object_foreach((json_t *)p, k, v) {
		bool ok;
		if (!strcmp(k, "public_key"))
			ok = wg_key_ok(json_string_value(v));
		else if (!strcmp(k, "endpoint"))
			ok = json_is_string(v) &&
			     endpoint_canon(json_string_value(v), c, sizeof(c), NULL, 0) == 0;
		else if (!strcmp(k, "allowed_ips"))
			ok = cidrs_ok(v, 1024);
		else if (!strcmp(k, "keepalive"))
			ok = int_in(v, 0, 65535);
		else
			return kerr_set(e, -EINVAL, "resource '%s': peers[%zu]: unknown field "
					"'%s'", id, i, k);
		if (!ok)
			return kerr_set(e, -EINVAL, "resource '%s': peers[%zu]: field '%s': "
					"invalid", id, i, k);
	}
	if (!json_object_get(p, "public_key") || !json_object_get(p, "allowed_ips"))
		return kerr_set(e, -EINVAL, "resource '%s': peers[%zu]: public_key and "
				"allowed_ips are required", id, i);
	return 0;
}

static int wg_validate(const json_t *r, const char *id, struct kerr *e)
{
	json_t *peers = json_object_get(r, "peers"), *v, *p;
	struct strv keys = STRV_INIT;
	char c[64];
	size_t i;
	int ret = 0;

	if (!ifname_ok(res_str(r, "interface")))
		return kerr_set(e, -EINVAL, "resource '%s': field 'interface': expected "
				"1 to 15 of [a-z0-9_-]", id);
	if ((v = json_object_get(r, "listen_port")) && !int_in(v, 1, 65535))
		return kerr_set(e, -EINVAL, "resource '%s': field 'listen_port': expected "
				"1..65535", id);
	if ((v = json_object_get(r, "mtu")) && !int_in(v, 576, 65535) &&
	    !(json_is_string(v) && !strcmp(json_string_value(v), "auto")))
		return kerr_set(e, -EINVAL, "resource '%s': field 'mtu': expected 576..65535 "
				"or \"auto\"", id);
	if ((v = json_object_get(r, "address")) &&
	    cidr_canon(json_string_value(v), true, false, c, sizeof(c)) != AF_INET)
		return kerr_set(e, -EINVAL, "resource '%s': field 'address': expected an "
				"IPv4 address with prefix, like 10.99.0.1/24", id);
	if ((v = json_object_get(r, "routes")) && !cidrs_ok(v, 1024))
		return kerr_set(e, -EINVAL, "resource '%s': field 'routes': expected an array "
				"of prefixes without host bits, like 10.50.0.0/16", id);
	if (!json_is_array(peers) || json_array_size(peers) > WG_MAX_PEERS)
		return kerr_set(e, -EINVAL, "resource '%s': field 'peers': expected an array "
				"of at most %d peers", id, WG_MAX_PEERS);
	json_array_foreach(peers, i, p) {
		if ((ret = peer_validate(p, i, id, e)) < 0)
			goto out;
		strv_push(&keys, res_str(p, "public_key"));
	}
	strv_sort(&keys);
	for (i = 1; i < keys.n; i++)
		if (!strcmp(keys.v[i - 1], keys.v[i])) {
			ret = kerr_set(e, -EINVAL, "resource '%s': peers: public key %.8s… "
				       "appears twice", id, keys.v[i]);
			goto out;
		}
out:
	strv_release(&keys);
	return ret;
}

/* ---- commands ---- */

/* Run argv (argv[0] found like res_run) with in on stdin; stdout into out. */
static int wg_cmd(char *const argv[], const char *in, struct buf *out, struct kerr *e)
{
	struct run_opts o = { .in = in, .in_len = in ? strlen(in) : 0, .out = out,
			      .timeout_ms = WG_CMD_MS };
	return res_run_opts(argv, &o, e);
}

/* Run an `ip -j ...` command and parse its JSON array. */
static int ip_json(char *const argv[], json_t **j, struct kerr *e)
{
	struct buf b;
	int r;

	buf_init(&b, WG_JSON_CAP);
	*j = NULL;
	r = wg_cmd(argv, NULL, &b, e);
	if (r == 0) {
		*j = json_loadb(b.s ? b.s : "[]", b.len, 0, NULL);
		if (!json_is_array(*j)) {
			json_decref(*j);
			*j = NULL;
			r = kerr_set(e, -EPROTO, "%s: unexpected output", argv[0]);
		}
	}
	buf_release(&b);
	return r;
}

/* ---- live state ---- */

struct wg_peer {
	char *key;
	char *endpoint;      /* canonical, NULL = none */
	char *allowed;       /* canonical sorted list, "" = none */
	int keepalive;       /* 0 = off */
	int64_t handshake;   /* unix seconds, 0 = never (live only) */
	bool seen;
};

struct wg_live {
	bool exists;         /* `wg show IF` answers */
	bool link;           /* the link exists */
	char pub[WG_KEY_B64 + 1];
	int port;
	struct wg_peer *peers;
	size_t n, alloc;
	int mtu;
	bool up;
	struct strv addrs;   /* IPv4 "ip/len" */
	struct strv routes;  /* canonical, proto 77 */
};

static void peer_release(struct wg_peer *p)
{
	free(p->key);
	free(p->endpoint);
	free(p->allowed);
}

static void live_release(struct wg_live *l)
{
	for (size_t i = 0; i < l->n; i++)
		peer_release(&l->peers[i]);
	free(l->peers);
	strv_release(&l->addrs);
	strv_release(&l->routes);
	memset(l, 0, sizeof(*l));
}

static int cmp_peer(const void *a, const void *b)
{
	return strcmp(((const struct wg_peer *)a)->key, ((const struct wg_peer *)b)->key);
}

/* Split a line on tabs into at most max fields; returns the count. */
static size_t split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, "\t", &save); t && n < max;
	     t = strtok_r(NULL, "\t", &save))
		f[n++] = t;
	return n;
}

/*
 * Parse `wg show IF dump`: the interface line (its private key is skipped
 * and the buffer wiped by the caller), then one line per peer.
 */
static int dump_parse(char *s, struct wg_live *l, struct kerr *e)
{
	char *save = NULL, *f[9];
	bool first = true;
	uint64_t u;

	for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t n = split_tabs(line, f, 9);
		if (first) {
			first = false;
			if (n != 4)
				goto bad;
			snprintf(l->pub, sizeof(l->pub), "%s", f[1]);
			l->port = parse_u64(f[2], 0, 65535, &u) == 0 ? (int)u : 0;
			continue;
		}
		if (n != 8 || strlen(f[0]) != WG_KEY_B64 || l->n >= 4 * WG_MAX_PEERS)
			goto bad;
		l->peers = xgrow(l->peers, l->n + 1, &l->alloc, sizeof(*l->peers));
		struct wg_peer *p = &l->peers[l->n++];
		char c[80];
		*p = (struct wg_peer){ .key = xstrdup(f[0]) };
		if (strcmp(f[2], "(none)"))
			p->endpoint = xstrdup(endpoint_canon(f[2], c, sizeof(c), NULL, 0) == 0
					      ? c : f[2]);
		p->allowed = allowed_canon(NULL, f[3]);
		p->handshake = parse_u64(f[4], 0, INT64_MAX, &u) == 0 ? (int64_t)u : 0;
		p->keepalive = parse_u64(f[7], 0, 65535, &u) == 0 ? (int)u : 0;
	}
	if (first)
		goto bad;
	if (l->n)
		qsort(l->peers, l->n, sizeof(*l->peers), cmp_peer);
	return 0;
bad:
	return kerr_set(e, -EPROTO, "wg show dump: unexpected output");
}

/* Read the link, WireGuard, address and route state of ifname. */
static int live_read(const char *ifname, struct wg_live *l, struct kerr *e)
{
	char *link[] = { "ip", "-j", "link", "show", "dev", (char *)ifname, NULL };
	char *dump[] = { "wg", "show", (char *)ifname, "dump", NULL };
	char *addr[] = { "ip", "-j", "-4", "addr", "show", "dev", (char *)ifname, NULL };
	char *rt4[] = { "ip", "-j", "route", "show", "dev", (char *)ifname, "proto", "77",
			NULL };
	char *rt6[] = { "ip", "-j", "-6", "route", "show", "dev", (char *)ifname, "proto",
			"77", NULL };
	char **rts[] = { rt4, rt6 };
	struct kerr ig = { 0 };
	json_t *j = NULL, *x, *a;
	struct buf b;
	size_t i, k;
	int r;

	memset(l, 0, sizeof(*l));
	if (ip_json(link, &j, &ig) < 0)
		return 0;              /* no such link */
	l->link = true;
	x = json_array_get(j, 0);
	l->mtu = (int)json_integer_value(json_object_get(x, "mtu"));
	json_array_foreach(json_object_get(x, "flags"), i, a)
		l->up |= json_is_string(a) && !strcmp(json_string_value(a), "UP");
	json_decref(j);

	buf_init(&b, WG_DUMP_CAP);
	r = wg_cmd(dump, NULL, &b, &ig);
	if (r == 0) {
		l->exists = true;
		r = dump_parse(b.s ? b.s : "", l, e);
	} else {
		r = kerr_set(e, -ENODEV, "link %s exists but is not a WireGuard interface "
			     "(%s)", ifname, ig.msg);
	}
	sodium_memzero(b.s, b.alloc);
	buf_release(&b);
	if (r < 0)
		return r;

	if ((r = ip_json(addr, &j, e)) < 0)
		return r;
	json_array_foreach(json_object_get(json_array_get(j, 0), "addr_info"), i, a)
		if (res_str(a, "local"))
			strv_pushf(&l->addrs, "%s/%d", res_str(a, "local"),
				   (int)json_integer_value(json_object_get(a, "prefixlen")));
	json_decref(j);
	for (k = 0; k < 2; k++) {
		if ((r = ip_json(rts[k], &j, e)) < 0)
			return r;
		json_array_foreach(j, i, a) {
			const char *d = res_str(a, "dst");
			char c[64];
			if (d && cidr_canon(d, false, false, c, sizeof(c)) > 0)
				strv_push(&l->routes, c);
		}
		json_decref(j);
	}
	return 0;
}

/* ---- MTU ---- */

/* The MTU of a device, or 0. */
static int dev_mtu(const char *dev)
{
	char *argv[] = { "ip", "-j", "link", "show", "dev", (char *)dev, NULL };
	struct kerr e = { 0 };
	json_t *j;
	int m = 0;

	if (ip_json(argv, &j, &e) == 0) {
		m = (int)json_integer_value(json_object_get(json_array_get(j, 0), "mtu"));
		json_decref(j);
	}
	return m;
}

/*
 * "auto": the smallest MTU of the devices that reach the peers' endpoints
 * (one `ip -batch` of route gets), else of the default route's device,
 * minus 80 (WireGuard over IPv6 overhead); 1420 when nothing answers.
 */
static int mtu_auto(const char *ifname, const json_t *peers)
{
	struct buf in, b;
	struct strv devs = STRV_INIT;
	struct kerr e = { 0 };
	size_t i;
	json_t *p;
	int best = 0;

	buf_init(&in, 0);
	buf_init(&b, WG_JSON_CAP);
	json_array_foreach(peers, i, p) {
		char c[80], ip[INET6_ADDRSTRLEN + 1];
		const char *ep = res_str(p, "endpoint");
		if (ep && endpoint_canon(ep, c, sizeof(c), ip, sizeof(ip)) == 0)
			buf_printf(&in, "route get %s\n", ip);
	}
	if (in.len) {
		char *argv[] = { "ip", "-force", "-j", "-batch", "-", NULL };
		wg_cmd(argv, in.s, &b, &e);   /* unreachable endpoints are skipped */
	} else {
		char *argv[] = { "ip", "-j", "route", "show", "default", NULL };
		wg_cmd(argv, NULL, &b, &e);
	}
	/* One JSON array per line. */
	char *save = NULL;
	for (char *line = strtok_r(b.s ? b.s : "", "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, 0, NULL), *x;
		json_array_foreach(j, i, x) {
			const char *d = res_str(x, "dev");
			if (d && strcmp(d, ifname) && !strv_contains(&devs, d))
				strv_push(&devs, d);
		}
		json_decref(j);
	}
	for (i = 0; i < devs.n; i++) {
		int m = dev_mtu(devs.v[i]);
		if (m > 80 && (!best || m - 80 < best))
			best = m - 80;
	}
	strv_release(&devs);
	buf_release(&in);
	buf_release(&b);
	return best >= 576 ? best : 1420;
}

/* ---- the config file ---- */

/* wg-quick text; with mask the PrivateKey value is "(from FILE)". */
static char *conf_render(const json_t *r, const char *priv_b64, int mtu, bool mask)
{
	json_t *v, *p;
	struct buf b;
	size_t i, k;

	buf_init(&b, 0);
	buf_adds(&b, "# managed by kiln\n[Interface]\n");
	if (mask)
		buf_printf(&b, "PrivateKey = (from %s)\n", res_str(r, "private_key_file"));
	else
		buf_printf(&b, "PrivateKey = %s\n", priv_b64);
	if ((v = json_object_get(r, "listen_port")))
		buf_printf(&b, "ListenPort = %d\n", (int)json_integer_value(v));
	if (res_str(r, "address"))
		buf_printf(&b, "Address = %s\n", res_str(r, "address"));
	buf_printf(&b, "MTU = %d\n", mtu);
	json_array_foreach(json_object_get(r, "peers"), i, p) {
		buf_printf(&b, "\n[Peer]\nPublicKey = %s\nAllowedIPs = ",
			   res_str(p, "public_key"));
		json_array_foreach(json_object_get(p, "allowed_ips"), k, v)
			buf_printf(&b, "%s%s", k ? ", " : "", json_string_value(v));
		buf_addch(&b, '\n');
		if (res_str(p, "endpoint"))
			buf_printf(&b, "Endpoint = %s\n", res_str(p, "endpoint"));
		if ((v = json_object_get(p, "keepalive")) && json_integer_value(v) > 0)
			buf_printf(&b, "PersistentKeepalive = %d\n", (int)json_integer_value(v));
	}
	return buf_detach(&b, NULL);
}

/* old with every PrivateKey line's value masked (the diff's "before"). */
static char *conf_mask(const char *old, const char *file)
{
	struct buf b;
	const char *s = old;

	buf_init(&b, 0);
	while (*s) {
		size_t n = strcspn(s, "\n");
		if (!strncmp(s, "PrivateKey", 10))
			buf_printf(&b, "PrivateKey = (from %s)", file);
		else
			buf_add(&b, s, n);
		if (s[n] == '\n')
			buf_addch(&b, '\n');
		s += n + (s[n] == '\n');
	}
	return buf_detach(&b, NULL);
}

/* Make config_file hold the wg-quick text, 0600 root; the diff is masked. */
static void conf_converge(struct res_ctx *ctx, const json_t *r, const char *priv_b64,
			  int mtu, struct res_result *out)
{
	const char *path = res_str(r, "config_file");
	char *full = path_join(ctx->root, path);
	char *want = conf_render(r, priv_b64, mtu, false);
	char *shown = conf_render(r, priv_b64, mtu, true), *was = NULL;
	struct buf old, diff;
	struct stat st;
	bool exists = false;
	int fd;

	buf_init(&old, RES_FILE_CAP);
	buf_init(&diff, RES_DIFF_CAP);
	fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		exists = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
		char tmp[16384];
		ssize_t n;
		while (exists && (n = read(fd, tmp, sizeof(tmp))) > 0)
			if (buf_add(&old, tmp, (size_t)n) < 0)
				break;
		sodium_memzero(tmp, sizeof(tmp));
		close(fd);
	}
	bool same = exists && old.s && !strcmp(old.s, want) &&
		    (st.st_mode & 07777) == 0600 && st.st_uid == 0;
	if (!same) {
		was = conf_mask(exists && old.s ? old.s : "", res_str(r, "private_key_file"));
		diff_unified(exists ? path : "/dev/null", was, path, shown, &diff);
		res_add_diff(out, &diff);
		if (!diff.len)
			res_note(out, "%s: private key or mode changed", path);
		out->status = RES_CHANGED;
		if (!ctx->check_only) {
			char *dir = xstrdup(full);
			*strrchr(dir, '/') = '\0';
			int q = *dir ? mkdir_p(dir, 0700) : 0;
			free(dir);
			if (q == 0)
				q = file_write_atomic(full, want, strlen(want), 0600, 0, 0);
			if (q < 0)
				res_fail(out, "%s: write: %s", path, strerror(-q));
		}
	}
	if (old.s)
		sodium_memzero(old.s, old.alloc);
	buf_release(&old);
	buf_release(&diff);
	sodium_memzero(want, strlen(want));
	free(want);
	free(shown);
	free(was);
	free(full);
}

/* ---- the interface ---- */

/* Create ifname: the kernel module when there is one, else wireguard-go
 * (under systemd as a transient unit, so it outlives the SSH session).
 * Waits up to 5 s for `wg show` to answer. */
static int wg_create(const char *ifname, const char **how, struct kerr *e)
{
	char *add[] = { "ip", "link", "add", (char *)ifname, "type", "wireguard", NULL };
	char *show[] = { "wg", "show", (char *)ifname, NULL };
	char unit[64];
	struct kerr ig = { 0 };
	int r;

	*how = "kernel";
	if (wg_cmd(add, NULL, NULL, &ig) < 0) {
		*how = "wireguard-go";
		snprintf(unit, sizeof(unit), "--unit=kiln-wg-%s", ifname);
		char *sd[] = { "systemd-run", unit, "--collect", "-p", "Restart=no",
			       "wireguard-go", "-f", (char *)ifname, NULL };
		char *go[] = { "wireguard-go", (char *)ifname, NULL };
		r = wg_cmd(path_exists("/run/systemd/system") ? sd : go, NULL, NULL, e);
		if (r < 0)
			return kerr_prefix(e, "create %s (no kernel module: %s)", ifname,
					   ig.msg);
	}
	for (int64_t end = now_ms() + 5000;;) {
		if (wg_cmd(show, NULL, NULL, &ig) == 0)
			return 0;
		if (now_ms() > end)
			return kerr_set(e, -ETIMEDOUT, "create %s (%s): wg show did not "
					"answer within 5 s", ifname, *how);
		usleep(100 * 1000);
	}
}

/* Batches `wg set IF peer ...` clauses, flushing every WG_BATCH peers. */
struct wg_set {
	const char *ifname;
	struct strv argv;
	size_t peers;
	bool dry;
	int err;
	struct kerr *e;
};

static void set_flush(struct wg_set *s)
{
	if (s->peers && !s->dry && !s->err)
		s->err = wg_cmd(s->argv.v, NULL, NULL, s->e);
	strv_release(&s->argv);
	s->peers = 0;
}

static void set_peer(struct wg_set *s, const char *key)
{
	if (s->peers >= WG_BATCH)
		set_flush(s);
	if (!s->argv.n) {
		strv_push(&s->argv, "wg");
		strv_push(&s->argv, "set");
		strv_push(&s->argv, s->ifname);
	}
	strv_push(&s->argv, "peer");
	strv_push(&s->argv, key);
	s->peers++;
}

static void set_arg(struct wg_set *s, const char *k, const char *v)
{
	strv_push(&s->argv, k);
	strv_push(&s->argv, v);
}

/* "ABCDEFGH…" for a peer key in reports. */
static void peer_line(struct buf *b, char sign, const char *key, const char *fmt, ...)
	PRINTF(4, 5);
static void peer_line(struct buf *b, char sign, const char *key, const char *fmt, ...)
{
	va_list ap;

	buf_printf(b, "%c peer %.8s… ", sign, key);
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
	buf_addch(b, '\n');
}

/*
 * Peers: add the missing, update only the fields that differ, remove the
 * undesired.  A desired peer without an endpoint never touches the live
 * one (it roamed there); with one, it is set when none is known, or when
 * it differs and the last handshake is older than WG_ROAM_S.
 */
static void peers_converge(struct wg_set *s, const json_t *peers, struct wg_live *l,
			   struct buf *lines, size_t cnt[3])
{
	int64_t now = wall_ms() / 1000;
	size_t i;
	json_t *p;

	json_array_foreach(peers, i, p) {
		const char *key = res_str(p, "public_key");
		char ep[80] = "", ka[16];
		char *allowed = allowed_canon(json_object_get(p, "allowed_ips"), NULL);
		int keep = (int)json_integer_value(json_object_get(p, "keepalive"));
		struct wg_peer k = { .key = (char *)key };
		struct wg_peer *cur = l->n ? bsearch(&k, l->peers, l->n, sizeof(k), cmp_peer)
					   : NULL;

		if (res_str(p, "endpoint"))
			endpoint_canon(res_str(p, "endpoint"), ep, sizeof(ep), NULL, 0);
		snprintf(ka, sizeof(ka), "%d", keep);
		if (!cur) {
			set_peer(s, key);
			set_arg(s, "allowed-ips", allowed);
			if (keep)
				set_arg(s, "persistent-keepalive", ka);
			if (*ep)
				set_arg(s, "endpoint", ep);
			peer_line(lines, '+', key, "(%s)", *allowed ? allowed : "no allowed-ips");
			cnt[0]++;
			free(allowed);
			continue;
		}
		cur->seen = true;
		bool any = false;
		if (strcmp(cur->allowed, allowed)) {
			set_peer(s, key), any = true;
			set_arg(s, "allowed-ips", allowed);
			peer_line(lines, '~', key, "allowed-ips %s -> %s", cur->allowed, allowed);
		}
		if (cur->keepalive != keep) {
			if (!any)
				set_peer(s, key), any = true;
			set_arg(s, "persistent-keepalive", keep ? ka : "off");
			peer_line(lines, '~', key, "keepalive %d -> %d", cur->keepalive, keep);
		}
		if (*ep && (!cur->endpoint || (strcmp(cur->endpoint, ep) &&
					       (!cur->handshake ||
						now - cur->handshake > WG_ROAM_S)))) {
			if (!any)
				set_peer(s, key), any = true;
			set_arg(s, "endpoint", ep);
			peer_line(lines, '~', key, "endpoint %s -> %s",
				  cur->endpoint ? cur->endpoint : "(none)", ep);
		}
		cnt[2] += any;
		free(allowed);
	}
	for (i = 0; i < l->n; i++) {
		if (l->peers[i].seen)
			continue;
		set_peer(s, l->peers[i].key);
		strv_push(&s->argv, "remove");
		peer_line(lines, '-', l->peers[i].key, "(%s)",
			  *l->peers[i].allowed ? l->peers[i].allowed : "no allowed-ips");
		cnt[1]++;
	}
	set_flush(s);
}

/* Run one `ip` step unless dry; note what it does.  Returns -errno. */
static int ip_step(bool dry, char *const argv[], struct res_result *out,
		   const char *fmt, ...) PRINTF(4, 5);
static int ip_step(bool dry, char *const argv[], struct res_result *out,
		   const char *fmt, ...)
{
	struct kerr e = { 0 };
	va_list ap;
	struct buf b;

	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	res_note(out, "%s", b.s);
	buf_release(&b);
	out->status = RES_CHANGED;
	if (dry || wg_cmd(argv, NULL, NULL, &e) == 0)
		return 0;
	res_fail(out, "%s", e.msg);
	return e.code ? e.code : -EIO;
}

/* Does an earlier resource of this run (pending in check mode) make path? */
static bool key_pending(const struct res_ctx *ctx, const char *path)
{
	char *id = xasprintf("wgkey:%s", path);
	bool p = ctx->check_only && strv_contains(&ctx->changed, id);
	free(id);
	return p;
}

/*
 * wireguard: the config file, then the interface (created if missing),
 * its key, port, peers, MTU, address, link state and kiln's routes
 * (proto 77), each touched only when it differs.
 */
static void wg_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *ifname = res_str(r, "interface");
	const char *kpath = res_str(r, "private_key_file");
	const json_t *peers = json_object_get(r, "peers");
	char *kfull = path_join(ctx->root, kpath);
	char priv[WG_KEY_B64 + 1] = "", pub[WG_KEY_B64 + 1] = "", num[16];
	uint8_t k[32];
	struct wg_live l = { 0 };
	struct kerr e = { 0 };
	struct buf lines;
	struct stat st;
	size_t cnt[3] = { 0 };
	bool dry = ctx->check_only, pending = false;
	json_t *v;
	size_t i;
	int q, mtu;

	buf_init(&lines, RES_DIFF_CAP);
	if (sodium_init() < 0) {
		res_fail(out, "libsodium: init failed");
		goto out;
	}
	q = wg_key_read(kfull, k, &st);
	if (q < 0 && (key_pending(ctx, kpath) || (ctx->check_only && q == -ENOENT))) {
		/* a check before the key exists: the wgkey resource (in the same
		 * list, or an earlier phase) makes it on apply */
		pending = true;
		res_note(out, "private key %s: not made yet", kpath);
		out->status = RES_CHANGED;
	} else if (q < 0) {
		res_fail(out, "private_key_file %s %s", kpath, key_err(q));
		goto out;
	} else {
		sodium_bin2base64(priv, sizeof(priv), k, 32, sodium_base64_VARIANT_ORIGINAL);
		wg_public(k, pub);
	}

	if ((v = json_object_get(r, "mtu")) && json_is_integer(v))
		mtu = (int)json_integer_value(v);
	else
		mtu = mtu_auto(ifname, peers);

	if (res_str(r, "config_file") && !pending) {
		conf_converge(ctx, r, priv, mtu, out);
		if (out->status == RES_FAILED)
			goto out;
	}

	if (live_read(ifname, &l, &e) < 0) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	if (!l.exists) {
		const char *how = "";
		out->status = RES_CHANGED;
		if (dry) {
			res_note(out, "interface %s missing: would create", ifname);
		} else if (wg_create(ifname, &how, &e) < 0 || live_read(ifname, &l, &e) < 0) {
			res_fail(out, "%s", e.msg);
			goto out;
		} else {
			res_note(out, "interface created (%s)", how);
		}
	}

	if (!pending && strcmp(l.pub, pub)) {
		char *argv[] = { "wg", "set", (char *)ifname, "private-key", kfull, NULL };
		if (ip_step(dry, argv, out, "private key (public %.8s…)", pub) < 0)
			goto out;
	}
	if ((v = json_object_get(r, "listen_port")) && l.port != json_integer_value(v)) {
		snprintf(num, sizeof(num), "%d", (int)json_integer_value(v));
		char *argv[] = { "wg", "set", (char *)ifname, "listen-port", num, NULL };
		if (ip_step(dry, argv, out, "listen-port %d -> %s", l.port, num) < 0)
			goto out;
	}

	struct wg_set s = { .ifname = ifname, .dry = dry, .e = &e };
	peers_converge(&s, peers, &l, &lines, cnt);
	if (s.err) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	if (lines.len) {
		out->status = RES_CHANGED;
		res_add_diff(out, &lines);
		res_note(out, "peers +%zu -%zu ~%zu", cnt[0], cnt[1], cnt[2]);
	}

	if (l.mtu != mtu) {
		snprintf(num, sizeof(num), "%d", mtu);
		char *argv[] = { "ip", "link", "set", "dev", (char *)ifname, "mtu", num, NULL };
		if (ip_step(dry, argv, out, "mtu %d -> %d", l.mtu, mtu) < 0)
			goto out;
	}
	if (res_str(r, "address")) {
		/* The address as given (host bits are the host's own address). */
		const char *a = res_str(r, "address");
		if (!strv_contains(&l.addrs, a)) {
			char *argv[] = { "ip", "addr", "replace", (char *)a, "dev", (char *)ifname,
					 NULL };
			if (ip_step(dry, argv, out, "address %s", a) < 0)
				goto out;
		}
		for (i = 0; i < l.addrs.n; i++) {
			if (!strcmp(l.addrs.v[i], a))
				continue;
			char *argv[] = { "ip", "addr", "del", l.addrs.v[i], "dev", (char *)ifname,
					 NULL };
			if (ip_step(dry, argv, out, "remove address %s", l.addrs.v[i]) < 0)
				goto out;
		}
	}
	if (!l.up) {
		char *argv[] = { "ip", "link", "set", "dev", (char *)ifname, "up", NULL };
		if (ip_step(dry, argv, out, "link up") < 0)
			goto out;
	}
	json_array_foreach(json_object_get(r, "routes"), i, v) {
		char c[64];
		cidr_canon(json_string_value(v), true, false, c, sizeof(c));
		if (strv_contains(&l.routes, c))
			continue;
		char *argv[] = { "ip", "route", "replace", c, "dev", (char *)ifname, "proto",
				 "77", NULL };
		if (ip_step(dry, argv, out, "+ route %s", c) < 0)
			goto out;
	}
	for (i = 0; i < l.routes.n; i++) {
		bool want = false;
		size_t j;
		json_t *x;
		json_array_foreach(json_object_get(r, "routes"), j, x) {
			char c[64];
			cidr_canon(json_string_value(x), true, false, c, sizeof(c));
			want |= !strcmp(c, l.routes.v[i]);
		}
		if (want)
			continue;
		char *argv[] = { "ip", "route", "del", l.routes.v[i], "dev", (char *)ifname,
				 "proto", "77", NULL };
		if (ip_step(dry, argv, out, "- route %s", l.routes.v[i]) < 0)
			goto out;
	}
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(priv, sizeof(priv));
	live_release(&l);
	buf_release(&lines);
	free(kfull);
}

static const struct field wg_fields[] = {
	{ "interface", F_STR, true, NULL },
	{ "private_key_file", F_PATH, true, NULL },
	{ "listen_port", F_INT, false, NULL },
	{ "address", F_STR, false, NULL },
	{ "mtu", F_ANY, false, NULL },
	{ "config_file", F_PATH, false, NULL },
	{ "peers", F_ANY, true, NULL },
	{ "routes", F_ANY, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_wireguard = {
	.name = "wireguard", .id_field = "interface", .fields = wg_fields,
	.validate = wg_validate, .run = wg_run,
};
