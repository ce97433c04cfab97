/* DHCPv4 packet codec: parse with a remaining-length counter, build replies. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"

static const uint8_t dhcp_cookie[4] = { 99, 130, 83, 99 };

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/*
 * Walk one option area (the options field, or file/sname when
 * overloaded) and append each option's value to m->optbuf, concatenating
 * repeats (RFC 3396).  Stops at END; running out of bytes without END is
 * tolerated (many clients omit it in sname/file), an option whose length
 * runs past the area is not.
 */
static int parse_area(struct dhcp_msg *m, const uint8_t *p, size_t left)
{
	while (left > 0) {
		uint8_t code = *p++;
		left--;
		if (code == DHO_PAD)
			continue;
		if (code == DHO_END)
			return 0;
		if (left < 1)
			goto too_short;
		uint8_t len = *p++;
		left--;
		if (left < len)
			goto too_short;
		struct dhcp_opt *o = &m->opt[code];
		if (o->present && o->off + o->len != m->optbuf_len) {
			/* A repeat after another option: move the earlier
			 * value to the end so the concatenation is contiguous. */
			if (m->optbuf_len + o->len + len > sizeof(m->optbuf))
				goto too_short;
			memmove(m->optbuf + m->optbuf_len, m->optbuf + o->off, o->len);
			o->off = (uint16_t)m->optbuf_len;
			m->optbuf_len += o->len;
		}
		if (m->optbuf_len + len > sizeof(m->optbuf))
			goto too_short;
		if (!o->present) {
			o->present = true;
			o->off = (uint16_t)m->optbuf_len;
			o->len = 0;
		}
		memcpy(m->optbuf + m->optbuf_len, p, len);
		m->optbuf_len += len;
		o->len += len;
		p += len;
		left -= len;
	}
	return 0;
too_short:
	return -EBADMSG;
}

int dhcp_parse(const uint8_t *pkt, size_t len, struct dhcp_msg *m)
{
	memset(m, 0, offsetof(struct dhcp_msg, optbuf));
	m->optbuf_len = 0;
	if (len < DHCP_MIN_LEN || len > DHCP_MAX_PKT)
		goto too_short;
	m->op = pkt[0];
	m->htype = pkt[1];
	m->hlen = pkt[2];
	m->hops = pkt[3];
	m->xid = get32(pkt + 4);
	m->secs = get16(pkt + 8);
	m->flags = get16(pkt + 10);
	m->ciaddr = get32(pkt + 12);
	m->yiaddr = get32(pkt + 16);
	m->siaddr = get32(pkt + 20);
	m->giaddr = get32(pkt + 24);
	memcpy(m->chaddr, pkt + 28, 16);
	memcpy(m->sname, pkt + 44, 64);
	memcpy(m->file, pkt + 108, 128);
	if (m->hlen > 16)
		goto bad;
	if (memcmp(pkt + DHCP_FIXED_LEN, dhcp_cookie, 4) != 0)
		goto bad;
	if (parse_area(m, pkt + DHCP_MIN_LEN, len - DHCP_MIN_LEN) < 0)
		goto bad;
	/* Option overload (52): 1 = file, 2 = sname, 3 = both; file first. */
	size_t ol;
	const uint8_t *ov = dhcp_opt_get(m, DHO_OVERLOAD, &ol);
	if (ov) {
		if (ol != 1 || ov[0] < 1 || ov[0] > 3)
			goto bad;
		uint8_t which = ov[0];
		if (which & 1) {
			m->file_is_opts = true;
			if (parse_area(m, pkt + 108, 128) < 0)
				goto bad;
		}
		if (which & 2) {
			m->sname_is_opts = true;
			if (parse_area(m, pkt + 44, 64) < 0)
				goto bad;
		}
	}
	return 0;
too_short:
bad:
	return -EBADMSG;
}

const uint8_t *dhcp_opt_get(const struct dhcp_msg *m, uint8_t code, size_t *len)
{
	const struct dhcp_opt *o = &m->opt[code];
	if (!o->present)
		return NULL;
	if (len)
		*len = o->len;
	return m->optbuf + o->off;
}

int dhcp_msg_type(const struct dhcp_msg *m)
{
	size_t l;
	const uint8_t *v = dhcp_opt_get(m, DHO_MSG_TYPE, &l);
	if (!v || l != 1 || v[0] < DHCPDISCOVER || v[0] > DHCPINFORM)
		return 0;
	return v[0];
}

bool dhcp_opt_ip(const struct dhcp_msg *m, uint8_t code, uint32_t *ip)
{
	size_t l;
	const uint8_t *v = dhcp_opt_get(m, code, &l);
	if (!v || l != 4)
		return false;
	*ip = get32(v);
	return true;
}

bool dhcp_opt_str(const struct dhcp_msg *m, uint8_t code, char *dst, size_t n)
{
	size_t l;
	const uint8_t *v = dhcp_opt_get(m, code, &l);
	if (!v || n == 0)
		return false;
	const uint8_t *nul = memchr(v, 0, l);
	if (nul)
		l = (size_t)(nul - v);
	str_sanitize(dst, n, (const char *)v, l);
	return true;
}

int dhcp_client_arch(const struct dhcp_msg *m)
{
	size_t l;
	const uint8_t *v = dhcp_opt_get(m, DHO_CLIENT_ARCH, &l);
	if (!v || l < 2)
		return -1;
	return get16(v);
}

bool dhcp_is_ipxe(const struct dhcp_msg *m)
{
	size_t l;
	const uint8_t *v = dhcp_opt_get(m, DHO_USER_CLASS, &l);
	if (!v)
		return false;
	/* iPXE sends the bare string; RFC 3004 clients send len+data items. */
	if (l == 4 && memcmp(v, "iPXE", 4) == 0)
		return true;
	size_t i = 0;
	while (i < l) {
		size_t il = v[i++];
		if (il > l - i)
			return false;
		if (il == 4 && memcmp(v + i, "iPXE", 4) == 0)
			return true;
		i += il;
	}
	return false;
}

void dhcp_out_begin(struct dhcp_out *o, const struct dhcp_msg *req,
		    enum dhcp_type type, size_t max)
{
	memset(o->buf, 0, sizeof(o->buf));
	if (max < 576)
		max = 576;
	if (max > DHCP_REPLY_MAX)
		max = DHCP_REPLY_MAX;
	/* IP (20) + UDP (8) headers count in the client's limit. */
	o->max = max - 28;
	uint8_t *p = o->buf;
	p[0] = 2; /* BOOTREPLY */
	p[1] = req->htype;
	p[2] = req->hlen <= 16 ? req->hlen : 16;
	p[3] = 0;
	put32(p + 4, req->xid);
	p[10] = req->flags >> 8;
	p[11] = req->flags & 0xff;
	put32(p + 24, req->giaddr);
	memcpy(p + 28, req->chaddr, 16);
	memcpy(p + DHCP_FIXED_LEN, dhcp_cookie, 4);
	o->len = DHCP_MIN_LEN;
	uint8_t t = type;
	dhcp_out_opt(o, DHO_MSG_TYPE, &t, 1);
}

int dhcp_out_opt(struct dhcp_out *o, uint8_t code, const void *val, size_t len)
{
	size_t chunks = len == 0 ? 1 : (len + 254) / 255;
	size_t need = chunks * 2 + len;
	/* keep one byte for END */
	if (o->len + need + 1 > o->max)
		return -E2BIG;
	const uint8_t *v = val;
	do {
		size_t n = len > 255 ? 255 : len;
		o->buf[o->len++] = code;
		o->buf[o->len++] = (uint8_t)n;
		if (n)
			memcpy(o->buf + o->len, v, n);
		o->len += n;
		v += n;
		len -= n;
	} while (len > 0);
	return 0;
}

int dhcp_out_opt_u32(struct dhcp_out *o, uint8_t code, uint32_t v)
{
	uint8_t b[4];
	put32(b, v);
	return dhcp_out_opt(o, code, b, 4);
}

int dhcp_out_end(struct dhcp_out *o)
{
	if (o->len + 1 > o->max)
		return -E2BIG;
	o->buf[o->len++] = DHO_END;
	if (o->len < DHCP_REPLY_MIN)
		o->len = DHCP_REPLY_MIN;   /* buf is zeroed: PAD bytes */
	return 0;
}

void dhcp_out_set_addrs(struct dhcp_out *o, uint32_t ciaddr, uint32_t yiaddr,
			uint32_t siaddr)
{
	put32(o->buf + 12, ciaddr);
	put32(o->buf + 16, yiaddr);
	put32(o->buf + 20, siaddr);
}

void dhcp_out_set_siaddr(struct dhcp_out *o, uint32_t siaddr)
{
	put32(o->buf + 20, siaddr);
}

bool dhcp_out_set_file(struct dhcp_out *o, const char *file)
{
	size_t l = strlen(file);
	if (l >= 128)
		return false;
	memset(o->buf + 108, 0, 128);
	memcpy(o->buf + 108, file, l);
	return true;
}

int boot_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &tail) != 6 || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

int boot_parse_ip(const char *s, uint32_t *ip)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ip = ntohl(a.s_addr);
	return 0;
}

void boot_fmt_mac(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
		 mac[2], mac[3], mac[4], mac[5]);
}

void boot_fmt_ip(uint32_t ip, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff,
		 (ip >> 8) & 0xff, ip & 0xff);
}
