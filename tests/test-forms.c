/* test-forms.c - the forms parser reports every mistake with file:line,
 * `Label: value` lines are recognised under any case and synonym, the
 * validators accept what maildesk.forms(5) says and nothing else, and
 * the shipped filters/forms.conf loads and covers the source desk's
 * checklist. */
#include "config.h"

#include <string.h>

#include "forms.h"
#include "md.h"

static const char base[] =
	"# a comment\n"
	"[field license_key]\n"
	"label = License key\n"
	"synonyms = Licence key, License\n"
	"\n"
	"[field env]\n"
	"label = Environment type\n"
	"type = choice\n"
	"choices = production, staging, UAT\n"
	"\n"
	"[field repo]\n"
	"label = Repository link\n"
	"synonyms = Repository, Repo\n"
	"type = ssh-repo\n"
	"\n"
	"[field launch]\n"
	"label = Launch date\n"
	"type = date\n"
	"\n"
	"[form env-request]\n"
	"category = new environment request\n"
	"require = license_key, env, repo\n"
	"estimate = 2-3\n"
	"\n"
	"[form go-live]\n"
	"match = /\\bgo[- ]live\\b/i\n"
	"require = launch\n"
	"notice_field = launch\n"
	"notice_days = 14\n"
	"\n"
	"[form tagged]\n"
	"tag = vip\n"
	"category = Bug, Technical Request\n"
	"require = license_key\n"
	"estimate = investigation\n";

static MdForms *
load_ok (const char *text)
{
	g_autoptr (GError) error = NULL;
	MdForms *forms = md_forms_new_from_data ("t.conf", text, strlen (text), &error);
	g_assert_no_error (error);
	g_assert_nonnull (forms);
	return forms;
}

/* ---- the parser ---- */

/* A file saved with a byte order mark (Windows editors) loads the same. */
static void
test_parse_bom (void)
{
	g_autofree char *text = g_strconcat ("\xEF\xBB\xBF", base, NULL);
	g_autoptr (MdForms) forms = load_ok (text);
	g_assert_nonnull (md_forms_get (forms, "env-request"));
}

static void
test_parse_valid (void)
{
	g_autoptr (MdForms) forms = load_ok (base);
	const MdForm *env = md_forms_get (forms, "env-request");
	int lo = 0, hi = 0, days = 0;
	gboolean investigation = TRUE;

	g_assert_nonnull (env);
	g_assert_true (md_form_estimate (env, &lo, &hi, &investigation));
	g_assert_cmpint (lo, ==, 2);
	g_assert_cmpint (hi, ==, 3);
	g_assert_false (investigation);
	g_assert_cmpuint (md_form_required (env)->len, ==, 3);
	g_assert_cmpstr (md_form_field_name (md_form_required (env)->pdata[2]), ==, "repo");
	g_assert_null (md_form_notice (env, NULL));

	const MdForm *golive = md_forms_get (forms, "go-live");
	g_assert_false (md_form_estimate (golive, NULL, NULL, NULL));
	const MdFormField *launch = md_form_notice (golive, &days);
	g_assert_cmpstr (md_form_field_name (launch), ==, "launch");
	g_assert_cmpint (days, ==, 14);
	g_assert_cmpstr (md_form_notice_tag (golive), ==, "short-notice");

	g_assert_true (md_form_estimate (md_forms_get (forms, "tagged"), NULL, NULL, &investigation));
	g_assert_true (investigation);
}

static void
test_parse_errors (void)
{
	static const struct {
		const char *text;
		const char *error;   /* a line of the error message */
	} cases[] = {
		{ "[field a]\nlabel = A\ntype = bogus\n[form f]\ncategory = Bug\nrequire = a\n",
		  "t.conf:3: unknown type \"bogus\"" },
		{ "[field a]\nlabel = A\n[field b]\nlabel = a\n[form f]\ncategory = Bug\nrequire = a\n",
		  "t.conf:3: field b: \"a\" already names field a" },
		{ "[field a]\nlabel = A\n[form f]\ncategory = Cooking\nrequire = a\n",
		  "t.conf:4: category: \"Cooking\" is not a category" },
		{ "[field a]\nlabel = A\n[form f]\nmatch = /(/\nrequire = a\n", "t.conf:4: match: bad pattern" },
		{ "[field a]\nlabel = A\n[form f]\nmatch = go live\nrequire = a\n", "t.conf:4: match: expected /regex/flags" },
		{ "[field a]\nlabel = A\n[form f]\ncategory = Bug\nrequire = a, nope\n", "t.conf:5: form f: no [field nope]" },
		{ "[field a]\nlabel = A\n[form f]\ncategory = Bug\nrequire = a\nestimate = 3-2\n", "t.conf:6: estimate:" },
		{ "[field a]\nlabel = A\n[form f]\ncategory = Bug\nrequire = a\nestimate = soon\n", "t.conf:6: estimate:" },
		{ "[field a]\nlabel = A\n[form f]\ncategory = Bug\nrequire = a\nnotice_field = a\nnotice_days = 14\n",
		  "t.conf:6: notice_field: field a is not of type date" },
		{ "[field a]\nlabel = A\n[form f]\nrequire = a\n", "t.conf:3: form f applies to nothing" },
		{ "[field a]\nlabel = A\n[form f]\ncategory = Bug\n", "t.conf:3: form f requires no fields" },
		{ "[field a]\ntype = text\n[form f]\ncategory = Bug\nrequire = a\n", "t.conf:1: field a has no label" },
		{ "[field a]\nlabel = A\nlabel = B\n", "t.conf:3: label is set twice" },
		{ "[field a]\nlabel = A\ncolour = red\n", "t.conf:3: unknown key \"colour\"" },
		{ "label = A\n", "t.conf:1: \"label\" outside a [field] or [form] section" },
		{ "[widget w]\nlabel = A\n", "t.conf:1: unknown section [widget w]" },
		{ "[field a]\nlabel A\n", "t.conf:2: expected key = value" },
		{ "[field a]\nlabel = A\ntype = choice\n", "t.conf:1: field a is a choice but lists no choices" },
		{ "[field a]\nlabel = A\n[field a]\nlabel = B\n", "t.conf:3: field a is defined twice (first at line 1)" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (GError) error = NULL;
		g_autoptr (MdForms) forms = md_forms_new_from_data ("t.conf", cases[i].text, strlen (cases[i].text), &error);
		g_assert_null (forms);
		g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
		if (!strstr (error->message, cases[i].error))
			g_error ("case %zu: wanted \"%s\" in:\n%s", i, cases[i].error, error->message);
	}
}

static void
test_parse_reports_every_error (void)
{
	const char *text = "[field a]\nlabel = A\ntype = nope\n[form f]\ncategory = Cooking\nrequire = a, b\n";
	g_autoptr (GError) error = NULL;
	g_autoptr (MdForms) forms = md_forms_new_from_data ("t.conf", text, strlen (text), &error);
	g_assert_null (forms);
	g_auto (GStrv) lines = g_strsplit (error->message, "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, 3);
}

/* ---- matching ---- */

static void
test_match (void)
{
	g_autoptr (MdForms) forms = load_ok (base);
	const MdForm *f = md_forms_match (forms, "New Environment Request", NULL, "Please", "deploy");
	g_assert_cmpstr (md_form_name (f), ==, "env-request");
	f = md_forms_match (forms, "Technical Request", NULL, "Our GO LIVE plan", "");
	g_assert_cmpstr (md_form_name (f), ==, "go-live");
	f = md_forms_match (forms, "Technical Request", NULL, "Plan", "We go-live next month");
	g_assert_cmpstr (md_form_name (f), ==, "go-live");
	g_assert_null (md_forms_match (forms, "Technical Request", NULL, "Plan", "Nothing"));
	f = md_forms_match (forms, "Bug", "security,vip", "x", "y");
	g_assert_cmpstr (md_form_name (f), ==, "tagged");
	g_assert_null (md_forms_match (forms, "Data Migration", "vip", "x", "y"));
}

/* ---- recognition ---- */

static void
test_recognize (void)
{
	g_autoptr (MdForms) forms = load_ok (base);
	const MdForm *env = md_forms_get (forms, "env-request");
	const char *mail =
		"Hello,\n"
		"> Licence key: QUOTED-OLD\n"
		"  - LICENCE KEY: ABC-1\n"
		"License: ABC-2\n"
		"Environment-Type : uat\n"
		"**Repo**: https://github.com/acme/shop\n"
		"repository link: git@github.com:acme/shop.git\n"
		"Launch date: 2027-01-01\n"
		"Subject: not a field\n";
	g_autoptr (GPtrArray) got = md_form_recognize (env, mail);

	g_assert_cmpuint (got->len, ==, 3);
	MdFormEntry *e = got->pdata[0];
	g_assert_cmpstr (md_form_field_name (e->field), ==, "license_key");
	g_assert_cmpstr (e->value, ==, "ABC-1");   /* quoted line skipped, first valid wins */
	e = got->pdata[1];
	g_assert_cmpstr (md_form_field_name (e->field), ==, "env");
	g_assert_cmpstr (e->value, ==, "UAT");
	e = got->pdata[2];
	g_assert_cmpstr (md_form_field_name (e->field), ==, "repo");
	g_assert_cmpstr (e->value, ==, "git@github.com:acme/shop.git");  /* a later valid one replaces the invalid */
	g_assert_null (e->problem);

	g_autoptr (GPtrArray) bad = md_form_recognize (env, "Repo: https://github.com/acme/shop\nrepo: http://x\n");
	g_assert_cmpuint (bad->len, ==, 1);
	e = bad->pdata[0];
	g_assert_null (e->value);
	g_assert_cmpstr (e->given, ==, "https://github.com/acme/shop");
	g_assert_nonnull (strstr (e->problem, "https:// link"));

	g_autoptr (GPtrArray) none = md_form_recognize (env, "License key:\nEnvironment type:   \n");
	g_assert_cmpuint (none->len, ==, 0);
}

/* ---- validators ---- */

static void
test_validators (void)
{
	static const char *const envs[] = { "production", "staging", "UAT", NULL };
	static const struct {
		MdFieldType type;
		const char *value;
		const char *stored;   /* NULL: rejected */
	} cases[] = {
		{ MD_FIELD_SSH_REPO, "git@github.com:acme/shop.git", "git@github.com:acme/shop.git" },
		{ MD_FIELD_SSH_REPO, "git@gitlab.example.com:group/sub/repo", "git@gitlab.example.com:group/sub/repo" },
		{ MD_FIELD_SSH_REPO, "ssh://git@git.example.com:2222/acme/shop.git", "ssh://git@git.example.com:2222/acme/shop.git" },
		{ MD_FIELD_SSH_REPO, "<git@github.com:acme/shop.git>", "git@github.com:acme/shop.git" },
		{ MD_FIELD_SSH_REPO, "https://github.com/acme/shop.git", NULL },
		{ MD_FIELD_SSH_REPO, "git://github.com/acme/shop.git", NULL },
		{ MD_FIELD_SSH_REPO, "github.com/acme/shop", NULL },
		{ MD_FIELD_SSH_REPO, "git@github.com:", NULL },
		{ MD_FIELD_SSH_REPO, "git@bad_host:acme/shop", NULL },
		{ MD_FIELD_SSH_REPO, "ssh://", NULL },
		{ MD_FIELD_CHOICE, "Production", "production" },
		{ MD_FIELD_CHOICE, "uat", "UAT" },
		{ MD_FIELD_CHOICE, "dev", NULL },
		{ MD_FIELD_EMAIL, "Jane.Doe@Example.COM", "jane.doe@example.com" },
		{ MD_FIELD_EMAIL, "<ops+shop@acme.example>", "ops+shop@acme.example" },
		{ MD_FIELD_EMAIL, "jane.doe", NULL },
		{ MD_FIELD_EMAIL, "jane@localhost", NULL },
		{ MD_FIELD_EMAIL, "a@b@c.com", NULL },
		{ MD_FIELD_DOMAIN, "Shop.Example.com.", "shop.example.com" },
		{ MD_FIELD_DOMAIN, "https://shop.example.com/", NULL },
		{ MD_FIELD_DOMAIN, "-bad.example.com", NULL },
		{ MD_FIELD_DOMAIN, "shop", NULL },
		{ MD_FIELD_DOMAIN, "10.0.0.1", NULL },
		{ MD_FIELD_DOMAINS, "a.example.com, B.example.com;c.example.com", "a.example.com, b.example.com, c.example.com" },
		{ MD_FIELD_DOMAINS, "@acme.example @partner.example", "acme.example, partner.example" },
		{ MD_FIELD_DOMAINS, "a.example.com, nope", NULL },
		{ MD_FIELD_VERSION, "5.1.3", "5.1.3" },
		{ MD_FIELD_VERSION, "v6.0", "6.0" },
		{ MD_FIELD_VERSION, "6.0.0-rc1", "6.0.0-rc1" },
		{ MD_FIELD_VERSION, "5", NULL },
		{ MD_FIELD_VERSION, "latest", NULL },
		{ MD_FIELD_VERSION, "5.1.", NULL },
		{ MD_FIELD_DATE, "2027-02-28", "2027-02-28" },
		{ MD_FIELD_DATE, "2027-02-30", NULL },
		{ MD_FIELD_DATE, "28.02.2027", NULL },
		{ MD_FIELD_DATE, "2027-2-3", NULL },
		{ MD_FIELD_NUMBER, "1200", "1200" },
		{ MD_FIELD_NUMBER, "1,200", "1,200" },
		{ MD_FIELD_NUMBER, "~5000", "~5000" },
		{ MD_FIELD_NUMBER, "10k", "10k" },
		{ MD_FIELD_NUMBER, "500+", "500+" },
		{ MD_FIELD_NUMBER, "lots", NULL },
		{ MD_FIELD_NUMBER, "12 users", NULL },
		{ MD_FIELD_TEXT, "  Acme GmbH  ", "Acme GmbH" },
		{ MD_FIELD_TEXT, "   ", NULL },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *problem = NULL;
		g_autofree char *got = md_forms_validate (cases[i].type, envs, cases[i].value, &problem);
		if (g_strcmp0 (got, cases[i].stored) != 0)
			g_error ("case %zu \"%s\": got %s, wanted %s (%s)", i, cases[i].value, got ? got : "(rejected)",
			         cases[i].stored ? cases[i].stored : "(rejected)", problem ? problem : "");
		g_assert_true ((got == NULL) == (problem != NULL));
	}
	g_autofree char *long_value = g_strnfill (MD_FORMS_MAX_VALUE + 1, 'x');
	g_autofree char *problem = NULL;
	g_assert_null (md_forms_validate (MD_FIELD_TEXT, NULL, long_value, &problem));
}

/* ---- the shipped file ---- */

static void
test_shipped_forms (void)
{
	g_autofree char *path = g_build_filename (g_getenv ("MD_TOP_SRCDIR") ? g_getenv ("MD_TOP_SRCDIR") : ".", "filters",
	                                          "forms.conf", NULL);
	g_autoptr (GError) error = NULL;
	g_autoptr (MdForms) forms = md_forms_load_file (path, &error);
	g_assert_no_error (error);

	static const struct {
		const char *category, *subject, *body, *form;
		int fields, max_days;   /* max_days -1: investigation, 0: none */
	} cases[] = {
		{ "Technical Request", "Question", "How do I ...", "technical-request", 2, 0 },
		{ "Bug", "Error", "It crashes", "bug", 2, 0 },
		{ "New Environment Request", "New environment", "Please", "environment-deployment", 11, 3 },
		{ "Access Request", "SSH access", "for Bob", "ssh-access", 3, 2 },
		{ "Access Request", "Access to logs", "please", "log-access", 3, -1 },
		{ "Technical Request", "Add sub-domains", "please", "sub-domains", 1, -1 },
		{ "Technical Request", "Staging", "Please whitelist these email domains on staging", "staging-whitelist", 1, -1 },
		{ "Technical Request", "Go-live notice", "We launch soon", "go-live", 11, 0 },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		const MdForm *f = md_forms_match (forms, cases[i].category, NULL, cases[i].subject, cases[i].body);
		g_assert_nonnull (f);
		g_assert_cmpstr (md_form_name (f), ==, cases[i].form);
		g_assert_cmpuint (md_form_required (f)->len, ==, (guint) cases[i].fields);
		int hi = 0;
		gboolean investigation = FALSE;
		gboolean has = md_form_estimate (f, NULL, &hi, &investigation);
		g_assert_cmpint (!has ? 0 : investigation ? -1 : hi, ==, cases[i].max_days);
	}
	g_assert_nonnull (md_form_notice (md_forms_get (forms, "go-live"), NULL));
	g_assert_null (md_forms_match (forms, "Data Migration", NULL, "Import", "our products"));
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/forms/parse/valid", test_parse_valid);
	g_test_add_func ("/forms/parse/bom", test_parse_bom);
	g_test_add_func ("/forms/parse/errors", test_parse_errors);
	g_test_add_func ("/forms/parse/every-error", test_parse_reports_every_error);
	g_test_add_func ("/forms/match", test_match);
	g_test_add_func ("/forms/recognize", test_recognize);
	g_test_add_func ("/forms/validators", test_validators);
	g_test_add_func ("/forms/shipped", test_shipped_forms);
	return g_test_run ();
}
