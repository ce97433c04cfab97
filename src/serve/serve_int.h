/* serve internals: the daemon context shared by daemon.c and http.c only. */
#ifndef KILN_SERVE_INT_H
#define KILN_SERVE_INT_H

#include "serve/serve.h"

struct evhttp;
struct event;

/* One running daemon.  cfg is replaced whole on reload. */
struct serve {
	const char *spec;
	struct event_base *base;
	struct serve_config *cfg;
	struct lease_db *leases;
	struct dhcp_engine *eng;
	struct boot_dhcp *dhcp;
	struct boot_tftp *tftp;
	struct evhttp *http;
	struct serve_state *st;
	struct rate_limit *rl;    /* unknown-MAC scripts and discovery posts */
	int tftp_rootfd;          /* boot.tftp_root (O_PATH), for HTTP boot loaders */
	char *token;              /* NULL: state-changing API calls are refused */
	char *reload_error;       /* the last failed reload's message */
	int64_t started;
	unsigned reloads;
	struct event *sighup, *sigterm, *sigint;
};

/* One structured line: "ts=... level=... event=EVENT " + fmt (key=value ...). */
void slog(enum log_level lvl, const char *event, const char *fmt, ...) PRINTF(3, 4);
/* Build a new config from the spec and swap it in; on error keep the old. */
int serve_reload(struct serve *s, struct kerr *e);
/* Bind the HTTP listeners (boot.listen or all addresses) and route requests. */
int serve_http_start(struct serve *s, struct kerr *e);

#define SERVE_MAX_BODY (256u << 10)   /* discovery posts and API bodies */

#endif
