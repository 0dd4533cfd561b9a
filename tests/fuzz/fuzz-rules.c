/* fuzz-rules.c - libFuzzer target for the rules parser and matcher.
 *
 * The input is a rules file, optionally followed by a line "%%" and a
 * sample message ("Subject: ..." first line, the rest the body) to
 * classify with whatever loaded.  Every input must either load or fail
 * with MD_ERROR_CONFIG whose message is UTF-8, one "file:line: ..." per
 * line; a loaded set classifies without failing, sets only canonical
 * values, and explains each rule that fired.
 *
 * Built and run by tests/fuzz/run.sh (`make fuzz`).  Seeds:
 * filters/default.rules and tests/fuzz/seeds/rules.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"
#include "catalog.h"
#include "rules.h"

#define CHECK(cond) do { if (!(cond)) { g_printerr ("check failed: %s\n", #cond); abort (); } } while (0)

static GLogWriterOutput
quiet_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
		g_log_writer_standard_streams (level, fields, n_fields, data);
		abort ();
	}
	return G_LOG_WRITER_HANDLED;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	g_log_set_writer_func (quiet_writer, NULL, NULL);
	return 0;
}

static const char *const *
no_header (gpointer data, const char *name)
{
	static const char *const values[] = { "fuzz value", NULL };
	return g_ascii_strcasecmp (name, "X-Fuzz") == 0 ? values : NULL;
}

static void
check_errors (const GError *error)
{
	CHECK (error && error->domain == MD_ERROR && error->code == MD_ERROR_CONFIG);
	CHECK (g_utf8_validate (error->message, -1, NULL));
	g_auto (GStrv) lines = g_strsplit (error->message, "\n", -1);
	for (char **l = lines; *l; l++)
		CHECK (**l == 0 || g_str_has_prefix (*l, "fuzz.rules:"));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	g_autofree char *text = g_strndup ((const char *) data, size);  /* stops at a NUL, as a file read does not */
	char *sample = strstr (text, "\n%%\n");
	if (sample) {
		*sample = 0;
		sample += 4;
	}
	g_autoptr (GError) error = NULL;
	g_autoptr (MdRules) rules = md_rules_load_data ("fuzz.rules", text, &error);
	if (!rules) {
		check_errors (error);
		return 0;
	}
	CHECK (!error);

	const char *subject = "Production is down";
	const char *body = "Hello,\nwe see data loss since 10:00.\n";
	g_autofree char *subject_copy = NULL;
	if (sample) {
		char *nl = strchr (sample, '\n');
		subject_copy = nl ? g_strndup (sample, (gsize) (nl - sample)) : g_strdup (sample);
		subject = subject_copy;
		body = nl ? nl + 1 : "";
	}
	const char *to[] = { "support@support.example.com", "security@support.example.com", NULL };
	const char *cc[] = { "boss@customer.example", NULL };
	const char *attachments[] = { "invoice.pdf", "../../etc/passwd", "CON.txt", NULL };
	MdRuleInput input = { .from = "alice@customer.example", .to = to, .cc = cc, .subject = subject,
		              .body = body, .attachments = attachments, .get_header = no_header };
	g_auto (MdClassification) out = { 0 };
	md_rules_classify (rules, &input, &out);
	/* canonical names are their own normal form, as catalog.h returns them */
	CHECK (!out.category || md_category_normalize (out.category) == out.category);
	CHECK (!out.priority || md_priority_normalize (out.priority) == out.priority);
	CHECK (!out.visibility || md_visibility_normalize (out.visibility) == out.visibility);
	for (guint i = 0; out.fired && i < out.fired->len; i++)
		CHECK (g_utf8_validate (g_ptr_array_index (out.fired, i), -1, NULL));
	(void) md_rules_matches_recipient (rules, "support+SUP-1.abcdefghij@support.example.com");
	return 0;
}
