/* boot: DHCP codec, engine decisions and the lease database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boot/boot.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static const uint8_t MAC_HOST[6] = { 0x52, 0x54, 0, 0, 0, 1 };
static const uint8_t MAC_A[6] = { 0x52, 0x54, 0, 0, 0, 0xa };
static const uint8_t MAC_B[6] = { 0x52, 0x54, 0, 0, 0, 0xb };
static const uint8_t MAC_C[6] = { 0x52, 0x54, 0, 0, 0, 0xc };

/* ---- request builder ------------------------------------------------- */

struct req {
	uint8_t b[1024];
	size_t len;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void req_begin(struct req *r, int type, const uint8_t *mac)
{
	memset(r, 0, sizeof(*r));
	r->b[0] = 1; r->b[1] = 1; r->b[2] = 6;
	put32(r->b + 4, 0x12345678);
	memcpy(r->b + 28, mac, 6);
	static const uint8_t cookie[4] = { 99, 130, 83, 99 };
	memcpy(r->b + 236, cookie, 4);
	r->len = 240;
	if (type) {
		r->b[r->len++] = 53; r->b[r->len++] = 1; r->b[r->len++] = (uint8_t)type;
	}
}

static void req_opt(struct req *r, uint8_t code, const void *v, size_t l)
{
	r->b[r->len++] = code;
	r->b[r->len++] = (uint8_t)l;
	memcpy(r->b + r->len, v, l);
	r->len += l;
}

static void req_ip(struct req *r, uint8_t code, uint32_t ip)
{
	uint8_t b[4];
	put32(b, ip);
	req_opt(r, code, b, 4);
}

static void req_end(struct req *r)
{
	r->b[r->len++] = 255;
	while (r->len < 300)
		r->b[r->len++] = 0;
}

/* ---- codec ------------------------------------------------------------ */

static void test_parse_roundtrip(void **state)
{
	struct req r;
	struct dhcp_msg *m = malloc(sizeof(*m)), *back = malloc(sizeof(*back));
	req_begin(&r, DHCPDISCOVER, MAC_A);
	r.b[10] = 0x80;   /* broadcast flag */
	req_opt(&r, DHO_HOSTNAME, "node-a", 6);
	uint8_t arch[2] = { 0, 7 };
	req_opt(&r, DHO_CLIENT_ARCH, arch, 2);
	req_end(&r);
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	assert_int_equal(dhcp_msg_type(m), DHCPDISCOVER);
	assert_int_equal(m->xid, 0x12345678);
	assert_int_equal(m->flags, DHCP_FLAG_BROADCAST);
	assert_memory_equal(m->chaddr, MAC_A, 6);
	assert_int_equal(dhcp_client_arch(m), 7);
	char host[16];
	assert_true(dhcp_opt_str(m, DHO_HOSTNAME, host, sizeof(host)));
	assert_string_equal(host, "node-a");

	/* Build a reply with a 600-byte option: split, then concatenated. */
	struct dhcp_out o;
	dhcp_out_begin(&o, m, DHCPOFFER, 1400);
	dhcp_out_set_addrs(&o, 0, IP(10, 0, 0, 5), IP(10, 0, 0, 1));
	assert_int_equal(dhcp_out_opt_u32(&o, DHO_SERVER_ID, IP(10, 0, 0, 1)), 0);
	uint8_t big[600];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	assert_int_equal(dhcp_out_opt(&o, 224, big, sizeof(big)), 0);
	assert_true(dhcp_out_set_file(&o, "undionly.kpxe"));
	assert_int_equal(dhcp_out_end(&o), 0);
	assert_true(o.len >= DHCP_REPLY_MIN);
	assert_int_equal(dhcp_parse(o.buf, o.len, back), 0);
	assert_int_equal(back->op, 2);
	assert_int_equal(dhcp_msg_type(back), DHCPOFFER);
	assert_int_equal(back->yiaddr, IP(10, 0, 0, 5));
	assert_int_equal(back->siaddr, IP(10, 0, 0, 1));
	assert_int_equal(back->xid, 0x12345678);
	assert_int_equal(back->flags, DHCP_FLAG_BROADCAST);
	assert_string_equal((char *)back->file, "undionly.kpxe");
	uint32_t sid;
	assert_true(dhcp_opt_ip(back, DHO_SERVER_ID, &sid));
	assert_int_equal(sid, IP(10, 0, 0, 1));
	size_t l;
	const uint8_t *v = dhcp_opt_get(back, 224, &l);
	assert_non_null(v);
	assert_int_equal(l, 600);
	assert_memory_equal(v, big, 600);

	/* The client's size limit is honoured: 576 leaves no room for 600. */
	dhcp_out_begin(&o, m, DHCPOFFER, 0);
	assert_int_equal(dhcp_out_opt(&o, 224, big, sizeof(big)), -E2BIG);
	free(m);
	free(back);
}

static void test_parse_malformed(void **state)
{
	struct req r;
	struct dhcp_msg *m = malloc(sizeof(*m));
	req_begin(&r, DHCPDISCOVER, MAC_A);
	req_end(&r);
	/* short */
	assert_int_equal(dhcp_parse(r.b, 239, m), -EBADMSG);
	assert_int_equal(dhcp_parse(r.b, 0, m), -EBADMSG);
	/* bad magic */
	r.b[236] = 98;
	assert_int_equal(dhcp_parse(r.b, r.len, m), -EBADMSG);
	r.b[236] = 99;
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	/* hlen > 16 */
	r.b[2] = 17;
	assert_int_equal(dhcp_parse(r.b, r.len, m), -EBADMSG);
	r.b[2] = 6;
	/* option whose length runs past the packet */
	req_begin(&r, DHCPDISCOVER, MAC_A);
	r.b[r.len++] = DHO_HOSTNAME;
	r.b[r.len++] = 50;
	memcpy(r.b + r.len, "abc", 3);
	r.len += 3;
	assert_int_equal(dhcp_parse(r.b, r.len, m), -EBADMSG);
	/* a code with no length byte at the very end */
	req_begin(&r, DHCPDISCOVER, MAC_A);
	r.b[r.len++] = DHO_HOSTNAME;
	assert_int_equal(dhcp_parse(r.b, r.len, m), -EBADMSG);
	/* bad overload value */
	req_begin(&r, DHCPDISCOVER, MAC_A);
	uint8_t ov = 4;
	req_opt(&r, DHO_OVERLOAD, &ov, 1);
	req_end(&r);
	assert_int_equal(dhcp_parse(r.b, r.len, m), -EBADMSG);
	/* too large */
	uint8_t *huge = calloc(1, DHCP_MAX_PKT + 1);
	memcpy(huge, r.b, 240);
	assert_int_equal(dhcp_parse(huge, DHCP_MAX_PKT + 1, m), -EBADMSG);
	free(huge);
	/* message type of the wrong length is "none" */
	req_begin(&r, 0, MAC_A);
	uint8_t t2[2] = { 1, 1 };
	req_opt(&r, DHO_MSG_TYPE, t2, 2);
	req_end(&r);
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	assert_int_equal(dhcp_msg_type(m), 0);
	free(m);
}

static void test_parse_pad_end_concat(void **state)
{
	struct req r;
	struct dhcp_msg *m = malloc(sizeof(*m));
	req_begin(&r, DHCPREQUEST, MAC_A);
	r.b[r.len++] = 0;   /* pads */
	r.b[r.len++] = 0;
	req_opt(&r, DHO_HOSTNAME, "ab", 2);
	req_opt(&r, DHO_PARAM_LIST, "\x01\x03", 2);
	req_opt(&r, DHO_HOSTNAME, "cd", 2);   /* RFC 3396: concatenated */
	r.b[r.len++] = 255;
	req_opt(&r, DHO_ROUTER, "\x0a\x00\x00\x01", 4);   /* after END: ignored */
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	char h[16];
	assert_true(dhcp_opt_str(m, DHO_HOSTNAME, h, sizeof(h)));
	assert_string_equal(h, "abcd");
	size_t l;
	assert_non_null(dhcp_opt_get(m, DHO_PARAM_LIST, &l));
	assert_int_equal(l, 2);
	assert_null(dhcp_opt_get(m, DHO_ROUTER, NULL));

	/* options in the file field via overload; no END there is fine */
	req_begin(&r, DHCPDISCOVER, MAC_A);
	uint8_t ov = 1;
	req_opt(&r, DHO_OVERLOAD, &ov, 1);
	req_end(&r);
	r.b[108] = DHO_CLIENT_ARCH; r.b[109] = 2; r.b[110] = 0; r.b[111] = 9;
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	assert_true(m->file_is_opts);
	assert_int_equal(dhcp_client_arch(m), 9);

	/* overlong hostname with control bytes: truncated and sanitised */
	req_begin(&r, DHCPDISCOVER, MAC_A);
	char name[255];
	memset(name, 'x', sizeof(name));
	name[3] = '\n';
	name[4] = '\x1b';
	req_opt(&r, DHO_HOSTNAME, name, sizeof(name));
	req_end(&r);
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	char out[64];
	assert_true(dhcp_opt_str(m, DHO_HOSTNAME, out, sizeof(out)));
	assert_int_equal(strlen(out), 63);
	assert_memory_equal(out, "xxx??xxx", 8);

	/* iPXE user class, raw and RFC 3004 forms */
	req_begin(&r, DHCPDISCOVER, MAC_A);
	req_opt(&r, DHO_USER_CLASS, "iPXE", 4);
	req_end(&r);
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	assert_true(dhcp_is_ipxe(m));
	req_begin(&r, DHCPDISCOVER, MAC_A);
	req_opt(&r, DHO_USER_CLASS, "\x03" "foo" "\x04" "iPXE", 9);
	req_end(&r);
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	assert_true(dhcp_is_ipxe(m));
	req_begin(&r, DHCPDISCOVER, MAC_A);
	req_opt(&r, DHO_USER_CLASS, "\x09" "iPXE", 5);   /* item overruns */
	req_end(&r);
	assert_int_equal(dhcp_parse(r.b, r.len, m), 0);
	assert_false(dhcp_is_ipxe(m));
	free(m);
}

/* ---- engine ----------------------------------------------------------- */

struct fx {
	char dir[64], path[96];
	struct boot_net nets[2];
	struct boot_host host;
	struct boot_config cfg;
	struct lease_db *db;
	struct dhcp_engine *eng;
	struct dhcp_msg *m, *rep;
	struct dhcp_reply r;
};

static void fx_open(struct fx *f)
{
	struct kerr e;
	assert_int_equal(lease_db_open(f->path, &f->db, &e), 0);
	assert_int_equal(dhcp_engine_new(&f->cfg, f->db, &f->eng, &e), 0);
}

static void fx_close(struct fx *f)
{
	dhcp_engine_free(f->eng);
	lease_db_close(f->db);
	f->eng = NULL;
	f->db = NULL;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/kiln-boot-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/leases.db", f->dir);
	struct boot_net *n = &f->nets[0];
	n->iface = "kbt-test";
	n->subnet = IP(10, 77, 0, 0);
	n->prefix = 24;
	n->router = IP(10, 77, 0, 1);
	n->dns[0] = IP(10, 77, 0, 1);
	n->dns[1] = IP(10, 77, 0, 2);
	n->n_dns = 2;
	n->pool_start = IP(10, 77, 0, 100);
	n->pool_end = IP(10, 77, 0, 103);
	n->lease_time = 600;
	n->allow_unknown = true;
	struct boot_net *rn = &f->nets[1];
	rn->subnet = IP(10, 88, 0, 0);
	rn->prefix = 24;
	rn->router = IP(10, 88, 0, 1);
	rn->pool_start = IP(10, 88, 0, 50);
	rn->pool_end = IP(10, 88, 0, 60);
	rn->allow_unknown = true;
	memcpy(f->host.mac, MAC_HOST, 6);
	f->host.ip = IP(10, 77, 0, 10);
	f->host.name = "gpu-01";
	f->cfg.server_ip = IP(10, 77, 0, 1);
	f->cfg.nets = f->nets;
	f->cfg.n_nets = 2;
	f->cfg.hosts = &f->host;
	f->cfg.n_hosts = 1;
	f->cfg.http_base = "http://10.77.0.1:8080/";
	f->cfg.offer_time = 30;
	f->cfg.decline_time = 300;
	f->m = malloc(sizeof(*f->m));
	f->rep = malloc(sizeof(*f->rep));
	fx_open(f);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	fx_close(f);
	rm_rf(f->dir);
	free(f->m);
	free(f->rep);
	free(f);
	return 0;
}

/* Run a built request through the engine; parse the reply into f->rep. */
static int run(struct fx *f, struct req *r, int64_t now)
{
	req_end(r);
	assert_int_equal(dhcp_parse(r->b, r->len, f->m), 0);
	struct dhcp_rx rx = { .net = 0 };
	int rc = dhcp_engine_handle(f->eng, f->m, &rx, now, &f->r);
	assert_int_equal(rc, 0);
	if (!f->r.send)
		return 0;
	assert_int_equal(dhcp_parse(f->r.out.buf, f->r.out.len, f->rep), 0);
	return dhcp_msg_type(f->rep);
}

static int discover(struct fx *f, const uint8_t *mac, uint32_t want, int64_t now)
{
	struct req r;
	req_begin(&r, DHCPDISCOVER, mac);
	if (want)
		req_ip(&r, DHO_REQUESTED_IP, want);
	return run(f, &r, now);
}

static int request(struct fx *f, const uint8_t *mac, uint32_t ip, int64_t now)
{
	struct req r;
	req_begin(&r, DHCPREQUEST, mac);
	req_ip(&r, DHO_SERVER_ID, f->cfg.server_ip);
	req_ip(&r, DHO_REQUESTED_IP, ip);
	return run(f, &r, now);
}

/* DISCOVER + REQUEST; returns the bound address (asserts ACK). */
static uint32_t bind_mac(struct fx *f, const uint8_t *mac, int64_t now)
{
	assert_int_equal(discover(f, mac, 0, now), DHCPOFFER);
	uint32_t ip = f->rep->yiaddr;
	assert_int_equal(request(f, mac, ip, now), DHCPACK);
	assert_int_equal(f->rep->yiaddr, ip);
	return ip;
}

static void test_reservation(void **state)
{
	struct fx *f = *state;
	assert_int_equal(discover(f, MAC_HOST, 0, 1000), DHCPOFFER);
	assert_int_equal(f->rep->yiaddr, IP(10, 77, 0, 10));
	assert_int_equal(f->r.dst_ip, 0xffffffffu);
	assert_int_equal(f->r.dst_port, DHCP_CLIENT_PORT);
	uint32_t v;
	assert_true(dhcp_opt_ip(f->rep, DHO_ROUTER, &v));
	assert_int_equal(v, IP(10, 77, 0, 1));
	assert_true(dhcp_opt_ip(f->rep, DHO_SUBNET_MASK, &v));
	assert_int_equal(v, 0xffffff00u);
	assert_true(dhcp_opt_ip(f->rep, DHO_SERVER_ID, &v));
	assert_int_equal(v, IP(10, 77, 0, 1));
	size_t l;
	const uint8_t *dns = dhcp_opt_get(f->rep, DHO_DNS, &l);
	assert_int_equal(l, 8);
	assert_memory_equal(dns, "\x0a\x4d\x00\x01\x0a\x4d\x00\x02", 8);
	char h[32];
	assert_true(dhcp_opt_str(f->rep, DHO_HOSTNAME, h, sizeof(h)));
	assert_string_equal(h, "gpu-01");
	/* not a PXE client: no boot file */
	assert_int_equal(f->rep->file[0], 0);

	assert_int_equal(request(f, MAC_HOST, IP(10, 77, 0, 10), 1001), DHCPACK);
	assert_true(dhcp_opt_ip(f->rep, DHO_LEASE_TIME, &v));
	assert_int_equal(v, 600);
	struct lease le;
	assert_int_equal(lease_db_get(f->db, IP(10, 77, 0, 10), &le), 0);
	assert_int_equal(le.state, LEASE_BOUND);
	assert_memory_equal(le.mac, MAC_HOST, 6);
	assert_int_equal(le.expires, 1601);

	/* the host asking for another address is refused */
	assert_int_equal(request(f, MAC_HOST, IP(10, 77, 0, 11), 1002), DHCPNAK);
	/* an unknown MAC asking for the reserved address is refused */
	assert_int_equal(request(f, MAC_A, IP(10, 77, 0, 10), 1002), DHCPNAK);
	/* and never gets it from the pool */
	assert_int_equal(discover(f, MAC_A, IP(10, 77, 0, 10), 1002), DHCPOFFER);
	assert_int_not_equal(f->rep->yiaddr, IP(10, 77, 0, 10));
}

static void test_pool_and_nak(void **state)
{
	struct fx *f = *state;
	assert_int_equal(discover(f, MAC_A, 0, 1000), DHCPOFFER);
	uint32_t a = f->rep->yiaddr;
	assert_true(a >= IP(10, 77, 0, 100) && a <= IP(10, 77, 0, 103));
	/* B is offered a different address while A's offer stands */
	assert_int_equal(discover(f, MAC_B, a, 1001), DHCPOFFER);
	uint32_t b = f->rep->yiaddr;
	assert_int_not_equal(a, b);
	/* B cannot take A's offered address */
	assert_int_equal(request(f, MAC_B, a, 1002), DHCPNAK);
	assert_int_equal(f->r.dst_ip, 0xffffffffu);
	assert_int_equal(request(f, MAC_A, a, 1002), DHCPACK);
	/* wrong network */
	assert_int_equal(request(f, MAC_A, IP(192, 168, 1, 5), 1003), DHCPNAK);
	size_t l;
	assert_non_null(dhcp_opt_get(f->rep, DHO_MESSAGE, &l));
	/* a second DISCOVER from A gets the same address back */
	assert_int_equal(discover(f, MAC_A, 0, 1004), DHCPOFFER);
	assert_int_equal(f->rep->yiaddr, a);
	struct lease le;
	assert_int_equal(lease_db_get(f->db, a, &le), 0);
	assert_int_equal(le.state, LEASE_BOUND);   /* the offer did not demote it */

	/* renewal: ciaddr set, no option 50 -> unicast ACK to ciaddr */
	struct req r;
	req_begin(&r, DHCPREQUEST, MAC_A);
	put32(r.b + 12, a);
	assert_int_equal(run(f, &r, 1100), DHCPACK);
	assert_int_equal(f->r.dst_ip, a);
	assert_int_equal(f->r.dst_port, DHCP_CLIENT_PORT);
	assert_int_equal(lease_db_get(f->db, a, &le), 0);
	assert_int_equal(le.expires, 1700);
}

static void test_exhaustion_and_expiry(void **state)
{
	struct fx *f = *state;
	const uint8_t macs[5][6] = { { 2, 0, 0, 0, 0, 1 }, { 2, 0, 0, 0, 0, 2 },
				     { 2, 0, 0, 0, 0, 3 }, { 2, 0, 0, 0, 0, 4 },
				     { 2, 0, 0, 0, 0, 5 } };
	uint32_t seen[4];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(discover(f, macs[i], 0, 1000), DHCPOFFER);
		seen[i] = f->rep->yiaddr;
		for (int j = 0; j < i; j++)
			assert_int_not_equal(seen[i], seen[j]);
	}
	/* pool of 4 is held by offers: the fifth gets nothing */
	assert_int_equal(discover(f, macs[4], 0, 1000), 0);
	assert_false(f->r.send);
	/* offers expire after offer_time (30 s): the fifth gets one */
	assert_int_equal(discover(f, macs[4], 0, 1031), DHCPOFFER);
	/* leases expire too: bind all, then after lease_time one is reused */
	for (int i = 0; i < 4; i++)
		assert_int_equal(discover(f, macs[i], 0, 2000), DHCPOFFER),
		assert_int_equal(request(f, macs[i], f->rep->yiaddr, 2000), DHCPACK);
	assert_int_equal(discover(f, macs[4], 0, 2001), 0);
	assert_int_equal(discover(f, macs[4], 0, 2601), DHCPOFFER);
}

/*
 * An exhausted pool costs no scan per DISCOVER: the first DISCOVER that
 * finds it full scans it once; then each DISCOVER from a new MAC costs
 * its own MAC lookup and nothing more, until an address is freed (the
 * freed one is handed out without a scan) or a lease expires.
 */
static void test_exhausted_pool_cost(void **state)
{
	struct fx *f = *state;
	fx_close(f);
	f->nets[0].pool_end = IP(10, 77, 0, 250);   /* 151 addresses */
	fx_open(f);
	uint8_t mac[6] = { 2, 1, 0, 0, 0, 0 };
	for (uint32_t ip = IP(10, 77, 0, 100); ip <= IP(10, 77, 0, 250); ip++) {
		struct lease l = { .ip = ip, .state = LEASE_BOUND,
				   .expires = ip == IP(10, 77, 0, 200) ? 1500 : 5000 };
		memcpy(l.mac, mac, 6);
		l.mac[5] = (uint8_t)ip;
		assert_int_equal(lease_db_put(f->db, &l, 1000, false), 0);
	}
	mac[1] = 9;
	uint64_t before = lease_db_lookups(f->db);
	assert_int_equal(discover(f, mac, 0, 1000), 0);
	assert_false(f->r.send);
	uint64_t scan = lease_db_lookups(f->db) - before;
	assert_true(scan >= 151);   /* the one scan */
	before = lease_db_lookups(f->db);
	for (int i = 0; i < 1000; i++) {
		mac[4] = (uint8_t)(i >> 8);
		mac[5] = (uint8_t)i;
		assert_int_equal(discover(f, mac, 0, 1001 + i / 100), 0);
		assert_false(f->r.send);
	}
	assert_true(lease_db_lookups(f->db) - before <= 2 * 1000);

	/* a RELEASE: the next new MAC gets that address, without a scan */
	uint8_t owner[6] = { 2, 1, 0, 0, 0, 150 };
	struct req r;
	req_begin(&r, DHCPRELEASE, owner);
	put32(r.b + 12, IP(10, 77, 0, 150));
	req_ip(&r, DHO_SERVER_ID, f->cfg.server_ip);
	assert_int_equal(run(f, &r, 1100), 0);
	before = lease_db_lookups(f->db);
	uint8_t fresh[6] = { 2, 7, 0, 0, 0, 1 };
	assert_int_equal(discover(f, fresh, 0, 1101), DHCPOFFER);
	assert_int_equal(f->rep->yiaddr, IP(10, 77, 0, 150));
	assert_true(lease_db_lookups(f->db) - before <= 4);
	fresh[5] = 2;
	before = lease_db_lookups(f->db);
	assert_int_equal(discover(f, fresh, 0, 1102), 0);
	assert_true(lease_db_lookups(f->db) - before <= 2);

	/* the offer of .150 lapses after offer_time (30 s): offered again */
	assert_int_equal(discover(f, fresh, 0, 1130), 0);
	assert_int_equal(discover(f, fresh, 0, 1131), DHCPOFFER);
	assert_int_equal(f->rep->yiaddr, IP(10, 77, 0, 150));
	/* taken and bound; the earliest lease expires at 1500: then its
	 * address is offered */
	assert_int_equal(request(f, fresh, IP(10, 77, 0, 150), 1131), DHCPACK);
	fresh[5] = 4;
	assert_int_equal(discover(f, fresh, 0, 1499), 0);
	assert_int_equal(discover(f, fresh, 0, 1500), DHCPOFFER);
	assert_int_equal(f->rep->yiaddr, IP(10, 77, 0, 200));

	/* a rolled-back batch may have freed anything: the pool is looked at again */
	fresh[5] = 3;
	assert_int_equal(discover(f, fresh, 0, 1501), 0);
	assert_int_equal(lease_db_batch_begin(f->db), 0);
	struct lease gone;
	assert_int_equal(lease_db_get(f->db, IP(10, 77, 0, 120), &gone), 0);
	gone.state = LEASE_RELEASED;
	gone.expires = 1501;
	assert_int_equal(lease_db_put(f->db, &gone, 1501, false), 0);
	assert_int_equal(lease_db_batch_end(f->db, false), 0);
	before = lease_db_lookups(f->db);
	assert_int_equal(discover(f, fresh, 0, 1502), 0);
	assert_true(lease_db_lookups(f->db) - before >= 151);
}

static void test_release_decline(void **state)
{
	struct fx *f = *state;
	uint32_t a = bind_mac(f, MAC_A, 1000);
	/* RELEASE frees */
	struct req r;
	req_begin(&r, DHCPRELEASE, MAC_A);
	put32(r.b + 12, a);
	req_ip(&r, DHO_SERVER_ID, f->cfg.server_ip);
	assert_int_equal(run(f, &r, 1010), 0);
	assert_false(f->r.send);
	struct lease le;
	assert_int_equal(lease_db_get(f->db, a, &le), 0);
	assert_int_equal(le.state, LEASE_RELEASED);
	assert_int_equal(discover(f, MAC_B, a, 1011), DHCPOFFER);
	assert_int_equal(f->rep->yiaddr, a);
	/* a RELEASE from a MAC that does not hold it changes nothing */
	assert_int_equal(request(f, MAC_B, a, 1012), DHCPACK);
	req_begin(&r, DHCPRELEASE, MAC_C);
	put32(r.b + 12, a);
	assert_int_equal(run(f, &r, 1013), 0);
	assert_int_equal(lease_db_get(f->db, a, &le), 0);
	assert_int_equal(le.state, LEASE_BOUND);
	assert_memory_equal(le.mac, MAC_B, 6);

	/* DECLINE quarantines, for everyone including the decliner */
	req_begin(&r, DHCPDECLINE, MAC_B);
	req_ip(&r, DHO_REQUESTED_IP, a);
	req_ip(&r, DHO_SERVER_ID, f->cfg.server_ip);
	assert_int_equal(run(f, &r, 1020), 0);
	assert_int_equal(lease_db_get(f->db, a, &le), 0);
	assert_int_equal(le.state, LEASE_DECLINED);
	assert_int_equal(le.expires, 1320);
	assert_int_equal(discover(f, MAC_C, a, 1021), DHCPOFFER);
	assert_int_not_equal(f->rep->yiaddr, a);
	assert_int_equal(discover(f, MAC_B, a, 1022), DHCPOFFER);
	assert_int_not_equal(f->rep->yiaddr, a);
	assert_int_equal(request(f, MAC_B, a, 1022), DHCPNAK);
	/* after the quarantine it is usable again */
	assert_int_equal(request(f, MAC_C, a, 1400), DHCPACK);
}

static void test_relay(void **state)
{
	struct fx *f = *state;
	struct req r;
	static const uint8_t ri[] = { 1, 4, 'p', 'o', 'r', 't', 2, 2, 0xab, 0xcd };
	req_begin(&r, DHCPDISCOVER, MAC_A);
	put32(r.b + 24, IP(10, 88, 0, 1));   /* giaddr */
	r.b[3] = 1;                           /* hops */
	req_opt(&r, DHO_RELAY_INFO, ri, sizeof(ri));
	assert_int_equal(run(f, &r, 1000), DHCPOFFER);
	assert_int_equal(f->r.dst_ip, IP(10, 88, 0, 1));
	assert_int_equal(f->r.dst_port, DHCP_SERVER_PORT);
	assert_int_equal(f->rep->giaddr, IP(10, 88, 0, 1));
	uint32_t y = f->rep->yiaddr;
	assert_true(y >= IP(10, 88, 0, 50) && y <= IP(10, 88, 0, 60));
	uint32_t v;
	assert_true(dhcp_opt_ip(f->rep, DHO_ROUTER, &v));
	assert_int_equal(v, IP(10, 88, 0, 1));
	size_t l;
	const uint8_t *echo = dhcp_opt_get(f->rep, DHO_RELAY_INFO, &l);
	assert_non_null(echo);
	assert_int_equal(l, sizeof(ri));
	assert_memory_equal(echo, ri, sizeof(ri));
	/* option 82 is the last option before END */
	const uint8_t *ob = f->r.out.buf;
	size_t i = 240, last = 0;
	while (i < f->r.out.len && ob[i] != 255) {
		if (ob[i] == 0) {
			i++;
			continue;
		}
		last = ob[i];
		i += 2 + ob[i + 1];
	}
	assert_int_equal(last, DHO_RELAY_INFO);
	/* a giaddr in no net is ignored */
	req_begin(&r, DHCPDISCOVER, MAC_A);
	put32(r.b + 24, IP(172, 16, 0, 1));
	assert_int_equal(run(f, &r, 1000), 0);
	assert_false(f->r.send);
	/* relayed NAK is sent to the relay with the broadcast bit */
	req_begin(&r, DHCPREQUEST, MAC_B);
	put32(r.b + 24, IP(10, 88, 0, 1));
	req_ip(&r, DHO_REQUESTED_IP, IP(10, 77, 0, 100));
	assert_int_equal(run(f, &r, 1000), DHCPNAK);
	assert_int_equal(f->r.dst_ip, IP(10, 88, 0, 1));
	assert_true(f->rep->flags & DHCP_FLAG_BROADCAST);
	/* a NAK that cannot echo the relay's information is not sent, and
	 * that is no engine error (found by fuzz_dhcp) */
	static uint8_t big[255];
	memset(big, 'x', sizeof(big));
	req_begin(&r, DHCPREQUEST, MAC_B);
	put32(r.b + 24, IP(10, 88, 0, 1));
	req_ip(&r, DHO_REQUESTED_IP, IP(10, 77, 0, 100));
	req_opt(&r, DHO_RELAY_INFO, big, sizeof(big));
	req_opt(&r, DHO_RELAY_INFO, big, sizeof(big));   /* RFC 3396: 510 bytes */
	assert_int_equal(run(f, &r, 1000), 0);
	assert_false(f->r.send);
	assert_non_null(strstr(f->r.note, "NAK"));
	assert_non_null(strstr(f->r.note, "reply too large: not sent"));
}

static void test_unknown_not_allowed(void **state)
{
	struct fx *f = *state;
	f->nets[0].allow_unknown = false;
	assert_int_equal(discover(f, MAC_A, 0, 1000), 0);
	assert_false(f->r.send);
	assert_non_null(strstr(f->r.note, "unknown"));
	assert_int_equal(request(f, MAC_A, IP(10, 77, 0, 100), 1000), DHCPNAK);
	/* the reserved host is still served */
	assert_int_equal(discover(f, MAC_HOST, 0, 1000), DHCPOFFER);
}

static int pxe_discover(struct fx *f, const uint8_t *mac, const char *vc,
			int arch, bool ipxe)
{
	struct req r;
	req_begin(&r, DHCPDISCOVER, mac);
	if (vc)
		req_opt(&r, DHO_VENDOR_CLASS, vc, strlen(vc));
	if (arch >= 0) {
		uint8_t a[2] = { (uint8_t)(arch >> 8), (uint8_t)arch };
		req_opt(&r, DHO_CLIENT_ARCH, a, 2);
	}
	if (ipxe)
		req_opt(&r, DHO_USER_CLASS, "iPXE", 4);
	req_opt(&r, DHO_PARAM_LIST, "\x01\x03\x06\x42\x43", 5);
	return run(f, &r, 1000);
}

static void test_pxe(void **state)
{
	struct fx *f = *state;
	char s[256];
	assert_int_equal(pxe_discover(f, MAC_A, "PXEClient:Arch:00000:UNDI:002001", 0,
				      false), DHCPOFFER);
	assert_string_equal((char *)f->rep->file, "undionly.kpxe");
	assert_int_equal(f->rep->siaddr, f->cfg.server_ip);
	assert_true(dhcp_opt_str(f->rep, DHO_TFTP_SERVER, s, sizeof(s)));
	assert_string_equal(s, "10.77.0.1");
	assert_true(dhcp_opt_str(f->rep, DHO_BOOTFILE, s, sizeof(s)));
	assert_string_equal(s, "undionly.kpxe");
	assert_true(dhcp_opt_str(f->rep, DHO_VENDOR_CLASS, s, sizeof(s)));
	assert_string_equal(s, "PXEClient");

	assert_int_equal(pxe_discover(f, MAC_A, "PXEClient:Arch:00007:UNDI:003016", 7,
				      false), DHCPOFFER);
	assert_string_equal((char *)f->rep->file, "snponly.efi");
	assert_int_equal(pxe_discover(f, MAC_A, "PXEClient:Arch:00009", 9, false),
			 DHCPOFFER);
	assert_string_equal((char *)f->rep->file, "snponly.efi");
	assert_int_equal(pxe_discover(f, MAC_A, "PXEClient", 11, false), DHCPOFFER);
	assert_string_equal((char *)f->rep->file, "ipxe-arm64.efi");
	/* unknown architecture: an address but no loader */
	assert_int_equal(pxe_discover(f, MAC_A, "PXEClient", 2, false), DHCPOFFER);
	assert_int_equal(f->rep->file[0], 0);
	assert_null(dhcp_opt_get(f->rep, DHO_BOOTFILE, NULL));

	/* UEFI HTTP boot: a URL, and option 60 echoed */
	assert_int_equal(pxe_discover(f, MAC_A, "HTTPClient:Arch:00016", 16, false),
			 DHCPOFFER);
	assert_string_equal((char *)f->rep->file, "http://10.77.0.1:8080/boot/snponly.efi");
	assert_true(dhcp_opt_str(f->rep, DHO_VENDOR_CLASS, s, sizeof(s)));
	assert_string_equal(s, "HTTPClient");
	assert_int_equal(f->rep->siaddr, 0);

	/* iPXE: chainload the per-host script, no loop back to undionly */
	assert_int_equal(pxe_discover(f, MAC_HOST, "PXEClient:Arch:00000", 0, true),
			 DHCPOFFER);
	assert_true(dhcp_opt_str(f->rep, DHO_BOOTFILE, s, sizeof(s)));
	assert_string_equal(s, "http://10.77.0.1:8080/boot/52:54:00:00:00:01.ipxe");
	size_t l;
	const uint8_t *enc = dhcp_opt_get(f->rep, DHO_IPXE_ENCAP, &l);
	assert_non_null(enc);
	assert_memory_equal(enc, "\xb0\x01\x01", 3);

	/* a host's own boot file wins over the arch choice */
	f->host.boot_file = "custom/pxelinux.0";
	assert_int_equal(pxe_discover(f, MAC_HOST, "PXEClient", 7, false), DHCPOFFER);
	assert_string_equal((char *)f->rep->file, "custom/pxelinux.0");
	/* and non-PXE clients (dhclient) get it too */
	assert_int_equal(discover(f, MAC_HOST, 0, 1000), DHCPOFFER);
	assert_string_equal((char *)f->rep->file, "custom/pxelinux.0");
	f->host.boot_file = NULL;
}

static void test_inform_and_other_server(void **state)
{
	struct fx *f = *state;
	struct req r;
	req_begin(&r, DHCPINFORM, MAC_C);
	put32(r.b + 12, IP(10, 77, 0, 200));
	assert_int_equal(run(f, &r, 1000), DHCPACK);
	assert_int_equal(f->rep->yiaddr, 0);
	assert_int_equal(f->rep->ciaddr, IP(10, 77, 0, 200));
	assert_null(dhcp_opt_get(f->rep, DHO_LEASE_TIME, NULL));
	assert_non_null(dhcp_opt_get(f->rep, DHO_ROUTER, NULL));
	assert_int_equal(f->r.dst_ip, IP(10, 77, 0, 200));

	/* the client picked another server: our offer is withdrawn */
	assert_int_equal(discover(f, MAC_A, 0, 1000), DHCPOFFER);
	uint32_t a = f->rep->yiaddr;
	req_begin(&r, DHCPREQUEST, MAC_A);
	req_ip(&r, DHO_SERVER_ID, IP(10, 77, 0, 254));
	req_ip(&r, DHO_REQUESTED_IP, IP(10, 77, 0, 150));
	assert_int_equal(run(f, &r, 1001), 0);
	assert_false(f->r.send);
	struct lease le;
	assert_int_equal(lease_db_get(f->db, a, &le), 0);
	assert_int_equal(le.state, LEASE_RELEASED);
	/* server messages and non-Ethernet requests are ignored */
	req_begin(&r, DHCPOFFER, MAC_A);
	assert_int_equal(run(f, &r, 1001), 0);
	assert_false(f->r.send);
	req_begin(&r, DHCPDISCOVER, MAC_A);
	r.b[1] = 6;   /* htype IEEE 802 */
	assert_int_equal(run(f, &r, 1001), 0);
	assert_false(f->r.send);
}

static void test_persistence(void **state)
{
	struct fx *f = *state;
	uint32_t a = bind_mac(f, MAC_A, 1000);
	fx_close(f);
	fx_open(f);
	struct lease le;
	assert_int_equal(lease_db_get(f->db, a, &le), 0);
	assert_int_equal(le.state, LEASE_BOUND);
	assert_memory_equal(le.mac, MAC_A, 6);
	/* after the restart nobody else can take it, and A keeps it */
	assert_int_equal(request(f, MAC_B, a, 1100), DHCPNAK);
	assert_int_equal(discover(f, MAC_B, a, 1100), DHCPOFFER);
	assert_int_not_equal(f->rep->yiaddr, a);
	assert_int_equal(discover(f, MAC_A, 0, 1100), DHCPOFFER);
	assert_int_equal(f->rep->yiaddr, a);
	/* the database rejects a second owner directly too */
	struct lease other = { .ip = a, .state = LEASE_BOUND, .expires = 5000 };
	memcpy(other.mac, MAC_B, 6);
	assert_int_equal(lease_db_put(f->db, &other, 1100, true), -EBUSY);
}

/* Group commit: a rolled-back batch leaves nothing, a committed one stays. */
static void test_batch(void **state)
{
	struct fx *f = *state;
	struct lease a = { .ip = IP(10, 77, 0, 100), .state = LEASE_BOUND, .expires = 5000 };
	struct lease b = a;
	memcpy(a.mac, MAC_A, 6);
	memcpy(b.mac, MAC_B, 6);
	struct lease le;
	assert_int_equal(lease_db_batch_begin(f->db), 0);
	assert_int_equal(lease_db_batch_begin(f->db), -EBUSY);
	assert_int_equal(lease_db_put(f->db, &a, 1000, true), 0);
	assert_int_equal(lease_db_get(f->db, a.ip, &le), 0);
	assert_int_equal(lease_db_batch_end(f->db, false), 0);
	assert_int_equal(lease_db_get(f->db, a.ip, &le), -ENOENT);

	assert_int_equal(lease_db_batch_begin(f->db), 0);
	assert_int_equal(lease_db_put(f->db, &a, 1000, true), 0);
	/* a refused put inside the batch does not spoil the others */
	assert_int_equal(lease_db_put(f->db, &b, 1000, true), -EBUSY);
	b.ip = IP(10, 77, 0, 101);
	assert_int_equal(lease_db_put(f->db, &b, 1000, true), 0);
	assert_int_equal(lease_db_batch_end(f->db, true), 0);
	assert_int_equal(lease_db_batch_end(f->db, true), -EINVAL);
	assert_int_equal(lease_db_sync(f->db), 0);
	fx_close(f);
	fx_open(f);
	assert_int_equal(lease_db_get(f->db, a.ip, &le), 0);
	assert_memory_equal(le.mac, MAC_A, 6);
	assert_int_equal(lease_db_get(f->db, b.ip, &le), 0);
	assert_memory_equal(le.mac, MAC_B, 6);
}

/*
 * lease_db_sync fsyncs the WAL through a descriptor of its own: it must
 * stay the live WAL when another connection (`kiln boot status`) opens
 * and closes the database, and a WAL removed under it must be reported,
 * not silently "synced".
 */
static void test_sync_wal(void **state)
{
	struct fx *f = *state;
	struct kerr e;
	struct lease_db *other;
	struct lease a = { .ip = IP(10, 77, 0, 100), .state = LEASE_BOUND, .expires = 5000 };
	memcpy(a.mac, MAC_A, 6);

	assert_int_equal(lease_db_open(f->path, &other, &e), 0);
	lease_db_close(other);
	assert_int_equal(lease_db_batch_begin(f->db), 0);
	assert_int_equal(lease_db_put(f->db, &a, 1000, true), 0);
	assert_int_equal(lease_db_batch_end(f->db, true), 0);
	assert_int_equal(lease_db_sync(f->db), 0);

	/* a committed batch is visible to other connections before any sync */
	a.ip = IP(10, 77, 0, 101);
	memcpy(a.mac, MAC_B, 6);
	assert_int_equal(lease_db_batch_begin(f->db), 0);
	assert_int_equal(lease_db_put(f->db, &a, 1000, true), 0);
	assert_int_equal(lease_db_batch_end(f->db, true), 0);
	struct lease le;
	assert_int_equal(lease_db_open(f->path, &other, &e), 0);
	assert_int_equal(lease_db_get(other, a.ip, &le), 0);
	assert_memory_equal(le.mac, MAC_B, 6);
	lease_db_close(other);

	char wal[128];
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(unlink(wal), 0);
	assert_int_equal(lease_db_sync(f->db), -ESTALE);
}

struct owner_check {
	uint32_t ip[64];
	uint8_t mac[64][6];
	int n, dup;
	int64_t now;
};

static int collect(const struct lease *l, void *arg)
{
	struct owner_check *c = arg;
	if (l->expires <= c->now || l->state == LEASE_RELEASED)
		return 0;
	for (int i = 0; i < c->n; i++)
		if (memcmp(c->mac[i], l->mac, 6) == 0 && l->state != LEASE_DECLINED)
			c->dup++;
	if (c->n < 64) {
		c->ip[c->n] = l->ip;
		memcpy(c->mac[c->n], l->mac, 6);
		c->n++;
	}
	return 0;
}

/*
 * Many clients doing random things: whenever an ACK is given, no other
 * client may hold an unexpired ACK for that address (client view), and
 * the database never shows one MAC with two live addresses.
 */
static void test_random_no_double_binding(void **state)
{
	struct fx *f = *state;
	enum { NM = 12 };
	uint8_t macs[NM][6];
	uint32_t held[NM] = { 0 };
	int64_t until[NM] = { 0 };
	uint32_t seed = 12345;
	f->nets[0].lease_time = 50;
	for (int i = 0; i < NM; i++) {
		uint8_t m[6] = { 2, 1, 0, 0, 0, (uint8_t)i };
		memcpy(macs[i], m, 6);
	}
	int acks = 0;
	for (int step = 0; step < 3000; step++) {
		seed = seed * 1103515245 + 12345;
		int who = (int)((seed >> 8) % NM), what = (int)((seed >> 16) % 10);
		int64_t now = 1000 + step / 3;
		struct req r;
		if (what < 4) {
			if (discover(f, macs[who], 0, now) == DHCPOFFER &&
			    request(f, macs[who], f->rep->yiaddr, now) == DHCPACK) {
				uint32_t ip = f->rep->yiaddr;
				for (int j = 0; j < NM; j++)
					if (j != who && held[j] == ip && until[j] > now)
						fail_msg("address given to two MACs");
				held[who] = ip;
				until[who] = now + 50;
				acks++;
			}
		} else if (what < 6 && held[who]) {
			req_begin(&r, DHCPRELEASE, macs[who]);
			put32(r.b + 12, held[who]);
			run(f, &r, now);
			held[who] = 0;
		} else if (what < 7 && held[who]) {
			/* someone asks for another's address */
			int j = (who + 1) % NM;
			if (held[j] && until[j] > now)
				assert_int_equal(request(f, macs[who], held[j], now), DHCPNAK);
		} else {
			discover(f, macs[who], 0, now);
		}
		struct owner_check c = { .now = now };
		lease_db_foreach(f->db, collect, &c);
		assert_int_equal(c.dup, 0);
	}
	assert_true(acks > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_roundtrip),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_pad_end_concat),
		cmocka_unit_test_setup_teardown(test_reservation, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pool_and_nak, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_exhaustion_and_expiry, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_exhausted_pool_cost, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_release_decline, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_relay, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_not_allowed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pxe, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_inform_and_other_server, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_persistence, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_batch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_wal, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_random_no_double_binding, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
