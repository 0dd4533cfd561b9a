/* bench/ingest.c - ingest throughput and memory, in one process.
 *
 * Feeds generated messages (small text, multipart/alternative with HTML,
 * 10 MB and 50 MB attachments) through the same ingest function that
 * `deliver`, LMTP and IMAP use, and prints messages/s, MB/s and peak
 * RSS.  Two comparisons make the claims of issue 2 checkable:
 *   - parse-only rate vs. ingest rate (one transaction per message):
 *     small messages are limited by the database commit, not by parsing;
 *   - peak RSS of a child process ingesting one 50 MB message.
 *
 *   make bench && bench/ingest [N_SMALL [small]]
 */
#include "config.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-conf.h"
#include "desk.h"
#include "ingest.h"
#include "md.h"
#include "message.h"

static char *
spool_bytes (MdDesk *desk, const char *data, gsize len)
{
	g_autoptr (GError) error = NULL;
	MdSpoolWriter *w = md_spool_writer_new (desk->spool, MD_SPOOL_RAW, 0, &error);
	char *sha = NULL;
	if (!w || !md_spool_writer_write (w, data, len, &error) || !md_spool_writer_commit (w, &sha, &error))
		g_error ("spool: %s", error->message);
	return sha;
}

static GString *
small_message (int i, gboolean html)
{
	GString *m = g_string_new (NULL);
	g_string_append_printf (m,
	                        "From: Customer %d <customer%d@example.org>\r\nTo: support@support.example.com\r\n"
	                        "Subject: Checkout fails with error %d\r\nMessage-ID: <bench-%d-%u@example.org>\r\n"
	                        "Date: Tue, 01 Dec 2026 10:00:00 +0200\r\nMIME-Version: 1.0\r\n",
	                        i % 500, i % 500, i, i, g_random_int ());
	const char *para = "When I open the checkout page the total is not computed and the order button "
	                   "stays disabled. This started after the update yesterday. ";
	if (!html) {
		g_string_append (m, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
		for (int k = 0; k < 24; k++)
			g_string_append_printf (m, "%s\r\n", para);
		return m;
	}
	g_string_append (m, "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\n"
	                    "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	for (int k = 0; k < 10; k++)
		g_string_append_printf (m, "%s\r\n", para);
	g_string_append (m, "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>");
	for (int k = 0; k < 10; k++)
		g_string_append_printf (m, "<p>%s</p>\r\n", para);
	g_string_append (m, "</body></html>\r\n--b1--\r\n");
	return m;
}

/* A message with one base64 attachment of SIZE bytes, written to a file
 * in pieces so the generator itself stays small. */
static char *
big_message_file (const char *dir, gsize size)
{
	g_autofree char *path = g_strdup_printf ("%s/big-%zu.eml", dir, size);
	FILE *f = fopen (path, "w");
	fprintf (f, "From: big@example.org\r\nTo: support@support.example.com\r\nSubject: logs, %zu bytes\r\n"
	            "Message-ID: <big-%zu-%u@example.org>\r\nMIME-Version: 1.0\r\n"
	            "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n"
	            "Content-Type: text/plain\r\n\r\nLogs attached.\r\n--B\r\n"
	            "Content-Type: application/octet-stream; name=\"logs.bin\"\r\n"
	            "Content-Transfer-Encoding: base64\r\n\r\n", size, size, g_random_int ());
	guchar chunk[57 * 1000];
	for (gsize done = 0; done < size; done += sizeof chunk) {
		for (gsize i = 0; i < sizeof chunk; i++)
			chunk[i] = (guchar) g_random_int ();
		gsize n = MIN (sizeof chunk, size - done);
		for (gsize off = 0; off < n; off += 57) {
			g_autofree char *line = g_base64_encode (chunk + off, MIN (57, n - off));
			fprintf (f, "%s\r\n", line);
		}
	}
	fprintf (f, "--B--\r\n");
	fclose (f);
	return g_steal_pointer (&path);
}

static char *
spool_file (MdDesk *desk, const char *path, gint64 *size_r)
{
	g_autoptr (GError) error = NULL;
	MdSpoolWriter *w = md_spool_writer_new (desk->spool, MD_SPOOL_RAW, 0, &error);
	FILE *f = fopen (path, "r");
	char buf[65536];
	size_t n;
	while ((n = fread (buf, 1, sizeof buf, f)) > 0)
		md_spool_writer_write (w, buf, n, &error);
	fclose (f);
	*size_r = md_spool_writer_size (w);
	char *sha = NULL;
	if (!md_spool_writer_commit (w, &sha, &error))
		g_error ("spool: %s", error->message);
	return sha;
}

static double
peak_rss_mb (int who)
{
	struct rusage ru;
	getrusage (who, &ru);
	return ru.ru_maxrss / 1024.0;
}

/* Ingests one big message in a fresh child, so its peak RSS is its own. */
static void
bench_big (MdDesk *desk, const char *dir, gsize size)
{
	g_autofree char *path = big_message_file (dir, size);
	gint64 raw_size = 0;
	g_autofree char *sha = spool_file (desk, path, &raw_size);
	fflush (stdout);
	pid_t pid = fork ();
	if (pid == 0) {
		g_autoptr (GError) error = NULL;
		g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
		gint64 t0 = g_get_monotonic_time ();
		MdIngestResult r = { 0 };
		if (!md_ingest_one (desk, store, sha, raw_size, NULL, &r, &error))
			g_error ("ingest: %s", error->message);
		double secs = (g_get_monotonic_time () - t0) / 1e6;
		printf ("  %5.1f MB message: %6.2f s, %7.1f MB/s, peak RSS of the process %5.1f MB\n",
		        raw_size / 1e6, secs, raw_size / 1e6 / secs, peak_rss_mb (RUSAGE_SELF));
		fflush (stdout);
		_exit (0);
	}
	int status;
	waitpid (pid, &status, 0);
	g_unlink (path);
}

int
main (int argc, char **argv)
{
	int n_small = argc > 1 ? atoi (argv[1]) : 3000;
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("maildesk-bench-XXXXXX", &error);
	MdConf *conf = md_bench_conf_new (dir);

	md_message_init ();
	g_autoptr (MdDesk) desk = md_desk_open (conf, &error);
	if (!desk)
		g_error ("%s", error->message);
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);

	printf ("maildesk ingest benchmark: %d small messages (half text, half multipart/alternative)\n", n_small);
	GPtrArray *shas = g_ptr_array_new_with_free_func (g_free);
	GArray *sizes = g_array_new (FALSE, FALSE, sizeof (gint64));
	gint64 total = 0;
	for (int i = 0; i < n_small; i++) {
		g_autoptr (GString) m = small_message (i, i % 2);
		g_ptr_array_add (shas, spool_bytes (desk, m->str, m->len));
		gint64 len = (gint64) m->len;
		g_array_append_val (sizes, len);
		total += len;
	}

	/* Parse and classify only: what the CPU costs. */
	gint64 t0 = g_get_monotonic_time ();
	for (guint i = 0; i < shas->len; i++) {
		g_autoptr (MdIngestJob) job = md_ingest_job_new (desk, shas->pdata[i], g_array_index (sizes, gint64, i), NULL);
		if (!md_ingest_prepare (job, &error))
			g_error ("%s", error->message);
	}
	double parse_secs = (g_get_monotonic_time () - t0) / 1e6;

	/* Empty durable transactions: what the commit costs. */
	t0 = g_get_monotonic_time ();
	for (int i = 0; i < n_small; i++) {
		md_store_begin (store, NULL);
		md_store_meta_set (store, "bench", "x", NULL);
		md_store_commit (store, NULL);
	}
	double commit_secs = (g_get_monotonic_time () - t0) / 1e6;

	/* The real thing: one transaction per message, as `deliver` does. */
	t0 = g_get_monotonic_time ();
	for (guint i = 0; i < shas->len; i++) {
		MdIngestResult r = { 0 };
		if (!md_ingest_one (desk, store, shas->pdata[i], g_array_index (sizes, gint64, i), NULL, &r, &error))
			g_error ("%s", error->message);
		g_free (r.key);
	}
	double ingest_secs = (g_get_monotonic_time () - t0) / 1e6;

	printf ("  parse+classify only:        %8.0f msg/s\n", n_small / parse_secs);
	printf ("  durable commit only:        %8.0f commits/s (synchronous=FULL, WAL)\n", n_small / commit_secs);
	printf ("  ingest, 1 commit/message:   %8.0f msg/s, %6.1f MB/s (avg %.1f KB)\n", n_small / ingest_secs,
	        total / 1e6 / ingest_secs, total / 1024.0 / n_small);
	printf ("  ingest time spent parsing:  %5.1f %%; in the commit and the rest: %5.1f %%\n",
	        100.0 * parse_secs / ingest_secs, 100.0 - 100.0 * parse_secs / ingest_secs);
	printf ("  peak RSS so far:            %5.1f MB\n", peak_rss_mb (RUSAGE_SELF));

	if (argc > 2 && g_str_equal (argv[2], "small"))
		return 0;
	printf ("big messages (each in a fresh child process):\n");
	bench_big (desk, dir, 10 * 1000 * 1000);
	bench_big (desk, dir, 38 * 1000 * 1000);
	g_ptr_array_unref (shas);
	g_array_unref (sizes);
	return 0;
}
