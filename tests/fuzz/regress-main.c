/* regress-main.c - runs a libFuzzer target without libFuzzer, on every
 * file of tests/fuzz/regressions/NAME/ (inputs the fuzzer once crashed
 * on, kept with their fix) and tests/fuzz/seeds/NAME/, printing TAP.
 * Linked with one fuzz-NAME.c into tests/fuzz-regress-NAME, so `make
 * check` (and its sanitizer run) repeats the target's own checks.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#ifndef MD_FUZZ_NAME
#error "MD_FUZZ_NAME names the target"
#endif

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
collect (GPtrArray *files, const char *dir)
{
	g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name (d)))
		g_ptr_array_add (files, g_build_filename (dir, name, NULL));
}

static int
by_name (gconstpointer a, gconstpointer b)
{
	return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

int
main (int argc, char **argv)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *regressions = g_build_filename (top ? top : ".", "tests", "fuzz", "regressions", MD_FUZZ_NAME, NULL);
	g_autofree char *seeds = g_build_filename (top ? top : ".", "tests", "fuzz", "seeds", MD_FUZZ_NAME, NULL);

	collect (files, regressions);
	collect (files, seeds);
	g_ptr_array_sort (files, by_name);
	if (files->len == 0) {
		printf ("Bail out! no inputs under %s or %s\n", regressions, seeds);
		return 1;
	}
	LLVMFuzzerInitialize (&argc, &argv);
	printf ("1..%u\n", files->len);
	for (guint i = 0; i < files->len; i++) {
		const char *path = g_ptr_array_index (files, i);
		g_autofree char *data = NULL;
		gsize len = 0;
		g_autoptr (GError) error = NULL;
		if (!g_file_get_contents (path, &data, &len, &error)) {
			printf ("not ok %u - %s: %s\n", i + 1, path, error->message);
			continue;
		}
		fflush (stdout);
		LLVMFuzzerTestOneInput ((const uint8_t *) data, len);  /* aborts on a failed check */
		printf ("ok %u - %s %s\n", i + 1, MD_FUZZ_NAME, path + strlen (top ? top : "."));
	}
	return 0;
}
