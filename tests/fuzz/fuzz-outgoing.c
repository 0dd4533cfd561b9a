/* fuzz-outgoing.c - libFuzzer target for queued mail specs (outgoing.h):
 * what the outbox sender reads back from the database and composes.
 *
 * The input is the spec's JSON (the marker is put in front).  A damaged
 * or hostile row must never crash or hang the sender: every input either
 * fails with MD_ERROR_INVALID / MD_ERROR_IO, or composes into a message
 * that GMime reads back with the spec's Message-ID and no bare LF.
 *
 * Built and run by tests/fuzz/run.sh (`make fuzz`); tests/fuzz-regress-
 * outgoing replays tests/fuzz/seeds/outgoing in `make check`.
 */
#include "config.h"

#include <gmime/gmime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"
#include "outgoing.h"

#define CHECK(cond) do { if (!(cond)) { g_printerr ("check failed: %s\n", #cond); abort (); } } while (0)

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	g_mime_init ();
	return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	static const char magic[] = "\0mdspec1\n";
	GByteArray *spec = g_byte_array_sized_new ((guint) (sizeof magic - 1 + size));
	g_byte_array_append (spec, (const guint8 *) magic, sizeof magic - 1);
	g_byte_array_append (spec, data, (guint) size);
	g_autoptr (GBytes) bytes = g_byte_array_free_to_bytes (spec);
	CHECK (md_outgoing_is_spec (bytes));

	g_autoptr (GError) error = NULL;
	g_autoptr (GBytes) mail = md_outgoing_compose (bytes, &error);
	if (!mail) {
		CHECK (error && error->domain == MD_ERROR &&
		       (error->code == MD_ERROR_INVALID || error->code == MD_ERROR_IO));
		return 0;
	}
	CHECK (!error);
	gsize len = 0;
	const char *raw = g_bytes_get_data (mail, &len);
	CHECK (len > 0);
	for (gsize i = 0; i < len; i++)
		CHECK (raw[i] != '\n' || (i > 0 && raw[i - 1] == '\r'));
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer (raw, len);
	GMimeParser *parser = g_mime_parser_new_with_stream (stream);
	GMimeMessage *msg = g_mime_parser_construct_message (parser, NULL);
	CHECK (msg != NULL);
	CHECK (g_mime_message_get_message_id (msg) != NULL);
	g_object_unref (msg);
	g_object_unref (parser);
	g_object_unref (stream);
	return 0;
}
