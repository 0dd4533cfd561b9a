/* trim.c - reply trimming: what a customer or agent newly wrote, apart
 * from the history their mail client quoted below it and the signature
 * it appended (DESIGN 5 step 6).
 *
 * The body is read as lines.  Each line is classified (empty, text,
 * quote, signature delimiter, horizontal rule, mobile footer, e-mail
 * header block, forward marker, attribution such as "On ... wrote:"),
 * attributions being recognized also when the client wrapped them over
 * up to five lines.  Then, in order:
 *
 *  1. history at the very top (bottom-posting, a bare forward) is
 *     dropped: the attribution with the quote that follows it, or the
 *     forward marker with its header block; what follows is the reply;
 *  2. after the first line of new text, a "-- " delimiter, a forward
 *     marker or a header block cuts everything below it; an attribution
 *     does too, unless the quote under it is followed by more new text
 *     interleaved with quotes or by a long answer (inline and bottom
 *     replies), in which case only the attribution line is dropped;
 *  3. trailing quotes, blank lines, rules and mobile footers are
 *     dropped, and so is a short signature block under a rule.
 *
 * The rules are written to agree with the reply corpora in
 * ../shared/corpus/replies (see tests/test-trim.c and
 * doc/VIOLATIONS.md for where we differ).  Patterns are PCRE2,
 * compiled once and shared read-only between threads; every input is
 * bounded (bytes, lines, length of a candidate attribution) and every
 * match runs under a match limit. */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "trim.h"

#define TRIM_MAX_BYTES   (1024 * 1024)
#define TRIM_MAX_LINES   20000
#define MARKER_MAX_BYTES 500   /* longer (joined) lines are never markers */
#define FOOTER_MAX_BYTES 160
#define JOIN_MAX_LINES   5     /* an attribution wrapped over at most 5 lines */
#define LONG_ANSWER      7     /* text lines under a quote that are an answer, not a signature */
#define SIG_BLOCK_MAX    6     /* lines of a signature block under a rule */
#define HEADER_BLOCK_MIN 3     /* "From:", "Sent:", "To:" ... */

typedef enum {
	LINE_EMPTY,
	LINE_TEXT,
	LINE_QUOTE,
	LINE_SIG_DELIM,     /* "-- " (RFC 3676 4.3), also without the space */
	LINE_RULE,          /* "_____", "-----", "***": a separator */
	LINE_FOOTER,        /* "Sent from my iPhone" */
	LINE_HEADER,        /* first line of a "From: / Sent: / To:" block */
	LINE_FORWARD,       /* "-----Original Message-----", "Begin forwarded message:" */
	LINE_ATTRIBUTION,   /* first line of "On <date>, <someone> wrote:" */
	LINE_QUOTED_MARKER, /* an attribution or forward marker inside a quote */
	LINE_CONTINUATION,  /* further line of an attribution or header block */
} LineKind;

typedef struct {
	const char *s;
	gsize len;
	LineKind kind;
	guint span;         /* lines covered by a marker, >= 1 */
	gboolean in_code;   /* inside a ``` fence: always text */
	gboolean kept;
} Line;

typedef struct {
	Line *lines;
	guint n;
	pcre2_match_data *match;
	GString *join;
} Trim;

/* ---- patterns ---- */

/* Verbs of attributions ("wrote") in the languages clients localize to. */
#define VERB_WORDS \
	"wrote|writes|said|a\\s+écrit|nous\\s+a\\s+dit|escribió|escreveu|ha\\s+scritto" \
	"|(?:het\\s+volgende\\s+)?geschreven|schreef|schrieb|schrieben\\s+Sie|skrev|skrivit" \
	"|kirjoitti|napisał(?:\\(a\\)|a)?|napsal(?:\\(a\\)|a)?|написал(?:\\(а\\)|а)?" \
	"|написав(?:\\(ла\\)|ла)?|пише|писал|írta|yazdı|a\\s+scris|έγραψε|kirjutas"
#define VERB "(?:(?<![\\p{L}\\p{N}])(?:" VERB_WORDS ")(?![\\p{L}])|写道|寫道|書きました)"
/* Verbs that come before the name: "Am <date> schrieb <name>:" */
#define VERB_FIRST \
	"(?<![\\p{L}\\p{N}])(?:schrieb|schreef|skrev|kirjoitti|escribió|wrote|írta" \
	"|napisał(?:\\(a\\))?|написал(?:\\(а\\))?|пише)(?![\\p{L}])"
/* A time, a year or a numeric date. */
#define DATE \
	"(?:\\d{1,2}[:.]\\d{2}(?!\\d)|(?<!\\d)(?:19|20)\\d{2}(?!\\d)" \
	"|\\d{1,4}[./-]\\d{1,2}[./-]\\d{1,4})"
#define EMAIL "[^\\s<>()\\[\\]@]++@[^\\s<>()\\[\\]@]++"
#define PREFIX "^[\\s>*_-]*"
/* Text without a colon but those of times and "mailto:", possessive so
 * that a failing match never backtracks through it. */
#define NO_COLON "(?:mailto:|[^:：\\d]|\\d+(?:[:.]\\d+)*+)"
#define UP_TO_COLON NO_COLON "{1,300}+[:：]\\s*$"

typedef enum {
	RE_ATTR_DATED,     /* On 2 Apr 2012, at 16:19, Bob <b@x> wrote: */
	RE_ATTR_VERB_MID,  /* Am 03.02.2016 schrieb Max <m@x>: */
	RE_ATTR_EMAIL,     /* Bob <b@x> wrote: / Max <m@x> schrieb am <date>: */
	RE_ATTR_DASHED,    /* ---- On <date> Bob wrote ---- (Zoho) */
	RE_ATTR_GMAIL,     /* 2013/7/20 Bob <b@x>  /  вт, 5 янв. 2016 г. в 23:39, Bob <b@x>: */
	RE_ATTR_GMAIL_ISO, /* 2016-03-03 17:21 GMT+01:00 Bob */
	RE_ATTR_NAME,      /* Bob Smith wrote:  (only when a quote follows) */
	RE_OPENER,         /* how the first line of an attribution starts */
	RE_FORWARD,
	RE_FORWARD_BEGIN,
	RE_HEADER_FROM,
	RE_HEADER_OTHER,
	RE_FOOTER,
	RE_QUOTE,
	RE_COUNT
} PatternId;

static const char *const pattern_sources[RE_COUNT] = {
	[RE_ATTR_DATED] =
		PREFIX "(?=.{0,400}?" DATE ").{0,500}?" VERB "\\s*[:：]\\s*$",
	[RE_ATTR_VERB_MID] =
		PREFIX "(?>.{0,300}?" DATE ").{0,300}?" VERB_FIRST "\\s" UP_TO_COLON,
	[RE_ATTR_EMAIL] =
		PREFIX "(?=[^<(\\[]{0,200}\\p{L})[^<(\\[]{0,200}+[<(\\[]\\s*(?:mailto:)?" EMAIL
		"\\s*[>)\\]].{0,300}?" VERB NO_COLON "{0,200}+[:：]\\s*$",
	[RE_ATTR_DASHED] =
		"^[\\s>]*-{2,}\\s*(?=.{0,400}?" DATE ").{0,500}?" VERB "\\s*-{2,}\\s*$",
	[RE_ATTR_GMAIL] =
		"^[\\s>]*(?:[^\\s\\d]{1,15}\\s+)?\\d(?=.{0,60}?" DATE ")[^<>]{0,200}<\\s*(?:mailto:)?"
		EMAIL "\\s*>\\s*[:：]?\\s*$",
	[RE_ATTR_GMAIL_ISO] =
		"^[\\s>]*\\d{4}-\\d{2}-\\d{2}\\s+\\d{1,2}:\\d{2}\\s+GMT[+-]\\d{1,2}(?::?\\d{2})?\\s+[^<>:]{1,80}$",
	[RE_ATTR_NAME] =
		PREFIX "\\p{Lu}[\\p{L}\\p{M}'.-]*(?:\\s+[\\p{L}\\p{M}'.-]+){0,3}\\s+" VERB "\\s*[:：]\\s*$",
	[RE_OPENER] =
		"^[\\s>*_-]*(?:(?:On|At|Am|Le|El|Em|Il|Op|Den|Dnia|Dňa|W\\s+dniu|Dne|В|У|Pada|Vào|在)\\s"
		"|\\d|[^\\s\\d,]{1,15},\\s*\\d)",
	[RE_FORWARD] =
		"^[\\s>*_]*-{2,}\\s*(?:Forwarded\\s+message|Original\\s+Message|Forwarded\\s+Message"
		"|Reply\\s+Message|Message\\s+transféré|Message\\s+d'origine|Message\\s+original"
		"|Ursprüngliche\\s+Nachricht|Weitergeleitete\\s+Nachricht|Originalnachricht"
		"|Mensaje\\s+original|Mensaje\\s+reenviado|Mensagem\\s+original|Mensagem\\s+encaminhada"
		"|Messaggio\\s+originale|Messaggio\\s+inoltrato|Oorspronkelijk\\s+bericht"
		"|Doorgestuurd\\s+bericht|Ursprungligt\\s+meddelande|Vidarebefordrat\\s+meddelande"
		"|Opprinnelig\\s+melding|Videresendt\\s+melding|Oprindelig\\s+meddelelse"
		"|Videresendt\\s+meddelelse|Alkuperäinen\\s+viesti|Välitetty\\s+viesti"
		"|Původní\\s+zpráva|Přeposlaná\\s+zpráva|Wiadomość\\s+oryginalna|Oryginalna\\s+wiadomość"
		"|Przekazana\\s+wiadomość|Исходное\\s+сообщение|Оригинальное\\s+сообщение"
		"|Пересылаемое\\s+сообщение|Пересланное\\s+сообщение|Оригінальне\\s+повідомлення"
		"|Пересланий\\s+лист|Eredeti\\s+üzenet|Továbbított\\s+üzenet|Orijinal\\s+ileti"
		"|İletilen\\s+ileti|原始邮件|原始郵件|转发邮件|転送メッセージ|元のメッセージ)"
		"\\s*-*[\\s*_]*$",
	[RE_FORWARD_BEGIN] =
		"^[\\s>]*(?:Begin\\s+forwarded\\s+message|Début\\s+du\\s+message\\s+(?:transféré|réexpédié)"
		"|Anfang\\s+der\\s+weitergeleiteten\\s+Nachricht|Inicio\\s+del\\s+mensaje\\s+reenviado"
		"|Início\\s+da\\s+mensagem\\s+reencaminhada|Inizio\\s+messaggio\\s+inoltrato"
		"|Begin\\s+doorgestuurd\\s+bericht|Vidarebefordrat\\s+brev|Videresendt\\s+besked"
		"|Начало\\s+пересылаемого\\s+сообщения)\\s*[:：]?\\s*$",
	[RE_HEADER_FROM] =
		"^[\\s*_]*(?:From|Von|De|Da|Van|Från|Fra|Frá|От|Від|Od|Feladó|Lähettäjä|Kimden"
		"|Expéditeur|Remitente|发件人|寄件者|寄件人|差出人)[\\s*_]*[:：]",
	[RE_HEADER_OTHER] =
		"^[\\s*_]*(?:Date|Sent|Datum|Gesendet|Envoyé|Enviado|Enviada\\s+em|Fecha|Data|Inviato"
		"|Verzonden|Skickat|Sendt|Дата|Отправлено|Надіслано|Wysłano|Wysłane|Dátum|Elküldve"
		"|Lähetetty|Tarih|发送时间|日期|送信日時|寄件日期|To|Cc|Bcc|Reply-To|Subject|An|Betreff"
		"|Antwort\\s+an|Kopie|À|Objet|Répondre\\s+à|Destinataire|Para|Asunto|Assunto|CC|A"
		"|Oggetto|Risposta|Aan|Onderwerp|Beantwoorden\\s+-\\s+Aan|Till|Ämne|Kopia|Til|Emne"
		"|Кому|Копия|Тема|Komu|Temat|DW|Do|Címzett|Tárgy|Vastaanottaja|Aihe|Kime|Konu"
		"|收件人|抄送|主题|主旨|宛先|件名)[\\s*_]*[:：]",
	[RE_FOOTER] =
		"^[\\s(<\\[*_]*(?:"
		"sent\\s+(?:from|via|with|by|using|on)\\s+\\S"
		"|\\p{L}+\\s+from\\s+mobile\\b"
		"|from\\s+my\\s+\\S.{0,30}$"
		"|get\\s+\\[?outlook\\s+for\\b"
		"|envoyé\\s+(?:depuis|de)\\s+(?:mon|ma|yahoo|l['’]application|outlook)"
		"|von\\s+meine[mr]?\\s+.{1,40}\\s+gesendet"
		"|gesendet\\s+(?:von|mit)\\s+(?:meinem|meiner|iphone|ipad|outlook|android|blackberry|samsung)"
		"|diese\\s+nachricht\\s+wurde\\s+von\\s+.{1,80}\\s+gesendet"
		"|inviato\\s+da\\s"
		"|sendt\\s+fra\\s"
		"|enviado\\s+(?:do|desde|de)\\s+(?:o\\s+)?(?:meu|mi)\\s"
		"|enviado\\s+desde\\s"
		"|verzonden\\s+(?:met|vanaf|van)\\s"
		"|verstuurd\\s+(?:met|vanaf)\\s"
		"|skickat\\s+från\\s|från\\s+min\\s"
		"|lähetetty\\s+(?:iphonesta|ipadista|android|mobiili|puhelimesta)"
		"|отправлено\\s+(?:с|из)\\s"
		"|надіслано\\s+(?:з|із)\\s"
		"|wysłane\\s+z\\s"
		"|odesláno\\s+z\\s"
		"|(?:從我的|寄自我的|发自我的|來自我的)\\s*\\S"
		")",
	/* ">", Supercite "Bob>", and "|" unless the line is a table row */
	[RE_QUOTE] =
		"^[ \\t]*(?:>|[A-Za-z]{1,10}>(?=\\s|>|$)|\\|\\s*$|\\|(?!.*\\|\\s*$))",
};

static pcre2_code *patterns[RE_COUNT];
static pcre2_match_context *match_context;
static _Thread_local guint64 matches_run;   /* per thread: md_trim_matches_run */

static void
compile_patterns (void)
{
	for (int i = 0; i < RE_COUNT; i++) {
		int err;
		PCRE2_SIZE offset;
		patterns[i] = pcre2_compile ((PCRE2_SPTR) pattern_sources[i], PCRE2_ZERO_TERMINATED,
		                             PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_NO_UTF_CHECK,
		                             &err, &offset, NULL);
		if (!patterns[i]) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message (err, msg, sizeof msg);
			g_error ("trim: pattern %d at %zu: %s", i, (size_t) offset, (char *) msg);
		}
	}
	/* A safety net: no pattern backtracks much on bounded input, but a
	 * match that hits the limit simply counts as no match. */
	match_context = pcre2_match_context_create (NULL);
	pcre2_set_match_limit (match_context, 100000);
	pcre2_set_depth_limit (match_context, 10000);
}

static void
ensure_patterns (void)
{
	static gsize done = 0;
	if (g_once_init_enter (&done)) {
		compile_patterns ();
		g_once_init_leave (&done, 1);
	}
}

static gboolean
re_match (Trim *t, PatternId id, const char *s, gsize len)
{
	matches_run++;
	int rc = pcre2_match (patterns[id], (PCRE2_SPTR) s, len, 0, PCRE2_NO_UTF_CHECK,
	                      t->match, match_context);
	return rc >= 0;
}

guint64
md_trim_matches_run (void)
{
	return matches_run;
}

/* ---- line classification ---- */

static gboolean
is_blank (const char *s, gsize len)
{
	for (gsize i = 0; i < len; i++)
		if (!g_ascii_isspace (s[i]))
			return FALSE;
	return TRUE;
}

static gboolean
is_sig_delimiter (const char *s, gsize len)
{
	return len >= 2 && s[0] == '-' && s[1] == '-' && is_blank (s + 2, len - 2);
}

/* A line made only of separator characters: "_____", "-----", "***",
 * "####", an em dash, or the U+1427 dot some Gmail trackers leave. */
static gboolean
is_rule (const char *s, gsize len)
{
	guint marks = 0;
	gboolean strong = FALSE;
	const char *end = s + len;

	for (const char *p = s; p < end; p = g_utf8_next_char (p)) {
		gunichar c = g_utf8_get_char (p);
		if (g_unichar_isspace (c))
			continue;
		if (c != 0 && c < 0x80 && strchr ("-_=+~#*", (int) c))
			marks++;
		else if (c == 0x2014 || c == 0x2013 || c == 0x2022 || c == 0x1427) {
			marks++;
			strong = TRUE;
		} else
			return FALSE;
	}
	return marks >= 3 || (strong && marks >= 1);
}

static gboolean
is_code_fence (const char *s, gsize len)
{
	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	return len >= 3 && memcmp (s, "```", 3) == 0;
}

static gboolean
ends_with_colon (const char *s, gsize len)
{
	while (len > 0 && g_ascii_isspace (s[len - 1]))
		len--;
	if (len >= 1 && s[len - 1] == ':')
		return TRUE;
	return len >= 3 && memcmp (s + len - 3, "：", 3) == 0;
}

/* Whether a line ends a sentence ("...embedded email.", "in 2019."),
 * which no line of a wrapped attribution does; German dates wrap after
 * a day number ("Fr., 28."). */
static gboolean
ends_sentence (const char *s, gsize len)
{
	while (len > 0 && g_ascii_isspace (s[len - 1]))
		len--;
	if (len < 2 || !strchr (".!?", s[len - 1]))
		return FALSE;
	gsize digits = 0;
	while (digits + 1 < len && g_ascii_isdigit (s[len - 2 - digits]))
		digits++;
	if (digits > 0)
		return digits > 2;
	const char *prev = g_utf8_find_prev_char (s, s + len - 1);
	return prev && g_unichar_isalpha (g_utf8_get_char (prev));
}

static const char *
join_lines (Trim *t, guint first, guint last)
{
	g_string_truncate (t->join, 0);
	for (guint i = first; i <= last; i++) {
		const char *s = t->lines[i].s;
		gsize len = t->lines[i].len;
		if (i > first) {
			while (len > 0 && g_ascii_isspace (*s))
				s++, len--;
			g_string_append_c (t->join, ' ');
		}
		g_string_append_len (t->join, s, len);
	}
	return t->join->str;
}

static gboolean
colon_attribution (Trim *t, const char *s, gsize len)
{
	return re_match (t, RE_ATTR_DATED, s, len)
	       || re_match (t, RE_ATTR_VERB_MID, s, len)
	       || re_match (t, RE_ATTR_EMAIL, s, len)
	       || re_match (t, RE_ATTR_GMAIL, s, len);
}

static gboolean next_nonempty_is_quote (Trim *t, guint i);

/* Attributions on one line without a final colon.  "<date> Bob <b@x>"
 * is also how a list of appointments reads, so it needs a quote under it. */
static gboolean
single_line_attribution (Trim *t, guint i)
{
	const char *s = t->lines[i].s;
	gsize len = t->lines[i].len;
	return re_match (t, RE_ATTR_DASHED, s, len)
	       || re_match (t, RE_ATTR_GMAIL_ISO, s, len)
	       || (re_match (t, RE_ATTR_GMAIL, s, len) && next_nonempty_is_quote (t, i));
}

/* Lines first..last may form one attribution: none is code, empty at
 * the start, or too long; at most one blank line inside; no line but
 * the last ends a sentence. */
static gboolean
joinable (Trim *t, guint first, guint last)
{
	gsize bytes = 0;
	guint blanks = 0;

	if (t->lines[first].kind == LINE_EMPTY)
		return FALSE;
	for (guint i = first; i <= last; i++) {
		const Line *l = &t->lines[i];
		if (l->in_code || (l->kind != LINE_TEXT && l->kind != LINE_QUOTE && l->kind != LINE_EMPTY))
			return FALSE;
		bytes += l->len + 1;
		if (l->kind == LINE_EMPTY)
			blanks++;
		if (i < last && ends_sentence (l->s, l->len))
			return FALSE;
	}
	return bytes <= MARKER_MAX_BYTES && blanks <= 1;
}

/* The first line of the attribution that ends on line last, or -1.  The
 * earliest start that opens like an attribution ("On", "Le", a date)
 * wins, so a wrapped "On ...\n<bob@x> wrote:" is read whole; failing
 * that the latest start, so text above is never swallowed. */
static int
attribution_start (Trim *t, guint last, guint floor)
{
	/* per candidate start: 0 not tried, 1 no, 2 yes */
	guint8 tried[JOIN_MAX_LINES] = { 0 };
	guint lo = last + 1 >= JOIN_MAX_LINES ? last + 1 - JOIN_MAX_LINES : 0;
	if (lo < floor)
		lo = floor;

	for (int pass = 0; pass < 2; pass++) {
		for (guint k = 0; k <= last - lo; k++) {
			/* first pass: earliest start that opens like an attribution;
			 * second pass: latest start */
			guint m = pass == 0 ? lo + k : last - k;
			guint8 *r = &tried[m - lo];
			if (pass == 0 && !re_match (t, RE_OPENER, t->lines[m].s, t->lines[m].len))
				continue;
			if (*r == 0) {
				gboolean yes = joinable (t, m, last)
				               && (join_lines (t, m, last),
				                   colon_attribution (t, t->join->str, t->join->len));
				*r = yes ? 2 : 1;
			}
			if (*r == 2)
				return (int) m;
		}
	}
	return -1;
}

static gboolean
next_nonempty_is_quote (Trim *t, guint i)
{
	for (guint j = i + 1; j < t->n; j++) {
		if (t->lines[j].kind == LINE_EMPTY)
			continue;
		return t->lines[j].kind == LINE_QUOTE;
	}
	return FALSE;
}

static void
mark_marker (Trim *t, guint first, guint last, LineKind kind)
{
	Line *l = &t->lines[first];
	l->kind = l->kind == LINE_QUOTE ? LINE_QUOTED_MARKER : kind;
	l->span = last - first + 1;
	for (guint i = first + 1; i <= last; i++)
		t->lines[i].kind = LINE_CONTINUATION;
}

static void
find_attributions (Trim *t)
{
	guint floor = 0;

	for (guint j = 0; j < t->n; j++) {
		const Line *l = &t->lines[j];
		if (l->in_code || l->len > MARKER_MAX_BYTES
		    || (l->kind != LINE_TEXT && l->kind != LINE_QUOTE))
			continue;
		int start = -1;
		if (re_match (t, RE_FORWARD, l->s, l->len) || re_match (t, RE_FORWARD_BEGIN, l->s, l->len)) {
			mark_marker (t, j, j, LINE_FORWARD);
			floor = j + 1;
			continue;
		}
		if (ends_with_colon (l->s, l->len))
			start = attribution_start (t, j, floor);
		if (start < 0 && single_line_attribution (t, j))
			start = (int) j;
		if (start < 0 && re_match (t, RE_ATTR_NAME, l->s, l->len) && next_nonempty_is_quote (t, j))
			start = (int) j;
		if (start >= 0) {
			mark_marker (t, (guint) start, j, LINE_ATTRIBUTION);
			floor = j + 1;
		}
	}
}

/* "From: / Sent: / To: / Subject:" blocks of at least three headers, one
 * of them the sender, each header possibly wrapped onto one more line. */
static void
find_header_blocks (Trim *t)
{
	for (guint i = 0; i < t->n; i++) {
		if (t->lines[i].kind != LINE_TEXT || t->lines[i].in_code)
			continue;
		guint headers = 0, last = i;
		gboolean from = FALSE, continued = FALSE;
		for (guint k = i; k < t->n; k++) {
			const Line *l = &t->lines[k];
			if (l->kind != LINE_TEXT || l->in_code)
				break;
			if (re_match (t, RE_HEADER_FROM, l->s, l->len)) {
				from = TRUE;
				headers++;
			} else if (re_match (t, RE_HEADER_OTHER, l->s, l->len)) {
				headers++;
			} else if (k > i && !continued) {
				continued = TRUE;
				continue;
			} else {
				break;
			}
			continued = FALSE;
			last = k;
		}
		if (headers >= HEADER_BLOCK_MIN && from)
			mark_marker (t, i, last, LINE_HEADER);
		/* Whether or not it was a block, the scan goes on after it: a
		 * start inside it would follow the same lines to the same end
		 * with a subset of its headers, so it is no block either (and
		 * retrying every start was quadratic: 20,000 "To: a" lines
		 * took minutes). */
		i = last;
	}
}

static void
classify (Trim *t)
{
	gboolean in_code = FALSE;

	for (guint i = 0; i < t->n; i++) {
		Line *l = &t->lines[i];
		l->span = 1;
		l->kept = TRUE;
		if (is_code_fence (l->s, l->len)) {
			in_code = !in_code;
			l->in_code = TRUE;
			l->kind = LINE_TEXT;
			continue;
		}
		l->in_code = in_code;
		if (is_blank (l->s, l->len))
			l->kind = LINE_EMPTY;
		else if (in_code)
			l->kind = LINE_TEXT;
		else if (is_sig_delimiter (l->s, l->len))
			l->kind = LINE_SIG_DELIM;
		else if (is_rule (l->s, l->len))
			l->kind = LINE_RULE;
		else if (re_match (t, RE_QUOTE, l->s, l->len))
			l->kind = LINE_QUOTE;
		else if (l->len <= FOOTER_MAX_BYTES && re_match (t, RE_FOOTER, l->s, l->len))
			l->kind = LINE_FOOTER;
		else
			l->kind = LINE_TEXT;
	}
	find_attributions (t);
	find_header_blocks (t);
}

/* ---- cutting ---- */

static gboolean
is_quote_kind (LineKind k)
{
	return k == LINE_QUOTE || k == LINE_QUOTED_MARKER;
}

static guint
skip_empty (Trim *t, guint i)
{
	while (i < t->n && t->lines[i].kind == LINE_EMPTY)
		i++;
	return i;
}

static void
drop (Trim *t, guint from, guint to)
{
	for (guint i = from; i < to && i < t->n; i++)
		t->lines[i].kept = FALSE;
}

/* The end of the quote block starting at i (quotes and blank lines). */
static guint
quote_block_end (Trim *t, guint i)
{
	guint end = i;
	for (guint j = i; j < t->n; j++) {
		LineKind k = t->lines[j].kind;
		if (is_quote_kind (k))
			end = j + 1;
		else if (k != LINE_EMPTY && k != LINE_CONTINUATION)
			break;
	}
	return end;
}

/* Drops the history marker at i that has no new text above it, with the
 * quote or header block it introduces; returns the line after it. */
static guint
drop_leading_history (Trim *t, guint i)
{
	const Line *l = &t->lines[i];
	guint next = i + l->span;

	if (l->kind == LINE_QUOTED_MARKER) {
		next = quote_block_end (t, i);
	} else if (l->kind == LINE_ATTRIBUTION) {
		guint q = skip_empty (t, next);
		if (q < t->n && is_quote_kind (t->lines[q].kind))
			next = quote_block_end (t, q);
	} else if (l->kind == LINE_FORWARD) {
		guint h = skip_empty (t, next);
		if (h < t->n && t->lines[h].kind == LINE_HEADER)
			next = h + t->lines[h].span;
	}
	drop (t, i, next);
	return next;
}

/* Whether what follows the quote under an attribution is an answer
 * (inline replies, or a long text) rather than a signature. */
static gboolean
answer_follows (Trim *t, guint from)
{
	guint text = 0;
	for (guint j = from; j < t->n; j++) {
		LineKind k = t->lines[j].kind;
		if (k == LINE_SIG_DELIM)
			break;
		if (k == LINE_TEXT || k == LINE_HEADER)
			text++;
		else if (is_quote_kind (k) && text > 0)
			return TRUE;
	}
	return text >= LONG_ANSWER;
}

static void
cut_history (Trim *t)
{
	gboolean seen_text = FALSE;

	for (guint i = 0; i < t->n;) {
		const Line *l = &t->lines[i];
		switch (l->kind) {
		case LINE_TEXT:
			seen_text = TRUE;
			i++;
			continue;
		case LINE_SIG_DELIM:
			if (seen_text) {
				drop (t, i, t->n);
				return;
			}
			i++;
			continue;
		case LINE_FORWARD:
		case LINE_HEADER:
			if (seen_text) {
				drop (t, i, t->n);
				return;
			}
			i = drop_leading_history (t, i);
			continue;
		case LINE_ATTRIBUTION:
		case LINE_QUOTED_MARKER: {
			if (!seen_text) {
				i = drop_leading_history (t, i);
				continue;
			}
			guint q = l->kind == LINE_QUOTED_MARKER ? i : skip_empty (t, i + l->span);
			if (q >= t->n || !is_quote_kind (t->lines[q].kind)
			    || !answer_follows (t, quote_block_end (t, q))) {
				drop (t, i, t->n);
				return;
			}
			drop (t, i, i + l->span);
			i += l->span;
			continue;
		}
		default:
			i++;
			continue;
		}
	}
}

static gboolean
kept_text_before (Trim *t, guint end)
{
	for (guint i = 0; i < end; i++)
		if (t->lines[i].kept && t->lines[i].kind == LINE_TEXT)
			return TRUE;
	return FALSE;
}

/* Drops blank lines, rules, footers and (below new text) quotes from the
 * end of what is kept. */
static void
drop_trailing (Trim *t)
{
	for (guint i = t->n; i-- > 0;) {
		Line *l = &t->lines[i];
		if (!l->kept)
			continue;
		if (l->in_code && l->kind != LINE_EMPTY)
			return;
		switch (l->kind) {
		case LINE_EMPTY:
		case LINE_RULE:
		case LINE_FOOTER:
		case LINE_SIG_DELIM:
			l->kept = FALSE;
			break;
		case LINE_QUOTE:
		case LINE_QUOTED_MARKER:
		case LINE_CONTINUATION:
			if (!kept_text_before (t, i))
				return;
			l->kept = FALSE;
			break;
		default:
			return;
		}
	}
}

/* A rule with one short block of text under it, at the end, is a
 * signature ("____\nJohn Doe"); a rule between paragraphs is not. */
static void
drop_signature_under_rule (Trim *t)
{
	guint block = 0;
	gboolean gap = FALSE;

	for (guint i = t->n; i-- > 0;) {
		const Line *l = &t->lines[i];
		if (!l->kept)
			continue;
		if (l->kind == LINE_RULE && !l->in_code) {
			if (block > 0 && kept_text_before (t, i))
				drop (t, i, t->n);
			return;
		}
		if (l->kind == LINE_EMPTY) {
			if (block > 0)
				gap = TRUE;
			continue;
		}
		if (gap || l->in_code || ++block > SIG_BLOCK_MAX)
			return;
	}
}

/* ---- result ---- */

static char *
join_kept (Trim *t, gboolean kept, const char *overflow)
{
	GString *out = g_string_new (NULL);
	gboolean started = FALSE;
	gsize blanks = 0;

	for (guint i = 0; i < t->n; i++) {
		const Line *l = &t->lines[i];
		if (l->kept != kept)
			continue;
		if (l->kind == LINE_EMPTY || is_blank (l->s, l->len)) {
			if (started)
				blanks++;
			continue;
		}
		if (started)
			g_string_append_c (out, '\n');
		for (; blanks > 0; blanks--)
			g_string_append_c (out, '\n');
		g_string_append_len (out, l->s, l->len);
		started = TRUE;
	}
	if (overflow && *overflow) {
		if (started)
			g_string_append (out, "\n");
		g_string_append (out, overflow);
	}
	return g_string_free (out, FALSE);
}

/* Splits text into lines (LF or CRLF), at most TRIM_MAX_LINES; returns
 * where the unanalysed rest begins. */
static const char *
split_lines (Trim *t, const char *text, const char *end)
{
	GArray *lines = g_array_new (FALSE, TRUE, sizeof (Line));
	const char *p = text;

	while (p < end && lines->len < TRIM_MAX_LINES) {
		const char *nl = memchr (p, '\n', (size_t) (end - p));
		const char *stop = nl ? nl : end;
		Line l = { .s = p, .len = (gsize) (stop - p) };
		if (l.len > 0 && l.s[l.len - 1] == '\r')
			l.len--;
		g_array_append_val (lines, l);
		p = nl ? nl + 1 : end;
	}
	t->n = lines->len;
	t->lines = (Line *) g_array_free (lines, FALSE);
	return p;
}

static void
trim_init (Trim *t)
{
	*t = (Trim) { 0 };
	t->match = pcre2_match_data_create (1, NULL);
	t->join = g_string_sized_new (MARKER_MAX_BYTES + JOIN_MAX_LINES);
}

static void
trim_clear (Trim *t)
{
	pcre2_match_data_free (t->match);
	g_string_free (t->join, TRUE);
	g_free (t->lines);
}

gboolean
md_trim_starts_with_forward (const char *text)
{
	ensure_patterns ();

	/* The opening lines decide; a marker may be wrapped over a few. */
	g_autofree char *head = g_utf8_make_valid (text ? text : "", MIN (strlen (text ? text : ""), 4096));
	const char *nl = strrchr (head, '\n');
	const char *end = nl ? nl + 1 : head + strlen (head);
	Trim t;
	trim_init (&t);
	split_lines (&t, head, end);
	classify (&t);
	guint first = 0;
	while (first < t.n && t.lines[first].kind == LINE_EMPTY)
		first++;
	gboolean forward = first < t.n && (t.lines[first].kind == LINE_FORWARD || t.lines[first].kind == LINE_HEADER);
	trim_clear (&t);
	return forward;
}

char *
md_trim_reply (const char *text, char **elided_r)
{
	ensure_patterns ();

	g_autofree char *valid = g_utf8_make_valid (text ? text : "", -1);
	gsize len = strlen (valid);
	const char *end = valid + len;
	if (len > TRIM_MAX_BYTES) {
		/* cut at a line end so no UTF-8 sequence is split */
		const char *nl = g_strrstr_len (valid, TRIM_MAX_BYTES, "\n");
		end = nl ? nl + 1 : g_utf8_find_prev_char (valid, valid + TRIM_MAX_BYTES + 1);
	}

	Trim t;
	trim_init (&t);
	const char *rest = split_lines (&t, valid, end);
	g_autofree char *overflow = g_strdup (rest);
	g_strstrip (overflow);

	classify (&t);
	cut_history (&t);
	drop_trailing (&t);
	drop_signature_under_rule (&t);
	drop_trailing (&t);

	char *trimmed = join_kept (&t, TRUE, NULL);
	if (elided_r)
		*elided_r = join_kept (&t, FALSE, overflow);
	trim_clear (&t);
	return trimmed;
}
