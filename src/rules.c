/* rules.c - the classification rules of DESIGN 6: the parser of the
 * rules file, its PCRE2 patterns, and the evaluation of rules against a
 * message.
 *
 * Every pattern is compiled (and JIT-compiled) once, at load; a mistake
 * is found then, with its file:line, and loading goes on to find the
 * others so an operator fixes them all in one pass.  Matching never
 * fails: a match that hits the match limit, the JIT stack limit or
 * invalid UTF-8 simply does not match. */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>
#include <glib/gstdio.h>

#include "catalog.h"
#include "md.h"
#include "prefilter.h"
#include "rules.h"

#define MAX_ERRORS_SHOWN   100
#define MAX_NAME           64          /* rule names, tags */
#define MAX_HEADER_NAME    76
#define MAX_VALUES         1000        /* addresses, attachments, header values per field */
#define MAX_SHOWN_CHARS    60          /* of matched text in an explanation */
#define MAX_SHOWN_SOURCE   80          /* of a pattern in an explanation */
#define JIT_STACK_MAX      (1024 * 1024)
#define HEAP_LIMIT_KIB     (16 * 1024) /* interpreter only, when JIT is unavailable */
#define TAB_WIDTH          8

typedef enum {
	FIELD_FROM,
	FIELD_TO,
	FIELD_CC,
	FIELD_SUBJECT,
	FIELD_BODY,
	FIELD_HEADER,
	FIELD_ATTACHMENT,
} Field;

static const char *const field_names[] = {
	[FIELD_FROM] = "from",
	[FIELD_TO] = "to",
	[FIELD_CC] = "cc",
	[FIELD_SUBJECT] = "subject",
	[FIELD_BODY] = "body",
	[FIELD_HEADER] = "header",
	[FIELD_ATTACHMENT] = "attachment",
};

typedef struct {
	Field field;
	char *header;        /* FIELD_HEADER: the header's name */
	char *source;        /* the pattern as written, for explanations */
	char *where;         /* "file:line", for the log */
	gint warned_at;      /* atomic: monotonic second of its last limit warning, 0 never */
	gint unwarned;       /* atomic: limit hits not logged since */
	pcre2_code *code;
	MdTriggers *triggers; /* body patterns only; NULL: runs on every body */
} Condition;

/* One requirement of a rule, met when any of its conditions matches: a
 * plain condition is a clause of one, an `any` group a clause of many. */
typedef struct {
	GPtrArray *conditions;   /* Condition * */
	guint line;
} Clause;

typedef struct {
	char *name;
	guint line;
	GPtrArray *clauses;      /* Clause *; all must be met */
	const char *category;    /* canonical static strings or NULL */
	const char *priority;
	const char *visibility;
	char *assignee;
	GPtrArray *tags;         /* char * */
	gboolean quarantine;
	gboolean drop_silently;
	gboolean stop;
	guint errors_before;     /* errors found before the block began */
	char *summary;           /* what it sets, for explanations */
} Rule;

struct _MdRules {
	char *filename;
	GPtrArray *rules;        /* Rule * */
};

/* ---- the compiled form ---- */

static void
condition_free (gpointer data)
{
	Condition *c = data;

	g_free (c->header);
	g_free (c->source);
	g_free (c->where);
	pcre2_code_free (c->code);
	md_triggers_free (c->triggers);
	g_free (c);
}

static void
clause_free (gpointer data)
{
	Clause *clause = data;

	g_ptr_array_unref (clause->conditions);
	g_free (clause);
}

static void
rule_free (gpointer data)
{
	Rule *rule = data;

	g_free (rule->name);
	g_ptr_array_unref (rule->clauses);
	g_free (rule->assignee);
	g_ptr_array_unref (rule->tags);
	g_free (rule->summary);
	g_free (rule);
}

void
md_rules_free (MdRules *rules)
{
	if (!rules)
		return;
	g_free (rules->filename);
	g_ptr_array_unref (rules->rules);
	g_free (rules);
}

guint
md_rules_count (const MdRules *rules)
{
	return rules->rules->len;
}

/* ---- the parser ---- */

typedef struct {
	const char *filename;
	guint line;              /* of the line being parsed */
	GPtrArray *errors;       /* char *, "file:line: message" */
	guint error_count;
	GHashTable *names;       /* rule name -> GUINT_TO_POINTER (line) */
	GPtrArray *rules;        /* Rule * */
	Rule *rule;              /* the block being parsed, or NULL */
	Clause *any;             /* the open `any` group, or NULL */
	guint any_indent;
	gboolean outside_reported;
} Parser;

static void parser_error_at (Parser *p, guint line, const char *format, ...) G_GNUC_PRINTF (3, 4);

static void
parser_error_at (Parser *p, guint line, const char *format, ...)
{
	va_list args;

	p->error_count++;
	if (p->errors->len >= MAX_ERRORS_SHOWN)
		return;
	va_start (args, format);
	g_autofree char *message = g_strdup_vprintf (format, args);
	va_end (args);
	/* messages quote the file, which may hold any bytes: GError and the
	 * terminal want UTF-8 */
	g_autofree char *text = line == 0 ? g_strdup_printf ("%s: %s", p->filename, message)  /* the whole file */
	                                  : g_strdup_printf ("%s:%u: %s", p->filename, line, message);
	g_ptr_array_add (p->errors, g_utf8_make_valid (text, -1));
}

#define parser_error(p, ...) parser_error_at ((p), (p)->line, __VA_ARGS__)

static gboolean
is_blank (char c)
{
	return c == ' ' || c == '\t';
}

static char *
skip_blanks (char *s)
{
	while (is_blank (*s))
		s++;
	return s;
}

/* Whether only blanks or a `# comment` remain. */
static gboolean
at_end (const char *s)
{
	s = skip_blanks ((char *) s);
	return *s == '\0' || *s == '#';
}

/* Cuts the next blank-separated word out of *S (NUL-terminating it in
 * place) and advances *S past it; "" at the end of the line. */
static char *
next_word (char **s)
{
	char *start = skip_blanks (*s);
	char *end = start;

	while (*end && !is_blank (*end))
		end++;
	*s = *end ? end + 1 : end;
	*end = '\0';
	return start;
}

static gboolean
is_name (const char *s, const char *extra)
{
	gsize len = strlen (s);

	if (len == 0 || len > MAX_NAME)
		return FALSE;
	for (; *s; s++)
		if (!g_ascii_isalnum (*s) && !strchr (extra, *s))
			return FALSE;
	return TRUE;
}

/* RFC 5322 3.6.8: a field name is printable US-ASCII but ':'. */
static gboolean
is_header_name (const char *s)
{
	gsize len = strlen (s);

	if (len == 0 || len > MAX_HEADER_NAME)
		return FALSE;
	for (; *s; s++)
		if (*s < 33 || *s > 126 || *s == ':')
			return FALSE;
	return TRUE;
}

/* Good enough to catch typos: local@domain, no blanks, a dot-free
 * domain allowed for local test setups. */
static gboolean
is_address (const char *s)
{
	const char *at = strchr (s, '@');

	if (!at || at == s || at[1] == '\0' || strchr (at + 1, '@') || strlen (s) > 254)
		return FALSE;
	for (; *s; s++)
		if ((guchar) *s <= 32 || strchr ("<>(),;:\"[]\\", *s))
			return FALSE;
	return TRUE;
}

/* A "quoted string" (with \" and \\ escapes) or one bare word, cut out
 * of *S.  NULL, with an error reported, when a quote is unterminated. */
static char *
parse_value (Parser *p, char **s, GString *buffer)
{
	char *start = skip_blanks (*s);

	if (*start != '"')
		return next_word (s);
	g_string_truncate (buffer, 0);
	for (char *q = start + 1; *q; q++) {
		if (*q == '"') {
			*s = q + 1;
			return buffer->str;
		}
		if (*q == '\\' && (q[1] == '"' || q[1] == '\\'))
			q++;
		g_string_append_c (buffer, *q);
	}
	parser_error (p, "unterminated string (no closing double quote)");
	return NULL;
}

/* Reads `/regex/flags` or `"literal"flags` at *S into C: compiles it
 * and finds its triggers.  FALSE, with an error reported, on any
 * mistake. */
static gboolean
parse_pattern (Parser *p, char **s, Condition *c)
{
	char *start = skip_blanks (*s);
	char delimiter = *start;
	g_autoptr (GString) text = g_string_new (NULL);
	uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
	char *q;

	if (delimiter != '/' && delimiter != '"') {
		parser_error (p, "expected a pattern, /regex/flags or \"literal\"");
		return FALSE;
	}
	for (q = start + 1; *q && *q != delimiter; q++) {
		/* in a regex the backslash stays for PCRE2 (\/ is a literal
		 * slash to it too); in a literal only \" and \\ are escapes */
		if (*q == '\\' && q[1]) {
			if (delimiter == '/' || q[1] == '"' || q[1] == '\\') {
				if (delimiter == '/')
					g_string_append_c (text, *q);
				q++;
			}
		}
		g_string_append_c (text, *q);
	}
	if (*q != delimiter) {
		parser_error (p, "unterminated pattern (missing closing \"%c\")", delimiter);
		return FALSE;
	}
	if (text->len == 0) {
		parser_error (p, "empty pattern (write /^/ to match everything)");
		return FALSE;
	}
	for (q++; *q && !is_blank (*q); q++) {
		switch (*q) {
		case 'i': options |= PCRE2_CASELESS; continue;
		case 'm': options |= PCRE2_MULTILINE; break;
		case 's': options |= PCRE2_DOTALL; break;
		case 'x': options |= PCRE2_EXTENDED; break;
		default:
			parser_error (p, "unknown pattern flag \"%c\" (expected i, m, s or x)", *q);
			return FALSE;
		}
		if (delimiter == '"') {
			parser_error (p, "flag \"%c\" makes no sense on a \"literal\" (only i does)", *q);
			return FALSE;
		}
	}
	/* PCRE2_UCP: \b, \w and \d follow Unicode, so they work in Ukrainian
	 * mail as in English.  PCRE2 refuses it with PCRE2_LITERAL. */
	options |= delimiter == '"' ? PCRE2_LITERAL : PCRE2_UCP;

	int code;
	PCRE2_SIZE offset;
	pcre2_code *re = pcre2_compile ((PCRE2_SPTR) text->str, text->len, options, &code, &offset, NULL);
	g_autofree char *source = g_strndup (start, q - start);
	if (!re) {
		PCRE2_UCHAR message[256];
		pcre2_get_error_message (code, message, sizeof message);
		parser_error (p, "bad pattern %s: %s at offset %zu", source, (char *) message, (gsize) offset);
		return FALSE;
	}
	/* When JIT is unavailable the interpreter matches the same. */
	pcre2_jit_compile (re, PCRE2_JIT_COMPLETE);
	*s = q;
	c->code = re;
	c->source = g_steal_pointer (&source);
	if (delimiter == '/' && c->field == FIELD_BODY)
		c->triggers = md_triggers_new (text->str, text->len, (options & PCRE2_EXTENDED) != 0);
	return TRUE;
}

static gboolean
parse_field (Parser *p, const char *word, Field *field_r, char **header_r)
{
	if (g_str_has_prefix (word, "header:")) {
		if (!is_header_name (word + 7)) {
			parser_error (p, "bad header name \"%s\" (header:NAME)", word + 7);
			return FALSE;
		}
		*field_r = FIELD_HEADER;
		*header_r = g_strdup (word + 7);
		return TRUE;
	}
	for (gsize i = 0; i < G_N_ELEMENTS (field_names); i++) {
		if (i != FIELD_HEADER && strcmp (word, field_names[i]) == 0) {
			*field_r = i;
			return TRUE;
		}
	}
	parser_error (p, "unknown field or action \"%s\" (fields: from, to, cc, subject, body, "
		      "header:NAME, attachment; actions: set, action, stop)", word);
	return FALSE;
}

static void
parse_condition (Parser *p, const char *word, char *rest)
{
	Condition *c = g_new0 (Condition, 1);

	c->where = g_strdup_printf ("%s:%u", p->filename, p->line);
	if (!parse_field (p, word, &c->field, &c->header) || !parse_pattern (p, &rest, c)) {
		condition_free (c);
		return;
	}
	if (!at_end (rest)) {
		parser_error (p, "unexpected text after the pattern: %s", skip_blanks (rest));
		condition_free (c);
		return;
	}

	GPtrArray *clauses = p->rule->clauses;
	Clause *clause = p->any;
	if (!clause) {
		if (clauses->len >= MD_RULES_MAX_CONDITIONS) {
			parser_error (p, "too many conditions in one rule (limit %d)", MD_RULES_MAX_CONDITIONS);
			condition_free (c);
			return;
		}
		clause = g_new0 (Clause, 1);
		clause->conditions = g_ptr_array_new_with_free_func (condition_free);
		clause->line = p->line;
		g_ptr_array_add (clauses, clause);
	} else if (clause->conditions->len >= MD_RULES_MAX_CONDITIONS) {
		parser_error (p, "too many conditions in one \"any\" group (limit %d)", MD_RULES_MAX_CONDITIONS);
		condition_free (c);
		return;
	}
	g_ptr_array_add (clause->conditions, c);
}

/* Sets *SLOT to the catalog's spelling of VALUE, reporting a value the
 * catalog does not know or a second setting in the same rule. */
static void
set_catalog_value (Parser *p, const char *what, const char **slot, const char *value,
		   const char *(*normalize) (const char *), const char *const *known)
{
	const char *canonical = normalize (value);

	if (*slot) {
		parser_error (p, "%s is set twice in one rule", what);
	} else if (!canonical) {
		g_autofree char *list = g_strjoinv (", ", (char **) known);
		parser_error (p, "unknown %s \"%s\" (expected one of: %s)", what, value, list);
	} else {
		*slot = canonical;
	}
}

static void
parse_set (Parser *p, char *rest)
{
	static const char *const visibilities[] = { "private", "shared", NULL };
	Rule *rule = p->rule;
	const char *key = next_word (&rest);
	g_autoptr (GString) buffer = g_string_new (NULL);

	if (!*key) {
		parser_error (p, "\"set\" needs a setting and a value");
		return;
	}
	if (!g_strv_contains ((const char *const[]) { "category", "priority", "visibility", "assignee", "tag", NULL }, key)) {
		parser_error (p, "unknown setting \"%s\" (expected category, priority, visibility, assignee or tag)", key);
		return;
	}
	const char *value = parse_value (p, &rest, buffer);
	if (!value)
		return;
	if (!*value) {
		parser_error (p, "\"set %s\" needs a value", key);
		return;
	}
	if (!at_end (rest)) {
		parser_error (p, "unexpected text after the value: %s (quote values that contain spaces)",
			      skip_blanks (rest));
		return;
	}

	if (strcmp (key, "category") == 0) {
		set_catalog_value (p, key, &rule->category, value, md_category_normalize, md_categories);
	} else if (strcmp (key, "priority") == 0) {
		set_catalog_value (p, key, &rule->priority, value, md_priority_normalize, md_priorities);
	} else if (strcmp (key, "visibility") == 0) {
		set_catalog_value (p, key, &rule->visibility, value, md_visibility_normalize, visibilities);
	} else if (strcmp (key, "assignee") == 0) {
		if (rule->assignee)
			parser_error (p, "assignee is set twice in one rule");
		else if (!is_address (value))
			parser_error (p, "bad assignee \"%s\" (expected an address, local@domain)", value);
		else
			rule->assignee = g_strdup (value);
	} else if (!is_name (value, "-_.+/:")) {
		parser_error (p, "bad tag \"%s\" (letters, digits and - _ . + / :, at most %d)", value, MAX_NAME);
	} else if (!g_ptr_array_find_with_equal_func (rule->tags, value, g_str_equal, NULL)) {
		g_ptr_array_add (rule->tags, g_strdup (value));
	}
}

static void
parse_action (Parser *p, const char *word, char *rest)
{
	if (strcmp (word, "set") == 0) {
		parse_set (p, rest);
		return;
	}
	if (strcmp (word, "stop") == 0) {
		p->rule->stop = TRUE;
	} else {
		const char *what = next_word (&rest);
		if (strcmp (what, "quarantine") == 0)
			p->rule->quarantine = TRUE;
		else if (strcmp (what, "drop-silently") == 0)
			p->rule->drop_silently = TRUE;
		else
			parser_error (p, "unknown action \"%s\" (expected quarantine or drop-silently)", what);
	}
	if (!at_end (rest))
		parser_error (p, "unexpected text after \"%s\": %s", word, skip_blanks (rest));
}

static gboolean
rule_has_action (const Rule *rule)
{
	return rule->category || rule->priority || rule->visibility || rule->assignee ||
	       rule->tags->len > 0 || rule->quarantine || rule->drop_silently || rule->stop;
}

static char *
rule_summary (const Rule *rule)
{
	GString *s = g_string_new (NULL);

	if (rule->category)
		g_string_append_printf (s, ", set category \"%s\"", rule->category);
	if (rule->priority)
		g_string_append_printf (s, ", set priority %s", rule->priority);
	if (rule->visibility)
		g_string_append_printf (s, ", set visibility %s", rule->visibility);
	if (rule->assignee)
		g_string_append_printf (s, ", set assignee %s", rule->assignee);
	for (guint i = 0; i < rule->tags->len; i++)
		g_string_append_printf (s, ", set tag %s", (char *) rule->tags->pdata[i]);
	if (rule->quarantine)
		g_string_append (s, ", action quarantine");
	if (rule->drop_silently)
		g_string_append (s, ", action drop-silently");
	if (rule->stop)
		g_string_append (s, ", stop");
	g_string_erase (s, 0, MIN (s->len, 2));
	return g_string_free (s, FALSE);
}

static void
close_any (Parser *p)
{
	if (p->any && p->any->conditions->len == 0)
		parser_error_at (p, p->any->line, "empty \"any\" group (indent its conditions under it)");
	p->any = NULL;
}

static void
finish_rule (Parser *p)
{
	Rule *rule = p->rule;

	close_any (p);
	if (!rule)
		return;
	p->rule = NULL;
	const char *name = rule->name ? rule->name : "(unnamed)";
	/* A block with mistakes of its own lacks conditions or actions
	 * mostly because they were the mistakes: say nothing more. */
	gboolean clean = p->error_count == rule->errors_before;
	if (clean && rule->clauses->len == 0)
		parser_error_at (p, rule->line, "rule \"%s\" has no conditions", name);
	if (clean && !rule_has_action (rule))
		parser_error_at (p, rule->line, "rule \"%s\" has no actions", name);
	rule->summary = rule_summary (rule);
	g_ptr_array_add (p->rules, rule);
}

static void
start_rule (Parser *p, char *text)
{
	const char *keyword = next_word (&text);
	gboolean is_rule = strcmp (keyword, "rule") == 0;
	guint errors_before = p->error_count;

	if (!is_rule)
		parser_error (p, "expected \"rule NAME\" (conditions and actions are indented under it)");
	if (p->rules->len >= MD_RULES_MAX_RULES) {
		if (p->rules->len == MD_RULES_MAX_RULES)
			parser_error (p, "too many rules (limit %d)", MD_RULES_MAX_RULES);
		return;
	}
	Rule *rule = g_new0 (Rule, 1);
	rule->line = p->line;
	rule->clauses = g_ptr_array_new_with_free_func (clause_free);
	rule->tags = g_ptr_array_new_with_free_func (g_free);
	rule->errors_before = errors_before;
	p->rule = rule;
	p->outside_reported = FALSE;
	if (!is_rule)
		return;

	const char *name = next_word (&text);
	if (!is_name (name, "-_.")) {
		parser_error (p, "bad rule name \"%s\" (letters, digits and - _ ., at most %d)", name, MAX_NAME);
	} else if (g_hash_table_contains (p->names, name)) {
		parser_error (p, "duplicate rule name \"%s\" (first at line %u)", name,
			      GPOINTER_TO_UINT (g_hash_table_lookup (p->names, name)));
	} else {
		rule->name = g_strdup (name);
		g_hash_table_insert (p->names, g_strdup (name), GUINT_TO_POINTER (p->line));
	}
	if (!at_end (text))
		parser_error (p, "unexpected text after the rule name: %s", skip_blanks (text));
}

static void
parse_indented (Parser *p, guint indent, char *text)
{
	char *word = next_word (&text);

	if (p->any && indent <= p->any_indent)
		close_any (p);
	if (strcmp (word, "any") == 0) {
		if (p->any)
			parser_error (p, "\"any\" groups do not nest");
		else if (!at_end (text))
			parser_error (p, "\"any\" stands alone on its line; its conditions go on the lines below");
		else if (p->rule->clauses->len >= MD_RULES_MAX_CONDITIONS)
			parser_error (p, "too many conditions in one rule (limit %d)", MD_RULES_MAX_CONDITIONS);
		else {
			Clause *clause = g_new0 (Clause, 1);
			clause->conditions = g_ptr_array_new_with_free_func (condition_free);
			clause->line = p->line;
			g_ptr_array_add (p->rule->clauses, clause);
			p->any = clause;
			p->any_indent = indent;
		}
	} else if (strcmp (word, "set") == 0 || strcmp (word, "action") == 0 || strcmp (word, "stop") == 0) {
		if (p->any)
			parser_error (p, "\"%s\" inside an \"any\" group: actions belong to the rule (indent it less)", word);
		else
			parse_action (p, word, text);
	} else {
		parse_condition (p, word, text);
	}
}

static void
parse_line (Parser *p, char *line)
{
	guint indent = 0;
	char *text = line;

	for (; is_blank (*text); text++)
		indent = *text == '\t' ? (indent / TAB_WIDTH + 1) * TAB_WIDTH : indent + 1;
	if (*text == '\0' || *text == '#')
		return;
	if (indent == 0) {
		finish_rule (p);
		start_rule (p, text);
	} else if (!p->rule) {
		/* said once per run of such lines */
		if (!p->outside_reported)
			parser_error (p, "indented line outside a rule (start a block with \"rule NAME\")");
		p->outside_reported = TRUE;
	} else {
		parse_indented (p, indent, text);
	}
}

static void
parse_text (Parser *p, const char *text, gsize length)
{
	const char *end = text + length;
	g_autoptr (GString) line = g_string_new (NULL);

	/* the byte order mark some editors put first is no text */
	if (length >= 3 && memcmp (text, "\xEF\xBB\xBF", 3) == 0)
		text += 3;

	for (const char *start = text; start < end;) {
		const char *newline = memchr (start, '\n', end - start);
		gsize len = (newline ? newline : end) - start;

		p->line++;
		g_string_truncate (line, 0);
		g_string_append_len (line, start, len);
		start += len + 1;
		if (line->len > 0 && line->str[line->len - 1] == '\r')
			g_string_truncate (line, line->len - 1);
		if (len > MD_RULES_MAX_LINE)
			parser_error (p, "line too long (limit %d bytes)", MD_RULES_MAX_LINE);
		else if (memchr (line->str, '\0', line->len))
			parser_error (p, "NUL byte in the line");
		else if (!g_utf8_validate (line->str, line->len, NULL))
			parser_error (p, "not valid UTF-8");
		else
			parse_line (p, line->str);
	}
}

static MdRules *
load (const char *filename, const char *text, gsize length, GError **error)
{
	Parser p = {
		.filename = filename,
		.errors = g_ptr_array_new_with_free_func (g_free),
		.names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL),
		.rules = g_ptr_array_new_with_free_func (rule_free),
	};

	if (length > MD_RULES_MAX_FILE_SIZE)
		parser_error_at (&p, 0, "file too large (limit %d bytes)", MD_RULES_MAX_FILE_SIZE);
	else
		parse_text (&p, text, length);
	finish_rule (&p);

	MdRules *rules = NULL;
	if (p.error_count > 0) {
		if (p.error_count > p.errors->len)
			g_ptr_array_add (p.errors, g_strdup_printf ("%s: %u more errors not shown",
								     filename, p.error_count - p.errors->len));
		g_ptr_array_add (p.errors, NULL);
		g_autofree char *message = g_strjoinv ("\n", (char **) p.errors->pdata);
		g_set_error_literal (error, MD_ERROR, MD_ERROR_CONFIG, message);
		g_ptr_array_unref (p.rules);
	} else {
		rules = g_new0 (MdRules, 1);
		rules->filename = g_strdup (filename);
		rules->rules = p.rules;
	}
	g_ptr_array_unref (p.errors);
	g_hash_table_unref (p.names);
	return rules;
}

MdRules *
md_rules_load_data (const char *filename, const char *text, GError **error)
{
	return load (filename, text, strlen (text), error);
}

MdRules *
md_rules_load_file (const char *path, GError **error)
{
	GStatBuf st;
	g_autofree char *text = NULL;
	gsize length;
	g_autoptr (GError) local = NULL;

	if (g_stat (path, &st) == 0 && st.st_size > MD_RULES_MAX_FILE_SIZE) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: file too large (limit %d bytes)",
			     path, MD_RULES_MAX_FILE_SIZE);
		return NULL;
	}
	if (!g_file_get_contents (path, &text, &length, &local)) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "cannot read rules file: %s", local->message);
		return NULL;
	}
	return load (path, text, length, error);
}

/* ---- matching ---- */

typedef enum {
	WORDS_UNREAD,
	WORDS_READY,
	WORDS_UNUSABLE,   /* the body is not ASCII: every pattern runs */
} WordsState;

#define LIMIT_WARNING_EVERY_S 60

/* PCRE2's match data and JIT stack are not shareable between threads, the
 * compiled patterns are.  Each thread keeps one set for its life: the JIT
 * stack is an mmap, and unmapping it per message cost a TLB shootdown on
 * every CPU. */
typedef struct {
	pcre2_match_context *context;
	pcre2_jit_stack *stack;
	pcre2_match_data *data;
} MatchState;

static void
match_state_free (gpointer data)
{
	MatchState *st = data;

	pcre2_match_data_free (st->data);
	pcre2_jit_stack_free (st->stack);
	pcre2_match_context_free (st->context);
	g_free (st);
}

static GPrivate match_state_key = G_PRIVATE_INIT (match_state_free);

static MatchState *
match_state_get (void)
{
	MatchState *st = g_private_get (&match_state_key);

	if (st)
		return st;
	st = g_new0 (MatchState, 1);
	st->context = pcre2_match_context_create (NULL);
	st->stack = pcre2_jit_stack_create (32 * 1024, JIT_STACK_MAX, NULL);
	st->data = pcre2_match_data_create (1, NULL);
	if (!st->context || !st->stack || !st->data)
		g_error ("out of memory for PCRE2 match state");
	/* The match limit bounds the work of one pcre2_match() call, over
	 * all start positions, with JIT or without: a pattern that
	 * backtracks catastrophically gives up instead of hanging. */
	pcre2_set_match_limit (st->context, MD_RULES_MATCH_LIMIT);
	pcre2_set_heap_limit (st->context, HEAP_LIMIT_KIB);
	pcre2_jit_stack_assign (st->context, NULL, st->stack);
	g_private_set (&match_state_key, st);
	return st;
}

/* Per-call matching state, over the thread's PCRE2 state. */
typedef struct {
	MatchState *pcre;
	MdWordIndex *body_words;   /* indexed at the first body condition with triggers */
	WordsState body_words_state;
	guint body_run, body_skipped;
} Matcher;

static void
matcher_init (Matcher *m)
{
	m->pcre = match_state_get ();
	m->body_words = NULL;
	m->body_words_state = WORDS_UNREAD;
	m->body_run = m->body_skipped = 0;
}

static void
matcher_clear (Matcher *m)
{
	md_word_index_free (m->body_words);
}

/* Length of VALUE up to MD_RULES_MAX_SCAN, cut at a character boundary. */
static gsize
scan_length (const char *value)
{
	gsize len = strnlen (value, MD_RULES_MAX_SCAN + 1);

	if (len <= MD_RULES_MAX_SCAN)
		return len;
	len = MD_RULES_MAX_SCAN;
	while (len > 0 && ((guchar) value[len] & 0xC0) == 0x80)
		len--;
	return len;
}

/* TEXT made fit for one line of an explanation: valid UTF-8, control
 * characters as spaces, at most MAX_SHOWN_CHARS characters.  Free with
 * g_free. */
static char *
shown_text (const char *text, gsize len)
{
	gsize cut = MIN (len, MAX_SHOWN_CHARS * 4);
	while (cut < len && cut > 0 && ((guchar) text[cut] & 0xC0) == 0x80)
		cut--;
	g_autofree char *valid = g_utf8_make_valid (text, cut);
	GString *out = g_string_new (NULL);
	glong count = 0;

	for (const char *p = valid; *p; p = g_utf8_next_char (p)) {
		if (count++ == MAX_SHOWN_CHARS) {
			g_string_append (out, "...");
			break;
		}
		gunichar c = g_utf8_get_char (p);
		g_string_append_unichar (out, g_unichar_iscntrl (c) ? ' ' : c);
	}
	if (count <= MAX_SHOWN_CHARS && cut < len)
		g_string_append (out, "...");
	return g_string_free (out, FALSE);
}

/* A limit stopped C: logged at most once a minute per pattern (a crafted
 * message can hit it once per header value), with how many went unsaid. */
static void
warn_limit (Condition *c, int rc)
{
	gint now = (gint) (g_get_monotonic_time () / G_USEC_PER_SEC) + 1;
	gint last = g_atomic_int_get (&c->warned_at);
	if (last && now - last < LIMIT_WARNING_EVERY_S) {
		g_atomic_int_inc (&c->unwarned);
		return;
	}
	if (!g_atomic_int_compare_and_exchange (&c->warned_at, last, now))
		return;  /* another thread is saying it */
	PCRE2_UCHAR reason[120];
	if (pcre2_get_error_message (rc, reason, sizeof reason) < 0)
		g_strlcpy ((char *) reason, "error", sizeof reason);
	guint unwarned = g_atomic_int_and ((guint *) &c->unwarned, 0);
	g_autofree char *more = unwarned ? g_strdup_printf (" (and %u times since the last such line)", unwarned)
	                                 : g_strdup ("");
	g_warning ("rules: %s: pattern %s gave up on a message (%s) and counted as not matching%s; "
	           "see PERFORMANCE in maildesk.rules(5)", c->where, c->source, (const char *) reason, more);
}

/* Whether C matches VALUE; on a match appends to WHY what matched. */
static gboolean
match_value (Matcher *m, const Condition *c, const char *value, GString *why)
{
	if (!value)
		return FALSE;
	gsize len = scan_length (value);
	int rc = pcre2_match (c->code, (PCRE2_SPTR) value, len, 0, 0, m->pcre->data, m->pcre->context);
	/* A limit that stopped it counts as no match, and the message is
	 * filed; the operator hears of it, since the rule is then no use. */
	if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
		warn_limit ((Condition *) c, rc);
	if (rc < 0)
		return FALSE;

	PCRE2_SIZE *ovector = pcre2_get_ovector_pointer (m->pcre->data);
	gsize from = ovector[0], to = MAX (ovector[0], ovector[1]);
	if (from == to) {  /* an empty match: show what it was found in */
		from = 0;
		to = len;
	}
	g_autofree char *shown = shown_text (value + from, to - from);
	g_autofree char *source = shown_text (c->source, strlen (c->source));
	if (why->len > 0)
		g_string_append (why, "; ");
	if (c->field == FIELD_HEADER)
		g_string_append_printf (why, "header:%s", c->header);
	else
		g_string_append (why, field_names[c->field]);
	g_string_append_printf (why, " %s matched \"%s\"", source, shown);
	return TRUE;
}

/* FALSE when C's triggers say it cannot match BODY (prefilter.h). */
static gboolean
body_may_match (Matcher *m, const Condition *c, const char *body)
{
	if (!c->triggers || !body)
		return TRUE;
	if (m->body_words_state == WORDS_UNREAD) {
		m->body_words = md_word_index_new ();
		m->body_words_state = md_word_index_fill (m->body_words, body, scan_length (body))
			? WORDS_READY : WORDS_UNUSABLE;
	}
	return m->body_words_state == WORDS_UNUSABLE || md_triggers_may_match (c->triggers, m->body_words);
}

static gboolean
match_values (Matcher *m, const Condition *c, const char *const *values, GString *why)
{
	for (gsize i = 0; values && values[i] && i < MAX_VALUES; i++)
		if (match_value (m, c, values[i], why))
			return TRUE;
	return FALSE;
}

static gboolean
condition_matches (Matcher *m, const Condition *c, const MdRuleInput *in, GString *why)
{
	switch (c->field) {
	case FIELD_FROM:
		return match_value (m, c, in->from, why);
	case FIELD_TO:
		return match_values (m, c, in->to, why);
	case FIELD_CC:
		return match_values (m, c, in->cc, why);
	case FIELD_SUBJECT:
		return match_value (m, c, in->subject, why);
	case FIELD_BODY:
		if (!in->body)
			return FALSE;
		if (!body_may_match (m, c, in->body)) {
			m->body_skipped++;
			return FALSE;
		}
		m->body_run++;
		return match_value (m, c, in->body, why);
	case FIELD_ATTACHMENT:
		return match_values (m, c, in->attachments, why);
	case FIELD_HEADER:
		return in->get_header && match_values (m, c, in->get_header (in->user_data, c->header), why);
	}
	g_assert_not_reached ();
}

static gboolean
rule_matches (Matcher *m, const Rule *rule, const MdRuleInput *in, GString *why)
{
	for (guint i = 0; i < rule->clauses->len; i++) {
		const Clause *clause = rule->clauses->pdata[i];
		gboolean met = FALSE;

		for (guint j = 0; j < clause->conditions->len && !met; j++)
			met = condition_matches (m, clause->conditions->pdata[j], in, why);
		if (!met)
			return FALSE;
	}
	return TRUE;
}

static void
apply_rule (const Rule *rule, MdClassification *out)
{
	if (rule->category)
		out->category = rule->category;
	if (rule->priority)
		out->priority = rule->priority;
	if (rule->visibility)
		out->visibility = rule->visibility;
	if (rule->assignee) {
		g_free (out->assignee);
		out->assignee = g_strdup (rule->assignee);
	}
	for (guint i = 0; i < rule->tags->len; i++) {
		const char *tag = rule->tags->pdata[i];
		if (!g_ptr_array_find_with_equal_func (out->tags, tag, g_str_equal, NULL))
			g_ptr_array_add (out->tags, g_strdup (tag));
	}
	out->quarantine |= rule->quarantine;
	out->drop_silently |= rule->drop_silently;
}

void
md_rules_classify (const MdRules *rules, const MdRuleInput *input, MdClassification *out)
{
	Matcher m;
	g_autoptr (GString) why = g_string_new (NULL);

	if (!out->tags)
		out->tags = g_ptr_array_new_with_free_func (g_free);
	if (!out->fired)
		out->fired = g_ptr_array_new_with_free_func (g_free);
	if (!out->fired_rules)
		out->fired_rules = g_ptr_array_new_with_free_func (g_free);
	matcher_init (&m);
	for (guint i = 0; i < rules->rules->len; i++) {
		const Rule *rule = rules->rules->pdata[i];

		g_string_truncate (why, 0);
		if (!rule_matches (&m, rule, input, why))
			continue;
		apply_rule (rule, out);
		g_ptr_array_add (out->fired, g_strdup_printf ("%s (%s:%u): %s -> %s", rule->name,
							      rules->filename, rule->line, why->str,
							      rule->summary));
		g_ptr_array_add (out->fired_rules, g_strdup_printf ("%s (%s:%u)", rule->name, rules->filename, rule->line));
		if (rule->stop)
			break;
	}
	out->body_patterns_run += m.body_run;
	out->body_patterns_skipped += m.body_skipped;
	matcher_clear (&m);
}

void
md_classification_clear (MdClassification *out)
{
	g_free (out->assignee);
	if (out->tags)
		g_ptr_array_unref (out->tags);
	if (out->fired)
		g_ptr_array_unref (out->fired);
	if (out->fired_rules)
		g_ptr_array_unref (out->fired_rules);
	memset (out, 0, sizeof *out);
}

gboolean
md_rules_matches_recipient (const MdRules *rules, const char *address)
{
	Matcher m;
	g_autoptr (GString) why = g_string_new (NULL);
	gboolean found = FALSE;

	matcher_init (&m);
	for (guint i = 0; i < rules->rules->len && !found; i++) {
		const Rule *rule = rules->rules->pdata[i];

		for (guint j = 0; j < rule->clauses->len && !found; j++) {
			const Clause *clause = rule->clauses->pdata[j];

			for (guint k = 0; k < clause->conditions->len && !found; k++) {
				const Condition *c = clause->conditions->pdata[k];
				found = c->field == FIELD_TO && match_value (&m, c, address, why);
			}
		}
	}
	matcher_clear (&m);
	return found;
}
