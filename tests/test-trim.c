/* test-trim.c - reply trimming: unit cases per client and language, and
 * agreement with two public corpora of replies (see
 * ../shared/corpus/README.md, "replies/"). */
#include "config.h"

#include <fcntl.h>
#include <gmime/gmime.h>
#include <string.h>

#include "corpus.h"
#include "trim.h"


/* The non-blank lines of a text, normalized, in order. */
static GPtrArray *
nonblank_lines (const char *text)
{
	g_autofree char *norm = md_corpus_normalize_reply (text);
	g_auto (GStrv) lines = g_strsplit (norm, "\n", -1);
	GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
	for (guint i = 0; lines[i]; i++)
		if (*lines[i])
			g_ptr_array_add (out, g_strdup (lines[i]));
	return out;
}

/* Trimmed and elided split the input: every non-blank input line is in
 * exactly one of them, and each keeps the input's order. */
static gboolean
is_partition (const char *input, const char *trimmed, const char *elided)
{
	g_autofree char *unix_input = g_strdup (input);
	for (char *p = unix_input; *p; p++)
		if (*p == '\r')
			*p = ' ';
	g_autoptr (GPtrArray) in = nonblank_lines (unix_input);
	g_autoptr (GPtrArray) a = nonblank_lines (trimmed);
	g_autoptr (GPtrArray) b = nonblank_lines (elided);
	guint i = 0, j = 0;

	if (in->len != a->len + b->len)
		return FALSE;
	for (guint k = 0; k < in->len; k++) {
		const char *line = in->pdata[k];
		if (i < a->len && strcmp (line, a->pdata[i]) == 0)
			i++;
		else if (j < b->len && strcmp (line, b->pdata[j]) == 0)
			j++;
		else
			return FALSE;
	}
	return TRUE;
}

/* ---- unit cases ---- */

typedef struct {
	const char *name;
	const char *input;
	const char *trimmed;
	const char *elided;   /* NULL: only checked to be a partition */
} Case;

static const Case cases[] = {
	/* clients */
	{ "gmail",
	  "Thanks!\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:\n\n> Hi\n",
	  "Thanks!",
	  "On Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:\n\n> Hi" },
	{ "gmail-wrapped",
	  "Thanks!\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan One via Support <\nxxx@gmail.com> wrote:\n\n> Hi\n",
	  "Thanks!", NULL },
	{ "gmail-old-date-first",
	  "Thanks!\n\n2013/7/20 Megan One <xxx@gmail.com>\n\n> Hi\n", "Thanks!", NULL },
	{ "gmail-iso-wrapped",
	  "Thanks!\n\n2016-10-24 15:36 GMT+02:00 Megan One <\nxxx@gmail.com>:\n\n> Hi\n", "Thanks!", NULL },
	{ "outlook-original-message",
	  "Sure.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday, April 2, 2012 5:44 PM\n"
	  "To: Support\nSubject: Help\n\nHi\n",
	  "Sure.", NULL },
	{ "outlook-header-block",
	  "Sure.\n\n________________________________\nFrom: Bob <bob@example.com>\n"
	  "Sent: Tuesday, 3 April 2012 10:00\nTo: Support\nSubject: Help\n\nHi\n",
	  "Sure.",
	  "________________________________\nFrom: Bob <bob@example.com>\n"
	  "Sent: Tuesday, 3 April 2012 10:00\nTo: Support\nSubject: Help\n\nHi" },
	{ "outlook-bold-headers",
	  "Sure.\n\n*From:* Bob\n*Sent:* 2016-01-27\n*To:* Support\n*Subject:* Help\n\nHi\n", "Sure.", NULL },
	{ "outlook-mobile",
	  "Thanks\n\nGet Outlook for Android<https://aka.ms/ghei36>\n\n________________________________\n"
	  "From: Bob <bob@example.com>\nSent: Tuesday, April 3, 2012 10:00:00 AM\nTo: Support\n"
	  "Subject: Help\n\nHi\n",
	  "Thanks", NULL },
	{ "apple-mail",
	  "Yes.\n\nOn 3 Apr 2012, at 16:19, Bob <bob@example.com> wrote:\n\n> Hi\n", "Yes.", NULL },
	{ "apple-mail-forward",
	  "FYI\n\nBegin forwarded message:\n\nFrom: Bob <bob@example.com>\nSubject: Help\n"
	  "Date: 3 April 2012 at 16:19:00 CEST\nTo: Support <help@example.com>\n\nHi\n",
	  "FYI", NULL },
	{ "thunderbird-bottom-post",
	  "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi\nHello\n", "Hello",
	  "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi" },
	{ "thunderbird-top-post",
	  "Hello\n\nOn 02.04.2012 18:27, bob wrote:\n> Hi\n", "Hello", NULL },
	{ "thunderbird-name-only",
	  "Hello\n\nBob Smith wrote:\n> Hi\n", "Hello", NULL },
	{ "yahoo",
	  "Hello\n\n\n----- Original Message -----\nFrom: Bob <bob@example.com>\nTo: xxx@yahoo.com\nCc: \n"
	  "Sent: Monday, April 2, 2012 5:44 PM\nSubject: Test\n\nHi\n",
	  "Hello", NULL },
	{ "yahoo-unquoted-history",
	  "Hello\n\nOn Monday, April 2, 2012 5:44 PM, Bob <bob@example.com> wrote:\n\n\nHi\n\nBob\n",
	  "Hello", NULL },
	{ "aol",
	  "Hello\n\n-----Original Message-----\nFrom: bob <bob@example.com>\nTo: xxx <xxx@aol.com>\n"
	  "Sent: Mon, Apr 2, 2012 5:49 pm\nSubject: Test\n\nHi\n",
	  "Hello", NULL },
	{ "android-gmail",
	  "Ok\n\nOn Apr 2, 2012 6:22 PM, \"Bob\" <bob@example.com> wrote:\n\n> Hi\n", "Ok", NULL },
	{ "iphone",
	  "Hello\n\nSent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <bob@example.com> wrote:\n\n> Hi\n",
	  "Hello",
	  "Sent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <bob@example.com> wrote:\n\n> Hi" },
	{ "samsung-forward",
	  "Ok\n\nSent from my Samsung Galaxy smartphone.\n\n-------- Original message --------\n"
	  "From: Bob <bob@example.com>\nDate: 02/04/2012 17:44 (GMT+01:00)\nTo: Support\nSubject: Test\n\nHi\n",
	  "Ok", NULL },
	{ "gmail-forward-only",
	  "---------- Forwarded message ---------\nFrom: Bob <bob@example.com>\n"
	  "Date: Tue, Jan 01, 2019 at 12:00 PM\nSubject: Printer\nTo: <ann@example.com>\n\n\nIt is broken.\n",
	  "It is broken.", NULL },
	{ "zoho-dashed",
	  "Ok\n\n---- On Tue, 22 Dec 2015 14:17:36 +0530 Bob <bob@example.com> wrote ----\n\nHi\n", "Ok", NULL },
	{ "supercite-quote",
	  "Ok\n\nOn Wed, Sep 25, 2013, at 03:57 PM, bob wrote:\n\nBob> Hi\n", "Ok", NULL },
	/* languages */
	{ "german",
	  "Danke\n\nAm 03.02.2016 um 15:35 schrieb Max Mustermann <max@example.com>:\n\n> Hallo\n", "Danke", NULL },
	{ "german-wrapped",
	  "Danke\n\nAm Mo., 3. Feb. 2020 um 15:35 Uhr schrieb Max Mustermann <\nmax@example.com>:\n\n> Hallo\n",
	  "Danke", NULL },
	{ "german-gmail-name-first-wrapped",
	  "Danke\n\nMax Mustermann <max@example.com> schrieb am Fr., 28.\nApr. 2017 um 11:53 Uhr:\n\n> Hallo\n",
	  "Danke", NULL },
	{ "german-outlook",
	  "Danke\n\nVon: Max <max@example.com>\nGesendet: Montag, 3. Februar 2020 15:35\nAn: Support\n"
	  "Betreff: Hilfe\n\nHallo\n",
	  "Danke", NULL },
	{ "german-original-message",
	  "Danke\n\n-----Ursprüngliche Nachricht-----\nVon: Max\nGesendet: Mo 3.2.2020\nAn: Support\n", "Danke", NULL },
	{ "french",
	  "Merci\n\nLe lun. 3 févr. 2020 à 15:35, Jean Dupont <jean@example.fr> a écrit :\n\n> Bonjour\n",
	  "Merci", NULL },
	{ "french-wrapped-three-lines",
	  "Merci\n\nLe 4 janv. 2016 19:03, \"Jean Dupont\"\n<jean@example.fr>\na écrit :\n\n> Bonjour\n",
	  "Merci",
	  "Le 4 janv. 2016 19:03, \"Jean Dupont\"\n<jean@example.fr>\na écrit :\n\n> Bonjour" },
	{ "spanish",
	  "Gracias\n\nEl lun., 3 feb. 2020 a las 15:35, Juan (<juan@example.es>) escribió:\n\n> Hola\n",
	  "Gracias", NULL },
	{ "spanish-original-message",
	  "Gracias\n\n-----Mensaje original-----\nDe: Juan\nEnviado: 3/2/2020\nPara: Soporte\nAsunto: Ayuda\n",
	  "Gracias", NULL },
	{ "portuguese",
	  "Obrigado\n\nEm seg., 3 de fev. de 2020 às 15:35, João <joao@example.br> escreveu:\n\n> Olá\n",
	  "Obrigado", NULL },
	{ "italian",
	  "Grazie\n\nIl giorno lun 3 feb 2020 alle ore 15:35 Mario Rossi <mario@example.it> ha scritto:\n\n> Ciao\n",
	  "Grazie", NULL },
	{ "dutch",
	  "Bedankt\n\nOp ma 3 feb. 2020 om 15:35 schreef Jan Jansen <jan@example.nl>:\n\n> Hallo\n",
	  "Bedankt", NULL },
	{ "dutch-wrapped",
	  "Bedankt\n\nOp 16 aug. 2014 05:13 schreef \"Jan\" <jan@example.nl> het\nvolgende geschreven:\n\n> Hallo\n",
	  "Bedankt", NULL },
	{ "swedish",
	  "Tack\n\nDen mån 3 feb. 2020 kl 15:35 skrev Sven <sven@example.se>:\n\n> Hej\n", "Tack", NULL },
	{ "norwegian-ipad",
	  "Takk\n\nSendt fra min iPad\n\nDen 15. jun. 2016 kl. 20.42 skrev Ola <ola@example.no>:\n\nHei\n",
	  "Takk", NULL },
	{ "polish",
	  "Dzięki\n\npon., 3 lut 2020 o 15:35 Jan Kowalski <jan@example.pl> napisał(a):\n\n> Cześć\n",
	  "Dzięki", NULL },
	{ "russian",
	  "Спасибо\n\n3 февраля 2020 г., 15:35 пользователь Иван <ivan@example.ru> написал:\n\n> Привет\n",
	  "Спасибо", NULL },
	{ "russian-gmail",
	  "Спасибо\n\nпн, 3 февр. 2020 г. в 15:35, Иван Петров <ivan@example.ru>:\n\n> Привет\n",
	  "Спасибо", NULL },
	{ "russian-wrapped",
	  "Да\n\n20 окт. 2016 г. 19:37 пользователь \"Иван Петров\" <\nivan@example.ru> написал:\n\n> Привет\n",
	  "Да", NULL },
	{ "ukrainian",
	  "Дякую\n\nпн, 3 лют. 2020 о 15:35 Іван <ivan@example.ua> пише:\n\n> Привіт\n", "Дякую", NULL },
	{ "chinese",
	  "谢谢\n\n在 2020年2月3日 下午3:35，张三 <zhang@example.cn> 写道：\n\n> 你好\n", "谢谢", NULL },
	/* what is kept */
	{ "inline-reply",
	  "Hi,\n\nOn Mon, 3 Feb 2020 at 15:35, Bob <bob@example.com> wrote:\n> Question one?\nAnswer one.\n"
	  "> Question two?\nAnswer two.\n",
	  "Hi,\n\n> Question one?\nAnswer one.\n> Question two?\nAnswer two.",
	  "On Mon, 3 Feb 2020 at 15:35, Bob <bob@example.com> wrote:" },
	{ "leading-quote-then-text",
	  "> Is it broken?\n\nYes, since Monday.\n", "> Is it broken?\n\nYes, since Monday.", "" },
	{ "quote-only", "> Only a quote.\n", "> Only a quote.", "" },
	{ "rule-between-paragraphs",
	  "Part one.\n\n-----\n\nPart two.\n\nBest,\nJohn\n", "Part one.\n\n-----\n\nPart two.\n\nBest,\nJohn", "" },
	{ "signature-under-rule",
	  "Text.\n\n____________\nJohn Doe\nACME Inc.\n", "Text.", "____________\nJohn Doe\nACME Inc." },
	{ "code-fence",
	  "Run this:\n\n```\n-- \n# comment\n####\n```\n\nThen it fails.\n",
	  "Run this:\n\n```\n-- \n# comment\n####\n```\n\nThen it fails.", "" },
	{ "wrote-in-prose",
	  "I wrote the script in 2019.\nIt fails on line 3:\n\n    exit 1\n",
	  "I wrote the script in 2019.\nIt fails on line 3:\n\n    exit 1", "" },
	{ "dated-list-in-prose",
	  "Appointments:\n2019-05-01 Meeting with Bob <bob@example.com>\n"
	  "2019-05-02 Call with Ann <ann@example.com>\nThanks\n",
	  "Appointments:\n2019-05-01 Meeting with Bob <bob@example.com>\n"
	  "2019-05-02 Call with Ann <ann@example.com>\nThanks", "" },
	{ "markdown-table",
	  "Results:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", "Results:\n\n| a | b |\n|---|---|\n| 1 | 2 |", "" },
	{ "pipe-quote",
	  "Ok\n\n2013/7/20 Bob <bob@example.com>\n\n| Hi\n|\n| Bob\n", "Ok", NULL },
	{ "on-date-in-prose",
	  "On Monday at 10:00 the server stopped.\nPlease check.\n",
	  "On Monday at 10:00 the server stopped.\nPlease check.", "" },
	{ "sentence-above-attribution",
	  "This is my answer.\nOn Tue, 2011-03-01 at 18:02 +0530, Bob wrote:\n> Hi\n", "This is my answer.", NULL },
	/* signatures */
	{ "sig-delimiter",
	  "Text\n\n-- \nJohn\nACME\n", "Text", "-- \nJohn\nACME" },
	{ "mobile-footers",
	  "Ok\n\nEnvoyé depuis mon iPhone\nVon meinem Mobilgerät gesendet\nEnviado desde mi iPhone\n"
	  "Inviato da iPhone\nVerzonden met BlackBerry Work\n從我的 iPhone 傳送\n",
	  "Ok", NULL },
	/* input hygiene */
	{ "empty", "", "", "" },
	{ "blank", " \n\t\n", "", "" },
	{ "crlf", "Line one\r\nLine two\r\n\r\nOn 1 Jan 2020, Bob wrote:\r\n> x\r\n", "Line one\nLine two", NULL },
	{ "invalid-utf8", "Caf\xe9 ok\n", "Caf\xef\xbf\xbd ok", "" },
};

static void
test_cases (void)
{
	guint failed = 0;

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		const Case *c = &cases[i];
		g_autofree char *elided = NULL;
		g_autofree char *trimmed = md_trim_reply (c->input, &elided);
		g_autofree char *got = md_corpus_normalize_reply (trimmed);
		g_autofree char *want = md_corpus_normalize_reply (c->trimmed);

		if (g_strcmp0 (got, want) != 0) {
			g_test_message ("case %s: trimmed\n[%s]\nwant\n[%s]", c->name, got, want);
			failed++;
		}
		if (c->elided) {
			g_autofree char *got_e = md_corpus_normalize_reply (elided);
			g_autofree char *want_e = md_corpus_normalize_reply (c->elided);
			if (g_strcmp0 (got_e, want_e) != 0) {
				g_test_message ("case %s: elided\n[%s]\nwant\n[%s]", c->name, got_e, want_e);
				failed++;
			}
		}
		if (g_utf8_validate (c->input, -1, NULL) && !is_partition (c->input, trimmed, elided)) {
			g_test_message ("case %s: trimmed and elided do not split the input", c->name);
			failed++;
		}
	}
	g_assert_cmpuint (failed, ==, 0);
}

static void
test_null_and_no_elided (void)
{
	g_autofree char *elided = NULL;
	g_autofree char *t = md_trim_reply (NULL, &elided);
	g_assert_cmpstr (t, ==, "");
	g_assert_cmpstr (elided, ==, "");
	g_autofree char *t2 = md_trim_reply ("Hi\n\n-- \nMe\n", NULL);
	g_assert_cmpstr (t2, ==, "Hi");
}

/* Over the limits the head is trimmed and the rest elided, quickly. */
static void
test_bounds (void)
{
	GString *big = g_string_new ("New text.\n\n");
	for (int i = 0; i < 60000; i++)
		g_string_append (big, "> On 1 Jan 2020 at 10:00, Bob <bob@example.com> wrote:\n");
	g_autofree char *tail = g_strnfill (3 << 20, 'x');
	g_string_append (big, tail);
	gint64 start = g_get_monotonic_time ();
	g_autofree char *elided = NULL;
	g_autofree char *t = md_trim_reply (big->str, &elided);
	gint64 took = g_get_monotonic_time () - start;
	g_assert_cmpstr (t, ==, "New text.");
	g_assert_true (g_str_has_suffix (elided, "xxx"));
	g_assert_cmpint (strlen (t) + strlen (elided), <=, big->len);
	g_assert_cmpint (took, <, 5 * G_USEC_PER_SEC);
	g_string_free (big, TRUE);

	/* one long line without a newline is cut at a character boundary */
	GString *line = g_string_new (NULL);
	while (line->len < (2u << 20))
		g_string_append (line, "é");
	g_autofree char *e2 = NULL;
	g_autofree char *t2 = md_trim_reply (line->str, &e2);
	g_assert_true (g_utf8_validate (t2, -1, NULL));
	g_assert_true (g_utf8_validate (e2, -1, NULL));
	g_assert_cmpint (strlen (t2), <=, 1 << 20);
	g_assert_true (g_str_has_prefix (line->str, t2));
	g_assert_cmpstr (line->str + strlen (t2), ==, e2);
	g_string_free (line, TRUE);
}

/* The patterns run a bounded number of times per line, whatever the
 * lines are: a run of header-like lines without a From (a list of
 * "To: a" lines) was scanned again from each of its lines, 2x10^8
 * matches and minutes of CPU for a 120 KB reply. */
static void
test_work_per_line (void)
{
	static const char *const shapes[] = {
		"To: a\n", "Subject: x\nCc: y\n", "Date: 2012\nnot a header\n",
		"> On 1 Jan 2012, Bob <b@x.example> wrote:\n", "On 1 Jan 2012 aaaa aaaa:\n",
	};
	for (gsize s = 0; s < G_N_ELEMENTS (shapes); s++) {
		GString *text = g_string_new ("Hello,\n");
		guint lines = 1;
		while (lines < 4000) {
			g_string_append (text, shapes[s]);
			for (const char *c = shapes[s]; *c; c++)
				lines += *c == '\n';
		}
		g_string_append (text, "Thanks\n");
		guint64 before = md_trim_matches_run ();
		g_autofree char *t = md_trim_reply (text->str, NULL);
		guint64 run = md_trim_matches_run () - before;
		g_autofree char *shown = g_strescape (shapes[s], NULL);
		g_test_message ("%s: %" G_GUINT64_FORMAT " matches for %u lines", shown, run, lines);
		g_assert_cmpuint (run, <=, 64 * (guint64) lines);
		g_string_free (text, TRUE);
	}
}

/* ---- corpora ---- */

static char *
corpus_dir (const char *set)
{
	const char *root = g_getenv ("MD_CORPUS");
	g_assert_nonnull (root);
	return g_build_filename (root, "replies", set, NULL);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
	return strcmp (*(char *const *) a, *(char *const *) b);
}

static GPtrArray *
sorted_names (const char *dir, const char *suffix)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (GDir) d = g_dir_open (dir, 0, &error);
	g_assert_no_error (error);
	GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
	const char *name;
	while ((name = g_dir_read_name (d)))
		if (g_str_has_suffix (name, suffix))
			g_ptr_array_add (names, g_strdup (name));
	g_ptr_array_sort (names, compare_names);
	return names;
}

static char *
read_file (const char *dir, const char *sub, const char *name)
{
	g_autofree char *path = g_build_filename (dir, sub, name, NULL);
	g_autoptr (GError) error = NULL;
	char *content = NULL;
	g_file_get_contents (path, &content, NULL, &error);
	g_assert_no_error (error);
	return content;
}

static void
test_corpus_email_reply_trimmer (void)
{
	g_autofree char *dir = corpus_dir ("email_reply_trimmer");
	g_autofree char *emails = g_build_filename (dir, "emails", NULL);
	g_autoptr (GPtrArray) names = sorted_names (emails, ".txt");
	guint exact = 0;

	g_assert_cmpuint (names->len, >=, 60);
	for (guint i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];
		g_autofree char *input = read_file (dir, "emails", name);
		g_autofree char *expected = read_file (dir, "trimmed", name);
		g_autofree char *elided = NULL;
		g_autofree char *trimmed = md_trim_reply (input, &elided);
		g_autofree char *got = md_corpus_normalize_reply (trimmed);
		g_autofree char *want = md_corpus_normalize_reply (expected);

		if (strcmp (got, want) == 0)
			exact++;
		else
			g_test_message ("email_reply_trimmer mismatch: %s", name);
		g_assert_true (is_partition (input, trimmed, elided));
	}
	g_test_message ("email_reply_trimmer: %u/%u exact (%.1f %%)", exact, names->len,
	                100.0 * exact / names->len);
	g_assert_cmpuint (exact * 100, >=, names->len * 90);
}

static void
find_text_plain (GMimeObject *parent, GMimeObject *part, gpointer data)
{
	char **text = data;
	if (*text || !GMIME_IS_TEXT_PART (part)
	    || !g_mime_content_type_is_type (g_mime_object_get_content_type (part), "text", "plain"))
		return;
	*text = g_mime_text_part_get_text (GMIME_TEXT_PART (part));
}

static char *
eml_text_body (const char *path)
{
	g_autoptr (GError) error = NULL;
	GMimeStream *stream = g_mime_stream_fs_open (path, O_RDONLY, 0, &error);
	g_assert_no_error (error);
	GMimeParser *parser = g_mime_parser_new_with_stream (stream);
	GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
	g_assert_nonnull (message);
	char *text = NULL;
	GMimeObject *body = g_mime_message_get_mime_part (message);
	if (GMIME_IS_TEXT_PART (body))
		find_text_plain (NULL, body, &text);
	else
		g_mime_message_foreach (message, find_text_plain, &text);
	g_object_unref (message);
	g_object_unref (parser);
	g_object_unref (stream);
	g_assert_nonnull (text);
	return text;
}

/* talon cuts the quotation only and keeps signatures; we cut both.  A
 * reply agrees when our new text is talon's, or is talon's without a
 * signature that our elided part then begins with. */
static gboolean
agrees_with_talon (const char *want, const char *got, const char *elided)
{
	if (strcmp (want, got) == 0)
		return TRUE;
	if (!*got || !g_str_has_prefix (want, got) || want[strlen (got)] != '\n')
		return FALSE;
	g_autofree char *signature = md_corpus_normalize_reply (want + strlen (got));
	return *signature && g_str_has_prefix (elided, signature);
}

static void
test_corpus_talon (void)
{
	g_autofree char *dir = corpus_dir ("talon_standard_replies");
	g_autoptr (GPtrArray) names = sorted_names (dir, ".eml");
	guint agree = 0;

	g_assert_cmpuint (names->len, ==, 12);
	for (guint i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];
		g_autofree char *path = g_build_filename (dir, name, NULL);
		g_autofree char *stem = g_strndup (name, strlen (name) - 4);
		g_autofree char *reply_name = g_strconcat (stem, "_reply_text", NULL);
		g_autofree char *reply_path = g_build_filename (dir, reply_name, NULL);
		g_autofree char *expected = NULL;
		if (!g_file_get_contents (reply_path, &expected, NULL, NULL))
			expected = g_strdup ("Hello");

		g_autofree char *body = eml_text_body (path);
		g_autofree char *elided = NULL;
		g_autofree char *trimmed = md_trim_reply (body, &elided);
		g_autofree char *got = md_corpus_normalize_reply (trimmed);
		g_autofree char *want = md_corpus_normalize_reply (expected);
		g_autofree char *got_elided = md_corpus_normalize_reply (elided);

		if (agrees_with_talon (want, got, got_elided))
			agree++;
		else
			g_test_message ("talon mismatch: %s: [%s]", name, got);
		g_assert_true (is_partition (body, trimmed, elided));
	}
	g_test_message ("talon_standard_replies: %u/%u agree", agree, names->len);
	g_assert_cmpuint (agree, ==, names->len);
}

static void
test_starts_with_forward (void)
{
	g_assert_true (md_trim_starts_with_forward ("\n---------- Forwarded message ---------\nFrom: Bob <bob@example.com>\n"
	                                            "Subject: hi\n\n#close\n"));
	g_assert_true (md_trim_starts_with_forward ("-------- Original Message --------\nFrom: a@b.c\n\ntext\n"));
	g_assert_true (md_trim_starts_with_forward ("From: Bob <bob@example.com>\nSent: Monday\nTo: a@b.c\nSubject: x\n\n#close\n"));
	g_assert_false (md_trim_starts_with_forward ("#close\n\n---------- Forwarded message ---------\nFrom: b@c.d\n\nx\n"));
	g_assert_false (md_trim_starts_with_forward ("Thanks!\n\nOn Mon, Bob wrote:\n> hi\n"));
	g_assert_false (md_trim_starts_with_forward (""));
	g_assert_false (md_trim_starts_with_forward (NULL));
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_mime_init ();
	g_test_add_func ("/trim/starts-with-forward", test_starts_with_forward);
	g_test_add_func ("/trim/cases", test_cases);
	g_test_add_func ("/trim/null", test_null_and_no_elided);
	g_test_add_func ("/trim/bounds", test_bounds);
	g_test_add_func ("/trim/work-per-line", test_work_per_line);
	g_test_add_func ("/trim/corpus/email_reply_trimmer", test_corpus_email_reply_trimmer);
	g_test_add_func ("/trim/corpus/talon", test_corpus_talon);
	int rc = g_test_run ();
	g_mime_shutdown ();
	return rc;
}
