/* purge.c - md_purge_resolved and md_purge_person (purge.h): tickets
 * deleted a batch per transaction, a person's traces on other tickets
 * emptied a range of rows per transaction, then the files no row names
 * any more, noted in purge_files while their rows still existed.  A dry
 * run rolls each transaction back, and counts the files once at the end
 * from what its batches tallied (count_files). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "md.h"
#include "purge.h"
#include "sql.h"

/* Rows of messages (and of history) looked at per transaction when
 * looking for a person's messages on other tickets: no index holds
 * senders, and erasure is too rare to make every ingest pay for one. */
#define SCAN_CHUNK 10000

/* MAILDESK_PURGE_CRASH_AFTER=POINT makes the process die there, so the
 * tests can prove a rerun finishes the work: "rows" once a batch of
 * tickets committed (before any file goes), "unlink" once a file is
 * unlinked (before its note's deletion commits). */
static void
crash_hook (const char *point)
{
	const char *v = g_getenv ("MAILDESK_PURGE_CRASH_AFTER");
	if (v && !strcmp (v, point))
		_exit (MD_EX_SOFTWARE);
}

/* MAILDESK_PURGE_STOP_AFTER=snapshot stops the process (SIGSTOP) once
 * the files' snapshot is read, so a test can add a row naming a noted
 * file before the rest runs under the lock. */
static void
stop_hook (const char *point)
{
	const char *v = g_getenv ("MAILDESK_PURGE_STOP_AFTER");
	if (v && !strcmp (v, point))
		raise (SIGSTOP);
}

/* Runs SQL with ?1 = ID and ?2 = TEXT (when given) and ?3 = ID3; the
 * number of rows it changed, or -1. */
static gint64
exec3 (MdStore *store, const char *sql, gint64 id, const char *text, gint64 id3, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, sql, error);
	if (!s)
		return -1;
	sqlite3_bind_int64 (s, 1, id);
	md_sql_bind_text (s, 2, text);
	sqlite3_bind_int64 (s, 3, id3);
	if (!md_sql_step_done (store, s, "purge", error))
		return -1;
	return sqlite3_changes (md_store_db (store));
}

static gint64
exec_id (MdStore *store, const char *sql, gint64 id, GError **error)
{
	return exec3 (store, sql, id, NULL, 0, error);
}

/* The one integer SQL selects with ?1 = ID and ?2 = TEXT; -1 on error. */
static gint64
count (MdStore *store, const char *sql, gint64 id, const char *text, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, sql, error);
	if (!s)
		return -1;
	sqlite3_bind_int64 (s, 1, id);
	md_sql_bind_text (s, 2, text);
	if (sqlite3_step (s) != SQLITE_ROW) {
		md_store_set_error (store, error, "purge count");
		return -1;
	}
	return sqlite3_column_int64 (s, 0);
}

/* Adds the integer SQL selects (no parameters) to *TOTAL. */
static gboolean
add_count (MdStore *store, const char *sql, guint *total, GError **error)
{
	gint64 n = count (store, sql, 0, NULL, error);
	if (n < 0)
		return FALSE;
	*total += (guint) n;
	return TRUE;
}

#define COUNTS(field) G_STRUCT_OFFSET (MdPurgeStats, field)
#define UNCOUNTED (-1)

/* The ids of one batch (of tickets, or of rows on no ticket), in
 * temp.purge_batch: each statement below reads them all at once, so a
 * table with no index on its ticket column (message_ids, outbox; an
 * index there would cost every ingest) is read once per batch, not once
 * per ticket. */
#define BATCH "(SELECT id FROM temp.purge_batch)"

/* One note per file, however many rows named it. */
#define NOTE "INSERT OR IGNORE INTO purge_files (sha256, kind) "

/* A dry run's count of the rows SELECT (sha256, kind) names, per file:
 * each is a row the step's statements then delete or empty.  Every
 * batch of a dry run is rolled back, so no batch sees another's rows
 * gone; these counts, kept across the batches (temp.purge_tally), are
 * what says at the end whether a row is left naming a file (count_files). */
#define TALLY(select) "WITH noted (sha256, kind) AS (" select ") " \
	"SELECT sha256, kind, count(*) FROM noted GROUP BY sha256, kind"

/* A step noting the files SELECT names (sha256, kind), and tallying
 * them in a dry run. */
#define NOTES(select) { NOTE select, UNCOUNTED, TALLY (select) }

/* A message row made a tombstone: no ticket, no content. */
#define TOMBSTONE "UPDATE messages SET ticket_id = NULL, message_id = NULL, from_addr = NULL, from_name = NULL, " \
	"subject = NULL, flag = 'purged', body = '', full_text = '', raw_sha256 = NULL, raw_size = 0 "

/* Whether a message row is one a dedupe key names (see batch_deletes). */
#define RECEIVED "direction = 'in' AND (raw_sha256 IS NOT NULL OR message_id IS NOT NULL " \
	"OR id IN (SELECT message_row_id FROM received))"

/* A statement of a batch, the MdPurgeStats field the rows it changed
 * add to, and for a step noting files the dry run's TALLY of them. */
typedef struct {
	const char *sql;
	gssize counts;
	const char *tally;
} Step;

/* What goes with a batch of tickets, children before parents: purge's
 * connection checks no foreign key (begin_run), since each check would
 * read a whole table.  The batch's files are noted first, while rows
 * still name them.  A received message stays as a tombstone (no ticket,
 * no content) under its dedupe keys: the same mail redelivered is a
 * duplicate, not a new ticket.  Every other row goes, among them the
 * 'in' rows that were never received: replies written with `ticket
 * reply`, which have no dedupe key.  A received message has its raw
 * message or its Message-ID (its dedupe key is one of them), unless an
 * erasure emptied it; only then, for an 'in' row with neither, is
 * received read whole (no index of its row: one would cost every
 * ingest), at most once per batch and only when the batch has one. */
/* For a pass's query: a ticket the same pass purges anyway as the
 * duplicate of one it selects (its target m matches WHERE, m's columns
 * as m.*), taken along by batch_deletes, is not selected on its own too:
 * a dry run's batches are rolled back, and would count it twice when
 * the two fall in different batches.  One look-up by id per duplicate. */
#define NOT_TAKEN_ALONG(where) "(merged_into_id IS NULL OR NOT EXISTS (SELECT 1 FROM tickets m " \
	"WHERE m.id = tickets.merged_into_id AND " where "))"

static const Step batch_deletes[] = {
	/* A duplicate merged into a ticket of the batch goes with it: it
	 * holds no mail of its own, only the way on (merge.c), and left
	 * behind a reply to it would reopen an empty ticket; gone, the reply
	 * opens a new one, as one to the purged ticket's own address does.
	 * Merges are one hop: no duplicate was merged into a duplicate. */
	{ "INSERT OR IGNORE INTO temp.purge_batch (id) SELECT id FROM tickets INDEXED BY tickets_merged "
	  "WHERE merged_into_id IN " BATCH, UNCOUNTED },
	{ "DELETE FROM temp.purge_outbox", UNCOUNTED },
	/* outbox's one read per batch */
	{ "INSERT INTO temp.purge_outbox (id, raw_sha256, queued) SELECT id, raw_sha256, state = 'queued' "
	  "FROM outbox WHERE ticket_id IN " BATCH, UNCOUNTED },
	NOTES ("SELECT raw_sha256, 'raw' FROM messages WHERE ticket_id IN " BATCH " AND raw_sha256 IS NOT NULL"),
	NOTES ("SELECT a.sha256, 'blob' FROM temp.purge_batch b JOIN messages m ON m.ticket_id = b.id "
	       "JOIN attachments a ON a.message_id = m.id"),
	NOTES ("SELECT raw_sha256, 'raw' FROM temp.purge_outbox"),
	{ "DELETE FROM attachments WHERE message_id IN (SELECT m.id FROM temp.purge_batch b "
	  "JOIN messages m ON m.ticket_id = b.id)", COUNTS (attachments) },
	{ TOMBSTONE "WHERE ticket_id IN " BATCH " AND " RECEIVED, COUNTS (messages) },
	{ "DELETE FROM messages WHERE ticket_id IN " BATCH, COUNTS (messages) },
	/* message_ids' one read per batch */
	{ "DELETE FROM message_ids WHERE ticket_id IN " BATCH, UNCOUNTED },
	{ "DELETE FROM history WHERE ticket_id IN " BATCH, UNCOUNTED },
	{ "DELETE FROM timers WHERE ticket_id IN " BATCH, UNCOUNTED },
	{ "DELETE FROM participants WHERE ticket_id IN " BATCH, UNCOUNTED },
	{ "DELETE FROM fields WHERE ticket_id IN " BATCH, UNCOUNTED },
	{ "DELETE FROM outbox WHERE id IN (SELECT id FROM temp.purge_outbox)", COUNTS (outbox) },
	{ "UPDATE tickets SET linked_ticket_id = NULL WHERE linked_ticket_id IN " BATCH, UNCOUNTED },
	{ "DELETE FROM tickets WHERE id IN " BATCH, COUNTS (tickets) },
};

/* What goes with a batch of messages on no ticket (a #list answered
 * alone, mail the rules dropped, a delivery report that named no
 * ticket), as with a ticket's: their files noted, their attachments,
 * and the row but for the tombstone a dedupe key needs.  They have no
 * Message-ID rows: message_ids holds only what threads to a ticket. */
static const Step ticketless_deletes[] = {
	NOTES ("SELECT raw_sha256, 'raw' FROM messages WHERE id IN " BATCH " AND raw_sha256 IS NOT NULL"),
	NOTES ("SELECT sha256, 'blob' FROM attachments WHERE message_id IN " BATCH),
	{ "DELETE FROM attachments WHERE message_id IN " BATCH, COUNTS (attachments) },
	{ TOMBSTONE "WHERE id IN " BATCH " AND " RECEIVED, COUNTS (ticketless) },
	{ "DELETE FROM messages WHERE id IN " BATCH " AND flag IS NOT 'purged'", COUNTS (ticketless) },
};

/* What goes with a batch of outbox rows on no ticket (the answers to a
 * #list sent alone): the row, and its file once no row names it. */
static const Step ticketless_mail_deletes[] = {
	NOTES ("SELECT raw_sha256, 'raw' FROM outbox WHERE id IN " BATCH),
	{ "DELETE FROM outbox WHERE id IN " BATCH, COUNTS (outbox) },
};

/* A file's rows in a dry run's tally: minus the rows a batch took away
 * that named it, plus (count_files) the rows naming it at the end. */
typedef struct {
	char *sha256;
	char *kind;
	gint64 refs;
} Tally;

static void
tally_clear (Tally *t)
{
	g_free (t->sha256);
	g_free (t->kind);
}

/* A dry run's tally (free with g_array_unref), or NULL for a real run. */
static GArray *
tally_new (gboolean dry_run)
{
	if (!dry_run)
		return NULL;
	GArray *tally = g_array_new (FALSE, FALSE, sizeof (Tally));
	g_array_set_clear_func (tally, (GDestroyNotify) tally_clear);
	return tally;
}

/* One run: its counts and, in a dry run only, what its open
 * transaction tallied, to be kept past the rollback. */
typedef struct {
	MdPurgeStats *st;
	GArray *tally;  /* of Tally; NULL in a real run */
} Run;

/* IDS (at most a batch) into temp.purge_batch, on which run_steps
 * then runs STEPS, in the open transaction. */
static gboolean
fill_batch (MdStore *store, GArray *ids, GError **error)
{
	if (exec_id (store, "DELETE FROM temp.purge_batch", 0, error) < 0)
		return FALSE;
	for (guint i = 0; i < ids->len; i++)
		if (exec_id (store, "INSERT INTO temp.purge_batch (id) VALUES (?1)", g_array_index (ids, gint64, i),
		             error) < 0)
			return FALSE;
	return TRUE;
}

/* Appends to TALLY the rows the TALLY statement SQL selects, bound as
 * exec3 binds. */
static gboolean
tally_rows (MdStore *store, const char *sql, gint64 id, const char *text, gint64 id3, GArray *tally,
            GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, sql, error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, id);
	md_sql_bind_text (s, 2, text);
	sqlite3_bind_int64 (s, 3, id3);
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW) {
		Tally t = { md_sql_col_text (s, 0), md_sql_col_text (s, 1), -sqlite3_column_int64 (s, 2) };
		g_array_append_val (tally, t);
	}
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, "purge tally");
		return FALSE;
	}
	return TRUE;
}

/* Runs STEPS with ?1 = ID, ?2 = TEXT, ?3 = ID3 (those they use), a dry
 * run tallying the files a step notes before its rows go. */
static gboolean
run_steps (MdStore *store, const Step *steps, gsize n_steps, gint64 id, const char *text, gint64 id3, Run *run,
           GError **error)
{
	for (gsize i = 0; i < n_steps; i++) {
		if (run->tally && steps[i].tally &&
		    !tally_rows (store, steps[i].tally, id, text, id3, run->tally, error))
			return FALSE;
		gint64 n = exec3 (store, steps[i].sql, id, text, id3, error);
		if (n < 0)
			return FALSE;
		if (steps[i].counts != UNCOUNTED)
			G_STRUCT_MEMBER (guint, run->st, steps[i].counts) += (guint) n;
	}
	return TRUE;
}

static gboolean
run_batch_steps (MdStore *store, const Step *steps, gsize n_steps, Run *run, GError **error)
{
	return run_steps (store, steps, n_steps, 0, NULL, 0, run, error);
}

/* Deletes the messages on no ticket IDS, in the open transaction. */
static gboolean
delete_ticketless (MdStore *store, GArray *ids, Run *run, GError **error)
{
	return fill_batch (store, ids, error) &&
	       run_batch_steps (store, ticketless_deletes, G_N_ELEMENTS (ticketless_deletes), run, error);
}

/* Deletes the outbox rows on no ticket IDS, in the open transaction. */
static gboolean
delete_ticketless_mail (MdStore *store, GArray *ids, Run *run, GError **error)
{
	return fill_batch (store, ids, error) &&
	       add_count (store, "SELECT count(*) FROM outbox WHERE id IN " BATCH " AND state = 'queued'",
	                  &run->st->outbox_queued, error) &&
	       run_batch_steps (store, ticketless_mail_deletes, G_N_ELEMENTS (ticketless_mail_deletes), run, error);
}

/* Deletes the tickets IDS (at most a batch) in the open transaction. */
static gboolean
delete_tickets (MdStore *store, GArray *ids, Run *run, GError **error)
{
	return fill_batch (store, ids, error) &&
	       run_batch_steps (store, batch_deletes, G_N_ELEMENTS (batch_deletes), run, error) &&
	       add_count (store, "SELECT count(*) FROM temp.purge_outbox WHERE queued", &run->st->outbox_queued,
	                  error);
}

/* Which noted files a row names: temp.purge_notes holds the notes, and
 * each statement reads one table once for all of them ("all"), or only
 * the rows inserted after rowid ?1 ("since": a range of the rowid).  No
 * UPDATE ever sets these columns to a hash: a reference appears only
 * with a new row. */
#define MARK(kind, col, table, since) \
	"UPDATE temp.purge_notes SET referenced = 1 WHERE kind = '" kind "' AND sha256 IN (SELECT " col \
	" FROM " table " WHERE " since col " IN (SELECT sha256 FROM temp.purge_notes WHERE kind = '" kind "'))"
/* A dry run's count of the rows naming each noted file: one read of the
 * table for all of them, into its tally (count_files). */
#define COUNT_REFS(kind, col, table) \
	"INSERT INTO temp.purge_tally (sha256, kind, refs) SELECT " col ", '" kind "', count(*) FROM " table \
	" WHERE " col " IN (SELECT sha256 FROM temp.purge_notes WHERE kind = '" kind "') GROUP BY " col
#define REFERENCES(kind, col, table) { \
	"SELECT coalesce (max (rowid), 0) FROM " table, \
	MARK (kind, col, table, ""), \
	MARK (kind, col, table, "rowid > ?1 AND "), \
	COUNT_REFS (kind, col, table), \
}

static const struct {
	const char *max;
	const char *all;
	const char *since;
	const char *count;
} references[] = {
	REFERENCES ("raw", "raw_sha256", "messages"),
	REFERENCES ("blob", "sha256", "attachments"),
	REFERENCES ("raw", "raw_sha256", "outbox"),
};

/* The rowid up to which each table of references[] has been read. */
typedef struct {
	gint64 seen[G_N_ELEMENTS (references)];
} Seen;

/* Marks the notes a row names, reading each table WHOLE or only its rows
 * after SEEN; SEEN then holds each table's last row. */
static gboolean
mark_referenced (MdStore *store, gboolean whole, Seen *seen, GError **error)
{
	for (gsize i = 0; i < G_N_ELEMENTS (references); i++) {
		gint64 max = count (store, references[i].max, 0, NULL, error);
		if (max < 0 || exec_id (store, whole ? references[i].all : references[i].since, seen->seen[i], error) < 0)
			return FALSE;
		seen->seen[i] = max;
	}
	return TRUE;
}

/* The notes of purge_files, copied to temp.purge_notes, none referenced yet. */
static gboolean
copy_notes (MdStore *store, GError **error)
{
	return exec_id (store, "DELETE FROM temp.purge_notes", 0, error) >= 0 &&
	       exec_id (store, "INSERT INTO temp.purge_notes (sha256, kind) SELECT sha256, kind FROM purge_files", 0,
	                error) >= 0;
}

/* Ids of the next batch of rows to delete: SQL selects them with ?1 =
 * KEY and ?2 = the last id of the batch before; DELETE deletes them. */
typedef struct {
	const char *sql;
	gint64 key;
	gboolean (*delete) (MdStore *store, GArray *ids, Run *run, GError **error);
} BatchQuery;

static GArray *
next_batch (MdStore *store, const BatchQuery *q, gint64 after, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, q->sql, error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, q->key);
	sqlite3_bind_int64 (s, 2, after);
	return md_sql_ids (store, s, "purge select", error);
}

/* Ends a transaction: committed, or with DRY_RUN rolled back. */
static gboolean
finish (MdStore *store, gboolean ok, gboolean dry_run, GError **error)
{
	if (!ok || dry_run) {
		md_store_rollback (store);
		return ok;
	}
	return md_store_commit (store, error);
}

/* TALLY into temp.purge_tally, after the rollback that undid its batch:
 * a transaction of the temporary database alone, which takes no lock
 * of the desk's. */
static gboolean
keep_tally (MdStore *store, GArray *tally, GError **error)
{
	if (exec_id (store, "BEGIN", 0, error) < 0)
		return FALSE;
	gboolean ok = TRUE;
	for (guint i = 0; ok && i < tally->len; i++) {
		const Tally *t = &g_array_index (tally, Tally, i);
		g_autoptr (sqlite3_stmt) s = md_store_statement (store,
			"INSERT INTO temp.purge_tally (sha256, kind, refs) VALUES (?1, ?2, ?3)", error);
		ok = s != NULL;
		if (ok) {
			md_sql_bind_text (s, 1, t->sha256);
			md_sql_bind_text (s, 2, t->kind);
			sqlite3_bind_int64 (s, 3, t->refs);
			ok = md_sql_step_done (store, s, "purge tally", error);
		}
	}
	g_array_set_size (tally, 0);
	if (ok && exec_id (store, "COMMIT", 0, error) >= 0)
		return TRUE;
	md_store_rollback (store);
	return FALSE;
}

/* Ends a batch's transaction: committed, or in a dry run rolled back,
 * with what it tallied kept. */
static gboolean
end_batch (MdStore *store, gboolean ok, Run *run, GError **error)
{
	if (!run->tally)
		return finish (store, ok, FALSE, error);
	md_store_rollback (store);
	if (!ok)
		g_array_set_size (run->tally, 0);
	return ok && keep_tally (store, run->tally, error);
}

/* Deletes the rows Q selects (tickets, or rows on no ticket), a batch
 * per transaction; the batch is selected under the write lock, so a
 * ticket reopened a moment ago is not in it. */
static gboolean
purge_batches (MdStore *store, const BatchQuery *q, Run *run, GError **error)
{
	gint64 after = 0;
	for (;;) {
		if (!md_store_begin (store, error))
			return FALSE;
		g_autoptr (GArray) ids = next_batch (store, q, after, error);
		gboolean ok = ids != NULL && (!ids->len || q->delete (store, ids, run, error));
		if (!end_batch (store, ok, run, error))
			return FALSE;
		if (!run->tally && ids->len)
			crash_hook ("rows");
		if (ids->len < MD_PURGE_BATCH)
			return TRUE;
		after = g_array_index (ids, gint64, ids->len - 1);
	}
}

typedef enum { FILE_GONE, FILE_REMOVED, FILE_WAITING } FileFate;

/* Where remove_file moves a file before it goes: in the spool's tmp,
 * under a name of purge's own. */
static char *
aside_path (MdSpool *spool, MdSpoolKind kind, const char *sha)
{
	g_autofree char *name = g_strdup_printf ("purge.%s.%s", kind == MD_SPOOL_RAW ? "raw" : "blob", sha);
	return g_build_filename (md_spool_root (spool), "tmp", name, NULL);
}

/* Removes a spool file no row names.  It is moved aside first: a writer
 * storing the same bytes again right now renamed its copy into place
 * either before (then the file moved aside is fresh and goes back) or
 * after (a new file, left alone); the row naming it is committed later. */
static FileFate
remove_file (MdSpool *spool, MdSpoolKind kind, const char *sha, gint64 now)
{
	g_autofree char *path = md_spool_path (spool, kind, sha);
	g_autofree char *aside = aside_path (spool, kind, sha);
	struct stat st;

	if (rename (path, aside) < 0 && errno != ENOENT) {
		g_warning ("purge: cannot move %s aside: %s", path, g_strerror (errno));
		return FILE_WAITING;
	}
	if (lstat (aside, &st) < 0)
		return FILE_GONE;
	if (now - (gint64) st.st_mtime < MD_PURGE_FILE_GRACE) {
		if (rename (aside, path) < 0)
			g_warning ("purge: cannot move %s back: %s", path, g_strerror (errno));
		return FILE_WAITING;
	}
	return unlink (aside) == 0 ? FILE_REMOVED : FILE_WAITING;
}

/* A file named again after a crash left it moved aside goes back. */
static void
restore_aside (MdSpool *spool, MdSpoolKind kind, const char *sha)
{
	g_autofree char *path = md_spool_path (spool, kind, sha);
	g_autofree char *aside = aside_path (spool, kind, sha);
	if (g_file_test (aside, G_FILE_TEST_EXISTS) && rename (aside, path) < 0)
		g_warning ("purge: cannot move %s back: %s", path, g_strerror (errno));
}

/* What remove_file would make of the file now, changing nothing: a dry
 * run's answer.  Whichever of the file or a copy a crash left moved
 * aside is there is what remove_file would look at. */
static FileFate
file_fate (MdSpool *spool, MdSpoolKind kind, const char *sha, gint64 now)
{
	g_autofree char *path = md_spool_path (spool, kind, sha);
	g_autofree char *aside = aside_path (spool, kind, sha);
	struct stat st;

	if (lstat (path, &st) < 0 && lstat (aside, &st) < 0)
		return FILE_GONE;
	return now - (gint64) st.st_mtime < MD_PURGE_FILE_GRACE ? FILE_WAITING : FILE_REMOVED;
}

/* Adds to ST a file no row names, whose FATE it was, with the queued
 * message's outbox_blobs rows (BLOBS) that went with it. */
static void
count_fate (FileFate fate, gint64 blobs, MdPurgeStats *st)
{
	st->files += (guint) blobs + (fate == FILE_REMOVED);
	st->files_waiting += fate == FILE_WAITING;
}

/* A file noted in purge_files, and whether a row names it (again, or
 * still: a file two tickets shared). */
typedef struct {
	char *sha256;
	char *kind;
	gboolean referenced;
} Note;

static void
note_clear (Note *n)
{
	g_free (n->sha256);
	g_free (n->kind);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Note, note_clear)

/* Under the write lock: a file a row names stays, any other is removed
 * (a queued message's blob row with it); its note goes unless the file
 * was too recent to remove. */
static gboolean
reap_one (MdDesk *desk, MdStore *store, const Note *note, gint64 now, MdPurgeStats *st, GError **error)
{
	MdSpoolKind k = g_strcmp0 (note->kind, "blob") == 0 ? MD_SPOOL_BLOB : MD_SPOOL_RAW;
	FileFate fate = FILE_GONE;
	gint64 blobs = 0;

	if (!md_spool_name_is_valid (note->sha256)) {
		/* not a name the spool gives: nothing to remove */
	} else if (note->referenced) {
		restore_aside (desk->spool, k, note->sha256);
	} else {
		fate = remove_file (desk->spool, k, note->sha256, now);
		if (k == MD_SPOOL_RAW && fate != FILE_WAITING) {
			blobs = exec3 (store, "DELETE FROM outbox_blobs WHERE sha256 = ?2", 0, note->sha256, 0, error);
			if (blobs < 0)
				return FALSE;
		}
	}
	if (fate == FILE_REMOVED)
		crash_hook ("unlink");
	count_fate (fate, blobs, st);
	if (fate == FILE_WAITING)
		return TRUE;
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, "DELETE FROM purge_files WHERE sha256 = ?1 AND kind = ?2",
	                                                 error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, note->sha256);
	md_sql_bind_text (s, 2, note->kind);
	return md_sql_step_done (store, s, "purge note", error);
}

/* The next notes after AFTER (in key order), read under the lock. */
static GArray *
next_notes (MdStore *store, const Note *after, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT sha256, kind, referenced FROM temp.purge_notes "
		"WHERE (sha256, kind) > (?1, ?2) ORDER BY sha256, kind LIMIT " G_STRINGIFY (MD_PURGE_BATCH),
		error);
	if (!s)
		return NULL;
	md_sql_bind_text (s, 1, after->sha256);
	md_sql_bind_text (s, 2, after->kind);
	GArray *notes = g_array_new (FALSE, FALSE, sizeof (Note));
	g_array_set_clear_func (notes, (GDestroyNotify) note_clear);
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW) {
		Note n = {
			md_sql_col_text (s, 0),
			md_sql_col_text (s, 1),
			sqlite3_column_int (s, 2),
		};
		g_array_append_val (notes, n);
	}
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, "purge notes");
		g_array_unref (notes);
		return NULL;
	}
	return notes;
}

/* Outside the write lock, on one read snapshot: the notes, which of
 * them a row names (each table of references[] read once), and where
 * each table ended.  Serve goes on writing meanwhile. */
static gboolean
snapshot_notes (MdStore *store, Seen *seen, GError **error)
{
	if (exec_id (store, "BEGIN", 0, error) < 0)
		return FALSE;
	if (copy_notes (store, error) && mark_referenced (store, TRUE, seen, error) &&
	    exec_id (store, "COMMIT", 0, error) >= 0)
		return TRUE;
	md_store_rollback (store);
	return FALSE;
}

/* Every file noted in purge_files, a batch per transaction.  Under the
 * write lock, only the rows added since the snapshot are read (a range
 * of rowids): rows are deleted by purge alone, which runs one at a time
 * (begin_run), so a new row always has a rowid past the snapshot's.  A
 * file is unlinked before its note's deletion commits: a crash in
 * between leaves a note whose file is gone, which the next run drops. */
static gboolean
reap_files (MdDesk *desk, MdStore *store, MdPurgeStats *st, GError **error)
{
	g_auto (Note) after = { g_strdup (""), g_strdup (""), FALSE };
	gint64 now = g_get_real_time () / G_USEC_PER_SEC;
	Seen seen = { { 0 } };

	if (!snapshot_notes (store, &seen, error))
		return FALSE;
	stop_hook ("snapshot");
	for (;;) {
		if (!md_store_begin (store, error))
			return FALSE;
		gboolean ok = mark_referenced (store, FALSE, &seen, error);
		g_autoptr (GArray) notes = ok ? next_notes (store, &after, error) : NULL;
		ok = notes != NULL;
		for (guint i = 0; ok && i < notes->len; i++)
			ok = reap_one (desk, store, &g_array_index (notes, Note, i), now, st, error);
		if (!finish (store, ok, FALSE, error))
			return FALSE;
		if (notes->len < MD_PURGE_BATCH)
			return TRUE;
		Note *last = &g_array_index (notes, Note, notes->len - 1);
		note_clear (&after);
		after = (Note) { g_steal_pointer (&last->sha256), g_steal_pointer (&last->kind), FALSE };
	}
}

/* A dry run's files, once its batches are rolled back: those a real run
 * would find noted (by the batches, or by an earlier run, waiting) and
 * named by no row once the rows the batches tallied are gone, counted as
 * reap_one would count them.  The batches each started from the rows
 * as they were, so a file two of them shared, or one a batch shared
 * with rows of no batch, is decided here, not by either batch.  Each
 * table of references[] is read whole once, on a read snapshot, outside
 * the write lock (the transaction writes the temporary tables alone). */
static gboolean
count_files (MdDesk *desk, MdStore *store, MdPurgeStats *st, GError **error)
{
	gint64 now = g_get_real_time () / G_USEC_PER_SEC;
	if (exec_id (store, "BEGIN", 0, error) < 0)
		return FALSE;
	gboolean ok = exec_id (store, "INSERT INTO temp.purge_tally (sha256, kind, refs) "
	                       "SELECT sha256, kind, 0 FROM purge_files", 0, error) >= 0 &&
	              exec_id (store, "DELETE FROM temp.purge_notes", 0, error) >= 0 &&
	              exec_id (store, "INSERT OR IGNORE INTO temp.purge_notes (sha256, kind) "
	                       "SELECT sha256, kind FROM temp.purge_tally", 0, error) >= 0;
	for (gsize i = 0; ok && i < G_N_ELEMENTS (references); i++)
		ok = exec_id (store, references[i].count, 0, error) >= 0;
	g_autoptr (sqlite3_stmt) s = ok ? md_store_statement (store,
		"SELECT sha256, kind FROM temp.purge_tally GROUP BY sha256, kind HAVING sum (refs) <= 0", error) : NULL;
	ok = s != NULL;
	int rc = SQLITE_DONE;
	while (ok && (rc = sqlite3_step (s)) == SQLITE_ROW) {
		const char *sha = (const char *) sqlite3_column_text (s, 0);
		MdSpoolKind k = g_strcmp0 ((const char *) sqlite3_column_text (s, 1), "blob") == 0 ? MD_SPOOL_BLOB
		                                                                                 : MD_SPOOL_RAW;
		if (!md_spool_name_is_valid (sha))
			continue;
		FileFate fate = file_fate (desk->spool, k, sha, now);
		gint64 blobs = k == MD_SPOOL_RAW && fate != FILE_WAITING
		               ? count (store, "SELECT count(*) FROM outbox_blobs WHERE sha256 = ?2", 0, sha, error) : 0;
		ok = blobs >= 0;
		if (ok)
			count_fate (fate, blobs, st);
	}
	if (ok && rc != SQLITE_DONE) {
		md_store_set_error (store, error, "purge files");
		ok = FALSE;
	}
	g_clear_pointer (&s, md_store_statement_release);
	md_store_rollback (store);
	return ok && exec_id (store, "DELETE FROM temp.purge_tally", 0, error) >= 0;
}

/* Purge's connection for one run: no foreign key checks (every delete
 * goes children first, and a check of a child table with no index on
 * its key would read it whole); the temporary tables of the batches and
 * notes; and the lock that lets one purge run at a time, held until
 * end_run or exit.  The lock file sits beside the database, where no
 * cleaner goes: in the spool's tmp, whose cleaner removes what is a day
 * old, a purge that ran longer lost it to a second one.  -1 on error. */
static int
begin_run (MdDesk *desk, MdStore *store, GError **error)
{
	g_autofree char *path = g_build_filename (desk->conf->data_dir, "purge.lock", NULL);
	int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock (fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		g_set_error (error, MD_ERROR, e == EWOULDBLOCK ? MD_ERROR_DB_BUSY : MD_ERROR_IO,
		             e == EWOULDBLOCK ? "another purge is running (%s)" : "cannot lock %s: %s", path,
		             g_strerror (e));
		if (fd >= 0)
			close (fd);
		return -1;
	}
	if (sqlite3_exec (md_store_db (store),
	                  "PRAGMA foreign_keys = OFF;"
	                  "CREATE TEMP TABLE IF NOT EXISTS purge_batch (id INTEGER PRIMARY KEY);"
	                  "CREATE TEMP TABLE IF NOT EXISTS purge_outbox (id INTEGER PRIMARY KEY, raw_sha256 TEXT,"
	                  " queued INTEGER NOT NULL);"
	                  "CREATE TEMP TABLE IF NOT EXISTS purge_tally (sha256 TEXT NOT NULL, kind TEXT NOT NULL,"
	                  " refs INTEGER NOT NULL);"
	                  "DELETE FROM temp.purge_tally;"
	                  "CREATE TEMP TABLE IF NOT EXISTS purge_notes (sha256 TEXT NOT NULL, kind TEXT NOT NULL,"
	                  " referenced INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (sha256, kind)) WITHOUT ROWID;",
	                  NULL, NULL, NULL) != SQLITE_OK) {
		md_store_set_error (store, error, "purge setup");
		close (fd);
		return -1;
	}
	return fd;
}

static gboolean
end_run (MdStore *store, int lock, gboolean ok)
{
	sqlite3_exec (md_store_db (store), "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	close (lock);
	return ok;
}

gboolean
md_purge_resolved (MdDesk *desk, MdStore *store, gint64 before, gboolean dry_run, MdPurgeStats *stats,
                   GError **error)
{
	/* Rows on no ticket by when they came (or were queued): mail kept
	 * on no ticket, through the ticket index (its range of no ticket
	 * holds the tombstones too: read once per run, as the files' check
	 * reads all of messages), and the mail that answered it, on a read
	 * of outbox by rowid, once per run.  A merged duplicate, resolved
	 * by its merge, waits for the ticket it leads to: purged alone, it
	 * would send a reply to its address to a new ticket instead of the
	 * one still being worked on; it goes when that one does. */
	const BatchQuery passes[] = {
		{ "SELECT id FROM messages WHERE ticket_id IS NULL AND flag IS NOT 'purged' AND created_at < ?1 "
		  "AND id > ?2 ORDER BY id LIMIT " G_STRINGIFY (MD_PURGE_BATCH),
		  before, delete_ticketless },
		{ "SELECT id FROM outbox WHERE ticket_id IS NULL AND created_at < ?1 AND id > ?2 ORDER BY id LIMIT "
		  G_STRINGIFY (MD_PURGE_BATCH),
		  before, delete_ticketless_mail },
		{ "SELECT id FROM tickets WHERE status = '" MD_STATUS_RESOLVED "' AND resolved_at > 0 "
		  "AND resolved_at < ?1 AND id > ?2 AND " NOT_TAKEN_ALONG ("1") " ORDER BY id LIMIT "
		  G_STRINGIFY (MD_PURGE_BATCH),
		  before, delete_tickets },
	};
	memset (stats, 0, sizeof *stats);
	int lock = begin_run (desk, store, error);
	if (lock < 0)
		return FALSE;
	g_autoptr (GArray) tally = tally_new (dry_run);
	Run run = { stats, tally };
	gboolean ok = TRUE;
	for (gsize i = 0; ok && i < G_N_ELEMENTS (passes); i++)
		ok = purge_batches (store, &passes[i], &run, error);
	ok = ok && (dry_run ? count_files (desk, store, stats, error) : reap_files (desk, store, stats, error));
	return end_run (store, lock, ok);
}

/* The messages EMAIL sent to tickets other than their own (what they
 * wrote to another's shared ticket, notes flagged "unverified sender")
 * keep their place in the thread with the content gone; their name
 * leaves the history.  ?1 = the first id of the range, ?2 = EMAIL, ?3 =
 * the person's id. */
#define RANGE_FROM "id >= ?1 AND id < ?1 + " G_STRINGIFY (SCAN_CHUNK) " AND from_addr = ?2 COLLATE NOCASE "
#define THEIRS RANGE_FROM "AND ticket_id NOT IN (SELECT id FROM tickets WHERE requester_id = ?3)"

/* Their messages on no ticket (a #list sent alone, mail the rules
 * dropped) have no thread to keep a place in: they go as retention
 * takes them (ticketless_deletes), into temp.purge_batch first. */
#define THEIRS_ON_NO_TICKET "INSERT INTO temp.purge_batch (id) SELECT id FROM messages WHERE " RANGE_FROM \
	"AND ticket_id IS NULL"

static const Step message_redactions[] = {
	NOTES ("SELECT raw_sha256, 'raw' FROM messages WHERE " THEIRS " AND raw_sha256 IS NOT NULL"),
	NOTES ("SELECT sha256, 'blob' FROM attachments WHERE message_id IN (SELECT id FROM messages WHERE " THEIRS ")"),
	{ "DELETE FROM attachments WHERE message_id IN (SELECT id FROM messages WHERE " THEIRS ")",
	  COUNTS (attachments) },
	{ "UPDATE messages SET from_addr = NULL, from_name = NULL, subject = NULL, "
	  "body = '[erased on request]', full_text = '', raw_sha256 = NULL, raw_size = 0 WHERE " THEIRS,
	  COUNTS (redacted) },
	{ "UPDATE history SET actor = 'erased' WHERE id >= ?1 AND id < ?1 + " G_STRINGIFY (SCAN_CHUNK)
	  " AND actor = ?2 COLLATE NOCASE", UNCOUNTED },
};

static gboolean
redact_messages (MdStore *store, const MdPerson *p, Run *run, GError **error)
{
	gint64 last = count (store, "SELECT max(coalesce((SELECT max(id) FROM messages), 0), "
	                     "coalesce((SELECT max(id) FROM history), 0))", 0, NULL, error);
	if (last < 0)
		return FALSE;
	for (gint64 from = 0; from <= last; from += SCAN_CHUNK) {
		if (!md_store_begin (store, error))
			return FALSE;
		gboolean ok = exec_id (store, "DELETE FROM temp.purge_batch", 0, error) >= 0 &&
		              exec3 (store, THEIRS_ON_NO_TICKET, from, p->email, 0, error) >= 0 &&
		              run_batch_steps (store, ticketless_deletes, G_N_ELEMENTS (ticketless_deletes), run, error) &&
		              run_steps (store, message_redactions, G_N_ELEMENTS (message_redactions), from, p->email, p->id,
		                         run, error);
		if (!end_batch (store, ok, run, error))
			return FALSE;
	}
	return TRUE;
}

/* Mail to the person (addressed as the ticket knew them, mostly
 * lowercase) on tickets not theirs: a dry run still has its own and has
 * counted their mail.  ?1 = their id, ?2 = their address. */
#define TO_THEM "rcpt_to IN (?2, lower (?2)) " \
	"AND (ticket_id IS NULL OR ticket_id NOT IN (SELECT id FROM tickets WHERE requester_id = ?1))"

/* The person's own rows, and mail to them. */
static const Step person_deletes[] = {
	NOTES ("SELECT raw_sha256, 'raw' FROM outbox WHERE " TO_THEM),
	{ "DELETE FROM outbox WHERE " TO_THEM, COUNTS (outbox) },
	{ "DELETE FROM participants WHERE person_id = ?1", UNCOUNTED },
	{ "DELETE FROM memberships WHERE person_id = ?1", UNCOUNTED },
	{ "UPDATE tickets SET assignee_id = NULL WHERE assignee_id = ?1", UNCOUNTED },
	{ "DELETE FROM people WHERE id = ?1", COUNTS (people) },  /* last: a dry run stops before it */
};

/* In one transaction with the deletion of any ticket they opened since
 * the batches ran (the row is gone only with all of them). */
static gboolean
forget_person (MdStore *store, const MdPerson *p, const BatchQuery *theirs, Run *run, GError **error)
{
	gboolean dry_run = run->tally != NULL;
	if (!md_store_begin (store, error))
		return FALSE;
	/* A dry run's batches were rolled back: their tickets are counted
	 * already, and still name the person, whose row then stays. */
	g_autoptr (GArray) ids = dry_run ? g_array_new (FALSE, FALSE, sizeof (gint64))
	                                 : next_batch (store, theirs, 0, error);
	gboolean ok = ids != NULL && (!ids->len || delete_tickets (store, ids, run, error));
	gint64 queued = ok ? count (store, "SELECT count(*) FROM outbox WHERE " TO_THEM " AND state = 'queued'",
	                            p->id, p->email, error) : -1;
	ok = queued >= 0;
	if (ok)
		run->st->outbox_queued += (guint) queued;
	gsize n_deletes = G_N_ELEMENTS (person_deletes) - (dry_run ? 1 : 0);
	run->st->people += dry_run && p->id;
	ok = ok && run_steps (store, person_deletes, n_deletes, p->id, p->email, 0, run, error);
	return end_batch (store, ok, run, error);
}

static gboolean
is_agent (MdDesk *desk, const MdPerson *p)
{
	for (char **a = desk->conf->agents; a && *a; a++)
		if (g_ascii_strcasecmp (*a, p->email) == 0)
			return TRUE;
	return p->is_agent;
}

/* P's rows (P's id is 0 when they have no record), then the files no
 * row names. */
static gboolean
erase (MdDesk *desk, MdStore *store, const MdPerson *p, gboolean dry_run, MdPurgeStats *st, GError **error)
{
	g_autoptr (GArray) tally = tally_new (dry_run);
	Run run = { st, tally };
	const BatchQuery theirs = {
		"SELECT id FROM tickets WHERE requester_id = ?1 AND id > ?2 AND " NOT_TAKEN_ALONG ("m.requester_id = ?1")
		" ORDER BY id LIMIT " G_STRINGIFY (MD_PURGE_BATCH),
		p->id, delete_tickets,
	};
	if (!purge_batches (store, &theirs, &run, error) ||
	    !redact_messages (store, p, &run, error) ||
	    !forget_person (store, p, &theirs, &run, error))
		return FALSE;
	return dry_run ? count_files (desk, store, st, error) : reap_files (desk, store, st, error);
}

gboolean
md_purge_person (MdDesk *desk, MdStore *store, const char *email, gboolean dry_run, MdPurgeStats *stats,
                 GError **error)
{
	GError *local = NULL;
	memset (stats, 0, sizeof *stats);
	g_autoptr (MdPerson) p = md_store_person_find (store, email, &local);
	if (!p && !g_error_matches (local, MD_ERROR, MD_ERROR_NOT_FOUND)) {
		g_propagate_error (error, local);
		return FALSE;
	}
	g_clear_error (&local);
	if (!p) {
		/* No record (who never opened a ticket nor took part in one:
		 * a #list sent alone, mail the rules dropped) is no reason to
		 * keep what they sent or were sent. */
		p = g_new0 (MdPerson, 1);
		p->email = g_strdup (email);
	}
	if (is_agent (desk, p)) {
		g_set_error (error, MD_ERROR, MD_ERROR_DENIED,
		             "%s is an agent: remove them from the agents first (agent remove, or [desk] agents)", p->email);
		return FALSE;
	}
	int lock = begin_run (desk, store, error);
	if (lock < 0)
		return FALSE;
	return end_run (store, lock, erase (desk, store, p, dry_run, stats, error));
}
