/*
 * The daemon's state database: one row per machine seen (by MAC) and an
 * append-only table of boot events.  SQLite in WAL mode, so `kiln boot
 * status` reads it while the daemon writes.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

struct serve_state {
	sqlite3 *db;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS machines("
	" mac TEXT PRIMARY KEY, name TEXT, state TEXT NOT NULL, ip TEXT, facts TEXT,"
	" first_seen INTEGER, last_seen INTEGER, last_fetch INTEGER,"
	" last_fetch_what TEXT);"
	"CREATE TABLE IF NOT EXISTS events("
	" id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, mac TEXT, kind TEXT NOT NULL,"
	" detail TEXT);";

int serve_state_open(const char *path, bool readonly, struct serve_state **out,
		     struct kerr *e)
{
	struct serve_state *s = xcalloc(1, sizeof(*s));
	int flags = readonly ? SQLITE_OPEN_READONLY
		: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	*out = NULL;
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 2000);
	if (!readonly &&
	    (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
			  NULL, NULL, NULL) != SQLITE_OK ||
	     sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK))
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
	sqlite3_close(s->db);
	free(s);
}

/* Run one statement with text parameters (NULL binds NULL) and int64 now. */
static int exec_args(struct serve_state *s, const char *sql, int64_t now, int n, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int r = 0;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_err("state: %s", sqlite3_errmsg(s->db));
		return -EIO;
	}
	va_start(ap, n);
	for (int i = 1; i <= n; i++) {
		const char *v = va_arg(ap, const char *);
		if (v)
			sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, i);
	}
	va_end(ap);
	sqlite3_bind_int64(st, n + 1, now);
	if (sqlite3_step(st) != SQLITE_DONE) {
		log_err("state: %s", sqlite3_errmsg(s->db));
		r = -EIO;
	}
	sqlite3_finalize(st);
	return r;
}

static int64_t now_s(void)
{
	return wall_ms() / 1000;
}

int serve_state_event(struct serve_state *s, const char *mac, const char *kind,
		      const char *detail)
{
	return exec_args(s, "INSERT INTO events(mac, kind, detail, ts) VALUES(?1, ?2, ?3, ?4)",
			 now_s(), 3, mac, kind, detail);
}

int serve_state_fetch(struct serve_state *s, const char *mac, const char *name,
		      const char *ip, const char *what)
{
	/* a node that is not installed yet is booting once it fetches */
	return exec_args(s,
		"INSERT INTO machines(mac, name, state, ip, first_seen, last_seen, last_fetch,"
		" last_fetch_what) VALUES(?1, ?2, CASE WHEN ?2 IS NULL THEN 'seen' ELSE"
		" 'booting' END, ?3, ?5, ?5, ?5, ?4)"
		" ON CONFLICT(mac) DO UPDATE SET name = ?2, ip = coalesce(?3, ip),"
		" last_seen = ?5, last_fetch = ?5, last_fetch_what = ?4, state = CASE"
		" WHEN ?2 IS NULL OR state = 'provisioned' THEN state ELSE 'booting' END",
		now_s(), 4, mac, name, ip, what);
}

int serve_state_begin(struct serve_state *s)
{
	return sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int serve_state_end(struct serve_state *s, bool commit)
{
	if (sqlite3_exec(s->db, commit ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) ==
	    SQLITE_OK)
		return 0;
	if (commit)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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
	int r = exec_args(s,
		"INSERT INTO machines(mac, name, state, ip, first_seen, last_seen)"
		" VALUES(?1, ?2, CASE WHEN ?2 IS NULL THEN 'seen' ELSE 'booting' END, ?3,"
		" ?4, ?4)"
		" ON CONFLICT(mac) DO UPDATE SET name = ?2, ip = ?3, last_seen = ?4,"
		" state = CASE WHEN ?2 IS NOT NULL AND state IN ('seen', 'discovered')"
		" THEN 'booting' ELSE state END",
		now_s(), 3, mac, name, ip);
	if (r == 0)
		r = serve_state_event(s, mac, "lease", ip);
	if (own)
		return serve_state_end(s, r == 0) < 0 ? -EIO : r;
	if (r < 0)
		sqlite3_exec(s->db, "ROLLBACK TO lease", NULL, NULL, NULL);
	if (sqlite3_exec(s->db, "RELEASE lease", NULL, NULL, NULL) != SQLITE_OK && r == 0)
		r = -EIO;
	return r;
}

int serve_state_discovered(struct serve_state *s, const char *mac, const char *name,
			   const char *ip, const char *facts_json)
{
	/* a node's facts never change its state; anyone else is discovered */
	return exec_args(s,
		"INSERT INTO machines(mac, name, state, ip, facts, first_seen, last_seen)"
		" VALUES(?1, ?2, CASE WHEN ?2 IS NULL THEN 'discovered' ELSE 'booting' END,"
		" ?3, ?4, ?5, ?5)"
		" ON CONFLICT(mac) DO UPDATE SET ip = ?3, facts = ?4, last_seen = ?5,"
		" name = coalesce(?2, name),"
		" state = CASE WHEN ?2 IS NULL AND name IS NULL THEN 'discovered' ELSE state END",
		now_s(), 4, mac, name, ip, facts_json);
}

int serve_state_set(struct serve_state *s, const char *mac, const char *name,
		    const char *state)
{
	return exec_args(s,
		"INSERT INTO machines(mac, name, state, first_seen, last_seen)"
		" VALUES(?1, ?2, ?3, ?4, ?4)"
		" ON CONFLICT(mac) DO UPDATE SET name = coalesce(?2, name), state = ?3,"
		" last_seen = ?4",
		now_s(), 3, mac, name, state);
}

int serve_state_get(struct serve_state *s, const char *mac, char *out, size_t n)
{
	sqlite3_stmt *st = NULL;
	int r = -ENOENT;

	if (sqlite3_prepare_v2(s->db, "SELECT state FROM machines WHERE mac = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, mac, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = -EIO;
	}
	sqlite3_finalize(st);
	return r;
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
