/* test-writer.c - the daemon's group commit (writer.c) and its WAL
 * checkpoints (checkpointer.c), on a real desk: every submitted message
 * is answered once, and the WAL is copied back by the checkpointer's
 * thread and starts over, so that it stays bounded. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "checkpointer.h"
#include "md.h"
#include "writer.h"

#define WAL_SIZE_LIMIT 16384000  /* src/store.c */
#define WAL_FRAME_BYTES (24 + 4096)

typedef struct {
	char *dir;
	MdDesk *desk;
	GMutex lock;
	GCond cond;
	guint answered;
	guint failed;
} Fixture;

static const char *
top_srcdir (void)
{
	const char *d = g_getenv ("MD_TOP_SRCDIR");
	return d ? d : ".";
}

static void
fixture_setup (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	fx->dir = g_dir_make_tmp ("md-writer-XXXXXX", &error);
	g_assert_no_error (error);
	MdConf *conf = md_conf_new_defaults ();
	g_free (conf->data_dir);
	conf->data_dir = g_build_filename (fx->dir, "var", NULL);
	g_free (conf->rules);
	conf->rules = g_build_filename (top_srcdir (), "filters", "default.rules", NULL);
	g_free (conf->templates);
	conf->templates = g_build_filename (top_srcdir (), "templates", NULL);
	g_mkdir_with_parents (conf->data_dir, 0700);
	fx->desk = md_desk_open (conf, &error);
	g_assert_no_error (error);
	g_mutex_init (&fx->lock);
	g_cond_init (&fx->cond);
}

static void
fixture_teardown (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	md_desk_free (fx->desk);
	md_remove_tree (fx->dir);
	g_free (fx->dir);
	g_mutex_clear (&fx->lock);
	g_cond_clear (&fx->cond);
}

/* On the writer's side, once the job's fate is known. */
static void
on_done (MdIngestJob *job, const GError *error, gpointer data)
{
	(void) job;
	Fixture *fx = data;
	g_mutex_lock (&fx->lock);
	fx->answered++;
	fx->failed += error != NULL;
	g_cond_signal (&fx->cond);
	g_mutex_unlock (&fx->lock);
}

/* A new question from its own customer, about 20 KB: a ticket with its
 * message, history, timers and acknowledgement, some 25 pages of WAL. */
static MdIngestJob *
new_job (Fixture *fx, guint n)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (GString) raw = g_string_new (NULL);
	g_string_append_printf (raw, "From: customer%u@customer.example\nTo: support@support.example.com\n"
	                        "Message-ID: <q%u@customer.example>\nSubject: Question %u\n\n", n, n, n);
	for (int i = 0; i < 300; i++)
		g_string_append_printf (raw, "Line %d of question %u: the printer prints nothing at all.\n", i, n);
	MdSpoolWriter *w = md_spool_writer_new (fx->desk->spool, MD_SPOOL_RAW, 0, &error);
	g_assert_no_error (error);
	g_assert_true (md_spool_writer_write (w, raw->str, raw->len, &error));
	g_autofree char *sha = NULL;
	g_assert_true (md_spool_writer_commit (w, &sha, &error));
	MdEnvelope env = { NULL, NULL };
	return md_ingest_job_new (fx->desk, sha, (gint64) raw->len, &env);
}

/* Submits N messages one after another, each once the one before was
 * answered (as one LMTP session does). */
static void
deliver_one_by_one (Fixture *fx, MdWriter *w, guint n)
{
	for (guint i = 0; i < n; i++) {
		md_writer_submit (w, new_job (fx, i), on_done, fx);
		g_mutex_lock (&fx->lock);
		while (fx->answered < i + 1)
			g_cond_wait (&fx->cond, &fx->lock);
		g_mutex_unlock (&fx->lock);
	}
}

static guint64
wal_size (Fixture *fx)
{
	g_autofree char *path = g_strdup_printf ("%s-wal", fx->desk->db_path);
	GStatBuf st;
	g_assert_cmpint (g_stat (path, &st), ==, 0);
	return (guint64) st.st_size;
}

/* The checkpointer copies the WAL back and the writer's WAL starts over,
 * again and again: it stays within its limit. */
static void
test_checkpoints_off_the_writer (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	MdCheckpointer *c = md_checkpointer_start (fx->desk, &error);
	g_assert_no_error (error);
	MdWriter *w = md_writer_start (fx->desk, c, &error);
	g_assert_no_error (error);

	deliver_one_by_one (fx, w, 400);
	MdCheckpointerStats st;
	md_checkpointer_get_stats (c, &st);
	/* a thread woken may not have run yet on a busy machine */
	for (int i = 0; i < 1000 && st.passes == 0; i++) {
		g_usleep (10 * 1000);
		md_checkpointer_get_stats (c, &st);
	}
	guint64 wal = wal_size (fx);  /* the last connection to close removes it */
	md_writer_stop (w);
	md_checkpointer_stop (c);

	g_assert_cmpuint (fx->answered, ==, 400);
	g_assert_cmpuint (fx->failed, ==, 0);
	g_test_message ("passes=%" G_GUINT64_FORMAT " tails=%" G_GUINT64_FORMAT " restarts=%" G_GUINT64_FORMAT
	                " max_frames=%u", st.passes, st.tails, st.wal_restarts, st.max_frames);
	/* 400 messages of ~25 pages are ~10,000 pages of WAL: the thread
	 * ran, and the WAL started over before it reached the 4,000 pages
	 * where the writer would checkpoint itself (or just after, had the
	 * thread been slow: nothing here reads the database to stop that). */
	g_assert_cmpuint (st.passes, >=, 1);
	g_assert_cmpuint (st.wal_restarts, >=, 2);
	g_assert_cmpuint (st.max_frames, <, 4000 + 100);
	g_assert_cmpuint (wal, <=, WAL_SIZE_LIMIT + 100 * WAL_FRAME_BYTES);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_setenv ("MAILDESK_NOW", "2026-12-01T08:00:00Z", TRUE);
	g_test_add ("/writer/checkpoints-off-the-writer", Fixture, NULL, fixture_setup, test_checkpoints_off_the_writer,
	            fixture_teardown);
	return g_test_run ();
}
