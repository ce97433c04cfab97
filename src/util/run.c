/*
 * Child processes: fork + exec with stdin/stdout/stderr pipes, a poll loop
 * that feeds and drains them, and a timeout that kills the whole process
 * group.  Exec failures come back through a CLOEXEC pipe (git's
 * run-command.c idea), so the caller sees -ENOENT rather than exit 127.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_EXIT_GRACE_MS 200   /* drain after the child exits */
#define RUN_REAP_POLL_MS 50     /* waitpid polling without pidfd */

static void close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

/* Drain fd into b (NULL = discard); caps are honoured by dropping. */
static int drain(int fd, struct buf *b)
{
	char tmp[16384];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	if (n == 0)
		return 0;
	if (b) {
		size_t room = b->cap ? (b->cap > b->len ? b->cap - b->len : 0) : (size_t)n;
		buf_add(b, tmp, (size_t)n < room ? (size_t)n : room);
	}
	return 1;
}

/*
 * A pidfd for the child (readable once it exits), so the loop below can
 * notice the exit while a daemon it started still holds the pipes; -1
 * where the kernel has none (then the loop polls waitpid instead).
 */
static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);   /* always O_CLOEXEC */
	if (fd >= 0)
		return fd;
#else
	(void)pid;
#endif
	return -1;
}

/*
 * Child output is read until EOF on both pipes or, once the child has
 * exited, for RUN_EXIT_GRACE_MS more: a daemon it left behind ("nohup x &",
 * sysv "service x start") may hold the pipes open for ever.
 */
int run_argv(char *const argv[], const struct run_opts *o, int *status)
{
	static const struct run_opts none;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int ex[2] = { -1, -1 };
	int r = 0, pidfd = -1;
	pid_t pid;

	if (!o)
		o = &none;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(err, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
		r = -errno;
		goto out_close;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out_close;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		setpgid(0, 0);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		signal(SIGPIPE, SIG_DFL);
		if (o->cwd && chdir(o->cwd) < 0)
			goto child_fail;
		if (o->env)
			execvpe(argv[0], argv, o->env);
		else
			execvp(argv[0], argv);
child_fail:;
		int e = errno;
		if (write(ex[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	close(ex[1]);
	in[0] = out[1] = err[1] = ex[1] = -1;

	int childerr = 0;
	ssize_t n;
	while ((n = read(ex[0], &childerr, sizeof(childerr))) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(childerr)) {
		waitpid(pid, NULL, 0);
		r = -childerr;
		goto out_close;
	}

	size_t off = 0;
	if (!o->in || !o->in_len) {
		close(in[1]);
		in[1] = -1;
	} else {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	}
	pidfd = pidfd_of(pid);
	int64_t deadline = o->timeout_ms > 0 ? now_ms() + o->timeout_ms : 0;
	int64_t grace_end = 0;
	bool exited = false;
	int st = 0;
	while (out[0] >= 0 || err[0] >= 0) {
		struct pollfd p[4];
		int np = 0, io = -1, oo = -1, eo = -1, po = -1;
		if (in[1] >= 0) {
			p[np] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
			io = np++;
		}
		if (out[0] >= 0) {
			p[np] = (struct pollfd){ .fd = out[0], .events = POLLIN };
			oo = np++;
		}
		if (err[0] >= 0) {
			p[np] = (struct pollfd){ .fd = err[0], .events = POLLIN };
			eo = np++;
		}
		if (pidfd >= 0 && !exited) {
			p[np] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
			po = np++;
		}
		int wait = -1;
		int64_t now = now_ms();
		if (exited) {
			/* Something it left behind holds the pipes: stop soon. */
			if (now >= grace_end)
				break;
			wait = (int)(grace_end - now);
		} else {
			if (deadline) {
				if (now >= deadline) {
					kill(-pid, SIGKILL);
					waitpid(pid, NULL, 0);
					r = -ETIMEDOUT;
					goto out_close;
				}
				wait = (int)(deadline - now);
			}
			if (pidfd < 0 && (wait < 0 || wait > RUN_REAP_POLL_MS))
				wait = RUN_REAP_POLL_MS;   /* no pidfd: look now and then */
		}
		int k = poll(p, (nfds_t)np, wait);
		if (k < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (k > 0 && io >= 0 && p[io].revents) {
			ssize_t w = write(in[1], o->in + off, o->in_len - off);
			if (w > 0)
				off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == o->in_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (k > 0 && oo >= 0 && p[oo].revents && drain(out[0], o->out) <= 0) {
			close(out[0]);
			out[0] = -1;
		}
		if (k > 0 && eo >= 0 && p[eo].revents && drain(err[0], o->err) <= 0) {
			close(err[0]);
			err[0] = -1;
		}
		if (!exited && (pidfd < 0 || (k > 0 && po >= 0 && p[po].revents))) {
			pid_t w = waitpid(pid, &st, WNOHANG);
			if (w == pid) {
				exited = true;
				grace_end = now_ms() + RUN_EXIT_GRACE_MS;
				if (in[1] >= 0) {
					close(in[1]);
					in[1] = -1;
				}
			} else if (w < 0 && errno != EINTR) {
				r = -errno;
				goto out_close;
			}
		}
	}
	while (!exited && waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			r = -errno;
			goto out_close;
		}
	}
	if (status)
		*status = st;
out_close:
	if (pidfd >= 0)
		close(pidfd);
	close_pair(in);
	close_pair(out);
	close_pair(err);
	close_pair(ex);
	return r;
}

int run_ok(char *const argv[], const struct run_opts *o, struct kerr *e)
{
	struct run_opts opts = o ? *o : (struct run_opts){ 0 };
	struct buf errb;
	int st = 0, r;

	buf_init(&errb, 4096);
	if (!opts.err)
		opts.err = &errb;
	r = run_argv(argv, &opts, &st);
	if (r < 0) {
		kerr_set(e, r, "%s: %s", argv[0], strerror(-r));
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char line[512];
		const char *msg = opts.err->s;
		size_t n = strcspn(msg, "\n");
		/* Report the last non-empty line of stderr: usually the cause. */
		const char *last = msg;
		for (const char *p = msg; *p; p++)
			if (*p == '\n' && p[1] && p[1] != '\n')
				last = p + 1;
		n = strcspn(last, "\n");
		str_sanitize(line, sizeof(line), last, n);
		if (WIFEXITED(st))
			r = kerr_set(e, -EIO, "%s exited %d%s%s", argv[0], WEXITSTATUS(st),
				     *line ? ": " : "", line);
		else
			r = kerr_set(e, -EIO, "%s killed by signal %d", argv[0], WTERMSIG(st));
	}
	buf_release(&errb);
	return r;
}
