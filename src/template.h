/* template.h - the text of outgoing mail: one template file per event in
 * templates/ (DESIGN 8).
 *
 * A template is UTF-8 text: header lines, a blank line, the body.
 *
 *     Subject: Your request {{ticket.key}} was received
 *     Importance: high
 *
 *     Hello,
 *     {{#if ticket.assignee}}{{ticket.assignee}} is on it.{{else}}...{{/if}}
 *
 * Headers: `Subject` (required, once) and the optional, literal
 * `Importance: low|normal|high` and `Content-Language: <tag>`.  Nothing
 * else: recipients, threading and loop headers are compose's business.
 * `{{name}}` substitutes a variable; `{{#if name}}...{{else}}...{{/if}}`
 * keeps a section when the variable is non-empty (nested at most
 * MD_TEMPLATE_MAX_DEPTH deep).  A section tag alone on its line takes
 * the line with it.  Each event allows the variables listed by
 * md_template_event_variables(); anything else is a load error.  Values
 * are inserted verbatim: a `{{` inside a value is text, never a tag.
 *
 * Load errors are MD_ERROR_CONFIG, one `file:line: message` per line of
 * the GError message, every problem of every file collected.
 */
#ifndef MD_TEMPLATE_H
#define MD_TEMPLATE_H

#include <glib.h>

#define MD_TEMPLATE_MAX_DEPTH 8
#define MD_TEMPLATE_MAX_SIZE (64 * 1024)    /* bytes of a template file */
#define MD_TEMPLATE_MAX_OUTPUT (8 * 1024 * 1024) /* bytes of a rendered body */

typedef struct _MdTemplate MdTemplate;
typedef struct _MdTemplateSet MdTemplateSet;

/* The events, NULL-terminated, static: "ack", "agent-reply", ...  The
 * file of event E is E.tmpl. */
extern const char *const md_template_events[];

/* Whether mail of this event goes to the customer (and so carries
 * {{resolve_link}}) rather than to agents. */
gboolean md_template_event_is_customer_facing (const char *event);

/* The variables an event allows, sorted, NULL-terminated; NULL for an
 * unknown event.  Free with g_strfreev. */
char **md_template_event_variables (const char *event);

/* One human sentence saying what a variable holds; NULL when unknown.
 * Static. */
const char *md_template_variable_description (const char *name);

/* Parse a template of `event` from memory; `filename` only names it in
 * errors.  Free with md_template_free. */
MdTemplate *md_template_new_from_data (const char *event, const char *filename,
                                       const char *data, gsize len, GError **error);

/* Load one file; its event is its base name without ".tmpl". */
MdTemplate *md_template_load (const char *path, GError **error);
void md_template_free (MdTemplate *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdTemplate, md_template_free)

const char *md_template_event (const MdTemplate *t);

/* The literal extra headers as name, value, name, value, ..., NULL.
 * Owned by the template. */
const char *const *md_template_headers (const MdTemplate *t);

/* Whether T substitutes {{NAME}} somewhere, in its subject or body, in
 * any section ({{#if NAME}} alone does not count: it shows nothing of
 * the value). */
gboolean md_template_uses (const MdTemplate *t, const char *name);

/* Render with `vars` (char * -> char *, UTF-8; a missing variable is
 * empty; invalid UTF-8 is repaired).  The subject comes out as one line:
 * line breaks and other control characters in it become spaces.  Free
 * *subject_r and *body_r with g_free.  Fails (MD_ERROR_TOO_BIG) only
 * when the body would exceed MD_TEMPLATE_MAX_OUTPUT. */
gboolean md_template_render (const MdTemplate *t, GHashTable *vars,
                             char **subject_r, char **body_r, GError **error);
/* md_template_render with the variables of VARS over those of UNDER (a
 * name VARS lacks is looked up there; either may be NULL): the same as
 * with one table holding UNDER's entries and then VARS', without making
 * it, so mails about one ticket can share its variables. */
gboolean md_template_render_over (const MdTemplate *t, GHashTable *vars, GHashTable *under,
                                  char **subject_r, char **body_r, GError **error);

/* Load DIR/E.tmpl for every event E; a missing file is an error.
 * Free with md_template_set_free. */
MdTemplateSet *md_template_set_load (const char *dir, GError **error);
void md_template_set_free (MdTemplateSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdTemplateSet, md_template_set_free)

/* The template of an event, owned by the set; NULL when unknown. */
const MdTemplate *md_template_set_get (const MdTemplateSet *set, const char *event);

#endif
