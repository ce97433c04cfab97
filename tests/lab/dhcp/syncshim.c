/*
 * LD_PRELOAD shim for tests/lab/0103-dhcp-sync.sh: wraps fdatasync() for
 * exactly one descriptor kind — kiln serve's own read-only descriptor of
 * the lease WAL (SQLite's read-write descriptors are left alone) — to
 * delay it (KILN_TEST_SYNC_MS) or fail it with EIO (KILN_TEST_SYNC_FAIL=1),
 * counting calls in KILN_TEST_SYNC_LOG.
 *
 * kiln serve's network process syncs from inside a chroot into an empty
 * directory, where no path resolves: the log is opened when the shim is
 * loaded (before the fork; the descriptor is inherited), and the WAL
 * descriptor is told by what only it is: the one read-only regular file
 * the daemon ever fdatasyncs (SQLite's own are read-write; the state
 * directory's descriptor is a directory).
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

static int log_fd = -1;

__attribute__((constructor)) static void shim_init(void)
{
	const char *log = getenv("KILN_TEST_SYNC_LOG");
	if (log)
		log_fd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
}

static int is_wal_sync_fd(int fd)
{
	struct stat a;
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && fstat(fd, &a) == 0 &&
	       S_ISREG(a.st_mode);
}

static void note(const char *what)
{
	if (log_fd < 0)
		return;
	char line[64];
	int n = snprintf(line, sizeof(line), "%s\n", what);
	(void)!write(log_fd, line, (size_t)n);
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
