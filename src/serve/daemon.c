/*
 * kiln serve's unprivileged side (docs/serve.md, "Two processes"): it binds
 * DHCP, TFTP and HTTP, opens its databases as the daemon's user, chroots
 * into an empty directory and drops root for good before it reads a byte
 * from the network; then it serves, and asks the privileged side (priv.c)
 * over the socketpair for everything that needs the spec: reloads and
 * enrollment.  Also the structured log.  HTTP handlers are in http.c and http_api.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <net/if.h>
#include <pwd.h>
#include <sys/prctl.h>
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
	va_list ap;

	va_start(ap, fmt);
	log_vevent(lvl, event, fmt, ap);
	va_end(ap);
}

/*
 * The boot loaders must be servable from tftp_root under the TFTP rules:
 * one the spec names is an error when it is not, a default one a warning
 * (a site that boots only UEFI has no use for undionly.kpxe).
 */
int serve_check_loaders(const struct boot_config *c, int root, const char *root_name,
			struct kerr *e)
{
	int r = 0;
	for (int l = 0; l < BOOT_LOADER_N && r == 0; l++) {
		const char *name = boot_loader_file(c, (enum boot_loader)l);
		uint64_t size;
		int fd = tftp_open_beneath(root, name, &size);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		const char *why = fd == -EXDEV || fd == -ELOOP ? "it leads out of tftp_root"
			: fd == -EACCES ? "not readable, or not a regular file" : strerror(-fd);
		if (c->loader[l])
			r = kerr_set(e, fd, "boot.loaders.%s: '%s' cannot be served from '%s': %s",
				     boot_loaders[l].key, name, root_name, why);
		else
			slog(LOG_WARN, "config", "msg=\"default %s loader '%s' cannot be served "
			     "from '%s': %s; set boot.loaders.%s\"", boot_loaders[l].key, name,
			     root_name, why, boot_loaders[l].key);
	}
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

/* Record a failed reload: log, status, events. */
static void reload_failed(struct serve *s, const char *msg)
{
	char m[600];

	free(s->reload_error);
	s->reload_error = xstrdup(msg);
	str_sanitize(m, sizeof(m), msg, strlen(msg));
	for (char *p = m; *p; p++)
		if (*p == '"')
			*p = '\'';
	slog(LOG_ERR, "reload", "result=failed error=\"%s\"", m);
	serve_state_event(s->st, NULL, "reload", msg);
}

int serve_apply(struct serve *s, struct ps_config *pc, struct kerr *e)
{
	struct serve_config *nc = NULL;
	struct dhcp_engine *eng = NULL;
	int r;

	s->reloads++;
	/* loaders are checked in the tftp_root in use: a new one waits for a
	 * restart */
	if ((r = serve_config_load(pc->spec, &pc->files, &nc, e)) < 0 ||
	    (r = serve_check_loaders(&nc->boot, s->tftp_rootfd,
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
	serve_images_release(&s->images);
	s->images = pc->images;
	pc->images = (struct serve_images){ 0 };
	free(s->token);
	s->token = pc->token;
	pc->token = NULL;
	free(s->reload_error);
	s->reload_error = NULL;
	slog(LOG_INFO, "reload", "result=ok nodes=%zu hosts=%zu", nc->cluster->nnodes,
	     nc->boot.n_hosts);
	serve_state_event(s->st, NULL, "reload", "ok");
	return 0;
fail:
	dhcp_engine_free(eng);
	serve_config_free(nc);
	reload_failed(s, e->msg);
	return r;
}

/* ---- asking the privileged side ------------------------------------------- */

static struct ps_pending *pending_of(struct serve *s, uint32_t id)
{
	for (size_t i = 0; id && i < PS_MAX_PENDING; i++)
		if (s->pending[i].id == id)
			return &s->pending[i];
	return NULL;
}

/* Send a request; req (may be NULL) waits for the answer with id. */
static int ask(struct serve *s, uint32_t type, const void *data, size_t len,
	       struct evhttp_request *req, const char *path, bool enroll)
{
	struct ps_pending *p = NULL;
	if (req) {
		for (size_t i = 0; i < PS_MAX_PENDING && !p; i++)
			if (!s->pending[i].id)
				p = &s->pending[i];
		if (!p)
			return -EBUSY;
	}
	if (++s->next_id == 0)
		s->next_id = 1;
	int r = ps_send(s->ps_fd, type, req ? s->next_id : 0, data, len, NULL, 0);
	if (r < 0 || !p)
		return r;
	p->id = s->next_id;
	p->req = req;
	p->path = xstrdup(path);
	p->enroll = enroll;
	return 0;
}

int serve_ask_reload(struct serve *s, struct evhttp_request *req, const char *path)
{
	return ask(s, PS_RELOAD, NULL, 0, req, path, false);
}

int serve_ask_enroll(struct serve *s, struct evhttp_request *req, const char *path,
		     const struct enroll_req *q)
{
	struct ps_enroll m;
	int r = ps_enroll_pack(q, &m);
	if (r < 0)
		return r;
	return ask(s, PS_ENROLL, &m, sizeof(m), req, path, true);
}

static void answer(struct ps_pending *p, int status, json_t *body)
{
	serve_http_answer(p->req, p->path, status, body);
	free(p->path);
	memset(p, 0, sizeof(*p));
}

/* A message from the privileged side.  -EBADMSG ends the daemon. */
static int on_priv_msg(struct serve *s, struct ps_rx *x)
{
	struct ps_pending *p = pending_of(s, x->id);
	struct kerr e = { 0 };

	if (x->type == PS_CONFIG) {
		struct ps_config pc;
		if (ps_config_decode(x->body.s, x->len, x->fds, x->nfds, &pc) < 0)
			return -EBADMSG;
		int r = serve_apply(s, &pc, &e);
		if (p && r < 0)
			answer(p, 422, json_pack(p->enroll ? "{s:s}" : "{s:s, s:s}", "error",
						 e.msg, "result", "failed"));
		else if (p && p->enroll)
			answer(p, 200, json_pack("{s:s?, s:s?}", "node", pc.enrolled_node,
						 "address", pc.enrolled_address));
		else if (p)
			answer(p, 200, json_pack("{s:s}", "result", "ok"));
		ps_config_release(&pc);
		return 0;
	}
	if (x->type == PS_FAIL && !x->nfds) {
		int status;
		char *msg = NULL;
		if (ps_fail_decode(x->body.s, x->len, &status, &msg) < 0)
			return -EBADMSG;
		if (!p || !p->enroll)
			reload_failed(s, msg);
		if (p)
			answer(p, status >= 400 && status < 600 ? status : 500,
			       json_pack(p->enroll ? "{s:s}" : "{s:s, s:s}", "error", msg,
					 "result", "failed"));
		free(msg);
		return 0;
	}
	return -EBADMSG;
}

static void on_priv(evutil_socket_t fd, short what, void *arg)
{
	struct serve *s = arg;
	int r;

	while ((r = ps_rx_read(&s->ps_rx, s->ps_fd)) == 1) {
		r = on_priv_msg(s, &s->ps_rx);
		ps_rx_reset(&s->ps_rx);
		if (r < 0)
			break;
	}
	if (r < 0) {
		if (r != -ECONNRESET)
			slog(LOG_ERR, "privsep", "msg=\"bad message from the privileged process\"");
		else
			slog(LOG_ERR, "privsep", "msg=\"the privileged process is gone\"");
		event_base_loopbreak(s->base);
	}
}

/* SIGHUP here too: the operator may signal either process. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	serve_ask_reload(arg, NULL, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct serve *s = arg;
	slog(LOG_INFO, "stop", "signal=%d", (int)sig);
	event_base_loopbreak(s->base);
}

static void serve_release(struct serve *s)
{
	for (size_t i = 0; i < PS_MAX_PENDING; i++)
		if (s->pending[i].id)
			answer(&s->pending[i], 503, json_pack("{s:s}", "error", "shutting down"));
	if (s->ps_ev)
		event_free(s->ps_ev);
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
	serve_images_release(&s->images);
	if (s->base)
		event_base_free(s->base);
	if (s->tftp_rootfd >= 0)
		close(s->tftp_rootfd);
	if (s->ps_fd >= 0)
		close(s->ps_fd);
	ps_rx_release(&s->ps_rx);
	free(s->token);
	free(s->reload_error);
}

/* Bind, open, chroot, drop; everything before the first packet is read. */
static int net_start(struct serve *s, struct serve_start *st, struct kerr *e)
{
	const struct boot_conf *b = &s->cfg->cluster->boot;
	char *path = NULL;
	int r;

	/* the databases, as the user: root never opens a file in the state
	 * directory, where the user could have planted a link */
	if ((r = boot_files_as_user(st->pw->pw_uid, st->pw->pw_gid, e)) < 0)
		return r;
	path = xasprintf("%s/leases.db", b->state_dir);
	r = lease_db_open(path, &s->leases, e);
	free(path);
	if (r == 0) {
		path = xasprintf("%s/serve.db", b->state_dir);
		r = serve_state_open(path, false, &s->st, e);
		free(path);
	}
	int r2 = boot_files_as_root(r < 0 ? NULL : e);
	if (r < 0 || (r = r2) < 0)
		return r;

	if (!(s->base = event_base_new()))
		return kerr_set(e, -ENOMEM, "cannot create the event loop");
	if (s->cfg->boot.n_nets) {
		if ((r = dhcp_engine_new(&s->cfg->boot, s->leases, &s->eng, e)) < 0 ||
		    (r = boot_dhcp_start(s->base, &s->cfg->boot, s->eng, &s->dhcp, e)) < 0)
			return r;
		boot_dhcp_on_sent(s->dhcp, on_dhcp_sent, s);
	}
	s->tftp_rootfd = open(b->tftp_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->tftp_rootfd < 0)
		return kerr_set(e, -errno, "boot.tftp_root '%s': %s", b->tftp_root,
				strerror(errno));
	struct boot_tftp_opts to = { .root = b->tftp_root };
	if ((r = boot_tftp_start(s->base, &to, &s->tftp, e)) < 0 ||
	    (r = serve_http_start(s, e)) < 0)
		return r;
	/* everything that needs root is done: drop it, or do not run at all */
	if ((r = boot_drop_privileges(st->pw->pw_name, SERVE_EMPTY_DIR, e)) < 0) {
		kerr_prefix(e, "dropping privileges");
		return r;
	}
	/* die with the privileged side (set after the drop, which clears it) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != st->parent)
		return kerr_set(e, -ESRCH, "the privileged process is gone");

	s->ps_ev = event_new(s->base, s->ps_fd, EV_READ | EV_PERSIST, on_priv, s);
	s->sighup = evsignal_new(s->base, SIGHUP, on_sighup, s);
	s->sigterm = evsignal_new(s->base, SIGTERM, on_stop, s);
	s->sigint = evsignal_new(s->base, SIGINT, on_stop, s);
	if (!s->ps_ev || !s->sighup || !s->sigterm || !s->sigint ||
	    event_add(s->ps_ev, NULL) < 0 || evsignal_add(s->sighup, NULL) < 0 ||
	    evsignal_add(s->sigterm, NULL) < 0 || evsignal_add(s->sigint, NULL) < 0)
		return kerr_set(e, -ENOMEM, "cannot register events");
	sigprocmask(SIG_SETMASK, st->sigmask, NULL);
	return 0;
}

int serve_net_main(struct serve_start *st)
{
	struct serve s = { .spec = st->spec, .started = wall_ms() / 1000, .tftp_rootfd = -1,
			   .cfg = st->cfg, .images = st->images, .ps_fd = st->sock };
	struct kerr e = { 0 };
	int r;

	st->cfg = NULL;
	st->images = (struct serve_images){ 0 };
	s.token = st->token ? xstrdup(st->token) : NULL;
	ps_rx_init(&s.ps_rx, PS_MAX_MSG);
	if ((r = net_start(&s, st, &e)) < 0) {
		ps_send(s.ps_fd, PS_DIED, 0, e.msg, strlen(e.msg), NULL, 0);
		goto out;
	}
	if ((r = ps_send(s.ps_fd, PS_READY, 0, NULL, 0, NULL, 0)) < 0)
		goto out;
	slog(LOG_INFO, "ready", "pid=%d uid=%d http=%s dhcp_nets=%zu hosts=%zu tftp_root=%s",
	     (int)getpid(), (int)getuid(), s.cfg->http_base, s.cfg->boot.n_nets,
	     s.cfg->boot.n_hosts, s.cfg->cluster->boot.tftp_root);
	serve_state_event(s.st, NULL, "start", s.cfg->http_base);
	event_base_dispatch(s.base);
	r = 0;
out:
	serve_release(&s);
	return r;
}
