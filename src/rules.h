/* rules.h - classification rules (DESIGN 6): load a rules file once,
 * then classify messages against it.  The syntax is in maildesk.rules(5).
 *
 * Loading validates everything (patterns, fields, actions, values) and
 * reports every mistake with file:line; classifying never fails.  A
 * loaded MdRules is read-only: several threads may classify with it at
 * once. */
#ifndef MD_RULES_H
#define MD_RULES_H

#include <glib.h>

typedef struct _MdRules MdRules;

/* What a message offers to the rules.  Every field may be NULL (nothing
 * to match).  Strings are UTF-8; invalid sequences never match but do
 * not fail.  Only the first MD_RULES_MAX_SCAN bytes of the body and of
 * the subject are matched. */
typedef struct {
	const char *from;                 /* bare sender address */
	const char *const *to;            /* NULL-terminated: To addresses and envelope recipients */
	const char *const *cc;            /* NULL-terminated */
	const char *subject;
	const char *body;                 /* text of the message */
	const char *const *attachments;   /* NULL-terminated file names */
	/* Values of header NAME (matched case-insensitively by the caller),
	 * NULL-terminated, owned by the caller; NULL when absent.  The
	 * callback itself may be NULL. */
	const char *const *(*get_header) (gpointer user_data, const char *name);
	gpointer user_data;
} MdRuleInput;

/* The result.  Zero-initialize before md_rules_classify; free the
 * contents with md_classification_clear. */
typedef struct {
	/* Canonical static strings from catalog.h, NULL when no rule set
	 * them: the caller applies MD_DEFAULT_CATEGORY / _PRIORITY. */
	const char *category;
	const char *priority;
	const char *visibility;
	char *assignee;           /* NULL when no rule set it */
	GPtrArray *tags;          /* char *, owned; no duplicates, in order of setting */
	gboolean quarantine;
	gboolean drop_silently;
	/* char *, owned: one line per rule that fired, in order, saying
	 * where it is, what matched (field, pattern, matched text) and what
	 * it set.  `maildesk classify --explain` prints these. */
	GPtrArray *fired;
	/* char *, owned: "name (file:line)" of each rule that fired, in
	 * order; `maildesk classify` prints these without --explain. */
	GPtrArray *fired_rules;
	/* Body patterns run, and skipped because the body cannot match them
	 * (prefilter.h); `maildesk classify --explain` prints both. */
	guint body_patterns_run;
	guint body_patterns_skipped;
} MdClassification;

/* Limits on what is loaded and matched. */
#define MD_RULES_MAX_FILE_SIZE   (1024 * 1024)  /* bytes of a rules file */
#define MD_RULES_MAX_LINE        4096           /* bytes of one line */
#define MD_RULES_MAX_RULES       10000
#define MD_RULES_MAX_CONDITIONS  64             /* per rule, and per `any` group */
#define MD_RULES_MAX_SCAN        (512 * 1024)   /* bytes of subject or body matched */
#define MD_RULES_MATCH_LIMIT     100000         /* PCRE2 match limit per field value */

/* Parse and compile a rules file.  On any mistake returns NULL and sets
 * MD_ERROR_CONFIG with every mistake found, one "file:line: message"
 * per line (MD_ERROR_IO when the file cannot be read).  Free with
 * md_rules_free. */
MdRules *md_rules_load_file (const char *path, GError **error);
/* The same from text in memory; FILENAME is only used in messages. */
MdRules *md_rules_load_data (const char *filename, const char *text, GError **error);
void md_rules_free (MdRules *rules);
guint md_rules_count (const MdRules *rules);

/* Runs every rule top to bottom on INPUT, filling OUT (zero-initialized
 * by the caller, or cleared with md_classification_clear). */
void md_rules_classify (const MdRules *rules, const MdRuleInput *input, MdClassification *out);
/* Frees what OUT holds and zeroes it; OUT itself is the caller's. */
void md_classification_clear (MdClassification *out);

/* TRUE when some `to` condition's pattern matches ADDRESS, so the LMTP
 * server accepts that recipient. */
gboolean md_rules_matches_recipient (const MdRules *rules, const char *address);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdRules, md_rules_free)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MdClassification, md_classification_clear)

#endif
