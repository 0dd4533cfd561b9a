/* authres.c - a verdict on a message's From domain from the
 * Authentication-Results its receiving MTA wrote (RFC 8601).
 *
 * Only the results that bear on From are read: dmarc (with its
 * header.from), dkim (header.d) and spf (smtp.mailfrom).  DKIM and SPF
 * count only aligned with From's domain, as DMARC counts them: a
 * signature for d=example.com proves nothing of mail From
 * boss@bank.example.  For each method, the topmost trusted header that
 * reports it wins: headers are prepended, so that is the nearest hop's,
 * and a copy the sender planted below it cannot overrule it. */
#include "config.h"

#include <string.h>

#include "authres.h"

#define MAX_HEADERS 16  /* trusted headers read */
#define MAX_WORD 255    /* bytes kept of one token */

typedef struct {
	char method[16];  /* lowercase, without "/version" */
	char result[16];  /* lowercase */
	char *domain;     /* lowercase: dmarc's header.from, dkim's header.d,
	                   * spf's smtp.mailfrom domain; NULL when not given */
	gboolean damaged; /* a malformed property followed the result */
} Result;

typedef enum { TOK_END, TOK_SEMI, TOK_EQ, TOK_WORD } TokKind;

/* Blanks and (nested) comments: CFWS of RFC 5322. */
static const char *
skip_cfws (const char *p)
{
	for (int depth = 0; *p; p++) {
		if (depth > 0 && *p == '\\' && p[1])
			p++;
		else if (*p == '(')
			depth++;
		else if (depth > 0 && *p == ')')
			depth--;
		else if (depth == 0 && !g_ascii_isspace (*p))
			break;
	}
	return p;
}

/* The next token after *P: ';', '=', or a word (a quoted string's
 * contents, unescaped, with what follows it unspaced: the quoted local
 * part of "a b"@example.com) in WORD.  A word longer than MAX_WORD is
 * kept to MAX_WORD + 1 bytes: overlong() tells it from one that fits,
 * so that a cut never passes for the whole. */
static TokKind
next_token (const char **p, GString *word)
{
	const char *s = skip_cfws (*p);
	g_string_truncate (word, 0);
	TokKind kind = *s == ';' ? TOK_SEMI : *s == '=' ? TOK_EQ : *s ? TOK_WORD : TOK_END;
	if (kind == TOK_SEMI || kind == TOK_EQ) {
		s++;
	} else {
		const char *start = s;
		if (*s == '"') {
			for (s++; *s && *s != '"'; s++) {
				if (*s == '\\' && s[1])
					s++;
				if (word->len <= MAX_WORD)
					g_string_append_c (word, *s);
			}
			if (*s)
				s++;
		}
		for (; *s && !strchr (" \t\r\n();=\"", *s); s++)
			if (word->len <= MAX_WORD)
				g_string_append_c (word, *s);
		if (s == start)
			s++;  /* a stray ')': no word, but on past it */
	}
	*p = s;
	return kind;
}

static gboolean
overlong (const GString *word)
{
	return word->len > MAX_WORD;
}

/* The domain of an address or domain, lowercase, without a final dot. */
static char *
domain_of (const char *text)
{
	const char *at = strrchr (text, '@');
	char *domain = g_ascii_strdown (at ? at + 1 : text, -1);
	gsize len = strlen (domain);
	if (len && domain[len - 1] == '.')
		domain[len - 1] = '\0';
	return domain;
}

static void
copy_lower (char *dest, gsize size, const char *src)
{
	gsize i = 0;
	for (; src[i] && src[i] != '/' && i + 1 < size; i++)
		dest[i] = g_ascii_tolower (src[i]);
	dest[i] = '\0';
}

static gboolean
is_trusted (const char *id, const char *const *trusted)
{
	for (int i = 0; trusted[i]; i++)
		if (g_ascii_strcasecmp (id, trusted[i]) == 0)
			return TRUE;
	return FALSE;
}

/* The property of METHOD that names the domain it vouches for. */
static gboolean
names_domain (const char *method, const char *property)
{
	return (strcmp (method, "dmarc") == 0 && g_ascii_strcasecmp (property, "header.from") == 0) ||
	       (strcmp (method, "dkim") == 0 && g_ascii_strcasecmp (property, "header.d") == 0) ||
	       (strcmp (method, "spf") == 0 && g_ascii_strcasecmp (property, "smtp.mailfrom") == 0);
}

/* One resinfo after its ';': method=result, then reason and properties
 * (name=value).  FALSE when it is malformed (or the "none" of a header
 * with no results).  *AFTER: the token that ended it, or for a
 * malformed one the last token read. */
static gboolean
parse_resinfo (const char **p, GString *word, Result *r, TokKind *after)
{
	if ((*after = next_token (p, word)) != TOK_WORD)
		return FALSE;
	copy_lower (r->method, sizeof r->method, word->str);
	if ((*after = next_token (p, word)) != TOK_EQ || (*after = next_token (p, word)) != TOK_WORD)
		return FALSE;
	copy_lower (r->result, sizeof r->result, word->str);
	while ((*after = next_token (p, word)) == TOK_WORD) {
		g_autofree char *property = g_strdup (word->str);
		if ((*after = next_token (p, word)) != TOK_EQ || (*after = next_token (p, word)) != TOK_WORD)
			return FALSE;
		if (names_domain (r->method, property)) {
			g_free (r->domain);
			/* cut, it might end in another domain than it names */
			r->domain = overlong (word) ? g_strdup ("") : domain_of (word->str);
		}
	}
	return TRUE;
}

/* The From domain, or a parent of it that is still a domain and not a
 * top-level one: relaxed alignment, near enough without the public
 * suffix list, since nobody signs or publishes SPF for co.uk. */
static gboolean
aligned (const char *from_domain, const char *domain)
{
	if (!domain || !*domain)
		return FALSE;
	if (strcmp (from_domain, domain) == 0)
		return TRUE;
	gsize fl = strlen (from_domain), dl = strlen (domain);
	return strchr (domain, '.') && fl > dl && from_domain[fl - dl - 1] == '.' &&
	       strcmp (from_domain + fl - dl, domain) == 0;
}

typedef struct {
	int header;  /* the trusted header whose results count; -1: none yet */
	gboolean pass, fail;
} MethodVerdict;

static void
take (MethodVerdict *mv, int header, gboolean pass, gboolean fail)
{
	if (mv->header >= 0 && mv->header != header)
		return;  /* a nearer hop reported this method */
	mv->header = header;
	mv->pass |= pass;
	mv->fail |= fail;
}

const char *
md_sender_auth_name (MdSenderAuth auth)
{
	static const char *const names[] = { "none", "pass", "fail" };
	return names[auth];
}

typedef struct {
	const char *from_domain;
	MethodVerdict dmarc, dkim, spf;
} Verdicts;

static void
count_result (Verdicts *v, int header, const Result *r)
{
	/* a damaged result may still fail, never pass */
	gboolean pass = !r->damaged && strcmp (r->result, "pass") == 0;
	if (strcmp (r->method, "dmarc") == 0) {
		/* A verdict on another From (the MTA read the header otherwise,
		 * or there were two) passes nothing, but a failure still fails:
		 * doubt errs against the sender. */
		gboolean ours = !r->domain || strcmp (r->domain, v->from_domain) == 0;
		take (&v->dmarc, header, ours && pass, strcmp (r->result, "fail") == 0);
	} else if (strcmp (r->method, "dkim") == 0) {
		take (&v->dkim, header, pass && aligned (v->from_domain, r->domain), FALSE);
	} else if (strcmp (r->method, "spf") == 0) {
		take (&v->spf, header, pass && aligned (v->from_domain, r->domain), FALSE);
	}
}

/* Counts the results of VALUE, header number HEADER, into V; FALSE when
 * its authserv-id is not trusted.  Every resinfo is read, however many
 * come before the one that matters (a message may carry any number of
 * DKIM signatures, each a result), and a malformed one is passed over
 * to the next ';', not taken for the end: either way a DMARC failure
 * after it would be lost. */
static gboolean
count_header (const char *value, int header, const char *const *trusted, Verdicts *v)
{
	g_autoptr (GString) word = g_string_new (NULL);
	const char *p = value;
	if (next_token (&p, word) != TOK_WORD || overlong (word) || !is_trusted (word->str, trusted))
		return FALSE;
	TokKind kind = next_token (&p, word);
	if (kind == TOK_WORD)  /* authres-version */
		kind = next_token (&p, word);
	while (kind == TOK_SEMI) {
		Result r = { { 0 } };
		if (!parse_resinfo (&p, word, &r, &kind)) {
			while (kind != TOK_SEMI && kind != TOK_END)
				kind = next_token (&p, word);
			r.damaged = TRUE;
		}
		if (r.result[0])
			count_result (v, header, &r);
		g_free (r.domain);
	}
	return TRUE;
}

MdSenderAuth
md_authres_verdict (const char *const *headers, const char *const *trusted, const char *from_addr)
{
	const char *at = from_addr ? strrchr (from_addr, '@') : NULL;
	if (!headers || !trusted || !trusted[0] || !at || !at[1])
		return MD_SENDER_AUTH_NONE;
	g_autofree char *from_domain = domain_of (at + 1);
	MethodVerdict none = { -1, FALSE, FALSE };
	Verdicts v = { from_domain, none, none, none };
	int n_trusted = 0;

	for (int h = 0; headers[h] && n_trusted < MAX_HEADERS; h++)
		n_trusted += count_header (headers[h], h, trusted, &v);
	if (v.dmarc.fail)
		return MD_SENDER_AUTH_FAIL;
	return v.dmarc.pass || v.dkim.pass || v.spf.pass ? MD_SENDER_AUTH_PASS : MD_SENDER_AUTH_NONE;
}
