/*
 * LD_PRELOAD shim for tests/lab/0103-dhcp-sync.sh: wraps fdatasync() for
 * exactly one descriptor kind — kiln serve's own read-only descriptor of
 * the lease WAL (KILN_TEST_WAL names the file; SQLite's read-write
 * descriptors are left alone) — to delay it (KILN_TEST_SYNC_MS) or fail it
 * with EIO (KILN_TEST_SYNC_FAIL=1), counting calls in KILN_TEST_SYNC_LOG.
 * The WAL is matched by device and inode: after the daemon drops root,
 * /proc/self/fd is no longer readable to it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int is_wal_sync_fd(int fd)
{
	const char *wal = getenv("KILN_TEST_WAL");
	struct stat a, b;
	int fl = fcntl(fd, F_GETFL);
	return wal && fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && fstat(fd, &a) == 0 &&
	       stat(wal, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static void note(const char *what)
{
	const char *log = getenv("KILN_TEST_SYNC_LOG");
	int fd = log ? open(log, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	char line[64];
	int n = snprintf(line, sizeof(line), "%s\n", what);
	(void)!write(fd, line, (size_t)n);
	close(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (is_wal_sync_fd(fd)) {
		if (getenv("KILN_TEST_SYNC_FAIL")) {
			note("fail");
			errno = EIO;
			return -1;
		}
		const char *ms = getenv("KILN_TEST_SYNC_MS");
		if (ms) {
			long v = atol(ms);
			struct timespec ts = { v / 1000, (v % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
		note("sync");
	}
	return real(fd);
}
