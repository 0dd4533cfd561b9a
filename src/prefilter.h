/* prefilter.h - a cheap test that a rule's pattern cannot match a text,
 * so most patterns never run over most bodies.
 *
 * Most rule patterns are alternations of words, \b(?:bugs?|crash...)\b:
 * they can only match a text that has a word starting with one of their
 * leading literals ("bug", "crash"), their triggers.  The triggers are
 * read from the pattern once, at load; the word prefixes of a text are
 * indexed once per message; a pattern none of whose triggers is among
 * them is not run.  The test is conservative: when in doubt (a pattern
 * it cannot read, a text that is not ASCII) it says "may match". */
#ifndef MD_PREFILTER_H
#define MD_PREFILTER_H

#include <glib.h>

typedef struct _MdTriggers MdTriggers;
typedef struct _MdWordIndex MdWordIndex;

/* The triggers of PATTERN (LEN bytes), a PCRE2 pattern compiled with
 * PCRE2_UTF and PCRE2_UCP, caseless or not; EXTENDED when it has
 * PCRE2_EXTENDED.  NULL, and the pattern must always run, when it cannot
 * tell: some branch does not start with \b and a word, the pattern uses
 * syntax the reader does not follow (extended mode, \Q, \E, comments,
 * callouts, verb names), nests deeper than 16 groups or has more than
 * 1,024 alternatives.  Free with md_triggers_free. */
MdTriggers *md_triggers_new (const char *pattern, gsize len, gboolean extended);
void md_triggers_free (MdTriggers *triggers);

/* The triggers, lowercase (at most 8 characters each), sorted,
 * separated by spaces: what the tests compare.  Free with g_free. */
char *md_triggers_describe (const MdTriggers *triggers);

MdWordIndex *md_word_index_new (void);
void md_word_index_free (MdWordIndex *index);

/* Indexes the words of TEXT (LEN bytes), in memory proportional to LEN
 * (8 KiB to 512 KiB); FALSE when TEXT has a byte outside ASCII, where
 * the index cannot speak for Unicode words and caseless matching. */
gboolean md_word_index_fill (MdWordIndex *index, const char *text, gsize len);

/* FALSE only when no word of the indexed text starts with a trigger:
 * the pattern cannot match it. */
gboolean md_triggers_may_match (const MdTriggers *triggers, const MdWordIndex *index);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdTriggers, md_triggers_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdWordIndex, md_word_index_free)

#endif
