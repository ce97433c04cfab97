/*
 * kiln lab: the package mirror.  `kiln lab mirror` fills a cache with
 * .debs (fetched once on the machine with apt, dependencies included, as
 * if nothing were installed) and a Packages index; `kiln lab up --mirror`
 * serves that cache to the lab's hosts over HTTP and points each host's
 * apt at it, so a `package` resource installs real software from a real
 * repository on lab hosts while the machine itself installs nothing.
 *
 * The server is a process forked from kiln (no program on disk, no python)
 * that joins the lab's switch namespace, binds the mirror's address on
 * br0, chroots into cache/repo and drops to nobody before it reads a
 * request.  It answers GET and HEAD for the regular files at the top of
 * the repository and nothing else.
 */
#include "lab_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define APT_TIMEOUT_MS (10 * 60 * 1000)
#define LOCK_WAIT_MS (11 * 60 * 1000)
#define SERVER_WAIT_MS 10000
#define LOG_CAP (4 << 20)        /* the server stops logging past this */
#define NAME_MAX_LEN 200         /* a served file name, decoded */

/* ---- the cache ------------------------------------------------------ */

/* A Debian package name (policy 5.6.1): [a-z0-9][a-z0-9+.-]+. */
static bool pkg_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > 100 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789+.-") == n;
}

/* The names in cache/packages (one a line; '#' comments), into *names. */
static int list_read(const char *path, struct strv *names, struct kerr *e)
{
	struct buf b;
	int r;

	buf_init(&b, 1 << 20);
	r = file_read(path, &b, 1 << 20);
	if (r == -ENOENT) {
		r = 0;
		goto out;
	}
	if (r < 0) {
		kerr_set(e, r, "read %s: %s", path, strerror(-r));
		goto out;
	}
	for (char *s = b.s, *line; (line = strtok_r(s, "\n", &s));) {
		str_trim(line);
		if (!*line || *line == '#')
			continue;
		if (!pkg_name_ok(line)) {
			r = kerr_set(e, -EINVAL, "%s: '%s' is not a package name", path, line);
			goto out;
		}
		strv_push_unique(names, line);
	}
out:
	buf_release(&b);
	return r;
}

/* How many *.deb files dir holds. */
static size_t count_debs(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && str_ends(de->d_name, ".deb"))
			n++;
	closedir(d);
	return n;
}

/* Take cache/.lock (exclusive), waiting a bounded time for another build. */
static int cache_lock(const char *cache, int *fd, struct kerr *e)
{
	char *path = xasprintf("%s/.lock", cache);
	int64_t deadline = now_ms() + LOCK_WAIT_MS;
	int r = 0;

	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (*fd < 0) {
		r = kerr_set(e, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	while (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			r = kerr_set(e, -errno, "lock %s: %s", path, strerror(errno));
			break;
		}
		if (now_ms() > deadline) {
			r = kerr_set(e, -ETIMEDOUT, "%s: another 'kiln lab mirror' holds it", path);
			break;
		}
		struct timespec ts = { 0, 200 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (r < 0) {
		close(*fd);
		*fd = -1;
	}
out:
	free(path);
	return r;
}

/* The last non-empty line of b, sanitised, for an error message. */
static void last_line(const struct buf *b, char *out, size_t n)
{
	size_t end = b->len;

	while (end && (b->s[end - 1] == '\n' || b->s[end - 1] == ' '))
		end--;
	size_t start = end;
	while (start && b->s[start - 1] != '\n')
		start--;
	str_sanitize(out, n, b->s + start, end - start);
}

/* apt-get --download-only of names into repo, against an empty status. */
static int fetch_debs(const char *cache, const char *repo, const struct strv *names,
		      struct kerr *e)
{
	char *status = xasprintf("%s/status.empty", cache);
	char *partial = xasprintf("%s/partial", repo);
	struct strv argv = STRV_INIT;
	struct buf out;
	int r;

	buf_init(&out, 1 << 20);
	if ((r = file_write_atomic(status, "", 0, 0644, -1, -1)) < 0) {
		kerr_set(e, r, "write %s: %s", status, strerror(-r));
		goto out;
	}
	if ((r = mkdir_p(partial, 0700)) < 0) {
		kerr_set(e, r, "mkdir %s: %s", partial, strerror(-r));
		goto out;
	}
	strv_push(&argv, "apt-get");
	strv_push(&argv, "install");
	strv_push(&argv, "--download-only");
	strv_push(&argv, "--no-install-recommends");
	strv_push(&argv, "-y");
	strv_push(&argv, "-q");
	/* Resolve as if nothing were installed; write nothing of the machine's. */
	strv_pushf(&argv, "-oDir::State::status=%s", status);
	strv_pushf(&argv, "-oDir::State::extended_states=%s/extended_states", cache);
	strv_pushf(&argv, "-oDir::Cache::archives=%s/", repo);
	strv_push(&argv, "-oDir::Cache::pkgcache=");
	strv_push(&argv, "-oDir::Cache::srcpkgcache=");
	strv_push(&argv, "-oDebug::NoLocking=1");
	strv_push(&argv, "--");
	for (size_t i = 0; i < names->n; i++)
		strv_push(&argv, names->v[i]);
	struct run_opts o = { .out = &out, .err = &out, .timeout_ms = APT_TIMEOUT_MS,
			      .cwd = cache };
	int st = 0;
	r = run_argv(argv.v, &o, &st);
	if (r < 0) {
		kerr_set(e, r, "apt-get: %s", strerror(-r));
		goto out;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char last[400];
		last_line(&out, last, sizeof(last));
		r = kerr_set(e, -EIO, "apt-get --download-only failed%s%s (stale apt lists? "
			     "'apt-get update' on the machine refreshes them)",
			     *last ? ": " : "", last);
	}
out:
	buf_release(&out);
	strv_release(&argv);
	free(status);
	free(partial);
	return r;
}

/* repo/Packages from every .deb in repo (all versions: apt picks). */
static int write_index(const char *repo, struct kerr *e)
{
	char *argv[] = { "dpkg-scanpackages", "--multiversion", ".", "/dev/null", NULL };
	char *path = xasprintf("%s/Packages", repo);
	struct buf out, err;
	int r;

	buf_init(&out, 64 << 20);
	buf_init(&err, 64 << 10);
	struct run_opts o = { .out = &out, .err = &err, .timeout_ms = 120000, .cwd = repo };
	if ((r = run_ok(argv, &o, e)) < 0) {
		if (r == -ENOENT)
			kerr_set(e, r, "dpkg-scanpackages is missing (apt-get install dpkg-dev)");
		else
			kerr_prefix(e, "index %s", repo);
		goto out;
	}
	if (!out.len) {
		r = kerr_set(e, -EIO, "dpkg-scanpackages found no package in %s", repo);
		goto out;
	}
	if ((r = file_write_atomic(path, out.s, out.len, 0644, -1, -1)) < 0)
		kerr_set(e, r, "write %s: %s", path, strerror(-r));
out:
	buf_release(&out);
	buf_release(&err);
	free(path);
	return r;
}

int lab_mirror_build(const char *cache, const struct strv *packages,
		     struct lab_mirror_result *res, struct kerr *e)
{
	struct strv have = STRV_INIT, want = STRV_INIT;
	char *list = NULL, *repo = NULL, *index = NULL;
	bool missing = false;
	int lock = -1, r;

	memset(res, 0, sizeof(*res));
	if (geteuid() != 0)
		return kerr_set(e, -EPERM, "kiln lab mirror needs root (apt-get, %s)",
				LAB_MIRROR_CACHE);
	cache = cache ? cache : LAB_MIRROR_CACHE;
	for (size_t i = 0; packages && i < packages->n; i++)
		if (!pkg_name_ok(packages->v[i]))
			return kerr_set(e, -EINVAL, "'%s' is not a Debian package name",
					packages->v[i]);
	list = xasprintf("%s/packages", cache);
	repo = xasprintf("%s/repo", cache);
	index = xasprintf("%s/Packages", repo);
	if ((r = mkdir_p(repo, 0755)) < 0) {
		kerr_set(e, r, "mkdir %s: %s", repo, strerror(-r));
		goto out;
	}
	if ((r = cache_lock(cache, &lock, e)) < 0 || (r = list_read(list, &have, e)) < 0)
		goto out;
	for (size_t i = 0; i < have.n; i++)
		strv_push(&want, have.v[i]);
	if (packages && packages->n) {
		for (size_t i = 0; i < packages->n; i++)
			missing |= strv_push_unique(&want, packages->v[i]);
	} else if (!want.n) {
		strv_push(&want, LAB_MIRROR_DEFAULT_PACKAGES);
		missing = true;
	}
	size_t before = count_debs(repo);
	if (missing || !path_exists(index)) {
		strv_sort(&want);
		if ((r = fetch_debs(cache, repo, &want, e)) < 0 || (r = write_index(repo, e)) < 0)
			goto out;
		/* The list last: it says what the index holds. */
		struct buf b;
		buf_init(&b, 0);
		buf_adds(&b, "# kiln lab mirror: packages in repo/ (with their dependencies)\n");
		for (size_t i = 0; i < want.n; i++)
			buf_printf(&b, "%s\n", want.v[i]);
		r = file_write_atomic(list, b.s, b.len, 0644, -1, -1);
		buf_release(&b);
		if (r < 0) {
			kerr_set(e, r, "write %s: %s", list, strerror(-r));
			goto out;
		}
		res->refreshed = true;
	}
	res->packages = want.n;
	res->files = count_debs(repo);
	res->downloaded = res->files > before ? res->files - before : 0;
out:
	if (lock >= 0)
		close(lock);
	strv_release(&have);
	strv_release(&want);
	free(list);
	free(repo);
	free(index);
	return r;
}

/* ---- the lab side --------------------------------------------------- */

void mirror_free(struct lab_mirror *m)
{
	if (!m)
		return;
	free(m->cache);
	free(m->addr);
	free(m);
}

int mirror_plan(struct lab *l, const char *cache, struct kerr *e)
{
	struct in_addr a;
	char *index = NULL, *abs = NULL;
	int r = 0;

	if (!cache)
		return 0;
	abs = realpath(cache, NULL);
	if (!abs)
		return kerr_set(e, -errno, "mirror cache %s: %s (make it with 'kiln lab mirror')",
				cache, strerror(errno));
	index = xasprintf("%s/repo/Packages", abs);
	if (!path_exists(index)) {
		r = kerr_set(e, -ENOENT, "mirror cache %s has no index (make it with 'kiln lab mirror')",
			     abs);
		goto out;
	}
	/* l->subnet was checked by lab_plan: "a.b.c.d/p". */
	char ip[16];
	size_t n = strcspn(l->subnet, "/");
	if (n >= sizeof(ip)) {
		r = kerr_set(e, -EINVAL, "subnet '%s'", l->subnet);
		goto out;
	}
	memcpy(ip, l->subnet, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1) {
		r = kerr_set(e, -EINVAL, "subnet '%s'", l->subnet);
		goto out;
	}
	uint32_t v = ntohl(a.s_addr) + LAB_MIRROR_OFFSET;
	l->mirror = xcalloc(1, sizeof(*l->mirror));
	l->mirror->cache = abs;
	abs = NULL;
	l->mirror->addr = xasprintf("%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255,
				    v & 255);
	l->mirror->port = LAB_MIRROR_PORT;
out:
	free(abs);
	free(index);
	return r;
}

/* mkdir -p dir and mark it opaque: the machine's lower dir is hidden. */
static int opaque_dir(const char *dir, struct kerr *e)
{
	int r = mkdir_p(dir, 0755);

	if (r < 0)
		return kerr_set(e, r, "mkdir %s: %s", dir, strerror(-r));
	if (setxattr(dir, "trusted.overlay.opaque", "y", 1, 0) < 0)
		return kerr_set(e, -errno, "mark %s opaque: %s", dir, strerror(errno));
	return 0;
}

int mirror_host_files(const struct lab *l, const struct lab_host *h, struct kerr *e)
{
	const struct lab_mirror *m = l->mirror;
	char *dir = NULL, *p = NULL, *text = NULL;
	int r;

	if (!m)
		return 0;
	/*
	 * The host's apt knows only the mirror: its own sources.list, an
	 * empty sources.list.d and no package lists from the machine's
	 * sources (apt-get update fills them from the mirror).
	 */
	dir = xasprintf("%s/fs/upper/etc/apt", h->rt);
	if ((r = mkdir_p(dir, 0755)) < 0) {
		kerr_set(e, r, "mkdir %s: %s", dir, strerror(-r));
		goto out;
	}
	p = xasprintf("%s/sources.list", dir);
	text = xasprintf("# kiln lab '%s': the lab's package mirror (kiln help lab)\n"
			 "deb [trusted=yes] http://%s:%u/ ./\n", l->name, m->addr, m->port);
	if ((r = file_write_atomic(p, text, strlen(text), 0644, -1, -1)) < 0) {
		kerr_set(e, r, "write %s: %s", p, strerror(-r));
		goto out;
	}
	free(p);
	p = xasprintf("%s/sources.list.d", dir);
	if ((r = opaque_dir(p, e)) < 0)
		goto out;
	free(p);
	p = xasprintf("%s/fs/upper/var/lib/apt/lists", h->rt);
	r = opaque_dir(p, e);
out:
	free(dir);
	free(p);
	free(text);
	return r;
}

/* ---- the server (runs in the forked child) -------------------------- */

struct srv {
	int log;          /* append-only log, or -1 */
	size_t logged;
};

const char *mirror_request_name(char *path)
{
	char *name = NULL;

	for (char *s = path, *seg; (seg = strtok_r(s, "/", &s));) {
		if (!strcmp(seg, "."))
			continue;
		if (name || !strcmp(seg, ".."))
			return NULL;
		name = seg;
	}
	if (!name || name[0] == '.' || strlen(name) > NAME_MAX_LEN ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._+~%:-") != strlen(name))
		return NULL;
	return name;
}

static void srv_log(struct srv *s, struct evhttp_request *req, const char *path, int code,
		    long long bytes)
{
	char peer[64] = "?", p[256], line[512];
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (s->log < 0 || s->logged > LOG_CAP)
		return;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	if (addr)
		str_sanitize(peer, sizeof(peer), addr, strlen(addr));
	str_sanitize(p, sizeof(p), path, strlen(path));
	for (char *c = p; *c; c++)
		if (*c == ' ')
			*c = '?';
	int n = snprintf(line, sizeof(line), "%s %s %d %lld %s\n",
			 evhttp_request_get_command(req) == EVHTTP_REQ_HEAD ? "HEAD" : "GET",
			 p, code, bytes, peer);
	if (n > 0 && write(s->log, line, (size_t)n) == n)
		s->logged += (size_t)n;
}

/* GET or HEAD of a regular file at the top of the (chroot) repository. */
static void on_request(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *raw = u ? evhttp_uri_get_path(u) : NULL;
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evbuffer_new();
	size_t n = 0;
	char *path = raw ? evhttp_uridecode(raw, 0, &n) : NULL;
	const char *name = NULL;
	struct stat st;
	int code = 404, fd = -1;
	long long bytes = 0;

	if (!body)
		goto out;
	if (!path || n != strlen(path)) {   /* an encoded NUL */
		code = 400;
		goto reply;
	}
	char *copy = xstrdup(path);
	name = mirror_request_name(copy);
	if (name)
		fd = open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	free(copy);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto reply;
	code = 200;
	bytes = (long long)st.st_size;
	evhttp_add_header(hdr, "Content-Type", "application/octet-stream");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char len[32];
		snprintf(len, sizeof(len), "%lld", bytes);
		evhttp_add_header(hdr, "Content-Length", len);
	} else if (st.st_size > 0) {
		/* The buffer takes the fd (and closes it once sent). */
		if (evbuffer_add_file(body, fd, 0, st.st_size) < 0)
			code = 500;
		else
			fd = -1;
	}
reply:
	srv_log(s, req, path ? path : "?", code, code == 200 ? bytes : 0);
	if (code == 200)
		evhttp_send_reply(req, 200, "OK", body);
	else
		evhttp_send_error(req, code, NULL);
out:
	if (fd >= 0)
		close(fd);
	if (body)
		evbuffer_free(body);
	free(path);
}

/* Report a failed server step over the pipe and end the child. */
static _Noreturn void srv_fail(int fd, const char *what, const char *arg, int err)
{
	dprintf(fd, "%s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(err));
	_exit(1);
}

/*
 * The server process: join the switch namespace, bind, chroot into the
 * repository, drop to nobody, report "ok" on fd, serve until killed.
 */
static _Noreturn void srv_main(int fd, const char *netns, const char *addr, unsigned port,
			       const char *root, const char *logpath)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct srv s = { .log = -1 };
	sigset_t none;
	int one = 1;

	setsid();
	prctl(PR_SET_NAME, "kiln-lab-mirror");
	prctl(PR_SET_PDEATHSIG, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	int rd = lab_stdio_devnull();
	if (rd < 0)
		srv_fail(fd, "open", "/dev/null", -rd);

	int nfd = open(netns, O_RDONLY | O_CLOEXEC);
	if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0)
		srv_fail(fd, "join", netns, errno);
	close(nfd);
	int sock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sock < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		srv_fail(fd, "socket", addr, sock < 0 ? errno : EINVAL);
	setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(sock, 128) < 0)
		srv_fail(fd, "bind", addr, errno);
	s.log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);

	/* Bind, then drop: chroot, setgroups, setresgid, setresuid (STYLE.md). */
	struct passwd *pw = getpwnam("nobody");
	uid_t uid = pw ? pw->pw_uid : 65534;
	gid_t gid = pw ? pw->pw_gid : 65534;
	if (chroot(root) < 0 || chdir("/") < 0)
		srv_fail(fd, "chroot", root, errno);
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		srv_fail(fd, "drop privileges to", "nobody", errno);
	if (setuid(0) == 0)
		srv_fail(fd, "drop privileges to", "nobody", EPERM);

	struct event_base *base = event_base_new();
	struct evhttp *http = base ? evhttp_new(base) : NULL;
	if (!http || evhttp_accept_socket(http, sock) < 0)
		srv_fail(fd, "start", "evhttp", ENOMEM);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(http, 16 << 10);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_timeout(http, 60);
	evhttp_set_gencb(http, on_request, &s);
	if (write(fd, "ok\n", 3) != 3)
		_exit(1);
	close(fd);
	event_base_dispatch(base);
	_exit(0);
}


int mirror_start(struct lab *l, struct kerr *e)
{
	struct lab_mirror *m = l->mirror;
	char *cidr = NULL, *netns = NULL, *root = NULL, *logpath = NULL;
	int p[2] = { -1, -1 }, r;

	if (!m)
		return 0;
	cidr = xasprintf("%s/%d", m->addr, l->prefix);
	char *argv[] = { "ip", "-n", l->sw_netns, "addr", "add", cidr, "dev", "br0", NULL };
	if ((r = run_ok(argv, &(struct run_opts){ .timeout_ms = 30000 }, e)) < 0) {
		kerr_prefix(e, "mirror address %s", cidr);
		goto out;
	}
	netns = xasprintf("/run/netns/%s", l->sw_netns);
	root = xasprintf("%s/repo", m->cache);
	logpath = xasprintf("%s/mirror.log", l->rt);
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = kerr_set(e, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		r = kerr_set(e, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(p[0]);
		/* Keep only the report pipe (and 0-2, replaced by /dev/null). */
		int keep = fcntl(p[1], F_DUPFD_CLOEXEC, 3);
		if (keep < 0)
			_exit(1);
		if (keep > 3)
			syscall(SYS_close_range, 3, keep - 1, 0);
		syscall(SYS_close_range, keep + 1, ~0U, 0);
		srv_main(keep, netns, m->addr, m->port, root, logpath);
	}
	close(p[1]);
	p[1] = -1;
	m->pid = pid;
	m->start = proc_start_time(pid);
	r = lab_read_report(p[0], SERVER_WAIT_MS, "mirror", "server", e);
	p[0] = -1;
	if (r < 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		m->pid = 0;
		m->start = 0;
	}
out:
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	free(cidr);
	free(netns);
	free(root);
	free(logpath);
	return r;
}

int mirror_stop(const struct lab_mirror *m, struct kerr *e)
{
	int64_t deadline = now_ms() + 10000;

	if (!m || m->pid <= 0 || !m->start)
		return 0;
	while (proc_start_time(m->pid) == m->start) {
		kill(m->pid, SIGKILL);
		if (now_ms() > deadline)
			return kerr_set(e, -ETIMEDOUT, "mirror server %d does not die", (int)m->pid);
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return 0;
}

json_t *mirror_to_json(const struct lab_mirror *m)
{
	if (!m)
		return json_null();
	return json_pack("{s:s, s:s, s:i, s:I, s:I}", "cache", m->cache, "address", m->addr,
			 "port", (int)m->port, "pid", (json_int_t)m->pid,
			 "start", (json_int_t)m->start);
}

struct lab_mirror *mirror_from_json(const json_t *j)
{
	const char *cache = json_string_value(json_object_get(j, "cache"));
	const char *addr = json_string_value(json_object_get(j, "address"));
	json_int_t port = json_integer_value(json_object_get(j, "port"));

	if (!json_is_object(j) || !cache || !addr || port <= 0 || port > 65535)
		return NULL;
	struct lab_mirror *m = xcalloc(1, sizeof(*m));
	m->cache = xstrdup(cache);
	m->addr = xstrdup(addr);
	m->port = (unsigned)port;
	m->pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
	m->start = (unsigned long long)json_integer_value(json_object_get(j, "start"));
	return m;
}

json_t *mirror_status(const struct lab_mirror *m)
{
	if (!m)
		return json_null();
	bool alive = m->pid > 0 && m->start && proc_start_time(m->pid) == m->start;
	char *url = xasprintf("http://%s:%u/", m->addr, m->port);
	json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:b}", "url", url, "address", m->addr,
			      "cache", m->cache,
			      "pid", alive ? json_integer(m->pid) : json_null(), "alive", alive);
	free(url);
	return j;
}
