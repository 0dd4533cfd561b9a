/* fuzz-authres.c - libFuzzer target for md_authres_verdict: no crash,
 * no hang, no leak, and a header planted below the others never turns a
 * DMARC failure into anything else (the nearest hop's word stands).
 *
 * The input's first line is the From address, each further line one
 * Authentication-Results value, topmost first.  `make fuzz` builds and
 * runs it (tests/fuzz/run.sh). */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "authres.h"

#define MAX_LINES 16

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	static const char *const trusted[] = { "mx.desk.example", "Filter.Desk.Example", NULL };
	char *text = g_strndup ((const char *) data, size);
	char **lines = g_strsplit (text, "\n", MAX_LINES);
	guint n = g_strv_length (lines);
	const char *from = n ? lines[0] : NULL;
	const char *headers[MAX_LINES + 2] = { NULL };
	for (guint i = 1; i < n; i++)
		headers[i - 1] = lines[i];

	MdSenderAuth auth = md_authres_verdict (headers, trusted, from);
	if (auth != MD_SENDER_AUTH_NONE && auth != MD_SENDER_AUTH_PASS && auth != MD_SENDER_AUTH_FAIL)
		__builtin_trap ();
	if (auth == MD_SENDER_AUTH_FAIL && n > 0) {
		const char *at = strrchr (from, '@');
		g_autofree char *planted = g_strdup_printf ("mx.desk.example; dmarc=pass header.from=%s; "
		                                            "dkim=pass header.d=%s; spf=pass smtp.mailfrom=%s",
		                                            at ? at + 1 : "", at ? at + 1 : "", from);
		headers[n - 1] = planted;
		if (md_authres_verdict (headers, trusted, from) != MD_SENDER_AUTH_FAIL)
			__builtin_trap ();
	}
	g_strfreev (lines);
	g_free (text);
	return 0;
}
