/* html.h - HTML to plain text for ticket bodies. */
#ifndef MD_HTML_H
#define MD_HTML_H

#include <glib.h>

/* Converts UTF-8 HTML to plain UTF-8 text with libxml2's HTML parser:
 * paragraphs, headings and block elements separated by blank lines or
 * line breaks, <br> a line break, list items "- " or "N. ", table cells
 * separated by a tab, links as "text (url)", images as their alt text,
 * entities decoded, <script>, <style>, <head>, <template> and comments
 * dropped; the fallback content of <object>, <iframe>, <noscript>,
 * <noembed> and <noframes> shown, never what they refer to.
 * Never NULL; free with g_free. */
char *md_html_to_text (const char *html, gsize len);

#endif
