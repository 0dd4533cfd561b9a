/* fuzz-trim.c - libFuzzer target for md_trim_reply: no crash, no hang,
 * no leak, and the new text and the elided part stay valid UTF-8 and
 * never grow beyond the input.
 *
 * Not part of the automake build.  From the source tree, after
 * ./configure:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc \
 *     $(pkg-config --cflags glib-2.0 libpcre2-8) \
 *     tests/fuzz/fuzz-trim.c src/trim.c \
 *     $(pkg-config --libs glib-2.0 libpcre2-8) -o fuzz-trim.fuzz
 *   ./fuzz-trim.fuzz -max_total_time=60 -timeout=5 \
 *     ../shared/corpus/replies/email_reply_trimmer/emails
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "trim.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	char *text = g_strndup ((const char *) data, size);
	char *elided = NULL;
	char *trimmed = md_trim_reply (text, &elided);
	gsize in = strlen (text);

	/* invalid bytes become U+FFFD (3 bytes each), so allow for that */
	if (!g_utf8_validate (trimmed, -1, NULL) || !g_utf8_validate (elided, -1, NULL)
	    || strlen (trimmed) + strlen (elided) > 3 * in + 1)
		__builtin_trap ();
	g_free (trimmed);
	g_free (elided);
	g_free (text);
	return 0;
}
