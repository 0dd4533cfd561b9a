/* test-template.c - templates load with exact file:line errors, and the
 * shipped ones render every variable of their event. */
#include "config.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"
#include "template.h"

typedef struct {
	const char *event;
	const char *text;
	gssize len;             /* -1: strlen */
	const char *expected;   /* the whole error message */
} ErrorCase;

static const ErrorCase error_cases[] = {
	{ "ack", "Subject: x\n\n{{nope}}\n", -1, "t.tmpl:3: unknown variable \"nope\"" },
	{ "ack", "Subject: x\n\nline\nsee {{ticket.key\n", -1, "t.tmpl:4: unclosed \"{{\"" },
	{ "ack", "Subject: x\n\nsee {{ticket.key\n}}\n", -1, "t.tmpl:3: unclosed \"{{\"" },
	{ "ack", "Subject: x\n\n{{#if due}}\nA\n", -1, "t.tmpl:3: {{#if due}} is never closed" },
	{ "ack", "Subject: x\n\nA\n\n{{/if}}\n", -1, "t.tmpl:5: {{/if}} without {{#if}}" },
	{ "ack", "Subject: x\n\n{{else}}\n", -1, "t.tmpl:3: {{else}} outside {{#if}}" },
	{ "ack", "Subject: x\n\n{{#if due}}\n{{else}}\n{{else}}\n{{/if}}\n", -1,
	  "t.tmpl:5: second {{else}} in the {{#if}} of line 3" },
	{ "ack", "Subject: x\n\n{{#each due}}\n", -1, "t.tmpl:3: unknown tag \"{{#each due}}\"" },
	{ "ack", "Subject: x\n\n{{Ticket.Key}}\n", -1, "t.tmpl:3: bad variable name \"Ticket.Key\"" },
	{ "ack", "Subject: x\n\n{{comment}}\n", -1, "t.tmpl:3: variable \"comment\" is not available in ack mail" },
	{ "ack", "\nbody\n", -1, "t.tmpl:1: missing Subject header" },
	{ "ack", "Subject:   \n\nbody\n", -1, "t.tmpl:1: empty Subject" },
	{ "ack", "Subject: a\nSubject: b\n\nbody\n", -1, "t.tmpl:2: duplicate Subject header" },
	{ "ack", "Subject: x\nTo: evil@example.com\n\nbody\n", -1,
	  "t.tmpl:2: header \"To\" is not allowed in a template (only Subject, Importance, Content-Language)" },
	{ "ack", "Subject: x\nImportance: urgent\n\nbody\n", -1,
	  "t.tmpl:2: Importance must be low, normal or high, not \"urgent\"" },
	{ "ack", "Subject: x\nContent-Language: {{x}}\n\nbody\n", -1,
	  "t.tmpl:2: Content-Language must be a language tag such as en or uk-UA, not \"{{x}}\"" },
	{ "ack", "Subject: x\n continued\n\nbody\n", -1, "t.tmpl:2: folded header lines are not supported" },
	{ "ack", "Subject: x\nHello there\n", -1,
	  "t.tmpl:2: expected \"Name: value\" or a blank line ending the headers\n"
	  "t.tmpl:3: no blank line between the headers and the body" },
	{ "ack", "Subject: x\n\nok\n\xff\n", -1, "t.tmpl:4: not valid UTF-8" },
	{ "ack", "Subject: x\n\na\0b\n", 15, "t.tmpl:3: contains a NUL byte" },
	{ "ack", "Subject: x\r\n\r\nA\r\n{{/if}}\r\n", -1, "t.tmpl:4: {{/if}} without {{#if}}" },
	{ "ack", "Subject: {{ticket.key}} {{oops}}\n\n{{x.y}}\nfine\n{{#if due}}{{/if}} {{/if}}\n", -1,
	  "t.tmpl:1: unknown variable \"oops\"\n"
	  "t.tmpl:3: unknown variable \"x.y\"\n"
	  "t.tmpl:5: {{/if}} without {{#if}}" },
	{ "ack", "Subject: {{#if due}}x\n\nbody\n", -1, "t.tmpl:1: {{#if due}} is never closed" },
	{ "ack", "Subject: x\n\n{{#if due}}{{#if due}}{{#if due}}{{#if due}}\n"
	  "{{#if due}}{{#if due}}{{#if due}}{{#if due}}\n{{#if due}}{{#if due}}\n"
	  "{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}{{/if}}\n", -1,
	  "t.tmpl:5: {{#if}} sections nested deeper than 8" },
	{ "nonsense", "Subject: x\n\n", -1, "t.tmpl: \"nonsense\" is not a template event" },
};

static void
test_parse_errors (void)
{
	for (gsize i = 0; i < G_N_ELEMENTS (error_cases); i++) {
		const ErrorCase *c = &error_cases[i];
		g_autoptr (GError) error = NULL;
		gsize len = c->len < 0 ? strlen (c->text) : (gsize) c->len;
		g_autoptr (MdTemplate) t = md_template_new_from_data (c->event, "t.tmpl", c->text, len, &error);
		g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, c->text);
		g_assert_null (t);
		g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
		g_assert_cmpstr (error->message, ==, c->expected);
	}
}

static void
test_error_count_bounded (void)
{
	g_autoptr (GString) text = g_string_new ("Subject: x\n\n");
	for (int i = 0; i < 500; i++)
		g_string_append (text, "{{bad}}\n");
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTemplate) t = md_template_new_from_data ("ack", "t.tmpl", text->str, text->len, &error);
	g_assert_null (t);
	g_auto (GStrv) lines = g_strsplit (error->message, "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, 51);
	g_assert_cmpstr (lines[0], ==, "t.tmpl:3: unknown variable \"bad\"");
	g_assert_cmpstr (lines[49], ==, "t.tmpl:52: unknown variable \"bad\"");
	g_assert_cmpstr (lines[50], ==, "t.tmpl: too many errors");
}

static char *
write_file (const char *dir, const char *name, const char *text)
{
	char *path = g_build_filename (dir, name, NULL);
	g_assert_true (g_file_set_contents (path, text, -1, NULL));
	return path;
}

static void
test_load_files (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-tmpl-XXXXXX", &error);
	g_assert_no_error (error);

	g_autofree char *good = write_file (dir, "followup.tmpl", "Subject: {{ticket.subject}}\n\nBy {{due}}.\n");
	g_autoptr (MdTemplate) t = md_template_load (good, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (md_template_event (t), ==, "followup");

	g_autofree char *bad = write_file (dir, "ack.tmpl", "Subject: x\n\nHello\n{{#if due}}\n");
	g_autoptr (MdTemplate) t2 = md_template_load (bad, &error);
	g_assert_null (t2);
	g_autofree char *expected = g_strdup_printf ("%s:4: {{#if due}} is never closed", bad);
	g_assert_cmpstr (error->message, ==, expected);
	g_clear_error (&error);

	g_autofree char *odd = write_file (dir, "ack.txt", "Subject: x\n\n");
	g_assert_null (md_template_load (odd, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	g_clear_error (&error);

	/* a set reports the broken file and every missing one, each once */
	g_autoptr (MdTemplateSet) set = md_template_set_load (dir, &error);
	g_assert_null (set);
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	g_auto (GStrv) lines = g_strsplit (error->message, "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, g_strv_length ((char **) md_template_events) - 1);
	g_assert_cmpstr (lines[0], ==, expected);
	g_assert_nonnull (strstr (error->message, "agent-reply.tmpl"));
	g_assert_null (strstr (error->message, "followup.tmpl"));

	g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", dir);
	g_assert_cmpint (system (cmd), ==, 0);
}

static GHashTable *
all_variables (const char *event)
{
	GHashTable *vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	g_auto (GStrv) names = md_template_event_variables (event);
	for (char **n = names; *n; n++)
		g_hash_table_insert (vars, g_strdup (*n), g_strdup_printf ("<value of %s>", *n));
	return vars;
}

static char *
shipped_path (const char *event)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	g_autofree char *file = g_strconcat (event, ".tmpl", NULL);
	return g_build_filename (top ? top : ".", "templates", file, NULL);
}

static void
test_shipped_templates (void)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	g_autofree char *dir = g_build_filename (top ? top : ".", "templates", NULL);
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTemplateSet) set = md_template_set_load (dir, &error);
	g_assert_no_error (error);

	for (int i = 0; md_template_events[i]; i++) {
		const char *event = md_template_events[i];
		const MdTemplate *t = md_template_set_get (set, event);
		g_assert_nonnull (t);
		g_autofree char *path = shipped_path (event);
		g_autofree char *source = NULL;
		g_assert_true (g_file_get_contents (path, &source, NULL, NULL));
		g_assert_true (g_str_has_suffix (source, "\n"));
		if (md_template_event_is_customer_facing (event))
			g_assert_nonnull (strstr (source, "{{resolve_link}}"));

		/* with every variable set: each one the template names shows */
		g_autoptr (GHashTable) vars = all_variables (event);
		g_autofree char *subject = NULL, *body = NULL;
		g_assert_true (md_template_render (t, vars, &subject, &body, &error));
		g_assert_no_error (error);
		g_test_message ("%s:\nSubject: %s\n\n%s", event, subject, body);
		g_assert_cmpstr (subject, !=, "");
		g_assert_true (g_utf8_validate (body, -1, NULL));
		g_assert_null (strstr (body, "{{"));
		g_assert_null (strstr (subject, "{{"));
		g_auto (GStrv) names = md_template_event_variables (event);
		for (char **n = names; *n; n++) {
			g_autofree char *tag = g_strdup_printf ("{{%s}}", *n);
			g_autofree char *value = g_strdup_printf ("<value of %s>", *n);
			if (strstr (source, tag))
				g_assert_true (strstr (body, value) || strstr (subject, value));
		}
		if (md_template_event_is_customer_facing (event))
			g_assert_nonnull (strstr (body, "<value of resolve_link>"));

		/* with none set it still renders, to something */
		g_autofree char *subject2 = NULL, *body2 = NULL;
		g_assert_true (md_template_render (t, NULL, &subject2, &body2, &error));
		g_assert_cmpuint (strlen (body2), >, 0);

		/* a section, kept or left out, leaves no run of blank lines */
		g_assert_null (strstr (body, "\n\n\n"));
		for (char **n = names; *n; n++) {
			g_autofree char *section = g_strdup_printf ("{{#if %s}}", *n);
			if (!strstr (source, section))
				continue;
			g_autoptr (GHashTable) without = all_variables (event);
			g_hash_table_insert (without, g_strdup (*n), g_strdup (""));
			g_autofree char *subject3 = NULL, *body3 = NULL;
			g_assert_true (md_template_render (t, without, &subject3, &body3, &error));
			g_test_message ("%s without %s:\n%s", event, *n, body3);
			g_assert_null (strstr (body3, "\n\n\n"));
		}
	}
	g_assert_null (md_template_set_get (set, "nonsense"));
}

typedef struct {
	const char *body;
	const char *vars;       /* "name=value;name=value" */
	const char *expected;
} RenderCase;

static const RenderCase render_cases[] = {
	{ "A{{#if due}}B{{/if}}C", "due=x", "ABC" },
	{ "A{{#if due}}B{{/if}}C", "", "AC" },
	{ "A{{#if due}}B{{/if}}C", "due=", "AC" },
	{ "{{#if due}}yes{{else}}no{{/if}}", "", "no" },
	{ "{{#if due}}yes {{due}}{{else}}no{{/if}}", "due=Monday", "yes Monday" },
	/* section tags alone on a line take the line with them */
	{ "one\n{{#if due}}\ntwo\n{{/if}}\nthree\n", "due=1", "one\ntwo\nthree\n" },
	{ "one\n  {{#if due}}  \ntwo\n{{else}}\nnone\n{{/if}}\nthree\n", "", "one\nnone\nthree\n" },
	{ "one\n{{#if due}}\ntwo\n{{/if}}", "", "one\n" },
	/* nested */
	{ "{{#if due}}a{{#if ticket.key}}b{{else}}c{{/if}}d{{/if}}", "due=1", "acd" },
	{ "{{#if due}}a{{#if ticket.key}}b{{else}}c{{/if}}d{{/if}}", "due=1;ticket.key=K", "abd" },
	{ "{{#if due}}a{{#if ticket.key}}b{{else}}c{{/if}}d{{/if}}", "ticket.key=K", "" },
	/* spaces inside tags; a missing variable is empty */
	{ "[{{ ticket.key }}][{{due}}]", "ticket.key=SUP-1", "[SUP-1][]" },
	/* values are verbatim, never expanded again */
	{ "{{ticket.subject}}", "ticket.subject={{ticket.key}} {{#if due}}x{{/if}} {{", "{{ticket.key}} {{#if due}}x{{/if}} {{" },
	{ "{{#if ticket.subject}}{{ticket.subject}}{{/if}}", "ticket.subject={{due}}", "{{due}}" },
	{ "Привіт, {{ticket.requester}} 日本", "ticket.requester=Олена", "Привіт, Олена 日本" },
};

static GHashTable *
parse_vars (const char *spec)
{
	GHashTable *vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	g_auto (GStrv) pairs = g_strsplit (spec, ";", -1);
	for (char **p = pairs; *p; p++) {
		char *eq = strchr (*p, '=');
		if (eq)
			g_hash_table_insert (vars, g_strndup (*p, eq - *p), g_strdup (eq + 1));
	}
	return vars;
}

static void
test_render (void)
{
	for (gsize i = 0; i < G_N_ELEMENTS (render_cases); i++) {
		const RenderCase *c = &render_cases[i];
		g_autofree char *text = g_strconcat ("Subject: s\n\n", c->body, NULL);
		g_autoptr (GError) error = NULL;
		g_autoptr (MdTemplate) t = md_template_new_from_data ("ack", "t.tmpl", text, strlen (text), &error);
		g_assert_no_error (error);
		g_autoptr (GHashTable) vars = parse_vars (c->vars);
		g_autofree char *subject = NULL, *body = NULL;
		g_assert_true (md_template_render (t, vars, &subject, &body, &error));
		g_test_message ("case %" G_GSIZE_FORMAT, i);
		g_assert_cmpstr (body, ==, c->expected);
	}
}

static void
test_subject_one_line (void)
{
	const char *text = "\xEF\xBB\xBFSubject: Re: {{ticket.subject}} ({{ticket.key}})\nImportance: HIGH\n"
	                   "Content-Language: uk-UA\n\n{{ticket.subject}}\n";
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTemplate) t = md_template_new_from_data ("ack", "t.tmpl", text, strlen (text), &error);
	g_assert_no_error (error);
	g_autoptr (GHashTable) vars = parse_vars ("ticket.key={{due}}");
	g_hash_table_insert (vars, g_strdup ("ticket.subject"), g_strdup ("Hi\r\nBcc: evil@x\t\x01 \xe2\x80\xa8 there"));
	g_autofree char *subject = NULL, *body = NULL;
	g_assert_true (md_template_render (t, vars, &subject, &body, &error));
	g_assert_cmpstr (subject, ==, "Re: Hi Bcc: evil@x there ({{due}})");
	/* the body keeps the value as it is */
	g_assert_cmpstr (body, ==, "Hi\r\nBcc: evil@x\t\x01 \xe2\x80\xa8 there\n");

	const char *const *headers = md_template_headers (t);
	g_assert_cmpstr (headers[0], ==, "Importance");
	g_assert_cmpstr (headers[1], ==, "high");
	g_assert_cmpstr (headers[2], ==, "Content-Language");
	g_assert_cmpstr (headers[3], ==, "uk-UA");
	g_assert_null (headers[4]);
}

static void
test_render_bounds (void)
{
	const char *text = "Subject: s\n\n{{ticket.subject}}{{ticket.subject}}\n";
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTemplate) t = md_template_new_from_data ("ack", "t.tmpl", text, strlen (text), &error);
	g_autoptr (GHashTable) vars = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
	char *big = g_malloc (MD_TEMPLATE_MAX_OUTPUT / 2 + 2);
	memset (big, 'a', MD_TEMPLATE_MAX_OUTPUT / 2 + 1);
	big[MD_TEMPLATE_MAX_OUTPUT / 2 + 1] = '\0';
	g_hash_table_insert (vars, "ticket.subject", big);
	g_autofree char *subject = NULL, *body = NULL;
	g_assert_false (md_template_render (t, vars, &subject, &body, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_TOO_BIG);

	/* invalid UTF-8 in a value is repaired, not passed on */
	g_clear_error (&error);
	g_hash_table_insert (vars, "ticket.subject", g_strdup ("caf\xe9"));
	g_assert_true (md_template_render (t, vars, &subject, &body, &error));
	g_assert_true (g_utf8_validate (body, -1, NULL));
	g_assert_true (g_utf8_validate (subject, -1, NULL));
}

static void
test_variable_table (void)
{
	g_assert_null (md_template_event_variables ("nonsense"));
	for (int i = 0; md_template_events[i]; i++) {
		g_auto (GStrv) names = md_template_event_variables (md_template_events[i]);
		g_assert_true (g_strv_contains ((const char *const *) names, "ticket.key"));
		g_assert_true (g_strv_contains ((const char *const *) names, "desk.name"));
		/* DESIGN 7: every notification carries the resolve link */
		g_assert_true (g_strv_contains ((const char *const *) names, "resolve_link"));
		for (char **n = names; *n; n++) {
			g_assert_nonnull (md_template_variable_description (*n));
			if (n[1])
				g_assert_cmpint (strcmp (n[0], n[1]), <, 0);
		}
	}
	g_auto (GStrv) ack = md_template_event_variables ("ack");
	g_assert_true (g_strv_contains ((const char *const *) ack, "response_time"));
	g_assert_false (g_strv_contains ((const char *const *) ack, "comment"));
	g_assert_true (md_template_event_is_customer_facing ("agent-reply"));
	g_assert_false (md_template_event_is_customer_facing ("customer-reply"));
	g_assert_false (md_template_event_is_customer_facing ("sla-breach"));
	g_assert_null (md_template_variable_description ("nope"));
}

/* Rendering with a mail's own variables over shared ones (a ticket's,
 * for its acknowledgement and its question) is rendering with one table
 * of the shared entries and then the mail's: every shipped template,
 * each variable shared, the mail's own, both (the mail's wins) or unset,
 * empty or not (for {{#if}}), over many draws. */
static void
test_render_over (void)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	g_autofree char *dir = g_build_filename (top ? top : ".", "templates", NULL);
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTemplateSet) set = md_template_set_load (dir, &error);
	g_assert_no_error (error);
	g_autoptr (GRand) rand = g_rand_new_with_seed (20261201);

	for (int i = 0; md_template_events[i]; i++) {
		const MdTemplate *t = md_template_set_get (set, md_template_events[i]);
		g_auto (GStrv) names = md_template_event_variables (md_template_events[i]);
		for (int draw = 0; draw < 200; draw++) {
			g_autoptr (GHashTable) under = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
			g_autoptr (GHashTable) own = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
			g_autoptr (GHashTable) one = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
			for (char **n = names; *n; n++) {
				guint32 where = g_rand_int_range (rand, 0, 4);   /* none, under, own, both */
				const char *under_value = g_rand_boolean (rand) ? "" : "shared";
				const char *own_value = g_rand_boolean (rand) ? "" : "own";
				if (where & 1) {
					g_hash_table_insert (under, g_strdup (*n), g_strdup (under_value));
					g_hash_table_insert (one, g_strdup (*n), g_strdup (under_value));
				}
				if (where & 2) {
					g_hash_table_insert (own, g_strdup (*n), g_strdup (own_value));
					g_hash_table_insert (one, g_strdup (*n), g_strdup (own_value));
				}
			}
			g_autofree char *subject = NULL, *body = NULL, *subject_over = NULL, *body_over = NULL;
			g_assert_true (md_template_render (t, one, &subject, &body, &error));
			g_assert_true (md_template_render_over (t, own, under, &subject_over, &body_over, &error));
			g_assert_no_error (error);
			g_assert_cmpstr (subject_over, ==, subject);
			g_assert_cmpstr (body_over, ==, body);
		}
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/template/parse-errors", test_parse_errors);
	g_test_add_func ("/template/error-count-bounded", test_error_count_bounded);
	g_test_add_func ("/template/load-files", test_load_files);
	g_test_add_func ("/template/shipped", test_shipped_templates);
	g_test_add_func ("/template/render", test_render);
	g_test_add_func ("/template/render-over", test_render_over);
	g_test_add_func ("/template/subject-one-line", test_subject_one_line);
	g_test_add_func ("/template/render-bounds", test_render_bounds);
	g_test_add_func ("/template/variable-table", test_variable_table);
	return g_test_run ();
}
