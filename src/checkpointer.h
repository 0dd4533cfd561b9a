/* checkpointer.h - the daemon's WAL checkpoints, on a thread of their own.
 *
 * SQLite copies the WAL back into the database (a checkpoint) on the
 * connection whose commit made the WAL long enough: in `serve` that is
 * the writer, which every LMTP session waits for, and a checkpoint is
 * thousands of page copies and two fsyncs.  The checkpointer does that
 * copying on its own connection instead, while the writer goes on
 * committing; the writer only finishes what is left (a few hundred pages)
 * so that its next transaction may start the WAL over. */
#ifndef MD_CHECKPOINTER_H
#define MD_CHECKPOINTER_H

#include <glib.h>

#include "desk.h"
#include "store.h"

typedef struct _MdCheckpointer MdCheckpointer;

/* Opens its own connection and starts the thread; NULL with ERROR when
 * the database cannot be opened. */
MdCheckpointer *md_checkpointer_start (MdDesk *desk, GError **error);
/* Hands the checkpoints of STORE, the connection that commits the most,
 * to C.  STORE's thread calls; before that thread's first commit. */
void md_checkpointer_attach (MdCheckpointer *c, MdStore *store);
/* After the attached store has closed (or been detached). */
void md_checkpointer_stop (MdCheckpointer *c);

typedef struct {
	guint64 passes;        /* checkpoints run by the thread */
	guint64 tails;         /* checkpoints of what was left, run by the attached store's thread */
	guint64 wal_restarts;  /* times the attached store's WAL started over */
	guint max_frames;      /* the most frames the WAL held after a commit */
} MdCheckpointerStats;
void md_checkpointer_get_stats (MdCheckpointer *c, MdCheckpointerStats *stats);

#endif
