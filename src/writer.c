/* writer.c - the single writer thread: group commit of parsed ingests.
 * Submitters parse on their own (worker) threads; the writer commits
 * whatever is ready as one transaction. */
#include "config.h"

#include "md.h"
#include "writer.h"

#define MAX_BATCH 256

typedef struct {
	MdIngestJob *job;
	MdWriterDone done;
	gpointer user_data;
	GError *error;       /* set by a failed prepare */
} Item;

struct _MdWriter {
	MdDesk *desk;
	MdStore *store;
	GAsyncQueue *ready;   /* Item*, parsed; a NULL-job item means stop */
	GThread *thread;
	void (*commit_hook) (gpointer);
	gpointer commit_hook_data;
	GMutex stats_lock;
	MdWriterStats stats;
};

static void
item_finish (Item *item, const GError *error)
{
	item->done (item->job, error ? error : item->error, item->user_data);
	md_ingest_job_free (item->job);
	g_clear_error (&item->error);
	g_free (item);
}


/* One transaction over FIRST and whatever else is ready once the write
 * turn is ours: what arrived while another thread of the process had the
 * turn goes in this batch.  A job that fails rolls back to its own
 * savepoint, so the others still commit.  TRUE when the stop marker was
 * taken. */
static gboolean
commit_batch (MdWriter *w, Item *first)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (GPtrArray) batch = g_ptr_array_new ();
	gboolean stored = FALSE, stopping = FALSE;
	gboolean begun = md_store_begin (w->store, &error);

	for (Item *item = first; item; item = batch->len < MAX_BATCH ? g_async_queue_try_pop (w->ready) : NULL) {
		if (!item->job) {
			/* the marker queues behind every job: nothing follows it */
			stopping = TRUE;
			g_free (item);
			break;
		}
		g_ptr_array_add (batch, item);
	}
	if (!begun) {
		for (guint i = 0; i < batch->len; i++)
			item_finish (batch->pdata[i], error);
		return stopping;
	}
	for (guint i = 0; i < batch->len; i++) {
		Item *item = batch->pdata[i];
		GError *local = NULL;
		if (!item->error && !md_ingest_store (item->job, w->store, &local))
			item->error = local;
		stored |= item->error == NULL;
	}
	if (!md_store_commit (w->store, &error)) {
		for (guint i = 0; i < batch->len; i++)
			item_finish (batch->pdata[i], error);
		return stopping;
	}
	g_mutex_lock (&w->stats_lock);
	w->stats.commits++;
	w->stats.jobs += batch->len;
	w->stats.max_batch = MAX (w->stats.max_batch, batch->len);
	g_mutex_unlock (&w->stats_lock);
	for (guint i = 0; i < batch->len; i++)
		item_finish (batch->pdata[i], NULL);
	if (stored && w->commit_hook)
		w->commit_hook (w->commit_hook_data);
	return stopping;
}

static gpointer
writer_main (gpointer data)
{
	MdWriter *w = data;
	gboolean stopping = FALSE;

	while (!stopping) {
		Item *first = g_async_queue_pop (w->ready);
		if (!first->job) {
			g_free (first);
			break;
		}
		stopping = commit_batch (w, first);
	}
	return NULL;
}

MdWriter *
md_writer_start (MdDesk *desk, MdCheckpointer *checkpointer, GError **error)
{
	MdWriter *w = g_new0 (MdWriter, 1);
	w->desk = desk;
	w->store = md_desk_open_store (desk, FALSE, error);
	if (!w->store) {
		g_free (w);
		return NULL;
	}
	if (checkpointer)
		md_checkpointer_attach (checkpointer, w->store);
	w->ready = g_async_queue_new ();
	g_mutex_init (&w->stats_lock);
	w->thread = g_thread_new ("md-writer", writer_main, w);
	return w;
}

void
md_writer_submit (MdWriter *w, MdIngestJob *job, MdWriterDone done, gpointer user_data)
{
	Item *item = g_new0 (Item, 1);
	item->job = job;
	item->done = done;
	item->user_data = user_data;
	md_ingest_prepare (item->job, &item->error);
	g_async_queue_push (w->ready, item);
}

void
md_writer_set_commit_hook (MdWriter *w, void (*hook) (gpointer), gpointer user_data)
{
	w->commit_hook = hook;
	w->commit_hook_data = user_data;
}

void
md_writer_get_stats (MdWriter *w, MdWriterStats *stats)
{
	g_mutex_lock (&w->stats_lock);
	*stats = w->stats;
	g_mutex_unlock (&w->stats_lock);
}

void
md_writer_stop (MdWriter *w)
{
	if (!w)
		return;
	/* The caller has stopped submitting: the marker queues behind every job. */
	g_async_queue_push (w->ready, g_new0 (Item, 1));
	g_thread_join (w->thread);
	g_async_queue_unref (w->ready);
	md_store_close (w->store);
	g_mutex_clear (&w->stats_lock);
	g_free (w);
}
