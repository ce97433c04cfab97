/*
 * The daemon's state database: one row per machine seen (by MAC) and a
 * table of boot events.  SQLite in WAL mode, so `kiln boot status` reads
 * it while the daemon writes.
 *
 * Unauthenticated peers create rows here (an unknown MAC fetching a
 * script, getting a lease, posting facts), so every table is bounded
 * (docs/serve.md "Bounds"): the writer keeps a count of the unknown rows
 * per state, evicts by a partial index, and prunes events a few rows per
 * insert.  The counts are right because the daemon is the only writer.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

struct serve_state {
	sqlite3 *db;
	bool readonly;
	struct serve_state_limits lim;
	unsigned n_unknown[SSTATE_COUNT];   /* rows with name NULL, per state */
	/* prepared statements, by the address of their (static) SQL text */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[16];
	size_t ncache;
};

static const char *const state_names[SSTATE_COUNT] = {
	[SSTATE_SEEN] = "seen",
	[SSTATE_DISCOVERED] = "discovered",
	[SSTATE_NEW] = "new",
	[SSTATE_BOOTING] = "booting",
	[SSTATE_PROVISIONED] = "provisioned",
	[SSTATE_UNMANAGED] = "unmanaged",
};

const char *sstate_name(enum sstate st)
{
	return (unsigned)st < SSTATE_COUNT ? state_names[st] : "?";
}

int sstate_parse(const char *name)
{
	for (int i = 0; name && i < SSTATE_COUNT; i++)
		if (!strcmp(name, state_names[i]))
			return i;
	return -1;
}

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS machines("
	" mac TEXT PRIMARY KEY, name TEXT, state TEXT NOT NULL, ip TEXT, facts TEXT,"
	" first_seen INTEGER, last_seen INTEGER, last_fetch INTEGER,"
	" last_fetch_what TEXT);"
	"CREATE INDEX IF NOT EXISTS machines_unknown ON machines(state, last_seen)"
	" WHERE name IS NULL;"
	"CREATE TABLE IF NOT EXISTS events("
	" id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, mac TEXT, kind TEXT NOT NULL,"
	" detail TEXT);";

static const struct serve_state_limits default_limits = {
	.seen_max = SSTATE_SEEN_MAX,
	.discovered_max = SSTATE_DISCOVERED_MAX,
	.discovered_min_age = SSTATE_DISCOVERED_MIN_AGE,
	.events_max = SSTATE_EVENTS_MAX,
};

static int64_t now_s(void)
{
	return wall_ms() / 1000;
}

/* A named SQL parameter (":mac") and its text (NULL binds NULL). */
struct arg {
	const char *k, *v;
};

/*
 * Prepare sql and bind, all by name: args, ":now", and every state name
 * used as a parameter (":seen", ":booting", ...), so no state is spelled
 * in SQL.  (Numbered and named parameters are not mixed: SQLite numbers
 * a name after the largest index seen so far, so they could alias.)
 */
static int prepare(struct serve_state *s, const char *sql, const struct arg *args,
		   int n, int64_t now, sqlite3_stmt **out)
{
	sqlite3_stmt *st = NULL;
	char pname[32];
	int idx;

	*out = NULL;
	for (size_t i = 0; i < s->ncache && !st; i++)
		if (s->cache[i].sql == sql)
			st = s->cache[i].st;
	if (st) {
		sqlite3_clear_bindings(st);
	} else if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
				      NULL) != SQLITE_OK) {
		log_err("state: %s", sqlite3_errmsg(s->db));
		return -EIO;
	} else if (s->ncache < ARRAY_SIZE(s->cache)) {
		s->cache[s->ncache].sql = sql;
		s->cache[s->ncache++].st = st;
	}
	for (int i = 0; i < n; i++) {
		if (!(idx = sqlite3_bind_parameter_index(st, args[i].k)))
			continue;
		if (args[i].v)
			sqlite3_bind_text(st, idx, args[i].v, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, idx);
	}
	if ((idx = sqlite3_bind_parameter_index(st, ":now")))
		sqlite3_bind_int64(st, idx, now);
	for (int i = 0; i < SSTATE_COUNT; i++) {
		snprintf(pname, sizeof(pname), ":%s", state_names[i]);
		if ((idx = sqlite3_bind_parameter_index(st, pname)))
			sqlite3_bind_text(st, idx, state_names[i], -1, SQLITE_STATIC);
	}
	*out = st;
	return 0;
}

/* Done with a statement from prepare: reset a cached one, finalize another. */
static void release(struct serve_state *s, sqlite3_stmt *st)
{
	for (size_t i = 0; i < s->ncache; i++)
		if (s->cache[i].st == st) {
			sqlite3_reset(st);
			return;
		}
	sqlite3_finalize(st);
}

/* Run one statement that returns no rows (see prepare for the binds). */
static int exec_sql(struct serve_state *s, const char *sql, const struct arg *args,
		    int n, int64_t now)
{
	sqlite3_stmt *st;
	int r = prepare(s, sql, args, n, now, &st);
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_DONE) {
		log_err("state: %s", sqlite3_errmsg(s->db));
		r = -EIO;
	}
	release(s, st);
	return r;
}

/* Bind an integer parameter by name. */
static void bind_int(sqlite3_stmt *st, const char *name, int64_t v)
{
	int idx = sqlite3_bind_parameter_index(st, name);
	if (idx)
		sqlite3_bind_int64(st, idx, v);
}

/* What the writer needs to know of a row before and after a write. */
struct row_info {
	bool exists;
	bool unknown;          /* name IS NULL */
	int state;             /* enum sstate, -1 for a name we do not know */
	char ip[64];
	int64_t last_seen;
};

static int row_info(struct serve_state *s, const char *mac, struct row_info *ri)
{
	sqlite3_stmt *st;
	int r = prepare(s, "SELECT name IS NULL, state, ip, last_seen FROM machines"
			" WHERE mac = :mac", (struct arg[]){ { ":mac", mac } }, 1, 0, &st);
	memset(ri, 0, sizeof(*ri));
	ri->state = -1;
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *ip = (const char *)sqlite3_column_text(st, 2);
		ri->exists = true;
		ri->unknown = sqlite3_column_int(st, 0);
		ri->state = sstate_parse((const char *)sqlite3_column_text(st, 1));
		snprintf(ri->ip, sizeof(ri->ip), "%s", ip ? ip : "");
		ri->last_seen = sqlite3_column_int64(st, 3);
	} else if (rc != SQLITE_DONE) {
		r = -EIO;
	}
	release(s, st);
	return r;
}

/* The capped class of a row: SSTATE_SEEN, SSTATE_DISCOVERED or -1. */
static int capped_class(const struct row_info *ri)
{
	if (!ri->exists || !ri->unknown)
		return -1;
	return ri->state == SSTATE_SEEN || ri->state == SSTATE_DISCOVERED ? ri->state : -1;
}

/*
 * Delete up to max of the least recently seen unknown rows in state cls,
 * never keep_mac's, only those last seen at or before `before`.  One
 * indexed statement.  The number deleted, or -EIO.
 */
static int evict(struct serve_state *s, int cls, const char *keep_mac, int64_t before,
		 unsigned max)
{
	sqlite3_stmt *st;
	char lim[16];
	snprintf(lim, sizeof(lim), "%u", max);
	int r = prepare(s, "DELETE FROM machines WHERE rowid IN (SELECT rowid FROM machines"
			" WHERE name IS NULL AND state = :cls AND mac <> :keep"
			" AND last_seen <= :before ORDER BY last_seen, rowid LIMIT :max)",
			(struct arg[]){ { ":cls", state_names[cls] },
					{ ":keep", keep_mac ? keep_mac : "" } }, 2, 0, &st);
	if (r < 0)
		return r;
	bind_int(st, ":before", before);
	bind_int(st, ":max", max);
	if (sqlite3_step(st) != SQLITE_DONE) {
		log_err("state: %s", sqlite3_errmsg(s->db));
		r = -EIO;
	} else {
		r = sqlite3_changes(s->db);
		s->n_unknown[cls] -= (unsigned)r < s->n_unknown[cls] ? (unsigned)r
			: s->n_unknown[cls];
	}
	release(s, st);
	return r;
}

static unsigned cap_of(const struct serve_state *s, int cls)
{
	return cls == SSTATE_SEEN ? s->lim.seen_max : s->lim.discovered_max;
}

/* Count the unknown rows per state from the table (at open). */
static int recount(struct serve_state *s)
{
	sqlite3_stmt *st;
	int r = prepare(s, "SELECT state, count(*) FROM machines WHERE name IS NULL"
			" GROUP BY state", NULL, 0, 0, &st);
	if (r < 0)
		return r;
	memset(s->n_unknown, 0, sizeof(s->n_unknown));
	while (sqlite3_step(st) == SQLITE_ROW) {
		int k = sstate_parse((const char *)sqlite3_column_text(st, 0));
		if (k >= 0)
			s->n_unknown[k] = (unsigned)sqlite3_column_int64(st, 1);
	}
	release(s, st);
	return 0;
}

/* Bring both tables within the limits, however far over they are. */
static int trim(struct serve_state *s)
{
	static const int cls[] = { SSTATE_SEEN, SSTATE_DISCOVERED };
	int r = recount(s);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(cls); i++)
		if (s->n_unknown[cls[i]] > cap_of(s, cls[i]))
			r = evict(s, cls[i], NULL, INT64_MAX,
				  s->n_unknown[cls[i]] - cap_of(s, cls[i]));
	if (r < 0)
		return r;
	sqlite3_stmt *st;
	if ((r = prepare(s, "DELETE FROM events WHERE id <= (SELECT max(id) FROM events)"
			 " - :keep", NULL, 0, 0, &st)) < 0)
		return r;
	bind_int(st, ":keep", s->lim.events_max);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = -EIO;
	release(s, st);
	return r;
}

int serve_state_open(const char *path, bool readonly, struct serve_state **out,
		     struct kerr *e)
{
	struct serve_state *s = xcalloc(1, sizeof(*s));
	int flags = readonly ? SQLITE_OPEN_READONLY
		: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	*out = NULL;
	s->readonly = readonly;
	s->lim = default_limits;
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 2000);
	/* journal_size_limit: the WAL is cut back to 4 MiB after a checkpoint */
	if (!readonly &&
	    (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			  " PRAGMA journal_size_limit=4194304;", NULL, NULL, NULL) != SQLITE_OK ||
	     sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	     trim(s) < 0))
		goto fail;
	*out = s;
	return 0;
fail:
	kerr_set(e, -EIO, "state database '%s': %s", path,
		 s->db ? sqlite3_errmsg(s->db) : "cannot open");
	serve_state_close(s);
	return -EIO;
}

void serve_state_close(struct serve_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ncache; i++)
		sqlite3_finalize(s->cache[i].st);
	sqlite3_close(s->db);
	free(s);
}

int serve_state_set_limits(struct serve_state *s, const struct serve_state_limits *l)
{
	s->lim = *l;
	return s->readonly ? 0 : trim(s);
}

unsigned serve_state_unknown_rows(const struct serve_state *s, enum sstate st)
{
	return (unsigned)st < SSTATE_COUNT ? s->n_unknown[st] : 0;
}

/*
 * Run an upsert of mac's row and keep the unknown-row counts and caps:
 * a row that becomes `seen` beyond the cap evicts the least recently
 * seen other one.
 */
static int write_row(struct serve_state *s, const char *mac, const char *sql,
		     const struct arg *args, int n, int64_t now)
{
	struct row_info before, after;
	int r;
	if ((r = row_info(s, mac, &before)) < 0 ||
	    (r = exec_sql(s, sql, args, n, now)) < 0 ||
	    (r = row_info(s, mac, &after)) < 0)
		return r;
	int from = capped_class(&before), to = capped_class(&after);
	if (from == to)
		return 0;
	if (from >= 0 && s->n_unknown[from])
		s->n_unknown[from]--;
	if (to < 0)
		return 0;
	s->n_unknown[to]++;
	if (s->n_unknown[to] > cap_of(s, to))
		r = evict(s, to, mac, INT64_MAX, s->n_unknown[to] - cap_of(s, to));
	return r < 0 ? r : 0;
}

int serve_state_event(struct serve_state *s, const char *mac, const char *kind,
		      const char *detail)
{
	int r = exec_sql(s, "INSERT INTO events(mac, kind, detail, ts)"
			 " VALUES(:mac, :kind, :detail, :now)",
			 (struct arg[]){ { ":mac", mac }, { ":kind", kind },
					 { ":detail", detail } }, 3, now_s());
	int64_t id = sqlite3_last_insert_rowid(s->db);
	if (r < 0 || id <= (int64_t)s->lim.events_max)
		return r;
	/* keep the newest events_max: a few of the oldest per insert, so a
	 * database that was over the limit is never pruned in one go here */
	sqlite3_stmt *st;
	if ((r = prepare(s, "DELETE FROM events WHERE id IN (SELECT id FROM events"
			 " WHERE id <= :upto ORDER BY id LIMIT 8)", NULL, 0, 0, &st)) < 0)
		return r;
	bind_int(st, ":upto", id - (int64_t)s->lim.events_max);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = -EIO;
	release(s, st);
	return r;
}

int serve_state_fetch(struct serve_state *s, const char *mac, const char *name,
		      const char *ip, const char *what)
{
	/* A node that is not installed yet is booting once it fetches.  A
	 * discovered machine keeps the address it was discovered from: anyone
	 * may fetch its script, and that address is what may replace its
	 * facts. */
	return write_row(s, mac,
		"INSERT INTO machines(mac, name, state, ip, first_seen, last_seen, last_fetch,"
		" last_fetch_what) VALUES(:mac, :name, CASE WHEN :name IS NULL THEN :seen"
		" ELSE :booting END, :ip, :now, :now, :now, :what)"
		" ON CONFLICT(mac) DO UPDATE SET name = :name, ip = CASE WHEN state ="
		" :discovered AND name IS NULL THEN ip ELSE coalesce(:ip, ip) END,"
		" last_seen = :now, last_fetch = :now, last_fetch_what = :what, state = CASE"
		" WHEN :name IS NULL OR state = :provisioned THEN state ELSE :booting END",
		(struct arg[]){ { ":mac", mac }, { ":name", name }, { ":ip", ip },
				{ ":what", what } }, 4, now_s());
}

int serve_state_begin(struct serve_state *s)
{
	return sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int serve_state_end(struct serve_state *s, bool commit)
{
	if (sqlite3_exec(s->db, commit ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) ==
	    SQLITE_OK) {
		if (!commit)
			recount(s);
		return 0;
	}
	if (commit)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	recount(s);
	return -EIO;
}

int serve_state_lease(struct serve_state *s, const char *mac, const char *name,
		      const char *ip)
{
	/* The machine row and its "lease" event in one transaction: the
	 * caller's, or one of our own. */
	bool own = sqlite3_get_autocommit(s->db);
	if (own && serve_state_begin(s) < 0)
		return -EIO;
	if (!own && sqlite3_exec(s->db, "SAVEPOINT lease", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	int r = write_row(s, mac,
		"INSERT INTO machines(mac, name, state, ip, first_seen, last_seen)"
		" VALUES(:mac, :name, CASE WHEN :name IS NULL THEN :seen ELSE :booting END,"
		" :ip, :now, :now)"
		" ON CONFLICT(mac) DO UPDATE SET name = :name, ip = :ip, last_seen = :now,"
		" state = CASE WHEN :name IS NOT NULL AND state IN (:seen, :discovered)"
		" THEN :booting ELSE state END",
		(struct arg[]){ { ":mac", mac }, { ":name", name }, { ":ip", ip } }, 3,
		now_s());
	if (r == 0)
		r = serve_state_event(s, mac, "lease", ip);
	if (own)
		return serve_state_end(s, r == 0) < 0 ? -EIO : r;
	if (r < 0) {
		sqlite3_exec(s->db, "ROLLBACK TO lease", NULL, NULL, NULL);
		recount(s);
	}
	if (sqlite3_exec(s->db, "RELEASE lease", NULL, NULL, NULL) != SQLITE_OK && r == 0)
		r = -EIO;
	return r;
}

int serve_state_discovered(struct serve_state *s, const char *mac, const char *ip,
			   const char *facts_json, const char *lease_ip)
{
	struct row_info ri;
	int64_t now = now_s();
	int r = row_info(s, mac, &ri);
	if (r < 0)
		return r;
	if (ri.exists && !ri.unknown)
		return -EEXIST;
	if (ri.exists && ri.state == SSTATE_DISCOVERED && strcmp(ri.ip, ip ? ip : "") &&
	    !(lease_ip && ip && !strcmp(lease_ip, ip)))
		return -EPERM;
	if (!(ri.exists && ri.state == SSTATE_DISCOVERED) &&
	    s->n_unknown[SSTATE_DISCOVERED] >= s->lim.discovered_max) {
		/* room for one more only by evicting one not seen for a while */
		r = evict(s, SSTATE_DISCOVERED, mac, now - (int64_t)s->lim.discovered_min_age,
			  s->n_unknown[SSTATE_DISCOVERED] - s->lim.discovered_max + 1);
		if (r < 0)
			return r;
		if (s->n_unknown[SSTATE_DISCOVERED] >= s->lim.discovered_max)
			return -ENOSPC;
	}
	return write_row(s, mac,
		"INSERT INTO machines(mac, state, ip, facts, first_seen, last_seen)"
		" VALUES(:mac, :discovered, :ip, :facts, :now, :now)"
		" ON CONFLICT(mac) DO UPDATE SET ip = :ip, facts = :facts, last_seen = :now,"
		" state = :discovered WHERE name IS NULL",
		(struct arg[]){ { ":mac", mac }, { ":ip", ip }, { ":facts", facts_json } }, 3,
		now);
}

int serve_state_node_facts(struct serve_state *s, const char *mac, const char *name,
			   const char *ip, const char *facts_json)
{
	return write_row(s, mac,
		"INSERT INTO machines(mac, name, state, ip, facts, first_seen, last_seen)"
		" VALUES(:mac, :name, :booting, :ip, :facts, :now, :now)"
		" ON CONFLICT(mac) DO UPDATE SET name = :name, ip = :ip, facts = :facts,"
		" last_seen = :now",
		(struct arg[]){ { ":mac", mac }, { ":name", name }, { ":ip", ip },
				{ ":facts", facts_json } }, 4, now_s());
}

int serve_state_set(struct serve_state *s, const char *mac, const char *name,
		    enum sstate state)
{
	return write_row(s, mac,
		"INSERT INTO machines(mac, name, state, first_seen, last_seen)"
		" VALUES(:mac, :name, :state, :now, :now)"
		" ON CONFLICT(mac) DO UPDATE SET name = coalesce(:name, name), state = :state,"
		" last_seen = :now",
		(struct arg[]){ { ":mac", mac }, { ":name", name },
				{ ":state", sstate_name(state) } }, 3, now_s());
}

int serve_state_get(struct serve_state *s, const char *mac, enum sstate *out)
{
	struct row_info ri;
	int r = row_info(s, mac, &ri);
	if (r < 0)
		return r;
	if (!ri.exists || ri.state < 0)
		return -ENOENT;
	*out = (enum sstate)ri.state;
	return 0;
}

json_t *serve_state_machines(struct serve_state *s)
{
	static const char *const cols[] = { "mac", "name", "state", "ip", "facts",
		"first_seen", "last_seen", "last_fetch", "last_fetch_what" };
	sqlite3_stmt *st = NULL;
	json_t *a = json_array();

	if (sqlite3_prepare_v2(s->db, "SELECT mac, name, state, ip, facts, first_seen,"
			       " last_seen, last_fetch, last_fetch_what FROM machines"
			       " ORDER BY mac", -1, &st, NULL) != SQLITE_OK)
		return a;
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *o = json_object();
		for (int i = 0; i < (int)ARRAY_SIZE(cols); i++) {
			int t = sqlite3_column_type(st, i);
			json_t *v;
			if (t == SQLITE_NULL)
				v = json_null();
			else if (t == SQLITE_INTEGER)
				v = json_integer(sqlite3_column_int64(st, i));
			else if (!strcmp(cols[i], "facts"))
				v = json_loads((const char *)sqlite3_column_text(st, i), 0, NULL);
			else
				v = json_string((const char *)sqlite3_column_text(st, i));
			json_object_set_new(o, cols[i], v ? v : json_null());
		}
		json_array_append_new(a, o);
	}
	sqlite3_finalize(st);
	return a;
}
