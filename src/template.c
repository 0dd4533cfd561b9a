/* template.c - loads, checks and renders the templates of outgoing mail:
 * the one table of events and variables, the parser of header lines and
 * {{...}} tags, and the renderer.  The syntax is in template.h. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "md.h"
#include "template.h"

#define MAX_ERRORS 50
#define MAX_NAME_LEN 64
#define MAX_SUBJECT_OUTPUT 4096

const char *const md_template_events[] = {
	"ack", "agent-reply", "customer-reply", "status-change", "command-error",
	"list", "unverified-agent", "sla-reminder", "sla-breach", "followup",
	"auto-resolve", "fields-missing", "visibility", "merged", NULL,
};

/* Bits in the order of md_template_events. */
enum {
	E_ACK = 1 << 0,
	E_AGENT_REPLY = 1 << 1,
	E_CUSTOMER_REPLY = 1 << 2,
	E_STATUS = 1 << 3,
	E_COMMAND_ERROR = 1 << 4,
	E_LIST = 1 << 5,
	E_UNVERIFIED = 1 << 6,
	E_SLA_REMINDER = 1 << 7,
	E_SLA_BREACH = 1 << 8,
	E_FOLLOWUP = 1 << 9,
	E_AUTO_RESOLVE = 1 << 10,
	E_FIELDS = 1 << 11,
	E_VISIBILITY = 1 << 12,
	E_MERGED = 1 << 13,
	E_ALL = (1 << 14) - 1,
	E_TO_AGENTS = E_CUSTOMER_REPLY | E_UNVERIFIED | E_SLA_REMINDER | E_SLA_BREACH,
	E_TO_CUSTOMER = E_ALL & ~E_TO_AGENTS,
	/* mail that answers, or tells of, one person's mail or action */
	E_AUTHORED = E_AGENT_REPLY | E_CUSTOMER_REPLY | E_STATUS | E_COMMAND_ERROR | E_LIST | E_UNVERIFIED | E_VISIBILITY,
};

typedef struct {
	const char *name;
	guint events;
	const char *description;
} Variable;

/* Every variable a template may name, and which events provide it.
 * Values are preformatted by the caller (times in the desk's zone). */
static const Variable variables[] = {
	{ "desk.name", E_ALL, "the desk's name, e.g. \"Example Support\"" },
	{ "desk.address", E_ALL, "the intake address that opens new tickets" },
	{ "reply_address", E_ALL, "the ticket's token reply address (the intake address when there is no ticket)" },
	{ "resolve_link", E_ALL, "a mailto: link that marks the ticket resolved (empty without a ticket)" },
	{ "ticket.key", E_ALL, "the ticket's key, e.g. SUP-123 (empty without a ticket)" },
	{ "ticket.subject", E_ALL, "the ticket's subject" },
	{ "ticket.status", E_ALL, "the ticket's current status" },
	{ "ticket.priority", E_ALL, "the ticket's priority: P1, P2, P3, P4 or ER" },
	{ "ticket.category", E_ALL, "the ticket's category" },
	{ "ticket.requester", E_ALL, "the requester's address" },
	{ "ticket.requester_name", E_ALL, "the requester's name as the desk knows it, empty when none" },
	{ "ticket.assignee", E_ALL, "the assigned agent's address, empty when unassigned" },
	{ "ticket.assignee_name", E_ALL, "the assigned agent's name as the desk knows it, empty when none" },
	{ "ticket.visibility", E_ALL, "private or shared (with the requester's organization)" },
	{ "ticket.organization", E_ALL, "the requester's organization, empty when none" },
	{ "status", E_ALL, "the ticket's status; in status-change mail the new one" },
	{ "old_status", E_STATUS | E_AGENT_REPLY,
	  "the status before the change; in agent-reply the one before the reply's #waiting, #resolve or #status moved it, "
	  "empty when it moved nothing" },
	{ "resolved", E_STATUS | E_AGENT_REPLY, "non-empty when the (new) status is Resolved" },
	{ "due", E_ALL,
	  "the deadline this mail is about, in the desk's zone: the automatic resolution (followup), else the first response "
	  "(empty without a target)" },
	{ "response_time", E_ACK | E_SLA_REMINDER | E_SLA_BREACH, "the promised first-response time, e.g. \"4 hours\"" },
	{ "remaining", E_SLA_REMINDER, "time left before the breach, e.g. \"2 business hours\"" },
	{ "comment", E_AGENT_REPLY | E_CUSTOMER_REPLY | E_STATUS, "the text of the reply, or the note that came with the change" },
	{ "author.name", E_AUTHORED, "the display name of the person whose mail or action this answers" },
	{ "author.email", E_AUTHORED, "that person's address" },
	{ "attachments", E_AGENT_REPLY | E_CUSTOMER_REPLY, "the attached files' names, one per line, empty when none" },
	{ "command", E_COMMAND_ERROR, "the command line that failed, e.g. \"#priority P7\"" },
	{ "error", E_COMMAND_ERROR, "why it failed, one sentence" },
	{ "tickets", E_LIST, "the requester's tickets, preformatted, one block per ticket" },
	{ "missing", E_ACK | E_FIELDS,
	  "the missing or invalid intake fields, preformatted, one per line, with what is wrong; empty when none" },
	{ "form", E_ACK | E_FIELDS, "the same fields as `Label: ` lines for the customer to fill in" },
	{ "notice", E_ACK | E_FIELDS, "why a go-live notice is short, one paragraph; empty when it is not" },
	{ "delivery", E_ACK, "the promised delivery of a deployment task and its estimate, e.g. \"Thu 03 Dec 2026 17:00 EET (2-3 working days)\"; empty when none" },
	{ "merged.key", E_MERGED, "the key of the ticket merged into this one, e.g. SUP-122" },
	{ "merged.subject", E_MERGED, "that ticket's subject" },
	{ "shared", E_VISIBILITY, "non-empty when the ticket is (now) shared with the requester's organization" },
	{ "reopen_window", E_STATUS | E_AGENT_REPLY | E_AUTO_RESOLVE, "how long a reply reopens a resolved ticket, e.g. \"30 days\"" },
};

static int
event_index (const char *event)
{
	for (int i = 0; event && md_template_events[i]; i++)
		if (strcmp (event, md_template_events[i]) == 0)
			return i;
	return -1;
}

static const Variable *
find_variable (const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS (variables); i++)
		if (strcmp (name, variables[i].name) == 0)
			return &variables[i];
	return NULL;
}

gboolean
md_template_event_is_customer_facing (const char *event)
{
	int i = event_index (event);
	return i >= 0 && (E_TO_CUSTOMER & (1u << i));
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
	return strcmp (*(const char *const *) a, *(const char *const *) b);
}

char **
md_template_event_variables (const char *event)
{
	int i = event_index (event);
	if (i < 0)
		return NULL;
	GPtrArray *names = g_ptr_array_new ();
	for (gsize v = 0; v < G_N_ELEMENTS (variables); v++)
		if (variables[v].events & (1u << i))
			g_ptr_array_add (names, g_strdup (variables[v].name));
	g_ptr_array_sort (names, compare_names);
	g_ptr_array_add (names, NULL);
	return (char **) g_ptr_array_free (names, FALSE);
}

const char *
md_template_variable_description (const char *name)
{
	const Variable *v = name ? find_variable (name) : NULL;
	return v ? v->description : NULL;
}

/* ---- the parsed form ---- */

typedef enum { NODE_TEXT, NODE_VAR, NODE_IF } NodeKind;

typedef struct {
	NodeKind kind;
	char *text;             /* TEXT: the literal; VAR and IF: the variable */
	GPtrArray *then_nodes;  /* IF */
	GPtrArray *else_nodes;  /* IF */
} Node;

struct _MdTemplate {
	char *event;
	GPtrArray *subject;     /* of Node */
	GPtrArray *body;        /* of Node */
	GPtrArray *headers;     /* name, value, ..., NULL */
};

static void
node_free (gpointer data)
{
	Node *node = data;
	g_free (node->text);
	if (node->then_nodes)
		g_ptr_array_unref (node->then_nodes);
	if (node->else_nodes)
		g_ptr_array_unref (node->else_nodes);
	g_free (node);
}

static GPtrArray *
node_list_new (void)
{
	return g_ptr_array_new_with_free_func (node_free);
}

static Node *
node_new (NodeKind kind, char *text)
{
	Node *node = g_new0 (Node, 1);
	node->kind = kind;
	node->text = text;
	return node;
}

void
md_template_free (MdTemplate *t)
{
	if (!t)
		return;
	g_free (t->event);
	g_clear_pointer (&t->subject, g_ptr_array_unref);
	g_clear_pointer (&t->body, g_ptr_array_unref);
	g_clear_pointer (&t->headers, g_ptr_array_unref);
	g_free (t);
}

const char *
md_template_event (const MdTemplate *t)
{
	return t->event;
}

const char *const *
md_template_headers (const MdTemplate *t)
{
	return (const char *const *) t->headers->pdata;
}

static gboolean
nodes_use (GPtrArray *nodes, const char *name)
{
	for (guint i = 0; nodes && i < nodes->len; i++) {
		const Node *node = nodes->pdata[i];
		if (node->kind == NODE_VAR && strcmp (node->text, name) == 0)
			return TRUE;
		if (node->kind == NODE_IF && (nodes_use (node->then_nodes, name) || nodes_use (node->else_nodes, name)))
			return TRUE;
	}
	return FALSE;
}

gboolean
md_template_uses (const MdTemplate *t, const char *name)
{
	return nodes_use (t->subject, name) || nodes_use (t->body, name);
}

/* ---- parsing ---- */

typedef struct {
	const char *filename;
	const char *event;
	guint event_bit;
	GString *errors;        /* "file:line: message\n" each */
	guint n_errors;
} Parser;

G_GNUC_PRINTF (3, 4) static void
parse_error (Parser *p, int line, const char *format, ...)
{
	if (++p->n_errors > MAX_ERRORS) {
		if (p->n_errors == MAX_ERRORS + 1)
			g_string_append_printf (p->errors, "%s: too many errors\n", p->filename);
		return;
	}
	va_list args;
	va_start (args, format);
	g_autofree char *message = g_strdup_vprintf (format, args);
	va_end (args);
	g_string_append_printf (p->errors, "%s:%d: %s\n", p->filename, line, message);
}

/* [a-z][a-z0-9_]* joined by dots, as in the variable table. */
static gboolean
is_variable_name (const char *name)
{
	gsize len = strlen (name);
	if (len == 0 || len > MAX_NAME_LEN)
		return FALSE;
	gboolean at_start = TRUE;
	for (const char *c = name; *c; c++) {
		if (at_start) {
			if (!g_ascii_islower (*c))
				return FALSE;
			at_start = FALSE;
		} else if (*c == '.') {
			at_start = TRUE;
		} else if (!g_ascii_islower (*c) && !g_ascii_isdigit (*c) && *c != '_') {
			return FALSE;
		}
	}
	return !at_start;
}

static gboolean
check_variable (Parser *p, int line, const char *name)
{
	if (!is_variable_name (name)) {
		parse_error (p, line, "bad variable name \"%s\"", name);
		return FALSE;
	}
	const Variable *v = find_variable (name);
	if (!v) {
		parse_error (p, line, "unknown variable \"%s\"", name);
		return FALSE;
	}
	if (!(v->events & p->event_bit)) {
		parse_error (p, line, "variable \"%s\" is not available in %s mail", name, p->event);
		return FALSE;
	}
	return TRUE;
}

typedef struct {
	GPtrArray *target;  /* where nodes go now */
	Node *section;      /* the #if this frame belongs to; NULL at the root */
	int line;
} Frame;

typedef struct {
	Parser *p;
	Frame stack[MD_TEMPLATE_MAX_DEPTH + 1];
	int depth;          /* index of the current frame */
	guint ignored;      /* sections opened past the depth bound */
	int line;
} Scan;

static void
add_text (Scan *s, const char *start, const char *end)
{
	if (end <= start)
		return;
	g_ptr_array_add (s->stack[s->depth].target, node_new (NODE_TEXT, g_strndup (start, end - start)));
	for (const char *c = start; c < end; c++)
		if (*c == '\n')
			s->line++;
}

static void
open_section (Scan *s, const char *name)
{
	if (!check_variable (s->p, s->line, name))
		name = "";
	if (s->ignored || s->depth == MD_TEMPLATE_MAX_DEPTH) {
		if (!s->ignored)
			parse_error (s->p, s->line, "{{#if}} sections nested deeper than %d",
			             MD_TEMPLATE_MAX_DEPTH);
		s->ignored++;
		return;
	}
	Node *node = node_new (NODE_IF, g_strdup (name));
	node->then_nodes = node_list_new ();
	g_ptr_array_add (s->stack[s->depth].target, node);
	s->depth++;
	s->stack[s->depth] = (Frame) { node->then_nodes, node, s->line };
}

static void
else_section (Scan *s)
{
	if (s->ignored)
		return;
	Frame *f = &s->stack[s->depth];
	if (!f->section) {
		parse_error (s->p, s->line, "{{else}} outside {{#if}}");
	} else if (f->section->else_nodes) {
		parse_error (s->p, s->line, "second {{else}} in the {{#if}} of line %d", f->line);
	} else {
		f->section->else_nodes = node_list_new ();
		f->target = f->section->else_nodes;
	}
}

static void
close_section (Scan *s)
{
	if (s->ignored) {
		s->ignored--;
		return;
	}
	if (s->depth == 0) {
		parse_error (s->p, s->line, "{{/if}} without {{#if}}");
		return;
	}
	s->depth--;
}

typedef enum { TAG_BAD, TAG_VAR, TAG_IF, TAG_ELSE, TAG_END } TagKind;

/* Classifies the trimmed inside of a tag; *name_r points into `inside`. */
static TagKind
classify_tag (char *inside, char **name_r)
{
	*name_r = inside;
	if (strcmp (inside, "else") == 0)
		return TAG_ELSE;
	if (strcmp (inside, "/if") == 0)
		return TAG_END;
	if (g_str_has_prefix (inside, "#if") && g_ascii_isspace (inside[3])) {
		*name_r = g_strstrip (inside + 3);
		return TAG_IF;
	}
	if (inside[0] == '#' || inside[0] == '/')
		return TAG_BAD;
	return TAG_VAR;
}

static gboolean
only_blanks (const char *start, const char *end)
{
	for (const char *c = start; c < end; c++)
		if (*c != ' ' && *c != '\t')
			return FALSE;
	return TRUE;
}

/* Parses NUL-terminated `text` starting at `first_line` into `out`. */
static void
parse_nodes (Parser *p, const char *text, int first_line, GPtrArray *out)
{
	Scan s = { .p = p, .line = first_line };
	s.stack[0] = (Frame) { out, NULL, first_line };
	const char *pos = text;
	const char *line_start = text;

	while (*pos) {
		const char *open = strstr (pos, "{{");
		if (!open) {
			add_text (&s, pos, pos + strlen (pos));
			break;
		}
		for (const char *c = pos; c < open; c++)
			if (*c == '\n')
				line_start = c + 1;
		const char *eol = strchr (open, '\n');
		if (!eol)
			eol = open + strlen (open);
		const char *close = strstr (open + 2, "}}");
		if (!close || close > eol) {
			add_text (&s, pos, open);
			parse_error (p, s.line, "unclosed \"{{\"");
			add_text (&s, open, open + 2);
			pos = open + 2;
			continue;
		}
		g_autofree char *inside = g_strndup (open + 2, close - open - 2);
		char *name;
		TagKind kind = classify_tag (g_strstrip (inside), &name);
		const char *after = close + 2;
		const char *text_end = open;
		if (kind == TAG_IF || kind == TAG_ELSE || kind == TAG_END) {
			/* a section tag alone on its line takes the line along */
			if (only_blanks (line_start, open) && only_blanks (after, eol)) {
				text_end = line_start;
				after = *eol ? eol + 1 : eol;
			}
		}
		add_text (&s, pos, text_end);
		switch (kind) {
		case TAG_VAR:
			if (check_variable (p, s.line, name))
				g_ptr_array_add (s.stack[s.depth].target, node_new (NODE_VAR, g_strdup (name)));
			break;
		case TAG_IF:
			open_section (&s, name);
			break;
		case TAG_ELSE:
			else_section (&s);
			break;
		case TAG_END:
			close_section (&s);
			break;
		case TAG_BAD:
			parse_error (p, s.line, "unknown tag \"{{%s}}\"", inside);
			break;
		}
		for (const char *c = text_end; c < after; c++)
			if (*c == '\n')
				s.line++;
		pos = after;
		if (after > open && after[-1] == '\n')
			line_start = after;
	}
	for (; s.depth > 0; s.depth--)
		parse_error (p, s.stack[s.depth].line, "{{#if %s}} is never closed",
		             s.stack[s.depth].section->text);
}

static gboolean
is_language_tag (const char *value)
{
	/* RFC 5646, loosely: alpha{1,8} ("-" alphanum{1,8})* */
	gsize run = 0;
	gboolean first = TRUE;
	for (const char *c = value;; c++) {
		if (*c == '-' || *c == '\0') {
			if (run == 0 || run > 8)
				return FALSE;
			if (*c == '\0')
				return TRUE;
			run = 0;
			first = FALSE;
		} else if (g_ascii_isalpha (*c) || (!first && g_ascii_isdigit (*c))) {
			run++;
		} else {
			return FALSE;
		}
	}
}

static const char *const extra_headers[] = { "Importance", "Content-Language", NULL };

static void
parse_extra_header (Parser *p, MdTemplate *t, int line, const char *name, const char *value)
{
	const char *canonical = NULL;
	for (int i = 0; extra_headers[i]; i++)
		if (g_ascii_strcasecmp (name, extra_headers[i]) == 0)
			canonical = extra_headers[i];
	if (!canonical) {
		parse_error (p, line, "header \"%s\" is not allowed in a template "
		             "(only Subject, Importance, Content-Language)", name);
		return;
	}
	for (guint i = 0; i + 1 < t->headers->len; i += 2)
		if (strcmp (g_ptr_array_index (t->headers, i), canonical) == 0) {
			parse_error (p, line, "duplicate %s header", canonical);
			return;
		}
	g_autofree char *normalized = NULL;
	if (canonical == extra_headers[0]) {
		normalized = g_ascii_strdown (value, -1);
		if (strcmp (normalized, "low") != 0 && strcmp (normalized, "normal") != 0 &&
		    strcmp (normalized, "high") != 0) {
			parse_error (p, line, "Importance must be low, normal or high, not \"%s\"", value);
			return;
		}
	} else {
		if (!is_language_tag (value)) {
			parse_error (p, line, "Content-Language must be a language tag such as en or uk-UA, not \"%s\"", value);
			return;
		}
		normalized = g_strdup (value);
	}
	g_ptr_array_insert (t->headers, t->headers->len - 1, g_strdup (canonical));
	g_ptr_array_insert (t->headers, t->headers->len - 1, g_steal_pointer (&normalized));
}

/* Parses the header lines of NUL-terminated `text`; returns where the
 * body starts and its line number, or NULL when the headers never end. */
static const char *
parse_headers (Parser *p, MdTemplate *t, const char *text, int *body_line_r)
{
	const char *pos = text;
	int line = 1;
	gboolean have_subject = FALSE;

	for (;; line++) {
		const char *eol = strchr (pos, '\n');
		if (!eol) {
			parse_error (p, line, "no blank line between the headers and the body");
			return NULL;
		}
		g_autofree char *header = g_strndup (pos, eol - pos);
		pos = eol + 1;
		if (header[0] == '\0')
			break;
		if (header[0] == ' ' || header[0] == '\t') {
			parse_error (p, line, "folded header lines are not supported");
			continue;
		}
		char *colon = strchr (header, ':');
		gboolean name_ok = colon && colon > header;
		for (char *c = header; name_ok && c < colon; c++)
			name_ok = g_ascii_isalnum (*c) || *c == '-';
		if (!name_ok) {
			parse_error (p, line, "expected \"Name: value\" or a blank line ending the headers");
			continue;
		}
		*colon = '\0';
		char *value = g_strstrip (colon + 1);
		if (g_ascii_strcasecmp (header, "Subject") != 0) {
			parse_extra_header (p, t, line, header, value);
		} else if (have_subject) {
			parse_error (p, line, "duplicate Subject header");
		} else if (value[0] == '\0') {
			parse_error (p, line, "empty Subject");
			have_subject = TRUE;
		} else {
			parse_nodes (p, value, line, t->subject);
			have_subject = TRUE;
		}
	}
	if (!have_subject)
		parse_error (p, 1, "missing Subject header");
	*body_line_r = line + 1;
	return pos;
}

/* Checks encoding and size; returns a NUL-terminated copy without a BOM
 * and with CRLF line ends made LF, or NULL after reporting the problem. */
static char *
clean_text (Parser *p, const char *data, gsize len)
{
	if (len > MD_TEMPLATE_MAX_SIZE) {
		g_string_append_printf (p->errors, "%s: larger than %d bytes\n",
		                        p->filename, MD_TEMPLATE_MAX_SIZE);
		p->n_errors++;
		return NULL;
	}
	const char *end;
	if (!g_utf8_validate_len (data, len, &end)) {
		int line = 1;
		for (const char *c = data; c < end; c++)
			if (*c == '\n')
				line++;
		parse_error (p, line, *end ? "not valid UTF-8" : "contains a NUL byte");
		return NULL;
	}
	if (len >= 3 && memcmp (data, "\xEF\xBB\xBF", 3) == 0) {
		data += 3;
		len -= 3;
	}
	GString *out = g_string_sized_new (len);
	for (gsize i = 0; i < len; i++)
		if (!(data[i] == '\r' && i + 1 < len && data[i + 1] == '\n'))
			g_string_append_c (out, data[i]);
	return g_string_free (out, FALSE);
}

static MdTemplate *
parse_template (Parser *p, const char *data, gsize len)
{
	g_autofree char *text = clean_text (p, data, len);
	if (!text)
		return NULL;
	g_autoptr (MdTemplate) t = g_new0 (MdTemplate, 1);
	t->event = g_strdup (p->event);
	t->subject = node_list_new ();
	t->body = node_list_new ();
	t->headers = g_ptr_array_new_with_free_func (g_free);
	g_ptr_array_add (t->headers, NULL);

	int body_line = 0;
	const char *body = parse_headers (p, t, text, &body_line);
	if (body)
		parse_nodes (p, body, body_line, t->body);
	return p->n_errors ? NULL : g_steal_pointer (&t);
}

static void
set_errors (GError **error, GString *errors)
{
	if (errors->len && errors->str[errors->len - 1] == '\n')
		g_string_truncate (errors, errors->len - 1);
	g_set_error_literal (error, MD_ERROR, MD_ERROR_CONFIG, errors->str);
}

static MdTemplate *
parse_into (GString *errors, const char *event, const char *filename,
            const char *data, gsize len)
{
	Parser p = { .filename = filename, .event = event, .errors = errors };
	int i = event_index (event);
	if (i < 0) {
		g_string_append_printf (errors, "%s: \"%s\" is not a template event\n", filename, event);
		return NULL;
	}
	p.event_bit = 1u << i;
	return parse_template (&p, data, len);
}

MdTemplate *
md_template_new_from_data (const char *event, const char *filename,
                           const char *data, gsize len, GError **error)
{
	g_autoptr (GString) errors = g_string_new (NULL);
	MdTemplate *t = parse_into (errors, event, filename, data, len);
	if (!t)
		set_errors (error, errors);
	return t;
}

static MdTemplate *
load_into (GString *errors, const char *path)
{
	g_autofree char *base = g_path_get_basename (path);
	if (!g_str_has_suffix (base, ".tmpl")) {
		g_string_append_printf (errors, "%s: a template file name ends in .tmpl\n", path);
		return NULL;
	}
	base[strlen (base) - strlen (".tmpl")] = '\0';

	struct stat st;
	if (g_stat (path, &st) < 0) {
		g_string_append_printf (errors, "%s: %s\n", path, g_strerror (errno));
		return NULL;
	}
	if (!S_ISREG (st.st_mode) || st.st_size > MD_TEMPLATE_MAX_SIZE) {
		g_string_append_printf (errors, "%s: not a regular file of at most %d bytes\n",
		                        path, MD_TEMPLATE_MAX_SIZE);
		return NULL;
	}
	g_autofree char *data = NULL;
	gsize len = 0;
	g_autoptr (GError) read_error = NULL;
	if (!g_file_get_contents (path, &data, &len, &read_error)) {
		g_string_append_printf (errors, "%s\n", read_error->message);
		return NULL;
	}
	return parse_into (errors, base, path, data, len);
}

MdTemplate *
md_template_load (const char *path, GError **error)
{
	g_autoptr (GString) errors = g_string_new (NULL);
	MdTemplate *t = load_into (errors, path);
	if (!t)
		set_errors (error, errors);
	return t;
}

/* ---- rendering ---- */

typedef struct {
	GHashTable *vars, *under;  /* either may be NULL */
} Vars;

static const char *
lookup (const Vars *v, const char *name)
{
	const char *value = v->vars ? g_hash_table_lookup (v->vars, name) : NULL;
	return value ? value : v->under ? g_hash_table_lookup (v->under, name) : NULL;
}

static gboolean
is_true (const Vars *v, const char *name)
{
	const char *value = lookup (v, name);
	return value && value[0];
}

static gboolean
render_nodes (GPtrArray *nodes, const Vars *vars, GString *out, gsize limit)
{
	for (guint i = 0; i < nodes->len; i++) {
		Node *node = g_ptr_array_index (nodes, i);
		switch (node->kind) {
		case NODE_TEXT:
			if (out->len + strlen (node->text) > limit)
				return FALSE;
			g_string_append (out, node->text);
			break;
		case NODE_VAR: {
			const char *value = lookup (vars, node->text);
			if (!value)
				break;
			gsize len = strlen (value);
			if (out->len + len > limit)
				return FALSE;
			if (g_utf8_validate_len (value, len, NULL)) {
				g_string_append_len (out, value, len);
			} else {
				g_autofree char *valid = g_utf8_make_valid (value, len);
				g_string_append (out, valid);
			}
			break;
		}
		case NODE_IF: {
			GPtrArray *branch = is_true (vars, node->text) ? node->then_nodes : node->else_nodes;
			if (branch && !render_nodes (branch, vars, out, limit))
				return FALSE;
			break;
		}
		}
	}
	return out->len <= limit;
}

gboolean
md_template_render_over (const MdTemplate *t, GHashTable *vars, GHashTable *under,
                         char **subject_r, char **body_r, GError **error)
{
	g_autoptr (GString) subject = g_string_new (NULL);
	g_autoptr (GString) body = g_string_new (NULL);
	Vars v = { vars, under };

	/* an over-long subject is cut, not refused: compose bounds it anyway */
	render_nodes (t->subject, &v, subject, MAX_SUBJECT_OUTPUT);
	if (!render_nodes (t->body, &v, body, MD_TEMPLATE_MAX_OUTPUT)) {
		g_set_error (error, MD_ERROR, MD_ERROR_TOO_BIG,
		             "%s mail would be larger than %d bytes", t->event, MD_TEMPLATE_MAX_OUTPUT);
		return FALSE;
	}
	if (!g_utf8_validate_len (subject->str, subject->len, NULL)) {
		g_autofree char *valid = g_utf8_make_valid (subject->str, subject->len);
		g_string_assign (subject, valid);
	}
	*subject_r = md_text_one_line (subject->str, G_MAXSIZE);
	*body_r = g_string_free (g_steal_pointer (&body), FALSE);
	return TRUE;
}

gboolean
md_template_render (const MdTemplate *t, GHashTable *vars,
                    char **subject_r, char **body_r, GError **error)
{
	return md_template_render_over (t, vars, NULL, subject_r, body_r, error);
}

/* ---- the set ---- */

struct _MdTemplateSet {
	GHashTable *by_event;   /* event (static) -> MdTemplate */
};

void
md_template_set_free (MdTemplateSet *set)
{
	if (!set)
		return;
	g_hash_table_unref (set->by_event);
	g_free (set);
}

MdTemplateSet *
md_template_set_load (const char *dir, GError **error)
{
	g_autoptr (MdTemplateSet) set = g_new0 (MdTemplateSet, 1);
	set->by_event = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
	                                       (GDestroyNotify) md_template_free);
	g_autoptr (GString) errors = g_string_new (NULL);

	for (int i = 0; md_template_events[i]; i++) {
		g_autofree char *file = g_strconcat (md_template_events[i], ".tmpl", NULL);
		g_autofree char *path = g_build_filename (dir, file, NULL);
		MdTemplate *t = load_into (errors, path);
		if (t)
			g_hash_table_insert (set->by_event, (gpointer) md_template_events[i], t);
	}
	if (errors->len) {
		set_errors (error, errors);
		return NULL;
	}
	return g_steal_pointer (&set);
}

const MdTemplate *
md_template_set_get (const MdTemplateSet *set, const char *event)
{
	return event ? g_hash_table_lookup (set->by_event, event) : NULL;
}
