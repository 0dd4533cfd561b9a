/* prefilter.c - triggers of a pattern and the word index of a text (see
 * prefilter.h for what they are for).
 *
 * Why the test is exact enough to skip a pattern: a branch that starts
 * with \b and a word character can only match where a word starts (\b
 * before a word character means none before it), and the literal that
 * follows is made of word characters, so it is a prefix of that word.
 * On an ASCII text, PCRE2's \w under PCRE2_UCP is [A-Za-z0-9_] and
 * caseless matching is ASCII case folding (the Unicode extras, like the
 * Kelvin sign for k, are not ASCII), so comparing lowercase prefixes
 * decides it.  Lowercasing also when the pattern is case-sensitive only
 * makes the test weaker, never wrong.
 *
 * A trigger keeps its first MAX_KEY_CHARS characters, packed into an
 * integer; the index is a one-hash Bloom filter of every word's prefixes
 * up to that length.  A collision costs a needless pcre2_match(), never
 * a missed one. */
#include "config.h"

#include <string.h>

#include "prefilter.h"

#define MAX_KEY_CHARS   8
#define MAX_TRIGGERS    1024
#define MAX_DEPTH       16
/* The index has at least 8 bits per byte of text (a byte adds at most
 * one prefix, so at most an eighth of the bits are set and an absent
 * trigger looks present at most one time in eight), 8 KiB at least, and
 * at most 512 KiB: the rules scan at most 512 KiB of a body. */
#define MIN_INDEX_BITS  16
#define MAX_INDEX_BITS  22

struct _MdTriggers {
	GArray *keys;                 /* guint64, packed lowercase prefixes */
};

struct _MdWordIndex {
	guint log2_bits;              /* 0 until filled */
	guint64 *bits;
};

static gboolean
is_word_char (guchar c)
{
	return g_ascii_isalnum (c) || c == '_';
}

static guint64
key_add (guint64 key, guchar c)
{
	return key << 8 | g_ascii_tolower (c);
}

static guint
key_slot (const MdWordIndex *index, guint64 key)
{
	return (guint) ((key * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15)) >> (64 - index->log2_bits));
}

/* ---- reading a pattern ---- */

typedef struct {
	const char *p, *end;
	GArray *keys;
} Reader;

static gboolean
at (const Reader *r, const char *s)
{
	gsize n = strlen (s);
	return r->p < r->end && (gsize) (r->end - r->p) >= n && memcmp (r->p, s, n) == 0;
}

static gboolean
is_quantifier (const Reader *r)
{
	return r->p < r->end && *r->p && strchr ("?*{", *r->p) != NULL;
}

/* At "[:" inside a class: the ']' of the ":]" that ends a POSIX class
 * there, or the '[' itself when it starts none (PCRE2's rule: a ']'
 * before ":]" means "[:" was two literal characters). */
static const char *
posix_class_end (const Reader *r)
{
	for (const char *q = r->p + 2; q + 1 < r->end; q++) {
		if (*q == '\\' && (q[1] == ']' || q[1] == '\\'))
			q++;
		else if (*q == ']' || (*q == '[' && q[1] == ':'))
			return r->p;
		else if (*q == ':' && q[1] == ']')
			return q + 1;
	}
	return r->p;
}

/* Moves past a character class; at its '['. */
static gboolean
skip_class (Reader *r)
{
	r->p++;
	if (at (r, "^"))
		r->p++;
	if (at (r, "]"))   /* a ']' first is a literal */
		r->p++;
	while (r->p < r->end && *r->p != ']') {
		if (*r->p == '\\')
			r->p++;
		else if (at (r, "[:"))
			r->p = posix_class_end (r);
		r->p++;
	}
	if (r->p >= r->end)
		return FALSE;
	r->p++;
	return TRUE;
}

/* Moves to the end of the current alternative: the '|' that ends it, the
 * ')' that closes its group, or the end of the pattern. */
static gboolean
skip_alternative (Reader *r)
{
	int depth = 0;

	while (r->p < r->end) {
		switch (*r->p) {
		case '\\':
			r->p = MIN (r->p + 2, r->end);
			continue;
		case '[':
			if (!skip_class (r))
				return FALSE;
			continue;
		case '(':
			depth++;
			break;
		case ')':
			if (depth == 0)
				return TRUE;
			depth--;
			break;
		case '|':
			if (depth == 0)
				return TRUE;
			break;
		}
		r->p++;
	}
	return depth == 0;
}

static gboolean alternatives (Reader *r, gboolean need_boundary, int depth);

/* Reads what an alternative must start with, adds its triggers and moves
 * to the alternative's end. */
static gboolean
alternative (Reader *r, gboolean need_boundary, int depth)
{
	if (at (r, "\\b"))
		r->p += 2;
	else if (need_boundary)
		return FALSE;

	gsize group_open = at (r, "(?:") ? 3 : at (r, "(") && !at (r, "(?") && !at (r, "(*") ? 1 : 0;
	if (group_open > 0) {   /* (?:...) or a capturing (...) */
		r->p += group_open;
		if (!alternatives (r, FALSE, depth + 1) || !at (r, ")"))
			return FALSE;
		r->p++;
		if (is_quantifier (r))  /* (?:...)? may be absent */
			return FALSE;
		return skip_alternative (r);
	}

	guint64 key = 0;
	const char *start = r->p;
	while (r->p < r->end && is_word_char (*r->p))
		r->p++;
	gsize length = r->p - start;
	if (length > 0 && is_quantifier (r))  /* bugs? : the s may be absent */
		length--;
	if (length == 0 || r->keys->len >= MAX_TRIGGERS)
		return FALSE;
	for (gsize i = 0; i < MIN (length, MAX_KEY_CHARS); i++)
		key = key_add (key, start[i]);
	g_array_append_val (r->keys, key);
	return skip_alternative (r);
}

/* Reads alternatives separated by '|' up to the ')' closing the group
 * (left unread) or the end of the pattern. */
static gboolean
alternatives (Reader *r, gboolean need_boundary, int depth)
{
	if (depth > MAX_DEPTH)
		return FALSE;
	for (;;) {
		if (!alternative (r, need_boundary, depth))
			return FALSE;
		if (r->p >= r->end || *r->p == ')')
			return TRUE;
		r->p++;   /* the '|' */
	}
}

/* An inline (?x) makes whitespace vanish, so `foo ?` would quantify the
 * o; \Q...\E, comments, the strings of callouts (?C"...") and the
 * names of verbs (*MARK:...) hide what they quote, parentheses, bars
 * and brackets included; a lone \E vanishes, so `foo\E?` quantifies the
 * o and `[\E]...]` starts a class with a literal ].  Patterns with any
 * of them are not read. */
static gboolean
has_unreadable_syntax (const char *pattern, gsize len)
{
	for (gsize i = 0; i + 1 < len; i++) {
		if (pattern[i] == '\\') {
			if (pattern[i + 1] && strchr ("QEc", pattern[i + 1]))
				return TRUE;
			i++;
			continue;
		}
		if (pattern[i] == '(' && pattern[i + 1] == '*') {
			gsize j = i + 2;
			while (j < len && g_ascii_isupper (pattern[j]))
				j++;
			if (j < len && pattern[j] == ':')
				return TRUE;   /* (*pla: and (*atomic: are groups: their parentheses are followed */
			continue;
		}
		if (pattern[i] != '(' || pattern[i + 1] != '?')
			continue;
		for (gsize j = i + 2; j < len && (g_ascii_isalpha (pattern[j]) || pattern[j] == '-' ||
						   pattern[j] == '^' || pattern[j] == '#'); j++)
			if (pattern[j] == 'x' || pattern[j] == '#' || (j == i + 2 && pattern[j] == 'C'))
				return TRUE;
	}
	return FALSE;
}

MdTriggers *
md_triggers_new (const char *pattern, gsize len, gboolean extended)
{
	g_autoptr (GArray) keys = g_array_new (FALSE, FALSE, sizeof (guint64));
	Reader r = { pattern, pattern + len, keys };

	if (extended || has_unreadable_syntax (pattern, len))
		return NULL;
	if (!alternatives (&r, TRUE, 0) || r.p != r.end)
		return NULL;
	MdTriggers *triggers = g_new (MdTriggers, 1);
	triggers->keys = g_steal_pointer (&keys);
	return triggers;
}

void
md_triggers_free (MdTriggers *triggers)
{
	if (!triggers)
		return;
	g_array_unref (triggers->keys);
	g_free (triggers);
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
	return strcmp (*(char *const *) a, *(char *const *) b);
}

char *
md_triggers_describe (const MdTriggers *triggers)
{
	g_autoptr (GPtrArray) words = g_ptr_array_new_with_free_func (g_free);
	GString *out = g_string_new (NULL);

	for (guint i = 0; i < triggers->keys->len; i++) {
		guint64 key = g_array_index (triggers->keys, guint64, i);
		GString *word = g_string_new (NULL);

		for (int shift = 8 * (MAX_KEY_CHARS - 1); shift >= 0; shift -= 8)
			if ((key >> shift) & 0xff)
				g_string_append_c (word, (char) ((key >> shift) & 0xff));
		g_ptr_array_add (words, g_string_free (word, FALSE));
	}
	g_ptr_array_sort (words, compare_strings);
	for (guint i = 0; i < words->len; i++) {
		if (i > 0 && strcmp (words->pdata[i], words->pdata[i - 1]) == 0)
			continue;
		if (out->len > 0)
			g_string_append_c (out, ' ');
		g_string_append (out, words->pdata[i]);
	}
	return g_string_free (out, FALSE);
}

/* ---- the words of a text ---- */

MdWordIndex *
md_word_index_new (void)
{
	return g_new0 (MdWordIndex, 1);
}

void
md_word_index_free (MdWordIndex *index)
{
	if (!index)
		return;
	g_free (index->bits);
	g_free (index);
}

static void
index_set (MdWordIndex *index, guint64 key)
{
	guint slot = key_slot (index, key);
	index->bits[slot / 64] |= G_GUINT64_CONSTANT (1) << (slot % 64);
}

static gboolean
index_has (const MdWordIndex *index, guint64 key)
{
	guint slot = key_slot (index, key);
	return (index->bits[slot / 64] >> (slot % 64)) & 1;
}

gboolean
md_word_index_fill (MdWordIndex *index, const char *text, gsize len)
{
	const guchar *p = (const guchar *) text, *end = p + len;
	guint log2_bits = MIN_INDEX_BITS;

	while (log2_bits < MAX_INDEX_BITS && ((gsize) 1 << log2_bits) / 8 < len)
		log2_bits++;
	if (log2_bits != index->log2_bits) {
		g_free (index->bits);
		index->bits = g_new0 (guint64, ((gsize) 1 << log2_bits) / 64);
		index->log2_bits = log2_bits;
	} else {
		memset (index->bits, 0, ((gsize) 1 << log2_bits) / 8);
	}
	while (p < end) {
		if (*p >= 0x80)
			return FALSE;
		if (!is_word_char (*p)) {
			p++;
			continue;
		}
		guint64 key = 0;
		for (int n = 0; p < end && is_word_char (*p); p++, n++) {
			if (n < MAX_KEY_CHARS) {
				key = key_add (key, *p);
				index_set (index, key);
			}
		}
	}
	return TRUE;
}

gboolean
md_triggers_may_match (const MdTriggers *triggers, const MdWordIndex *index)
{
	if (!index->bits)   /* never filled: it knows nothing */
		return TRUE;
	for (guint i = 0; i < triggers->keys->len; i++)
		if (index_has (index, g_array_index (triggers->keys, guint64, i)))
			return TRUE;
	return FALSE;
}
