/* fuzz-ingest.c - libFuzzer target for the whole ingest path: the input
 * is a raw message as an MTA would hand it over.  It is spooled, parsed
 * with md_message_parse_file (checking what message.h promises), then
 * ingested with md_ingest_one into a desk in a temporary directory:
 * dedupe, threading, classification, storage and queued notifications.
 *
 * Beyond the sanitizers it checks: the subject is one line of UTF-8 (no
 * header injection into anything built from it), header values carry no
 * CR/LF, the body is UTF-8, attachment names are single path components
 * (no "/", "\\", "..", control characters), every attachment's bytes are
 * in the spool under their SHA-256, ingest either stores the message or
 * fails with a temporary error, and the same bytes again are a duplicate.
 *
 * Built and run by tests/fuzz/run.sh (`make fuzz`); by hand, from a
 * configured build directory, see that script for the flags.  Seeds: the
 * MIME corpus (../shared/corpus/mime) and tests/fuzz/seeds/ingest.
 * The desk is rebuilt every RESET_EVERY inputs so its files stay small.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"
#include "desk.h"
#include "ingest.h"
#include "message.h"
#include "spool.h"

#ifndef MD_FUZZ_SRCDIR
#define MD_FUZZ_SRCDIR "."
#endif

#define CHECK(cond) do { if (!(cond)) { g_printerr ("check failed: %s\n", #cond); abort (); } } while (0)
#define RESET_EVERY 2000

/* Durability is not what this target tests, and an fsync per spool file
 * and per commit would cap it at a hundred inputs a second: these stand
 * in for libc's (the executable's symbols win, for SQLite too). */
int fsync (int fd);
int fdatasync (int fd);
int
fsync (int fd)
{
	return 0;
}
int
fdatasync (int fd)
{
	return 0;
}

static char *root;
static MdDesk *desk;
static MdStore *store;
static guint inputs;

static GLogWriterOutput
quiet_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
		g_log_writer_standard_streams (level, fields, n_fields, data);
		abort ();
	}
	return G_LOG_WRITER_HANDLED;
}

static const char *
srcdir (void)
{
	const char *env = g_getenv ("MD_TOP_SRCDIR");
	return env && *env ? env : MD_FUZZ_SRCDIR;
}

static void
desk_close (void)
{
	g_clear_pointer (&store, md_store_close);
	g_clear_pointer (&desk, md_desk_free);
	if (root)
		md_remove_tree (root);
	g_clear_pointer (&root, g_free);
}

static void
desk_start (void)
{
	g_autoptr (GError) error = NULL;

	root = g_dir_make_tmp ("md-fuzz-ingest-XXXXXX", &error);
	CHECK (root);
	MdConf *conf = md_conf_new_defaults ();
	g_free (conf->data_dir);
	conf->data_dir = g_build_filename (root, "var", NULL);
	g_free (conf->rules);
	conf->rules = g_build_filename (srcdir (), "filters", "default.rules", NULL);
	g_free (conf->templates);
	conf->templates = g_build_filename (srcdir (), "templates", NULL);
	g_free (conf->domain);
	conf->domain = g_strdup ("support.example.com");
	g_mkdir_with_parents (conf->data_dir, 0700);
	desk = md_desk_open (conf, &error);
	if (!desk) {
		g_printerr ("fuzz-ingest: cannot open a desk: %s\n", error->message);
		abort ();
	}
	store = md_desk_open_store (desk, FALSE, &error);
	CHECK (store);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	g_log_set_writer_func (quiet_writer, NULL, NULL);
	md_message_init ();
	desk_start ();
	atexit (desk_close);
	return 0;
}

static gboolean
one_line_utf8 (const char *s)
{
	return s && g_utf8_validate (s, -1, NULL) && !strpbrk (s, "\r\n");
}

static void
check_message (MdMessage *msg)
{
	CHECK (one_line_utf8 (msg->subject));
	CHECK (msg->body && g_utf8_validate (msg->body, -1, NULL));
	CHECK (!msg->from_name || one_line_utf8 (msg->from_name));
	CHECK (!msg->from_addr || one_line_utf8 (msg->from_addr));
	CHECK (!msg->message_id || one_line_utf8 (msg->message_id));
	for (guint i = 0; i < msg->headers->len; i++) {
		const MdHeader *h = g_ptr_array_index (msg->headers, i);
		CHECK (one_line_utf8 (h->value));
	}
	CHECK (msg->attachments->len <= 1000 + 16);
	for (guint i = 0; i < msg->attachments->len; i++) {
		const MdAttachment *a = g_ptr_array_index (msg->attachments, i);
		CHECK (one_line_utf8 (a->filename) && *a->filename);
		CHECK (!strpbrk (a->filename, "/\\") && strcmp (a->filename, "..") != 0 && a->filename[0] != '.');
		for (const char *p = a->filename; *p; p++)
			CHECK ((guchar) *p >= 0x20 && *p != 0x7f);
		CHECK (a->size >= 0 && a->sha256 && strlen (a->sha256) == 64);
		g_autofree char *blob = md_spool_path (desk->spool, MD_SPOOL_BLOB, a->sha256);
		GStatBuf st;
		CHECK (g_stat (blob, &st) == 0 && st.st_size == a->size);
	}
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	g_autoptr (GError) error = NULL;

	if (size == 0)
		return 0;   /* refused before ingest (MD_ERROR_EMPTY) */
	if (++inputs % RESET_EVERY == 0) {
		desk_close ();
		desk_start ();
	}
	MdSpoolWriter *w = md_spool_writer_new (desk->spool, MD_SPOOL_RAW, 0, &error);
	CHECK (w);
	CHECK (md_spool_writer_write (w, data, size, &error));
	g_autofree char *sha = NULL;
	CHECK (md_spool_writer_commit (w, &sha, &error));

	g_autofree char *path = md_spool_path (desk->spool, MD_SPOOL_RAW, sha);
	g_autoptr (MdMessage) msg = md_message_parse_file (path, desk->spool, NULL, &error);
	CHECK (msg);
	check_message (msg);

	MdIngestResult result = { 0 };
	if (!md_ingest_one (desk, store, sha, (gint64) size, NULL, &result, &error)) {
		/* only temporary trouble may stop an ingest; junk is stored */
		if (!md_error_is_temporary (error)) {
			g_printerr ("fuzz-ingest: permanent failure: %s\n", error->message);
			abort ();
		}
		return 0;
	}
	g_free (result.key);
	MdIngestResult again = { 0 };
	g_clear_error (&error);
	CHECK (md_ingest_one (desk, store, sha, (gint64) size, NULL, &again, &error));
	CHECK (again.duplicate);
	g_free (again.key);
	return 0;
}
