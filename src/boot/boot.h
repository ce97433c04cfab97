/*
 * boot — the protocol core of `kiln serve`: DHCPv4 (RFC 2131/2132, PXE,
 * iPXE, relays) and read-only TFTP (RFC 1350/2347/2348/2349/7440).
 *
 * Three layers, each usable without the one above it:
 *
 *  1. Codecs (dhcp_pkt.c, tftp_pkt.c): bytes <-> structs.  Pure, no
 *     allocation, remaining-length parsing; every malformed input is
 *     rejected with -EBADMSG and never read past its end.  Fuzzed.
 *  2. Engines (dhcp_engine.c, tftp_xfer.c): a parsed request plus state
 *     in, a reply plus state changes out.  No sockets and no clock: the
 *     caller passes `now`.  The DHCP engine's only I/O is the lease
 *     database; the TFTP engine's only I/O is preadv() on the file it was
 *     given.
 *  3. Glue (dhcp_net.c, tftp_net.c, syncer.c): libevent sockets, and the
 *     thread that fsyncs the lease database off the loop.  Binds, then the
 *     caller drops privileges with boot_drop_privileges(); everything that
 *     parses peer input runs after that.
 *
 * Conventions:
 *  - IPv4 addresses are uint32_t in HOST byte order everywhere in this
 *    header (0 = none).  MACs are 6 bytes (Ethernet only).
 *  - Functions that act return 0 or a negative errno; questions return bool.
 *  - Nothing here prints except the glue, which logs through log_*().
 *  - Strings that came from a peer are sanitised (str_sanitize) before they
 *    are logged or stored.
 *  - Not thread-safe: one engine or server per event loop (the one call
 *    meant for another thread is lease_db_sync()).
 */
#ifndef KILN_BOOT_H
#define KILN_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/util.h"

/* ===================================================================== */
/* Configuration (the spec additions of issue 3 will fill these)         */
/* ===================================================================== */

#define BOOT_MAX_DNS 4

/* One broadcast domain we serve, directly or through relays. */
struct boot_net {
	char *iface;              /* interface name; NULL for relay-only nets */
	uint32_t subnet;          /* network address */
	int prefix;               /* 0..32 */
	uint32_t router;          /* 0 = none */
	uint32_t dns[BOOT_MAX_DNS];
	size_t n_dns;
	uint32_t pool_start, pool_end;  /* inclusive; 0,0 = no dynamic pool */
	uint32_t lease_time;      /* seconds; 0 = 3600 */
	bool allow_unknown;       /* unknown MACs get pool addresses */
};

/* A machine we know by MAC: a reservation. */
struct boot_host {
	uint8_t mac[6];
	uint32_t ip;              /* must lie in one of the nets */
	char *name;               /* hostname (option 12); may be NULL */
	char *boot_file;          /* overrides the PXE choice; may be NULL */
	char *script_url;         /* iPXE script URL override; may be NULL */
};

/*
 * Everything the DHCP engine needs.  The engine borrows it (and every
 * string in it) for its whole life; the caller frees it after
 * dhcp_engine_free().
 */
struct boot_config {
	uint32_t server_ip;       /* server identifier, siaddr, TFTP server */
	struct boot_net *nets;
	size_t n_nets;
	struct boot_host *hosts;
	size_t n_hosts;
	/* "http://10.0.0.1:8080": iPXE scripts are http_base/boot/MAC.ipxe,
	 * UEFI HTTP boot gets http_base/boot/snponly.efi.  NULL = no HTTP. */
	char *http_base;
	char *loader[3];          /* by enum boot_loader; NULL = its default */
	uint32_t offer_time;      /* seconds an OFFER reserves; 0 = 60 */
	uint32_t decline_time;    /* quarantine after DECLINE; 0 = 600 */
};

/*
 * The network boot loaders handed to PXE firmware and UEFI HTTP boot, by
 * client architecture.  The one table of their spec keys (boot.loaders.KEY)
 * and default file names under tftp_root: Debian's ipxe package ships
 * undionly.kpxe and snponly.efi (its ipxe.efi is a link out of
 * /usr/lib/ipxe to /boot, which TFTP rightly refuses); it has no arm64
 * build, so that default usually needs a file of the site's own.
 */
enum boot_loader { BOOT_LOADER_BIOS, BOOT_LOADER_EFI64, BOOT_LOADER_ARM64, BOOT_LOADER_N };
struct boot_loader_info {
	const char *key;          /* "bios", "efi64", "arm64" */
	const char *dflt;
};
extern const struct boot_loader_info boot_loaders[BOOT_LOADER_N];
/* The file cfg hands out for loader l: its own name, else the default. */
const char *boot_loader_file(const struct boot_config *cfg, enum boot_loader l);

/* ===================================================================== */
/* DHCPv4 codec                                                          */
/* ===================================================================== */

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_FIXED_LEN 236          /* BOOTP header without the cookie */
#define DHCP_MIN_LEN (DHCP_FIXED_LEN + 4)
#define DHCP_MAX_PKT 4096           /* we drop larger datagrams */
#define DHCP_REPLY_MIN 300          /* BOOTP minimum, some clients need it */
#define DHCP_REPLY_MAX 1472         /* one Ethernet frame */

enum dhcp_type {
	DHCPDISCOVER = 1, DHCPOFFER, DHCPREQUEST, DHCPDECLINE, DHCPACK,
	DHCPNAK, DHCPRELEASE, DHCPINFORM,
};

enum dhcp_optcode {
	DHO_PAD = 0, DHO_SUBNET_MASK = 1, DHO_ROUTER = 3, DHO_DNS = 6,
	DHO_HOSTNAME = 12, DHO_DOMAIN = 15, DHO_BROADCAST = 28,
	DHO_VENDOR_OPTS = 43, DHO_REQUESTED_IP = 50, DHO_LEASE_TIME = 51,
	DHO_OVERLOAD = 52, DHO_MSG_TYPE = 53, DHO_SERVER_ID = 54,
	DHO_PARAM_LIST = 55, DHO_MESSAGE = 56, DHO_MAX_SIZE = 57,
	DHO_T1 = 58, DHO_T2 = 59, DHO_VENDOR_CLASS = 60, DHO_CLIENT_ID = 61,
	DHO_TFTP_SERVER = 66, DHO_BOOTFILE = 67, DHO_USER_CLASS = 77,
	DHO_RELAY_INFO = 82, DHO_CLIENT_ARCH = 93, DHO_IPXE_ENCAP = 175,
	DHO_END = 255,
};

/* Where one option's (concatenated, RFC 3396) value lies in optbuf. */
struct dhcp_opt {
	uint16_t off, len;
	bool present;
};

/*
 * A parsed DHCP message.  Options are gathered from the options field,
 * then file and sname when option 52 says so; an option that appears
 * several times is concatenated.  sname/file are copied raw (not
 * necessarily NUL-terminated; use dhcp_file()).
 */
struct dhcp_msg {
	uint8_t op, htype, hlen, hops;
	uint32_t xid;
	uint16_t secs, flags;
	uint32_t ciaddr, yiaddr, siaddr, giaddr;
	uint8_t chaddr[16];
	uint8_t sname[64];
	uint8_t file[128];
	bool file_is_opts, sname_is_opts;
	struct dhcp_opt opt[256];
	uint8_t optbuf[DHCP_MAX_PKT];
	size_t optbuf_len;
};

#define DHCP_FLAG_BROADCAST 0x8000

/*
 * Parse a datagram into m.  Returns 0, or -EBADMSG for anything malformed
 * (short, bad magic cookie, option running past its field, hlen > 16).
 * Does not judge semantics (op, message type): the engine does.
 */
int dhcp_parse(const uint8_t *pkt, size_t len, struct dhcp_msg *m);
/* Option value and its length, or NULL when absent. */
const uint8_t *dhcp_opt_get(const struct dhcp_msg *m, uint8_t code, size_t *len);
/* Message type (option 53), 0 when absent or malformed. */
int dhcp_msg_type(const struct dhcp_msg *m);
/* A 4-byte address option; false when absent or the wrong length. */
bool dhcp_opt_ip(const struct dhcp_msg *m, uint8_t code, uint32_t *ip);
/*
 * Copy a text option into dst (size n), sanitised (non-printables become
 * '?'; NULs end it).  Returns false when absent.
 */
bool dhcp_opt_str(const struct dhcp_msg *m, uint8_t code, char *dst, size_t n);
/* Client architecture (first value of option 93), -1 when absent. */
int dhcp_client_arch(const struct dhcp_msg *m);
/* True when user class (77, raw or RFC 3004 form) names iPXE. */
bool dhcp_is_ipxe(const struct dhcp_msg *m);

/* A reply under construction. */
struct dhcp_out {
	uint8_t buf[DHCP_REPLY_MAX];
	size_t len;     /* bytes used */
	size_t max;     /* client's limit (option 57), <= DHCP_REPLY_MAX */
};
/*
 * Start a BOOTREPLY for request req (copies xid, flags, giaddr, chaddr,
 * htype/hlen) with message type `type`; max is the client's maximum
 * message size (0 = 576).
 */
void dhcp_out_begin(struct dhcp_out *o, const struct dhcp_msg *req,
		    enum dhcp_type type, size_t max);
/* Append an option; values over 255 bytes are split (RFC 3396).  -E2BIG
 * when it would not fit (the reply is unchanged). */
int dhcp_out_opt(struct dhcp_out *o, uint8_t code, const void *val, size_t len);
int dhcp_out_opt_u32(struct dhcp_out *o, uint8_t code, uint32_t v);
/* Append END and pad to the BOOTP minimum.  -E2BIG if no room for END. */
int dhcp_out_end(struct dhcp_out *o);
/* Set header fields of the reply (host-order addresses). */
void dhcp_out_set_addrs(struct dhcp_out *o, uint32_t ciaddr, uint32_t yiaddr,
			uint32_t siaddr);
void dhcp_out_set_siaddr(struct dhcp_out *o, uint32_t siaddr);
/* Write file (NUL-padded); false when it does not fit 128 bytes. */
bool dhcp_out_set_file(struct dhcp_out *o, const char *file);

/* ===================================================================== */
/* Lease database (SQLite, WAL)                                          */
/* ===================================================================== */

enum lease_state {
	LEASE_OFFERED = 1,   /* reserved for an OFFER, not durable */
	LEASE_BOUND = 2,     /* ACKed; committed to disk before the ACK */
	LEASE_RELEASED = 3,  /* freed by RELEASE or replaced; kept for stickiness */
	LEASE_DECLINED = 4,  /* quarantined until expires */
};

struct lease {
	uint32_t ip;
	uint8_t mac[6];
	enum lease_state state;
	int64_t expires;       /* wall-clock seconds (Unix time) */
	char hostname[64];     /* sanitised */
};

struct lease_db;

/*
 * Open (creating) the database at path.  WAL journal; a lease_db_put that
 * binds commits with synchronous=FULL (the WAL is fsync'ed before it
 * returns), offers with NORMAL; batches are synced by lease_db_sync().
 * See docs/boot.md.
 */
int lease_db_open(const char *path, struct lease_db **out, struct kerr *e);
void lease_db_close(struct lease_db *db);
/* The row for ip: 0, -ENOENT, or -EIO. */
int lease_db_get(struct lease_db *db, uint32_t ip, struct lease *out);
/*
 * The row of mac that matters most: an unexpired OFFERED/BOUND row, else
 * the most recently expiring one.  0, -ENOENT or -EIO.
 */
int lease_db_find_mac(struct lease_db *db, const uint8_t mac[6], int64_t now,
		      struct lease *out);
/*
 * Store l (keyed by IP) if the IP is free for l->mac at `now`: no row, a
 * row of the same MAC, or an expired row that is not quarantined.  Any
 * other unexpired OFFERED/BOUND row of the same MAC is released in the
 * same transaction, so a MAC holds one address.  -EBUSY when the IP
 * belongs to someone else (nothing written).  When durable, the commit
 * is on disk when this returns.
 */
int lease_db_put(struct lease_db *db, const struct lease *l, int64_t now,
		 bool durable);
/*
 * Group commit: between _begin and _end every lease_db_put joins one
 * transaction (each put is still all-or-nothing, via a savepoint), and
 * _end(db, true) commits it WITHOUT syncing: the commit is visible, not
 * yet durable.  It is durable once a lease_db_sync() that started after
 * _end returned 0 has returned 0, so a caller that batches holds back the
 * batch's ACKs until then, and drops them when either fails.
 * _end(db, false) rolls the batch back.
 */
int lease_db_batch_begin(struct lease_db *db);
int lease_db_batch_end(struct lease_db *db, bool commit);
/*
 * fdatasync the WAL: every commit made before the call is on disk when
 * it returns 0.  The one call that may run on another thread while the
 * owner goes on using db (it touches a descriptor of its own, not the
 * SQLite connection); the owner must not close db meanwhile.  0 for an
 * in-memory database; -ESTALE if the WAL file was removed under us.
 */
int lease_db_sync(struct lease_db *db);
/* Callback per row, ordered by IP; stops and returns cb's nonzero value. */
int lease_db_foreach(struct lease_db *db,
		     int (*cb)(const struct lease *l, void *arg), void *arg);
/* Row lookups (get, find_mac) made through db so far: tests count work. */
uint64_t lease_db_lookups(const struct lease_db *db);
/*
 * Frees other than expiry: a generation that moves whenever a put or a
 * rolled-back batch may have made an address free.  lease_db_freed_since
 * fills ips (room for LEASE_DB_FREED_RING) with the addresses freed
 * since generation gen and returns true, or returns false when it cannot
 * say which (too many, or a free of unknown addresses): look again.
 */
#define LEASE_DB_FREED_RING 16
uint64_t lease_db_free_gen(const struct lease_db *db);
bool lease_db_freed_since(const struct lease_db *db, uint64_t gen, uint32_t *ips,
			  size_t *n);

/* ===================================================================== */
/* DHCP engine                                                           */
/* ===================================================================== */

struct dhcp_engine;

/* cfg and db are borrowed and must outlive the engine. */
int dhcp_engine_new(const struct boot_config *cfg, struct lease_db *db,
		    struct dhcp_engine **out, struct kerr *e);
/* The database the engine writes to (for group commit around a burst). */
struct lease_db *dhcp_engine_db(struct dhcp_engine *eng);
void dhcp_engine_free(struct dhcp_engine *eng);

/* Where a request came from. */
struct dhcp_rx {
	int net;                 /* index into cfg->nets of the receiving
				  * interface, -1 when unknown */
	uint32_t src_ip;         /* sender's address */
	uint16_t src_port;
};

/* What to do with a request. */
struct dhcp_reply {
	bool send;
	uint32_t dst_ip;         /* 0xffffffff = limited broadcast */
	uint16_t dst_port;
	struct dhcp_out out;
	int type;                /* reply message type, 0 when none */
	char note[160];          /* one-line account for the log */
};

/*
 * Decide on one parsed request at wall-clock time `now` (seconds).
 * Returns 0 with r filled (r->send false = stay silent), or a negative
 * errno when the lease database failed (nothing must be sent: an ACK
 * is never sent for a lease that is not on disk).  Inside a
 * lease_db_batch, the reply may only be sent once the batch committed.
 */
int dhcp_engine_handle(struct dhcp_engine *eng, const struct dhcp_msg *req,
		       const struct dhcp_rx *rx, int64_t now,
		       struct dhcp_reply *r);

/* Index of the net containing ip, or -1. */
int boot_net_find(const struct boot_config *cfg, uint32_t ip);

/* ===================================================================== */
/* TFTP codec                                                            */
/* ===================================================================== */

#define TFTP_PORT 69
#define TFTP_BLKSIZE_MIN 8
#define TFTP_BLKSIZE_MAX 65464
#define TFTP_WINDOW_MAX 64          /* our cap; RFC 7440 allows 65535 */
#define TFTP_WINDOW_BYTES (128 << 10)
#define TFTP_NAME_MAX 255
#define TFTP_PKT_MAX (TFTP_BLKSIZE_MAX + 4)

enum tftp_op { TFTP_RRQ = 1, TFTP_WRQ, TFTP_DATA, TFTP_ACK, TFTP_ERROR, TFTP_OACK };

enum tftp_err {
	TFTP_EUNDEF = 0, TFTP_ENOTFOUND = 1, TFTP_EACCESS = 2, TFTP_ENOSPACE = 3,
	TFTP_EBADOP = 4, TFTP_EBADID = 5, TFTP_EEXISTS = 6, TFTP_ENOUSER = 7,
	TFTP_EOPTNEG = 8,
};

/* A parsed RRQ/WRQ with its options, already range-checked. */
struct tftp_req {
	int op;                           /* TFTP_RRQ or TFTP_WRQ */
	char name[TFTP_NAME_MAX + 1];     /* raw bytes, NUL-free by construction */
	bool octet;                       /* mode octet (else netascii/mail) */
	bool has_blksize, has_tsize, has_timeout, has_window;
	uint32_t blksize;                 /* 8..65464 */
	uint64_t tsize;
	uint32_t timeout;                 /* seconds, 1..255 */
	uint32_t window;                  /* 1..65535 as asked */
};

/*
 * Parse a request datagram.  0, -EBADMSG (malformed: missing NULs,
 * name too long, bad mode, too many options) or -EOPNOTSUPP (not a
 * request opcode).  Options outside their RFC ranges are ignored, as
 * RFC 2347 lets a server do; unknown options are ignored.
 */
int tftp_parse_req(const uint8_t *pkt, size_t len, struct tftp_req *r);
/* Parse a client packet during a transfer: ACK (sets *block) or ERROR. */
int tftp_parse_client(const uint8_t *pkt, size_t len, int *op, uint16_t *block);
/* Build an ERROR packet into buf (size n >= 5); returns its length. */
size_t tftp_build_error(uint8_t *buf, size_t n, enum tftp_err code,
			const char *msg);

/*
 * Check a requested name: relative, no "..", no empty component, no
 * control bytes.  False means refuse with an access violation.
 */
bool tftp_name_ok(const char *name);
/*
 * Open name beneath the directory rootfd for reading: openat2 with
 * RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS (symlinks inside the root are
 * followed, ones leading out fail), or where the kernel lacks openat2 a
 * component walk with O_NOFOLLOW (no symlinks at all).  Only regular
 * files.  Returns an O_CLOEXEC fd, *size set, or -errno (-EXDEV or
 * -ELOOP for escapes, -EACCES for a bad name or non-regular file).
 */
int tftp_open_beneath(int rootfd, const char *name, uint64_t *size);
/* The same without openat2 (the fallback; exposed for tests). */
int tftp_open_walk(int rootfd, const char *name, uint64_t *size);

/* ===================================================================== */
/* TFTP transfer engine                                                  */
/* ===================================================================== */

struct tftp_limits {
	uint32_t max_blksize;    /* 0 = 65464 */
	uint32_t max_window;     /* 0 = TFTP_WINDOW_MAX */
	/* window * blksize cap, so a window fits a client's default 208 KB
	 * receive buffer (at 65464-byte blocks, 3 fragmented datagrams
	 * already overflow it); 0 = TFTP_WINDOW_BYTES */
	uint32_t max_window_bytes;
	uint32_t timeout_ms;     /* first retransmission; 0 = 1000 */
	uint32_t max_timeout_ms; /* backoff cap; 0 = 8000 */
	int max_retries;         /* 0 = 6 */
};

/*
 * One read transfer.  Blocks are counted absolutely (uint64) and sent as
 * their low 16 bits, so block numbers roll over 65535 -> 0 as curl,
 * tftp-hpa and atftp expect.
 */
struct tftp_xfer {
	int fd;                  /* the file; owned (closed by _release) */
	uint64_t size;
	uint32_t blksize, window;
	uint64_t nblocks;        /* size / blksize + 1 */
	uint64_t acked;          /* highest block acked (0 = none) */
	uint64_t next;           /* next block to send */
	uint64_t sent_hi;        /* highest block ever sent (before rollbacks) */
	uint64_t win_end;        /* last block of the current window */
	bool oack;               /* an OACK is due / waiting for ACK 0 */
	bool oack_sent;
	bool done, failed;
	uint8_t oackbuf[256];
	size_t oacklen;
	uint32_t rto_ms, base_rto_ms, max_rto_ms;
	int retries, max_retries;
	int64_t deadline_ms;     /* when to call tftp_xfer_timeout() */
};

/*
 * Start a transfer of fd (taken over) of size bytes for request r.
 * Negotiates options into an OACK when r asked for any we honour.
 * Returns 0 or -EFBIG (file has more blocks than any client can count:
 * never, with 64-bit counters, but checked).
 */
int tftp_xfer_start(struct tftp_xfer *x, int fd, uint64_t size,
		    const struct tftp_req *r, const struct tftp_limits *lim,
		    int64_t now_ms);
void tftp_xfer_release(struct tftp_xfer *x);
/* True when a packet is due now (the OACK or a block of the window). */
bool tftp_xfer_want_send(const struct tftp_xfer *x);
/*
 * Build the due packet into buf (size >= blksize + 4).  Returns its
 * length or -errno (read error).  Does not advance: call
 * tftp_xfer_sent() once it is on the wire.
 */
ssize_t tftp_xfer_build(struct tftp_xfer *x, uint8_t *buf, size_t n);
void tftp_xfer_sent(struct tftp_xfer *x, int64_t now_ms);
/* Most DATA packets one tftp_xfer_build_burst() call builds. */
#define TFTP_BURST_MAX 128
/*
 * Build the due DATA packets of the window (at most max, TFTP_BURST_MAX
 * and as many as fit in n bytes) back to back into buf: each is
 * blksize + 4 bytes except the file's last block, so they can leave as
 * one UDP GSO send or one sendmmsg().  All their data is read with one
 * preadv().  Returns how many (0: none due, or the OACK is: use
 * tftp_xfer_build), their total length in *len, or -errno (read error;
 * -ENOBUFS when not one packet fits).  Does not advance: call
 * tftp_xfer_sent_n() with how many of them went out, in order.
 */
int tftp_xfer_build_burst(struct tftp_xfer *x, uint8_t *buf, size_t n,
			  unsigned max, size_t *len);
void tftp_xfer_sent_n(struct tftp_xfer *x, unsigned k, int64_t now_ms);
/*
 * Feed a packet from the client.  0 (maybe more to send), 1 (transfer
 * complete), -ECONNRESET (client sent ERROR), -EBADMSG (ignored junk).
 */
int tftp_xfer_input(struct tftp_xfer *x, const uint8_t *pkt, size_t len,
		    int64_t now_ms);
/* The deadline passed: back off and resend the window, or -ETIMEDOUT. */
int tftp_xfer_timeout(struct tftp_xfer *x, int64_t now_ms);

/* ===================================================================== */
/* Glue: libevent servers                                                */
/* ===================================================================== */

struct event_base;

struct boot_dhcp;
/*
 * Listen for DHCP on 0.0.0.0:67 of each net with an interface
 * (SO_BINDTODEVICE, so broadcasts leave the right interface), plus one
 * socket on no particular interface when some net is relay-only (relayed
 * requests are unicast and may arrive on any interface).  Needs
 * root or CAP_NET_BIND_SERVICE+CAP_NET_RAW; call before dropping
 * privileges.  eng is borrowed.
 */
int boot_dhcp_start(struct event_base *base, const struct boot_config *cfg,
		    struct dhcp_engine *eng, struct boot_dhcp **out,
		    struct kerr *e);
void boot_dhcp_free(struct boot_dhcp *d);
/*
 * Reload: use cfg and eng from now on (both borrowed; the caller frees
 * the old pair after this returns 0).  The sockets stay, so cfg must
 * have the same nets with the same interfaces in the same order;
 * -EINVAL (and nothing changed) otherwise.
 */
int boot_dhcp_set_engine(struct boot_dhcp *d, const struct boot_config *cfg,
			 struct dhcp_engine *eng, struct kerr *e);
/* A reply that left: its message type, the client's MAC and yiaddr
 * (host order). */
struct boot_dhcp_sent {
	int type;
	uint8_t mac[6];
	uint32_t yiaddr;
};
/*
 * Called for each run of replies that left together (after their leases
 * were on disk), in the order they were sent.
 */
typedef void boot_dhcp_sent_fn(void *arg, const struct boot_dhcp_sent *v,
			       size_t n);
void boot_dhcp_on_sent(struct boot_dhcp *d, boot_dhcp_sent_fn *fn, void *arg);
/* Why DHCP stopped answering (a lease sync failed), or NULL while it runs. */
const char *boot_dhcp_error(const struct boot_dhcp *d);

struct boot_tftp_opts {
	uint32_t addr;           /* local address to bind; 0 = any */
	uint16_t port;           /* 0 = 69 */
	const char *root;        /* directory served */
	int max_transfers;       /* 0 = 512 */
	int max_per_client;      /* transfers per client address; 0 = 64 */
	bool no_gso;             /* never UDP GSO: one sendmmsg() per burst */
	struct tftp_limits lim;
};
/* Send-path counters since boot_tftp_start (tests, status). */
struct boot_tftp_stats {
	uint64_t data_packets;   /* DATA packets handed to the kernel */
	uint64_t send_calls;     /* send/sendmsg/sendmmsg calls that carried DATA */
	uint64_t gso_sends;      /* of those, UDP GSO sends (several packets each) */
	uint64_t gso_fallbacks;  /* transfers that fell back after GSO was refused */
};
struct boot_tftp;
/* Open the root and bind the listening socket. */
int boot_tftp_start(struct event_base *base, const struct boot_tftp_opts *o,
		    struct boot_tftp **out, struct kerr *e);
void boot_tftp_free(struct boot_tftp *t);
/* Transfers in flight (for tests and status). */
int boot_tftp_active(const struct boot_tftp *t);
/* The port the listening socket is bound to. */
uint16_t boot_tftp_port(const struct boot_tftp *t);
void boot_tftp_stats(const struct boot_tftp *t, struct boot_tftp_stats *st);

/*
 * Drop root: getpwnam(user) -> [chroot(dir), chdir("/")] -> setgroups(1)
 * -> setresgid -> setresuid, then verify that root cannot be regained.
 * chroot_dir may be NULL (no chroot).  Any failure is an error and the
 * caller must exit.
 */
/*
 * Open files as uid/gid while keeping root to bind and chroot after:
 * _as_user sets the effective ids (and the groups to gid alone),
 * _as_root takes root back.  For files in a directory the user can
 * write, where a link it planted must not lend it root's rights.
 */
int boot_files_as_user(uid_t uid, gid_t gid, struct kerr *e);
int boot_files_as_root(struct kerr *e);
/* The groups user is in (gid among them), as a new array; its length. */
int boot_user_groups(const char *user, gid_t gid, gid_t **out);
int boot_drop_privileges(const char *user, const char *chroot_dir,
			 struct kerr *e);

/* ---- small helpers ---------------------------------------------------- */
/* "aa:bb:cc:dd:ee:ff" into mac. 0 or -EINVAL. */
int boot_parse_mac(const char *s, uint8_t mac[6]);
/* Dotted quad into host-order ip. 0 or -EINVAL. */
int boot_parse_ip(const char *s, uint32_t *ip);
/* Write "aa:bb:..." (18 bytes with NUL) */
void boot_fmt_mac(const uint8_t mac[6], char out[18]);
/* Write dotted quad (16 bytes with NUL). */
void boot_fmt_ip(uint32_t ip, char out[16]);

#endif
