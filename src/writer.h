/* writer.h - group commit for the daemon (DESIGN 2, "Concurrency").
 *
 * Parsing and classifying run on a small thread pool; one writer thread
 * owns the SQLite write connection and commits whatever ingests are
 * ready as one transaction, then reports each job's outcome.  With many
 * concurrent sessions one fsync covers many messages. */
#ifndef MD_WRITER_H
#define MD_WRITER_H

#include <glib.h>

#include "desk.h"
#include "ingest.h"

typedef struct _MdWriter MdWriter;

/* Called on the writer thread once the job's transaction has committed
 * (error NULL) or failed.  The callback owns neither job nor error: both
 * are freed when it returns. */
typedef void (*MdWriterDone) (MdIngestJob *job, const GError *error, gpointer user_data);

MdWriter *md_writer_start (MdDesk *desk, int parse_threads, GError **error);
/* Takes ownership of JOB. */
void md_writer_submit (MdWriter *w, MdIngestJob *job, MdWriterDone done, gpointer user_data);
/* The same, but parses on the calling thread, which must be a worker
 * thread (the LMTP engine's spool-commit thread) and never the main loop:
 * one thread switch fewer per message. */
void md_writer_submit_here (MdWriter *w, MdIngestJob *job, MdWriterDone done, gpointer user_data);
/* Finishes every submitted job, then stops the threads. */
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
