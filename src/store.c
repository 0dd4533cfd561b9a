/* store.c - the SQLite implementation of store.h: schema migration,
 * cached prepared statements, and the rows maildesk keeps. */
#include "config.h"

#include <sqlite3.h>
#include <string.h>

#include "catalog.h"
#include "md.h"
#include "schema.sql.h"
#include "sql.h"
#include "store.h"
#include "turn.h"

#define WAL_CHECKPOINT_PAGES 4000
#define WAL_SIZE_LIMIT 16384000  /* bytes: 4,000 pages of 4 KiB, one checkpoint's worth */
#define CHECKPOINT_WAIT_MS 10    /* what a restarting checkpoint waits for others */

struct _MdStore {
	sqlite3 *db;
	GHashTable *stmts;  /* SQL text (static) -> sqlite3_stmt* */
	int busy_timeout_ms;
	MdStoreWalHook wal_hook;
	gpointer wal_hook_data;
	MdTurn *turn;       /* shared with the process's other connections, or NULL */
	gboolean turn_held; /* from md_store_begin to the commit or rollback */
};

void
md_store_set_error (MdStore *store, GError **error, const char *what)
{
	int rc = sqlite3_extended_errcode (store->db);
	int code = MD_ERROR_INTERNAL;
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = MD_ERROR_DB_BUSY;
		break;
	case SQLITE_FULL:
		code = MD_ERROR_DISK_FULL;
		break;
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
		code = MD_ERROR_IO;
		break;
	}
	g_set_error (error, MD_ERROR, code, "database: %s: %s", what, sqlite3_errmsg (store->db));
}

struct sqlite3 *
md_store_db (MdStore *store)
{
	return store->db;
}

/* A cached, reset statement for SQL (which must be a string literal). */
static sqlite3_stmt *
stmt (MdStore *store, const char *sql, GError **error)
{
	sqlite3_stmt *s = g_hash_table_lookup (store->stmts, sql);
	if (s) {
		sqlite3_reset (s);
		sqlite3_clear_bindings (s);
		return s;
	}
	if (sqlite3_prepare_v3 (store->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		md_store_set_error (store, error, "prepare");
		return NULL;
	}
	g_hash_table_insert (store->stmts, (gpointer) sql, s);
	return s;
}

sqlite3_stmt *
md_store_statement (MdStore *store, const char *sql, GError **error)
{
	return stmt (store, sql, error);
}

void
md_store_statement_release (sqlite3_stmt *s)
{
	if (s)
		sqlite3_reset (s);
}

static void
bind_time (sqlite3_stmt *s, int i, gint64 t)
{
	if (t)
		sqlite3_bind_int64 (s, i, t);
	else
		sqlite3_bind_null (s, i);
}

static gboolean
exec (MdStore *store, const char *sql, GError **error)
{
	if (sqlite3_exec (store->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		md_store_set_error (store, error, sql);
		return FALSE;
	}
	return TRUE;
}

/* The switch to WAL of a connection opened while others do the same (a
 * fresh desk: serve's threads and a command run at once) may answer
 * SQLITE_BUSY at once, without the busy handler: SQLite's way out of two
 * connections that each hold a shared lock and want an exclusive one.
 * Tried again, a few ms apart, for as long as the busy timeout. */
static gboolean
set_wal (MdStore *store, GError **error)
{
	static const char sql[] = "PRAGMA journal_mode = WAL";
	gint64 give_up = g_get_monotonic_time () + (gint64) store->busy_timeout_ms * 1000;
	int rc;

	while ((rc = sqlite3_exec (store->db, sql, NULL, NULL, NULL)) != SQLITE_OK &&
	       (rc & 0xff) == SQLITE_BUSY && g_get_monotonic_time () < give_up)
		g_usleep (5000);
	if (rc != SQLITE_OK) {
		md_store_set_error (store, error, sql);
		return FALSE;
	}
	return TRUE;
}

/* Runs a statement of no result through the statement cache: the
 * writer runs SAVEPOINT and RELEASE once each per message, and
 * sqlite3_exec would compile them every time. */
static gboolean
exec_cached (MdStore *store, const char *sql, GError **error)
{
	sqlite3_stmt *s = stmt (store, sql, error);
	return s && md_sql_step_done (store, s, sql, error);
}

gboolean
md_store_lazy_commits (MdStore *store, GError **error)
{
	return exec (store, "PRAGMA synchronous = NORMAL", error);
}

int
md_store_schema_version (MdStore *store)
{
	sqlite3_stmt *s = stmt (store, "PRAGMA user_version", NULL);
	int v = (s && sqlite3_step (s) == SQLITE_ROW) ? sqlite3_column_int (s, 0) : -1;
	if (s)
		sqlite3_reset (s);
	return v;
}

static gboolean
migrate (MdStore *store, GError **error)
{
	int version = md_store_schema_version (store);
	int latest = (int) G_N_ELEMENTS (md_schema_migrations);

	if (version > latest) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG,
		             "database schema version %d is newer than this maildesk (%d)", version, latest);
		return FALSE;
	}
	for (; version < latest; version++) {
		if (!md_store_begin (store, error))
			return FALSE;
		/* another process may have migrated while we waited for the lock */
		version = md_store_schema_version (store);
		if (version >= latest)
			return md_store_commit (store, error);
		g_autofree char *bump = g_strdup_printf ("PRAGMA user_version = %d", version + 1);
		if (!exec (store, md_schema_migrations[version], error) || !exec (store, bump, error)) {
			md_store_rollback (store);
			return FALSE;
		}
		if (!md_store_commit (store, error))
			return FALSE;
	}
	return TRUE;
}

static void
finalize_stmt (gpointer s)
{
	sqlite3_finalize (s);
}

/* SQLite's memory statistics, which maildesk never reads, cost a lock
 * of one process-wide mutex around every malloc and free SQLite makes:
 * off, before the first connection (sqlite3_config refuses after). */
static void
configure_sqlite (void)
{
	static gsize once = 0;
	if (g_once_init_enter (&once)) {
		sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);
		g_once_init_leave (&once, 1);
	}
}

MdStore *
md_store_open (const char *db_path, MdStoreFlags flags, int busy_timeout_ms, GError **error)
{
	gboolean ro = (flags & MD_STORE_READ_ONLY) != 0;
	int oflags = (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
	g_autoptr (MdStore) store = g_new0 (MdStore, 1);

	configure_sqlite ();
	store->stmts = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, finalize_stmt);
	if (sqlite3_open_v2 (db_path, &store->db, oflags, NULL) != SQLITE_OK) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "cannot open database %s: %s", db_path,
		             store->db ? sqlite3_errmsg (store->db) : "out of memory");
		return NULL;
	}
	store->busy_timeout_ms = busy_timeout_ms;
	sqlite3_busy_timeout (store->db, busy_timeout_ms);
	sqlite3_extended_result_codes (store->db, 1);
	/* A checkpoint every 4,000 pages (16 MiB of WAL) instead of SQLite's
	 * 1,000: the pages every ticket touches (the right edges of the
	 * tables and indexes) are copied to the database once per
	 * checkpoint, so fewer checkpoints copy fewer pages; under load the
	 * writer spends ~10 % less CPU per message (bench/lmtp). */
	/* The WAL outgrows that while a reader holds an old snapshot (a
	 * backup, an sqlite3 shell left in a transaction): every commit
	 * appends and no checkpoint may pass the reader.  Without a limit the
	 * file then kept its largest size for as long as serve held the
	 * database open, months; with one, the first write after a complete
	 * checkpoint cuts it back to one checkpoint's worth. */
	if (!ro && (!set_wal (store, error) ||
	            !exec (store, "PRAGMA synchronous = FULL", error) ||
	            !exec (store, "PRAGMA wal_autocheckpoint = " G_STRINGIFY (WAL_CHECKPOINT_PAGES), error) ||
	            !exec (store, "PRAGMA journal_size_limit = " G_STRINGIFY (WAL_SIZE_LIMIT), error)))
		return NULL;
	if (!exec (store, "PRAGMA foreign_keys = ON", error))
		return NULL;
	/* The writer's savepoint per message keeps the original of every
	 * page the message touches in a statement journal, which SQLite
	 * otherwise spills past 64 KiB to a file in /var/tmp: two pwrite()s
	 * per page per message, and a directory the daemon has no other use
	 * for.  The temporary b-trees of our queries stay in memory too:
	 * they hold one person's tickets (a UNION) or a LIMITed batch. */
	if (!exec (store, "PRAGMA temp_store = MEMORY", error))
		return NULL;
	if (!ro && !migrate (store, error))
		return NULL;
	if (ro && md_store_schema_version (store) != (int) G_N_ELEMENTS (md_schema_migrations)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "database %s is not at schema version %d; run maildesk once with write access",
		             db_path, (int) G_N_ELEMENTS (md_schema_migrations));
		return NULL;
	}
	return g_steal_pointer (&store);
}

/* MAILDESK_DEBUG_SCANS: at close, name every cached statement that
 * stepped through a whole table (a missing index is a cost that grows
 * with the desk). */
static void
report_scans (MdStore *store)
{
	GHashTableIter it;
	gpointer sql, s;
	g_hash_table_iter_init (&it, store->stmts);
	while (g_hash_table_iter_next (&it, &sql, &s)) {
		int scans = sqlite3_stmt_status (s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
		int sorts = sqlite3_stmt_status (s, SQLITE_STMTSTATUS_SORT, 0);
		int runs = sqlite3_stmt_status (s, SQLITE_STMTSTATUS_RUN, 0);
		if (scans > 0)
			g_printerr ("store: full scan steps=%d sorts=%d runs=%d: %s\n", scans, sorts, runs, (const char *) sql);
	}
}

void
md_store_close (MdStore *store)
{
	if (!store)
		return;
	if (store->stmts && g_getenv ("MAILDESK_DEBUG_SCANS"))
		report_scans (store);
	if (store->stmts)
		g_hash_table_unref (store->stmts);
	sqlite3_close (store->db);
	g_free (store);
}

void
md_store_share_turn (MdStore *store, MdTurn *turn)
{
	store->turn = turn;
}

gboolean
md_store_would_wait (MdStore *store)
{
	return store->turn && md_turn_busy (store->turn);
}

static void
give_turn (MdStore *store)
{
	if (store->turn_held) {
		store->turn_held = FALSE;
		md_turn_give (store->turn);
	}
}

/* The turn before SQLite's lock, and never the other way round: a
 * connection waiting for the turn holds no write lock, so its holder
 * only ever waits for another process. */
gboolean
md_store_begin (MdStore *store, GError **error)
{
	gboolean took = store->turn && !store->turn_held;
	if (took) {
		md_turn_take (store->turn);
		store->turn_held = TRUE;
	}
	if (exec_cached (store, "BEGIN IMMEDIATE", error))
		return TRUE;
	if (took)
		give_turn (store);
	return FALSE;
}

gboolean
md_store_commit (MdStore *store, GError **error)
{
	if (exec_cached (store, "COMMIT", error)) {
		give_turn (store);
		return TRUE;
	}
	md_store_rollback (store);
	return FALSE;
}

/* After each commit of a connection with a hook: the hook, then SQLite's
 * own rule (a checkpoint once the WAL holds WAL_CHECKPOINT_PAGES), which
 * bounds the WAL whatever the hook does. */
static int
wal_committed (void *data, sqlite3 *db, const char *name, int frames)
{
	MdStore *store = data;
	store->wal_hook (store, (guint) MAX (frames, 0), store->wal_hook_data);
	if (frames >= WAL_CHECKPOINT_PAGES)
		sqlite3_wal_checkpoint_v2 (db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

void
md_store_set_wal_hook (MdStore *store, MdStoreWalHook hook, gpointer user_data)
{
	store->wal_hook = hook;
	store->wal_hook_data = user_data;
	sqlite3_wal_hook (store->db, hook ? wal_committed : NULL, hook ? store : NULL);
	if (!hook)
		sqlite3_wal_autocheckpoint (store->db, WAL_CHECKPOINT_PAGES);
}

gboolean
md_store_checkpoint (MdStore *store, MdStoreCheckpoint mode, guint *frames_r, guint *copied_r, GError **error)
{
	int frames = -1, copied = -1;
	gboolean restart = mode == MD_STORE_CHECKPOINT_RESTART;
	/* The wait is for statements of a few milliseconds; a reader that
	 * stays longer (a backup) is let be. */
	if (restart)
		sqlite3_busy_timeout (store->db, CHECKPOINT_WAIT_MS);
	int rc = sqlite3_wal_checkpoint_v2 (store->db, NULL, restart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE,
	                                    &frames, &copied);
	if (rc != SQLITE_OK)
		md_store_set_error (store, error, "checkpoint");
	if (restart)
		sqlite3_busy_timeout (store->db, store->busy_timeout_ms);
	if (rc != SQLITE_OK)
		return FALSE;
	*frames_r = (guint) MAX (frames, 0);
	*copied_r = (guint) MAX (copied, 0);
	return TRUE;
}

void
md_store_rollback (MdStore *store)
{
	if (!sqlite3_get_autocommit (store->db))
		sqlite3_exec (store->db, "ROLLBACK", NULL, NULL, NULL);
	give_turn (store);
}

gboolean
md_store_savepoint (MdStore *store, GError **error)
{
	return exec_cached (store, "SAVEPOINT ingest", error);
}

gboolean
md_store_release (MdStore *store, GError **error)
{
	return exec_cached (store, "RELEASE ingest", error);
}

void
md_store_rollback_to (MdStore *store)
{
	sqlite3_exec (store->db, "ROLLBACK TO ingest", NULL, NULL, NULL);
	sqlite3_exec (store->db, "RELEASE ingest", NULL, NULL, NULL);
}

/* ---- people and organizations ---- */

void
md_person_free (MdPerson *p)
{
	if (!p)
		return;
	g_free (p->email);
	g_free (p->name);
	g_free (p);
}

static MdPerson *
person_from_row (sqlite3_stmt *s)
{
	MdPerson *p = g_new0 (MdPerson, 1);
	p->id = sqlite3_column_int64 (s, 0);
	p->email = md_sql_col_text (s, 1);
	p->name = md_sql_col_text (s, 2);
	p->is_agent = sqlite3_column_int (s, 3);
	p->bouncing = sqlite3_column_int (s, 4);
	return p;
}

#define PERSON_COLS "id, email, name, is_agent, bouncing"

static MdPerson *
person_query (MdStore *store, sqlite3_stmt *s, GError **error)
{
	int rc = sqlite3_step (s);
	if (rc == SQLITE_ROW) {
		MdPerson *p = person_from_row (s);
		sqlite3_reset (s);
		return p;
	}
	sqlite3_reset (s);
	if (rc == SQLITE_DONE)
		g_set_error (error, MD_ERROR, MD_ERROR_NOT_FOUND, "no such person");
	else
		md_store_set_error (store, error, "person");
	return NULL;
}

MdPerson *
md_store_person_get (MdStore *store, gint64 id, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT " PERSON_COLS " FROM people WHERE id = ?", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, id);
	return person_query (store, s, error);
}

MdPerson *
md_store_person_find (MdStore *store, const char *email, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT " PERSON_COLS " FROM people WHERE email = ?", error);
	if (!s)
		return NULL;
	md_sql_bind_text (s, 1, email);
	return person_query (store, s, error);
}

/* An insert that does nothing for a known address, then for those only
 * a lookup, and a write only to give a nameless row its name: a new
 * ticket's sender costs one plain insert, not an upsert whose RETURNING
 * fills a temporary table, and a reply's rewrites no row. */
gboolean
md_store_person_ensure (MdStore *store, const char *email, const char *name, gint64 *id_r, GError **error)
{
	const char *given = name && *name ? name : NULL;
	sqlite3_stmt *s = stmt (store,
	                        "INSERT INTO people (email, name, created_at) VALUES (?1, ?2, ?3) "
	                        "ON CONFLICT (email) DO NOTHING", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, email);
	md_sql_bind_text (s, 2, given);
	sqlite3_bind_int64 (s, 3, md_now ());
	if (!md_sql_step_done (store, s, "add person", error))
		return FALSE;
	if (sqlite3_changes (store->db) == 1) {
		if (id_r)
			*id_r = sqlite3_last_insert_rowid (store->db);
		return TRUE;
	}
	s = stmt (store, "SELECT id, name IS NULL FROM people WHERE email = ?1", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, email);
	int rc = sqlite3_step (s);
	gint64 id = rc == SQLITE_ROW ? sqlite3_column_int64 (s, 0) : 0;
	gboolean nameless = rc == SQLITE_ROW && sqlite3_column_int (s, 1);
	sqlite3_reset (s);
	if (rc == SQLITE_DONE)
		g_set_error (error, MD_ERROR, MD_ERROR_INTERNAL, "add person: %s is taken but not there", email);
	else if (rc != SQLITE_ROW)
		md_store_set_error (store, error, "add person");
	if (rc != SQLITE_ROW)
		return FALSE;
	if (id_r)
		*id_r = id;
	if (!nameless || !given)
		return TRUE;
	s = stmt (store, "UPDATE people SET name = ?2 WHERE id = ?1", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, id);
	md_sql_bind_text (s, 2, given);
	return md_sql_step_done (store, s, "name person", error);
}

gboolean
md_store_agent_add (MdStore *store, const char *email, const char *name, gint64 *id_r, GError **error)
{
	gint64 id = 0;
	if (!md_store_person_ensure (store, email, name, &id, error))
		return FALSE;
	sqlite3_stmt *s = stmt (store, "UPDATE people SET is_agent = 1, name = coalesce(?2, name) WHERE id = ?1", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, id);
	md_sql_bind_text (s, 2, name);
	if (id_r)
		*id_r = id;
	return md_sql_step_done (store, s, "add agent", error);
}

gboolean
md_store_agent_remove (MdStore *store, const char *email, gboolean *removed_r, GError **error)
{
	sqlite3_stmt *s = stmt (store, "UPDATE people SET is_agent = 0 WHERE email = ?1 AND is_agent", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, email);
	if (!md_sql_step_done (store, s, "remove agent", error))
		return FALSE;
	*removed_r = sqlite3_changes (store->db) > 0;
	return TRUE;
}

GArray *
md_store_assigned_open_tickets (MdStore *store, const char *email, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT t.id FROM tickets t INDEXED BY tickets_assignee "
	                        "JOIN people p ON p.id = t.assignee_id "
	                        "WHERE p.email = ?1 AND t.status != ?2 ORDER BY t.id", error);
	if (!s)
		return NULL;
	md_sql_bind_text (s, 1, email);
	md_sql_bind_text (s, 2, MD_STATUS_RESOLVED);
	return md_sql_ids (store, s, "assigned tickets", error);
}

gboolean
md_store_set_bouncing (MdStore *store, const char *email, gboolean bouncing, GError **error)
{
	sqlite3_stmt *s = stmt (store, "UPDATE people SET bouncing = ?2 WHERE email = ?1 AND bouncing <> ?2", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, email);
	sqlite3_bind_int (s, 2, bouncing);
	return md_sql_step_done (store, s, "mark bouncing", error);
}

gboolean
md_store_org_add (MdStore *store, const char *name, const char *domain, gint64 *id_r, GError **error)
{
	/* A domain decides whose tickets a sender's are: moved silently to
	 * another organization, its senders would see that one's shared
	 * tickets and no longer their own.  Refused, naming the owner. */
	if (domain) {
		sqlite3_stmt *q = stmt (store, "SELECT o.name FROM org_domains d JOIN organizations o ON o.id = d.org_id "
		                        "WHERE d.domain = ?1 AND o.name != ?2", error);
		if (!q)
			return FALSE;
		md_sql_bind_text (q, 1, domain);
		md_sql_bind_text (q, 2, name);
		int rc = sqlite3_step (q);
		g_autofree char *owner = rc == SQLITE_ROW ? md_sql_col_text (q, 0) : NULL;
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			md_store_set_error (store, error, "organization domain");
		sqlite3_reset (q);
		if (owner)
			g_set_error (error, MD_ERROR, MD_ERROR_DENIED, "domain %s already belongs to organization \"%s\"",
			             domain, owner);
		if (rc != SQLITE_DONE)
			return FALSE;
	}
	sqlite3_stmt *s = stmt (store,
	                        "INSERT INTO organizations (name, created_at) VALUES (?1, ?2) "
	                        "ON CONFLICT (name) DO UPDATE SET name = name RETURNING id", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, name);
	sqlite3_bind_int64 (s, 2, md_now ());
	if (sqlite3_step (s) != SQLITE_ROW) {
		sqlite3_reset (s);
		md_store_set_error (store, error, "add organization");
		return FALSE;
	}
	gint64 id = sqlite3_column_int64 (s, 0);
	sqlite3_reset (s);
	if (domain) {
		s = stmt (store, "INSERT OR REPLACE INTO org_domains (domain, org_id) VALUES (?1, ?2)", error);
		if (!s)
			return FALSE;
		md_sql_bind_text (s, 1, domain);
		sqlite3_bind_int64 (s, 2, id);
		if (!md_sql_step_done (store, s, "add organization domain", error))
			return FALSE;
	}
	if (id_r)
		*id_r = id;
	return TRUE;
}

gboolean
md_store_org_add_member (MdStore *store, gint64 org_id, const char *email, GError **error)
{
	gint64 pid = 0;
	if (!md_store_person_ensure (store, email, NULL, &pid, error))
		return FALSE;
	sqlite3_stmt *s = stmt (store, "INSERT OR IGNORE INTO memberships (org_id, person_id) VALUES (?1, ?2)", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, org_id);
	sqlite3_bind_int64 (s, 2, pid);
	return md_sql_step_done (store, s, "add member", error);
}

static gint64
single_int (MdStore *store, sqlite3_stmt *s, GError **error)
{
	int rc = sqlite3_step (s);
	gint64 v = rc == SQLITE_ROW ? sqlite3_column_int64 (s, 0) : 0;
	sqlite3_reset (s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		md_store_set_error (store, error, "query");
	return v;
}

gint64
md_store_org_of (MdStore *store, const char *email, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT m.org_id FROM memberships m JOIN people p ON p.id = m.person_id "
	                        "WHERE p.email = ?1 "
	                        "UNION ALL SELECT org_id FROM org_domains WHERE domain = ?2 LIMIT 1", error);
	if (!s || !email)
		return 0;
	const char *at = strrchr (email, '@');
	md_sql_bind_text (s, 1, email);
	md_sql_bind_text (s, 2, at ? at + 1 : "");
	return single_int (store, s, error);
}

gint64
md_store_org_find (MdStore *store, const char *name, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT id FROM organizations WHERE name = ?", error);
	if (!s)
		return 0;
	md_sql_bind_text (s, 1, name);
	int rc = sqlite3_step (s);
	gint64 id = rc == SQLITE_ROW ? sqlite3_column_int64 (s, 0) : 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		md_store_set_error (store, error, "find organization");
	sqlite3_reset (s);
	return id;
}

char *
md_store_org_name (MdStore *store, gint64 org_id)
{
	sqlite3_stmt *s = stmt (store, "SELECT name FROM organizations WHERE id = ?", NULL);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, org_id);
	char *name = sqlite3_step (s) == SQLITE_ROW ? md_sql_col_text (s, 0) : NULL;
	sqlite3_reset (s);
	return name;
}

gboolean
md_store_org_is_member (MdStore *store, gint64 org_id, const char *email)
{
	return org_id && md_store_org_of (store, email, NULL) == org_id;
}

static GPtrArray *
string_column (MdStore *store, sqlite3_stmt *s, const char *what, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW)
		g_ptr_array_add (out, md_sql_col_text (s, 0));
	sqlite3_reset (s);
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, what);
		g_ptr_array_unref (out);
		return NULL;
	}
	return out;
}

GPtrArray *
md_store_org_members (MdStore *store, gint64 org_id, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT p.email FROM memberships m JOIN people p ON p.id = m.person_id "
	                        "WHERE m.org_id = ? ORDER BY p.id", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, org_id);
	return string_column (store, s, "organization members", error);
}

GPtrArray *
md_store_agents (MdStore *store, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT email FROM people INDEXED BY people_agents WHERE is_agent ORDER BY id", error);
	return s ? string_column (store, s, "agents", error) : NULL;
}

/* ---- tickets ---- */

void
md_ticket_free (MdTicket *t)
{
	if (!t)
		return;
	g_free (t->subject);
	g_free (t->requester);
	g_free (t->organization);
	g_free (t->assignee);
	g_free (t->flag);
	g_free (t->requester_name);
	g_free (t->assignee_name);
	g_free (t->tags);
	g_free (t);
}

/* The columns a ticket row is written with, in this order, bound from
 * parameter FIRST on: insert and update write the same fields. */
#define TICKET_COLUMNS \
	"subject, category, priority, status, requester_id, organization_id, shared, assignee_id, " \
	"created_at, updated_at, first_response_due, first_response_at, resolved_at, status_changed_at, " \
	"due_at, linked_ticket_id, flag, tags"

static void
bind_ticket (sqlite3_stmt *s, int first, const MdTicket *t)
{
	int i = first;
	md_sql_bind_text (s, i++, t->subject);
	md_sql_bind_text (s, i++, t->category);
	md_sql_bind_text (s, i++, t->priority);
	md_sql_bind_text (s, i++, t->status);
	bind_time (s, i++, t->requester_id);
	bind_time (s, i++, t->organization_id);
	sqlite3_bind_int (s, i++, t->shared);
	bind_time (s, i++, t->assignee_id);
	sqlite3_bind_int64 (s, i++, t->created_at);
	sqlite3_bind_int64 (s, i++, t->updated_at);
	bind_time (s, i++, t->first_response_due);
	bind_time (s, i++, t->first_response_at);
	bind_time (s, i++, t->resolved_at);
	sqlite3_bind_int64 (s, i++, t->status_changed_at);
	bind_time (s, i++, t->due_at);
	bind_time (s, i++, t->linked_ticket_id);
	md_sql_bind_text (s, i++, t->flag);
	md_sql_bind_text (s, i++, t->tags);
}

gboolean
md_store_ticket_insert (MdStore *store, MdTicket *t, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "INSERT INTO tickets (" TICKET_COLUMNS ") "
	                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
	                        error);
	if (!s)
		return FALSE;
	bind_ticket (s, 1, t);
	if (!md_sql_step_done (store, s, "insert ticket", error))
		return FALSE;
	t->id = sqlite3_last_insert_rowid (store->db);
	return TRUE;
}

gboolean
md_store_ticket_update (MdStore *store, const MdTicket *t, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "UPDATE tickets SET (" TICKET_COLUMNS ") = "
	                        "(?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) "
	                        "WHERE id = ?1", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, t->id);
	bind_ticket (s, 2, t);
	return md_sql_step_done (store, s, "update ticket", error);
}

/* No column a foreign key or an index but tickets_status reads: SQLite
 * rewrites only that index, checks no parent row, and needs no statement
 * journal (the whole-row update costs about three times as much). */
gboolean
md_store_ticket_update_status (MdStore *store, const MdTicket *t, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "UPDATE tickets SET (status, status_changed_at, resolved_at) = (?2, ?3, ?4) "
	                        "WHERE id = ?1", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, t->id);
	md_sql_bind_text (s, 2, t->status);
	sqlite3_bind_int64 (s, 3, t->status_changed_at);
	bind_time (s, 4, t->resolved_at);
	return md_sql_step_done (store, s, "update ticket status", error);
}

#define TICKET_SELECT \
	"SELECT t.id, t.subject, t.category, t.priority, t.status, t.requester_id, r.email, " \
	"t.organization_id, o.name, t.shared, t.assignee_id, a.email, t.created_at, t.updated_at, " \
	"t.first_response_due, t.first_response_at, t.resolved_at, t.status_changed_at, t.due_at, " \
	"t.linked_ticket_id, t.flag, t.tags, t.merged_into_id, r.name, a.name FROM tickets t " \
	"LEFT JOIN people r ON r.id = t.requester_id " \
	"LEFT JOIN people a ON a.id = t.assignee_id " \
	"LEFT JOIN organizations o ON o.id = t.organization_id "

static const char *
canonical (const char *(*normalize) (const char *), sqlite3_stmt *s, int i, const char *fallback)
{
	const char *v = normalize ((const char *) sqlite3_column_text (s, i));
	return v ? v : fallback;
}

static MdTicket *
ticket_from_row (sqlite3_stmt *s)
{
	MdTicket *t = g_new0 (MdTicket, 1);
	t->id = sqlite3_column_int64 (s, 0);
	t->subject = md_sql_col_text (s, 1);
	t->category = canonical (md_category_normalize, s, 2, MD_DEFAULT_CATEGORY);
	t->priority = canonical (md_priority_normalize, s, 3, MD_DEFAULT_PRIORITY);
	t->status = canonical (md_status_normalize, s, 4, MD_STATUS_TRIAGE);
	t->requester_id = sqlite3_column_int64 (s, 5);
	t->requester = md_sql_col_text (s, 6);
	t->organization_id = sqlite3_column_int64 (s, 7);
	t->organization = md_sql_col_text (s, 8);
	t->shared = sqlite3_column_int (s, 9);
	t->assignee_id = sqlite3_column_int64 (s, 10);
	t->assignee = md_sql_col_text (s, 11);
	t->created_at = sqlite3_column_int64 (s, 12);
	t->updated_at = sqlite3_column_int64 (s, 13);
	t->first_response_due = sqlite3_column_int64 (s, 14);
	t->first_response_at = sqlite3_column_int64 (s, 15);
	t->resolved_at = sqlite3_column_int64 (s, 16);
	t->status_changed_at = sqlite3_column_int64 (s, 17);
	t->due_at = sqlite3_column_int64 (s, 18);
	t->linked_ticket_id = sqlite3_column_int64 (s, 19);
	t->flag = md_sql_col_text (s, 20);
	t->tags = md_sql_col_text (s, 21);
	t->merged_into_id = sqlite3_column_int64 (s, 22);
	t->requester_name = md_sql_col_text (s, 23);
	t->assignee_name = md_sql_col_text (s, 24);
	return t;
}

MdTicket *
md_store_ticket_get (MdStore *store, gint64 id, GError **error)
{
	sqlite3_stmt *s = stmt (store, TICKET_SELECT "WHERE t.id = ?", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, id);
	int rc = sqlite3_step (s);
	MdTicket *t = rc == SQLITE_ROW ? ticket_from_row (s) : NULL;
	sqlite3_reset (s);
	if (rc == SQLITE_DONE)
		g_set_error (error, MD_ERROR, MD_ERROR_NOT_FOUND, "no ticket %" G_GINT64_FORMAT, id);
	else if (!t)
		md_store_set_error (store, error, "get ticket");
	return t;
}

gboolean
md_store_ticket_foreach (MdStore *store, const MdTicketFilter *f, MdTicketFunc func, gpointer data,
                         GError **error)
{
#define LIST_FILTERS \
	"(?1 IS NULL OR t.status = ?1) AND (?2 IS NULL OR t.category = ?2) " \
	"AND (?3 IS NULL OR t.priority = ?3) AND (?7 = 0 OR (t.due_at > 0 AND t.status <> ?8)) " \
	"AND (?9 = 0 OR t.status <> ?8) AND (?11 = 0 OR t.organization_id = ?11) " \
	"AND (?12 = 0 OR t.flag IS NOT NULL) " \
	"AND (?10 IS NULL OR CASE WHEN ?10 = '' THEN t.assignee_id IS NULL " \
	"     ELSE t.assignee_id = (SELECT id FROM people WHERE email = ?10) END) "
	/* A person's tickets are found through three indexes (requester,
	 * organization, participant), never by reading every ticket. */
#define FOR_PERSON \
	"WHERE t.id IN (" \
	"  SELECT t2.id FROM people p2 JOIN tickets t2 ON t2.requester_id = p2.id " \
	"  WHERE p2.email = ?4 " \
	"  UNION SELECT t3.id FROM tickets t3 WHERE ?5 > 0 AND t3.organization_id = ?5 " \
	"  AND t3.shared " \
	"  UNION SELECT pa.ticket_id FROM people pp JOIN participants pa ON pa.person_id = pp.id " \
	"  WHERE pp.email = ?4) AND "
	gboolean for_person = f && f->requester;
	/* Open first, newest first: what a limit cuts is old, settled work. */
	sqlite3_stmt *s = stmt (store,
	                        for_person && f->open_first
	                        ? TICKET_SELECT FOR_PERSON LIST_FILTERS "ORDER BY t.status = ?8, t.id DESC LIMIT ?6"
	                        : for_person ? TICKET_SELECT FOR_PERSON LIST_FILTERS "ORDER BY t.id LIMIT ?6"
	                        : TICKET_SELECT "WHERE " LIST_FILTERS "ORDER BY t.id LIMIT ?6",
	                        error);
#undef FOR_PERSON
#undef LIST_FILTERS
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, f ? f->status : NULL);
	md_sql_bind_text (s, 2, f ? f->category : NULL);
	md_sql_bind_text (s, 3, f ? f->priority : NULL);
	md_sql_bind_text (s, 4, f ? f->requester : NULL);
	sqlite3_bind_int64 (s, 5, f ? f->org_id : 0);
	sqlite3_bind_int64 (s, 6, f && f->limit > 0 ? f->limit : -1);
	sqlite3_bind_int (s, 7, f && f->with_due_at);
	md_sql_bind_text (s, 8, MD_STATUS_RESOLVED);
	sqlite3_bind_int (s, 9, f && f->open_only);
	md_sql_bind_text (s, 10, f ? f->assignee : NULL);
	sqlite3_bind_int64 (s, 11, f ? f->organization_id : 0);
	sqlite3_bind_int (s, 12, f && f->flagged_only);
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW)
		func (ticket_from_row (s), data);
	if (rc != SQLITE_DONE)
		md_store_set_error (store, error, "list tickets");
	sqlite3_reset (s);
	return rc == SQLITE_DONE;
}

gboolean
md_store_ticket_merge (MdStore *store, const MdTicket *source, const MdTicket *into, GError **error)
{
	static const char *const steps[] = {
		"UPDATE messages SET ticket_id = ?2 WHERE ticket_id = ?1",
		"UPDATE message_ids SET ticket_id = ?2 WHERE ticket_id = ?1",
		"INSERT OR IGNORE INTO participants (ticket_id, person_id) "
		"SELECT ?2, person_id FROM participants WHERE ticket_id = ?1 "
		"AND person_id IS NOT (SELECT requester_id FROM tickets WHERE id = ?2)",
		"INSERT OR IGNORE INTO participants (ticket_id, person_id) "
		"SELECT ?2, requester_id FROM tickets WHERE id = ?1 AND requester_id IS NOT NULL "
		"AND requester_id IS NOT (SELECT requester_id FROM tickets WHERE id = ?2)",
		"INSERT OR IGNORE INTO fields (ticket_id, name, value) SELECT ?2, name, value FROM fields WHERE ticket_id = ?1",
		/* one hop, always: what was merged into SOURCE now goes to INTO */
		"UPDATE tickets SET merged_into_id = ?2 WHERE merged_into_id = ?1 OR id = ?1",
	};
	for (gsize i = 0; i < G_N_ELEMENTS (steps); i++) {
		sqlite3_stmt *s = stmt (store, steps[i], error);
		if (!s)
			return FALSE;
		sqlite3_bind_int64 (s, 1, source->id);
		sqlite3_bind_int64 (s, 2, into->id);
		if (!md_sql_step_done (store, s, "merge tickets", error))
			return FALSE;
	}
	return TRUE;
}

static void
collect_ticket (MdTicket *t, gpointer list)
{
	g_ptr_array_add (list, t);
}

GPtrArray *
md_store_ticket_list (MdStore *store, const MdTicketFilter *f, GError **error)
{
	GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) md_ticket_free);
	if (!md_store_ticket_foreach (store, f, collect_ticket, list, error))
		g_clear_pointer (&list, g_ptr_array_unref);
	return list;
}

GArray *
md_store_requester_tickets (MdStore *store, gint64 requester_id, gint64 except, guint limit, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT id FROM tickets WHERE requester_id = ?1 AND id <> ?2 ORDER BY id DESC LIMIT ?3",
	                        error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, requester_id);
	sqlite3_bind_int64 (s, 2, except);
	sqlite3_bind_int64 (s, 3, limit);
	return md_sql_ids (store, s, "requester's tickets", error);
}

gboolean
md_store_participant_add (MdStore *store, gint64 ticket_id, gint64 person_id, GError **error)
{
	sqlite3_stmt *s = stmt (store, "INSERT OR IGNORE INTO participants (ticket_id, person_id) VALUES (?1, ?2)", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket_id);
	sqlite3_bind_int64 (s, 2, person_id);
	return md_sql_step_done (store, s, "add participant", error);
}

gboolean
md_store_is_participant (MdStore *store, gint64 ticket_id, const char *email)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT 1 FROM participants pa JOIN people p ON p.id = pa.person_id "
	                        "WHERE pa.ticket_id = ?1 AND p.email = ?2", NULL);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket_id);
	md_sql_bind_text (s, 2, email);
	return single_int (store, s, NULL) == 1;
}

GArray *
md_store_participations_end (MdStore *store, const char *email, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT pa.ticket_id FROM people p JOIN participants pa ON pa.person_id = p.id "
	                        "WHERE p.email = ?1 ORDER BY pa.ticket_id", error);
	if (!s)
		return NULL;
	md_sql_bind_text (s, 1, email);
	g_autoptr (GArray) ids = md_sql_ids (store, s, "participations", error);
	if (!ids || !(s = stmt (store, "DELETE FROM participants "
	                               "WHERE person_id = (SELECT id FROM people WHERE email = ?1)", error)))
		return NULL;
	md_sql_bind_text (s, 1, email);
	return md_sql_step_done (store, s, "end participations", error) ? g_steal_pointer (&ids) : NULL;
}

GPtrArray *
md_store_participants (MdStore *store, gint64 ticket_id, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT p.email FROM participants pa JOIN people p ON p.id = pa.person_id "
	                        "WHERE pa.ticket_id = ?1 ORDER BY p.id", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, ticket_id);
	return string_column (store, s, "participants", error);
}

/* ---- messages ---- */

static void
stored_attachment_free (MdStoredAttachment *a)
{
	g_free (a->filename);
	g_free (a->content_type);
	g_free (a->sha256);
	g_free (a);
}

void
md_stored_message_free (MdStoredMessage *m)
{
	if (!m)
		return;
	g_free (m->message_id);
	g_free (m->from_addr);
	g_free (m->from_name);
	g_free (m->subject);
	g_free (m->flag);
	g_free (m->body);
	g_free (m->full_text);
	g_free (m->raw_sha256);
	if (m->attachments)
		g_ptr_array_unref (m->attachments);
	g_free (m);
}

gboolean
md_store_message_insert (MdStore *store, MdStoredMessage *m, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "INSERT INTO messages (ticket_id, direction, message_id, from_addr, from_name, "
	                        "subject, internal, flag, body, full_text, raw_sha256, raw_size, created_at) "
	                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)", error);
	if (!s)
		return FALSE;
	bind_time (s, 1, m->ticket_id);
	md_sql_bind_text (s, 2, m->outgoing ? "out" : "in");
	md_sql_bind_text (s, 3, m->message_id);
	md_sql_bind_text (s, 4, m->from_addr);
	md_sql_bind_text (s, 5, m->from_name);
	md_sql_bind_text (s, 6, m->subject);
	sqlite3_bind_int (s, 7, m->internal);
	md_sql_bind_text (s, 8, m->flag);
	md_sql_bind_text (s, 9, m->body ? m->body : "");
	/* '' in full_text means "the same as body" (schema version 3): a
	 * new ticket's text is not trimmed, and storing it twice was a
	 * third of the database and a WAL page per message. */
	md_sql_bind_text (s, 10, m->full_text && g_strcmp0 (m->full_text, m->body) != 0 ? m->full_text : "");
	md_sql_bind_text (s, 11, m->raw_sha256);
	sqlite3_bind_int64 (s, 12, m->raw_size);
	sqlite3_bind_int64 (s, 13, m->created_at);
	if (!md_sql_step_done (store, s, "insert message", error))
		return FALSE;
	m->id = sqlite3_last_insert_rowid (store->db);

	for (guint i = 0; m->attachments && i < m->attachments->len; i++) {
		MdStoredAttachment *a = m->attachments->pdata[i];
		s = stmt (store,
		          "INSERT INTO attachments (message_id, filename, content_type, size, sha256, depth, inline) "
		          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", error);
		if (!s)
			return FALSE;
		sqlite3_bind_int64 (s, 1, m->id);
		md_sql_bind_text (s, 2, a->filename);
		md_sql_bind_text (s, 3, a->content_type);
		sqlite3_bind_int64 (s, 4, a->size);
		md_sql_bind_text (s, 5, a->sha256);
		sqlite3_bind_int (s, 6, a->depth);
		sqlite3_bind_int (s, 7, a->is_inline);
		if (!md_sql_step_done (store, s, "insert attachment", error))
			return FALSE;
	}
	if (m->message_id && m->ticket_id)
		return md_store_message_id_add (store, m->message_id, m->ticket_id, error);
	return TRUE;
}

static GPtrArray *
message_attachments (MdStore *store, gint64 message_row_id)
{
	GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) stored_attachment_free);
	sqlite3_stmt *s = stmt (store,
	                        "SELECT filename, content_type, size, sha256, depth, inline FROM attachments "
	                        "WHERE message_id = ? ORDER BY id", NULL);
	if (!s)
		return out;
	sqlite3_bind_int64 (s, 1, message_row_id);
	while (sqlite3_step (s) == SQLITE_ROW) {
		MdStoredAttachment *a = g_new0 (MdStoredAttachment, 1);
		a->filename = md_sql_col_text (s, 0);
		a->content_type = md_sql_col_text (s, 1);
		a->size = sqlite3_column_int64 (s, 2);
		a->sha256 = md_sql_col_text (s, 3);
		a->depth = sqlite3_column_int (s, 4);
		a->is_inline = sqlite3_column_int (s, 5);
		g_ptr_array_add (out, a);
	}
	sqlite3_reset (s);
	return out;
}

GPtrArray *
md_store_ticket_messages (MdStore *store, gint64 ticket_id, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT id, ticket_id, direction, message_id, from_addr, from_name, subject, "
	                        "internal, flag, body, full_text, raw_sha256, raw_size, created_at "
	                        "FROM messages WHERE ticket_id = ? ORDER BY id", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, ticket_id);
	GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) md_stored_message_free);
	while (sqlite3_step (s) == SQLITE_ROW) {
		MdStoredMessage *m = g_new0 (MdStoredMessage, 1);
		m->id = sqlite3_column_int64 (s, 0);
		m->ticket_id = sqlite3_column_int64 (s, 1);
		m->outgoing = g_strcmp0 ((const char *) sqlite3_column_text (s, 2), "out") == 0;
		m->message_id = md_sql_col_text (s, 3);
		m->from_addr = md_sql_col_text (s, 4);
		m->from_name = md_sql_col_text (s, 5);
		m->subject = md_sql_col_text (s, 6);
		m->internal = sqlite3_column_int (s, 7);
		m->flag = md_sql_col_text (s, 8);
		m->body = md_sql_col_text (s, 9);
		m->full_text = md_sql_col_text (s, 10);
		if (m->full_text && !*m->full_text) {
			g_free (m->full_text);
			m->full_text = g_strdup (m->body);
		}
		m->raw_sha256 = md_sql_col_text (s, 11);
		m->raw_size = sqlite3_column_int64 (s, 12);
		m->created_at = sqlite3_column_int64 (s, 13);
		g_ptr_array_add (out, m);
	}
	sqlite3_reset (s);
	/* Attachments after the loop: the message statement is not re-entrant. */
	for (guint i = 0; i < out->len; i++) {
		MdStoredMessage *m = out->pdata[i];
		m->attachments = message_attachments (store, m->id);
	}
	return out;
}

/* The first message and the newest MAX - 1, read as the newest MAX with
 * the first in place of the oldest when there are more: two walks of
 * messages_ticket instead of a UNION, whose temporary b-trees made it
 * the dearest statement of a new ticket (it runs for each of its mails). */
GPtrArray *
md_store_ticket_thread_ids (MdStore *store, gint64 ticket_id, guint max, gboolean customer_side, GError **error)
{
#define THREAD_MESSAGES "SELECT message_id FROM messages WHERE ticket_id = ?1 AND message_id IS NOT NULL " \
	"AND NOT internal AND (?3 = 0 OR direction = 'out' OR from_addr IS NULL " \
	"OR from_addr NOT IN (SELECT email FROM people WHERE is_agent)) ORDER BY id "
	guint keep = MAX (max, 2);
	sqlite3_stmt *s = stmt (store, THREAD_MESSAGES "DESC LIMIT ?2", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, ticket_id);
	sqlite3_bind_int (s, 2, (int) keep);
	sqlite3_bind_int (s, 3, customer_side);
	GPtrArray *ids = string_column (store, s, "thread ids", error);
	if (ids && ids->len == keep) {
		s = stmt (store, THREAD_MESSAGES "LIMIT 1", error);
		if (s) {
			sqlite3_bind_int64 (s, 1, ticket_id);
			sqlite3_bind_int (s, 3, customer_side);
		}
		g_autoptr (GPtrArray) first = s ? string_column (store, s, "thread ids", error) : NULL;
		if (!first) {
			g_ptr_array_unref (ids);
			return NULL;
		}
		if (first->len) {
			g_free (ids->pdata[keep - 1]);
			ids->pdata[keep - 1] = g_steal_pointer (&first->pdata[0]);
		}
	}
#undef THREAD_MESSAGES
	for (guint i = 0; ids && i < ids->len / 2; i++) {
		gpointer newer = ids->pdata[i];
		ids->pdata[i] = ids->pdata[ids->len - 1 - i];
		ids->pdata[ids->len - 1 - i] = newer;
	}
	return ids;
}

gint64
md_store_seen (MdStore *store, const char *dedupe_key, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT message_row_id FROM received WHERE dedupe_key = ?", error);
	if (!s)
		return 0;
	md_sql_bind_text (s, 1, dedupe_key);
	return single_int (store, s, error);
}

gint64
md_store_message_ticket (MdStore *store, gint64 message_row_id, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT ticket_id FROM messages WHERE id = ?", error);
	if (!s)
		return 0;
	sqlite3_bind_int64 (s, 1, message_row_id);
	return single_int (store, s, error);
}

gboolean
md_store_mark_seen (MdStore *store, const char *dedupe_key, gint64 message_row_id, GError **error)
{
	sqlite3_stmt *s = stmt (store, "INSERT OR IGNORE INTO received (dedupe_key, message_row_id) VALUES (?1, ?2)", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, dedupe_key);
	sqlite3_bind_int64 (s, 2, message_row_id);
	return md_sql_step_done (store, s, "mark received", error);
}

gint64
md_store_ticket_by_message_id (MdStore *store, const char *message_id, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT ticket_id FROM message_ids WHERE message_id = ?", error);
	if (!s)
		return 0;
	md_sql_bind_text (s, 1, message_id);
	return single_int (store, s, error);
}

gboolean
md_store_message_id_add (MdStore *store, const char *message_id, gint64 ticket_id, GError **error)
{
	sqlite3_stmt *s = stmt (store, "INSERT OR IGNORE INTO message_ids (message_id, ticket_id) VALUES (?1, ?2)", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, message_id);
	sqlite3_bind_int64 (s, 2, ticket_id);
	return md_sql_step_done (store, s, "record message-id", error);
}

/* ---- history ---- */

void
md_history_entry_free (MdHistoryEntry *h)
{
	if (!h)
		return;
	g_free (h->actor);
	g_free (h->field);
	g_free (h->old_value);
	g_free (h->new_value);
	g_free (h);
}

gboolean
md_store_history_add (MdStore *store, gint64 ticket_id, gint64 at, const char *actor, const char *field,
                      const char *old_value, const char *new_value, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "INSERT INTO history (ticket_id, at, actor, field, old_value, new_value) "
	                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket_id);
	sqlite3_bind_int64 (s, 2, at);
	md_sql_bind_text (s, 3, actor ? actor : "system");
	md_sql_bind_text (s, 4, field);
	md_sql_bind_text (s, 5, old_value);
	md_sql_bind_text (s, 6, new_value);
	return md_sql_step_done (store, s, "add history", error);
}

GPtrArray *
md_store_ticket_history (MdStore *store, gint64 ticket_id, GError **error)
{
	sqlite3_stmt *s = stmt (store,
	                        "SELECT at, actor, field, old_value, new_value FROM history "
	                        "WHERE ticket_id = ? ORDER BY id", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, ticket_id);
	GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) md_history_entry_free);
	while (sqlite3_step (s) == SQLITE_ROW) {
		MdHistoryEntry *h = g_new0 (MdHistoryEntry, 1);
		h->at = sqlite3_column_int64 (s, 0);
		h->actor = md_sql_col_text (s, 1);
		h->field = md_sql_col_text (s, 2);
		h->old_value = md_sql_col_text (s, 3);
		h->new_value = md_sql_col_text (s, 4);
		g_ptr_array_add (out, h);
	}
	sqlite3_reset (s);
	return out;
}

/* ---- fields and meta ---- */

gboolean
md_store_field_set (MdStore *store, gint64 ticket_id, const char *name, const char *value, GError **error)
{
	sqlite3_stmt *s = stmt (store, "INSERT OR REPLACE INTO fields (ticket_id, name, value) VALUES (?1, ?2, ?3)", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket_id);
	md_sql_bind_text (s, 2, name);
	md_sql_bind_text (s, 3, value);
	return md_sql_step_done (store, s, "set field", error);
}

GHashTable *
md_store_fields (MdStore *store, gint64 ticket_id, GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT name, value FROM fields WHERE ticket_id = ? ORDER BY name", error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, ticket_id);
	GHashTable *out = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	while (sqlite3_step (s) == SQLITE_ROW)
		g_hash_table_insert (out, md_sql_col_text (s, 0), md_sql_col_text (s, 1));
	sqlite3_reset (s);
	return out;
}

char *
md_store_meta_get (MdStore *store, const char *key)
{
	sqlite3_stmt *s = stmt (store, "SELECT value FROM meta WHERE key = ?", NULL);
	if (!s)
		return NULL;
	md_sql_bind_text (s, 1, key);
	char *v = sqlite3_step (s) == SQLITE_ROW ? md_sql_col_text (s, 0) : NULL;
	sqlite3_reset (s);
	return v;
}

gboolean
md_store_meta_set (MdStore *store, const char *key, const char *value, GError **error)
{
	sqlite3_stmt *s = stmt (store, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, key);
	md_sql_bind_text (s, 2, value);
	return md_sql_step_done (store, s, "set meta", error);
}

/* ---- imap state ---- */

gboolean
md_store_imap_state_get (MdStore *store, const char *mailbox, guint32 *uidvalidity_r, guint32 *last_uid_r,
                         GError **error)
{
	sqlite3_stmt *s = stmt (store, "SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox = ?", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, mailbox);
	int rc = sqlite3_step (s);
	*uidvalidity_r = rc == SQLITE_ROW ? (guint32) sqlite3_column_int64 (s, 0) : 0;
	*last_uid_r = rc == SQLITE_ROW ? (guint32) sqlite3_column_int64 (s, 1) : 0;
	sqlite3_reset (s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		md_store_set_error (store, error, "read imap state");
		return FALSE;
	}
	return TRUE;
}

gboolean
md_store_imap_state_set (MdStore *store, const char *mailbox, guint32 uidvalidity, guint32 last_uid, GError **error)
{
	sqlite3_stmt *s = stmt (store, "INSERT OR REPLACE INTO imap_state (mailbox, uidvalidity, last_uid)"
	                               " VALUES (?1, ?2, ?3)", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, mailbox);
	sqlite3_bind_int64 (s, 2, uidvalidity);
	sqlite3_bind_int64 (s, 3, last_uid);
	return md_sql_step_done (store, s, "write imap state", error);
}
