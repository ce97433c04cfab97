/*
 * The messages between kiln serve's two processes (docs/serve.md, "Two
 * processes"): framing over a Unix stream socketpair, descriptors passed
 * with SCM_RIGHTS, and the encoding of the configuration the privileged
 * side sends.  Each side decodes with a remaining-length discipline; the
 * privileged side accepts only fixed-size requests whose every string it
 * checks, so no parser of variable input runs as root.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "serve/serve_int.h"

/* ---- encoding ---------------------------------------------------------- */

static void put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	buf_add(b, x, 4);
}

/* A byte string; data NULL is "absent" (length 0xffffffff). */
static void put_bytes(struct buf *b, const void *data, size_t len)
{
	put_u32(b, data ? (uint32_t)len : UINT32_MAX);
	if (data)
		buf_add(b, data, len);
}

static void put_str(struct buf *b, const char *s)
{
	put_bytes(b, s, s ? strlen(s) : 0);
}

struct rd {
	const uint8_t *p;
	size_t left;
};

static int get_u32(struct rd *r, uint32_t *v)
{
	if (r->left < 4)
		return -EBADMSG;
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	r->left -= 4;
	return 0;
}

/* A byte string as a new NUL-terminated copy (*out NULL when absent). */
static int get_bytes(struct rd *r, char **out, size_t *len)
{
	uint32_t n;
	*out = NULL;
	if (get_u32(r, &n) < 0)
		return -EBADMSG;
	if (n == UINT32_MAX)
		return 0;
	if (n > r->left)
		return -EBADMSG;
	*out = xmalloc((size_t)n + 1);
	memcpy(*out, r->p, n);
	(*out)[n] = '\0';
	if (len)
		*len = n;
	r->p += n;
	r->left -= n;
	return 0;
}

/* A string: no NUL inside. */
static int get_str(struct rd *r, char **out)
{
	size_t n = 0;
	int rc = get_bytes(r, out, &n);
	if (rc == 0 && *out && strlen(*out) != n) {
		free(*out);
		*out = NULL;
		return -EBADMSG;
	}
	return rc;
}

void ps_config_release(struct ps_config *c)
{
	if (!c)
		return;
	free(c->spec);
	spec_files_release(&c->files);
	free(c->token);
	serve_images_release(&c->images);
	free(c->enrolled_node);
	free(c->enrolled_address);
	memset(c, 0, sizeof(*c));
}

int ps_config_encode(const struct ps_config *c, struct buf *out, int *fds, size_t *nfds)
{
	put_str(out, c->spec);
	put_str(out, c->files.cwd);
	put_u32(out, (uint32_t)c->files.n);
	for (size_t i = 0; i < c->files.n; i++) {
		put_str(out, c->files.v[i].path);
		put_bytes(out, c->files.v[i].data, c->files.v[i].len);
	}
	put_str(out, c->token);
	*nfds = 0;
	put_u32(out, (uint32_t)c->images.n);
	for (size_t i = 0; i < c->images.n; i++) {
		const struct serve_image *im = &c->images.v[i];
		put_str(out, im->name);
		for (int k = 0; k < 2; k++) {
			put_u32(out, im->fd[k] >= 0);
			if (im->fd[k] >= 0) {
				if (*nfds == PS_MAX_FDS)
					return -E2BIG;
				fds[(*nfds)++] = im->fd[k];
			}
		}
	}
	put_str(out, c->enrolled_node);
	put_str(out, c->enrolled_address);
	return 0;
}

int ps_config_decode(const void *data, size_t len, int *fds, size_t nfds,
		     struct ps_config *c)
{
	struct rd r = { data, len };
	uint32_t n, has;
	size_t used = 0;
	int rc;

	memset(c, 0, sizeof(*c));
	c->files.replay = true;
	if ((rc = get_str(&r, &c->spec)) < 0 || !c->spec ||
	    (rc = get_str(&r, &c->files.cwd)) < 0 || (rc = get_u32(&r, &n)) < 0)
		goto bad;
	if (n > PS_MAX_FILES)
		goto bad;
	for (uint32_t i = 0; i < n; i++) {
		char *path, *d;
		size_t dl = 0;
		if ((rc = get_str(&r, &path)) < 0 || !path)
			goto bad;
		if ((rc = get_bytes(&r, &d, &dl)) < 0) {
			free(path);
			goto bad;
		}
		spec_files_add(&c->files, path, d, dl);
		free(path);
		free(d);
	}
	if ((rc = get_str(&r, &c->token)) < 0 || (rc = get_u32(&r, &n)) < 0 ||
	    n > PS_MAX_FDS)
		goto bad;
	c->images.v = xcalloc(n + 1, sizeof(*c->images.v));
	for (uint32_t i = 0; i < n; i++) {
		struct serve_image *im = &c->images.v[c->images.n++];
		im->fd[0] = im->fd[1] = -1;
		if ((rc = get_str(&r, &im->name)) < 0 || !im->name)
			goto bad;
		for (int k = 0; k < 2; k++) {
			if ((rc = get_u32(&r, &has)) < 0 || (has && used == nfds))
				goto bad;
			if (has) {
				im->fd[k] = fds[used];
				fds[used++] = -1;   /* owned by c now */
			}
		}
	}
	if ((rc = get_str(&r, &c->enrolled_node)) < 0 ||
	    (rc = get_str(&r, &c->enrolled_address)) < 0 || r.left || used != nfds)
		goto bad;
	return 0;
bad:
	ps_config_release(c);
	return -EBADMSG;
}

void ps_fail_encode(struct buf *b, int status, const char *msg)
{
	put_u32(b, (uint32_t)status);
	put_str(b, msg);
}

int ps_fail_decode(const void *data, size_t len, int *status, char **msg)
{
	struct rd r = { data, len };
	uint32_t st;
	if (get_u32(&r, &st) < 0 || get_str(&r, msg) < 0 || !*msg || r.left) {
		free(*msg);
		*msg = NULL;
		return -EBADMSG;
	}
	*status = (int)st;
	return 0;
}

/* ---- framing ------------------------------------------------------------ */

/* Header: type, id, payload length, number of descriptors (big endian). */
#define PS_HDR 16

int ps_send(int fd, uint32_t type, uint32_t id, const void *data, size_t len,
	    const int *fds, size_t nfds)
{
	uint8_t hdr[PS_HDR];
	struct buf h = { 0 };
	union {
		struct cmsghdr c;
		char space[CMSG_SPACE(sizeof(int) * PS_MAX_FDS)];
	} u;

	if (len > PS_MAX_MSG || nfds > PS_MAX_FDS)
		return -E2BIG;
	buf_init(&h, 0);
	put_u32(&h, type);
	put_u32(&h, id);
	put_u32(&h, (uint32_t)len);
	put_u32(&h, (uint32_t)nfds);
	memcpy(hdr, h.s, PS_HDR);
	buf_release(&h);

	/* the descriptors ride on the header's bytes */
	struct iovec iov = { hdr, PS_HDR };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.space;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	size_t off = (size_t)n;
	/* the rest of the header (rare) and the payload, plain writes */
	while (off < PS_HDR + len) {
		const uint8_t *p = off < PS_HDR ? hdr + off : (const uint8_t *)data + (off - PS_HDR);
		size_t want = off < PS_HDR ? PS_HDR - off : PS_HDR + len - off;
		n = send(fd, p, want, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

void ps_rx_init(struct ps_rx *x, size_t max_len)
{
	memset(x, 0, sizeof(*x));
	buf_init(&x->body, 0);
	x->max_len = max_len;
}

void ps_rx_release(struct ps_rx *x)
{
	for (size_t i = 0; i < x->nfds; i++)
		if (x->fds[i] >= 0)
			close(x->fds[i]);
	x->nfds = 0;
	buf_release(&x->body);
}

/* Keep the descriptors a recvmsg brought (close any beyond the cap). */
static void take_fds(struct ps_rx *x, struct msghdr *m)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *v = (int *)(void *)CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			if (x->nfds < PS_MAX_FDS)
				x->fds[x->nfds++] = v[i];
			else
				close(v[i]);
		}
	}
}

int ps_rx_read(struct ps_rx *x, int fd)
{
	union {
		struct cmsghdr c;
		char space[CMSG_SPACE(sizeof(int) * PS_MAX_FDS)];
	} u;
	for (;;) {
		uint8_t tmp[65536];
		bool in_hdr = x->hdr_got < PS_HDR;
		size_t want = in_hdr ? PS_HDR - x->hdr_got : x->len - x->body.len;
		if (!in_hdr && want == 0)
			return 1;
		if (want > sizeof(tmp))
			want = sizeof(tmp);
		struct iovec iov = { in_hdr ? x->hdr + x->hdr_got : tmp, want };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.space, .msg_controllen = sizeof(u.space) };
		ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		take_fds(x, &m);
		if (m.msg_flags & MSG_CTRUNC)
			return -EBADMSG;
		if (n == 0)
			return -ECONNRESET;
		if (in_hdr) {
			x->hdr_got += (size_t)n;
			if (x->hdr_got < PS_HDR)
				continue;
			struct rd r = { x->hdr, PS_HDR };
			uint32_t nf;
			get_u32(&r, &x->type);
			get_u32(&r, &x->id);
			get_u32(&r, &x->len);
			get_u32(&r, &nf);
			if (x->len > x->max_len || nf > PS_MAX_FDS)
				return -EBADMSG;
			x->want_fds = nf;
		} else {
			buf_add(&x->body, tmp, (size_t)n);
		}
		if (x->hdr_got == PS_HDR && x->body.len == x->len)
			return x->nfds == x->want_fds ? 1 : -EBADMSG;
	}
}

void ps_rx_reset(struct ps_rx *x)
{
	size_t max = x->max_len;
	ps_rx_release(x);
	ps_rx_init(x, max);
}

/* ---- the enroll request ------------------------------------------------ */

/* Copy s into a fixed field; false when it does not fit. */
static bool put_field(char *dst, size_t n, const char *s)
{
	if (!s) {
		dst[0] = '\0';
		return true;
	}
	if (strlen(s) >= n)
		return false;
	strcpy(dst, s);
	return true;
}

int ps_enroll_pack(const struct enroll_req *q, struct ps_enroll *m)
{
	memset(m, 0, sizeof(*m));
	if (!put_field(m->mac, sizeof(m->mac), q->mac) ||
	    !put_field(m->name, sizeof(m->name), q->name) ||
	    !put_field(m->image, sizeof(m->image), q->image) ||
	    !put_field(m->address, sizeof(m->address), q->address) ||
	    !put_field(m->ip_hint, sizeof(m->ip_hint), q->ip_hint))
		return -ENAMETOOLONG;
	if (q->roles && q->roles->n > PS_MAX_ROLES)
		return -E2BIG;
	for (size_t i = 0; q->roles && i < q->roles->n; i++)
		if (!put_field(m->roles[i], sizeof(m->roles[i]), q->roles->v[i]))
			return -ENAMETOOLONG;
	m->nroles = q->roles ? (uint32_t)q->roles->n : 0;
	return 0;
}

/* A field that holds its NUL; "" means absent. */
static const char *field(const char *f, size_t n, bool *ok)
{
	if (!memchr(f, '\0', n))
		*ok = false;
	return *ok && f[0] ? f : NULL;
}

int ps_enroll_unpack(const void *data, size_t len, struct ps_enroll *keep,
		     struct enroll_req *q, struct strv *roles)
{
	bool ok = true;

	if (len != sizeof(*keep))
		return -EBADMSG;
	memcpy(keep, data, sizeof(*keep));
	q->mac = field(keep->mac, sizeof(keep->mac), &ok);
	q->name = field(keep->name, sizeof(keep->name), &ok);
	q->image = field(keep->image, sizeof(keep->image), &ok);
	q->address = field(keep->address, sizeof(keep->address), &ok);
	q->ip_hint = field(keep->ip_hint, sizeof(keep->ip_hint), &ok);
	if (!ok || !q->mac || !q->name || keep->nroles > PS_MAX_ROLES)
		return -EBADMSG;
	for (uint32_t i = 0; i < keep->nroles; i++) {
		const char *r = field(keep->roles[i], sizeof(keep->roles[i]), &ok);
		if (!ok || !r)
			return -EBADMSG;
		strv_push(roles, r);
	}
	q->roles = roles;
	return 0;
}
