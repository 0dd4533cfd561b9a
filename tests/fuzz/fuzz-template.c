/* fuzz-template.c - libFuzzer target for the template parser and renderer.
 *
 * Not part of the automake build.  From a configured source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc \
 *     $(pkg-config --cflags glib-2.0) tests/fuzz/fuzz-template.c \
 *     src/template.c src/md.c $(pkg-config --libs glib-2.0) -o fuzz-template.fuzz
 *   mkdir -p /tmp/fuzz-template-corpus
 *   ./fuzz-template.fuzz -max_total_time=60 /tmp/fuzz-template-corpus templates/
 *
 * The first byte picks the event; the rest is the template text.  Every
 * input must either load with an MD_ERROR_CONFIG error or render, and
 * the rendering must be valid UTF-8 with a one-line subject.
 */
#include "config.h"

#include <string.h>

#include "md.h"
#include "template.h"

static GHashTable *
variables_for (const char *event)
{
	GHashTable *vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	g_auto (GStrv) names = md_template_event_variables (event);
	int i = 0;
	for (char **n = names; *n; n++, i++) {
		/* some empty, some holding tags and line breaks */
		const char *value = i % 3 == 0 ? "" : i % 3 == 1 ? "{{ticket.key}}\r\n{{#if x}}" : "Значення 値";
		g_hash_table_insert (vars, g_strdup (*n), g_strdup (value));
	}
	return vars;
}

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
	if (size < 1)
		return 0;
	gsize n_events = g_strv_length ((char **) md_template_events);
	const char *event = md_template_events[data[0] % n_events];
	GError *error = NULL;
	MdTemplate *t = md_template_new_from_data (event, "fuzz.tmpl", (const char *) data + 1, size - 1, &error);
	if (!t) {
		g_assert (error && error->domain == MD_ERROR && error->code == MD_ERROR_CONFIG);
		g_assert (g_str_has_prefix (error->message, "fuzz.tmpl"));
		g_error_free (error);
		return 0;
	}
	GHashTable *vars = variables_for (event);
	char *subject = NULL, *body = NULL;
	if (md_template_render (t, vars, &subject, &body, &error)) {
		g_assert (g_utf8_validate (subject, -1, NULL));
		g_assert (g_utf8_validate (body, -1, NULL));
		g_assert (!strchr (subject, '\n') && !strchr (subject, '\r'));
		g_free (subject);
		g_free (body);
	} else {
		g_error_free (error);
	}
	g_hash_table_unref (vars);
	md_template_free (t);
	return 0;
}
