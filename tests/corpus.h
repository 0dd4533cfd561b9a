/* corpus.h - what the shared corpus (../shared/corpus/mime) expects of a
 * message's attachments, and how maildesk's attachments are scored
 * against it.  Shared by tests/test-message.c and bench/fidelity.c so
 * that the unit test and the fidelity report count the same way.
 *
 * The reading of the expectation files and every case where maildesk
 * differs on purpose are explained in doc/VIOLATIONS.md. */
#ifndef MD_TESTS_CORPUS_H
#define MD_TESTS_CORPUS_H

#include <glib.h>

/* One expected attachment. */
typedef struct {
	char *type;      /* "type/subtype", lowercase */
	char *name;      /* as maildesk would store it; NULL: not compared */
	gint64 size;     /* decoded bytes; -1: not compared */
} MdCorpusExpected;

/* One expectation file: the message it describes and its attachments. */
typedef struct {
	char *label;          /* "mime-tools/simple.ref", "stalwart/rfc/003" */
	char *message;        /* path of the message it describes */
	GPtrArray *expected;  /* MdCorpusExpected*; NULL when not compared */
	char *not_compared;   /* why expected is NULL */
	gboolean depth0_only; /* only the top level's attachments count */
	gboolean deviation;   /* a documented deliberate difference */
} MdCorpusCase;

void md_corpus_case_free (MdCorpusCase *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdCorpusCase, md_corpus_case_free)

/* The messages (.msg, .eml) directly in DIR, sorted by name; free with
 * g_ptr_array_unref. */
GPtrArray *md_corpus_messages (const char *dir);

/* The expectation files of a set directory, sorted by name: SET is
 * "mime-tools" (.ref files) or "stalwart" (.json beside .eml, the
 * .crlf.json copies skipped).  LABEL_PREFIX starts each label.  Free
 * with g_ptr_array_unref; NULL with error when a file is unreadable. */
GPtrArray *md_corpus_cases (const char *dir, const char *set, const char *label_prefix, GError **error);

/* An attachment as maildesk stored it (borrowed strings). */
typedef struct {
	const char *filename;
	const char *content_type;
	gint64 size;
	int depth;
	gboolean is_body;     /* the HTML the body text was made from */
} MdCorpusActual;

typedef struct {
	guint expected;       /* compared: matched + missed outside deviations */
	guint matched;
	guint excused;        /* missed in a documented deviation */
	guint extra;          /* stored but not expected */
	GPtrArray *misses;    /* char*: one line per expected attachment not
	                       * found, with the reason */
} MdCorpusScore;

/* Matches each expectation with an unused attachment of the same type,
 * name and size; adds to score (misses created on first use; clear with
 * md_corpus_score_clear). */
void md_corpus_score (const MdCorpusCase *c, const MdCorpusActual *actual, guint n_actual, MdCorpusScore *score);
void md_corpus_score_clear (MdCorpusScore *score);

/* A reply's text as the replies/ corpus compares it: line ends and
 * trailing white space ignored, blank lines at either end dropped.
 * Free with g_free. */
char *md_corpus_normalize_reply (const char *text);

#endif
