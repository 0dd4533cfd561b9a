/* charset.h - turning bytes in a declared (or undeclared, or wrongly
 * declared) charset into valid UTF-8. */
#ifndef MD_CHARSET_H
#define MD_CHARSET_H

#include <glib.h>

/* Decodes len bytes to UTF-8.  declared may be NULL or an unknown name.
 * Order: a declared multi-byte or stateful charset (ISO-2022-JP, UTF-16,
 * Shift_JIS...) first; valid UTF-8 as it is (also when a single-byte
 * charset is declared: mislabelled UTF-8 is common, Latin-1 text that
 * happens to be valid multi-byte UTF-8 is not); the declared charset;
 * windows-1252.  NUL bytes are dropped.  The result is always valid
 * UTF-8 and never NULL; free with g_free.  *fell_back_r (may be NULL)
 * says whether the declared charset could not be used as it was. */
char *md_charset_to_utf8 (const char *bytes, gsize len, const char *declared, gboolean *fell_back_r);

/* Replaces each run of C0/C1 control characters (tab, CR and LF too) and
 * spaces in UTF-8 text by one space, in place, and trims both ends: for
 * one-line values such as subjects, names and header values. */
void md_charset_strip_controls (char *utf8);

#endif
