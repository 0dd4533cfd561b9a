/* outbox.h - mail waiting to go out (DESIGN 8): a table of one row per
 * recipient, queued in the transaction of the change that causes it and
 * drained by a sender over SMTP.
 *
 * A row is queued, then sent (only after the server accepted its DATA)
 * or failed (a 5xx to RCPT or DATA, or five days of temporary failures);
 * the sender never deletes a row (only `maildesk purge` does, with its
 * ticket or its recipient).  Temporary failures (4xx, no connection, TLS
 * trouble, a 5xx to EHLO, AUTH or MAIL, a 530 "authenticate first"
 * anywhere: the desk's setup, not the mail) retry after 1, 2, 4 ...
 * minutes, at most an hour apart.
 *
 * Delivery is at least once: a crash after the server accepted a message
 * but before its row is marked sent sends it again on restart.  The copy
 * carries the same Message-ID, so mail clients show one message. */
#ifndef MD_OUTBOX_H
#define MD_OUTBOX_H

#include <glib.h>

#include "desk.h"
#include "store.h"

/* Before giving up on a message that keeps failing temporarily. */
#define MD_OUTBOX_GIVE_UP_AFTER (5 * 24 * 3600)
/* Recipients of one message, at most. */
#define MD_OUTBOX_MAX_RCPTS 1000

/* Queues the spooled raw message RAW_SHA256 for each of RCPTS (NULL
 * terminated; duplicates ignored, case-insensitively) from MAIL_FROM (""
 * for the null reverse-path).  Runs inside the caller's transaction, if
 * any.  TICKET_ID 0 is "no ticket".  Addresses with spaces, control
 * characters or angle brackets fail with MD_ERROR_INVALID. */
gboolean md_outbox_enqueue (MdStore *store, gint64 ticket_id, const char *kind, const char *mail_from,
                            const char *const *rcpts, const char *raw_sha256, const char *message_id,
                            GError **error);

/* Like md_outbox_enqueue for a message held in memory: its bytes are
 * kept in the database, so the caller's commit makes them durable; the
 * sender writes them to the spool when it sends. */
gboolean md_outbox_enqueue_bytes (MdStore *store, gint64 ticket_id, const char *kind, const char *mail_from,
                                  const char *const *rcpts, GBytes *raw, const char *message_id, GError **error);

/* Rows of KIND for RCPT (compared as stored) created at SINCE or later,
 * whatever became of them: the acknowledgement rate limit.  0 when the
 * database cannot answer (queueing would then fail as well). */
guint md_outbox_count_recent (MdStore *store, const char *rcpt, const char *kind, gint64 since);

/* Whether the desk has queued mail to RCPT on TICKET_ID (any state).
 * FALSE with ERROR set when the database cannot answer. */
gboolean md_outbox_mailed (MdStore *store, gint64 ticket_id, const char *rcpt, GError **error);

/* Puts failed rows back in the queue, due at NOW with their attempts
 * counted afresh (the operator fixed what failed them): the rows of IDS
 * (0-terminated), or every failed row when IDS is NULL.  Returns how
 * many, or -1 with ERROR set. */
gint64 md_outbox_retry (MdStore *store, const gint64 *ids, gint64 now, GError **error);

typedef struct {
	guint sent;
	guint deferred;  /* failed temporarily, queued for another attempt */
	guint failed;    /* failed for good in this flush */
} MdOutboxStats;

/* Sends every queued row due at NOW once.  Each row is claimed just
 * before it is sent and its outcome written just after, so a second
 * flusher (serve and `outbox flush`) skips it while it is in flight and
 * sees it sent as soon as the server accepted it.  FALSE only when the
 * outbox could not be worked at all (configuration, database); the
 * outcome of each row is in the table and in STATS. */
gboolean md_outbox_flush (MdDesk *desk, MdStore *store, gint64 now, MdOutboxStats *stats, GError **error);

typedef struct {
	gint64 id;
	gint64 ticket_id;        /* 0: none */
	char *kind;
	char *mail_from;
	char *rcpt_to;
	char *message_id;
	char *raw_sha256;
	char *state;             /* "queued", "sent" or "failed" */
	int attempts;
	gint64 next_attempt_at;
	char *last_error;        /* or NULL */
	gint64 created_at;
	gint64 sent_at;          /* 0: not sent */
} MdOutboxEntry;
void md_outbox_entry_free (MdOutboxEntry *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdOutboxEntry, md_outbox_entry_free)

/* Rows in id order, only those in STATE unless it is NULL.
 * MdOutboxEntry*; free with g_ptr_array_unref. */
GPtrArray *md_outbox_list (MdStore *store, const char *state, GError **error);
/* FUNC for each row of md_outbox_list, in id order, as it is read (the
 * outbox keeps every mail ever sent).  FUNC owns the entry, and must not
 * use the store. */
typedef void (*MdOutboxFunc) (MdOutboxEntry *entry, gpointer data);
gboolean md_outbox_foreach (MdStore *store, const char *state, MdOutboxFunc func, gpointer data, GError **error);

/* The background sender of `serve`: a thread with its own database
 * connection that flushes, then sleeps until the next row is due, a
 * wake-up, or 30 s (rows queued by other processes), and repeats.  It
 * claims the rows of a batch read together and may write several
 * outcomes at once (its connection waits its turn behind serve's writer,
 * turn.h), so a crash may send again more than the one row in flight. */
typedef struct _MdOutboxSender MdOutboxSender;

/* DESK must outlive the sender.  Free with md_outbox_sender_stop. */
MdOutboxSender *md_outbox_sender_start (MdDesk *desk, GError **error);
/* Something was queued: flush now.  Cheap; any thread. */
void md_outbox_sender_wake (MdOutboxSender *sender);
/* Aborts a send in progress (its row stays queued and due), joins the thread
 * within about two seconds and frees the sender.  NULL is fine. */
void md_outbox_sender_stop (MdOutboxSender *sender);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdOutboxSender, md_outbox_sender_stop)

#endif
