/* test-prefilter.c - the rules' prefilter reads the triggers a pattern
 * must start with, and never skips a pattern that would have matched:
 * checked against PCRE2 itself on every body pattern of the shipped
 * rules over texts made of their own words. */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "md.h"
#include "prefilter.h"
#include "rules.h"

static char *
describe (const char *pattern)
{
	g_autoptr (MdTriggers) t = md_triggers_new (pattern, strlen (pattern), FALSE);
	return t ? md_triggers_describe (t) : NULL;
}

static void
test_triggers (void)
{
	static const struct {
		const char *pattern;
		const char *triggers;   /* NULL: the pattern cannot be read */
	} cases[] = {
		{ "\\bbug\\b", "bug" },
		{ "\\b(?:bugs?|crash(?:es|ed)?|stack ?traces?|fatal error)\\b", "bug crash fatal stack" },
		{ "\\b(?:I|we) (?:get|got)", "i we" },
		{ "\\b(?:error|http)\\W{0,3}50[0-4]\\b|\\b50[0-4]\\W(?:internal)", "50 error http" },
		{ "\\bprovisioning\\b", "provisio" },       /* keys keep 8 characters */
		{ "\\b(?:(?:an?|new) )+(?:uat|qa)", "a new" },
		{ "\\bx{2}", NULL },                        /* a quantified last character is dropped: none left */
		{ "\\bab*c", "a" },
		{ "\\bab+c", "ab" },
		{ "\\b(?:bug)?crash", NULL },               /* the group may be absent */
		{ "\\b(?:bug)*crash", NULL },
		{ "\\b(?:bug|)crash", NULL },               /* an empty alternative */
		{ "bug", NULL },                            /* no \\b: matches inside words */
		{ "\\bbug|crash", NULL },                   /* one branch without \\b */
		{ "^\\s*how (?:do|can)", NULL },
		{ "\\b[bB]ug", NULL },
		{ "\\b\\Qbug\\E", NULL },
		{ "\\b(?x) b u g", NULL },                  /* inline extended mode */
		{ "\\b(?ix:b u g)", NULL },
		{ "\\b(?#note)bug", NULL },
		{ "\\bbug[|)(]x|\\bfoo", "bug foo" },       /* a class hides | and ( */
		{ "\\bbug[]|]|\\bfoo", "bug foo" },
		{ "\\bbug[[:alpha:]|]|\\bfoo", "bug foo" },
		{ "\\bbug[[:]|\\bfoo", "bug foo" },          /* "[:" then ']': two literals, the class ends */
		{ "\\bbug[[:]|\\bfoo|x:]", NULL },            /* not one class up to ":]": a third branch */
		{ "\\bbug\\|x|\\bfoo", "bug foo" },         /* an escaped | */
		{ "\\b(?=bug)bug", NULL },
		{ "\\b(bugs?|crash)\\b", "bug crash" },          /* a capturing group reads the same */
		{ "\\b(?<name>bug)", NULL },
		{ "\\b(*ACCEPT)bug", NULL },
		{ "\\bfoo(?C\"(\")|x(?C\")\")", NULL },        /* a callout's string hides a "(" and a ")" */
		{ "\\b(?C1)foo", NULL },
		/* found by review: a verb's name is raw text up to ')' */
		{ "\\bfoo(*:[)|bar(*:])", NULL },
		{ "\\bfoo(*MARK:\\)|bar[\\E])]", NULL },
		/* a lone \\E vanishes: the quantifier after it is the o's */
		{ "\\bfoo\\E?", NULL },
		{ "\\b(?:foo)\\E{0}bar", NULL },
		{ "\\bfoo[\\E](]|bar[\\E])]", NULL },
		{ "\\b(*pla:foo)foo", NULL },
		{ "\\b\\x62ug", NULL },
		{ "\\bBUG", "bug" },
		{ "\\bсбой", NULL },                       /* not ASCII: not a trigger */
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		int code;
		PCRE2_SIZE offset;
		pcre2_code *re = pcre2_compile ((PCRE2_SPTR) cases[i].pattern, PCRE2_ZERO_TERMINATED,
						PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &code, &offset, NULL);
		g_assert_nonnull (re);   /* a case PCRE2 refuses would test nothing */
		pcre2_code_free (re);
		g_autofree char *got = describe (cases[i].pattern);
		g_test_message ("%s -> %s", cases[i].pattern, got ? got : "(none)");
		g_assert_cmpstr (got, ==, cases[i].triggers);
	}
	g_assert_null (md_triggers_new ("\\bbug", 5, TRUE));
	/* a trailing backslash (PCRE2 refuses it first) reads nothing past the end */
	g_assert_null (md_triggers_new ("\\b(?:foo\\", 9, FALSE));
	g_assert_null (md_triggers_new ("\\b(?:foo|bar\\", 13, FALSE));
}

static void
test_index (void)
{
	g_autoptr (MdWordIndex) index = md_word_index_new ();
	g_autoptr (MdTriggers) bug = md_triggers_new ("\\b(?:bugs?|crash)", 17, FALSE);
	g_autoptr (MdTriggers) prov = md_triggers_new ("\\bprovisioning", 14, FALSE);

	g_assert_true (md_word_index_fill (index, "We found a BUG today", 20));
	g_assert_true (md_triggers_may_match (bug, index));
	g_assert_true (md_word_index_fill (index, "the debug log; crashes_x", 24));
	g_assert_true (md_triggers_may_match (bug, index));   /* crashes_x starts with crash */
	g_assert_true (md_word_index_fill (index, "the debug log, nothing else", 27));
	g_assert_false (md_triggers_may_match (bug, index));  /* debug does not start with bug */
	g_assert_true (md_word_index_fill (index, "provisional", 11));
	g_assert_true (md_triggers_may_match (prov, index));  /* 8 characters decide: a needless run */
	g_assert_true (md_word_index_fill (index, "provide", 7));
	g_assert_false (md_triggers_may_match (prov, index));
	g_assert_false (md_word_index_fill (index, "un bug caf\xc3\xa9", 12));

	/* A long body (pasted logs): the index grows with it, so words it
	 * lacks are still told apart; one sized for 4 KB would be full. */
	g_autoptr (GString) text = g_string_new (NULL);
	g_autoptr (GRand) rand = g_rand_new_with_seed (7);
	while (text->len < 300 * 1024) {
		for (int i = 0; i < 7; i++)
			g_string_append_c (text, "abcdefghijklm"[g_rand_int_range (rand, 0, 13)]);
		g_string_append_c (text, ' ');
	}
	g_assert_true (md_word_index_fill (index, text->str, text->len));
	guint present = 0;
	static const char *const absent[] = { "\\bnope", "\\bquartz", "\\bwyvern", "\\bzoo", "\\bpony",
	                                      "\\bxylo", "\\bvortex", "\\bsquid", "\\buvula", "\\byonder" };
	for (gsize i = 0; i < G_N_ELEMENTS (absent); i++) {
		g_autoptr (MdTriggers) t = md_triggers_new (absent[i], strlen (absent[i]), FALSE);
		present += md_triggers_may_match (t, index);
	}
	g_assert_cmpuint (present, <=, 2);
	g_assert_true (md_word_index_fill (index, "a short one", 11));   /* and shrinks back */
	g_assert_false (md_triggers_may_match (prov, index));
}

/* ---- the shipped rules against PCRE2 ---- */

typedef struct {
	char *source;
	pcre2_code *code;
	MdTriggers *triggers;
} Pattern;

static void
pattern_free (gpointer data)
{
	Pattern *p = data;
	g_free (p->source);
	pcre2_code_free (p->code);
	md_triggers_free (p->triggers);
	g_free (p);
}

/* Every `body /.../flags` line of the shipped rules, compiled as
 * rules.c compiles them. */
static GPtrArray *
shipped_body_patterns (GPtrArray *words)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	g_autofree char *path = g_build_filename (top ? top : ".", "filters", "default.rules", NULL);
	g_autofree char *text = NULL;
	g_autoptr (GError) error = NULL;
	g_autoptr (GRegex) line = g_regex_new ("^\\s+body\\s+/(.*)/([imsx]*)\\s*$", G_REGEX_MULTILINE, 0, NULL);
	g_autoptr (GRegex) word = g_regex_new ("[A-Za-z0-9_]{2,}", 0, 0, NULL);
	g_autoptr (GMatchInfo) info = NULL;
	GPtrArray *patterns = g_ptr_array_new_with_free_func (pattern_free);

	g_assert_true (g_file_get_contents (path, &text, NULL, &error));
	for (g_regex_match (line, text, 0, &info); g_match_info_matches (info); g_match_info_next (info, NULL)) {
		Pattern *p = g_new0 (Pattern, 1);
		g_autofree char *flags = g_match_info_fetch (info, 2);
		uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_UCP;
		int code;
		PCRE2_SIZE offset;

		p->source = g_match_info_fetch (info, 1);
		if (strchr (flags, 'i'))
			options |= PCRE2_CASELESS;
		if (strchr (flags, 'm'))
			options |= PCRE2_MULTILINE;
		p->code = pcre2_compile ((PCRE2_SPTR) p->source, PCRE2_ZERO_TERMINATED, options, &code, &offset, NULL);
		g_assert_nonnull (p->code);
		p->triggers = md_triggers_new (p->source, strlen (p->source), FALSE);
		g_ptr_array_add (patterns, p);

		g_autoptr (GMatchInfo) w = NULL;
		for (g_regex_match (word, p->source, 0, &w); g_match_info_matches (w); g_match_info_next (w, NULL))
			g_ptr_array_add (words, g_match_info_fetch (w, 0));
	}
	return patterns;
}

/* A text of random words from WORDS, with random case, suffixes glued
 * on and punctuation between. */
static char *
random_text (GRand *rand, GPtrArray *words)
{
	static const char *const glue[] = { " ", " ", " ", ", ", ". ", "\n", "-", "'", " the ", " a " };
	GString *text = g_string_new (NULL);
	int n = g_rand_int_range (rand, 1, 40);

	for (int i = 0; i < n; i++) {
		const char *w = words->pdata[g_rand_int_range (rand, 0, words->len)];
		int shape = g_rand_int_range (rand, 0, 8);
		if (shape == 0)
			g_string_append (text, "x");          /* a prefix glued in front */
		gsize at = text->len;
		g_string_append (text, w);
		if (shape == 1)
			for (gsize j = at; j < text->len; j++)
				text->str[j] = g_ascii_toupper (text->str[j]);
		if (shape == 2)
			g_string_append (text, "ed");
		if (shape == 3)
			g_string_truncate (text, text->len - 1);
		g_string_append (text, glue[g_rand_int_range (rand, 0, G_N_ELEMENTS (glue))]);
	}
	return g_string_free (text, FALSE);
}

static void
test_shipped_rules_agree (void)
{
	g_autoptr (GPtrArray) words = g_ptr_array_new_with_free_func (g_free);
	g_autoptr (GPtrArray) patterns = shipped_body_patterns (words);
	g_autoptr (GRand) rand = g_rand_new_with_seed (20261127);
	g_autoptr (MdWordIndex) index = md_word_index_new ();
	pcre2_match_data *data = pcre2_match_data_create (1, NULL);
	guint with_triggers = 0, skipped = 0, matched = 0;

	for (guint i = 0; i < patterns->len; i++)
		with_triggers += ((Pattern *) patterns->pdata[i])->triggers != NULL;
	/* most shipped patterns must be readable, or the prefilter is idle */
	g_assert_cmpuint (with_triggers * 4, >=, patterns->len * 3);

	for (int round = 0; round < 20000; round++) {
		g_autofree char *text = random_text (rand, words);
		gsize len = strlen (text);
		g_assert_true (md_word_index_fill (index, text, len));

		for (guint i = 0; i < patterns->len; i++) {
			const Pattern *p = patterns->pdata[i];
			int rc = pcre2_match (p->code, (PCRE2_SPTR) text, len, 0, 0, data, NULL);
			if (rc >= 0)
				matched++;
			if (!p->triggers || md_triggers_may_match (p->triggers, index))
				continue;
			skipped++;
			if (rc >= 0)
				g_error ("pattern /%s/ matches \"%s\" but its triggers (%s) said it could not",
					 p->source, text, md_triggers_describe (p->triggers));
		}
	}
	g_test_message ("%u patterns, %u with triggers; %u matches, %u runs skipped",
			patterns->len, with_triggers, matched, skipped);
	g_assert_cmpuint (matched, >, 10000);
	g_assert_cmpuint (skipped, >, 100000);
	pcre2_match_data_free (data);
}

/* Through the rules: the prefilter is consulted (patterns are counted as
 * skipped), a skipped pattern changes nothing, a non-ASCII body is
 * matched in full (the Kelvin sign is a caseless k to PCRE2). */
static void
test_rules_use_it (void)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdRules) rules = md_rules_load_data ("t.rules",
		"rule key\n  body /\\bkeys?\\b/i\n  set tag key\n"
		"rule lock\n  body /\\block(?:ed)?\\b/i\n  set tag lock\n", &error);
	g_assert_no_error (error);
	static const struct {
		const char *body;
		const char *tags;
		guint run, skipped;
	} cases[] = {
		{ "I lost my KEYS", "key", 1, 1 },
		{ "the door is locked, the keyboard too", "lock", 2, 0 },
		{ "monkeys in the blocked yard", "", 0, 2 },
		{ "a \xe2\x84\xaa" "ey for caf\xc3\xa9", "key", 2, 0 },
		{ "", "", 0, 2 },
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		MdRuleInput in = { .body = cases[i].body };
		g_auto (MdClassification) c = { 0 };
		md_rules_classify (rules, &in, &c);
		g_autoptr (GString) tags = g_string_new (NULL);
		for (guint j = 0; j < c.tags->len; j++)
			g_string_append (tags, c.tags->pdata[j]);
		g_assert_cmpstr (tags->str, ==, cases[i].tags);
		g_assert_cmpuint (c.body_patterns_run, ==, cases[i].run);
		g_assert_cmpuint (c.body_patterns_skipped, ==, cases[i].skipped);
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/prefilter/triggers", test_triggers);
	g_test_add_func ("/prefilter/index", test_index);
	g_test_add_func ("/prefilter/shipped-rules-agree", test_shipped_rules_agree);
	g_test_add_func ("/prefilter/rules-use-it", test_rules_use_it);
	return g_test_run ();
}
