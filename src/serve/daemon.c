/*
 * The daemon: startup (check, bind, drop privileges), reload, signals and
 * the structured log.  HTTP handlers are in http.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <net/if.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve_int.h"

void slog(enum log_level lvl, const char *event, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (lvl > log_threshold)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One write per line: stderr is unbuffered, and lines from a busy
	 * daemon must neither interleave nor cost a syscall per fragment. */
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "ts=%s.%03ldZ level=%s event=%s", ts, now.tv_nsec / 1000000,
		   names[lvl], event);
	if (fmt && *fmt) {
		buf_addch(&b, ' ');
		va_start(ap, fmt);
		buf_vprintf(&b, fmt, ap);
		va_end(ap);
	}
	buf_addch(&b, '\n');
	fwrite(b.s, 1, b.len, stderr);
	buf_release(&b);
}

/*
 * The boot loaders must be servable from tftp_root under the TFTP rules:
 * one the spec names is an error when it is not, a default one a warning
 * (a site that boots only UEFI has no use for undionly.kpxe).
 */
static int check_loaders(const struct boot_conf *b, int root, const char *root_name,
			 struct kerr *e)
{
	const struct { const char *key, *name, *dflt; } l[] = {
		{ "bios", b->loader_bios, "undionly.kpxe" },
		{ "efi64", b->loader_efi64, "snponly.efi" },
		{ "arm64", b->loader_arm64, NULL },   /* no default in Debian's ipxe */
	};
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(l) && r == 0; i++) {
		const char *name = l[i].name ? l[i].name : l[i].dflt;
		uint64_t size;
		if (!name)
			continue;
		int fd = tftp_open_beneath(root, name, &size);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		const char *why = fd == -EXDEV || fd == -ELOOP ? "it leads out of tftp_root"
			: fd == -EACCES ? "not readable, or not a regular file" : strerror(-fd);
		if (l[i].name)
			r = kerr_set(e, fd, "boot.loaders.%s: '%s' cannot be served from '%s': %s",
				     l[i].key, name, root_name, why);
		else
			slog(LOG_WARN, "config", "msg=\"default %s loader '%s' cannot be served "
			     "from '%s': %s; set boot.loaders.%s\"", l[i].key, name, root_name,
			     why, l[i].key);
	}
	return r;
}

/* Every check `-n` promises beyond the spec itself: interfaces, user, dirs. */
static int check_host(const struct serve_config *c, struct kerr *e)
{
	const struct boot_conf *b = &c->cluster->boot;
	struct stat st;

	for (size_t i = 0; i < b->nnetworks; i++)
		if (b->networks[i].iface && if_nametoindex(b->networks[i].iface) == 0)
			return kerr_set(e, -ENODEV, "boot network '%s': no interface '%s'",
					b->networks[i].name, b->networks[i].iface);
	errno = 0;
	if (!getpwnam(b->user))
		return kerr_set(e, -ENOENT, "boot.user: no user '%s'", b->user);
	if (stat(b->tftp_root, &st) < 0 || !S_ISDIR(st.st_mode))
		return kerr_set(e, -ENOTDIR, "boot.tftp_root: '%s' is not a directory",
				b->tftp_root);
	int root = open(b->tftp_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return kerr_set(e, -errno, "boot.tftp_root '%s': %s", b->tftp_root,
				strerror(errno));
	int r = check_loaders(b, root, b->tftp_root, e);
	close(root);
	return r;
}

/*
 * The on_sent hook of the DHCP glue: an ACK makes a known node booting.
 * One serve.db transaction per run of replies, not one per ACK.
 */
static void on_dhcp_sent(void *arg, const struct boot_dhcp_sent *v, size_t n)
{
	struct serve *s = arg;
	bool batch = serve_state_begin(s->st) == 0;

	for (size_t i = 0; i < n; i++) {
		char m[18], ip[16];
		if (v[i].type != DHCPACK)
			continue;
		boot_fmt_mac(v[i].mac, m);
		boot_fmt_ip(v[i].yiaddr, ip);
		const struct node *nd = serve_config_node(s->cfg, m);
		serve_state_lease(s->st, m, nd ? nd->name : NULL, ip);
		slog(LOG_INFO, "lease", "mac=%s ip=%s node=%s", m, ip, nd ? nd->name : "-");
	}
	if (batch && serve_state_end(s->st, true) < 0)
		slog(LOG_ERR, "state", "msg=\"serve.db: lease rows not recorded\"");
}

int serve_reload(struct serve *s, struct kerr *e)
{
	struct serve_config *nc = NULL;
	struct dhcp_engine *eng = NULL;
	int r;

	s->reloads++;
	/* loaders are checked in the tftp_root in use: a new one waits for a
	 * restart */
	if ((r = serve_config_load(s->spec, &nc, e)) < 0 ||
	    (r = check_loaders(&nc->cluster->boot, s->tftp_rootfd,
			       s->cfg->cluster->boot.tftp_root, e)) < 0)
		goto fail;
	const struct boot_conf *ob = &s->cfg->cluster->boot, *nb = &nc->cluster->boot;
	if (s->dhcp) {
		if ((r = dhcp_engine_new(&nc->boot, s->leases, &eng, e)) < 0 ||
		    (r = boot_dhcp_set_engine(s->dhcp, &nc->boot, eng, e)) < 0)
			goto fail;
	} else if (nc->boot.n_nets) {
		r = kerr_set(e, -EINVAL, "boot networks were added: restart needed");
		goto fail;
	}
	if (strcmp(ob->tftp_root, nb->tftp_root) || ob->http_port != nb->http_port ||
	    strcmp(ob->state_dir, nb->state_dir) || strcmp(ob->user, nb->user))
		slog(LOG_WARN, "reload", "msg=\"tftp_root, http_port, state_dir or user "
		     "changed: kept until restart\"");
	dhcp_engine_free(s->eng);
	serve_config_free(s->cfg);
	s->eng = eng;
	s->cfg = nc;
	free(s->reload_error);
	s->reload_error = NULL;
	slog(LOG_INFO, "reload", "result=ok nodes=%zu hosts=%zu", nc->cluster->nnodes,
	     nc->boot.n_hosts);
	serve_state_event(s->st, NULL, "reload", "ok");
	return 0;
fail:
	dhcp_engine_free(eng);
	serve_config_free(nc);
	free(s->reload_error);
	s->reload_error = xstrdup(e->msg);
	{
		char msg[600];
		str_sanitize(msg, sizeof(msg), e->msg, strlen(e->msg));
		for (char *p = msg; *p; p++)
			if (*p == '"')
				*p = '\'';
		slog(LOG_ERR, "reload", "result=failed error=\"%s\"", msg);
	}
	serve_state_event(s->st, NULL, "reload", e->msg);
	return r;
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct kerr e = { 0 };
	serve_reload(arg, &e);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct serve *s = arg;
	slog(LOG_INFO, "stop", "signal=%d", (int)sig);
	event_base_loopbreak(s->base);
}

/*
 * The state directory belongs to the unprivileged user: the databases
 * (and SQLite's -wal/-shm files) must stay writable after the drop.
 */
static int prepare_state_dir(const char *dir, const struct passwd *pw, struct kerr *e)
{
	static const char *const files[] = { "leases.db", "leases.db-wal", "leases.db-shm",
		"serve.db", "serve.db-wal", "serve.db-shm" };
	int r = mkdir_p(dir, 0750);
	if (r < 0)
		return kerr_set(e, r, "state_dir '%s': %s", dir, strerror(-r));
	if (geteuid() != 0)
		return 0;
	if (chown(dir, pw->pw_uid, pw->pw_gid) < 0)
		return kerr_set(e, -errno, "chown '%s': %s", dir, strerror(errno));
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *p = xasprintf("%s/%s", dir, files[i]);
		if (path_exists(p) && chown(p, pw->pw_uid, pw->pw_gid) < 0) {
			r = kerr_set(e, -errno, "chown '%s': %s", p, strerror(errno));
			free(p);
			return r;
		}
		free(p);
	}
	return 0;
}

static void serve_release(struct serve *s)
{
	if (s->sighup)
		event_free(s->sighup);
	if (s->sigterm)
		event_free(s->sigterm);
	if (s->sigint)
		event_free(s->sigint);
	if (s->http)
		evhttp_free(s->http);
	rate_limit_free(s->rl);
	boot_tftp_free(s->tftp);
	boot_dhcp_free(s->dhcp);
	dhcp_engine_free(s->eng);
	lease_db_close(s->leases);
	serve_state_close(s->st);
	serve_config_free(s->cfg);
	if (s->base)
		event_base_free(s->base);
	if (s->tftp_rootfd >= 0)
		close(s->tftp_rootfd);
	free(s->token);
	free(s->reload_error);
}

int serve_run(const struct serve_opts *o, struct kerr *e)
{
	struct serve s = { .spec = o->spec, .started = wall_ms() / 1000, .tftp_rootfd = -1 };
	char *path = NULL;
	int r;

	if ((r = serve_config_load(o->spec, &s.cfg, e)) < 0)
		goto out;
	const struct boot_conf *b = &s.cfg->cluster->boot;
	if (b->api_token_file && (r = serve_read_token(b->api_token_file, &s.token, e)) < 0)
		goto out;
	if ((r = check_host(s.cfg, e)) < 0)
		goto out;
	if (o->check_only)
		goto out;

	struct passwd *pw = getpwnam(b->user);
	if (!pw) {
		r = kerr_set(e, -ENOENT, "boot.user: no user '%s'", b->user);
		goto out;
	}
	if ((r = prepare_state_dir(b->state_dir, pw, e)) < 0)
		goto out;
	path = xasprintf("%s/leases.db", b->state_dir);
	if ((r = lease_db_open(path, &s.leases, e)) < 0)
		goto out;
	free(path);
	path = xasprintf("%s/serve.db", b->state_dir);
	if ((r = serve_state_open(path, false, &s.st, e)) < 0)
		goto out;
	if ((r = prepare_state_dir(b->state_dir, pw, e)) < 0)   /* the new files too */
		goto out;
	if (!(s.base = event_base_new())) {
		r = kerr_set(e, -ENOMEM, "cannot create the event loop");
		goto out;
	}
	if (s.cfg->boot.n_nets) {
		if ((r = dhcp_engine_new(&s.cfg->boot, s.leases, &s.eng, e)) < 0 ||
		    (r = boot_dhcp_start(s.base, &s.cfg->boot, s.eng, &s.dhcp, e)) < 0)
			goto out;
		boot_dhcp_on_sent(s.dhcp, on_dhcp_sent, &s);
	}
	s.tftp_rootfd = open(b->tftp_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.tftp_rootfd < 0) {
		r = kerr_set(e, -errno, "boot.tftp_root '%s': %s", b->tftp_root, strerror(errno));
		goto out;
	}
	struct boot_tftp_opts to = { .root = b->tftp_root };
	if ((r = boot_tftp_start(s.base, &to, &s.tftp, e)) < 0)
		goto out;
	if ((r = serve_http_start(&s, e)) < 0)
		goto out;
	/* everything that needs root is done: drop it, or do not run at all */
	if (geteuid() == 0 && (r = boot_drop_privileges(b->user, NULL, e)) < 0) {
		kerr_prefix(e, "dropping privileges");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	s.sighup = evsignal_new(s.base, SIGHUP, on_sighup, &s);
	s.sigterm = evsignal_new(s.base, SIGTERM, on_stop, &s);
	s.sigint = evsignal_new(s.base, SIGINT, on_stop, &s);
	if (!s.sighup || !s.sigterm || !s.sigint || evsignal_add(s.sighup, NULL) < 0 ||
	    evsignal_add(s.sigterm, NULL) < 0 || evsignal_add(s.sigint, NULL) < 0) {
		r = kerr_set(e, -ENOMEM, "cannot register signal handlers");
		goto out;
	}
	slog(LOG_INFO, "ready", "pid=%d uid=%d http=%s dhcp_nets=%zu hosts=%zu tftp_root=%s",
	     (int)getpid(), (int)getuid(), s.cfg->http_base, s.cfg->boot.n_nets,
	     s.cfg->boot.n_hosts, b->tftp_root);
	serve_state_event(s.st, NULL, "start", s.cfg->http_base);
	event_base_dispatch(s.base);
	r = 0;
out:
	free(path);
	serve_release(&s);
	return r;
}
