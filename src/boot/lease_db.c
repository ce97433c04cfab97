/*
 * Lease database: one SQLite table keyed by IP, so the database itself
 * guarantees that an address has one owner.  WAL journal.  A single put
 * that binds commits with synchronous=FULL (the WAL is fsync'ed before it
 * returns), an offer with NORMAL (an offer lost in a crash costs the
 * client one more DISCOVER, nothing else).  A batch commits with NORMAL
 * and is made durable by lease_db_sync(), which fsyncs the WAL through a
 * descriptor of its own so that it can run on another thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/boot.h"

struct lease_db {
	sqlite3 *db;
	sqlite3_stmt *get, *find_mac, *put, *release_others, *all;
	sqlite3_stmt *begin, *commit, *rollback;
	sqlite3_stmt *sp, *sp_release, *sp_rollback;
	int sync;   /* 2 = FULL, 1 = NORMAL: what the connection is set to */
	bool batch; /* inside lease_db_batch_begin/_end */
	int wal_fd; /* the WAL, read-only, for lease_db_sync; -1 in memory */
	uint64_t lookups;   /* get + find_mac steps, for tests */
	uint64_t free_gen;  /* moves when an address may have become free */
	uint32_t freed[LEASE_DB_FREED_RING];  /* by free_gen % ring; 0 = unknown */
};

/* An address may have become free other than by expiring (0: unknown which). */
static void note_freed(struct lease_db *d, uint32_t ip)
{
	d->freed[d->free_gen % LEASE_DB_FREED_RING] = ip;
	d->free_gen++;
}

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS leases ("
	" ip INTEGER PRIMARY KEY,"
	" mac BLOB NOT NULL CHECK (length(mac) = 6),"
	" state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 4),"
	" expires INTEGER NOT NULL,"
	" hostname TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS leases_mac ON leases(mac);";

/*
 * Open the WAL for lease_db_sync.  SQLite created it with the connection
 * (WAL mode, first read) and keeps it, same inode, until the last
 * connection closes: checkpoints rewrite it from the start, they do not
 * replace it.  The directory is synced once so the file's name is as
 * durable as its contents will be.
 */
static int wal_open(struct lease_db *d, const char *path, struct kerr *e)
{
	const char *db = sqlite3_db_filename(d->db, "main");
	if (!db || !*db)
		return 0;   /* in memory: nothing to sync */
	char *wal = xasprintf("%s-wal", db);
	char *dir = xstrdup(db);
	int r = 0;
	d->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
	if (d->wal_fd < 0) {
		r = kerr_set(e, -errno, "lease db '%s': %s: %s", path, wal, strerror(errno));
		goto out;
	}
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		r = kerr_set(e, -errno, "lease db '%s': sync directory: %s", path,
			     strerror(errno));
	if (dfd >= 0)
		close(dfd);
out:
	free(wal);
	free(dir);
	return r;
}

static int prep(struct lease_db *d, sqlite3_stmt **st, const char *sql,
		struct kerr *e)
{
	if (sqlite3_prepare_v2(d->db, sql, -1, st, NULL) != SQLITE_OK)
		return kerr_set(e, -EIO, "sqlite: %s", sqlite3_errmsg(d->db));
	return 0;
}

int lease_db_open(const char *path, struct lease_db **out, struct kerr *e)
{
	struct lease_db *d = xcalloc(1, sizeof(*d));
	int r = -EIO;
	char *err = NULL;
	d->wal_fd = -1;
	if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		r = kerr_set(e, -EIO, "lease db '%s': %s", path,
			     d->db ? sqlite3_errmsg(d->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(d->db, 5000);
	if (sqlite3_exec(d->db, schema, NULL, NULL, &err) != SQLITE_OK) {
		r = kerr_set(e, -EIO, "lease db '%s': %s", path, err ? err : "?");
		goto fail;
	}
	if ((r = wal_open(d, path, e)) < 0)
		goto fail;
	/* Autocheckpoint stays on (1000 pages): checkpoints copy synced WAL
	 * frames into the main file, durability does not depend on them. */
	if ((r = prep(d, &d->get, "SELECT ip, mac, state, expires, hostname"
		      " FROM leases WHERE ip = ?1", e)) < 0 ||
	    (r = prep(d, &d->find_mac, "SELECT ip, mac, state, expires, hostname"
		      " FROM leases WHERE mac = ?1 ORDER BY"
		      " (state IN (1,2) AND expires > ?2) DESC, expires DESC"
		      " LIMIT 1", e)) < 0 ||
	    (r = prep(d, &d->put, "INSERT INTO leases(ip, mac, state, expires,"
		      " hostname) VALUES (?1, ?2, ?3, ?4, ?5)"
		      " ON CONFLICT(ip) DO UPDATE SET mac = excluded.mac,"
		      " state = excluded.state, expires = excluded.expires,"
		      " hostname = excluded.hostname"
		      " WHERE leases.mac = excluded.mac OR (leases.expires <= ?6"
		      " )", e)) < 0 ||
	    (r = prep(d, &d->release_others, "UPDATE leases SET state = 3,"
		      " expires = min(expires, ?3) WHERE mac = ?1 AND ip <> ?2"
		      " AND state IN (1,2)", e)) < 0 ||
	    (r = prep(d, &d->all, "SELECT ip, mac, state, expires, hostname"
		      " FROM leases ORDER BY ip", e)) < 0 ||
	    (r = prep(d, &d->begin, "BEGIN IMMEDIATE", e)) < 0 ||
	    (r = prep(d, &d->commit, "COMMIT", e)) < 0 ||
	    (r = prep(d, &d->rollback, "ROLLBACK", e)) < 0 ||
	    (r = prep(d, &d->sp, "SAVEPOINT put", e)) < 0 ||
	    (r = prep(d, &d->sp_release, "RELEASE put", e)) < 0 ||
	    (r = prep(d, &d->sp_rollback, "ROLLBACK TO put", e)) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	sqlite3_free(err);
	lease_db_close(d);
	return r;
}

void lease_db_close(struct lease_db *d)
{
	if (!d)
		return;
	sqlite3_stmt *all[] = { d->get, d->find_mac, d->put, d->release_others,
				d->all, d->begin,
				d->commit, d->rollback, d->sp, d->sp_release,
				d->sp_rollback };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		sqlite3_finalize(all[i]);
	sqlite3_close(d->db);
	if (d->wal_fd >= 0)
		close(d->wal_fd);
	free(d);
}

static void row_to_lease(sqlite3_stmt *st, struct lease *l)
{
	memset(l, 0, sizeof(*l));
	l->ip = (uint32_t)sqlite3_column_int64(st, 0);
	const void *mac = sqlite3_column_blob(st, 1);
	if (mac && sqlite3_column_bytes(st, 1) == 6)
		memcpy(l->mac, mac, 6);
	l->state = (enum lease_state)sqlite3_column_int(st, 2);
	l->expires = sqlite3_column_int64(st, 3);
	const unsigned char *h = sqlite3_column_text(st, 4);
	if (h)
		str_sanitize(l->hostname, sizeof(l->hostname), (const char *)h,
			     (size_t)sqlite3_column_bytes(st, 4));
}

/* Run a statement that returns no rows; 0 or -EIO. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

/*
 * Set the connection's synchronous level (2 = FULL, 1 = NORMAL).  SQLite
 * applies PRAGMA synchronous while it prepares the statement, not when it
 * is stepped, so this cannot be a prepared statement stepped later (that
 * left every commit at whatever was prepared last): run it afresh.
 */
static int set_sync(struct lease_db *d, int want)
{
	if (d->sync == want)
		return 0;
	if (sqlite3_exec(d->db, want == 2 ? "PRAGMA synchronous=FULL" :
			 "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	d->sync = want;
	return 0;
}

int lease_db_get(struct lease_db *d, uint32_t ip, struct lease *out)
{
	d->lookups++;
	sqlite3_bind_int64(d->get, 1, ip);
	int rc = sqlite3_step(d->get), r;
	if (rc == SQLITE_ROW) {
		row_to_lease(d->get, out);
		r = 0;
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_reset(d->get);
	return r;
}

int lease_db_find_mac(struct lease_db *d, const uint8_t mac[6], int64_t now,
		      struct lease *out)
{
	d->lookups++;
	sqlite3_bind_blob(d->find_mac, 1, mac, 6, SQLITE_STATIC);
	sqlite3_bind_int64(d->find_mac, 2, now);
	int rc = sqlite3_step(d->find_mac), r;
	if (rc == SQLITE_ROW) {
		row_to_lease(d->find_mac, out);
		r = 0;
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_reset(d->find_mac);
	sqlite3_clear_bindings(d->find_mac);
	return r;
}

int lease_db_put(struct lease_db *d, const struct lease *l, int64_t now,
		 bool durable)
{
	int r;
	if (!d->batch && set_sync(d, durable ? 2 : 1) < 0)
		return -EIO;
	if (step_done(d->batch ? d->sp : d->begin) < 0)
		return -EIO;
	/* A quarantined (DECLINED) row blocks everyone, its owner included,
	 * until it expires; the upsert's WHERE only sees mac and expiry. */
	struct lease cur;
	r = lease_db_get(d, l->ip, &cur);
	if (r == 0 && cur.state == LEASE_DECLINED && cur.expires > now &&
	    l->state != LEASE_DECLINED) {
		r = -EBUSY;
		goto rollback;
	}
	if (r < 0 && r != -ENOENT)
		goto rollback;
	sqlite3_stmt *p = d->put;
	sqlite3_bind_int64(p, 1, l->ip);
	sqlite3_bind_blob(p, 2, l->mac, 6, SQLITE_STATIC);
	sqlite3_bind_int(p, 3, l->state);
	sqlite3_bind_int64(p, 4, l->expires);
	sqlite3_bind_text(p, 5, l->hostname, -1, SQLITE_STATIC);
	sqlite3_bind_int64(p, 6, now);
	int rc = sqlite3_step(p);
	sqlite3_reset(p);
	sqlite3_clear_bindings(p);
	if (rc != SQLITE_DONE) {
		r = -EIO;
		goto rollback;
	}
	if (sqlite3_changes(d->db) != 1) {
		r = -EBUSY;
		goto rollback;
	}
	if (l->state == LEASE_OFFERED || l->state == LEASE_BOUND) {
		sqlite3_stmt *ro = d->release_others;
		sqlite3_bind_blob(ro, 1, l->mac, 6, SQLITE_STATIC);
		sqlite3_bind_int64(ro, 2, l->ip);
		sqlite3_bind_int64(ro, 3, now);
		rc = sqlite3_step(ro);
		sqlite3_reset(ro);
		sqlite3_clear_bindings(ro);
		if (rc != SQLITE_DONE) {
			r = -EIO;
			goto rollback;
		}
	}
	bool others = (l->state == LEASE_OFFERED || l->state == LEASE_BOUND) &&
		sqlite3_changes(d->db) > 0;
	if (step_done(d->batch ? d->sp_release : d->commit) < 0) {
		r = -EIO;
		goto rollback;
	}
	if (l->state != LEASE_DECLINED && l->expires <= now)
		note_freed(d, l->ip);
	if (others)
		note_freed(d, 0);
	return 0;
rollback:
	if (d->batch) {
		step_done(d->sp_rollback);
		step_done(d->sp_release);
	} else {
		step_done(d->rollback);
	}
	return r;
}

int lease_db_batch_begin(struct lease_db *d)
{
	if (d->batch)
		return -EBUSY;
	if (set_sync(d, 1) < 0)
		return -EIO;
	if (step_done(d->begin) < 0)
		return -EIO;
	d->batch = true;
	return 0;
}

int lease_db_batch_end(struct lease_db *d, bool commit)
{
	if (!d->batch)
		return -EINVAL;
	d->batch = false;
	if (commit && step_done(d->commit) == 0)
		return 0;
	step_done(d->rollback);
	note_freed(d, 0);   /* addresses the batch took are free again */
	return commit ? -EIO : 0;
}

int lease_db_sync(struct lease_db *d)
{
	struct stat st;
	if (d->wal_fd < 0)
		return 0;
	if (fdatasync(d->wal_fd) < 0)
		return -errno;
	/* Someone removed the WAL under us (only a closed connection or a
	 * hand may): what we synced is not what SQLite writes. */
	if (fstat(d->wal_fd, &st) < 0)
		return -errno;
	return st.st_nlink ? 0 : -ESTALE;
}

int lease_db_foreach(struct lease_db *d,
		     int (*cb)(const struct lease *l, void *arg), void *arg)
{
	int rc, r = 0;
	struct lease l;
	while ((rc = sqlite3_step(d->all)) == SQLITE_ROW) {
		row_to_lease(d->all, &l);
		if ((r = cb(&l, arg)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = -EIO;
	sqlite3_reset(d->all);
	return r;
}

uint64_t lease_db_lookups(const struct lease_db *d)
{
	return d->lookups;
}

uint64_t lease_db_free_gen(const struct lease_db *d)
{
	return d->free_gen;
}

bool lease_db_freed_since(const struct lease_db *d, uint64_t gen, uint32_t *ips,
			  size_t *n)
{
	*n = 0;
	if (gen > d->free_gen || d->free_gen - gen > LEASE_DB_FREED_RING)
		return false;
	for (uint64_t g = gen; g < d->free_gen; g++) {
		uint32_t ip = d->freed[g % LEASE_DB_FREED_RING];
		if (!ip)
			return false;
		ips[(*n)++] = ip;
	}
	return true;
}
