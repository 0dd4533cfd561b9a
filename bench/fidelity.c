/* bench/fidelity.c - the mail fidelity report (issue 9): how much of the
 * shared corpus of real mail maildesk reads as the corpus expects.
 *
 * Every message goes through the real ingest path (md_ingest_one into a
 * desk of its own, in a temporary directory) and is judged by what the
 * database then holds:
 *   - mime sets: messages ingested, stored text valid UTF-8, attachments
 *     matching the .ref/.json expectations (names, MIME types, decoded
 *     sizes; scored as tests/test-message.c does, tests/corpus.c);
 *   - replies sets: each reply delivered as a comment on a ticket, and
 *     the stored comment body compared with the expected new text.
 * Every mismatch is listed with its reason; doc/VIOLATIONS.md explains
 * those marked as deliberate.
 *
 *   make fidelity       or       bench/fidelity CORPUS_DIR
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "corpus.h"
#include "desk.h"
#include "ingest.h"
#include "md.h"
#include "message.h"
#include "token.h"

typedef struct {
	char *tmp_root;
	const char *srcdir;
	GPtrArray *mismatches;   /* char*: every line of the mismatch list */
	guint desks;
} Bench;

/* ---- one desk per message ---- */

static MdDesk *
desk_new (Bench *b)
{
	g_autoptr (GError) error = NULL;
	MdConf *conf = md_conf_new_defaults ();
	g_free (conf->data_dir);
	conf->data_dir = g_strdup_printf ("%s/desk-%u", b->tmp_root, b->desks++);
	g_free (conf->rules);
	conf->rules = g_build_filename (b->srcdir, "filters", "default.rules", NULL);
	g_free (conf->templates);
	conf->templates = g_build_filename (b->srcdir, "templates", NULL);
	MdDesk *desk = md_desk_open (conf, &error);
	if (!desk)
		g_error ("desk: %s", error->message);
	return desk;
}

static char *
spool_bytes (MdDesk *desk, const char *data, gsize len, gint64 *size_r, GError **error)
{
	MdSpoolWriter *w = md_spool_writer_new (desk->spool, MD_SPOOL_RAW, 0, error);
	char *sha = NULL;
	if (!w || !md_spool_writer_write (w, data, len, error))
		return NULL;
	*size_r = md_spool_writer_size (w);
	if (!md_spool_writer_commit (w, &sha, error))
		return NULL;
	return sha;
}

/* Ingests DATA as `deliver` would, to RECIPIENT (NULL: the intake). */
static gboolean
ingest (MdDesk *desk, MdStore *store, const char *data, gsize len, const char *recipient, MdIngestResult *r,
        GError **error)
{
	gint64 size = 0;
	g_autofree char *sha = spool_bytes (desk, data, len, &size, error);
	if (!sha)
		return FALSE;
	const char *recipients[] = { recipient ? recipient : desk->desk_address, NULL };
	MdEnvelope env = { "sender@example.org", recipients };
	return md_ingest_one (desk, store, sha, size, &env, r, error);
}

/* ---- what the database holds ---- */

typedef struct {
	GPtrArray *strings;      /* owns the texts of actual */
	GArray *actual;          /* MdCorpusActual */
	gboolean stored;         /* a message row exists */
	gboolean valid_utf8;     /* every text column of it and its attachments */
	char *body, *full_text;
} Stored;

static void
stored_clear (Stored *s)
{
	g_clear_pointer (&s->strings, g_ptr_array_unref);
	g_clear_pointer (&s->actual, g_array_unref);
	g_clear_pointer (&s->body, g_free);
	g_clear_pointer (&s->full_text, g_free);
}

static const char *
keep_text (Stored *s, const unsigned char *text)
{
	char *copy = g_strdup (text ? (const char *) text : "");
	if (!g_utf8_validate (copy, -1, NULL))
		s->valid_utf8 = FALSE;
	g_ptr_array_add (s->strings, copy);
	return copy;
}

/* The HTML a body was made from is stored as body.html (body-N.html);
 * the store keeps no other mark of it. */
static gboolean
is_body_html (const char *name, const char *type)
{
	return strcmp (type, "text/html") == 0 && g_regex_match_simple ("^body(-[0-9]+)?\\.html$", name, 0, 0);
}

static void
read_stored (MdStore *store, gint64 message_row_id, Stored *s)
{
	sqlite3 *db = md_store_db (store);
	sqlite3_stmt *st = NULL;
	memset (s, 0, sizeof *s);
	s->strings = g_ptr_array_new_with_free_func (g_free);
	s->actual = g_array_new (FALSE, TRUE, sizeof (MdCorpusActual));
	s->valid_utf8 = TRUE;

	/* full_text '' means the same as body (store.c) */
	sqlite3_prepare_v2 (db, "SELECT body, CASE full_text WHEN '' THEN body ELSE full_text END, subject, from_name, flag "
	                        "FROM messages WHERE id = ?", -1, &st, NULL);
	sqlite3_bind_int64 (st, 1, message_row_id);
	if (sqlite3_step (st) == SQLITE_ROW) {
		s->stored = TRUE;
		s->body = g_strdup (keep_text (s, sqlite3_column_text (st, 0)));
		s->full_text = g_strdup (keep_text (s, sqlite3_column_text (st, 1)));
		for (int i = 2; i < 5; i++)
			keep_text (s, sqlite3_column_text (st, i));
	}
	sqlite3_finalize (st);

	sqlite3_prepare_v2 (db, "SELECT filename, content_type, size, depth FROM attachments WHERE message_id = ? ORDER BY id",
	                    -1, &st, NULL);
	sqlite3_bind_int64 (st, 1, message_row_id);
	while (sqlite3_step (st) == SQLITE_ROW) {
		MdCorpusActual a = { 0 };
		a.filename = keep_text (s, sqlite3_column_text (st, 0));
		a.content_type = keep_text (s, sqlite3_column_text (st, 1));
		a.size = sqlite3_column_int64 (st, 2);
		a.depth = sqlite3_column_int (st, 3);
		a.is_body = is_body_html (a.filename, a.content_type);
		g_array_append_val (s->actual, a);
	}
	sqlite3_finalize (st);
}

/* ---- mime sets ---- */

typedef struct {
	guint messages, ingested, valid_utf8;
	guint cases, not_compared;
	gint64 slowest_us;
	char *slowest;
} MimeFigures;

static void
add_mismatch (Bench *b, char *line)
{
	g_ptr_array_add (b->mismatches, line);
}

/* Ingests one corpus message into a desk of its own; *s receives what
 * was stored. */
static void
ingest_file (Bench *b, const char *label, const char *path, MimeFigures *f, Stored *s)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *data = NULL;
	gsize len = 0;
	memset (s, 0, sizeof *s);
	f->messages++;
	if (!g_file_get_contents (path, &data, &len, &error)) {
		add_mismatch (b, g_strdup_printf ("%s: unreadable: %s", label, error->message));
		return;
	}
	g_autoptr (MdDesk) desk = desk_new (b);
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	if (!store)
		g_error ("store: %s", error->message);
	MdIngestResult r = { 0 };
	gint64 t0 = g_get_monotonic_time ();
	gboolean ok = ingest (desk, store, data, len, NULL, &r, &error);
	gint64 took = g_get_monotonic_time () - t0;
	g_free (r.key);
	if (took > f->slowest_us) {
		f->slowest_us = took;
		g_free (f->slowest);
		f->slowest = g_strdup (label);
	}
	if (!ok) {
		add_mismatch (b, g_strdup_printf ("%s: not ingested: %s", label, error->message));
		return;
	}
	read_stored (store, r.message_row_id, s);
	if (!s->stored) {
		add_mismatch (b, g_strdup_printf ("%s: ingested but no message row", label));
		return;
	}
	f->ingested++;
	if (s->valid_utf8)
		f->valid_utf8++;
	else
		add_mismatch (b, g_strdup_printf ("%s: invalid UTF-8 stored", label));
}

static void
report_mime_set (Bench *b, const char *corpus, const char *set, const char *kind, MdCorpusScore *total)
{
	g_autofree char *dir = g_build_filename (corpus, "mime", set, NULL);
	g_autofree char *prefix = g_strconcat (set, "/", NULL);
	g_autoptr (GError) error = NULL;
	g_autoptr (GPtrArray) files = md_corpus_messages (dir);
	g_autoptr (GPtrArray) cases = md_corpus_cases (dir, kind, prefix, &error);
	if (!cases)
		g_error ("%s: %s", set, error->message);
	g_autoptr (GHashTable) stored = g_hash_table_new (g_str_hash, g_str_equal);
	Stored *all = g_new0 (Stored, files->len);
	MimeFigures f = { 0 };

	for (guint i = 0; i < files->len; i++) {
		g_autofree char *base = g_path_get_basename (files->pdata[i]);
		g_autofree char *label = g_strconcat (prefix, base, NULL);
		ingest_file (b, label, files->pdata[i], &f, &all[i]);
		g_hash_table_insert (stored, files->pdata[i], &all[i]);
	}
	MdCorpusScore score = { 0 };
	for (guint i = 0; i < cases->len; i++) {
		MdCorpusCase *c = cases->pdata[i];
		Stored *s = c->message ? g_hash_table_lookup (stored, c->message) : NULL;
		if (!c->expected) {
			f.not_compared++;
			add_mismatch (b, g_strdup_printf ("%s: not compared: %s", c->label, c->not_compared));
			continue;
		}
		f.cases++;
		MdCorpusActual none = { 0 };
		if (!s || !s->stored)
			md_corpus_score (c, &none, 0, &score);
		else
			md_corpus_score (c, (MdCorpusActual *) s->actual->data, s->actual->len, &score);
	}
	for (guint i = 0; score.misses && i < score.misses->len; i++)
		add_mismatch (b, g_strdup (score.misses->pdata[i]));

	g_autofree char *expected = g_strdup_printf ("%u/%u", score.matched, score.expected);
	printf ("%-31s %3u/%-3u %3u/%-3u %9s %6.1f %%  %4u %5u  %4u\n", set, f.ingested, f.messages, f.valid_utf8,
	        f.messages, expected, score.expected ? 100.0 * score.matched / score.expected : 100.0, score.excused,
	        score.extra, f.not_compared);
	total->expected += score.expected;
	total->matched += score.matched;
	total->excused += score.excused;
	total->extra += score.extra;
	if (f.slowest_us > 1000 * 1000)
		add_mismatch (b, g_strdup_printf ("%s: slow: %.1f s to ingest", f.slowest,
		                                  f.slowest_us / 1e6));
	g_free (f.slowest);
	md_corpus_score_clear (&score);
	for (guint i = 0; i < files->len; i++)
		stored_clear (&all[i]);
	g_free (all);
}

/* ---- replies sets ---- */


/* The non-blank lines of a normalized text, joined by "\n". */
static char *
nonblank (const char *text)
{
	g_autofree char *norm = md_corpus_normalize_reply (text);
	g_auto (GStrv) lines = g_strsplit (norm, "\n", -1);
	GString *out = g_string_new (NULL);
	for (int i = 0; lines[i]; i++)
		if (*lines[i])
			g_string_append_printf (out, "%s%s", out->len ? "\n" : "", lines[i]);
	return g_string_free (out, FALSE);
}

/* talon keeps signatures, maildesk cuts them (doc/VIOLATIONS.md): the
 * reply agrees when maildesk's text is talon's minus a trailing block
 * that, in the received text, directly follows it. */
static gboolean
agrees_without_signature (const char *want, const char *got, const char *full)
{
	g_autofree char *w = nonblank (want), *g = nonblank (got), *f = nonblank (full);
	gsize glen = strlen (g);
	return *g && strlen (w) > glen && g_str_has_prefix (w, g) && w[glen] == '\n' && g_str_has_prefix (f, w);
}

typedef struct {
	MdDesk *desk;
	MdStore *store;
	char *address;     /* the ticket's reply address */
	guint sent;
} ReplyDesk;

/* A desk with one ticket from customer@example.org to reply to. */
static void
reply_desk_open (Bench *b, ReplyDesk *rd)
{
	g_autoptr (GError) error = NULL;
	rd->desk = desk_new (b);
	rd->store = md_desk_open_store (rd->desk, FALSE, &error);
	if (!rd->store)
		g_error ("store: %s", error->message);
	const char *seed = "From: Customer <customer@example.org>\nTo: support@example.com\nSubject: Printer\n"
	                   "Message-ID: <seed@example.org>\nMIME-Version: 1.0\n"
	                   "Content-Type: text/plain; charset=utf-8\n\nThe printer is broken.\n";
	MdIngestResult r = { 0 };
	if (!ingest (rd->desk, rd->store, seed, strlen (seed), NULL, &r, &error) || !r.ticket_id)
		g_error ("seed ticket: %s", error ? error->message : "no ticket");
	g_free (r.key);
	rd->address = md_address_for_ticket (&rd->desk->addressing, r.ticket_id);
}

static void
reply_desk_close (ReplyDesk *rd)
{
	md_store_close (rd->store);
	md_desk_free (rd->desk);
	g_free (rd->address);
}

/* Delivers a reply to the seed ticket; *s receives the stored comment. */
static gboolean
deliver_reply (Bench *b, ReplyDesk *rd, const char *label, const char *data, gsize len, Stored *s)
{
	g_autoptr (GError) error = NULL;
	MdIngestResult r = { 0 };
	memset (s, 0, sizeof *s);
	if (!ingest (rd->desk, rd->store, data, len, rd->address, &r, &error)) {
		add_mismatch (b, g_strdup_printf ("%s: not ingested: %s", label, error->message));
		return FALSE;
	}
	g_free (r.key);
	read_stored (rd->store, r.message_row_id, s);
	if (!s->stored || r.duplicate || r.new_ticket) {
		add_mismatch (b, g_strdup_printf ("%s: not stored as a comment", label));
		return FALSE;
	}
	if (!s->valid_utf8)
		add_mismatch (b, g_strdup_printf ("%s: invalid UTF-8 stored", label));
	return TRUE;
}

static char *
first_line (const char *text)
{
	g_autofree char *norm = md_corpus_normalize_reply (text);
	char *nl = strchr (norm, '\n');
	return nl ? g_strdup_printf ("%.*s ...", (int) MIN (nl - norm, 60), norm) : g_strdup_printf ("%.60s", norm);
}

static void
print_reply_row (const char *set, guint ingested, guint n, guint exact, guint agree)
{
	g_autofree char *ex = g_strdup_printf ("%u/%u", exact, n);
	printf ("%-31s %3u/%-3u %9s %6.1f %%", set, ingested, n, ex, n ? 100.0 * exact / n : 100.0);
	if (agree > exact)
		printf ("  (%u/%u counting a cut signature as agreeing)", agree, n);
	printf ("\n");
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
	return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
report_email_reply_trimmer (Bench *b, const char *corpus)
{
	g_autofree char *dir = g_build_filename (corpus, "replies", "email_reply_trimmer", NULL);
	g_autofree char *emails = g_build_filename (dir, "emails", NULL);
	g_autoptr (GDir) d = g_dir_open (emails, 0, NULL);
	g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
	const char *name;
	while (d && (name = g_dir_read_name (d)))
		if (g_str_has_suffix (name, ".txt"))
			g_ptr_array_add (names, g_strdup (name));
	g_ptr_array_sort (names, compare_names);
	ReplyDesk rd = { 0 };
	reply_desk_open (b, &rd);
	guint ingested = 0, exact = 0;
	for (guint i = 0; i < names->len; i++) {
		name = names->pdata[i];
		g_autofree char *label = g_strdup_printf ("replies/email_reply_trimmer/%s", name);
		g_autofree char *in_path = g_build_filename (emails, name, NULL);
		g_autofree char *want_path = g_build_filename (dir, "trimmed", name, NULL);
		g_autofree char *text = NULL, *want = NULL;
		if (!g_file_get_contents (in_path, &text, NULL, NULL) || !g_file_get_contents (want_path, &want, NULL, NULL)) {
			add_mismatch (b, g_strdup_printf ("%s: unreadable", label));
			continue;
		}
		/* the corpus has bodies only: the customer replies by mail */
		g_autofree char *mail = g_strdup_printf (
			"From: Customer <customer@example.org>\nTo: %s\nSubject: Re: Printer\n"
			"Message-ID: <reply-%u@example.org>\nMIME-Version: 1.0\n"
			"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n%s",
			rd.address, i, text);
		Stored s;
		if (deliver_reply (b, &rd, label, mail, strlen (mail), &s)) {
			ingested++;
			g_autofree char *got = md_corpus_normalize_reply (s.body), *expected = md_corpus_normalize_reply (want);
			if (strcmp (got, expected) == 0) {
				exact++;
			} else {
				g_autofree char *g1 = first_line (got), *w1 = first_line (expected);
				add_mismatch (b, g_strdup_printf ("%s: trimmed to \"%s\", expected \"%s\"", label, g1, w1));
			}
		}
		stored_clear (&s);
	}
	reply_desk_close (&rd);
	print_reply_row ("replies/email_reply_trimmer", ingested, names->len, exact, exact);
}

static void
report_talon (Bench *b, const char *corpus)
{
	g_autofree char *dir = g_build_filename (corpus, "replies", "talon_standard_replies", NULL);
	g_autoptr (GPtrArray) files = md_corpus_messages (dir);
	ReplyDesk rd = { 0 };
	reply_desk_open (b, &rd);
	guint ingested = 0, exact = 0, agree = 0;
	for (guint i = 0; i < files->len; i++) {
		g_autofree char *base = g_path_get_basename (files->pdata[i]);
		g_autofree char *label = g_strdup_printf ("replies/talon_standard_replies/%s", base);
		g_autofree char *stem = g_strndup (files->pdata[i], strlen (files->pdata[i]) - 4);
		g_autofree char *reply_path = g_strconcat (stem, "_reply_text", NULL);
		g_autofree char *data = NULL, *want = NULL;
		gsize len = 0;
		if (!g_file_get_contents (files->pdata[i], &data, &len, NULL)) {
			add_mismatch (b, g_strdup_printf ("%s: unreadable", label));
			continue;
		}
		if (!g_file_get_contents (reply_path, &want, NULL, NULL))
			want = g_strdup ("Hello");
		Stored s;
		if (deliver_reply (b, &rd, label, data, len, &s)) {
			ingested++;
			g_autofree char *got = md_corpus_normalize_reply (s.body), *expected = md_corpus_normalize_reply (want);
			if (strcmp (got, expected) == 0) {
				exact++;
				agree++;
			} else if (agrees_without_signature (expected, got, s.full_text)) {
				agree++;
				add_mismatch (b, g_strdup_printf ("%s: signature cut, which talon keeps "
				                                  "[deviation, see doc/VIOLATIONS.md]", label));
			} else {
				g_autofree char *g1 = first_line (got), *w1 = first_line (expected);
				add_mismatch (b, g_strdup_printf ("%s: trimmed to \"%s\", expected \"%s\"", label, g1, w1));
			}
		}
		stored_clear (&s);
	}
	reply_desk_close (&rd);
	print_reply_row ("replies/talon_standard_replies", ingested, files->len, exact, agree);
}

int
main (int argc, char **argv)
{
	const char *corpus = argc > 1 ? argv[1] : g_getenv ("MD_CORPUS");
	if (!corpus) {
		fprintf (stderr, "usage: %s CORPUS_DIR (or set MD_CORPUS)\n", argv[0]);
		return 2;
	}
	g_autoptr (GError) error = NULL;
	Bench b = { 0 };
	b.srcdir = g_getenv ("MD_TOP_SRCDIR") ? g_getenv ("MD_TOP_SRCDIR") : ".";
	b.tmp_root = g_dir_make_tmp ("maildesk-fidelity-XXXXXX", &error);
	if (!b.tmp_root)
		g_error ("%s", error->message);
	b.mismatches = g_ptr_array_new_with_free_func (g_free);
	md_message_init ();
	gint64 t0 = g_get_monotonic_time ();

	printf ("%-31s %7s %7s %9s %8s  %4s %5s  %4s\n", "attachments", "ingest", "utf-8", "exact", "", "dev.",
	        "extra", "n.c.");
	static const struct { const char *set, *kind; } mime_sets[] = {
		{ "mime-tools", "mime-tools" },
		{ "stalwart/rfc", "stalwart" },
		{ "stalwart/thirdparty", "stalwart" },
		{ "stalwart/malformed", "stalwart" },
	};
	MdCorpusScore total = { 0 };
	for (gsize i = 0; i < G_N_ELEMENTS (mime_sets); i++)
		report_mime_set (&b, corpus, mime_sets[i].set, mime_sets[i].kind, &total);
	g_autofree char *all = g_strdup_printf ("%u/%u", total.matched, total.expected);
	printf ("%-31s %7s %7s %9s %6.1f %%  %4u %5u\n", "all", "", "", all,
	        total.expected ? 100.0 * total.matched / total.expected : 100.0, total.excused, total.extra);
	printf ("\n%-31s %7s %9s\n", "trimming", "ingest", "exact");
	report_email_reply_trimmer (&b, corpus);
	report_talon (&b, corpus);

	printf ("\nmismatches (%u):\n", b.mismatches->len);
	for (guint i = 0; i < b.mismatches->len; i++)
		printf ("  %s\n", (const char *) b.mismatches->pdata[i]);
	fprintf (stderr, "fidelity: %.1f s, %u desks\n", (g_get_monotonic_time () - t0) / 1e6, b.desks);

	g_ptr_array_unref (b.mismatches);
	g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", b.tmp_root);
	int rc = system (cmd) == 0 ? 0 : 1;
	g_free (b.tmp_root);
	return rc;
}
