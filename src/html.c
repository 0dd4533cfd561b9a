/* html.c - rendering an HTML body as readable plain text.  libxml2 does
 * the parsing (tag soup, entities, recovery); this file only walks the
 * tree and decides where line breaks go. */
#include "config.h"

#include <string.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "html.h"

/* Deep trees are parsed by libxml2 (it limits depth itself); the walk stops
 * descending beyond this. */
#define MAX_WALK_DEPTH 256

typedef struct {
	GString *out;
	int pending_breaks;   /* line breaks owed before the next text */
	gboolean pending_space;
	int pre;              /* inside <pre>: keep white space */
} Render;

static const char *const dropped[] = { "script", "style", "head", "title", "template", "noscript", "object", "iframe", NULL };
static const char *const paragraphs[] = { "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr", NULL };
static const char *const blocks[] = { "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer",
	                              "nav", "aside", "main", "address", "form", "fieldset", "figure", "figcaption",
	                              "center", "caption", "tbody", "thead", "tfoot", "body", "html", NULL };

static gboolean
name_in (const xmlChar *name, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (g_ascii_strcasecmp ((const char *) name, list[i]) == 0)
			return TRUE;
	return FALSE;
}

static void
want_breaks (Render *r, int n)
{
	if (r->out->len > 0 && r->pending_breaks < n)
		r->pending_breaks = n;
}

static void
emit (Render *r, const char *text, gsize len)
{
	if (len == 0)
		return;
	if (r->pending_breaks > 0) {
		for (int i = 0; i < r->pending_breaks; i++)
			g_string_append_c (r->out, '\n');
		r->pending_breaks = 0;
		r->pending_space = FALSE;
	} else if (r->pending_space && r->out->len > 0) {
		g_string_append_c (r->out, ' ');
	}
	r->pending_space = FALSE;
	g_string_append_len (r->out, text, (gssize) len);
}

static void
emit_text (Render *r, const char *text)
{
	if (r->pre) {
		for (const char *line = text; line; ) {
			const char *nl = strchr (line, '\n');
			emit (r, line, nl ? (gsize) (nl - line) : strlen (line));
			if (!nl)
				break;
			r->pending_breaks++;
			line = nl + 1;
		}
		return;
	}
	/* collapse runs of white space (HTML's rendering rule) */
	const char *p = text;
	while (*p) {
		if (g_ascii_isspace (*p)) {
			r->pending_space = TRUE;
			p++;
			continue;
		}
		const char *start = p;
		while (*p && !g_ascii_isspace (*p))
			p++;
		emit (r, start, (gsize) (p - start));
	}
}

/* Whether an anchor's URL says more than its shown text (the `len`
 * bytes at `text`, trimmed): "(href)" follows the text unless the text
 * is the URL, with or without its mailto:. */
static gboolean
worth_showing_url (const char *href, const char *text, gsize len)
{
	if (!href || !*href || href[0] == '#' || g_ascii_strncasecmp (href, "javascript:", 11) == 0)
		return FALSE;
	while (len > 0 && g_ascii_isspace (*text))
		text++, len--;
	while (len > 0 && g_ascii_isspace (text[len - 1]))
		len--;
	const char *bare = g_ascii_strncasecmp (href, "mailto:", 7) == 0 ? href + 7 : href;
	return !(strlen (bare) == len && memcmp (bare, text, len) == 0)
	       && !(strlen (href) == len && memcmp (href, text, len) == 0);
}

static void render_children (Render *r, xmlNode *node, int depth);
static void render_element (Render *r, xmlNode *node, int depth);

static void
render_list (Render *r, xmlNode *list, int depth, gboolean ordered)
{
	int number = 1;
	for (xmlNode *child = list->children; child; child = child->next) {
		if (child->type == XML_ELEMENT_NODE && g_ascii_strcasecmp ((const char *) child->name, "li") == 0) {
			want_breaks (r, 1);
			g_autofree char *marker = ordered ? g_strdup_printf ("%d.", number++) : g_strdup ("-");
			emit (r, marker, strlen (marker));
			r->pending_space = TRUE;
			render_children (r, child, depth + 1);
			want_breaks (r, 1);
		} else if (child->type == XML_ELEMENT_NODE) {
			/* itself, not only its children: a <style> or <script>
			 * in a list is dropped, a <div> breaks its line */
			render_element (r, child, depth + 1);
		} else if (child->type == XML_TEXT_NODE || child->type == XML_CDATA_SECTION_NODE) {
			emit_text (r, (const char *) child->content);
		}
	}
}

static void
render_element (Render *r, xmlNode *node, int depth)
{
	const xmlChar *name = node->name;

	if (name_in (name, dropped))
		return;
	if (g_ascii_strcasecmp ((const char *) name, "br") == 0) {
		r->pending_breaks++;
		if (r->out->len == 0)
			r->pending_breaks = 0;
		return;
	}
	if (g_ascii_strcasecmp ((const char *) name, "img") == 0) {
		xmlChar *alt = xmlGetProp (node, (const xmlChar *) "alt");
		if (alt && *alt)
			emit_text (r, (const char *) alt);
		xmlFree (alt);
		render_children (r, node, depth);   /* libxml2 may nest what follows */
		return;
	}
	if (g_ascii_strcasecmp ((const char *) name, "td") == 0 || g_ascii_strcasecmp ((const char *) name, "th") == 0) {
		if (xmlPreviousElementSibling (node))
			emit (r, "\t", 1);
		render_children (r, node, depth);
		return;
	}
	gboolean paragraph = name_in (name, paragraphs);
	gboolean block = paragraph || name_in (name, blocks);
	if (block)
		want_breaks (r, paragraph ? 2 : 1);
	if (g_ascii_strcasecmp ((const char *) name, "hr") == 0) {
		emit (r, "----", 4);
	} else if (g_ascii_strcasecmp ((const char *) name, "ul") == 0 || g_ascii_strcasecmp ((const char *) name, "ol") == 0) {
		render_list (r, node, depth, g_ascii_strcasecmp ((const char *) name, "ol") == 0);
	} else if (g_ascii_strcasecmp ((const char *) name, "a") == 0) {
		/* Compared with the text as rendered, not a copy of the
		 * anchor's content: every anchor of a nest held a copy of all
		 * below it, 640 MB for a 5 MB body of nested links. */
		xmlChar *href = xmlGetProp (node, (const xmlChar *) "href");
		gsize start = r->out->len;
		render_children (r, node, depth);
		if (worth_showing_url ((const char *) href, r->out->str + start, r->out->len - start)) {
			g_autofree char *shown = g_strdup_printf ("(%s)", (const char *) href);
			r->pending_space = TRUE;
			emit (r, shown, strlen (shown));
		}
		xmlFree (href);
	} else {
		gboolean pre = g_ascii_strcasecmp ((const char *) name, "pre") == 0;
		r->pre += pre;
		render_children (r, node, depth);
		r->pre -= pre;
	}
	if (block)
		want_breaks (r, paragraph ? 2 : 1);
}

static void
render_children (Render *r, xmlNode *node, int depth)
{
	if (depth > MAX_WALK_DEPTH)
		return;
	for (xmlNode *child = node->children; child; child = child->next) {
		if (child->type == XML_TEXT_NODE || child->type == XML_CDATA_SECTION_NODE)
			emit_text (r, (const char *) child->content);
		else if (child->type == XML_ELEMENT_NODE)
			render_element (r, child, depth + 1);
	}
}

char *
md_html_to_text (const char *html, gsize len)
{
	if (len > G_MAXINT)
		len = G_MAXINT;
	htmlDocPtr doc = htmlReadMemory (html, (int) len, NULL, "UTF-8",
	                                 HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING
	                                 | HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED);
	Render r = { .out = g_string_new (NULL) };
	if (doc) {
		for (xmlNode *node = doc->children; node; node = node->next) {
			if (node->type == XML_ELEMENT_NODE)
				render_element (&r, node, 0);
			else if (node->type == XML_TEXT_NODE)
				emit_text (&r, (const char *) node->content);
		}
		xmlFreeDoc (doc);
	}
	/* every line without trailing blanks, no trailing empty lines */
	g_auto (GStrv) lines = g_strsplit (r.out->str, "\n", -1);
	for (int i = 0; lines[i]; i++)
		g_strchomp (lines[i]);
	g_string_free (r.out, TRUE);
	char *text = g_strjoinv ("\n", lines);
	return g_strchomp (text);
}
