/* TFTP codec (RFC 1350, 2347-2349, 7440) and the rooted file opener. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "boot/boot.h"

#define TFTP_MAX_OPTS 16
#define TFTP_OPT_LEN 64

/*
 * Take one NUL-terminated string of at most cap-1 bytes from the packet,
 * advancing *p and *left.  -EBADMSG when no NUL is in reach.
 */
static int take_str(const uint8_t **p, size_t *left, char *dst, size_t cap)
{
	const uint8_t *nul = memchr(*p, 0, *left);
	if (!nul)
		goto too_short;
	size_t l = (size_t)(nul - *p);
	if (l >= cap)
		goto too_long;
	memcpy(dst, *p, l + 1);
	*p += l + 1;
	*left -= l + 1;
	return 0;
too_short:
too_long:
	return -EBADMSG;
}

int tftp_parse_req(const uint8_t *pkt, size_t len, struct tftp_req *r)
{
	memset(r, 0, sizeof(*r));
	if (len < 2)
		goto too_short;
	int op = pkt[0] << 8 | pkt[1];
	if (op != TFTP_RRQ && op != TFTP_WRQ)
		return -EOPNOTSUPP;
	r->op = op;
	const uint8_t *p = pkt + 2;
	size_t left = len - 2;
	char mode[16];
	if (take_str(&p, &left, r->name, sizeof(r->name)) < 0 ||
	    take_str(&p, &left, mode, sizeof(mode)) < 0)
		goto bad;
	if (strcasecmp(mode, "octet") == 0)
		r->octet = true;
	else if (strcasecmp(mode, "netascii") != 0 && strcasecmp(mode, "mail") != 0)
		goto bad;
	for (int n = 0; left > 0; n++) {
		char name[TFTP_OPT_LEN], val[TFTP_OPT_LEN];
		uint64_t v;
		if (n >= TFTP_MAX_OPTS)
			goto bad;
		if (take_str(&p, &left, name, sizeof(name)) < 0 ||
		    take_str(&p, &left, val, sizeof(val)) < 0)
			goto bad;
		/* Out-of-range values: ignore the option (RFC 2347 lets the
		 * server leave it out of the OACK).  First occurrence wins. */
		if (strcasecmp(name, "blksize") == 0 && !r->has_blksize) {
			if (parse_u64(val, TFTP_BLKSIZE_MIN, TFTP_BLKSIZE_MAX, &v) == 0) {
				r->has_blksize = true;
				r->blksize = (uint32_t)v;
			}
		} else if (strcasecmp(name, "tsize") == 0 && !r->has_tsize) {
			if (parse_u64(val, 0, UINT64_MAX, &v) == 0) {
				r->has_tsize = true;
				r->tsize = v;
			}
		} else if (strcasecmp(name, "timeout") == 0 && !r->has_timeout) {
			if (parse_u64(val, 1, 255, &v) == 0) {
				r->has_timeout = true;
				r->timeout = (uint32_t)v;
			}
		} else if (strcasecmp(name, "windowsize") == 0 && !r->has_window) {
			if (parse_u64(val, 1, 65535, &v) == 0) {
				r->has_window = true;
				r->window = (uint32_t)v;
			}
		}
	}
	return 0;
too_short:
bad:
	return -EBADMSG;
}

int tftp_parse_client(const uint8_t *pkt, size_t len, int *op, uint16_t *block)
{
	if (len < 4)
		goto too_short;
	*op = pkt[0] << 8 | pkt[1];
	if (*op == TFTP_ACK) {
		*block = (uint16_t)(pkt[2] << 8 | pkt[3]);
		return 0;
	}
	if (*op == TFTP_ERROR)
		return 0;
too_short:
	return -EBADMSG;
}

size_t tftp_build_error(uint8_t *buf, size_t n, enum tftp_err code,
			const char *msg)
{
	if (n < 5)
		return 0;
	buf[0] = 0;
	buf[1] = TFTP_ERROR;
	buf[2] = 0;
	buf[3] = (uint8_t)code;
	size_t l = strlen(msg);
	if (l > n - 5)
		l = n - 5;
	memcpy(buf + 4, msg, l);
	buf[4 + l] = 0;
	return l + 5;
}

bool tftp_name_ok(const char *name)
{
	if (!name[0] || name[0] == '/')
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	const char *c = name;
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t l = slash ? (size_t)(slash - c) : strlen(c);
		if (l == 0 || (l == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!slash)
			return true;
		c = slash + 1;
	}
}

/* Fallback for kernels without openat2: walk, refusing every symlink. */
static int open_walk(int rootfd, const char *name)
{
	char comp[TFTP_NAME_MAX + 1];
	int dir = rootfd, fd = -1;
	const char *c = name;
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t l = slash ? (size_t)(slash - c) : strlen(c);
		if (l >= sizeof(comp)) {
			fd = -ENAMETOOLONG;
			break;
		}
		memcpy(comp, c, l);
		comp[l] = 0;
		int flags = O_NOFOLLOW | O_CLOEXEC |
			(slash ? O_PATH | O_DIRECTORY : O_RDONLY | O_NOCTTY | O_NONBLOCK);
		int nfd = openat(dir, comp, flags);
		if (dir != rootfd)
			close(dir);
		if (nfd < 0) {
			fd = -errno;
			break;
		}
		if (!slash) {
			fd = nfd;
			break;
		}
		dir = nfd;
		c = slash + 1;
	}
	return fd;
}

/* Keep fd only if it is a regular file; its size into *size. */
static int check_regular(int fd, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EACCES;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int tftp_open_beneath(int rootfd, const char *name, uint64_t *size)
{
	if (!tftp_name_ok(name))
		return -EACCES;
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, rootfd, name, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		fd = open_walk(rootfd, name);
	else if (fd < 0)
		fd = -errno;
	if (fd < 0)
		return fd;
	return check_regular(fd, size);
}

int tftp_open_walk(int rootfd, const char *name, uint64_t *size)
{
	if (!tftp_name_ok(name))
		return -EACCES;
	int fd = open_walk(rootfd, name);
	if (fd < 0)
		return fd;
	return check_regular(fd, size);
}
