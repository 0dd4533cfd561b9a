/* corpus.c - reading the corpus's attachment expectations (MIME-tools
 * .ref Perl hashes, Stalwart .json part trees) and scoring maildesk's
 * attachments against them.  See corpus.h and doc/VIOLATIONS.md. */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "corpus.h"

/* Cases where maildesk disagrees with the expectation on purpose; each is
 * explained in doc/VIOLATIONS.md.  Their misses are reported, not scored. */
static const char *const deviations[] = {
	"stalwart/rfc/000",          /* junk in base64: decoded, not kept raw */
	"stalwart/thirdparty/002",   /* undecodable text part: body, not attachment */
	"stalwart/malformed/001", "stalwart/malformed/002", "stalwart/malformed/003",
	"stalwart/malformed/004", "stalwart/malformed/006", "stalwart/malformed/007",
	"stalwart/malformed/009", "stalwart/malformed/011", "stalwart/malformed/016",
	                             /* broken boundaries: GMime's tree, text as body */
	"stalwart/malformed/017",    /* multipart without boundary: no parts */
	"stalwart/malformed/022",    /* message/rfc822 that is no message */
	NULL,
};

static void
expected_free (gpointer data)
{
	MdCorpusExpected *e = data;
	g_free (e->type);
	g_free (e->name);
	g_free (e);
}

void
md_corpus_case_free (MdCorpusCase *c)
{
	if (!c)
		return;
	g_free (c->label);
	g_free (c->message);
	if (c->expected)
		g_ptr_array_unref (c->expected);
	g_free (c->not_compared);
	g_free (c);
}

/* The names maildesk stores for a sender's name: the last path component,
 * characters Windows forbids as '_' (see doc/VIOLATIONS.md). */
static char *
expected_name (const char *name)
{
	const char *slash = strrchr (name, '/');
	char *base = g_strdup (slash ? slash + 1 : name);
	g_strdelimit (base, "<>:\"|?*", '_');
	return base;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
	return strcmp (*(char *const *) a, *(char *const *) b);
}

static GPtrArray *
sorted_names (const char *dir, const char *suffix)
{
	g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
	GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
	const char *name;
	while (d && (name = g_dir_read_name (d)))
		if (g_str_has_suffix (name, suffix))
			g_ptr_array_add (names, g_strdup (name));
	g_ptr_array_sort (names, compare_strings);
	return names;
}

GPtrArray *
md_corpus_messages (const char *dir)
{
	GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
	static const char *const suffixes[] = { ".msg", ".eml" };
	for (gsize s = 0; s < G_N_ELEMENTS (suffixes); s++) {
		g_autoptr (GPtrArray) names = sorted_names (dir, suffixes[s]);
		for (guint i = 0; i < names->len; i++)
			g_ptr_array_add (out, g_build_filename (dir, names->pdata[i], NULL));
	}
	g_ptr_array_sort (out, compare_strings);
	return out;
}

/* ---- MIME-tools .ref ---- */

/* A Perl string literal of a .ref file: \x{41F}, \@, \", \\ */
static char *
perl_unquote (const char *s)
{
	GString *out = g_string_new (NULL);
	if (*s == '"')
		s++;
	for (; *s && *s != '"'; s++) {
		if (*s != '\\') {
			g_string_append_c (out, *s);
		} else if (s[1] == 'x' && s[2] == '{') {
			char *end = NULL;
			gunichar c = (gunichar) g_ascii_strtoull (s + 3, &end, 16);
			g_string_append_unichar (out, c);
			s = *end ? end : end - 1;   /* the '}' */
		} else if (s[1]) {
			g_string_append_c (out, *++s);
		}
	}
	return g_string_free (out, FALSE);
}

/* .ref: a Perl hash of hashes, one per line "Key" => value. */
static GHashTable *
read_ref (const char *path, GError **error)
{
	g_autofree char *text = NULL;
	if (!g_file_get_contents (path, &text, NULL, error))
		return NULL;
	GHashTable *parts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_hash_table_unref);
	g_autoptr (GRegex) open_re = g_regex_new ("^\\s*\"(\\w+)\"\\s*=>\\s*\\{", 0, 0, NULL);
	g_autoptr (GRegex) field_re = g_regex_new ("^\\s*\"(\\w+)\"\\s*=>\\s*(\"(?:[^\"\\\\]|\\\\.)*\"|[0-9]+)", 0, 0, NULL);
	g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
	GHashTable *current = NULL;
	for (int i = 0; lines[i]; i++) {
		g_autoptr (GMatchInfo) m = NULL;
		if (g_regex_match (open_re, lines[i], 0, &m)) {
			current = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
			g_hash_table_insert (parts, g_match_info_fetch (m, 1), current);
			continue;
		}
		g_clear_pointer (&m, g_match_info_free);
		if (current && g_regex_match (field_re, lines[i], 0, &m)) {
			g_autofree char *value = g_match_info_fetch (m, 2);
			g_hash_table_insert (current, g_match_info_fetch (m, 1), perl_unquote (value));
		}
	}
	return parts;
}

/* Which .ref entries are what maildesk calls an attachment: every leaf
 * except body text (text/plain or text/html, not named, not marked
 * attachment), nested messages included. */
static GPtrArray *
ref_expectations (GHashTable *parts)
{
	GPtrArray *expected = g_ptr_array_new_with_free_func (expected_free);
	g_autoptr (GList) keys = g_hash_table_get_keys (parts);
	keys = g_list_sort (keys, (GCompareFunc) strcmp);
	for (GList *k = keys; k; k = k->next) {
		GHashTable *part = g_hash_table_lookup (parts, k->data);
		const char *type = g_hash_table_lookup (part, "Type");
		if (strcmp (k->data, "Parser") == 0 || !type || g_str_has_prefix (type, "multipart/"))
			continue;
		g_autofree char *lower = g_ascii_strdown (type, -1);
		const char *name = g_hash_table_lookup (part, "Filename");
		const char *disposition = g_hash_table_lookup (part, "Disposition");
		const char *size = g_hash_table_lookup (part, "Size");
		gboolean text = strcmp (lower, "text/plain") == 0 || strcmp (lower, "text/html") == 0 || strcmp (lower, "text") == 0;
		if (text && !name && !(disposition && strcmp (disposition, "attachment") == 0))
			continue;
		MdCorpusExpected *e = g_new0 (MdCorpusExpected, 1);
		e->type = g_steal_pointer (&lower);
		e->name = name ? expected_name (name) : NULL;
		e->size = size && !g_str_has_prefix (e->type, "message/") ? g_ascii_strtoll (size, NULL, 10) : -1;
		g_ptr_array_add (expected, e);
	}
	return expected;
}

static MdCorpusCase *
mime_tools_case (const char *dir, const char *ref_name, const char *label_prefix, GError **error)
{
	g_autofree char *path = g_build_filename (dir, ref_name, NULL);
	g_autoptr (GHashTable) parts = read_ref (path, error);
	if (!parts)
		return NULL;
	MdCorpusCase *c = g_new0 (MdCorpusCase, 1);
	c->label = g_strconcat (label_prefix, ref_name, NULL);
	GHashTable *parser = g_hash_table_lookup (parts, "Parser");
	GHashTable *top = g_hash_table_lookup (parts, "Msg");
	const char *message = parser ? g_hash_table_lookup (parser, "Message") : NULL;
	const char *nested = parser ? g_hash_table_lookup (parser, "ExtractNested") : NULL;
	if (message) {
		g_autofree char *base = g_path_get_basename (message);
		c->message = g_build_filename (dir, base, NULL);
	}
	/* only refs of MIME-tools' default extraction: see VIOLATIONS.md */
	if (!message)
		c->not_compared = g_strdup ("names no message");
	else if (top && g_hash_table_lookup (top, "Fail"))
		c->not_compared = g_strdup ("expects MIME-tools to fail");
	else if (nested && strcmp (nested, "1") != 0)
		c->not_compared = g_strdup_printf ("describes the ExtractNested => %s option", nested);
	else
		c->expected = ref_expectations (parts);
	return c;
}

/* ---- Stalwart .json ---- */

static const char *
json_string_at (JsonObject *o, const char *member)
{
	JsonNode *n = o ? json_object_get_member (o, member) : NULL;
	return n && JSON_NODE_HOLDS_VALUE (n) ? json_node_get_string (n) : NULL;
}

/* The ContentType value of a part's header (content_type or
 * content_disposition), or NULL. */
static JsonObject *
json_header (JsonObject *part, const char *header)
{
	JsonArray *headers = json_object_get_array_member (part, "headers");
	for (guint i = 0; headers && i < json_array_get_length (headers); i++) {
		JsonObject *h = json_array_get_object_element (headers, i);
		if (g_strcmp0 (json_object_get_string_member (h, "name"), header) != 0)
			continue;
		JsonNode *node = json_object_get_member (h, "value");
		JsonObject *value = node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
		if (value && json_object_has_member (value, "ContentType"))
			return json_object_get_object_member (value, "ContentType");
	}
	return NULL;
}

static const char *
json_attribute (JsonObject *ct, const char *attribute)
{
	JsonNode *attrs = ct ? json_object_get_member (ct, "attributes") : NULL;
	if (!attrs || !JSON_NODE_HOLDS_ARRAY (attrs))
		return NULL;
	JsonArray *a = json_node_get_array (attrs);
	for (guint i = 0; i < json_array_get_length (a); i++) {
		JsonObject *kv = json_array_get_object_element (a, i);
		if (g_ascii_strcasecmp (json_object_get_string_member (kv, "name"), attribute) == 0)
			return json_object_get_string_member (kv, "value");
	}
	return NULL;
}

static MdCorpusExpected *
json_expectation (JsonObject *part)
{
	MdCorpusExpected *e = g_new0 (MdCorpusExpected, 1);
	JsonObject *body = json_object_get_object_member (part, "body");
	JsonObject *ct = json_header (part, "content_type");
	JsonObject *cd = json_header (part, "content_disposition");
	const char *type = json_string_at (ct, "c_type"), *subtype = json_string_at (ct, "c_subtype");
	gboolean is_message = body && json_object_has_member (body, "Message");

	if (type && subtype) {
		g_autofree char *mime = g_strdup_printf ("%s/%s", type, subtype);
		e->type = g_ascii_strdown (mime, -1);
	} else
		e->type = g_strdup (is_message ? "message/rfc822" : "text/plain");
	const char *name = json_attribute (cd, "filename");
	if (!name)
		name = json_attribute (ct, "name");
	e->name = name ? expected_name (name) : NULL;
	e->size = -1;
	if (!body)
		return e;
	if (json_object_has_member (body, "Text"))
		e->size = (gint64) strlen (json_object_get_string_member (body, "Text"));
	else if (json_object_has_member (body, "Binary"))
		e->size = json_array_get_length (json_object_get_array_member (body, "Binary"));
	else if (json_object_has_member (body, "InlineBinary"))
		e->size = json_array_get_length (json_object_get_array_member (body, "InlineBinary"));
	return e;
}

static MdCorpusCase *
stalwart_case (const char *dir, const char *json_name, const char *label_prefix, GError **error)
{
	g_autofree char *json_path = g_build_filename (dir, json_name, NULL);
	g_autofree char *stem = g_strndup (json_name, strlen (json_name) - 5);
	g_autoptr (JsonParser) parser = json_parser_new ();
	if (!json_parser_load_from_file (parser, json_path, error))
		return NULL;
	MdCorpusCase *c = g_new0 (MdCorpusCase, 1);
	c->label = g_strconcat (label_prefix, stem, NULL);
	c->message = g_strdup_printf ("%s/%s.eml", dir, stem);
	c->depth0_only = TRUE;
	JsonNode *root_node = json_parser_get_root (parser);
	JsonObject *root = root_node && JSON_NODE_HOLDS_OBJECT (root_node) ? json_node_get_object (root_node) : NULL;
	JsonArray *parts = root && json_object_has_member (root, "parts") ? json_object_get_array_member (root, "parts") : NULL;
	JsonArray *atts = root && json_object_has_member (root, "attachments")
	                  ? json_object_get_array_member (root, "attachments") : NULL;
	if (!parts) {
		c->not_compared = g_strdup ("has no part tree");
		return c;
	}
	c->expected = g_ptr_array_new_with_free_func (expected_free);
	for (guint i = 0; atts && i < json_array_get_length (atts); i++) {
		guint index = (guint) json_array_get_int_element (atts, i);
		if (index < json_array_get_length (parts))
			g_ptr_array_add (c->expected, json_expectation (json_array_get_object_element (parts, index)));
	}
	return c;
}

GPtrArray *
md_corpus_cases (const char *dir, const char *set, const char *label_prefix, GError **error)
{
	gboolean mime_tools = strcmp (set, "mime-tools") == 0;
	g_autoptr (GPtrArray) names = sorted_names (dir, mime_tools ? ".ref" : ".json");
	g_autoptr (GPtrArray) cases = g_ptr_array_new_with_free_func ((GDestroyNotify) md_corpus_case_free);
	for (guint i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];
		if (!mime_tools && g_str_has_suffix (name, ".crlf.json"))
			continue;
		MdCorpusCase *c = mime_tools ? mime_tools_case (dir, name, label_prefix, error)
		                             : stalwart_case (dir, name, label_prefix, error);
		if (!c)
			return NULL;
		c->deviation = g_strv_contains (deviations, c->label);
		g_ptr_array_add (cases, c);
	}
	return g_steal_pointer (&cases);
}

/* ---- scoring ---- */

static gboolean
same_type (const MdCorpusActual *a, const MdCorpusExpected *e)
{
	return strcmp (a->content_type, e->type) == 0;
}

static gboolean
same_name (const MdCorpusActual *a, const MdCorpusExpected *e)
{
	return !e->name || strcmp (a->filename, e->name) == 0;
}

static gboolean
same_size (const MdCorpusActual *a, const MdCorpusExpected *e)
{
	return e->size < 0 || a->size == e->size;
}

/* What came closest to an expectation that was not met. */
static char *
miss_reason (const MdCorpusExpected *e, const MdCorpusActual *actual, guint n, const gboolean *used)
{
	for (int pass = 0; pass < 3; pass++) {
		for (guint j = 0; j < n; j++) {
			const MdCorpusActual *a = &actual[j];
			if (used[j])
				continue;
			if (pass == 0 && same_type (a, e) && same_name (a, e))
				return g_strdup_printf ("stored with %" G_GINT64_FORMAT " bytes", a->size);
			if (pass == 1 && same_name (a, e) && e->name)
				return g_strdup_printf ("stored as %s, %" G_GINT64_FORMAT " bytes", a->content_type, a->size);
			if (pass == 2 && same_type (a, e) && same_size (a, e))
				return g_strdup_printf ("stored as \"%s\"", a->filename);
		}
	}
	return g_strdup (n ? "no stored attachment like it" : "no attachment stored");
}

void
md_corpus_score (const MdCorpusCase *c, const MdCorpusActual *actual, guint n_actual, MdCorpusScore *score)
{
	g_autofree gboolean *used = g_new0 (gboolean, n_actual + 1);

	if (!score->misses)
		score->misses = g_ptr_array_new_with_free_func (g_free);
	for (guint j = 0; j < n_actual; j++) {
		if (actual[j].is_body || (c->depth0_only && actual[j].depth > 0))
			used[j] = TRUE;
	}
	for (guint i = 0; i < c->expected->len; i++) {
		const MdCorpusExpected *e = c->expected->pdata[i];
		gboolean found = FALSE;
		for (guint j = 0; j < n_actual && !found; j++) {
			if (!used[j] && same_type (&actual[j], e) && same_name (&actual[j], e) && same_size (&actual[j], e))
				used[j] = found = TRUE;
		}
		if (found) {
			score->matched++;
			score->expected++;
			continue;
		}
		if (c->deviation)
			score->excused++;
		else
			score->expected++;
		g_autofree char *why = miss_reason (e, actual, n_actual, used);
		g_autofree char *size = e->size >= 0 ? g_strdup_printf ("%" G_GINT64_FORMAT " bytes", e->size)
		                                     : g_strdup ("any size");
		g_ptr_array_add (score->misses,
		                 g_strdup_printf ("%s: expected %s \"%s\" (%s): %s%s", c->label, e->type,
		                                  e->name ? e->name : "(any name)", size, why,
		                                  c->deviation ? " [deviation, see doc/VIOLATIONS.md]" : ""));
	}
	for (guint j = 0; j < n_actual; j++) {
		if (used[j])
			continue;
		score->extra++;
		g_ptr_array_add (score->misses,
		                 g_strdup_printf ("%s: extra %s \"%s\" (%" G_GINT64_FORMAT " bytes) not in the expectation",
		                                  c->label, actual[j].content_type, actual[j].filename, actual[j].size));
	}
}

void
md_corpus_score_clear (MdCorpusScore *score)
{
	g_clear_pointer (&score->misses, g_ptr_array_unref);
	memset (score, 0, sizeof *score);
}

/* A reply text as the corpus compares it: line ends and trailing white space do not count; neither do blank
 * lines at either end (the corpus README asks for this). */
char *
md_corpus_normalize_reply (const char *text)
{
	g_auto (GStrv) lines = g_strsplit (text ? text : "", "\n", -1);
	GString *out = g_string_new (NULL);
	guint n = g_strv_length (lines), first = 0, last = n;

	for (guint i = 0; i < n; i++)
		g_strchomp (lines[i]);
	while (first < n && !*lines[first])
		first++;
	while (last > first && !*lines[last - 1])
		last--;
	for (guint i = first; i < last; i++) {
		if (i > first)
			g_string_append_c (out, '\n');
		g_string_append (out, lines[i]);
	}
	return g_string_free (out, FALSE);
}
