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

/* Whether NAME may stand as a MIME charset parameter (RFC 2978's
 * mime-charset characters, at most 40 of them): a declared charset that
 * is not one is no charset. */
gboolean md_charset_name_is_valid (const char *name);

/* Whether bytes arriving in pieces (a streamed part) are UTF-8 with
 * 8-bit characters, the one charset that can be told from the bytes.
 * Zero-initialize; feed every piece in order; then ask. */
typedef struct {
	guchar carry[4];     /* a character split between pieces */
	guint carry_len;
	gboolean invalid;    /* not UTF-8, or holds a NUL */
	gboolean eight_bit;
} MdUtf8Scan;

void md_utf8_scan_feed (MdUtf8Scan *scan, const char *bytes, gsize len);
/* TRUE when everything fed was valid UTF-8 and not all ASCII. */
gboolean md_utf8_scan_is_8bit_utf8 (const MdUtf8Scan *scan);

#endif
