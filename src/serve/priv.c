/*
 * kiln serve's privileged side (docs/serve.md, "Two processes").  It
 * loads and checks the spec, makes sure the daemon's user and its state
 * directory are what they must be, opens the images, then forks the
 * unprivileged side (daemon.c), which binds, drops root, chroots and
 * parses every byte from the network.  Afterwards it stays root and does
 * only what needs root or the spec: reloads (SIGHUP, or asked over the
 * socketpair) and enrollment.  It reads nothing but fixed-size requests
 * from the other side, never acts inside a directory that side's user can
 * write, and refuses to start when that user could write a file it reads
 * as configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve/serve_int.h"

#define STOP_GRACE_MS 10000      /* SIGTERM to the other side, then SIGKILL */
#define SEND_TIMEOUT_S 10        /* a side that does not read is broken */

/* What the privileged side keeps while the daemon runs. */
struct priv {
	char *spec;                  /* absolute */
	char *token;
	struct passwd pw;            /* the daemon's user (strings borrowed from names) */
	char *user_name;
	gid_t *groups;               /* the user's groups, for the writability checks */
	int ngroups;
	int sock;
	pid_t child;
	bool stopping;
};

/* ---- the user and what it may write ------------------------------------ */

/*
 * The daemon's user: it must exist, except the default one, which is
 * created as a system user with no home and no shell (as Debian's
 * packages create theirs).  create false (-n) only says it would be.
 */
static int ensure_user(const char *user, bool create, struct kerr *e)
{
	errno = 0;
	if (getpwnam(user))
		return 0;
	if (strcmp(user, BOOT_DEFAULT_USER))
		return kerr_set(e, -ENOENT, "boot.user: no user '%s'", user);
	if (!create)
		return 0;
	char *argv[] = { "useradd", "--system", "--user-group", "--no-create-home",
			 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
			 (char *)user, NULL };
	struct run_opts o = { .timeout_ms = 30000 };
	int r = run_ok(argv, &o, e);
	if (r < 0) {
		kerr_prefix(e, "creating the user '%s'", user);
		return r;
	}
	slog(LOG_INFO, "user", "msg=\"created the system user '%s'\"", user);
	return 0;
}

static bool in_groups(const struct priv *p, gid_t g)
{
	for (int i = 0; i < p->ngroups; i++)
		if (p->groups[i] == g)
			return true;
	return false;
}

/* Could the daemon's user write (or, for a directory, add to) path? */
static bool user_may_write(const struct priv *p, const struct stat *st)
{
	if (st->st_uid == p->pw.pw_uid)
		return true;   /* an owner can chmod */
	if ((st->st_mode & S_IWGRP) && in_groups(p, st->st_gid))
		return true;
	return (st->st_mode & S_IWOTH) != 0;
}

/*
 * Nothing root reads as configuration may be writable by the daemon's
 * user: a file, or the directory it lives in (where it could be replaced
 * or, when missing, created).
 */
static int check_not_writable(const struct priv *p, const char *path, const char *what,
			      struct kerr *e)
{
	struct stat st;
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int r = 0;

	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (stat(path, &st) == 0 && user_may_write(p, &st))
		r = kerr_set(e, -EPERM, "%s '%s' is writable by the daemon's user '%s': "
			     "make it root's (chown root: '%s'; chmod go-w '%s')", what, path,
			     p->user_name, path, path);
	else if (stat(dir, &st) == 0 && user_may_write(p, &st))
		r = kerr_set(e, -EPERM, "%s '%s': its directory '%s' is writable by the "
			     "daemon's user '%s' (chown root: '%s'; chmod go-w '%s')", what,
			     path, dir, p->user_name, dir, dir);
	free(dir);
	return r;
}

static int check_files(const struct priv *p, const struct spec_files *f,
		       const char *token_file, struct kerr *e)
{
	int r = 0;
	for (size_t i = 0; i < f->n && r == 0; i++)
		r = check_not_writable(p, f->v[i].path, "spec file", e);
	if (r == 0 && token_file)
		r = check_not_writable(p, token_file, "boot.api_token_file", e);
	return r;
}

/*
 * The state directory belongs to the daemon's user (it creates the
 * databases there, after dropping root), and only root may change the
 * directories above it, so the user cannot swap it for a link.  Root
 * never opens, chowns or creates anything inside it.  A missing one is
 * created (create false: -n only checks).
 */
static int check_state_dir(const char *dir, const struct passwd *pw, bool create,
			   struct kerr *e)
{
	struct stat st;
	char *a = xstrdup(dir);
	int r = 0;

	/* "/" and every directory between it and dir: root's, and not
	 * writable by others (or sticky, like /tmp) */
	for (size_t i = 0, n = strlen(a); i < n; i++) {
		if (a[i] != '/')
			continue;
		size_t end = i ? i : 1;
		char keep = a[end];
		a[end] = '\0';
		bool bad = stat(a, &st) == 0 && (st.st_uid != 0 ||
			((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)));
		if (bad)
			r = kerr_set(e, -EPERM, "boot.state_dir '%s': '%s' above it is not "
				     "root's alone (owner uid %u, mode %04o): another user could "
				     "replace the state directory; use a directory under one "
				     "only root can write", dir, a, (unsigned)st.st_uid,
				     (unsigned)(st.st_mode & 07777));
		a[end] = keep;
		if (bad)
			goto out;
	}
	if (lstat(dir, &st) < 0) {
		if (errno != ENOENT) {
			r = kerr_set(e, -errno, "boot.state_dir '%s': %s", dir, strerror(errno));
			goto out;
		}
		if (!create || !pw)
			goto out;   /* -n: it will be created */
		char *parent = xstrdup(dir);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = '\0';
		r = mkdir_p(parent, 0755);
		free(parent);
		if (r < 0 || mkdir(dir, 0700) < 0) {
			r = kerr_set(e, r < 0 ? r : -errno, "boot.state_dir '%s': cannot create "
				     "it: %s", dir, strerror(r < 0 ? -r : errno));
			goto out;
		}
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
			r = kerr_set(e, -errno, "boot.state_dir '%s': %s", dir, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
		goto out;
	}
	if (!S_ISDIR(st.st_mode))
		r = kerr_set(e, -ENOTDIR, "boot.state_dir '%s' is %s, not a directory: remove "
			     "it (kiln serve creates the directory)", dir,
			     S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
	else if (!pw)
		r = kerr_set(e, -EPERM, "boot.state_dir '%s' exists but the user '%s' does "
			     "not yet: remove the directory (kiln serve creates both)", dir,
			     BOOT_DEFAULT_USER);
	else if (st.st_uid != pw->pw_uid)
		r = kerr_set(e, -EPERM, "boot.state_dir '%s' belongs to uid %u, not to the "
			     "daemon's user '%s': chown -R %s: '%s' (or remove it: kiln serve "
			     "creates it)", dir, (unsigned)st.st_uid, pw->pw_name, pw->pw_name,
			     dir);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		r = kerr_set(e, -EPERM, "boot.state_dir '%s' has mode %04o: only its owner may "
			     "write it: chmod 0700 '%s'", dir, (unsigned)(st.st_mode & 07777), dir);
out:
	free(a);
	return r;
}

/*
 * An empty directory for the unprivileged side's chroot: root's, mode
 * 0755, nothing in it.  Shared by every kiln serve on the machine.
 */
static int prepare_empty_dir(struct kerr *e)
{
	struct stat st;
	int r = mkdir_p(SERVE_EMPTY_DIR, 0755);
	if (r < 0)
		return kerr_set(e, r, "'%s': %s", SERVE_EMPTY_DIR, strerror(-r));
	if (lstat(SERVE_EMPTY_DIR, &st) < 0)
		return kerr_set(e, -errno, "'%s': %s", SERVE_EMPTY_DIR, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
		return kerr_set(e, -EPERM, "'%s' must be a directory of root's that only root "
				"may write", SERVE_EMPTY_DIR);
	return 0;
}

/* ---- checks `-n` promises ------------------------------------------------ */


static int check_host(const struct serve_config *c, struct kerr *e)
{
	const struct boot_conf *b = &c->cluster->boot;
	struct stat st;

	for (size_t i = 0; i < b->nnetworks; i++)
		if (b->networks[i].iface && if_nametoindex(b->networks[i].iface) == 0)
			return kerr_set(e, -ENODEV, "boot network '%s': no interface '%s'",
					b->networks[i].name, b->networks[i].iface);
	if (stat(b->tftp_root, &st) < 0 || !S_ISDIR(st.st_mode))
		return kerr_set(e, -ENOTDIR, "boot.tftp_root: '%s' is not a directory",
				b->tftp_root);
	int root = open(b->tftp_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return kerr_set(e, -errno, "boot.tftp_root '%s': %s", b->tftp_root,
				strerror(errno));
	int r = serve_check_loaders(&c->boot, root, b->tftp_root, e);
	close(root);
	return r;
}

static int load_user(struct priv *p, const char *user, struct kerr *e)
{
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (!pw)
		return kerr_set(e, -ENOENT, "boot.user: no user '%s'", user);
	if (pw->pw_uid == 0)
		return kerr_set(e, -EINVAL, "boot.user '%s' is root", user);
	p->pw = *pw;
	p->user_name = xstrdup(user);
	p->pw.pw_name = p->user_name;
	p->pw.pw_passwd = p->pw.pw_gecos = p->pw.pw_dir = p->pw.pw_shell = NULL;
	p->ngroups = boot_user_groups(user, pw->pw_gid, &p->groups);
	return 0;
}

/* ---- reload and enroll ---------------------------------------------------- */

static void send_fail(struct priv *p, uint32_t id, int status, const char *msg)
{
	struct buf b;
	buf_init(&b, 0);
	ps_fail_encode(&b, status, msg);
	ps_send(p->sock, PS_FAIL, id, b.s, b.len, NULL, 0);
	buf_release(&b);
}

/*
 * Load the spec and send it, as a configuration, to the other side; id
 * names the request it answers (0: SIGHUP).  A spec that does not load
 * is a PS_FAIL with the loader's message, which the other side logs and
 * shows.
 */
static void priv_reload(struct priv *p, uint32_t id, const char *node, const char *addr)
{
	struct ps_config pc = { 0 };
	struct serve_config *cfg = NULL;
	struct kerr e = { 0 };
	int fds[PS_MAX_FDS];
	size_t nfds = 0;
	struct buf b;

	buf_init(&b, 0);
	if (serve_config_load(p->spec, &pc.files, &cfg, &e) < 0 ||
	    check_files(p, &pc.files, cfg->cluster->boot.api_token_file, &e) < 0) {
		send_fail(p, id, 422, e.msg);
		goto out;
	}
	serve_images_open(cfg->cluster, &pc.images);
	pc.spec = xstrdup(p->spec);
	pc.token = p->token ? xstrdup(p->token) : NULL;
	pc.enrolled_node = node ? xstrdup(node) : NULL;
	pc.enrolled_address = addr ? xstrdup(addr) : NULL;
	if (ps_config_encode(&pc, &b, fds, &nfds) < 0) {
		send_fail(p, id, 422, "too many image files to pass (at most 250)");
		goto out;
	}
	int r = ps_send(p->sock, PS_CONFIG, id, b.s, b.len, fds, nfds);
	if (r < 0)
		slog(LOG_ERR, "privsep", "msg=\"cannot send the configuration: %s\"",
		     strerror(-r));
out:
	serve_config_free(cfg);
	ps_config_release(&pc);
	buf_release(&b);
}

static void priv_enroll(struct priv *p, uint32_t id, const void *data, size_t len)
{
	struct ps_enroll keep;
	struct enroll_req q = { 0 };
	struct strv roles = STRV_INIT;
	struct kerr e = { 0 };
	char *addr = NULL;

	if (ps_enroll_unpack(data, len, &keep, &q, &roles) < 0) {
		send_fail(p, id, 400, "malformed enroll request");
		goto out;
	}
	int r = serve_enroll(p->spec, &q, &addr, &e);
	if (r < 0) {
		send_fail(p, id, r == -EEXIST ? 409 : 422, e.msg);
		goto out;
	}
	slog(LOG_INFO, "enroll", "node=%s mac=%s address=%s", q.name, q.mac, addr);
	priv_reload(p, id, q.name, addr);
out:
	strv_release(&roles);
	free(addr);
}

/* ---- the loop --------------------------------------------------------------- */

/* Stop the other side: SIGTERM, then SIGKILL after a grace period. */
static int stop_child(struct priv *p)
{
	int status = 0;
	if (p->child <= 0)
		return 0;
	kill(p->child, SIGTERM);
	for (int64_t end = now_ms() + STOP_GRACE_MS; ; ) {
		pid_t w = waitpid(p->child, &status, WNOHANG);
		if (w == p->child || (w < 0 && errno != EINTR))
			break;
		if (now_ms() > end) {
			kill(p->child, SIGKILL);
			waitpid(p->child, &status, 0);
			break;
		}
		usleep(10000);
	}
	p->child = 0;
	return status;
}

/* A request from the other side: reload or enroll; anything else ends it. */
static int priv_request(struct priv *p, struct ps_rx *x)
{
	if (x->nfds)
		return -EBADMSG;
	switch (x->type) {
	case PS_RELOAD:
		if (x->len)
			return -EBADMSG;
		priv_reload(p, x->id, NULL, NULL);
		return 0;
	case PS_ENROLL:
		priv_enroll(p, x->id, x->body.s, x->len);
		return 0;
	default:
		return -EBADMSG;
	}
}

static int priv_loop(struct priv *p, int sfd, struct kerr *e)
{
	struct ps_rx x;
	int r = 0;

	ps_rx_init(&x, PS_MAX_REQ);
	for (;;) {
		struct pollfd pf[2] = { { sfd, POLLIN, 0 }, { p->sock, POLLIN, 0 } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = kerr_set(e, -errno, "poll: %s", strerror(errno));
			break;
		}
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					priv_reload(p, 0, NULL, NULL);
				} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
					slog(LOG_INFO, "stop", "signal=%u", si.ssi_signo);
					p->stopping = true;
					stop_child(p);
					break;
				}
				/* SIGCHLD: the socket's end of stream says it */
			}
		}
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			int rr;
			while ((rr = ps_rx_read(&x, p->sock)) == 1) {
				if (priv_request(p, &x) < 0) {
					rr = -EBADMSG;
					break;
				}
				ps_rx_reset(&x);
			}
			if (rr < 0) {
				int status = 0;
				if (rr == -EBADMSG) {
					slog(LOG_ERR, "privsep", "msg=\"the unprivileged process broke "
					     "the protocol: stopped\"");
					status = stop_child(p);
				} else {
					waitpid(p->child, &status, 0);
					p->child = 0;
				}
				r = kerr_set(e, -EPIPE, "the unprivileged process ended (%s %d)",
					     WIFSIGNALED(status) ? "signal" : "status",
					     WIFSIGNALED(status) ? WTERMSIG(status)
					     : WEXITSTATUS(status));
				break;
			}
		}
	}
	ps_rx_release(&x);
	return r;
}

/*
 * Wait for the other side's first word: PS_READY once it serves, or
 * PS_DIED with why it could not start (its message, sanitised).
 */
static int wait_ready(struct priv *p, struct kerr *e)
{
	struct ps_rx x;
	int r;

	ps_rx_init(&x, PS_MAX_REQ);
	for (;;) {
		struct pollfd pf = { p->sock, POLLIN, 0 };
		if (poll(&pf, 1, -1) < 0 && errno != EINTR) {
			r = kerr_set(e, -errno, "poll: %s", strerror(errno));
			break;
		}
		r = ps_rx_read(&x, p->sock);
		if (r == 0)
			continue;
		if (r == 1 && x.type == PS_READY && x.len == 0 && !x.nfds) {
			r = 0;
		} else if (r == 1 && x.type == PS_DIED) {
			char msg[1024];
			str_sanitize(msg, sizeof(msg), x.body.s ? x.body.s : "", x.len);
			r = kerr_set(e, -EIO, "%s", msg);
		} else {
			r = kerr_set(e, -EIO, "the unprivileged process ended at startup");
		}
		break;
	}
	ps_rx_release(&x);
	return r;
}

int serve_run(const struct serve_opts *o, struct kerr *e)
{
	struct priv p = { .sock = -1 };
	struct spec_files files = { 0 };
	struct serve_config *cfg = NULL;
	struct serve_images images = { 0 };
	int sv[2] = { -1, -1 }, sfd = -1, r;
	sigset_t set, old;

	sigemptyset(&set);
	p.spec = xstrdup(o->spec);   /* relative names resolve by files.cwd */
	if ((r = serve_config_load(p.spec, &files, &cfg, e)) < 0)
		goto out;
	const struct boot_conf *b = &cfg->cluster->boot;
	if (b->api_token_file && (r = serve_read_token(b->api_token_file, &p.token, e)) < 0)
		goto out;
	if ((r = check_host(cfg, e)) < 0 || (r = ensure_user(b->user, !o->check_only, e)) < 0)
		goto out;
	if (o->check_only && !getpwnam(b->user)) {
		/* the default user, to be created: nothing more to check as it */
		r = check_state_dir(b->state_dir, NULL, false, e);
		goto out;
	}
	if ((r = load_user(&p, b->user, e)) < 0 ||
	    (r = check_files(&p, &files, b->api_token_file, e)) < 0 ||
	    (r = check_state_dir(b->state_dir, &p.pw, !o->check_only, e)) < 0 ||
	    o->check_only)
		goto out;
	if ((r = prepare_empty_dir(e)) < 0)
		goto out;
	serve_images_open(cfg->cluster, &images);

	/* signals wait in the signalfd from here on, in both processes until
	 * the unprivileged one installs its own handlers */
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = kerr_set(e, -errno, "socketpair: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	p.child = fork();
	if (p.child < 0) {
		r = kerr_set(e, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (p.child == 0) {
		close(sv[0]);
		struct serve_start st = {
			.spec = p.spec, .cfg = cfg, .token = p.token, .images = images,
			.sock = sv[1], .pw = &p.pw, .parent = getppid(), .sigmask = &old,
		};
		_exit(serve_net_main(&st) < 0 ? 1 : 0);
	}
	close(sv[1]);
	sv[1] = -1;
	p.sock = sv[0];
	sv[0] = -1;
	serve_images_release(&images);
	serve_config_free(cfg);
	cfg = NULL;
	struct timeval tv = { SEND_TIMEOUT_S, 0 };
	setsockopt(p.sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		r = kerr_set(e, -errno, "signalfd: %s", strerror(errno));
		stop_child(&p);
		goto out;
	}
	if ((r = wait_ready(&p, e)) < 0) {
		stop_child(&p);
		goto out;
	}
	r = priv_loop(&p, sfd, e);
out:
	if (sfd >= 0)
		close(sfd);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (p.sock >= 0)
		close(p.sock);
	if (!sigisemptyset(&set))
		sigprocmask(SIG_SETMASK, &old, NULL);
	serve_images_release(&images);
	serve_config_free(cfg);
	spec_files_release(&files);
	free(p.spec);
	free(p.token);
	free(p.user_name);
	free(p.groups);
	return r;
}
