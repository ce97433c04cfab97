/* File helpers: bounded reads, atomic writes, mkdir -p, rm -rf. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read(const char *path, struct buf *b, size_t cap)
{
	char tmp[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		if (cap && b->len + (size_t)n > cap) {
			r = -EFBIG;
			break;
		}
		if ((r = buf_add(b, tmp, (size_t)n)) < 0)
			break;
	}
	close(fd);
	return r;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *copy = xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Create a new temporary file next to path, "path.kiln-tmp-RANDOM", with
 * O_CREAT|O_EXCL|O_NOFOLLOW: the directory may be writable by someone else
 * (~/.ssh), who must not be able to pre-plant a FIFO (we would block on
 * it), a symlink or a hard link (we would write through it) at a name we
 * can be made to guess.  Retries a few names on EEXIST.  Returns the fd
 * and the name in *tmp, or -errno.
 */
static int tmp_create(const char *path, char **tmp)
{
	static atomic_uint counter;
	int fd = -EEXIST;

	for (int tries = 0; tries < 8 && fd == -EEXIST; tries++) {
		uint64_t rnd;
		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
			/* Unpredictability only guards against planting; O_EXCL
			 * keeps us correct with a weak name too. */
			rnd = ((uint64_t)getpid() << 32) ^ (uint64_t)now_ms() ^
			      ((uint64_t)atomic_fetch_add(&counter, 1) << 48);
		*tmp = xasprintf("%s.kiln-tmp-%016llx", path, (unsigned long long)rnd);
		fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		/* Held until the rename: a free lock marks a dead writer's file. */
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int err = -errno;
			close(fd);
			unlink(*tmp);
			free(*tmp);
			*tmp = NULL;
			return err;
		}
		if (fd < 0) {
			fd = -errno;
			free(*tmp);
			*tmp = NULL;
		}
	}
	return fd;
}

/* Is name "BASE.kiln-tmp-" followed by 16 hex digits? */
static bool is_tmp_of(const char *name, const char *base)
{
	size_t n = strlen(base);

	if (strncmp(name, base, n) || !str_starts(name + n, ".kiln-tmp-"))
		return false;
	name += n + strlen(".kiln-tmp-");
	return strlen(name) == 16 && strspn(name, "0123456789abcdef") == 16;
}

/*
 * Remove what writers of path that died (kill -9, power loss) left: its
 * temporary files whose lock nobody holds.  A live writer holds its lock
 * from creation to rename.  Only regular files are touched (a symlink or
 * FIFO at such a name is not ours: left alone, never followed); errors are
 * ignored, this is tidying.
 */
static void tmp_sweep(const char *path)
{
	char *dcopy = xstrdup(path), *bcopy = xstrdup(path);
	const char *base = basename(bcopy);
	int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	while ((de = readdir(d))) {
		struct stat st;
		int fd;

		if (!is_tmp_of(de->d_name, base))
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dfd, de->d_name, 0);
		close(fd);
	}
	closedir(d);
out:
	free(dcopy);
	free(bcopy);
}

int file_write_atomic(const char *path, const void *data, size_t len,
		      mode_t mode, uid_t uid, gid_t gid)
{
	char *tmp = NULL;
	int r, fd;

	fd = tmp_create(path, &tmp);
	if (fd < 0) {
		r = fd;
		goto out_free;
	}
	if ((r = write_all(fd, data, len)) < 0)
		goto out_unlink;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) {
		r = -errno;
		goto out_unlink;
	}
	if (fchmod(fd, mode & 07777) < 0 || fsync(fd) < 0) {
		r = -errno;
		goto out_unlink;
	}
	/* rename replaces whatever is at path, a symlink included, never
	 * writing through it.  The fd (and its lock) is closed after it. */
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out_unlink;
	}
	close(fd);
	r = fsync_dir_of(path);
	tmp_sweep(path);
	goto out_free;
out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out_free:
	free(tmp);
	return r;
}

int mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	int r = 0;

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			r = -errno;
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	if (r == 0) {
		struct stat st;
		if (stat(path, &st) < 0)
			r = -errno;
		else if (!S_ISDIR(st.st_mode))
			r = -ENOTDIR;
	}
	return r;
}

static int rm_at(int dirfd, const char *name, dev_t dev)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev)
		return -EXDEV;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int q = rm_at(fd, de->d_name, dev);
		if (q < 0 && !r)
			r = q;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !r)
		r = -errno;
	return r;
}

int rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	return rm_at(AT_FDCWD, path, st.st_dev);
}

bool path_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

char *path_join(const char *root, const char *path)
{
	if (!root || !*root || !strcmp(root, "/"))
		return xstrdup(path);
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	return xasprintf("%.*s%s%s", (int)n, root, path[0] == '/' ? "" : "/", path);
}
