/* html.c - rendering an HTML body as readable plain text.  libxml2 does
 * the parsing (tag soup, entities, recovery) and reports it as events;
 * this file decides where line breaks go, keeping only a stack of the
 * open elements, so memory follows the text, not the tree.  libxml2 is
 * fed through a filter that bounds how deep that stack gets. */
#include "config.h"

#include <string.h>
#include <libxml/HTMLparser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>

#include "html.h"

/* Attributes of one tag that reach libxml2: it checks each new one
 * against all before it (quadratic; a 350 KB tag took 15 s of CPU). */
#define MAX_TAG_ATTRIBUTES 64

/* Elements libxml2 is let to have open at once (a reply chain quoted
 * a hundred times deep is some 300).  It looks for an end tag's element
 * through all that are open, and for an open <body> at each <body>:
 * 80,000 <b> then as many </i> (560 KB) took 27 s, and our stack of
 * them was 40 bytes each.  An element that would go deeper is ended as
 * soon as it starts (see feed_start_tag); no text is left out. */
#define MAX_DEPTH 1024

/* Bytes given to libxml2 at a time: whatever of them it has not read
 * yet counts as open elements when the next start tags are let in. */
#define FEED_PIECE 256

/* What an open element does to the rendering, pushed at its start tag
 * and popped at its end (libxml2 ends every element it starts, implied
 * or not, so the stack follows the document). */
typedef struct {
	guint dropped : 1;    /* its content is not shown (<script>, <head>...) */
	guint pre : 1;
	guint anchor : 1;
	guint list : 1;       /* <ul> or <ol>: its <li> children get markers */
	guint ordered : 1;
	guint breaks : 2;     /* line breaks owed after it: 1 block, 2 paragraph */
	int number;           /* an <ol>'s next item number */
	guint elements;       /* element children seen so far (a <td>'s tab) */
	char *href;           /* an <a>'s URL */
	gsize text_start;     /* where an <a>'s text begins in the output */
} Frame;

typedef struct {
	GString *out;
	int pending_breaks;   /* line breaks owed before the next text */
	gboolean pending_space;
	int pre;              /* inside <pre>: keep white space (those ended
	                       * early for libxml2 counted too, see MARK_OPEN) */
	int dropped;          /* inside an element whose content is not shown */
	gboolean show_all;    /* no content is dropped any more */
	GArray *frames;       /* Frame, the open elements */
	char *link;           /* the URL of an <a> ended early for libxml2 */
	gsize link_start;     /* where its text begins in the output */
} Render;

/* What feed_start_tag tells the renderer, in comments of its own: those
 * of the HTML reach libxml2 empty (see EMPTY_COMMENT).  MARK_OPEN is in
 * a <pre> or <a> that libxml2 is made to end at once: for the rendering
 * it stays open, and its end tag becomes MARK_END_PRE or MARK_END_A.
 * They are counted, not stacked (a link ends any still open, as HTML5's
 * do), so memory stays flat however deep they go. */
#define MARK_OPEN "maildesk:open"
#define MARK_END_PRE "maildesk:/pre"
#define MARK_END_A "maildesk:/a"

/* Not dropped: what mail clients show in place of what they do not
 * render or run, the fallback content of <object> (all but its <param>s),
 * <iframe> (in HTML4-era mail), <noscript>, <noembed> and <noframes>;
 * text there reached the reader, or was hidden from the agent alone.
 * Dropped: <template>, inert in every client. */
static const char *const dropped[] = { "script", "style", "head", "title", "template", NULL };
static const char *const paragraphs[] = { "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr", NULL };
static const char *const blocks[] = { "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer",
	                              "nav", "aside", "main", "address", "form", "fieldset", "figure", "figcaption",
	                              "center", "caption", "tbody", "thead", "tfoot", "body", "html", "noframes", NULL };

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
emit_text (Render *r, const char *text, gsize len)
{
	const char *end = text + len;
	if (r->dropped)
		return;
	if (r->pre) {
		for (const char *line = text; line < end; ) {
			const char *nl = memchr (line, '\n', (gsize) (end - line));
			emit (r, line, nl ? (gsize) (nl - line) : (gsize) (end - line));
			if (!nl)
				break;
			r->pending_breaks++;
			line = nl + 1;
		}
		return;
	}
	/* collapse runs of white space (HTML's rendering rule) */
	const char *p = text;
	while (p < end) {
		if (g_ascii_isspace (*p)) {
			r->pending_space = TRUE;
			p++;
			continue;
		}
		const char *start = p;
		while (p < end && !g_ascii_isspace (*p))
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

/* The end of a link to HREF (freed) whose text began at TEXT_START in
 * the output: "(href)" after it, unless it says no more.  Compared with
 * the text as rendered, not a copy of the anchor's content: every
 * anchor of a nest held a copy of all below it. */
static void
end_link (Render *r, char *href, gsize text_start)
{
	if (href && worth_showing_url (href, r->out->str + text_start, r->out->len - text_start)) {
		g_autofree char *shown = g_strdup_printf ("(%s)", href);
		/* a blank the link ended with still separates what follows */
		gboolean blank_after = r->pending_space;
		r->pending_space = TRUE;
		emit (r, shown, strlen (shown));
		r->pending_space = blank_after;
	}
	g_free (href);
}

static const char *
attribute (const xmlChar **atts, const char *name)
{
	for (int i = 0; atts && atts[i]; i += 2)
		if (g_ascii_strcasecmp ((const char *) atts[i], name) == 0)
			return (const char *) atts[i + 1];
	return NULL;
}

/* From here on nothing is dropped: the content of every element is
 * shown, of those already open too. */
static void
show_all (Render *r)
{
	if (r->show_all)
		return;
	r->show_all = TRUE;
	r->dropped = 0;
	for (guint i = 0; i < r->frames->len; i++)
		g_array_index (r->frames, Frame, i).dropped = FALSE;
}

static Frame *
parent_frame (Render *r)
{
	return r->frames->len ? &g_array_index (r->frames, Frame, r->frames->len - 1) : NULL;
}

/* A start tag.  Void elements (<br>, <img>, <hr>) get their end at once. */
static void
on_start (void *data, const xmlChar *tag, const xmlChar **atts)
{
	Render *r = data;
	const char *name = (const char *) tag;
	Frame *parent = parent_frame (r);
	Frame f = { 0 };
	guint sibling_elements = parent ? parent->elements++ : 0;

	f.dropped = !r->show_all && name_in (tag, dropped);
	if (f.dropped || r->dropped) {
		r->dropped += f.dropped;
		g_array_append_val (r->frames, f);
		return;
	}
	gboolean paragraph = name_in (tag, paragraphs);
	if (g_ascii_strcasecmp (name, "br") == 0) {
		r->pending_breaks++;
		if (r->out->len == 0)
			r->pending_breaks = 0;
	} else if (g_ascii_strcasecmp (name, "img") == 0) {
		const char *alt = attribute (atts, "alt");
		emit_text (r, alt ? alt : "", alt ? strlen (alt) : 0);
	} else if (g_ascii_strcasecmp (name, "td") == 0 || g_ascii_strcasecmp (name, "th") == 0) {
		if (sibling_elements > 0)
			emit (r, "\t", 1);
	} else if (g_ascii_strcasecmp (name, "li") == 0 && parent && parent->list) {
		want_breaks (r, 1);
		g_autofree char *marker = parent->ordered ? g_strdup_printf ("%d.", parent->number++) : g_strdup ("-");
		emit (r, marker, strlen (marker));
		r->pending_space = TRUE;
		f.breaks = 1;
	} else if (paragraph || name_in (tag, blocks)) {
		f.breaks = paragraph ? 2 : 1;
		want_breaks (r, f.breaks);
		if (g_ascii_strcasecmp (name, "hr") == 0)
			emit (r, "----", 4);
		f.list = g_ascii_strcasecmp (name, "ul") == 0 || g_ascii_strcasecmp (name, "ol") == 0;
		f.ordered = g_ascii_strcasecmp (name, "ol") == 0;
		f.number = 1;
		f.pre = g_ascii_strcasecmp (name, "pre") == 0;
		r->pre += f.pre;
	} else if (g_ascii_strcasecmp (name, "a") == 0) {
		f.anchor = TRUE;
		f.href = g_strdup (attribute (atts, "href"));
		f.text_start = r->out->len;
	}
	g_array_append_val (r->frames, f);
}

static void
on_end (void *data, const xmlChar *tag)
{
	Render *r = data;
	(void) tag;
	if (r->frames->len == 0)
		return;
	Frame f = g_array_index (r->frames, Frame, r->frames->len - 1);
	g_array_set_size (r->frames, r->frames->len - 1);
	r->dropped -= f.dropped;
	r->pre -= f.pre;
	end_link (r, f.href, f.text_start);
	if (f.breaks)
		want_breaks (r, f.breaks);
}

/* A comment: one of the marks of feed_start_tag, or empty. */
static void
on_comment (void *data, const xmlChar *value)
{
	Render *r = data;
	Frame *top = parent_frame (r);
	const char *mark = (const char *) value;
	if (!mark)
		return;
	if (strcmp (mark, MARK_OPEN) == 0 && top && top->pre) {
		top->pre = FALSE;   /* and r->pre still counts it */
	} else if (strcmp (mark, MARK_OPEN) == 0 && top && top->anchor) {
		end_link (r, r->link, r->link_start);
		r->link = g_steal_pointer (&top->href);
		r->link_start = top->text_start;
	} else if (strcmp (mark, MARK_END_PRE) == 0 && r->pre > 0) {
		r->pre--;
		want_breaks (r, 2);
	} else if (strcmp (mark, MARK_END_A) == 0) {
		end_link (r, r->link, r->link_start);
		r->link = NULL;
	}
}

static void
on_text (void *data, const xmlChar *text, int len)
{
	emit_text (data, (const char *) text, len > 0 ? (gsize) len : 0);
}

/* libxml2's reading of markup (HTMLparser.c, 2.9): blanks, and the
 * characters of a name, which it cuts into pieces of 100. */
#define NAME_PIECE 100

static gboolean
is_blank (char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static gboolean
is_name_start (char c)
{
	return g_ascii_isalpha (c) || c == '_' || c == ':' || c == '.';
}

static gboolean
is_name_char (char c)
{
	return is_name_start (c) || g_ascii_isdigit (c) || c == '-';
}

/* What libxml2 reads by rules of its own is handed to it in a form this
 * file reads the same way: a comment, <!DOCTYPE> or <?...> becomes an
 * empty comment, the content of a <script> or <style> goes (none of it
 * is shown), and an end tag keeps only its name.  Wherever the two
 * readings of the original would part (a "</Script>", a quote inside a
 * doctype), libxml2 reads what this file read, so no tag reaches it with
 * more than MAX_TAG_ATTRIBUTES attributes. */
static const char EMPTY_COMMENT[] = "<!---->";

/* Where the content of a <script> or <style> (NAME, LEN bytes) ends, as
 * libxml2 ends it: at "</" and the name, in any case, ending there. */
static const char *
raw_text_end (const char *p, const char *end, const char *name, gsize len)
{
	for (; (p = memchr (p, '<', (gsize) (end - p))); p++) {
		if ((gsize) (end - p) >= len + 2 && p[1] == '/' && g_ascii_strncasecmp (p + 2, name, len) == 0 &&
		    ((gsize) (end - p) == len + 2 || !is_name_char (p[2 + len])))
			return p;
	}
	return end;
}

/* A start tag from its name on, read as libxml2's htmlParseStartTag reads
 * it: *CUT_R set to where its attribute beyond MAX_TAG_ATTRIBUTES starts
 * (NULL: none).  Returns where it ends: at its ">" or "/>", or END. */
static const char *
read_start_tag (const char *q, const char *end, const char **cut_r)
{
	guint count = 0;
	*cut_r = NULL;
	for (const char *name = q; q < end && is_name_char (*q) && q - name < NAME_PIECE; q++)
		;
	while (q < end && is_blank (*q))
		q++;
	while (q < end && *q != '>' && !(*q == '/' && q + 1 < end && q[1] == '>')) {
		const char *attr = q;
		if (is_name_start (*q)) {
			for (const char *name = q; q < end && is_name_char (*q) && q - name < NAME_PIECE; q++)
				;
			while (q < end && is_blank (*q))
				q++;
			if (q < end && *q == '=') {
				for (q++; q < end && is_blank (*q); q++)
					;
				if (q < end && (*q == '"' || *q == '\'')) {
					const char *close = memchr (q + 1, *q, (gsize) (end - q - 1));
					q = close ? close + 1 : end;
				} else {
					while (q < end && !is_blank (*q) && *q != '>')
						q++;
				}
			}
			if (++count > MAX_TAG_ATTRIBUTES && !*cut_r)
				*cut_r = attr;
		} else {
			/* not an attribute: passed over up to a blank or the end */
			while (q < end && !is_blank (*q) && *q != '>' && !(*q == '/' && q + 1 < end && q[1] == '>'))
				q++;
		}
		while (q < end && is_blank (*q))
			q++;
	}
	return q;
}

/* HTML as libxml2 is given it: the attributes of every tag cut to
 * MAX_TAG_ATTRIBUTES, and what libxml2 might read otherwise than this
 * file (see EMPTY_COMMENT) made plain.  NULL when nothing changes. */
static GString *
markup_for_libxml2 (const char *html, gsize len)
{
	const char *p = html, *end = html + len;
	GString *out = NULL;
	const char *copied = html;   /* html before this is in out */
#define REPLACE(from, to, with, with_len) \
	do { \
		if (!out) \
			out = g_string_sized_new (len); \
		g_string_append_len (out, copied, (from) - copied); \
		g_string_append_len (out, (with), (with_len)); \
		copied = (to); \
	} while (0)

	while (p < end && (p = memchr (p, '<', (gsize) (end - p)))) {
		gsize left = (gsize) (end - p);
		if (left >= 4 && memcmp (p, "<!--", 4) == 0) {
			const char *close = g_strstr_len (p + 4, (gssize) (left - 4), "-->");
			const char *bang = g_strstr_len (p + 4, close ? close - p - 4 : (gssize) (left - 4), "--!>");
			const char *after = bang ? bang + 4 : close ? close + 3 : end;
			if (after - p != sizeof EMPTY_COMMENT - 1 || memcmp (p, EMPTY_COMMENT, sizeof EMPTY_COMMENT - 1) != 0)
				REPLACE (p, after, EMPTY_COMMENT, sizeof EMPTY_COMMENT - 1);
			p = after;
		} else if (left >= 2 && (p[1] == '?' || (p[1] == '!' && left >= 9 && g_ascii_strncasecmp (p + 2, "doctype", 7) == 0))) {
			const char *close = memchr (p, '>', left);
			const char *after = close ? close + 1 : end;
			REPLACE (p, after, EMPTY_COMMENT, sizeof EMPTY_COMMENT - 1);
			p = after;
		} else if (left >= 3 && p[1] == '/' && is_name_start (p[2])) {
			const char *name_end = p + 2;
			while (name_end < end && is_name_char (*name_end))
				name_end++;
			const char *close = memchr (name_end, '>', (gsize) (end - name_end));
			const char *after = close ? close + 1 : end;
			if (!close || close != name_end) {
				REPLACE (p, after, p, (gsize) (name_end - p));
				g_string_append_c (out, '>');
			}
			p = after;
		} else if (left >= 2 && g_ascii_isalpha (p[1])) {
			const char *name = p + 1, *cut;
			gsize name_len = 0;
			while (name_len < NAME_PIECE && name + name_len < end && is_name_char (name[name_len]))
				name_len++;
			const char *q = read_start_tag (name, end, &cut);
			if (cut)
				REPLACE (cut, q, "", 0);
			gboolean closed = q < end && *q == '>';
			p = q < end ? q + (*q == '>' ? 1 : 2) : end;
			if (closed && ((name_len == 6 && g_ascii_strncasecmp (name, "script", 6) == 0) ||
			               (name_len == 5 && g_ascii_strncasecmp (name, "style", 5) == 0))) {
				/* not shown: only where it ends matters */
				const char *close = raw_text_end (p, end, name, name_len);
				if (close > p)
					REPLACE (p, close, "", 0);
				p = close;
			}
		} else {
			p++;
		}
	}
#undef REPLACE
	if (out)
		g_string_append_len (out, copied, end - copied);
	return out;
}

/* What libxml2 reads, handed to it a piece at a time by feed_read (it
 * keeps only what it has not read yet, not a copy of it all), so that
 * the depth it has reached can be looked at between pieces. */
typedef struct {
	const char *p, *end;       /* what is not handed on yet */
	const char *copy_to;       /* the rest of a tag, up to here */
	char owed[NAME_PIECE + 48]; /* an end tag or mark to hand on after it */
	gsize owed_len, owed_done;
	int open_pre;              /* <pre>s ended early, their end tags to come */
	gboolean open_link;        /* an <a> ended early, its end tag to come */
	guint link_level;          /* elements open in it, by their tags */
	htmlParserCtxtPtr ctxt;
	Render *render;
} Feed;

/* TEXT is handed on next (the rest of a tag first, if any). */
static void
feed_owe (Feed *f, const char *text)
{
	f->owed_len = (gsize) g_strlcpy (f->owed, text, sizeof f->owed);
	f->owed_done = 0;
}

/* Longer than the name of any element libxml2 knows. */
#define KNOWN_NAME_MAX 16

/* How many elements libxml2 may have open once it has read what it was
 * given: those open now, the one whose tag (or implied <p>) it may be
 * in the middle of, and one for each start tag it holds unread, which
 * takes 3 bytes at least ("<b>").  Called back as it reads, libxml2 may
 * just have moved its buffer: only the distance between its pointers
 * is used, as libxml2 does itself then (xmlParserInputGrow). */
static int
depth_ahead (htmlParserCtxtPtr ctxt)
{
	xmlParserInputPtr in = ctxt->input;
	gsize unread = in ? (gsize) ((guintptr) in->end - (guintptr) in->cur) : 0;
	return ctxt->nameNr + 1 + (int) MIN ((unread + 2) / 3, MAX_DEPTH);
}

/* The start tag at F->p is handed on (F->copy_to set to its end), and
 * when the element it opens could take libxml2 beyond MAX_DEPTH
 * (*DEPTH, counted on), it is ended at once: the element is rendered
 * as anywhere else (a line break, a list item's marker, a link's URL),
 * only empty, and what it held follows it one level up.  From the first
 * one on, libxml2's tree is no longer the document's: an end tag meant
 * for an element ended early could leave open one whose content is not
 * shown (<title>, <template>) over text that would have been shown, so
 * nothing is dropped from there on.  A <pre> or <a> ended early stays
 * open for the renderer (MARK_OPEN) up to its end tag. */
static void
feed_start_tag (Feed *f, int *depth)
{
	const char *name = f->p + 1, *cut;
	char lower[KNOWN_NAME_MAX] = "";
	gsize name_len = 0;
	while (name_len < NAME_PIECE && name + name_len < f->end && is_name_char (name[name_len]))
		name_len++;
	if (name_len < sizeof lower)
		for (gsize i = 0; i < name_len; i++)
			lower[i] = g_ascii_tolower (name[i]);
	gboolean pre = strcmp (lower, "pre") == 0, anchor = strcmp (lower, "a") == 0;
	if (anchor && f->open_link) {
		/* before this tag: a link ends the one still open */
		f->open_link = FALSE;
		feed_owe (f, "<!--" MARK_END_A "-->");
		return;
	}
	const char *q = read_start_tag (name, f->end, &cut);
	f->copy_to = q < f->end ? q + (*q == '>' ? 1 : 2) : f->end;
	const htmlElemDesc *element = htmlTagLookup ((const xmlChar *) lower);
	/* <br>, <img>, "<x/>", a tag the HTML ends in: libxml2 ends them at once */
	if ((element && element->empty) || q == f->end || *q == '/')
		return;
	f->link_level += f->open_link;
	if (*depth < MAX_DEPTH) {
		++*depth;
		return;
	}
	show_all (f->render);
	/* and an empty comment: libxml2 lets go of what it has read only as
	 * it reads text, comments and the like, and would keep all of a
	 * flood of tags (2.3 times its size once ended) */
	f->owed_len = (gsize) g_snprintf (f->owed, sizeof f->owed, "%s</%.*s><!---->",
	                                  pre || anchor ? "<!--" MARK_OPEN "-->" : "", (int) name_len, name);
	f->owed_done = 0;
	f->open_pre += pre;
	if (anchor) {
		f->open_link = TRUE;
		f->link_level = 0;
	}
}

/* Whether the end tag at F->p (as markup_for_libxml2 left it, "</pre>")
 * ends a <pre> or <a> ended early: a mark is handed on instead (libxml2
 * would end one of the same name further out).  A link ends too before
 * the end tag of an element it is in, as libxml2 would end it. */
static gboolean
feed_end_tag (Feed *f)
{
	gsize left = (gsize) (f->end - f->p);
	if (left < 3 || f->p[1] != '/' || !is_name_start (f->p[2]))
		return FALSE;
	gboolean anchor = left >= 4 && g_ascii_strncasecmp (f->p, "</a>", 4) == 0;
	gboolean pre = left >= 6 && g_ascii_strncasecmp (f->p, "</pre>", 6) == 0;
	if (f->open_link && (anchor || f->link_level == 0)) {
		f->open_link = FALSE;
		feed_owe (f, "<!--" MARK_END_A "-->");
		f->p += anchor ? 4 : 0;
		return TRUE;
	}
	if (f->open_link)
		f->link_level--;
	if (!pre || f->open_pre == 0)
		return FALSE;
	f->open_pre--;
	feed_owe (f, "<!--" MARK_END_PRE "-->");
	f->p += 6;
	return TRUE;
}

/* Where the end tag or comment at P ends, as markup_for_libxml2 left
 * them ("</b>", "<!---->"); NULL when the "<" there is text. */
static const char *
other_markup_end (const char *p, const char *end)
{
	gsize left = (gsize) (end - p);
	if (left >= 3 && p[1] == '/' && is_name_start (p[2])) {
		const char *close = memchr (p + 2, '>', left - 2);
		return close ? close + 1 : end;
	}
	if (left >= 4 && memcmp (p, "<!--", 4) == 0) {
		const char *close = g_strstr_len (p + 4, (gssize) (left - 4), "-->");
		return close ? close + 3 : end;
	}
	return NULL;
}

/* Copies what is at F->p, up to F->copy_to or else the next tag, into
 * BUF (SPACE bytes at most, a UTF-8 character not split if it can be
 * helped); the bytes copied. */
static gsize
feed_copy (Feed *f, char *buf, gsize space)
{
	const char *stop = f->copy_to > f->p ? f->copy_to : memchr (f->p + 1, '<', (gsize) (f->end - f->p - 1));
	gsize n = (gsize) ((stop ? stop : f->end) - f->p);
	if (n > space) {
		n = space;
		while (n > 0 && (f->p[n] & 0xc0) == 0x80)
			n--;
		if (n == 0)
			n = space;   /* libxml2 waits for the rest of it */
	}
	memcpy (buf, f->p, n);
	f->p += n;
	return n;
}

/* libxml2's read callback: the next piece of the HTML, 0 at its end. */
static int
feed_read (void *data, char *buf, int len)
{
	Feed *f = data;
	gsize space = len > 0 ? MIN ((gsize) len, FEED_PIECE) : 0, n = 0;
	int depth = depth_ahead (f->ctxt);
	if (f->p == f->end && f->owed_done == f->owed_len && f->open_link) {
		/* a link left open ends with the HTML, before those further out */
		f->open_link = FALSE;
		feed_owe (f, "<!--" MARK_END_A "-->");
	}
	while (n < space && (f->p < f->end || f->owed_done < f->owed_len)) {
		const char *after;
		if (f->copy_to > f->p) {
			n += feed_copy (f, buf + n, space - n);
		} else if (f->owed_done < f->owed_len) {
			gsize owed = MIN (f->owed_len - f->owed_done, space - n);
			memcpy (buf + n, f->owed + f->owed_done, owed);
			f->owed_done += owed;
			n += owed;
		} else if (*f->p != '<' || f->p + 1 == f->end) {
			n += feed_copy (f, buf + n, space - n);
		} else if (g_ascii_isalpha (f->p[1])) {
			feed_start_tag (f, &depth);
		} else if (feed_end_tag (f)) {
			continue;
		} else if ((after = other_markup_end (f->p, f->end))) {
			f->copy_to = after;
		} else {
			n += feed_copy (f, buf + n, space - n);
		}
	}
	return (int) n;
}

/* TEXT with every line's trailing blanks and the trailing empty lines
 * removed, in place (a line array of a long list doubled the memory). */
static char *
chomp_lines (char *text)
{
	char *out = text;
	const char *line = text;
	while (*line) {
		const char *nl = strchr (line, '\n');
		const char *end = nl ? nl : line + strlen (line);
		const char *last = end;
		while (last > line && g_ascii_isspace (last[-1]))
			last--;
		memmove (out, line, (gsize) (last - line));
		out += last - line;
		if (!nl)
			break;
		*out++ = '\n';
		line = nl + 1;
	}
	*out = '\0';
	return g_strchomp (text);
}

char *
md_html_to_text (const char *html, gsize len)
{
	g_autoptr (GString) plain = markup_for_libxml2 (html, len);
	if (plain) {
		html = plain->str;
		len = plain->len;
	}
	Render r = { .out = g_string_new (NULL), .frames = g_array_new (FALSE, TRUE, sizeof (Frame)) };
	Feed feed = { .p = html, .end = html + len, .copy_to = html };
	/* Events, not a tree: libxml2's tree of a tag soup is 50-70 times
	 * the size of its text (4 MB of <li>: 359 MB). */
	htmlParserCtxtPtr ctxt = htmlNewParserCtxt ();
	if (ctxt) {
		memset (ctxt->sax, 0, sizeof (htmlSAXHandler));
		ctxt->sax->startElement = on_start;
		ctxt->sax->endElement = on_end;
		ctxt->sax->characters = on_text;
		ctxt->sax->comment = on_comment;
		ctxt->sax->cdataBlock = on_text;
		/* no ignorableWhitespace: what libxml2 finds insignificant
		 * (between <html> and <body>...) is not rendered either */
		ctxt->userData = &r;
		feed.ctxt = ctxt;
		feed.render = &r;
		/* the text is UTF-8 already: a <meta charset> must not switch it */
		htmlDocPtr doc = htmlCtxtReadIO (ctxt, feed_read, NULL, &feed, NULL, "UTF-8",
		                                 HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
		                                 HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED);
		if (doc)
			xmlFreeDoc (doc);
		htmlFreeParserCtxt (ctxt);
	}
	for (guint i = 0; i < r.frames->len; i++)
		g_free (g_array_index (r.frames, Frame, i).href);
	g_free (r.link);
	g_array_free (r.frames, TRUE);
	return chomp_lines (g_string_free (r.out, FALSE));
}
