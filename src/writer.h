/* writer.h - group commit for the daemon (DESIGN 2, "Concurrency").
 *
 * Parsing and classifying run on the submitter's thread (the LMTP
 * engine's worker that made the message durable); one writer thread
 * owns the SQLite write connection and commits whatever ingests are
 * ready as one transaction, then reports each job's outcome.  With many
 * concurrent sessions one fsync covers many messages. */
#ifndef MD_WRITER_H
#define MD_WRITER_H

#include <glib.h>

#include "checkpointer.h"
#include "desk.h"
#include "ingest.h"

typedef struct _MdWriter MdWriter;

/* Called on the writer thread once the job's transaction has committed
 * (error NULL) or failed.  The callback owns neither job nor error: both
 * are freed when it returns. */
typedef void (*MdWriterDone) (MdIngestJob *job, const GError *error, gpointer user_data);

/* CHECKPOINTER, when not NULL, takes the writer's checkpoints (it must
 * outlive the writer); without it the writer checkpoints as every
 * connection does. */
MdWriter *md_writer_start (MdDesk *desk, MdCheckpointer *checkpointer, GError **error);
/* Takes ownership of JOB, parses it on the calling thread (a worker,
 * never the main loop: parsing takes a while) and queues it for the
 * writer.  Any thread. */
void md_writer_submit (MdWriter *w, MdIngestJob *job, MdWriterDone done, gpointer user_data);
/* Finishes every submitted job, then stops the thread; nothing may be
 * submitted once it is called. */
void md_writer_stop (MdWriter *w);

/* Called after each commit that stored something, on the writer thread
 * (the outbox sender is woken this way). */
void md_writer_set_commit_hook (MdWriter *w, void (*hook) (gpointer), gpointer user_data);

typedef struct {
	guint64 commits;
	guint64 jobs;
	guint max_batch;
} MdWriterStats;
void md_writer_get_stats (MdWriter *w, MdWriterStats *stats);

#endif
