/* purge.h - retention and erasure: deleting tickets resolved long ago,
 * and everything a person asked to have erased, with the spool files
 * that only those tickets named.
 *
 * Safe beside a running serve: rows go in transactions of at most
 * MD_PURGE_BATCH tickets, then files, each unlinked only once no row
 * names its SHA-256 (the rows a snapshot did not see checked under the
 * write lock).  One purge runs at a time (a second fails with
 * MD_ERROR_DB_BUSY).  Restartable at any point: a file whose rows are
 * gone waits in purge_files until a run removes it, and running twice
 * deletes nothing twice.
 *
 * A deleted ticket's received messages leave a tombstone: a message row
 * with no ticket and no content, holding the dedupe keys, so the same
 * mail delivered again is a duplicate, never a new ticket.  Its
 * Message-IDs no longer thread: a reply to it opens a new ticket. */
#ifndef MD_PURGE_H
#define MD_PURGE_H

#include <glib.h>

#include "desk.h"
#include "store.h"

#define MD_PURGE_BATCH 100
/* A file written this recently may belong to a message being stored
 * right now, whose row is not committed yet: it waits for a later run. */
#define MD_PURGE_FILE_GRACE (15 * 60)

typedef struct {
	guint tickets;
	guint messages;        /* of the deleted tickets */
	guint redacted;        /* a person's on other tickets, emptied */
	guint ticketless;      /* messages kept on no ticket, deleted */
	guint attachments;
	guint outbox;          /* outbox rows, sent, failed or queued */
	guint outbox_queued;   /* of which never sent: that mail is dropped */
	guint files;           /* spool files and queued blobs removed */
	guint files_waiting;   /* unreferenced, but written too recently */
	guint people;          /* 1 when the person's record was removed */
} MdPurgeStats;

/* Deletes every Resolved ticket resolved before BEFORE (Unix seconds),
 * and what was kept on no ticket (mail that opened none: a #list
 * answered alone, mail the rules dropped; the mail that answered it)
 * received or queued before BEFORE.  With DRY_RUN every transaction is
 * rolled back and STATS say what would have gone. */
gboolean md_purge_resolved (MdDesk *desk, MdStore *store, gint64 before, gboolean dry_run,
                            MdPurgeStats *stats, GError **error);

/* Erases EMAIL: the tickets they requested, whatever their status; the
 * content of their messages on other tickets; their messages on no
 * ticket (as md_purge_resolved deletes them); their participation,
 * memberships and mail queued or sent to them; and their record.  An
 * agent is refused (MD_ERROR_DENIED).  An address with no record (who
 * only sent a #list alone, or mail the rules dropped) is erased all the
 * same, with no record to remove; a second run finds nothing. */
gboolean md_purge_person (MdDesk *desk, MdStore *store, const char *email, gboolean dry_run,
                          MdPurgeStats *stats, GError **error);

#endif
