/* serve internals: the daemon context shared by daemon.c, http.c and http_api.c only. */
#ifndef KILN_SERVE_INT_H
#define KILN_SERVE_INT_H

#include <pwd.h>
#include <signal.h>

#include "serve/serve.h"

struct evhttp;
struct event;

/* ---- images: opened by the privileged side, served from descriptors ---- */

/* One boot image's files: fd[0] kernel, fd[1] initrd; -1 = none (a URL,
 * or a file that could not be opened: a request for it is 404). */
struct serve_image {
	char *name;
	int fd[2];
};
struct serve_images {
	struct serve_image *v;
	size_t n;
};
/* Open the local kernel and initrd files of every image of c (as the
 * caller: root on the privileged side).  A file that cannot be opened is
 * left out with a warning in the log, as a request for it would fail. */
void serve_images_open(const struct cluster *c, struct serve_images *out);
void serve_images_release(struct serve_images *im);

/* ---- privilege separation (privsep.c): the socketpair's messages ------- */

enum ps_type {
	PS_CONFIG = 1,   /* priv -> net: a configuration to use (struct ps_config) */
	PS_FAIL,         /* priv -> net: request id failed: i32 HTTP status, message */
	PS_RELOAD,       /* net -> priv: reload the spec (no payload) */
	PS_ENROLL,       /* net -> priv: struct ps_enroll */
	PS_READY,        /* net -> priv: started, serving (no payload) */
	PS_DIED,         /* net -> priv: could not start: the message */
};

/* Where the unprivileged side chroots: root's, empty. */
#define SERVE_EMPTY_DIR "/run/kiln/empty"

/* A PS_FAIL's payload. */
void ps_fail_encode(struct buf *b, int status, const char *msg);
int ps_fail_decode(const void *data, size_t len, int *status, char **msg);

#define PS_MAX_MSG (96u << 20)      /* a configuration: the spec's files (16 MiB each) */
#define PS_MAX_REQ 4096u            /* what the privileged side accepts from the other */
#define PS_MAX_FDS 250u             /* SCM_RIGHTS carries at most 253 */
#define PS_MAX_FILES 4096u
#define PS_MAX_ROLES 16u

/* A configuration as the privileged side sends it: the spec's files (the
 * unprivileged side loads them with spec_load_files' replay), the API
 * token, the images' open files, and, when it answers an enroll, what was
 * enrolled. */
struct ps_config {
	char *spec;                  /* the spec's name, as loaded */
	struct spec_files files;
	char *token;                 /* NULL: none */
	struct serve_images images;
	char *enrolled_node, *enrolled_address;
};
void ps_config_release(struct ps_config *c);
/* Encode c into out; its descriptors into fds (room for PS_MAX_FDS). */
int ps_config_encode(const struct ps_config *c, struct buf *out, int *fds, size_t *nfds);
/* Decode; takes the descriptors it uses (set to -1 in fds). */
int ps_config_decode(const void *data, size_t len, int *fds, size_t nfds,
		     struct ps_config *c);

/* The enroll request: fixed fields, every one NUL-terminated ("" = absent). */
struct ps_enroll {
	char mac[24];
	char name[64];
	char image[65];
	char address[48];
	char ip_hint[16];
	uint32_t nroles;
	char roles[PS_MAX_ROLES][65];
};
int ps_enroll_pack(const struct enroll_req *q, struct ps_enroll *m);
/* q's strings point into *keep; the roles are pushed onto roles. */
int ps_enroll_unpack(const void *data, size_t len, struct ps_enroll *keep,
		     struct enroll_req *q, struct strv *roles);

/* Send one message (blocking on a blocking socket); fds ride along. */
int ps_send(int fd, uint32_t type, uint32_t id, const void *data, size_t len,
	    const int *fds, size_t nfds);

/* A message being received, possibly over several reads. */
struct ps_rx {
	uint8_t hdr[16];
	size_t hdr_got;
	uint32_t type, id, len, want_fds;
	struct buf body;
	int fds[PS_MAX_FDS];
	size_t nfds;
	size_t max_len;
};
void ps_rx_init(struct ps_rx *x, size_t max_len);
/* Read what is there: 1 = a whole message is in x, 0 = more to come,
 * -ECONNRESET at end of stream, -EBADMSG for a message that breaks the
 * framing (too long, too many descriptors). */
int ps_rx_read(struct ps_rx *x, int fd);
/* Forget the message (closing descriptors nobody took) for the next one. */
void ps_rx_reset(struct ps_rx *x);
void ps_rx_release(struct ps_rx *x);

/* An HTTP request waiting for the privileged side's answer. */
struct ps_pending {
	uint32_t id;                 /* 0: free slot */
	struct evhttp_request *req;
	char *path;
	bool enroll;
};
#define PS_MAX_PENDING 8

/* One running daemon (the unprivileged side).  cfg is replaced whole on reload. */
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
	struct serve_images images;  /* the images of cfg, open */
	int ps_fd;                /* the socket to the privileged side */
	struct ps_rx ps_rx;
	struct event *ps_ev;
	struct ps_pending pending[PS_MAX_PENDING];
	uint32_t next_id;
	char *token;              /* NULL: state-changing API calls are refused */
	char *reload_error;       /* the last failed reload's message */
	int64_t started;
	unsigned reloads;
	struct event *sighup, *sigterm, *sigint;
};

/* What the privileged side hands the unprivileged one at fork. */
struct serve_start {
	const char *spec;
	struct serve_config *cfg;     /* taken */
	const char *token;
	struct serve_images images;   /* taken */
	int sock;                     /* taken */
	const struct passwd *pw;      /* the user to become */
	pid_t parent;
	const sigset_t *sigmask;      /* to restore once handlers are in */
};
/* The unprivileged side, in the forked child: bind, open the databases as
 * the user, chroot, drop root for good, serve until SIGTERM.  Tells the
 * parent PS_READY or PS_DIED. */
int serve_net_main(struct serve_start *st);
/* The loaders must be servable from the tftp root (an open O_PATH fd). */
int serve_check_loaders(const struct boot_config *c, int root, const char *root_name,
			struct kerr *e);

/* One structured line: "ts=... level=... event=EVENT " + fmt (key=value ...). */
void slog(enum log_level lvl, const char *event, const char *fmt, ...) PRINTF(3, 4);
/* Build a new config from what the privileged side sent and swap it in
 * (its images and token too); on error keep the old. */
int serve_apply(struct serve *s, struct ps_config *pc, struct kerr *e);
/* Ask the privileged side to reload the spec (req NULL: nobody waits) or
 * to enroll q; the answer completes req.  -EBUSY when too many wait. */
int serve_ask_reload(struct serve *s, struct evhttp_request *req, const char *path);
int serve_ask_enroll(struct serve *s, struct evhttp_request *req, const char *path,
		     const struct enroll_req *q);
/* ---- http.c, shared with http_api.c ------------------------------------ */
struct evhttp_request;
/* The peer's address as text (sanitised) and, if IPv4, as a number. */
void http_peer_of(struct evhttp_request *req, char out[64], uint32_t *ip);
/* Reply with j (stolen) as the JSON body; with {"error": msg}. */
void http_reply_json(struct evhttp_request *req, int code, json_t *j, const char *path);
void http_reply_error(struct evhttp_request *req, int code, const char *msg,
		      const char *path);
/* Constant-time check of "Authorization: Bearer TOKEN". */
bool http_authorized(struct serve *s, struct evhttp_request *req);
/* The request body as a NUL-terminated string; NULL when over SERVE_MAX_BODY. */
char *http_body_of(struct evhttp_request *req, size_t *len);
/* Whether an unauthenticated storing request from peer may go on (else 429). */
bool http_rate_ok(struct serve *s, struct evhttp_request *req, const char *peer,
		  const char *path);
/* http_api.c: POST /api/discover, /api/nodes/NAME/..., /api/reload,
 * /api/enroll (token checked by the router), GET /api/... */
void http_api_discover(struct serve *s, struct evhttp_request *req, const char *path);
void http_api_node_post(struct serve *s, struct evhttp_request *req, const char *path,
			const char *arg);
void http_api_reload(struct serve *s, struct evhttp_request *req, const char *path);
void http_api_enroll(struct serve *s, struct evhttp_request *req, const char *path);
void http_api_get(struct serve *s, struct evhttp_request *req, const char *path,
		  const char *arg);
/* Answer a waiting request (http_api.c). */
void serve_http_answer(struct evhttp_request *req, const char *path, int status,
		       json_t *body);
/* Bind the HTTP listeners (boot.listen or all addresses) and route requests. */
int serve_http_start(struct serve *s, struct kerr *e);

#define SERVE_MAX_BODY (256u << 10)   /* discovery posts and API bodies */

#endif
