/* outbox.c - the outbox table and its sender: queueing one row per
 * recipient, claiming due rows, sending each through smtp.c, recording
 * the outcome, and the background thread of `serve`.
 *
 * Every write here is a few short statements (or one savepoint for a
 * queueing), so the sender never holds the database while it talks to
 * the SMTP server and never blocks ingest for longer than a few row
 * updates.  `outbox flush` claims each row just before its send and
 * writes its outcome just after, so what the server accepted is marked
 * sent at once; serve's sender, which waits its turn behind the writer
 * for every write, claims a batch at a time and writes outcomes as soon
 * as no one else wants the turn (see Flush). */
#include "config.h"

#include <sqlite3.h>
#include <string.h>

#include "md.h"
#include "outbox.h"
#include "outgoing.h"
#include "smtp.h"
#include "sql.h"

/* A claimed row is not due again for this long: longer than the longest
 * transfer smtp.c allows (an hour, connecting included), so only a
 * crashed sender's rows come back.  The claim covers one send: a row is
 * claimed just before it goes and released by the write of its outcome.
 * (A claim on a whole batch ran out while the batch's later rows were
 * still being sent, and another flusher sent them again.) */
#define CLAIM_SECONDS (65 * 60)
#define BACKOFF_FIRST 60
#define BACKOFF_MAX 3600
#define BATCH 64
#define SENDER_POLL_SECONDS 30
#define ADDRESS_MAX 320
#define SMTP_IDLE_SECONDS 20    /* an open connection to the relay is reused this long */

/* ---- queueing ---- */

/* An envelope address goes on an SMTP command line as <ADDR>: nothing
 * that could end the line or the brackets (RFC 5321 4.1.2). */
static gboolean
envelope_address_ok (const char *a, gboolean may_be_empty)
{
	if (!a || !*a)
		return may_be_empty && a;
	if (strlen (a) > ADDRESS_MAX || !strchr (a, '@'))
		return FALSE;
	for (const unsigned char *p = (const unsigned char *) a; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
			return FALSE;
	return TRUE;
}

static gboolean
validate (const char *kind, const char *mail_from, const char *const *rcpts, const char *raw_sha256,
          const char *message_id, GError **error)
{
	const char *bad = NULL;
	if (!kind || !*kind)
		bad = "empty kind";
	else if (!envelope_address_ok (mail_from, TRUE))
		bad = "bad sender address";
	else if (!md_spool_name_is_valid (raw_sha256))
		bad = "bad spool hash";
	else if (!message_id || !*message_id || strpbrk (message_id, "\r\n"))
		bad = "bad Message-ID";
	else if (!rcpts || !rcpts[0])
		bad = "no recipients";
	else if (g_strv_length ((char **) rcpts) > MD_OUTBOX_MAX_RCPTS)
		bad = "too many recipients";
	for (guint i = 0; !bad && rcpts[i]; i++)
		if (!envelope_address_ok (rcpts[i], FALSE))
			bad = "bad recipient address";
	if (bad) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "outbox: %s", bad);
		return FALSE;
	}
	return TRUE;
}

static gboolean
insert_rows (MdStore *store, gint64 ticket_id, const char *kind, const char *mail_from,
             const char *const *rcpts, const char *raw_sha256, const char *message_id, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"INSERT INTO outbox (ticket_id, kind, mail_from, rcpt_to, message_id, raw_sha256, "
		"next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)", error);
	if (!s)
		return FALSE;
	g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	gint64 now = md_now ();
	for (guint i = 0; rcpts[i]; i++) {
		if (!g_hash_table_add (seen, g_ascii_strdown (rcpts[i], -1)))
			continue;
		sqlite3_reset (s);
		if (ticket_id)
			sqlite3_bind_int64 (s, 1, ticket_id);
		else
			sqlite3_bind_null (s, 1);
		md_sql_bind_text (s, 2, kind);
		md_sql_bind_text (s, 3, mail_from);
		md_sql_bind_text (s, 4, rcpts[i]);
		md_sql_bind_text (s, 5, message_id);
		md_sql_bind_text (s, 6, raw_sha256);
		sqlite3_bind_int64 (s, 7, now);
		if (!md_sql_step_done (store, s, "outbox", error))
			return FALSE;
	}
	return TRUE;
}

gboolean
md_outbox_enqueue (MdStore *store, gint64 ticket_id, const char *kind, const char *mail_from,
                   const char *const *rcpts, const char *raw_sha256, const char *message_id, GError **error)
{
	sqlite3 *db = md_store_db (store);

	if (!validate (kind, mail_from, rcpts, raw_sha256, message_id, error))
		return FALSE;
	/* all recipients or none, with or without the caller's transaction:
	 * one recipient is one INSERT, atomic by itself */
	if (!rcpts[1])
		return insert_rows (store, ticket_id, kind, mail_from, rcpts, raw_sha256, message_id, error);
	if (sqlite3_exec (db, "SAVEPOINT outbox_enqueue", NULL, NULL, NULL) != SQLITE_OK) {
		md_store_set_error (store, error, "outbox savepoint");
		return FALSE;
	}
	if (!insert_rows (store, ticket_id, kind, mail_from, rcpts, raw_sha256, message_id, error)) {
		sqlite3_exec (db, "ROLLBACK TO outbox_enqueue", NULL, NULL, NULL);
		sqlite3_exec (db, "RELEASE outbox_enqueue", NULL, NULL, NULL);
		return FALSE;
	}
	if (sqlite3_exec (db, "RELEASE outbox_enqueue", NULL, NULL, NULL) != SQLITE_OK) {
		md_store_set_error (store, error, "outbox release");
		return FALSE;
	}
	return TRUE;
}

gboolean
md_outbox_enqueue_bytes (MdStore *store, gint64 ticket_id, const char *kind, const char *mail_from,
                         const char *const *rcpts, GBytes *raw, const char *message_id, GError **error)
{
	gsize len = 0;
	const guchar *data = g_bytes_get_data (raw, &len);
	g_autofree char *sha = md_sha256_hex (data, len);
	sqlite3_stmt *s = md_store_statement (store, "INSERT OR IGNORE INTO outbox_blobs (sha256, raw) VALUES (?1, ?2)",
	                                      error);

	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, sha);
	sqlite3_bind_blob (s, 2, data, (int) len, SQLITE_STATIC);  /* RAW outlives the step, as for md_sql_bind_text */
	if (!md_sql_step_done (store, s, "queue message", error))
		return FALSE;
	return md_outbox_enqueue (store, ticket_id, kind, mail_from, rcpts, sha, message_id, error);
}

/* The bytes of a message queued with md_outbox_enqueue_bytes, or NULL
 * (then it is a spool file).  Free with g_bytes_unref. */
static GBytes *
queued_bytes (MdStore *store, const char *sha)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, "SELECT raw FROM outbox_blobs WHERE sha256 = ?", NULL);
	if (!s)
		return NULL;
	md_sql_bind_text (s, 1, sha);
	if (sqlite3_step (s) != SQLITE_ROW)
		return NULL;
	return g_bytes_new (sqlite3_column_blob (s, 0), (gsize) sqlite3_column_bytes (s, 0));
}

guint
md_outbox_count_recent (MdStore *store, const char *rcpt, const char *kind, gint64 since)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT count(*) FROM outbox WHERE rcpt_to = ?1 AND kind = ?2 AND created_at >= ?3", NULL);
	if (!s)
		return 0;
	md_sql_bind_text (s, 1, rcpt);
	md_sql_bind_text (s, 2, kind);
	sqlite3_bind_int64 (s, 3, since);
	return sqlite3_step (s) == SQLITE_ROW ? (guint) sqlite3_column_int64 (s, 0) : 0;
}

gboolean
md_outbox_mailed (MdStore *store, gint64 ticket_id, const char *rcpt, GError **error)
{
	/* Addresses are queued as the ticket knows them, mostly lowercase. */
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT 1 FROM outbox WHERE rcpt_to IN (?1, lower(?1)) AND ticket_id = ?2 LIMIT 1", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, rcpt);
	sqlite3_bind_int64 (s, 2, ticket_id);
	int rc = sqlite3_step (s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		md_store_set_error (store, error, "outbox recipients");
		return FALSE;
	}
	return rc == SQLITE_ROW;
}

gint64
md_outbox_retry (MdStore *store, const gint64 *ids, gint64 now, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ?1, created_at = ?1 "
		"WHERE state = 'failed' AND (?2 IS NULL OR id = ?2)", error);
	if (!s || !md_store_begin (store, error))
		return -1;
	gint64 changed = 0;
	for (guint i = 0; !ids || ids[i]; i++) {
		sqlite3_bind_int64 (s, 1, now);
		if (ids)
			sqlite3_bind_int64 (s, 2, ids[i]);
		else
			sqlite3_bind_null (s, 2);
		if (!md_sql_step_done (store, s, "outbox", error)) {
			md_store_rollback (store);
			return -1;
		}
		changed += sqlite3_changes (md_store_db (store));
		if (!ids)
			break;
	}
	return md_store_commit (store, error) ? changed : -1;
}

/* ---- listing ---- */

void
md_outbox_entry_free (MdOutboxEntry *e)
{
	if (!e)
		return;
	g_free (e->kind);
	g_free (e->mail_from);
	g_free (e->rcpt_to);
	g_free (e->message_id);
	g_free (e->raw_sha256);
	g_free (e->state);
	g_free (e->last_error);
	g_free (e);
}

static MdOutboxEntry *
entry_from_row (sqlite3_stmt *s)
{
	MdOutboxEntry *e = g_new0 (MdOutboxEntry, 1);
	e->id = sqlite3_column_int64 (s, 0);
	e->ticket_id = sqlite3_column_int64 (s, 1);
	e->kind = md_sql_col_text (s, 2);
	e->mail_from = md_sql_col_text (s, 3);
	e->rcpt_to = md_sql_col_text (s, 4);
	e->message_id = md_sql_col_text (s, 5);
	e->raw_sha256 = md_sql_col_text (s, 6);
	e->state = md_sql_col_text (s, 7);
	e->attempts = sqlite3_column_int (s, 8);
	e->next_attempt_at = sqlite3_column_int64 (s, 9);
	e->last_error = md_sql_col_text (s, 10);
	e->created_at = sqlite3_column_int64 (s, 11);
	e->sent_at = sqlite3_column_int64 (s, 12);
	return e;
}

#define ENTRY_COLUMNS "id, ticket_id, kind, mail_from, rcpt_to, message_id, raw_sha256, state, " \
	"attempts, next_attempt_at, last_error, created_at, sent_at"

gboolean
md_outbox_foreach (MdStore *store, const char *state, MdOutboxFunc func, gpointer data, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT " ENTRY_COLUMNS " FROM outbox WHERE ?1 IS NULL OR state = ?1 ORDER BY id", error);
	if (!s)
		return FALSE;
	md_sql_bind_text (s, 1, state);
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW)
		func (entry_from_row (s), data);
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, "outbox list");
		return FALSE;
	}
	return TRUE;
}

static void
collect_entry (MdOutboxEntry *e, gpointer list)
{
	g_ptr_array_add (list, e);
}

GPtrArray *
md_outbox_list (MdStore *store, const char *state, GError **error)
{
	g_autoptr (GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify) md_outbox_entry_free);
	if (!md_outbox_foreach (store, state, collect_entry, list, error))
		return NULL;
	return g_steal_pointer (&list);
}

/* ---- sending ---- */

/* Due rows after AFTER_ID, oldest first. */
static GPtrArray *
due_batch (MdStore *store, gint64 now, gint64 after_id, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		/* The partial index holds only queued rows: the cost is the due
		 * work, not the history of everything ever sent. */
		"SELECT " ENTRY_COLUMNS " FROM outbox INDEXED BY outbox_due WHERE state = 'queued' "
		"AND next_attempt_at <= ?1 AND id > ?2 ORDER BY id LIMIT " G_STRINGIFY (BATCH), error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, now);
	sqlite3_bind_int64 (s, 2, after_id);
	g_autoptr (GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify) md_outbox_entry_free);
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW)
		g_ptr_array_add (list, entry_from_row (s));
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, "outbox due");
		return NULL;
	}
	return g_steal_pointer (&list);
}

/* Takes the row, if still queued and due at NOW, for this sender until
 * UNTIL: another flusher sees it not due.  FALSE without ERROR when
 * another sender has it or has sent it. */
static gboolean
claim (MdStore *store, gint64 id, gint64 now, gint64 until, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"UPDATE outbox SET next_attempt_at = ?1 WHERE id = ?2 AND state = 'queued' AND next_attempt_at <= ?3",
		error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, until);
	sqlite3_bind_int64 (s, 2, id);
	sqlite3_bind_int64 (s, 3, now);
	return md_sql_step_done (store, s, "outbox", error) && sqlite3_changes (md_store_db (store)) == 1;
}

static void
unclaim (MdStore *store, const MdOutboxEntry *e)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, "UPDATE outbox SET next_attempt_at = ?1 WHERE id = ?2", NULL);
	if (!s)
		return;
	sqlite3_bind_int64 (s, 1, e->next_attempt_at);
	sqlite3_bind_int64 (s, 2, e->id);
	sqlite3_step (s);
}

static gint64
backoff (int attempts)
{
	int doublings = CLAMP (attempts - 1, 0, 16);
	return MIN ((gint64) BACKOFF_FIRST << doublings, BACKOFF_MAX);
}

/* Writes the outcome of one attempt and counts it. */
static gboolean
record (MdStore *store, const MdOutboxEntry *e, MdSmtpOutcome outcome, const char *reply, gint64 now,
        MdOutboxStats *stats, GError **error)
{
	int attempts = e->attempts + 1;
	g_autofree char *gave_up = NULL;
	g_autoptr (sqlite3_stmt) s = NULL;

	if (outcome != MD_SMTP_SENT && outcome != MD_SMTP_PERMANENT && now - e->created_at >= MD_OUTBOX_GIVE_UP_AFTER) {
		gave_up = g_strdup_printf ("gave up after %d attempts over %" G_GINT64_FORMAT " hours: %s", attempts,
		                           (now - e->created_at) / 3600, reply);
		reply = gave_up;
		outcome = MD_SMTP_PERMANENT;
	}
	switch (outcome) {
	case MD_SMTP_SENT:
		s = md_store_statement (store, "UPDATE outbox SET state = 'sent', attempts = ?1, sent_at = ?2, last_error = NULL "
		                        "WHERE id = ?3", error);
		break;
	case MD_SMTP_PERMANENT:
		/* state = 'queued': what another sender got accepted stays sent */
		s = md_store_statement (store, "UPDATE outbox SET state = 'failed', attempts = ?1, next_attempt_at = ?2, "
		                        "last_error = ?4 WHERE id = ?3 AND state = 'queued'", error);
		break;
	case MD_SMTP_TEMPORARY:
	case MD_SMTP_UNREACHABLE:
		s = md_store_statement (store, "UPDATE outbox SET attempts = ?1, next_attempt_at = ?2, last_error = ?4 "
		                        "WHERE id = ?3 AND state = 'queued'", error);
		break;
	}
	if (!s)
		return FALSE;
	gint64 when = (outcome == MD_SMTP_TEMPORARY || outcome == MD_SMTP_UNREACHABLE) ? now + backoff (attempts) : now;
	sqlite3_bind_int (s, 1, attempts);
	sqlite3_bind_int64 (s, 2, when);
	sqlite3_bind_int64 (s, 3, e->id);
	if (outcome != MD_SMTP_SENT)
		md_sql_bind_text (s, 4, reply);
	if (!md_sql_step_done (store, s, "outbox", error))
		return FALSE;

	const char *event = outcome == MD_SMTP_SENT ? "sent" : outcome == MD_SMTP_PERMANENT ? "failed" : "deferred";
	g_info ("outbox %s id=%" G_GINT64_FORMAT " to=%s attempts=%d reply=\"%s\"", event, e->id, e->rcpt_to,
	        attempts, reply);
	if (outcome == MD_SMTP_SENT)
		stats->sent++;
	else if (outcome == MD_SMTP_PERMANENT)
		stats->failed++;
	else
		stats->deferred++;
	return TRUE;
}

typedef struct {
	MdOutboxEntry *entry;
	MdSmtpOutcome outcome;
	char *reply;
} Attempt;

static void
attempt_clear (gpointer data)
{
	g_free (((Attempt *) data)->reply);
}

/* A queued spec becomes the message it describes (outgoing.h); other
 * bytes stay as they are.  FALSE when it cannot be composed, with A's
 * outcome saying whether to try again: an attachment file that cannot
 * be read may be back later, a damaged spec never will. */
static gboolean
compose_queued (GBytes **bytes, Attempt *a)
{
	g_autoptr (GError) error = NULL;
	if (!*bytes || !md_outgoing_is_spec (*bytes))
		return TRUE;
	GBytes *composed = md_outgoing_compose (*bytes, &error);
	if (!composed) {
		a->outcome = g_error_matches (error, MD_ERROR, MD_ERROR_IO) ? MD_SMTP_TEMPORARY : MD_SMTP_PERMANENT;
		a->reply = g_strdup_printf ("cannot compose: %s", error->message);
		return FALSE;
	}
	g_bytes_unref (*bytes);
	*bytes = composed;
	return TRUE;
}

/* The flush's own clock: NOW when it started, plus the time it has run.
 * A claim made an hour into a flush must last an hour from then. */
static gint64
flush_clock (gint64 now, gint64 started_us)
{
	return now + (g_get_monotonic_time () - started_us) / G_USEC_PER_SEC;
}

/* One flush: what it has claimed and what it has tried.
 *
 * A row is claimed before its send and its outcome written after, each
 * write a transaction.  A flusher of its own (`outbox flush`) claims one
 * row at a time and writes each outcome at once.  serve's sender shares
 * the write turn with the writer (turn.h), which under load always has a
 * batch in progress: a write per row and per outcome would wait for one
 * of the writer's commits each, and the sender would fall behind the
 * mail it must send.  So while the turn is wanted by another thread it
 * claims the rest of a batch read (at most BATCH rows) in one transaction
 * and writes outcomes whenever the turn is free, else all at once when
 * the claimed rows are done: one or two turns per batch.  The price, in
 * a burst only: a crashed serve's claimed rows wait out their claims,
 * and what the server accepted since the last write is sent again after
 * a crash (at least once, the same Message-ID). */
typedef struct {
	MdDesk *desk;
	MdStore *store;
	gint64 now;
	gint64 started;         /* monotonic */
	MdOutboxStats *stats;
	const gint *cancel;
	MdSmtp **smtp_io;
	gboolean claim_ahead;   /* serve's sender: claims a batch at once */
	char *unreachable;      /* set once the server could not be reached */
	GArray *tried;          /* Attempt, outcome not written yet */
} Flush;

/* A claim is trusted for a send that starts this soon after it: it lasts
 * CLAIM_SECONDS and a transfer takes at most an hour. */
#define CLAIM_FRESH_SECONDS (CLAIM_SECONDS - 3600 - 60)

/* Writes the outcomes tried so far and gives back the claims of LEFT
 * (rows claimed and not tried), in one transaction.  If this fails the
 * rows stay claimed and are sent again when the claims run out. */
static gboolean
write_back (Flush *f, GPtrArray *left, guint from, GError **error)
{
	if (!f->tried->len && (!left || from >= left->len))
		return TRUE;
	if (!md_store_begin (f->store, error))
		return FALSE;
	for (guint i = 0; i < f->tried->len; i++) {
		Attempt *a = &g_array_index (f->tried, Attempt, i);
		if (!record (f->store, a->entry, a->outcome, a->reply, f->now, f->stats, error)) {
			md_store_rollback (f->store);
			return FALSE;
		}
	}
	for (guint i = from; left && i < left->len; i++)
		unclaim (f->store, left->pdata[i]);
	g_array_set_size (f->tried, 0);
	return md_store_commit (f->store, error);
}

/* Claims rows of BATCH from *NEXT on, in one transaction: one row, or
 * the rest of the batch for serve's sender or once the server proved
 * unreachable (those are not tried: a backlog is not one commit a row).
 * Adds the rows taken to CLAIMED; the others are another sender's. */
static gboolean
claim_rows (Flush *f, GPtrArray *batch, guint *next, GPtrArray *claimed, GError **error)
{
	/* Ahead only while another thread wants the turn: a crash then
	 * leaves the rows claimed until their claims run out, so an idle
	 * desk claims one at a time as `outbox flush` does. */
	gboolean ahead = f->claim_ahead && md_store_would_wait (f->store);
	guint end = ahead || f->unreachable ? batch->len : *next + 1;
	gint64 until = flush_clock (f->now, f->started) + CLAIM_SECONDS;

	if (!md_store_begin (f->store, error))
		return FALSE;
	for (; *next < end; (*next)++) {
		MdOutboxEntry *e = batch->pdata[*next];
		GError *local = NULL;
		if (claim (f->store, e->id, f->now, until, &local))
			g_ptr_array_add (claimed, e);
		else if (local) {
			md_store_rollback (f->store);
			g_ptr_array_set_size (claimed, 0);
			g_propagate_error (error, local);
			return FALSE;
		}
	}
	return md_store_commit (f->store, error);
}

/* Sends E (claimed) and notes the outcome in F->tried. */
static void
try_one (Flush *f, MdOutboxEntry *e)
{
	Attempt a = { e, MD_SMTP_UNREACHABLE, NULL };
	if (f->unreachable) {
		/* one unreachable server is not worth a connect timeout per row */
		a.reply = g_strdup (f->unreachable);
		g_array_append_val (f->tried, a);
		return;
	}
	g_autoptr (GBytes) bytes = queued_bytes (f->store, e->raw_sha256);
	g_autofree char *path = md_spool_path (f->desk->spool, MD_SPOOL_RAW, e->raw_sha256);
	if (compose_queued (&bytes, &a))  /* else a says why not */
		a.outcome = bytes ? md_smtp_send_bytes (*f->smtp_io, e->mail_from, e->rcpt_to, bytes, &a.reply)
		                  : md_smtp_send (*f->smtp_io, e->mail_from, e->rcpt_to, path, &a.reply);
	if (a.outcome == MD_SMTP_UNREACHABLE) {
		f->unreachable = g_strdup (a.reply);
		g_clear_pointer (f->smtp_io, md_smtp_free);
	}
	g_array_append_val (f->tried, a);
}

static gboolean
cancelled (Flush *f)
{
	return f->cancel && g_atomic_int_get (f->cancel);
}

/* Tries the rows of CLAIMED in order, writing outcomes as it goes when
 * the write turn is free, and the rest at the end.  Rows left untried
 * (cancelled; a claim too old to cover a transfer) are given back, due
 * as before; *LAST_R is the id of the last row tried. */
static gboolean
send_claimed (Flush *f, GPtrArray *claimed, gint64 *last_r, GError **error)
{
	gint64 claimed_at = flush_clock (f->now, f->started);

	for (guint i = 0; i < claimed->len; i++) {
		MdOutboxEntry *e = claimed->pdata[i];
		if (cancelled (f) || flush_clock (f->now, f->started) - claimed_at > CLAIM_FRESH_SECONDS)
			return write_back (f, claimed, i, error);
		if (!*f->smtp_io && !f->unreachable) {
			*f->smtp_io = md_smtp_new (f->desk->conf, error);
			if (!*f->smtp_io) {
				GError *ignored = NULL;
				write_back (f, claimed, i, &ignored);
				g_clear_error (&ignored);
				return FALSE;
			}
			md_smtp_set_cancel (*f->smtp_io, f->cancel);
		}
		try_one (f, e);
		Attempt *a = &g_array_index (f->tried, Attempt, f->tried->len - 1);
		if (cancelled (f) && a->outcome != MD_SMTP_SENT) {
			/* interrupted, not failed: due as before */
			g_array_set_size (f->tried, f->tried->len - 1);
			return write_back (f, claimed, i, error);
		}
		*last_r = e->id;
		/* Written now when no one waits, so what the server accepted
		 * shows as sent while the rest goes out. */
		if (!f->unreachable && !md_store_would_wait (f->store) && !write_back (f, NULL, 0, error))
			return FALSE;
	}
	return write_back (f, NULL, 0, error);
}

/* Sends every due row once, in id order, a batch read at a time (see
 * Flush for how rows are claimed and outcomes written).  A claim covers
 * the transfers that can be in flight while it holds.  A crash between
 * a send and its record sends that message again once the claim has run
 * out (at least once, same Message-ID).  *SMTP_IO is the connection to
 * keep using (created when NULL; freed when the server turned out
 * unreachable). */
static gboolean
flush_until_cancelled (MdDesk *desk, MdStore *store, gint64 now, MdOutboxStats *stats, const gint *cancel,
                       gboolean claim_ahead, MdSmtp **smtp_io, GError **error)
{
	g_autoptr (GArray) tried = g_array_new (FALSE, FALSE, sizeof (Attempt));
	Flush f = { desk, store, now, g_get_monotonic_time (), stats, cancel, smtp_io, claim_ahead, NULL, tried };
	gint64 after_id = 0;
	gboolean ok = TRUE;

	g_array_set_clear_func (tried, attempt_clear);
	memset (stats, 0, sizeof *stats);
	while (ok && !cancelled (&f)) {
		g_autoptr (GPtrArray) batch = due_batch (store, now, after_id, error);
		if (!batch || batch->len == 0) {
			ok = batch != NULL;
			break;
		}
		gint64 last = after_id;
		for (guint next = 0; ok && next < batch->len && !cancelled (&f);) {
			g_autoptr (GPtrArray) claimed = g_ptr_array_new ();
			ok = claim_rows (&f, batch, &next, claimed, error) && send_claimed (&f, claimed, &last, error);
			/* rows given back are read again from after the last one tried */
			if (ok && claimed->len && last != ((MdOutboxEntry *) claimed->pdata[claimed->len - 1])->id)
				break;
			last = next ? ((MdOutboxEntry *) batch->pdata[next - 1])->id : last;
		}
		after_id = last;
	}
	g_free (f.unreachable);
	return ok;
}

gboolean
md_outbox_flush (MdDesk *desk, MdStore *store, gint64 now, MdOutboxStats *stats, GError **error)
{
	g_autoptr (MdSmtp) smtp = NULL;
	return flush_until_cancelled (desk, store, now, stats, NULL, FALSE, &smtp, error);
}

/* ---- the background sender ---- */

struct _MdOutboxSender {
	MdDesk *desk;
	MdSmtp *smtp;       /* kept open between rounds; the sender thread's */
	gint64 smtp_used;   /* monotonic time of the last round that used it */
	GThread *thread;
	GMutex lock;
	GCond cond;
	gboolean woken;
	gint stopping;  /* atomic; also aborts a send in progress */
};

/* The earliest next_attempt_at of a queued row, or 0. */
static gint64
next_due (MdStore *store)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT min(next_attempt_at) FROM outbox INDEXED BY outbox_due WHERE state = 'queued'", NULL);
	return s && sqlite3_step (s) == SQLITE_ROW ? sqlite3_column_int64 (s, 0) : 0;
}

static void
sender_round (MdOutboxSender *o, MdStore *store)
{
	g_autoptr (GError) error = NULL;
	MdOutboxStats stats;
	/* A connection idle for a while is closed rather than trusted. */
	if (o->smtp && g_get_monotonic_time () - o->smtp_used > SMTP_IDLE_SECONDS * G_USEC_PER_SEC)
		g_clear_pointer (&o->smtp, md_smtp_free);
	gboolean ok = flush_until_cancelled (o->desk, store, md_now (), &stats, &o->stopping, TRUE, &o->smtp, &error);
	if (stats.sent || stats.deferred || stats.failed)
		o->smtp_used = g_get_monotonic_time ();
	if (!ok)
		g_warning ("outbox flush-failed error=\"%s\"", error->message);
	else if (stats.sent || stats.deferred || stats.failed)
		g_message ("outbox flushed sent=%u deferred=%u failed=%u", stats.sent, stats.deferred, stats.failed);
}

/* Until woken or stopping, at most SECONDS. */
static void
sender_sleep (MdOutboxSender *o, gint64 seconds)
{
	gint64 end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
	g_mutex_lock (&o->lock);
	while (!o->woken && !g_atomic_int_get (&o->stopping))
		if (!g_cond_wait_until (&o->cond, &o->lock, end))
			break;
	o->woken = FALSE;
	g_mutex_unlock (&o->lock);
}

static gpointer
sender_main (gpointer data)
{
	MdOutboxSender *o = data;
	g_autoptr (MdStore) store = NULL;

	md_thread_lower_priority ("outbox");
	while (!g_atomic_int_get (&o->stopping)) {
		if (!store) {
			g_autoptr (GError) error = NULL;
			store = md_desk_open_store (o->desk, FALSE, &error);
			if (store && !md_store_lazy_commits (store, &error))
				g_clear_pointer (&store, md_store_close);
			if (!store) {
				g_warning ("outbox store-failed error=\"%s\"", error->message);
				sender_sleep (o, SENDER_POLL_SECONDS);
				continue;
			}
		}
		sender_round (o, store);
		gint64 due = next_due (store);
		gint64 wait = due ? CLAMP (due - md_now (), 1, SENDER_POLL_SECONDS) : SENDER_POLL_SECONDS;
		sender_sleep (o, wait);
	}
	g_clear_pointer (&o->smtp, md_smtp_free);
	return NULL;
}

MdOutboxSender *
md_outbox_sender_start (MdDesk *desk, GError **error)
{
	/* fail now, not in the thread, on a bad [smtp] section */
	g_autoptr (MdSmtp) probe = md_smtp_new (desk->conf, error);
	if (!probe)
		return NULL;
	MdOutboxSender *o = g_new0 (MdOutboxSender, 1);
	o->desk = desk;
	g_mutex_init (&o->lock);
	g_cond_init (&o->cond);
	o->thread = g_thread_new ("outbox", sender_main, o);
	return o;
}

void
md_outbox_sender_wake (MdOutboxSender *sender)
{
	g_mutex_lock (&sender->lock);
	sender->woken = TRUE;
	g_cond_signal (&sender->cond);
	g_mutex_unlock (&sender->lock);
}

void
md_outbox_sender_stop (MdOutboxSender *sender)
{
	if (!sender)
		return;
	g_mutex_lock (&sender->lock);
	g_atomic_int_set (&sender->stopping, 1);
	g_cond_signal (&sender->cond);
	g_mutex_unlock (&sender->lock);
	g_thread_join (sender->thread);
	g_mutex_clear (&sender->lock);
	g_cond_clear (&sender->cond);
	g_free (sender);
}
