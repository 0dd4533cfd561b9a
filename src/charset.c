/* charset.c - bytes of any charset to valid UTF-8, with the fallbacks that
 * real mail needs (undeclared 8-bit, wrong labels, unknown names); which
 * charset names and which undeclared bytes may be labelled so. */
#include "config.h"

#include <string.h>
#include <gmime/gmime.h>

#include "charset.h"

static gboolean
is_ascii_or_utf8_name (const char *canon)
{
	return g_ascii_strcasecmp (canon, "utf-8") == 0 || g_ascii_strcasecmp (canon, "us-ascii") == 0
	       || g_ascii_strcasecmp (canon, "ascii") == 0 || g_ascii_strcasecmp (canon, "utf8") == 0;
}

/* Single-byte charsets whose text is practically never valid multi-byte
 * UTF-8 by accident: when the bytes validate as UTF-8, the label lies. */
static gboolean
is_single_byte (const char *canon)
{
	static const char *const prefixes[] = { "iso-8859-", "iso8859-", "windows-125", "cp125", "koi8", "latin", NULL };
	for (int i = 0; prefixes[i]; i++)
		if (g_ascii_strncasecmp (canon, prefixes[i], strlen (prefixes[i])) == 0)
			return TRUE;
	return FALSE;
}

static char *
convert_strict (const char *bytes, gsize len, const char *charset)
{
	gsize written = 0;
	char *out = g_convert (bytes, (gssize) len, "UTF-8", g_mime_charset_iconv_name (charset), NULL, &written, NULL);
	if (out && memchr (out, 0, written)) {
		g_free (out);
		return NULL;
	}
	return out;
}

char *
md_charset_to_utf8 (const char *bytes, gsize len, const char *declared, gboolean *fell_back_r)
{
	g_autofree char *clean = NULL;
	const char *text = bytes;
	gsize text_len = len;
	char *out = NULL;
	gboolean fell_back = FALSE;

	if (fell_back_r)
		*fell_back_r = FALSE;
	if (!bytes || len == 0)
		return g_strdup ("");
	/* NUL bytes belong to UTF-16 and UTF-32; in 8-bit text they are junk */
	if (memchr (bytes, 0, len)) {
		clean = g_malloc (len);
		text_len = 0;
		for (gsize i = 0; i < len; i++)
			if (bytes[i])
				clean[text_len++] = bytes[i];
		text = clean;
	}
	const char *canon = declared && *declared ? g_mime_charset_canon_name (declared) : NULL;
	gboolean valid_utf8 = g_utf8_validate_len (text, text_len, NULL);

	if (canon && !is_ascii_or_utf8_name (canon) && !(valid_utf8 && is_single_byte (canon)))
		out = convert_strict (bytes, len, canon);
	if (!out && valid_utf8) {
		out = g_strndup (text, text_len);
		fell_back = canon && !is_ascii_or_utf8_name (canon);
	}
	if (!out) {
		/* windows-1252 leaves five bytes undefined; ISO-8859-1 maps all */
		out = convert_strict (text, text_len, "windows-1252");
		if (!out)
			out = convert_strict (text, text_len, "iso-8859-1");
		fell_back = TRUE;
	}
	if (!out || !g_utf8_validate (out, -1, NULL)) {
		g_free (out);
		out = g_utf8_make_valid (text, (gssize) text_len);
		fell_back = TRUE;
	}
	if (fell_back_r)
		*fell_back_r = fell_back;
	return out;
}

void
md_charset_strip_controls (char *utf8)
{
	char *w = utf8;
	const char *r = utf8;
	gboolean in_space = FALSE;
	while (*r) {
		gunichar c = g_utf8_get_char (r);
		gsize n = (gsize) g_utf8_skip[*(const guchar *) r];
		if (c <= 0x20 || (c >= 0x7f && c < 0xa0)) {
			r += n;
			if (!in_space && w != utf8)
				*w++ = ' ';
			in_space = TRUE;
			continue;
		}
		in_space = FALSE;
		memmove (w, r, n);
		w += n;
		r += n;
	}
	if (w > utf8 && w[-1] == ' ')
		w--;
	*w = 0;
}

gboolean
md_charset_name_is_valid (const char *name)
{
	gsize len = name ? strlen (name) : 0;
	return len > 0 && len <= 40
	       && strspn (name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'+-^_`{}~") == len;
}

void
md_utf8_scan_feed (MdUtf8Scan *scan, const char *bytes, gsize len)
{
	if (scan->invalid)
		return;
	for (gsize i = 0; !scan->eight_bit && i < len; i++)
		scan->eight_bit = (guchar) bytes[i] >= 0x80;
	/* First complete the character the last piece ended inside. */
	while (scan->carry_len > 0 && len > 0) {
		scan->carry[scan->carry_len++] = (guchar) *bytes++;
		len--;
		gunichar c = g_utf8_get_char_validated ((const char *) scan->carry, (gssize) scan->carry_len);
		if (c == (gunichar) -1) {
			scan->invalid = TRUE;
			return;
		}
		if (c != (gunichar) -2)
			scan->carry_len = 0;
	}
	const char *end = NULL;
	if (g_utf8_validate_len (bytes, len, &end))
		return;
	gsize rest = len - (gsize) (end - bytes);
	if (rest < sizeof scan->carry && *end && g_utf8_get_char_validated (end, (gssize) rest) == (gunichar) -2) {
		memcpy (scan->carry, end, rest);
		scan->carry_len = (guint) rest;
	} else {
		scan->invalid = TRUE;
	}
}

gboolean
md_utf8_scan_is_8bit_utf8 (const MdUtf8Scan *scan)
{
	return scan->eight_bit && !scan->invalid && scan->carry_len == 0;
}
