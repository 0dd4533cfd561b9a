/* forms.c - the forms file: its line parser (every problem with
 * file:line), the matching of a form to a ticket, the recognition of
 * `Label: value` lines and the validators of field values.  The syntax
 * is in forms.h and maildesk.forms(5). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "forms.h"
#include "md.h"

#define MAX_LINE 4096
#define MAX_ERRORS 50
#define MAX_LABEL 80
#define MAX_SCAN_LINES 5000
#define MAX_LIST_ITEMS 50
#define MAX_ESTIMATE_DAYS 365
#define MAX_NOTICE_DAYS 3660

struct _MdFormField {
	char *name;
	char *label;
	GPtrArray *synonyms;    /* char* */
	MdFieldType type;
	char **choices;         /* MD_FIELD_CHOICE */
	char *hint;
	gboolean remember;
	int line;
};

struct _MdForm {
	char *name;
	char **categories;      /* canonical names (static), NULL = any */
	char *tag;
	GRegex *match;
	GPtrArray *required;    /* MdFormField*, borrowed from the set */
	GPtrArray *optional;    /* MdFormField*, borrowed */
	GHashTable *labels;     /* normalized label or synonym -> MdFormField* */
	gboolean has_estimate, investigation;
	int min_days, max_days;
	const MdFormField *notice_field;
	int notice_days;
	char *notice_tag;
	/* names as written, resolved once the whole file is read */
	char **require_names, **optional_names, *notice_name;
	int line, require_line, optional_line, notice_line;
};

struct _MdForms {
	GPtrArray *fields;      /* MdFormField* */
	GPtrArray *forms;       /* MdForm* */
};

static const struct {
	const char *name;
	MdFieldType type;
	const char *hint;
} types[] = {
	{ "text", MD_FIELD_TEXT, "" },
	{ "email", MD_FIELD_EMAIL, "an email address, e.g. jane.doe@example.com" },
	{ "domain", MD_FIELD_DOMAIN, "a domain name, e.g. shop.example.com" },
	{ "domains", MD_FIELD_DOMAINS, "domain names separated by commas, e.g. shop.example.com, b2b.example.com" },
	{ "version", MD_FIELD_VERSION, "a version number, e.g. 5.1.3" },
	{ "date", MD_FIELD_DATE, "a date written YYYY-MM-DD, e.g. 2027-03-15" },
	{ "number", MD_FIELD_NUMBER, "a number, e.g. 1200" },
	{ "ssh-repo", MD_FIELD_SSH_REPO, "in SSH form, e.g. git@github.com:acme/shop.git or ssh://git@git.example.com/acme/shop.git" },
	{ "choice", MD_FIELD_CHOICE, NULL },
};

/* ---- freeing ---- */

static void
field_free (MdFormField *f)
{
	if (!f)
		return;
	g_free (f->name);
	g_free (f->label);
	g_ptr_array_unref (f->synonyms);
	g_strfreev (f->choices);
	g_free (f->hint);
	g_free (f);
}

static void
form_free (MdForm *form)
{
	if (!form)
		return;
	g_free (form->name);
	g_strfreev (form->categories);
	g_free (form->tag);
	if (form->match)
		g_regex_unref (form->match);
	g_ptr_array_unref (form->required);
	g_ptr_array_unref (form->optional);
	g_hash_table_unref (form->labels);
	g_free (form->notice_tag);
	g_strfreev (form->require_names);
	g_strfreev (form->optional_names);
	g_free (form->notice_name);
	g_free (form);
}

static void
forms_clear (MdForms *forms)
{
	if (forms->forms)
		g_ptr_array_unref (forms->forms);
	if (forms->fields)
		g_ptr_array_unref (forms->fields);
}

MdForms *
md_forms_ref (MdForms *forms)
{
	return g_atomic_rc_box_acquire (forms);
}

void
md_forms_unref (MdForms *forms)
{
	if (forms)
		g_atomic_rc_box_release_full (forms, (GDestroyNotify) forms_clear);
}

void
md_form_entry_free (MdFormEntry *e)
{
	if (!e)
		return;
	g_free (e->value);
	g_free (e->given);
	g_free (e->problem);
	g_free (e);
}

/* ---- labels ---- */

/* Case folded, with runs of blanks, '-' and '_' as one space, so that
 * "License-Key", "license_key" and "LICENSE  KEY" are one label. */
static char *
normalize_label (const char *text)
{
	g_autofree char *folded = g_utf8_casefold (text, -1);
	GString *s = g_string_new (NULL);
	gboolean gap = FALSE;
	for (const char *p = folded; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '-' || *p == '_') {
			gap = s->len > 0;
			continue;
		}
		if (gap)
			g_string_append_c (s, ' ');
		gap = FALSE;
		g_string_append_c (s, *p);
	}
	return g_string_free (s, FALSE);
}

/* ---- the parser ---- */

typedef struct {
	const char *file;
	int line;
	GString *errors;
	int n_errors;
	MdForms *forms;
	MdFormField *field;      /* the section being read, one of both */
	MdForm *form;
	GHashTable *seen_keys;   /* keys of the current section */
	gboolean bad_section;    /* its header was reported: skip its keys */
} Parser;

static void parser_error (Parser *p, int line, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
parser_error (Parser *p, int line, const char *fmt, ...)
{
	va_list ap;
	if (++p->n_errors > MAX_ERRORS)
		return;
	if (p->errors->len)
		g_string_append_c (p->errors, '\n');
	g_string_append_printf (p->errors, "%s:%d: ", p->file, line);
	va_start (ap, fmt);
	g_string_append_vprintf (p->errors, fmt, ap);
	va_end (ap);
}

static gboolean
is_name (const char *s)
{
	if (!*s || strlen (s) > 64)
		return FALSE;
	for (; *s; s++)
		if (!g_ascii_isalnum (*s) && *s != '_' && *s != '-' && *s != '.')
			return FALSE;
	return TRUE;
}

/* Comma-separated, trimmed, empty items dropped.  Free with g_strfreev. */
static char **
split_list (const char *value)
{
	g_auto (GStrv) parts = g_strsplit (value, ",", MAX_LIST_ITEMS + 1);
	GPtrArray *out = g_ptr_array_new ();
	for (int i = 0; parts[i]; i++) {
		char *item = g_strstrip (g_strdup (parts[i]));
		if (*item)
			g_ptr_array_add (out, item);
		else
			g_free (item);
	}
	g_ptr_array_add (out, NULL);
	return (char **) g_ptr_array_free (out, FALSE);
}

static gboolean
parse_bool (const char *v, gboolean *out)
{
	if (!g_ascii_strcasecmp (v, "yes") || !g_ascii_strcasecmp (v, "true") || !strcmp (v, "1"))
		*out = TRUE;
	else if (!g_ascii_strcasecmp (v, "no") || !g_ascii_strcasecmp (v, "false") || !strcmp (v, "0"))
		*out = FALSE;
	else
		return FALSE;
	return TRUE;
}

static void
begin_section (Parser *p, char *header)
{
	char *end = strrchr (header, ']');
	p->field = NULL;
	p->form = NULL;
	p->bad_section = TRUE;
	g_hash_table_remove_all (p->seen_keys);
	if (!end || end[1]) {
		parser_error (p, p->line, "bad section header (expected [field NAME] or [form NAME])");
		return;
	}
	*end = 0;
	char *body = g_strstrip (header + 1);
	char *space = strpbrk (body, " \t");
	g_autofree char *kind = space ? g_strndup (body, space - body) : g_strdup (body);
	char *name = space ? g_strstrip (space + 1) : NULL;
	if (strcmp (kind, "field") != 0 && strcmp (kind, "form") != 0) {
		parser_error (p, p->line, "unknown section [%s] (expected [field NAME] or [form NAME])", body);
		return;
	}
	if (!name || !is_name (name)) {
		parser_error (p, p->line, "[%s] needs a name of letters, digits, '_', '-' or '.'", kind);
		return;
	}
	if (strcmp (kind, "field") == 0) {
		for (guint i = 0; i < p->forms->fields->len; i++)
			if (strcmp (((MdFormField *) p->forms->fields->pdata[i])->name, name) == 0)
				parser_error (p, p->line, "field %s is defined twice (first at line %d)", name,
				              ((MdFormField *) p->forms->fields->pdata[i])->line);
		if (p->forms->fields->len >= MD_FORMS_MAX_FIELDS) {
			parser_error (p, p->line, "too many fields (at most %d)", MD_FORMS_MAX_FIELDS);
			return;
		}
		p->field = g_new0 (MdFormField, 1);
		p->field->name = g_strdup (name);
		p->field->synonyms = g_ptr_array_new_with_free_func (g_free);
		p->field->type = MD_FIELD_TEXT;
		p->field->line = p->line;
		g_ptr_array_add (p->forms->fields, p->field);
		p->bad_section = FALSE;
		return;
	}
	for (guint i = 0; i < p->forms->forms->len; i++)
		if (strcmp (((MdForm *) p->forms->forms->pdata[i])->name, name) == 0)
			parser_error (p, p->line, "form %s is defined twice (first at line %d)", name,
			              ((MdForm *) p->forms->forms->pdata[i])->line);
	if (p->forms->forms->len >= MD_FORMS_MAX_FORMS) {
		parser_error (p, p->line, "too many forms (at most %d)", MD_FORMS_MAX_FORMS);
		return;
	}
	p->form = g_new0 (MdForm, 1);
	p->form->name = g_strdup (name);
	p->form->required = g_ptr_array_new ();
	p->form->optional = g_ptr_array_new ();
	p->form->labels = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	p->form->line = p->line;
	g_ptr_array_add (p->forms->forms, p->form);
	p->bad_section = FALSE;
}

static void
field_key (Parser *p, const char *key, const char *value)
{
	MdFormField *f = p->field;
	if (strcmp (key, "label") == 0) {
		if (!*value || strlen (value) > MAX_LABEL || strchr (value, ':'))
			parser_error (p, p->line, "label must be 1 to %d characters without ':'", MAX_LABEL);
		f->label = g_strdup (value);
	} else if (strcmp (key, "synonyms") == 0) {
		g_auto (GStrv) items = split_list (value);
		for (int i = 0; items[i]; i++) {
			if (strlen (items[i]) > MAX_LABEL || strchr (items[i], ':'))
				parser_error (p, p->line, "synonym \"%s\" must be at most %d characters without ':'", items[i],
				              MAX_LABEL);
			g_ptr_array_add (f->synonyms, g_strdup (items[i]));
		}
	} else if (strcmp (key, "type") == 0) {
		gsize i;
		for (i = 0; i < G_N_ELEMENTS (types) && strcmp (types[i].name, value) != 0; i++)
			;
		if (i == G_N_ELEMENTS (types))
			parser_error (p, p->line, "unknown type \"%s\" (text, email, domain, domains, version, date, number, "
			              "ssh-repo or choice)", value);
		else
			f->type = types[i].type;
	} else if (strcmp (key, "choices") == 0) {
		g_strfreev (f->choices);
		f->choices = split_list (value);
		if (!f->choices[0])
			parser_error (p, p->line, "choices: list at least one value");
	} else if (strcmp (key, "hint") == 0) {
		f->hint = g_strdup (value);
	} else if (strcmp (key, "remember") == 0) {
		if (!parse_bool (value, &f->remember))
			parser_error (p, p->line, "remember: \"%s\" is not yes or no", value);
	} else {
		parser_error (p, p->line, "unknown key \"%s\" in a field (label, synonyms, type, choices, hint, remember)", key);
	}
}

/* `/regex/flags`, flags among i, m, s, x. */
static GRegex *
parse_regex (Parser *p, const char *value)
{
	const char *end = strrchr (value, '/');
	if (value[0] != '/' || end == value) {
		parser_error (p, p->line, "match: expected /regex/flags");
		return NULL;
	}
	GRegexCompileFlags flags = G_REGEX_OPTIMIZE;
	for (const char *q = end + 1; *q; q++) {
		switch (*q) {
		case 'i': flags |= G_REGEX_CASELESS; break;
		case 'm': flags |= G_REGEX_MULTILINE; break;
		case 's': flags |= G_REGEX_DOTALL; break;
		case 'x': flags |= G_REGEX_EXTENDED; break;
		default:
			parser_error (p, p->line, "match: unknown flag '%c' (expected i, m, s or x)", *q);
			return NULL;
		}
	}
	g_autofree char *source = g_strndup (value + 1, end - value - 1);
	if (!*source) {
		parser_error (p, p->line, "match: empty pattern");
		return NULL;
	}
	g_autoptr (GError) error = NULL;
	GRegex *re = g_regex_new (source, flags, 0, &error);
	if (!re)
		parser_error (p, p->line, "match: bad pattern: %s", error->message);
	return re;
}

static void
parse_estimate (Parser *p, MdForm *form, const char *value)
{
	if (!g_ascii_strcasecmp (value, "investigation") || !g_ascii_strcasecmp (value, "requires investigation")) {
		form->has_estimate = form->investigation = TRUE;
		return;
	}
	char *end = NULL;
	gint64 lo = g_ascii_strtoll (value, &end, 10), hi = lo;
	if (end != value && *end == '-') {
		const char *second = end + 1;
		hi = g_ascii_strtoll (second, &end, 10);
		if (end == second)
			end = (char *) "x";
	}
	if (end == value || *end || lo < 0 || hi < lo || hi > MAX_ESTIMATE_DAYS || !g_ascii_isdigit (value[0])) {
		parser_error (p, p->line, "estimate: \"%s\" is not working days N or N-M (at most %d), nor investigation",
		              value, MAX_ESTIMATE_DAYS);
		return;
	}
	form->has_estimate = TRUE;
	form->min_days = (int) lo;
	form->max_days = (int) hi;
}

static void
form_key (Parser *p, const char *key, const char *value)
{
	MdForm *form = p->form;
	if (strcmp (key, "category") == 0) {
		g_auto (GStrv) items = split_list (value);
		GPtrArray *names = g_ptr_array_new ();
		for (int i = 0; items[i]; i++) {
			const char *c = md_category_normalize (items[i]);
			if (!c)
				parser_error (p, p->line, "category: \"%s\" is not a category", items[i]);
			else
				g_ptr_array_add (names, g_strdup (c));
		}
		g_ptr_array_add (names, NULL);
		g_strfreev (form->categories);
		form->categories = (char **) g_ptr_array_free (names, FALSE);
	} else if (strcmp (key, "tag") == 0) {
		if (!is_name (value))
			parser_error (p, p->line, "tag: \"%s\" is not a tag name", value);
		form->tag = g_strdup (value);
	} else if (strcmp (key, "match") == 0) {
		form->match = parse_regex (p, value);
	} else if (strcmp (key, "require") == 0) {
		form->require_names = split_list (value);
		form->require_line = p->line;
	} else if (strcmp (key, "optional") == 0) {
		form->optional_names = split_list (value);
		form->optional_line = p->line;
	} else if (strcmp (key, "estimate") == 0) {
		parse_estimate (p, form, value);
	} else if (strcmp (key, "notice_field") == 0) {
		form->notice_name = g_strdup (value);
		form->notice_line = p->line;
	} else if (strcmp (key, "notice_days") == 0) {
		char *end = NULL;
		gint64 n = g_ascii_strtoll (value, &end, 10);
		if (end == value || *end || n < 1 || n > MAX_NOTICE_DAYS)
			parser_error (p, p->line, "notice_days: \"%s\" is not a number of days from 1 to %d", value,
			              MAX_NOTICE_DAYS);
		else
			form->notice_days = (int) n;
	} else if (strcmp (key, "notice_tag") == 0) {
		if (!is_name (value))
			parser_error (p, p->line, "notice_tag: \"%s\" is not a tag name", value);
		form->notice_tag = g_strdup (value);
	} else {
		parser_error (p, p->line, "unknown key \"%s\" in a form (category, tag, match, require, optional, "
		              "estimate, notice_field, notice_days, notice_tag)", key);
	}
}

static void
parse_line (Parser *p, char *line)
{
	g_strstrip (line);
	if (!*line || *line == '#')
		return;
	if (*line == '[') {
		begin_section (p, line);
		return;
	}
	char *eq = strchr (line, '=');
	if (!eq) {
		parser_error (p, p->line, "expected key = value, a [section] or a # comment");
		return;
	}
	*eq = 0;
	char *key = g_strstrip (line);
	char *value = g_strstrip (eq + 1);
	if (!p->field && !p->form) {
		if (!p->bad_section)
			parser_error (p, p->line, "\"%s\" outside a [field] or [form] section", key);
		return;
	}
	if (g_hash_table_contains (p->seen_keys, key)) {
		parser_error (p, p->line, "%s is set twice in this section", key);
		return;
	}
	g_hash_table_add (p->seen_keys, g_strdup (key));
	if (!*value) {
		parser_error (p, p->line, "%s has no value", key);
		return;
	}
	if (p->field)
		field_key (p, key, value);
	else
		form_key (p, key, value);
}

static MdFormField *
find_field (MdForms *forms, const char *name)
{
	for (guint i = 0; i < forms->fields->len; i++)
		if (strcmp (((MdFormField *) forms->fields->pdata[i])->name, name) == 0)
			return forms->fields->pdata[i];
	return NULL;
}

/* Labels and synonyms must name one field only, across the file, so a
 * line of a mail means the same whatever the form. */
static void
check_fields (Parser *p)
{
	g_autoptr (GHashTable) owners = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	for (guint i = 0; i < p->forms->fields->len; i++) {
		MdFormField *f = p->forms->fields->pdata[i];
		if (!f->label) {
			parser_error (p, f->line, "field %s has no label", f->name);
			continue;
		}
		if (f->type == MD_FIELD_CHOICE && !f->choices)
			parser_error (p, f->line, "field %s is a choice but lists no choices", f->name);
		if (f->type != MD_FIELD_CHOICE && f->choices)
			parser_error (p, f->line, "field %s has choices but is not of type choice", f->name);
		for (guint k = 0; k <= f->synonyms->len; k++) {
			const char *text = k == 0 ? f->label : f->synonyms->pdata[k - 1];
			char *norm = normalize_label (text);
			MdFormField *other = g_hash_table_lookup (owners, norm);
			if (other && other != f)
				parser_error (p, f->line, "field %s: \"%s\" already names field %s", f->name, text, other->name);
			if (!other)
				g_hash_table_insert (owners, norm, f);
			else
				g_free (norm);
		}
		/* The field's own name works as a label too (license_key:). */
		char *norm = normalize_label (f->name);
		if (!g_hash_table_contains (owners, norm))
			g_hash_table_insert (owners, norm, f);
		else
			g_free (norm);
	}
}

static void
add_labels (MdForm *form, MdFormField *f)
{
	g_hash_table_insert (form->labels, normalize_label (f->name), f);
	if (f->label)
		g_hash_table_insert (form->labels, normalize_label (f->label), f);
	for (guint k = 0; k < f->synonyms->len; k++)
		g_hash_table_insert (form->labels, normalize_label (f->synonyms->pdata[k]), f);
}

static void
resolve_names (Parser *p, MdForm *form, char **names, int line, GPtrArray *into)
{
	for (int i = 0; names && names[i]; i++) {
		MdFormField *f = find_field (p->forms, names[i]);
		if (!f) {
			parser_error (p, line, "form %s: no [field %s]", form->name, names[i]);
			continue;
		}
		gboolean dup = FALSE;
		for (guint k = 0; k < form->required->len; k++)
			dup |= form->required->pdata[k] == f;
		for (guint k = 0; k < form->optional->len; k++)
			dup |= form->optional->pdata[k] == f;
		if (dup) {
			parser_error (p, line, "form %s names field %s twice", form->name, names[i]);
			continue;
		}
		g_ptr_array_add (into, f);
		add_labels (form, f);
	}
}

static void
check_forms (Parser *p)
{
	for (guint i = 0; i < p->forms->forms->len; i++) {
		MdForm *form = p->forms->forms->pdata[i];
		resolve_names (p, form, form->require_names, form->require_line, form->required);
		resolve_names (p, form, form->optional_names, form->optional_line, form->optional);
		if (!form->require_names)
			parser_error (p, form->line, "form %s requires no fields (require = ...)", form->name);
		if (!form->categories && !form->tag && !form->match)
			parser_error (p, form->line, "form %s applies to nothing: give a category, a tag or a match",
			              form->name);
		if (form->notice_name) {
			MdFormField *f = find_field (p->forms, form->notice_name);
			if (!f)
				parser_error (p, form->notice_line, "form %s: no [field %s]", form->name, form->notice_name);
			else if (f->type != MD_FIELD_DATE)
				parser_error (p, form->notice_line, "notice_field: field %s is not of type date", f->name);
			else if (!g_ptr_array_find (form->required, f, NULL) && !g_ptr_array_find (form->optional, f, NULL))
				parser_error (p, form->notice_line, "notice_field: form %s neither requires nor collects %s",
				              form->name, f->name);
			else
				form->notice_field = f;
			if (!form->notice_days)
				parser_error (p, form->notice_line, "notice_field needs notice_days");
		} else if (form->notice_days || form->notice_tag) {
			parser_error (p, form->line, "form %s: notice_days and notice_tag need a notice_field", form->name);
		}
	}
}

MdForms *
md_forms_new_from_data (const char *filename, const char *data, gsize len, GError **error)
{
	g_autoptr (MdForms) forms = g_atomic_rc_box_new0 (MdForms);
	g_autoptr (GString) errors = g_string_new (NULL);
	g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	Parser p = { .file = filename, .errors = errors, .forms = forms, .seen_keys = seen };

	forms->fields = g_ptr_array_new_with_free_func ((GDestroyNotify) field_free);
	forms->forms = g_ptr_array_new_with_free_func ((GDestroyNotify) form_free);
	if (len > MD_FORMS_MAX_SIZE) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: larger than %d bytes", filename, MD_FORMS_MAX_SIZE);
		return NULL;
	}
	if (!g_utf8_validate (data, len, NULL)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: not UTF-8 text", filename);
		return NULL;
	}
	const char *s = data, *end = data + len;
	/* the byte order mark some editors put first is no text */
	if (len >= 3 && memcmp (s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (s < end) {
		const char *eol = memchr (s, '\n', end - s);
		gsize n = eol ? (gsize) (eol - s) : (gsize) (end - s);
		p.line++;
		if (n > MAX_LINE) {
			parser_error (&p, p.line, "line longer than %d bytes", MAX_LINE);
		} else {
			g_autofree char *line = g_strndup (s, n);
			parse_line (&p, line);
		}
		s = eol ? eol + 1 : end;
	}
	check_fields (&p);
	check_forms (&p);
	if (p.n_errors > MAX_ERRORS)
		g_string_append_printf (errors, "\n%s: %d more errors", filename, p.n_errors - MAX_ERRORS);
	if (errors->len) {
		g_set_error_literal (error, MD_ERROR, MD_ERROR_CONFIG, errors->str);
		return NULL;
	}
	return g_steal_pointer (&forms);
}

MdForms *
md_forms_load_file (const char *path, GError **error)
{
	g_autofree char *data = NULL;
	gsize len = 0;
	g_autoptr (GError) local = NULL;
	if (!g_file_get_contents (path, &data, &len, &local)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: %s", path, local->message);
		return NULL;
	}
	return md_forms_new_from_data (path, data, len, error);
}

/* ---- matching ---- */

static gboolean
has_tag (const char *tags, const char *tag)
{
	g_auto (GStrv) list = tags ? g_strsplit (tags, ",", -1) : NULL;
	for (int i = 0; list && list[i]; i++)
		if (g_ascii_strcasecmp (g_strstrip (list[i]), tag) == 0)
			return TRUE;
	return FALSE;
}

const MdForm *
md_forms_match (const MdForms *forms, const char *category, const char *tags, const char *subject, const char *body)
{
	for (guint i = 0; forms && i < forms->forms->len; i++) {
		const MdForm *form = forms->forms->pdata[i];
		if (form->categories && !g_strv_contains ((const char *const *) form->categories, category ? category : ""))
			continue;
		if (form->tag && !has_tag (tags, form->tag))
			continue;
		if (form->match && !(subject && g_regex_match (form->match, subject, 0, NULL)) &&
		    !(body && g_regex_match (form->match, body, 0, NULL)))
			continue;
		return form;
	}
	return NULL;
}

const MdForm *
md_forms_get (const MdForms *forms, const char *name)
{
	for (guint i = 0; forms && name && i < forms->forms->len; i++)
		if (strcmp (((MdForm *) forms->forms->pdata[i])->name, name) == 0)
			return forms->forms->pdata[i];
	return NULL;
}

const char *
md_form_name (const MdForm *form)
{
	return form->name;
}

gboolean
md_form_estimate (const MdForm *form, int *min_days_r, int *max_days_r, gboolean *investigation_r)
{
	if (min_days_r)
		*min_days_r = form->min_days;
	if (max_days_r)
		*max_days_r = form->max_days;
	if (investigation_r)
		*investigation_r = form->investigation;
	return form->has_estimate;
}

const MdFormField *
md_form_notice (const MdForm *form, int *days_r)
{
	if (days_r)
		*days_r = form->notice_days;
	return form->notice_field;
}

const char *
md_form_notice_tag (const MdForm *form)
{
	return form->notice_tag ? form->notice_tag : "short-notice";
}

const GPtrArray *
md_form_required (const MdForm *form)
{
	return form->required;
}

gboolean
md_forms_require_any (const MdForms *forms)
{
	for (guint i = 0; forms && forms->forms && i < forms->forms->len; i++)
		if (md_form_required (forms->forms->pdata[i])->len)
			return TRUE;
	return FALSE;
}

const char *
md_form_field_name (const MdFormField *f)
{
	return f->name;
}

const char *
md_form_field_label (const MdFormField *f)
{
	return f->label;
}

const char *
md_form_field_hint (const MdFormField *f)
{
	if (f->hint)
		return f->hint;
	for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
		if (types[i].type == f->type && types[i].hint)
			return types[i].hint;
	return "";
}

gboolean
md_form_field_remembered (const MdFormField *f)
{
	return f->remember;
}

/* ---- validators ---- */

#define reject(problem_r, ...) (*(problem_r) = g_strdup_printf (__VA_ARGS__), (char *) NULL)

/* RFC 1035 host names as used on the web: two labels at least, each
 * 1-63 letters, digits or inner hyphens, the last not all digits. */
static gboolean
is_domain (const char *s)
{
	gsize len = strlen (s);
	if (len == 0 || len > 253)
		return FALSE;
	g_auto (GStrv) labels = g_strsplit (s, ".", -1);
	int n = 0;
	gboolean last_numeric = FALSE;
	for (; labels[n]; n++) {
		const char *l = labels[n];
		gsize ll = strlen (l);
		if (ll == 0 || ll > 63 || l[0] == '-' || l[ll - 1] == '-')
			return FALSE;
		last_numeric = TRUE;
		for (const char *c = l; *c; c++) {
			if (!g_ascii_isalnum (*c) && *c != '-')
				return FALSE;
			if (!g_ascii_isdigit (*c))
				last_numeric = FALSE;
		}
	}
	return n >= 2 && !last_numeric;
}

static gboolean
is_email (const char *s)
{
	const char *at = strrchr (s, '@');
	if (!at || at == s || at - s > 64)
		return FALSE;
	for (const char *c = s; c < at; c++)
		if (!g_ascii_isalnum (*c) && !strchr (".!#$%&'*+/=?^_`{|}~-", *c))
			return FALSE;
	return s[0] != '.' && at[-1] != '.' && !strstr (s, "..") && is_domain (at + 1);
}

static gboolean
is_version (const char *s)
{
	if (*s == 'v' || *s == 'V')
		s++;
	int parts = 0;
	for (;;) {
		if (!g_ascii_isdigit (*s))
			return FALSE;
		while (g_ascii_isdigit (*s))
			s++;
		parts++;
		if (*s != '.')
			break;
		s++;
	}
	if (parts < 2 || parts > 4)
		return FALSE;
	if (*s == '-' || *s == '+') {
		if (!s[1])
			return FALSE;
		for (s++; *s; s++)
			if (!g_ascii_isalnum (*s) && *s != '.' && *s != '-')
				return FALSE;
	}
	return *s == 0;
}

static gboolean
is_number (const char *s)
{
	if (*s == '~')
		s++;
	while (*s == ' ')
		s++;
	if (!g_ascii_isdigit (*s))
		return FALSE;
	for (; *s; s++) {
		if (g_ascii_isdigit (*s))
			continue;
		/* 1,200  1 200  1.200  1'200: a separator between digits */
		if (strchr (",. '", *s) && g_ascii_isdigit (s[1]))
			continue;
		break;
	}
	if (*s == 'k' || *s == 'K' || *s == 'M')
		s++;
	if (*s == '+')
		s++;
	return *s == 0;
}

/* user@host:path (scp form) or ssh://[user@]host[:port]/path; NULL when
 * S is one, else what is wrong with it.  Free with g_free. */
static char *
ssh_repo_problem (const char *s)
{
	if (strpbrk (s, " \t"))
		return g_strdup ("a repository link has no spaces");
	if (g_str_has_prefix (s, "ssh://") || g_str_has_prefix (s, "git+ssh://") || g_str_has_prefix (s, "ssh+git://")) {
		g_autoptr (GUri) uri = g_uri_parse (s, G_URI_FLAGS_NONE, NULL);
		const char *host = uri ? g_uri_get_host (uri) : NULL;
		const char *path = uri ? g_uri_get_path (uri) : NULL;
		if (!host || !(is_domain (host) || g_hostname_is_ip_address (host)) || !path || strlen (path) < 2)
			return g_strdup ("it is not a valid ssh:// link with a host and a path");
		return NULL;
	}
	const char *scheme_end = strstr (s, "://");
	if (scheme_end)
		return g_strdup_printf ("it is an %.*s link, not an SSH one", (int) MIN (scheme_end - s + 3, 16), s);
	const char *at = strchr (s, '@');
	const char *colon = at ? strchr (at, ':') : NULL;
	if (!at || !colon || at == s || !colon[1])
		return g_strdup ("it is not an SSH repository link");
	for (const char *c = s; c < at; c++)
		if (!g_ascii_isalnum (*c) && !strchr ("._-", *c))
			return g_strdup ("its user name is not valid");
	g_autofree char *host = g_strndup (at + 1, colon - at - 1);
	if (!is_domain (host) && !g_hostname_is_ip_address (host))
		return g_strdup ("its host is not a valid host name");
	return NULL;
}

static char *
validate_domains (const char *value, char **problem_r)
{
	g_autofree char *lower = g_ascii_strdown (value, -1);
	g_auto (GStrv) items = g_regex_split_simple ("[\\s,;]+", lower, 0, 0);
	GString *out = g_string_new (NULL);
	int n = 0;
	for (int i = 0; items[i]; i++) {
		char *d = items[i];
		if (!*d)
			continue;
		if (d[0] == '@')
			d++;  /* "@example.com" for an email domain */
		if (!is_domain (d) || ++n > MAX_LIST_ITEMS) {
			g_string_free (out, TRUE);
			return n > MAX_LIST_ITEMS ? reject (problem_r, "more than %d domains", MAX_LIST_ITEMS)
			                          : reject (problem_r, "\"%s\" is not a domain name", items[i]);
		}
		g_string_append_printf (out, "%s%s", out->len ? ", " : "", d);
	}
	if (!n) {
		g_string_free (out, TRUE);
		return reject (problem_r, "%s", "no domain names");
	}
	return g_string_free (out, FALSE);
}

char *
md_forms_validate (MdFieldType type, const char *const *choices, const char *value, char **problem_r)
{
	g_autofree char *v = g_strstrip (g_strdup (value ? value : ""));
	gsize len = strlen (v);
	*problem_r = NULL;
	if (!*v)
		return reject (problem_r, "%s", "it is empty");
	if (len > MD_FORMS_MAX_VALUE)
		return reject (problem_r, "it is longer than %d characters", MD_FORMS_MAX_VALUE);
	if (!g_utf8_validate (v, -1, NULL))
		return reject (problem_r, "%s", "it is not valid text");
	/* "<jane@example.com>" and "<https://...>" as mail clients write them */
	if (v[0] == '<' && v[len - 1] == '>' && len > 2) {
		memmove (v, v + 1, len - 2);
		v[len - 2] = 0;
	}
	switch (type) {
	case MD_FIELD_TEXT:
		return g_steal_pointer (&v);
	case MD_FIELD_EMAIL:
		if (!is_email (v))
			return reject (problem_r, "\"%s\" is not an email address", v);
		return g_ascii_strdown (v, -1);
	case MD_FIELD_DOMAIN: {
		g_autofree char *d = g_ascii_strdown (v, -1);
		if (d[strlen (d) - 1] == '.')
			d[strlen (d) - 1] = 0;
		if (strstr (d, "://"))
			return reject (problem_r, "\"%s\" is a link; write the domain name alone, e.g. shop.example.com", v);
		if (!is_domain (d))
			return reject (problem_r, "\"%s\" is not a domain name", v);
		return g_steal_pointer (&d);
	}
	case MD_FIELD_DOMAINS:
		return validate_domains (v, problem_r);
	case MD_FIELD_VERSION:
		if (!is_version (v))
			return reject (problem_r, "\"%s\" is not a version number", v);
		return g_strdup (v[0] == 'v' || v[0] == 'V' ? v + 1 : v);
	case MD_FIELD_DATE: {
		int y = 0, m = 0, d = 0, used = 0;
		if (sscanf (v, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 || used != (int) strlen (v) || len != 10 ||
		    !g_date_valid_dmy (d, m, y))
			return reject (problem_r, "\"%s\" is not a date written YYYY-MM-DD", v);
		return g_strdup_printf ("%04d-%02d-%02d", y, m, d);
	}
	case MD_FIELD_NUMBER:
		if (!is_number (v))
			return reject (problem_r, "\"%s\" is not a number", v);
		return g_steal_pointer (&v);
	case MD_FIELD_SSH_REPO: {
		g_autofree char *why = ssh_repo_problem (v);
		if (why)
			return reject (problem_r, "\"%s\": %s", v, why);
		return g_steal_pointer (&v);
	}
	case MD_FIELD_CHOICE:
		for (int i = 0; choices && choices[i]; i++)
			if (g_ascii_strcasecmp (choices[i], v) == 0)
				return g_strdup (choices[i]);
		{
			g_autofree char *list = choices ? g_strjoinv (", ", (char **) choices) : g_strdup ("");
			return reject (problem_r, "\"%s\" is not one of: %s", v, list);
		}
	}
	return reject (problem_r, "%s", "unknown type");
}

char *
md_form_field_validate (const MdFormField *f, const char *value, char **problem_r)
{
	return md_forms_validate (f->type, (const char *const *) f->choices, value, problem_r);
}

/* ---- recognition ---- */

/* Splits "  - **License key**: ABC-123" into label and value; FALSE when
 * the line is no `Label: value` line. */
static gboolean
split_field_line (const char *line, char **label_r, char **value_r)
{
	const char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '>')
		return FALSE;  /* quoted from an earlier mail */
	if ((*s == '-' || *s == '*' || *s == '+') && (s[1] == ' ' || s[1] == '\t'))
		s += 2;
	else if (g_str_has_prefix (s, "\xe2\x80\xa2"))  /* U+2022 bullet */
		s += 3;
	const char *colon = strchr (s, ':');
	if (!colon || colon == s || colon - s > MAX_LABEL)
		return FALSE;
	g_autofree char *label = g_strndup (s, colon - s);
	/* markdown and rich-text emphasis around the label */
	g_strdelimit (label, "*", ' ');
	g_strstrip (label);
	if (!*label)
		return FALSE;
	const char *v = colon + 1;
	if (g_str_has_prefix (v, "**"))
		v += 2;  /* "**License key:** ABC" */
	*label_r = g_steal_pointer (&label);
	*value_r = g_strstrip (g_strndup (v, MIN (strlen (v), MD_FORMS_MAX_VALUE * 2)));
	return TRUE;
}

static gint
entry_order (gconstpointer a, gconstpointer b, gpointer user_data)
{
	const MdForm *form = user_data;
	const MdFormField *fa = (*(MdFormEntry *const *) a)->field, *fb = (*(MdFormEntry *const *) b)->field;
	guint ia = 0, ib = 0;
	if (!g_ptr_array_find (form->required, fa, &ia) && g_ptr_array_find (form->optional, fa, &ia))
		ia += form->required->len;
	if (!g_ptr_array_find (form->required, fb, &ib) && g_ptr_array_find (form->optional, fb, &ib))
		ib += form->required->len;
	return ia < ib ? -1 : ia > ib;
}

GPtrArray *
md_form_recognize (const MdForm *form, const char *text)
{
	GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) md_form_entry_free);
	g_autoptr (GHashTable) by_field = g_hash_table_new (NULL, NULL);
	const char *p = text ? text : "";
	int lines = 0;

	while (*p && lines++ < MAX_SCAN_LINES) {
		const char *eol = strchr (p, '\n');
		gsize n = eol ? (gsize) (eol - p) : strlen (p);
		g_autofree char *line = g_strndup (p, MIN (n, (gsize) MAX_LINE));
		g_autofree char *label = NULL, *value = NULL;
		p = eol ? eol + 1 : p + n;
		if (!split_field_line (line, &label, &value) || !*value)
			continue;
		g_autofree char *norm = normalize_label (label);
		const MdFormField *f = g_hash_table_lookup (form->labels, norm);
		if (!f)
			continue;
		MdFormEntry *seen = g_hash_table_lookup (by_field, f);
		if (seen && !seen->problem)
			continue;  /* the first valid value wins */
		char *problem = NULL;
		char *valid = md_form_field_validate (f, value, &problem);
		if (seen && !valid) {
			g_free (problem);
			continue;  /* keep the first invalid one */
		}
		MdFormEntry *e = seen ? seen : g_new0 (MdFormEntry, 1);
		e->field = f;
		g_free (e->given);
		e->given = g_steal_pointer (&value);
		e->value = valid;
		g_free (e->problem);
		e->problem = problem;
		if (!seen) {
			g_hash_table_insert (by_field, (gpointer) f, e);
			g_ptr_array_add (out, e);
		}
	}
	g_ptr_array_sort_with_data (out, entry_order, (gpointer) form);
	return out;
}
