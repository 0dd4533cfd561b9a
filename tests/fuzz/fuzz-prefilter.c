/* fuzz-prefilter.c - libFuzzer target for the rules' prefilter: it may
 * only skip a pattern that cannot match.
 *
 * The input is a flags byte (bit 0 caseless, bit 1 multiline, bit 2
 * dotall), a PCRE2 pattern up to the first newline, and the text after
 * it.  When PCRE2 compiles the pattern as rules.c does, its triggers are
 * read and the text indexed; whenever they say "cannot match", PCRE2
 * must agree.
 *
 * Built and run by tests/fuzz/run.sh (`make fuzz`).  Seeds:
 * tests/fuzz/seeds/prefilter.
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prefilter.h"

#define CHECK(cond) do { if (!(cond)) { g_printerr ("check failed: %s\n", #cond); abort (); } } while (0)

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *pattern = (const char *) data + 1;
	const char *newline = memchr (pattern, '\n', size - 1);
	if (!newline)
		return 0;
	gsize pattern_len = newline - pattern;
	const char *text = newline + 1;
	gsize text_len = (const char *) data + size - text;
	uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_UCP;
	if (data[0] & 1)
		options |= PCRE2_CASELESS;
	if (data[0] & 2)
		options |= PCRE2_MULTILINE;
	if (data[0] & 4)
		options |= PCRE2_DOTALL;

	int code;
	PCRE2_SIZE offset;
	pcre2_code *re = pcre2_compile ((PCRE2_SPTR) pattern, pattern_len, options, &code, &offset, NULL);
	if (!re)
		return 0;
	g_autoptr (MdTriggers) triggers = md_triggers_new (pattern, pattern_len, FALSE);
	g_autoptr (MdWordIndex) index = md_word_index_new ();
	if (triggers) {
		g_free (md_triggers_describe (triggers));
		if (md_word_index_fill (index, text, text_len) && !md_triggers_may_match (triggers, index)) {
			pcre2_match_context *context = pcre2_match_context_create (NULL);
			pcre2_match_data *match = pcre2_match_data_create (1, NULL);
			pcre2_set_match_limit (context, 100000);
			int rc = pcre2_match (re, (PCRE2_SPTR) text, text_len, 0, 0, match, context);
			CHECK (rc < 0);   /* no match, or a limit said stop: never a match */
			pcre2_match_data_free (match);
			pcre2_match_context_free (context);
		}
	}
	pcre2_code_free (re);
	return 0;
}
