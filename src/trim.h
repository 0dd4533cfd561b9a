/* trim.h - the new text of a reply, without its quoted history and
 * signature (DESIGN 5 step 6). */
#ifndef MD_TRIM_H
#define MD_TRIM_H

#include <glib.h>

/* Returns the new text of a reply (free with g_free); when elided_r is
 * not NULL it receives the cut part (free with g_free, "" when nothing
 * was cut).
 *
 * text is the UTF-8 text body of a reply (invalid sequences are
 * replaced, CRLF is read as LF).  Cut are: quoted history introduced by
 * an attribution ("On ... wrote:" and its equivalents in other languages
 * and clients, also when wrapped over several lines), forwarded and
 * original-message blocks, Outlook-style header blocks, trailing quotes,
 * the signature after a "-- " line and mobile footers such as "Sent from
 * my iPhone".  Quotes followed by new text (inline replies) are kept.
 * The new text has no leading or trailing blank lines; the elided part
 * is the cut lines in their original order.
 *
 * Pure and thread-safe.  Only the first 1 MiB and 20000 lines are
 * analysed; anything beyond is appended to the elided part. */
char *md_trim_reply (const char *text, char **elided_r);

/* Whether TEXT opens with a forwarded message (a forward marker or a
 * header block) rather than words of its own: what md_trim_reply keeps
 * of it was written by somebody else. */
gboolean md_trim_starts_with_forward (const char *text);

/* How many pattern matches the calling thread has run in this module,
 * so tests can check that the work grows with the lines, not faster. */
guint64 md_trim_matches_run (void);

#endif
