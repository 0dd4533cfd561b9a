/* test-rules.c - the rules parser reports every mistake where it is, the
 * matcher does what maildesk.rules(5) says, and filters/default.rules
 * sorts real-looking support mail into the right category and priority. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "md.h"
#include "rules.h"

/* ---- helpers ---- */

static MdRules *
load_ok (const char *text)
{
	g_autoptr (GError) error = NULL;
	MdRules *rules = md_rules_load_data ("t.rules", text, &error);
	g_assert_no_error (error);
	g_assert_nonnull (rules);
	return rules;
}

typedef struct {
	const char *name;
	const char *const *values;
} Header;

/* Headers of a test message: a NULL-name-terminated array of Header. */
static const char *const *
get_header (gpointer user_data, const char *name)
{
	for (const Header *h = user_data; h && h->name; h++)
		if (g_ascii_strcasecmp (h->name, name) == 0)
			return h->values;
	return NULL;
}

#define STRV(...) ((const char *const[]) { __VA_ARGS__, NULL })

static char *
tags_joined (const MdClassification *c)
{
	GString *s = g_string_new (NULL);

	for (guint i = 0; i < c->tags->len; i++)
		g_string_append_printf (s, "%s%s", i ? "," : "", (char *) c->tags->pdata[i]);
	return g_string_free (s, FALSE);
}

/* ---- the parser: what it accepts ---- */

static void
test_parse_valid (void)
{
	static const struct {
		const char *text;
		guint rules;
	} cases[] = {
		{ "", 0 },
		{ "# only a comment\n\n   # an indented comment\n", 0 },
		{ "rule a\n  subject /x/\n  set priority P1\n", 1 },
		/* a UTF-8 byte order mark, as Windows editors save it */
		{ "\xEF\xBB\xBFrule a\n  subject /x/\n  stop\n", 1 },
		{ "\xEF\xBB\xBF# a comment\r\nrule a\r\n  subject /x/\r\n  stop\r\n", 1 },
		/* CRLF, tabs, trailing comments, spelling folded by the catalog */
		{ "rule a # the first\r\n\tsubject /x/i # why\r\n\tset category \"security issue/incident\"\r\n", 1 },
		{ "rule a\n  any\n    subject /x/\n    body /y/ms\n  from /z/x\n  set tag t\n  set tag u\n  stop\n", 1 },
		{ "rule a\n  header:X-Spam-Flag /^yes$/i\n  action drop-silently\n"
		  "rule b\n  attachment /\\.exe$/\n  action quarantine\n"
		  "rule c\n  cc \"boss@example.com\"i\n  set assignee agent@desk.example\n  set visibility Shared\n", 3 },
		/* a slash inside a regex, a quote inside a literal */
		{ "rule a\n  subject /a\\/b/\n  body \"say \\\"hi\\\"\"\n  stop\n", 1 },
		/* the example of DESIGN 6, verbatim */
		{ "# a comment\n"
		  "rule security-mailbox\n"
		  "  to       /^security@/i\n"
		  "  set category \"Security Issue/Incident\"\n"
		  "  set priority P1\n"
		  "  stop\n"
		  "\n"
		  "rule outage\n"
		  "  any\n"
		  "    subject  /\\b(down|outage|unavailable|not (working|available))\\b/i\n"
		  "    body     /\\b(data (loss|corruption)|production (is )?down)\\b/i\n"
		  "  set priority P1\n", 2 },
		/* a rule made only of stop is meaningful: nothing after it runs */
		{ "rule last\n  to /./\n  stop\n", 1 },
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (GError) error = NULL;
		g_autoptr (MdRules) rules = md_rules_load_data ("t.rules", cases[i].text, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (md_rules_count (rules), ==, cases[i].rules);
	}
}

/* ---- the parser: each kind of mistake, at its line ---- */

static void
assert_errors (const char *text, const char *const *expected)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdRules) rules = md_rules_load_data ("t.rules", text, &error);

	g_assert_null (rules);
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	g_auto (GStrv) lines = g_strsplit (error->message, "\n", -1);
	if (g_strv_length (lines) != g_strv_length ((char **) expected))
		g_test_message ("got:\n%s", error->message);
	g_assert_cmpuint (g_strv_length (lines), ==, g_strv_length ((char **) expected));
	/* each expected entry is "t.rules:LINE: some words of the message" */
	for (gsize i = 0; expected[i]; i++) {
		const char *colon = strchr (strchr (expected[i], ':') + 1, ':');
		g_autofree char *where = g_strndup (expected[i], colon - expected[i] + 1);
		if (!g_str_has_prefix (lines[i], where) || !strstr (lines[i], colon + 2))
			g_test_message ("got: %s\nwant: %s", lines[i], expected[i]);
		g_assert_true (g_str_has_prefix (lines[i], where));
		g_assert_nonnull (strstr (lines[i], colon + 2));
	}
}

/* Compound literals (STRV) are static only at file scope. */
static const struct {
	const char *text;
	const char *const *errors;
} error_cases[] = {
	{ "rule a\n  subject /(unclosed/\n  stop\n",
	  STRV ("t.rules:2: bad pattern /(unclosed/: missing closing parenthesis") },
	{ "rule a\n  subject /x\n  stop\n", STRV ("t.rules:2: unterminated pattern") },
	{ "rule a\n  subject //\n  stop\n", STRV ("t.rules:2: empty pattern") },
	{ "rule a\n  subject /x/q\n  stop\n", STRV ("t.rules:2: unknown pattern flag \"q\"") },
	{ "rule a\n  subject \"x\"m\n  stop\n", STRV ("t.rules:2: flag \"m\" makes no sense") },
	{ "rule a\n  subject x\n  stop\n", STRV ("t.rules:2: expected a pattern") },
	{ "rule a\n  subject /x/ trailing\n  stop\n", STRV ("t.rules:2: unexpected text after the pattern") },
	{ "rule a\n  sender /x/\n  stop\n", STRV ("t.rules:2: unknown field or action \"sender\"") },
	{ "rule a\n  header: /x/\n  stop\n", STRV ("t.rules:2: bad header name") },
	{ "rule a\n  to /x/\n  action delete\n", STRV ("t.rules:3: unknown action \"delete\"") },
	{ "rule a\n  to /x/\n  set colour red\n", STRV ("t.rules:3: unknown setting \"colour\"") },
	{ "rule a\n  to /x/\n  set category Sales\n", STRV ("t.rules:3: unknown category \"Sales\"") },
	{ "rule a\n  to /x/\n  set priority P5\n", STRV ("t.rules:3: unknown priority \"P5\"") },
	{ "rule a\n  to /x/\n  set visibility public\n", STRV ("t.rules:3: unknown visibility \"public\"") },
	{ "rule a\n  to /x/\n  set assignee bob\n", STRV ("t.rules:3: bad assignee \"bob\"") },
	{ "rule a\n  to /x/\n  set tag \"two words\"\n", STRV ("t.rules:3: bad tag \"two words\"") },
	{ "rule a\n  to /x/\n  set category Access Request\n", STRV ("t.rules:3: unexpected text after the value") },
	{ "rule a\n  to /x/\n  set category \"Bug\n", STRV ("t.rules:3: unterminated string") },
	{ "rule a\n  to /x/\n  set priority\n", STRV ("t.rules:3: \"set priority\" needs a value") },
	{ "rule a\n  to /x/\n  set priority P1\n  set priority P2\n", STRV ("t.rules:4: priority is set twice") },
	{ "rule a\n  to /x/\n  stop now\n", STRV ("t.rules:3: unexpected text after \"stop\"") },
	{ "rule a\n  set priority P1\n", STRV ("t.rules:1: rule \"a\" has no conditions") },
	{ "rule a\n  to /x/\n", STRV ("t.rules:1: rule \"a\" has no actions") },
	{ "rule a\n  to /x/\n  stop\n\nrule a\n  to /y/\n  stop\n",
	  STRV ("t.rules:5: duplicate rule name \"a\" (first at line 1)") },
	{ "rule bad/name\n  to /x/\n  stop\n", STRV ("t.rules:1: bad rule name \"bad/name\"") },
	{ "rule\n  to /x/\n  stop\n", STRV ("t.rules:1: bad rule name \"\"") },
	{ "rule a b\n  to /x/\n  stop\n", STRV ("t.rules:1: unexpected text after the rule name") },
	{ "subject /x/\n", STRV ("t.rules:1: expected \"rule NAME\"") },
	{ "  subject /x/\n  stop\nrule a\n  to /x/\n  stop\n", STRV ("t.rules:1: indented line outside a rule") },
	{ "rule a\n  any\n  to /x/\n  stop\n", STRV ("t.rules:2: empty \"any\" group") },
	{ "rule a\n  any\n    any\n      to /x/\n  stop\n", STRV ("t.rules:3: \"any\" groups do not nest") },
	{ "rule a\n  any\n    to /x/\n    stop\n", STRV ("t.rules:4: \"stop\" inside an \"any\" group") },
	/* a mistake in a block hides its consequences, not later mistakes */
	{ "rule a\n  subject /(/\n  stop\nrule b\n  to /x/\n",
	  STRV ("t.rules:2: bad pattern", "t.rules:4: rule \"b\" has no actions") },
	{ "rule a\n  any now\n    to /x/\n  stop\n", STRV ("t.rules:2: \"any\" stands alone") },
	{ "rule a\n  to /x/\n  set tag caf\xc3\n", STRV ("t.rules:3: not valid UTF-8") },
};

static void
test_parse_errors (void)
{
	for (gsize i = 0; i < G_N_ELEMENTS (error_cases); i++) {
		g_autofree char *shown = g_strescape (error_cases[i].text, NULL);
		g_test_message ("case %zu: %s", i, shown);
		assert_errors (error_cases[i].text, error_cases[i].errors);
	}
}

/* Every mistake of a file comes back at once, in file order. */
static void
test_parse_all_errors (void)
{
	static const char text[] =
		"# a rules file with one mistake in each of several rules\n"   /* 1 */
		"rule fine\n"                                                   /* 2 */
		"  subject /ok/\n"                                              /* 3 */
		"  set priority P2\n"                                           /* 4 */
		"\n"                                                            /* 5 */
		"rule broken-pattern\n"                                         /* 6 */
		"  subject /a(/\n"                                              /* 7 */
		"  set priority P1\n"                                           /* 8 */
		"\n"                                                            /* 9 */
		"rule bad-field\n"                                              /* 10 */
		"  subjet /a/\n"                                                /* 11 */
		"  body /b/\n"                                                  /* 12 */
		"  set priority P9\n"                                           /* 13 */
		"\n"                                                            /* 14 */
		"rule fine\n"                                                   /* 15 */
		"  to /x/\n"                                                    /* 16 */
		"  action bounce\n"                                             /* 17 */
		"rule empty\n";                                                 /* 18 */

	assert_errors (text, STRV ("t.rules:7: bad pattern /a(/",
				   "t.rules:11: unknown field or action \"subjet\"",
				   "t.rules:13: unknown priority \"P9\"",
				   "t.rules:15: duplicate rule name \"fine\" (first at line 2)",
				   "t.rules:17: unknown action \"bounce\"",
				   "t.rules:18: rule \"empty\" has no conditions",
				   "t.rules:18: rule \"empty\" has no actions"));
}

static void
test_parse_limits (void)
{
	g_autoptr (GError) error = NULL;

	/* a line over the limit */
	g_autoptr (GString) text = g_string_new ("rule a\n  subject /");
	for (int i = 0; i < MD_RULES_MAX_LINE; i++)
		g_string_append_c (text, 'x');
	g_string_append (text, "/\n  stop\n");
	g_assert_null (md_rules_load_data ("t.rules", text->str, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	g_assert_true (g_str_has_prefix (error->message, "t.rules:2: line too long"));
	g_clear_error (&error);

	/* a file over the limit is refused before it is parsed */
	g_autoptr (GString) big = g_string_new (NULL);
	while (big->len <= MD_RULES_MAX_FILE_SIZE)
		g_string_append (big, "# padding padding padding padding padding padding\n");
	g_assert_null (md_rules_load_data ("t.rules", big->str, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	g_assert_true (g_str_has_prefix (error->message, "t.rules: file too large"));
	g_clear_error (&error);

	/* conditions per rule */
	g_autoptr (GString) many = g_string_new ("rule a\n");
	for (int i = 0; i <= MD_RULES_MAX_CONDITIONS; i++)
		g_string_append_printf (many, "  subject /x%d/\n", i);
	g_string_append (many, "  stop\n");
	g_assert_null (md_rules_load_data ("t.rules", many->str, &error));
	g_autofree char *want = g_strdup_printf ("t.rules:%d: too many conditions", MD_RULES_MAX_CONDITIONS + 2);
	g_assert_true (g_str_has_prefix (error->message, want));
	g_clear_error (&error);

	/* at most MAX_ERRORS_SHOWN lines, then a count of the rest */
	g_autoptr (GString) noisy = g_string_new (NULL);
	for (int i = 0; i < 150; i++)
		g_string_append_printf (noisy, "rule r%d\n  subjet /x/\n  stop\n", i);
	g_assert_null (md_rules_load_data ("t.rules", noisy->str, &error));
	g_auto (GStrv) lines = g_strsplit (error->message, "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, 101);
	g_assert_cmpstr (lines[99], ==, "t.rules:299: unknown field or action \"subjet\" (fields: from, to, cc, "
			 "subject, body, header:NAME, attachment; actions: set, action, stop)");
	g_assert_cmpstr (lines[100], ==, "t.rules: 50 more errors not shown");
}

static void
test_load_file (void)
{
	g_autoptr (GError) error = NULL;

	g_assert_null (md_rules_load_file ("/nonexistent/maildesk.rules", &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_IO);
	g_clear_error (&error);

	g_autofree char *path = NULL;
	int fd = g_file_open_tmp ("md-rules-XXXXXX", &path, &error);
	g_assert_no_error (error);
	close (fd);
	g_assert_true (g_file_set_contents (path, "rule a\n  to /x/\n  set priority Q\n", -1, &error));
	g_assert_null (md_rules_load_file (path, &error));
	g_autofree char *want = g_strdup_printf ("%s:3: unknown priority \"Q\"", path);
	g_assert_true (g_str_has_prefix (error->message, want));
	g_clear_error (&error);

	/* a NUL byte cannot hide the rest of a file */
	g_assert_true (g_file_set_contents (path, "rule a\n  to /x/\0\n  stop\n", 24, &error));
	g_assert_null (md_rules_load_file (path, &error));
	g_assert_true (strstr (error->message, ":2: NUL byte"));
	g_clear_error (&error);
	g_unlink (path);
}

/* ---- matching ---- */

static const char rules_text[] =
	"rule both\n"                          /* AND: both must hold */
	"  from /@acme\\.example$/\n"
	"  subject /invoice/i\n"
	"  set category \"Consulting Business Request\"\n"
	"  set tag billing\n"
	"rule either\n"                        /* an `any` group is one condition */
	"  any\n"
	"    subject /outage/i\n"
	"    body /production is down/i\n"
	"  set priority P1\n"
	"  set tag urgent\n"
	"rule case-sensitive\n"
	"  subject /URGENT/\n"
	"  set tag shouting\n"
	"rule later-wins\n"
	"  subject /invoice/i\n"
	"  set priority P4\n"
	"  set tag billing\n"
	"  set tag finance\n"
	"rule by-header\n"
	"  header:X-Customer-Tier /^gold$/i\n"
	"  set assignee vip@desk.example\n"
	"  set visibility shared\n"
	"rule by-attachment\n"
	"  attachment /\\.log$/i\n"
	"  set tag has-logs\n"
	"rule by-cc\n"
	"  cc \"ceo@acme.example\"i\n"
	"  set priority P2\n"
	"rule stopper\n"
	"  to /^spam-trap@/\n"
	"  action drop-silently\n"
	"  stop\n"
	"rule after-stop\n"
	"  to /./\n"
	"  set category Bug\n"
	"  action quarantine\n";

typedef struct {
	const char *what;
	const char *from, *subject, *body;
	const char *const *to, *const *cc, *const *attachments;
	const Header *headers;
	const char *category, *priority, *visibility, *assignee, *tags;
	gboolean drop, quarantine;
	const char *fired;          /* names of the fired rules, comma-separated */
} MatchCase;

static const Header gold[] = { { "X-Other", STRV ("1") }, { "x-customer-tier", STRV ("silver", "Gold") }, { NULL } };
static const Header silver[] = { { "X-Customer-Tier", STRV ("silver") }, { NULL } };

static const MatchCase match_cases[] = {
	{ "AND needs both: subject alone",
	  .from = "a@other.example", .subject = "Invoice 42",
	  .priority = "P4", .tags = "billing,finance", .fired = "later-wins" },
	{ "AND holds; later rule overrides priority, tags accumulate without duplicates",
	  .from = "a@acme.example", .subject = "Invoice 42",
	  .category = "Consulting Business Request", .priority = "P4", .tags = "billing,finance",
	  .fired = "both,later-wins" },
	{ "any: the first member",
	  .subject = "Outage in EU", .priority = "P1", .tags = "urgent", .fired = "either" },
	{ "any: the second member",
	  .subject = "help", .body = "our production is DOWN since 9:00",
	  .priority = "P1", .tags = "urgent", .fired = "either" },
	{ "any: neither member", .subject = "help", .body = "all fine", .fired = "" },
	{ "without i, case counts",
	  .subject = "urgent outage", .priority = "P1", .tags = "urgent", .fired = "either" },
	{ "with the right case",
	  .subject = "URGENT outage", .priority = "P1", .tags = "urgent,shouting", .fired = "either,case-sensitive" },
	{ "header:NAME, any of its values, name case-insensitive",
	  .subject = "x", .headers = gold,
	  .assignee = "vip@desk.example", .visibility = "shared", .fired = "by-header" },
	{ "header:NAME, no value matches", .subject = "x", .headers = silver, .fired = "" },
	{ "attachment: any file name",
	  .attachments = STRV ("screenshot.png", "Server.LOG"), .tags = "has-logs", .fired = "by-attachment" },
	{ "cc: literal, case-insensitive, any address",
	  .cc = STRV ("x@acme.example", "CEO@acme.example"), .priority = "P2", .fired = "by-cc" },
	{ "cc: a literal matches anywhere in an address",
	  .cc = STRV ("vice-ceo@acme.example.org"), .priority = "P2", .fired = "by-cc" },
	{ "to: any recipient; rules after it run",
	  .to = STRV ("support@desk.example"), .category = "Bug", .quarantine = TRUE, .fired = "after-stop" },
	{ "stop: nothing after it runs",
	  .to = STRV ("support@desk.example", "spam-trap@desk.example"), .drop = TRUE, .fired = "stopper" },
};

static void
test_match (void)
{
	g_autoptr (MdRules) rules = load_ok (rules_text);

	for (gsize i = 0; i < G_N_ELEMENTS (match_cases); i++) {
		const MatchCase *t = &match_cases[i];
		MdRuleInput in = {
			.from = t->from, .subject = t->subject, .body = t->body, .to = t->to, .cc = t->cc,
			.attachments = t->attachments, .get_header = get_header, .user_data = (gpointer) t->headers,
		};
		g_auto (MdClassification) c = { 0 };

		g_test_message ("case: %s", t->what);
		md_rules_classify (rules, &in, &c);
		g_assert_cmpstr (c.category, ==, t->category);
		g_assert_cmpstr (c.priority, ==, t->priority);
		g_assert_cmpstr (c.visibility, ==, t->visibility);
		g_assert_cmpstr (c.assignee, ==, t->assignee);
		g_autofree char *tags = tags_joined (&c);
		g_assert_cmpstr (tags, ==, t->tags ? t->tags : "");
		g_assert_cmpint (c.drop_silently, ==, t->drop);
		g_assert_cmpint (c.quarantine, ==, t->quarantine);
		g_autoptr (GString) fired = g_string_new (NULL);
		for (guint j = 0; j < c.fired->len; j++)
			g_string_append_printf (fired, "%s%.*s", j ? "," : "",
						(int) strcspn (c.fired->pdata[j], " "), (char *) c.fired->pdata[j]);
		g_assert_cmpstr (fired->str, ==, t->fired);
	}
}

/* An empty input (every field NULL, no header callback) matches nothing. */
static void
test_match_empty_input (void)
{
	g_autoptr (MdRules) rules = load_ok (rules_text);
	MdRuleInput in = { 0 };
	g_auto (MdClassification) c = { 0 };

	md_rules_classify (rules, &in, &c);
	g_assert_null (c.category);
	g_assert_cmpuint (c.fired->len, ==, 0);
	g_assert_cmpuint (c.tags->len, ==, 0);
}

static void
test_explain (void)
{
	g_autoptr (MdRules) rules = load_ok (
		"rule outage\n"
		"  from /@acme/\n"
		"  any\n"
		"    subject /\\bdown\\b/i\n"
		"    body /nothing/\n"
		"  set priority P1\n"
		"  set tag outage\n"
		"  stop\n"
		"rule hello\n"
		"  body /^/\n"
		"  set tag hi\n");
	MdRuleInput in = { .from = "ops@acme.example", .subject = "Shop DOWN\nnow" };
	g_auto (MdClassification) c = { 0 };

	md_rules_classify (rules, &in, &c);
	g_assert_cmpuint (c.fired->len, ==, 1);
	g_assert_cmpstr (c.fired->pdata[0], ==,
			 "outage (t.rules:1): from /@acme/ matched \"@acme\"; subject /\\bdown\\b/i matched \"DOWN\""
			 " -> set priority P1, set tag outage, stop");

	/* long matched text is cut, control characters become spaces, an
	 * empty match shows where it matched */
	g_autoptr (GString) body = g_string_new ("line\tone");
	for (int i = 0; i < 100; i++)
		g_string_append (body, " ä");
	MdRuleInput in2 = { .body = body->str };
	g_auto (MdClassification) c2 = { 0 };
	md_rules_classify (rules, &in2, &c2);
	g_assert_cmpuint (c2.fired->len, ==, 1);
	g_assert_true (g_str_has_prefix (c2.fired->pdata[0], "hello (t.rules:9): body /^/ matched \"line one ä ä"));
	g_assert_true (strstr (c2.fired->pdata[0], " ä...\" -> set tag hi"));
	g_assert_true (g_utf8_validate (c2.fired->pdata[0], -1, NULL));
}

static void
test_matches_recipient (void)
{
	g_autoptr (MdRules) rules = load_ok (
		"rule sec\n"
		"  to /^security@desk\\.example$/i\n"
		"  stop\n"
		"rule grouped\n"
		"  subject /x/\n"
		"  any\n"
		"    to /^(sales|billing)@desk\\.example$/\n"
		"    from /^billing@/\n"
		"  stop\n");

	g_assert_true (md_rules_matches_recipient (rules, "Security@desk.example"));
	g_assert_true (md_rules_matches_recipient (rules, "billing@desk.example"));
	g_assert_false (md_rules_matches_recipient (rules, "Billing@desk.example"));
	g_assert_false (md_rules_matches_recipient (rules, "support@desk.example"));
	/* `from` patterns are not about recipients */
	g_assert_false (md_rules_matches_recipient (rules, "billing@elsewhere.example"));
}

/* Invalid UTF-8 in a message neither crashes nor fails the other fields. */
static void
test_match_invalid_utf8 (void)
{
	g_autoptr (MdRules) rules = load_ok ("rule a\n  body /caf./\n  set tag cafe\n"
					     "rule b\n  subject /ok/\n  set tag ok\n");
	MdRuleInput in = { .subject = "ok", .body = "caf\xc3 \xff\xfe caf\xc3\xa9" };
	g_auto (MdClassification) c = { 0 };

	md_rules_classify (rules, &in, &c);
	g_autofree char *tags = tags_joined (&c);
	g_assert_cmpstr (tags, ==, "cafe,ok");
}

/* A pattern that backtracks catastrophically gives up at the match limit
 * instead of hanging, and the rules after it still run. */
static void
test_pathological (void)
{
	g_autoptr (MdRules) rules = load_ok (
		"rule evil\n  body /^(a+)+$/\n  set tag evil\n"
		"rule evil2\n  subject /^(?:a|aa)+$/\n  set tag evil2\n"
		"rule fine\n  body /a{10}/\n  set tag fine\n");
	g_autoptr (GString) body = g_string_new (NULL);

	for (int i = 0; i < 200000; i++)
		g_string_append_c (body, 'a');
	g_string_append_c (body, '!');
	MdRuleInput in = { .subject = body->str, .body = body->str };
	g_auto (MdClassification) c = { 0 };

	/* and says so in the log, with the pattern's file:line */
	g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "rules: *:2: pattern /^(a+)+$/ gave up on a message*");
	g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "rules: *:5: pattern /^(?:a|aa)+$/ gave up*");
	gint64 start = g_get_monotonic_time ();
	md_rules_classify (rules, &in, &c);
	gint64 elapsed = g_get_monotonic_time () - start;
	g_test_assert_expected_messages ();
	/* once a minute per pattern, not once per message (or per value):
	 * another message at once logs nothing (a warning would fail here) */
	g_auto (MdClassification) again = { 0 };
	md_rules_classify (rules, &in, &again);
	g_test_message ("pathological patterns took %" G_GINT64_FORMAT " us", elapsed);
	g_assert_cmpint (elapsed, <, 2 * G_USEC_PER_SEC);
	g_autofree char *tags = tags_joined (&c);
	g_assert_cmpstr (tags, ==, "fine");
}

/* Only the first MD_RULES_MAX_SCAN bytes of a body are looked at. */
static void
test_scan_limit (void)
{
	g_autoptr (MdRules) rules = load_ok ("rule tail\n  body /needle/\n  set tag found\n");
	g_autoptr (GString) body = g_string_new (NULL);

	while (body->len < MD_RULES_MAX_SCAN - 6)
		g_string_append (body, "hay ");
	g_string_truncate (body, MD_RULES_MAX_SCAN - 6);
	g_string_append (body, "needle");
	MdRuleInput in = { .body = body->str };
	g_auto (MdClassification) c = { 0 };
	md_rules_classify (rules, &in, &c);
	g_assert_cmpuint (c.tags->len, ==, 1);

	g_string_insert (body, 0, "x");
	g_auto (MdClassification) c2 = { 0 };
	md_rules_classify (rules, &in, &c2);
	g_assert_cmpuint (c2.tags->len, ==, 0);
}

/* ---- filters/default.rules on realistic support mail ---- */

typedef struct {
	const char *to;
	const char *subject;
	const char *body;
	const char *category;
	const char *priority;
} SupportMail;

static const SupportMail support_mails[] = {
	{ "support@desk.example", "URGENT: production site is down",
	  "Hi,\n\nsince 08:40 our storefront returns a blank page for every visitor. Nothing was "
	  "deployed on our side. Customers cannot place orders.\n\nRegards,\nOlena",
	  "Technical Request", "P1" },
	{ "support@desk.example", "Checkout not working",
	  "After this morning's update the checkout button does nothing. We are losing sales.",
	  "Technical Request", "P1" },
	{ "support@desk.example", "Orders disappeared from the admin",
	  "Yesterday we had 1,204 orders in the grid, today 300 of them have disappeared. "
	  "Is there a backup? This looks like data loss.",
	  "Technical Request", "P1" },
	{ "support@desk.example", "Product data corrupted after reindex",
	  "All product names in the German locale now show garbage characters; the database "
	  "content seems corrupted.",
	  "Technical Request", "P1" },
	{ "security@desk.example", "Possible issue",
	  "Hello, I think I found something in your login form, please contact me.",
	  "Security Issue/Incident", "P1" },
	{ "support@desk.example", "XSS vulnerability in the product review form",
	  "The review form does not escape the title field; <script> tags run in the admin "
	  "grid. Proof of concept attached.",
	  "Security Issue/Incident", "P2" },
	{ "support@desk.example", "We were hacked",
	  "Our admin panel shows an unknown administrator account created last night and "
	  "the homepage was defaced.",
	  "Security Issue/Incident", "P1" },
	{ "support@desk.example", "Request: new UAT environment",
	  "Please deploy a new UAT environment for our team.\nCountry: Ukraine\nDomain: "
	  "uat.shop.example\nVersion: 5.1\nRepository: git@github.com:acme/shop.git, branch release/5.1",
	  "New Environment Request", "P3" },
	{ "support@desk.example", "Staging for the B2B project",
	  "Hi team, could you set up a staging environment for the B2B storefront? We want to "
	  "start acceptance testing in two weeks.",
	  "New Environment Request", "P3" },
	{ "support@desk.example", "SSH access for our new developer",
	  "Please grant SSH access to the production server for Taras Shevchenko; his public "
	  "key is attached.",
	  "Access Request", "P3" },
	{ "support@desk.example", "Need logs",
	  "Can we get access to the application logs for the last 3 days? We are investigating "
	  "a slow integration.",
	  "Access Request", "P3" },
	{ "support@desk.example", "Migration from Magento 1",
	  "We plan to migrate customers, orders and products from our Magento 1 store. What "
	  "does the database migration process look like and how long does it take?",
	  "Data Migration", "P3" },
	{ "support@desk.example", "Import of 50k products",
	  "We need help with the import of products from our ERP export (CSV, 50,000 rows).",
	  "Data Migration", "P3" },
	{ "support@desk.example", "Training for our content managers",
	  "We would like to book a two-day training session for six content managers. "
	  "Could you send a quote for it?",
	  "Consulting Business Request", "P3" },
	{ "support@desk.example", "Estimate for custom ERP connector",
	  "Could you provide an estimate for building a connector to our SAP instance? "
	  "We are looking for professional services.",
	  "Consulting Business Request", "P3" },
	{ "support@desk.example", "Exception when saving a customer",
	  "Saving a customer with a long address throws an exception: "
	  "Doctrine\\DBAL\\Exception\\DriverException. Stack trace below.",
	  "Bug", "P3" },
	{ "support@desk.example", "500 on product page",
	  "Product pages with more than 30 variants return HTTP 500 Internal Server Error.",
	  "Bug", "P3" },
	{ "support@desk.example", "Typo on the invoice PDF",
	  "The invoice PDF says 'Totla' instead of 'Total'. Cosmetic, but customers notice.",
	  "Technical Request", "P4" },
	{ "support@desk.example", "How do I change the order number prefix?",
	  "I could not find it in the documentation. Thanks!",
	  "Technical Request", "P4" },
	{ "support@desk.example", "Question about price lists",
	  "Hi,\nhow can we assign one price list to several customer groups at once?\nThanks",
	  "Technical Request", "P4" },
	{ "support@desk.example", "Feature request: export wishlists",
	  "It would be nice to export customer wishlists to CSV from the admin.",
	  "Technical Request", "ER" },
	{ "support@desk.example", "Suggestion for the order grid",
	  "Please consider adding an option to filter orders by payment method. Would be great "
	  "for our accountants.",
	  "Technical Request", "ER" },
	{ "support@desk.example", "Order confirmation emails not sent",
	  "Since the mail server change, order confirmation emails are not being sent to "
	  "customers. Orders themselves are created fine.",
	  "Technical Request", "P2" },
	{ "support@desk.example", "Admin severely slow",
	  "The back office has been extremely slow since Monday; opening an order takes 40 "
	  "seconds. The storefront is fine.",
	  "Technical Request", "P2" },
	{ "support@desk.example", "Search results wrong for some categories",
	  "In two categories the filters show 0 products although there are some. Other "
	  "categories work.",
	  "Technical Request", "P3" },
	{ "support@desk.example", "Payment integration failed after update",
	  "Payments via the PayPal integration failed with an error for every order since the "
	  "5.1.2 update; customers can still pay by card.",
	  "Bug", "P2" },
};

static void
test_default_rules (void)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	g_autofree char *path = g_build_filename (top ? top : ".", "filters", "default.rules", NULL);
	g_autoptr (GError) error = NULL;
	g_autoptr (MdRules) rules = md_rules_load_file (path, &error);
	g_assert_no_error (error);
	guint failures = 0;

	for (gsize i = 0; i < G_N_ELEMENTS (support_mails); i++) {
		const SupportMail *m = &support_mails[i];
		const char *const to[] = { m->to, NULL };
		MdRuleInput in = {
			.from = "customer@shop.example", .to = to, .subject = m->subject, .body = m->body,
		};
		g_auto (MdClassification) c = { 0 };

		md_rules_classify (rules, &in, &c);
		const char *category = c.category ? c.category : MD_DEFAULT_CATEGORY;
		const char *priority = c.priority ? c.priority : MD_DEFAULT_PRIORITY;
		if (g_strcmp0 (category, m->category) == 0 && g_strcmp0 (priority, m->priority) == 0)
			continue;
		failures++;
		g_autoptr (GString) why = g_string_new (NULL);
		for (guint j = 0; j < c.fired->len; j++)
			g_string_append_printf (why, "\n    %s", (char *) c.fired->pdata[j]);
		g_test_message ("\"%s\": got %s/%s, want %s/%s; fired:%s", m->subject, category, priority,
				m->category, m->priority, why->str);
	}
	g_assert_cmpuint (failures, ==, 0);
}

/* The default file's own machinery: the security mailbox, quarantined
 * executables, the auto-reply tag. */
static void
test_default_rules_special (void)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	g_autofree char *path = g_build_filename (top ? top : ".", "filters", "default.rules", NULL);
	g_autoptr (GError) error = NULL;
	g_autoptr (MdRules) rules = md_rules_load_file (path, &error);
	g_assert_no_error (error);

	g_assert_true (md_rules_matches_recipient (rules, "security@desk.example"));
	g_assert_false (md_rules_matches_recipient (rules, "support@desk.example"));

	const Header autoreply[] = { { "Auto-Submitted", STRV ("auto-replied") }, { NULL } };
	MdRuleInput in = {
		.subject = "Invoice", .body = "see attached", .attachments = STRV ("invoice.pdf.exe"),
		.get_header = get_header, .user_data = (gpointer) autoreply,
	};
	g_auto (MdClassification) c = { 0 };
	md_rules_classify (rules, &in, &c);
	g_assert_true (c.quarantine);
	g_assert_false (c.drop_silently);
	g_autofree char *tags = tags_joined (&c);
	g_assert_cmpstr (tags, ==, "suspicious-attachment");   /* it stopped there */

	in.attachments = STRV ("invoice.pdf");
	g_auto (MdClassification) c2 = { 0 };
	md_rules_classify (rules, &in, &c2);
	g_assert_false (c2.quarantine);
	g_autofree char *tags2 = tags_joined (&c2);
	g_assert_cmpstr (tags2, ==, "auto-reply");
	g_assert_cmpstr (c2.visibility, ==, NULL);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/rules/parse/valid", test_parse_valid);
	g_test_add_func ("/rules/parse/errors", test_parse_errors);
	g_test_add_func ("/rules/parse/all-errors", test_parse_all_errors);
	g_test_add_func ("/rules/parse/limits", test_parse_limits);
	g_test_add_func ("/rules/parse/load-file", test_load_file);
	g_test_add_func ("/rules/match/semantics", test_match);
	g_test_add_func ("/rules/match/empty-input", test_match_empty_input);
	g_test_add_func ("/rules/match/explain", test_explain);
	g_test_add_func ("/rules/match/recipient", test_matches_recipient);
	g_test_add_func ("/rules/match/invalid-utf8", test_match_invalid_utf8);
	g_test_add_func ("/rules/match/pathological", test_pathological);
	g_test_add_func ("/rules/match/scan-limit", test_scan_limit);
	g_test_add_func ("/rules/default/support-mail", test_default_rules);
	g_test_add_func ("/rules/default/special", test_default_rules_special);
	return g_test_run ();
}
