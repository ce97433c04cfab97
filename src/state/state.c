/* The SQLite state store (see state.h). */
#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct state {
	sqlite3 *db;
	pthread_mutex_t lock;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS facts ("
	"  cluster TEXT NOT NULL, node TEXT NOT NULL, collected_ms INTEGER NOT NULL,"
	"  json TEXT NOT NULL, PRIMARY KEY (cluster, node));"
	"CREATE TABLE IF NOT EXISTS runs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, cluster TEXT NOT NULL, kind TEXT NOT NULL,"
	"  spec TEXT, pid INTEGER, nodes INTEGER, started_ms INTEGER NOT NULL,"
	"  finished_ms INTEGER, status TEXT NOT NULL, changed INTEGER, failed INTEGER);"
	"CREATE TABLE IF NOT EXISTS run_nodes ("
	"  run INTEGER NOT NULL REFERENCES runs(id), node TEXT NOT NULL, status TEXT NOT NULL,"
	"  changed INTEGER, failed INTEGER, duration_ms INTEGER, error TEXT, results TEXT,"
	"  PRIMARY KEY (run, node));"
	/* value is NULL for a secret: its row says it exists, never what it is */
	"CREATE TABLE IF NOT EXISTS exports ("
	"  cluster TEXT NOT NULL, node TEXT NOT NULL, stack TEXT NOT NULL, name TEXT NOT NULL,"
	"  value TEXT, secret INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (cluster, node, stack, name));";

static int db_error(struct state *st, struct kerr *e, const char *what)
{
	return kerr_set(e, -EIO, "state: %s: %s", what, sqlite3_errmsg(st->db));
}

int state_open(const char *path, struct state **out, struct kerr *e)
{
	struct state *st = xcalloc(1, sizeof(*st));
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int r;

	if (slash && slash != dir) {
		*slash = '\0';
		if ((r = mkdir_p(dir, 0700)) < 0) {
			kerr_set(e, r, "state: cannot create '%s': %s", dir, strerror(-r));
			free(dir);
			free(st);
			return r;
		}
	}
	free(dir);
	pthread_mutex_init(&st->lock, NULL);
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				  SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		r = kerr_set(e, -EIO, "state: cannot open '%s': %s", path,
			     st->db ? sqlite3_errmsg(st->db) : "out of memory");
		state_close(st);
		return r;
	}
	sqlite3_busy_timeout(st->db, 10000);
	if (sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		r = db_error(st, e, path);
		state_close(st);
		return r;
	}
	*out = st;
	return 0;
}

void state_close(struct state *st)
{
	if (!st)
		return;
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* Prepare, bind with a format ("t" text, "i" int64, "j" json), step once. */
static int exec1(struct state *st, struct kerr *e, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s = NULL;
	va_list ap;
	int r = 0;

	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		r = db_error(st, e, "prepare");
		goto out;
	}
	va_start(ap, fmt);
	for (int i = 1; *fmt; fmt++, i++) {
		if (*fmt == 't') {
			const char *v = va_arg(ap, const char *);
			sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
		} else if (*fmt == 'i') {
			sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
		} else {
			const json_t *j = va_arg(ap, const json_t *);
			char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
			sqlite3_bind_text(s, i, txt, -1, SQLITE_TRANSIENT);
			free(txt);
		}
	}
	va_end(ap);
	if (sqlite3_step(s) != SQLITE_DONE)
		r = db_error(st, e, "write");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int state_facts_put(struct state *st, const char *cluster, const char *node,
		    const json_t *facts, struct kerr *e)
{
	return exec1(st, e, "INSERT OR REPLACE INTO facts VALUES (?,?,?,?)", "ttij",
		     cluster, node, wall_ms(), facts);
}

int state_facts_get(struct state *st, const char *cluster, const char *node,
		    json_t **out, int64_t *collected_ms, struct kerr *e)
{
	sqlite3_stmt *s = NULL;
	int r = 0;

	*out = NULL;
	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, "SELECT collected_ms, json FROM facts "
				      "WHERE cluster = ? AND node = ?", -1, &s, NULL) != SQLITE_OK) {
		r = db_error(st, e, "prepare");
		goto out;
	}
	sqlite3_bind_text(s, 1, cluster, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, node, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		if (collected_ms)
			*collected_ms = sqlite3_column_int64(s, 0);
		*out = json_loads((const char *)sqlite3_column_text(s, 1), 0, NULL);
	}
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int state_run_begin(struct state *st, const char *cluster, const char *kind,
		    const char *spec_path, int nnodes, int64_t *id, struct kerr *e)
{
	sqlite3_stmt *s = NULL;
	int r = 0;

	/* RETURNING, under the lock: another thread's insert cannot slip in
	 * between the insert and reading its id. */
	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, "INSERT INTO runs (cluster, kind, spec, pid, nodes,"
				      " started_ms, status) VALUES (?,?,?,?,?,?,'running')"
				      " RETURNING id", -1, &s, NULL) != SQLITE_OK) {
		r = db_error(st, e, "prepare");
		goto out;
	}
	sqlite3_bind_text(s, 1, cluster, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, spec_path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, getpid());
	sqlite3_bind_int64(s, 5, nnodes);
	sqlite3_bind_int64(s, 6, wall_ms());
	if (sqlite3_step(s) != SQLITE_ROW) {
		r = db_error(st, e, "write");
		goto out;
	}
	*id = sqlite3_column_int64(s, 0);
	if (sqlite3_step(s) != SQLITE_DONE)
		r = db_error(st, e, "write");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int state_run_node(struct state *st, int64_t run, const char *node, const char *status,
		   int changed, int failed, int64_t duration_ms, const char *error,
		   const json_t *results, struct kerr *e)
{
	return exec1(st, e, "INSERT OR REPLACE INTO run_nodes VALUES (?,?,?,?,?,?,?,?)",
		     "ittiiitj", run, node, status, (int64_t)changed, (int64_t)failed,
		     duration_ms, error, results);
}

int state_run_end(struct state *st, int64_t run, const char *status, int changed,
		  int failed, struct kerr *e)
{
	return exec1(st, e, "UPDATE runs SET finished_ms = ?, status = ?, changed = ?, failed = ?"
			    " WHERE id = ?", "itiii",
		     wall_ms(), status, (int64_t)changed, (int64_t)failed, run);
}

/* When process pid started (wall clock, ms), from /proc; -1 if unknown. */
static int64_t proc_started_ms(int64_t pid)
{
	char path[64];
	struct buf b;
	int64_t r = -1;
	unsigned long long ticks = 0, btime = 0;

	buf_init(&b, 1 << 16);
	snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	if (file_read(path, &b, 1 << 16) < 0)
		goto out;
	/* Field 22 (starttime) counts from the one after the ")" of comm. */
	const char *p = strrchr(b.s, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &ticks) != 1)
		goto out;
	buf_reset(&b);
	if (file_read("/proc/stat", &b, 1 << 16) < 0)
		goto out;
	const char *bt = strstr(b.s, "\nbtime ");
	if (!bt || sscanf(bt + 7, "%llu", &btime) != 1)
		goto out;
	r = (int64_t)btime * 1000 + (int64_t)(ticks * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
out:
	buf_release(&b);
	return r;
}

/*
 * A run that says "running" but whose process is gone — or whose pid now
 * belongs to a process started after the run began — was interrupted.
 */
static const char *run_status(const char *status, int64_t pid, int64_t started_ms)
{
	if (strcmp(status, "running"))
		return status;
	if (pid == getpid())
		return "running";
	if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno != EPERM))
		return "interrupted";
	int64_t born = proc_started_ms(pid);
	/* Clock-tick rounding and btime's whole seconds: allow 2 s of slack. */
	return born >= 0 && born > started_ms + 2000 ? "interrupted" : "running";
}

static json_t *run_row(sqlite3_stmt *s)
{
	json_t *o = json_object();
	const char *status = (const char *)sqlite3_column_text(s, 8);

	json_object_set_new(o, "id", json_integer(sqlite3_column_int64(s, 0)));
	json_object_set_new(o, "cluster", json_string((const char *)sqlite3_column_text(s, 1)));
	json_object_set_new(o, "kind", json_string((const char *)sqlite3_column_text(s, 2)));
	if (sqlite3_column_type(s, 3) != SQLITE_NULL)
		json_object_set_new(o, "spec", json_string((const char *)sqlite3_column_text(s, 3)));
	json_object_set_new(o, "nodes", json_integer(sqlite3_column_int64(s, 5)));
	json_object_set_new(o, "started_ms", json_integer(sqlite3_column_int64(s, 6)));
	if (sqlite3_column_type(s, 7) != SQLITE_NULL)
		json_object_set_new(o, "finished_ms", json_integer(sqlite3_column_int64(s, 7)));
	json_object_set_new(o, "status", json_string(run_status(status, sqlite3_column_int64(s, 4),
							   sqlite3_column_int64(s, 6))));
	json_object_set_new(o, "changed", json_integer(sqlite3_column_int64(s, 9)));
	json_object_set_new(o, "failed", json_integer(sqlite3_column_int64(s, 10)));
	return o;
}

#define RUN_COLUMNS "id, cluster, kind, spec, pid, nodes, started_ms, finished_ms, status, changed, failed"

int state_runs_list(struct state *st, int limit, json_t **out, struct kerr *e)
{
	sqlite3_stmt *s = NULL;
	int r = 0;

	*out = json_array();
	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, "SELECT " RUN_COLUMNS " FROM runs ORDER BY id DESC LIMIT ?",
			       -1, &s, NULL) != SQLITE_OK) {
		r = db_error(st, e, "prepare");
		goto out;
	}
	sqlite3_bind_int(s, 1, limit);
	while (sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(*out, run_row(s));
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int state_run_show(struct state *st, int64_t id, json_t **out, struct kerr *e)
{
	sqlite3_stmt *s = NULL;
	json_t *run = NULL;
	int r = 0;

	*out = NULL;
	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?", -1, &s,
			       NULL) != SQLITE_OK) {
		r = db_error(st, e, "prepare");
		goto out;
	}
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		r = kerr_set(e, -ENOENT, "run %lld: no such run", (long long)id);
		goto out;
	}
	run = run_row(s);
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT node, status, changed, failed, duration_ms, error,"
				      " results FROM run_nodes WHERE run = ? ORDER BY node",
			       -1, &s, NULL) != SQLITE_OK) {
		r = db_error(st, e, "prepare");
		goto out;
	}
	sqlite3_bind_int64(s, 1, id);
	json_t *nodes = json_array();
	while (sqlite3_step(s) == SQLITE_ROW) {
		json_t *n = json_object();
		json_object_set_new(n, "name", json_string((const char *)sqlite3_column_text(s, 0)));
		json_object_set_new(n, "status", json_string((const char *)sqlite3_column_text(s, 1)));
		json_object_set_new(n, "changed", json_integer(sqlite3_column_int64(s, 2)));
		json_object_set_new(n, "failed", json_integer(sqlite3_column_int64(s, 3)));
		json_object_set_new(n, "duration_ms", json_integer(sqlite3_column_int64(s, 4)));
		if (sqlite3_column_type(s, 5) != SQLITE_NULL)
			json_object_set_new(n, "error", json_string((const char *)sqlite3_column_text(s, 5)));
		if (sqlite3_column_type(s, 6) != SQLITE_NULL)
			json_object_set_new(n, "results",
					    json_loads((const char *)sqlite3_column_text(s, 6), 0, NULL));
		json_array_append_new(nodes, n);
	}
	json_object_set_new(run, "node_results", nodes);
	*out = run;
	run = NULL;
out:
	json_decref(run);
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int state_export_put(struct state *st, const char *cluster, const char *node,
		     const char *stack, const char *name, const char *value, bool secret,
		     struct kerr *e)
{
	return exec1(st, e, "INSERT OR REPLACE INTO exports VALUES (?,?,?,?,?,?,?)", "tttttii",
		     cluster, node, stack, name, secret ? NULL : value, (int64_t)secret,
		     wall_ms());
}

int state_exports_drop_node(struct state *st, const char *cluster, const char *node,
			    struct kerr *e)
{
	return exec1(st, e, "DELETE FROM exports WHERE cluster = ? AND node = ?", "tt",
		     cluster, node);
}

int state_exports_each(struct state *st, const char *cluster,
		       int (*fn)(const struct state_export *x, void *arg), void *arg,
		       struct kerr *e)
{
	sqlite3_stmt *s = NULL;
	int r = 0, rc;

	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, "SELECT node, stack, name, value, secret, updated_ms "
				      "FROM exports WHERE cluster = ? ORDER BY node, stack, name",
			       -1, &s, NULL) != SQLITE_OK) {
		r = db_error(st, e, "prepare");
		goto out;
	}
	sqlite3_bind_text(s, 1, cluster, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct state_export x = {
			.node = (const char *)sqlite3_column_text(s, 0),
			.stack = (const char *)sqlite3_column_text(s, 1),
			.name = (const char *)sqlite3_column_text(s, 2),
			.value = (const char *)sqlite3_column_text(s, 3),
			.secret = sqlite3_column_int(s, 4) != 0,
			.updated_ms = sqlite3_column_int64(s, 5),
		};
		if (x.node && x.stack && x.name && (r = fn(&x, arg)))
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = db_error(st, e, "read exports");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

static int export_to_json(const struct state_export *x, void *arg)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:I}", "node", x->node, "stack", x->stack,
			      "name", x->name, "secret", x->secret, "updated_ms",
			      (json_int_t)x->updated_ms);

	if (o && x->value)
		json_object_set_new(o, "value", json_string(x->value));
	if (o)
		json_array_append_new(arg, o);
	return 0;
}

int state_exports_list(struct state *st, const char *cluster, json_t **out, struct kerr *e)
{
	int r;

	*out = json_array();
	if ((r = state_exports_each(st, cluster, export_to_json, *out, e)) < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

/*
 * One reader's share of state_facts_each: the rows with lo <= node < hi
 * (NULL: unbounded), on a connection of its own (db) or on st's.
 */
struct facts_part {
	struct state *st;
	const char *path;        /* open a read-only connection on it; NULL: st->db */
	const char *cluster;
	const struct strv *keys;
	char *lo, *hi;
	int (*fn)(const char *node, const char *json, size_t len, void *arg);
	void *arg;
	struct kerr e;
	int r;
};

static void *facts_part_run(void *arg)
{
	struct facts_part *p = arg;
	size_t nkeys = p->keys ? p->keys->n : 0;
	struct buf q = BUF_INIT;
	sqlite3 *db = p->st->db;
	sqlite3_stmt *s = NULL;
	int rc;

	if (p->path) {
		if (sqlite3_open_v2(p->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
				    NULL) != SQLITE_OK) {
			p->r = kerr_set(&p->e, -EIO, "state: read facts: cannot open '%s': %s",
					p->path, db ? sqlite3_errmsg(db) : "out of memory");
			goto out;
		}
		sqlite3_busy_timeout(db, 10000);
	} else {
		pthread_mutex_lock(&p->st->lock);
	}
	/* json_object(?4, json -> ?5, ...): keys and paths are bound, not spliced */
	buf_adds(&q, "SELECT node, ");
	if (p->keys) {
		buf_adds(&q, "json_object(");
		for (size_t i = 0; i < nkeys; i++)
			buf_printf(&q, "%s?%zu, json -> ?%zu", i ? ", " : "", 4 + 2 * i, 5 + 2 * i);
		buf_adds(&q, ")");
	} else {
		buf_adds(&q, "json");
	}
	buf_printf(&q, " FROM facts WHERE cluster = ?1%s%s", p->lo ? " AND node >= ?2" : "",
		   p->hi ? " AND node < ?3" : "");
	if (sqlite3_prepare_v2(db, q.s, -1, &s, NULL) != SQLITE_OK) {
		p->r = kerr_set(&p->e, -EIO, "state: prepare: %s", sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_text(s, 1, p->cluster, -1, SQLITE_STATIC);
	if (p->lo)
		sqlite3_bind_text(s, 2, p->lo, -1, SQLITE_STATIC);
	if (p->hi)
		sqlite3_bind_text(s, 3, p->hi, -1, SQLITE_STATIC);
	for (size_t i = 0; i < nkeys; i++) {
		sqlite3_bind_text(s, (int)(4 + 2 * i), p->keys->v[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(s, (int)(5 + 2 * i), p->keys->v[i], -1, SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *node = (const char *)sqlite3_column_text(s, 0);
		const char *json = (const char *)sqlite3_column_text(s, 1);
		if (node && json &&
		    (p->r = p->fn(node, json, (size_t)sqlite3_column_bytes(s, 1), p->arg)))
			goto out;
	}
	if (rc == SQLITE_ERROR && p->keys)   /* json -> on a record that is not JSON */
		p->r = kerr_set(&p->e, -EBADMSG, "state: read facts: %s", sqlite3_errmsg(db));
	else if (rc != SQLITE_DONE)
		p->r = kerr_set(&p->e, -EIO, "state: read facts: %s", sqlite3_errmsg(db));
out:
	sqlite3_finalize(s);
	if (!p->path)
		pthread_mutex_unlock(&p->st->lock);
	else
		sqlite3_close(db);
	buf_release(&q);
	return NULL;
}

/*
 * Where to cut the cluster's facts rows into ways shares of about equal
 * size, by node name (a node's row is in one share, whatever a writer does
 * meanwhile): the ways - 1 names that start the second and later shares;
 * fewer (none) when there are too few rows to be worth it.
 */
static size_t facts_cuts(struct state *st, const char *cluster, size_t ways, char **cut)
{
	sqlite3_stmt *s = NULL;
	int64_t rows = 0;
	size_t n = 0;

	pthread_mutex_lock(&st->lock);
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM facts WHERE cluster = ?1", -1, &s,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, cluster, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			rows = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	s = NULL;
	if (rows >= 512 && sqlite3_prepare_v2(st->db, "SELECT node FROM facts WHERE cluster = ?1 "
					      "ORDER BY node LIMIT 1 OFFSET ?2", -1, &s,
					      NULL) == SQLITE_OK) {
		for (size_t k = 1; k < ways; k++) {
			sqlite3_reset(s);
			sqlite3_bind_text(s, 1, cluster, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, rows * (int64_t)k / (int64_t)ways);
			const char *name = sqlite3_step(s) == SQLITE_ROW
					   ? (const char *)sqlite3_column_text(s, 0) : NULL;
			if (!name || (n && strcmp(name, cut[n - 1]) <= 0))
				break;
			cut[n++] = xstrdup(name);
		}
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return n;
}

int state_facts_each(struct state *st, const char *cluster, const struct strv *keys,
		     int (*fn)(const char *node, const char *json, size_t len, void *arg),
		     void *arg, struct kerr *e)
{
	/* JSON extraction is most of a large read: one reader per core */
	const char *path = sqlite3_db_filename(st->db, "main");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t ways = ncpu < 2 || !path || !*path ? 1 : ncpu > 4 ? 4 : (size_t)ncpu;
	char *cut[4] = { 0 };
	struct facts_part part[4];
	pthread_t t[4];
	size_t ncut = ways > 1 ? facts_cuts(st, cluster, ways, cut) : 0, nt = 0;
	int r = 0;

	for (size_t k = 0; k <= ncut; k++)
		part[k] = (struct facts_part){
			.st = st, .path = ncut ? path : NULL, .cluster = cluster, .keys = keys,
			.lo = k ? cut[k - 1] : NULL, .hi = k < ncut ? cut[k] : NULL,
			.fn = fn, .arg = arg,
		};
	while (nt < ncut && pthread_create(&t[nt], NULL, facts_part_run, &part[nt + 1]) == 0)
		nt++;
	facts_part_run(&part[0]);
	/* a share whose thread did not start: read here */
	for (size_t k = nt + 1; k <= ncut; k++)
		facts_part_run(&part[k]);
	for (size_t k = 0; k < nt; k++)
		pthread_join(t[k], NULL);
	for (size_t k = 0; k <= ncut; k++)
		if (part[k].r && !r) {
			r = part[k].r;
			if (r < 0)
				*e = part[k].e;
		}
	for (size_t k = 0; k < ncut; k++)
		free(cut[k]);
	return r;
}
