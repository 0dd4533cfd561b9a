/* test-spool.c - the spool names files by content and keeps them whole. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "md.h"
#include "spool.h"

static void
test_spool_roundtrip (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-spool-XXXXXX", &error);
	g_assert_no_error (error);
	g_autoptr (MdSpool) spool = md_spool_open (dir, &error);
	g_assert_no_error (error);

	MdSpoolWriter *w = md_spool_writer_new (spool, MD_SPOOL_RAW, 0, &error);
	g_assert_no_error (error);
	g_assert_true (md_spool_writer_write (w, "hello ", 6, &error));
	g_assert_true (md_spool_writer_write (w, "world", 5, &error));
	g_autofree char *hex = NULL;
	g_assert_true (md_spool_writer_commit (w, &hex, &error));
	g_assert_no_error (error);
	/* sha256("hello world") */
	g_assert_cmpstr (hex, ==, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
	g_autofree char *path = md_spool_path (spool, MD_SPOOL_RAW, hex);
	g_autofree char *content = NULL;
	g_assert_true (g_file_get_contents (path, &content, NULL, NULL));
	g_assert_cmpstr (content, ==, "hello world");
}

static void
test_spool_max_size (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-spool-XXXXXX", &error);
	g_autoptr (MdSpool) spool = md_spool_open (dir, &error);
	g_autoptr (MdSpoolWriter) w = md_spool_writer_new (spool, MD_SPOOL_RAW, 8, &error);
	g_assert_true (md_spool_writer_write (w, "12345678", 8, &error));
	g_assert_false (md_spool_writer_write (w, "9", 1, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_TOO_BIG);
	g_assert_false (md_error_is_temporary (error));
}

/* Every raw/XX directory exists (and was made durable) before the first
 * message: a file's fsync and its directory's do not cover a directory
 * created for it. */
static void
test_spool_raw_fanout (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-spool-XXXXXX", &error);
	g_autoptr (MdSpool) spool = md_spool_open (dir, &error);
	g_assert_no_error (error);
	g_autofree char *raw = g_build_filename (dir, "raw", NULL);
	g_autoptr (GDir) d = g_dir_open (raw, 0, &error);
	g_assert_no_error (error);
	guint n = 0;
	const char *name;
	while ((name = g_dir_read_name (d))) {
		g_autofree char *sub = g_build_filename (raw, name, NULL);
		g_assert_true (strlen (name) == 2 && g_ascii_isxdigit (name[0]) && g_ascii_isxdigit (name[1]));
		g_assert_true (g_file_test (sub, G_FILE_TEST_IS_DIR));
		n++;
	}
	g_assert_cmpuint (n, ==, 256);
	/* Opening again finds them all. */
	g_autoptr (MdSpool) again = md_spool_open (dir, &error);
	g_assert_no_error (error);
	md_remove_tree (dir);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/spool/roundtrip", test_spool_roundtrip);
	g_test_add_func ("/spool/max-size", test_spool_max_size);
	g_test_add_func ("/spool/raw-fanout", test_spool_raw_fanout);
	return g_test_run ();
}
