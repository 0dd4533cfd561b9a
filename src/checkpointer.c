/* checkpointer.c - copying the WAL back into the database on a thread
 * of its own, so that the writer every session waits for does not
 * (checkpointer.h).
 *
 * The WAL starts over from its beginning only when a write transaction
 * begins with every frame of it in the database.  A checkpoint on another
 * thread rarely gets there on its own, since the writer commits while it
 * copies; so the thread copies the bulk and the writer, after the commit
 * that finds the thread idle with little left, copies that little itself
 * (no commit can come in between on its own thread), and its next
 * transaction starts the WAL over. */
#include "config.h"

#include "checkpointer.h"
#include "md.h"

/* The writer wakes the thread once the WAL holds this many pages: below
 * the 4,000 where every connection checkpoints itself (store.c), so the
 * WAL normally starts over before anyone else has to copy a page. */
#define BACKGROUND_PAGES 3000
/* The most the writer copies itself: about what it commits during one
 * pass of the thread. */
#define TAIL_PAGES 1000

struct _MdCheckpointer {
	MdStore *store;  /* the thread's own connection */
	GThread *thread;
	GMutex lock;
	GCond cond;
	gboolean woken;
	gboolean running;         /* a pass is under way */
	gboolean stopping;
	guint generation;         /* of the WAL: one more each time it started over */
	guint copied;             /* frames in the database after the last pass ... */
	guint copied_generation;  /* ... of this generation of the WAL */
	guint last_frames;        /* the WAL's frames after the attached store's last commit */
	guint next_tail;          /* the WAL's size at which to try the tail again */
	MdCheckpointerStats stats;
};

/* On the attached store's thread: the frames the thread left, waiting
 * (briefly) for others to let go of the WAL, so that the next commit
 * starts it over.  A wait in vain is tried again TAIL_PAGES later: a
 * reader that stays (a backup) costs a few waits, not one a commit. */
static void
checkpoint_tail (MdCheckpointer *c, MdStore *store, guint at)
{
	g_autoptr (GError) error = NULL;
	guint frames = 0, copied = 0;
	gboolean ok = md_store_checkpoint (store, MD_STORE_CHECKPOINT_RESTART, &frames, &copied, &error);

	if (!ok && !g_error_matches (error, MD_ERROR, MD_ERROR_DB_BUSY))
		g_warning ("checkpoint tail-failed error=\"%s\"", error->message);
	g_mutex_lock (&c->lock);
	if (ok)
		c->stats.tails++;
	else
		c->next_tail = at + TAIL_PAGES;
	g_mutex_unlock (&c->lock);
}

/* After each commit of the attached store, on its thread. */
static void
on_commit (MdStore *store, guint frames, gpointer data)
{
	MdCheckpointer *c = data;
	gboolean tail = FALSE;

	g_mutex_lock (&c->lock);
	if (frames < c->last_frames) {
		/* This commit wrote from the WAL's start: what the thread
		 * copied was of the WAL before. */
		c->generation++;
		c->next_tail = 0;
		c->stats.wal_restarts++;
	}
	c->last_frames = frames;
	c->stats.max_frames = MAX (c->stats.max_frames, frames);
	if (frames >= BACKGROUND_PAGES && !c->running) {
		guint copied = c->copied_generation == c->generation ? MIN (c->copied, frames) : 0;
		if (frames - copied > TAIL_PAGES) {
			c->woken = TRUE;
			g_cond_signal (&c->cond);
		} else {
			tail = frames >= c->next_tail;
		}
	}
	g_mutex_unlock (&c->lock);
	if (tail)
		checkpoint_tail (c, store, frames);
}

/* One pass, the lock not held: FALSE when nothing was copied. */
static gboolean
pass (MdCheckpointer *c, guint *copied_r)
{
	g_autoptr (GError) error = NULL;
	guint frames = 0;

	if (md_store_checkpoint (c->store, MD_STORE_CHECKPOINT_PASSIVE, &frames, copied_r, &error))
		return TRUE;
	/* another connection checkpointing is no failure: it copies too */
	if (!g_error_matches (error, MD_ERROR, MD_ERROR_DB_BUSY))
		g_warning ("checkpoint failed error=\"%s\"", error->message);
	return FALSE;
}

static gpointer
checkpointer_main (gpointer data)
{
	MdCheckpointer *c = data;

	g_mutex_lock (&c->lock);
	for (;;) {
		while (!c->woken && !c->stopping)
			g_cond_wait (&c->cond, &c->lock);
		if (c->stopping)
			break;
		c->woken = FALSE;
		c->running = TRUE;
		guint generation = c->generation;
		g_mutex_unlock (&c->lock);
		guint copied = 0;
		gboolean ok = pass (c, &copied);
		g_mutex_lock (&c->lock);
		c->running = FALSE;
		if (ok) {
			c->copied = copied;
			c->copied_generation = generation;
			c->stats.passes++;
		}
	}
	g_mutex_unlock (&c->lock);
	return NULL;
}

MdCheckpointer *
md_checkpointer_start (MdDesk *desk, GError **error)
{
	MdStore *store = md_desk_open_store (desk, FALSE, error);
	if (!store)
		return NULL;
	MdCheckpointer *c = g_new0 (MdCheckpointer, 1);
	c->store = store;
	g_mutex_init (&c->lock);
	g_cond_init (&c->cond);
	c->thread = g_thread_new ("checkpointer", checkpointer_main, c);
	return c;
}

void
md_checkpointer_attach (MdCheckpointer *c, MdStore *store)
{
	md_store_set_wal_hook (store, on_commit, c);
}

void
md_checkpointer_get_stats (MdCheckpointer *c, MdCheckpointerStats *stats)
{
	g_mutex_lock (&c->lock);
	*stats = c->stats;
	g_mutex_unlock (&c->lock);
}

void
md_checkpointer_stop (MdCheckpointer *c)
{
	if (!c)
		return;
	g_mutex_lock (&c->lock);
	c->stopping = TRUE;
	g_cond_signal (&c->cond);
	g_mutex_unlock (&c->lock);
	g_thread_join (c->thread);
	md_store_close (c->store);
	g_mutex_clear (&c->lock);
	g_cond_clear (&c->cond);
	g_free (c);
}
