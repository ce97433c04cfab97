/*
 * Child processes: fork + exec with stdin/stdout/stderr pipes, a poll loop
 * that feeds and drains them, and a timeout that kills the whole process
 * group.  The start follows git's run-command.c: the program is looked up
 * in PATH before fork, signals are blocked around fork and reset in the
 * child, and exec failures come back through a CLOEXEC pipe, so the
 * caller sees -ENOENT rather than exit 127.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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
 * The file to execve() for name: name itself when it holds a '/', else the
 * first executable regular file NAME in $PATH (the parent's, as execvp
 * would use; "/bin:/usr/bin" when unset).  Entries that are empty or
 * relative are skipped: execvp would take them against the cwd, and the
 * child's cwd may be o->cwd.  -ENOENT when there is none, -EACCES when only
 * something not executable was found.  Done before fork, so the child
 * only calls execve() and a missing program costs no fork.
 */
static int exec_path_resolve(const char *name, char **out)
{
	if (!*name)
		return -ENOENT;
	if (strchr(name, '/')) {
		*out = xstrdup(name);
		return 0;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	int r = -ENOENT;
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		if (n && *p == '/') {
			char *f = xasprintf("%.*s/%s", (int)n, p, name);
			struct stat st;
			if (stat(f, &st) == 0) {
				if (S_ISREG(st.st_mode) && access(f, X_OK) == 0) {
					*out = f;
					return 0;
				}
				r = -EACCES;
			}
			free(f);
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return r;
}

/*
 * Make both ends of p[] higher than 2: a parent started with stdin, stdout
 * or stderr closed gets such fds from pipe2(), and the child's dup2() onto
 * 0..2 would then clobber one pipe with another.
 */
static int pipe_above_stdio(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		if (p[i] > 2)
			continue;
		int fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return -errno;
		close(p[i]);
		p[i] = fd;
	}
	return 0;
}

/* In the child: report errno to the parent over the exec pipe, and exit. */
__attribute__((noreturn)) static void child_fail(int fd)
{
	int e = errno;
	ssize_t n = write(fd, &e, sizeof(e));   /* < PIPE_BUF: all or nothing */
	(void)n;
	_exit(127);
}

/*
 * In the child, between fork and exec, so async-signal-safe calls only.
 * Its own process group (for the timeout's kill), the pipes on 0..2,
 * every signal back to SIG_DFL (a handler the parent installed must not
 * run here, and what the parent ignores, SIGPIPE above all, is not the
 * program's business), an empty signal mask, then execve().
 */
__attribute__((noreturn))
static void child_exec(const char *file, char *const argv[], const struct run_opts *o,
		       const int in[2], const int out[2], const int err[2], int ex)
{
	static const unsigned long kernel_dfl[8];
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	if (setpgid(0, 0) < 0)
		child_fail(ex);
	if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
		child_fail(ex);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		/* glibc refuses its own two (32, 33): a caller may still have
		 * them ignored (cmake --build does), and SIG_IGN survives exec.
		 * An all-zero kernel sigaction is SIG_DFL on every layout. */
		if (sigaction(sig, &dfl, NULL) < 0)
			syscall(SYS_rt_sigaction, sig, kernel_dfl, NULL, (NSIG - 1) / 8);
	}
	if (o->cwd && chdir(o->cwd) < 0)
		child_fail(ex);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		child_fail(ex);
	execve(file, argv, o->env ? o->env : environ);
	child_fail(ex);
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
	char *file = NULL;
	pid_t pid;

	if (!o)
		o = &none;
	r = exec_path_resolve(argv[0], &file);
	if (r < 0)
		return r;
	if ((r = pipe_above_stdio(in)) < 0 || (r = pipe_above_stdio(out)) < 0 ||
	    (r = pipe_above_stdio(err)) < 0 || (r = pipe_above_stdio(ex)) < 0)
		goto out_close;
	/* No signal may run a handler of ours in the child before it has
	 * reset them; the parent's mask is back right after fork. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_exec(file, argv, o, in, out, err, ex[1]);
	int fork_errno = errno;
	if (pid > 0)
		setpgid(pid, pid);   /* the group exists before we can signal it */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		r = -fork_errno;
		goto out_close;
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
	free(file);
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
