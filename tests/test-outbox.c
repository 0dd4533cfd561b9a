/* test-outbox.c - the outbox against a real SMTP server on loopback
 * (tests/smtp_catcher.py, Debian's aiosmtpd): what is queued arrives
 * byte for byte and exactly once; outages and 4xx back off; 5xx fails
 * with the server's words; the sender thread wakes and stops in time. */
#include "config.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include <glib/gstdio.h>
#include <string.h>

#include "ingest.h"
#include "md.h"
#include "outbox.h"
#include "outgoing.h"
#include "smtp.h"
#include "trim.h"
#include "writer.h"

#define T0 1796112000 /* 2026-12-01T08:00:00Z */
#define FROM "support@support.example.com"

typedef struct {
	char *dir;
	char *caught;
	char *control;
	guint16 port;
	GSubprocess *catcher;
	MdDesk *desk;
	MdStore *store;
} Fixture;

static const char *
top_srcdir (void)
{
	const char *d = g_getenv ("MD_TOP_SRCDIR");
	return d ? d : ".";
}

/* A loopback port that nothing listens on right now. */
static guint16
free_port (void)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error (error);
	g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
	g_assert_true (g_socket_bind (sock, any, FALSE, &error));
	g_autoptr (GSocketAddress) bound = g_socket_get_local_address (sock, &error);
	g_assert_no_error (error);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
catcher_start (Fixture *fx)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *script = g_build_filename (top_srcdir (), "tests", "smtp_catcher.py", NULL);
	g_autofree char *port = g_strdup_printf ("%u", fx->port);
	fx->catcher = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "python3", script, "--dir", fx->caught,
	                                "--port", port, "--control", fx->control, NULL);
	g_assert_no_error (error);
	g_autoptr (GDataInputStream) out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (fx->catcher));
	g_autofree char *line = g_data_input_stream_read_line (out, NULL, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (line, ==, "ready");
}

static void
catcher_stop (Fixture *fx)
{
	if (!fx->catcher)
		return;
	g_subprocess_send_signal (fx->catcher, SIGTERM);
	g_subprocess_wait (fx->catcher, NULL, NULL);
	g_clear_object (&fx->catcher);
}

static void
set_smtp_url (Fixture *fx, guint16 port)
{
	g_free (fx->desk->conf->smtp_url);
	fx->desk->conf->smtp_url = g_strdup_printf ("smtp://127.0.0.1:%u", port);
}

static void
fixture_setup (Fixture *fx, gconstpointer start_catcher)
{
	g_autoptr (GError) error = NULL;
	fx->dir = g_dir_make_tmp ("md-outbox-XXXXXX", &error);
	g_assert_no_error (error);
	fx->caught = g_build_filename (fx->dir, "caught", NULL);
	fx->control = g_build_filename (fx->dir, "control", NULL);
	fx->port = free_port ();

	MdConf *conf = md_conf_new_defaults ();
	g_free (conf->data_dir);
	conf->data_dir = g_build_filename (fx->dir, "var", NULL);
	g_free (conf->rules);
	conf->rules = g_build_filename (top_srcdir (), "filters", "default.rules", NULL);
	g_free (conf->templates);
	conf->templates = g_build_filename (top_srcdir (), "templates", NULL);
	g_mkdir_with_parents (conf->data_dir, 0700);
	fx->desk = md_desk_open (conf, &error);
	g_assert_no_error (error);
	set_smtp_url (fx, fx->port);
	fx->store = md_desk_open_store (fx->desk, FALSE, &error);
	g_assert_no_error (error);
	if (start_catcher)
		catcher_start (fx);
}

static void
fixture_teardown (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	catcher_stop (fx);
	md_store_close (fx->store);
	md_desk_free (fx->desk);
	md_remove_tree (fx->dir);
	g_free (fx->dir);
	g_free (fx->caught);
	g_free (fx->control);
}

static void
set_control (Fixture *fx, const char *rules)
{
	g_assert_true (g_file_set_contents (fx->control, rules, -1, NULL));
}

static char *
spool (Fixture *fx, const char *bytes)
{
	g_autoptr (GError) error = NULL;
	MdSpoolWriter *w = md_spool_writer_new (fx->desk->spool, MD_SPOOL_RAW, 0, &error);
	g_assert_no_error (error);
	g_assert_true (md_spool_writer_write (w, bytes, strlen (bytes), &error));
	char *hex = NULL;
	g_assert_true (md_spool_writer_commit (w, &hex, &error));
	return hex;
}

static void
enqueue (Fixture *fx, const char *sha, const char *const *rcpts)
{
	g_autoptr (GError) error = NULL;
	g_assert_true (md_outbox_enqueue (fx->store, 0, "ack", FROM, rcpts, sha, "m1@support.example.com", &error));
	g_assert_no_error (error);
}

static MdOutboxStats
flush (Fixture *fx, gint64 now)
{
	g_autoptr (GError) error = NULL;
	MdOutboxStats stats;
	g_assert_true (md_outbox_flush (fx->desk, fx->store, now, &stats, &error));
	g_assert_no_error (error);
	return stats;
}

static MdOutboxEntry *
row (Fixture *fx, gint64 id)
{
	g_autoptr (GPtrArray) all = md_outbox_list (fx->store, NULL, NULL);
	g_assert_nonnull (all);
	for (guint i = 0; i < all->len; i++) {
		MdOutboxEntry *e = all->pdata[i];
		if (e->id == id)
			return g_ptr_array_steal_index (all, i);
	}
	g_assert_not_reached ();
}

static guint
caught_count (Fixture *fx)
{
	g_autoptr (GDir) dir = g_dir_open (fx->caught, 0, NULL);
	guint n = 0;
	const char *name;
	while (dir && (name = g_dir_read_name (dir)))
		n += g_str_has_suffix (name, ".eml");
	return n;
}

static char *
caught_file (Fixture *fx, guint n, const char *suffix)
{
	g_autofree char *name = g_strdup_printf ("%04u%s", n, suffix);
	g_autofree char *path = g_build_filename (fx->caught, name, NULL);
	char *text = NULL;
	g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
	return text;
}

#define MESSAGE "From: Support <support@support.example.com>\r\n" \
	"To: alice@customer.example\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n" \
	"Message-ID: <m1@support.example.com>\r\n\r\n" \
	"Hello,\r\n.a line that starts with a dot\r\n.\r\nGr\xc3\xbc\xc3\x9f" "e\r\n"

static void
test_enqueue_rows (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *rcpts[] = { "alice@customer.example", "bob@customer.example", "Alice@Customer.example", NULL };
	g_assert_true (md_outbox_enqueue (fx->store, 0, "ack", FROM, rcpts, sha, "m1@support.example.com", &error));
	g_autoptr (GPtrArray) all = md_outbox_list (fx->store, NULL, &error);
	g_assert_cmpuint (all->len, ==, 2);
	MdOutboxEntry *a = all->pdata[0], *b = all->pdata[1];
	g_assert_cmpstr (a->rcpt_to, ==, "alice@customer.example");
	g_assert_cmpstr (b->rcpt_to, ==, "bob@customer.example");
	g_assert_cmpstr (a->state, ==, "queued");
	g_assert_cmpstr (a->mail_from, ==, FROM);
	g_assert_cmpstr (a->raw_sha256, ==, sha);
	g_assert_cmpstr (a->message_id, ==, "m1@support.example.com");
	g_assert_cmpint (a->created_at, ==, T0);
	g_assert_cmpint (a->next_attempt_at, ==, T0);
	g_assert_cmpint (a->attempts, ==, 0);
	g_assert_cmpint (a->ticket_id, ==, 0);

	/* the caller's transaction decides: rolled back, nothing is queued */
	const char *carol[] = { "carol@customer.example", NULL };
	g_assert_true (md_store_begin (fx->store, &error));
	g_assert_true (md_outbox_enqueue (fx->store, 0, "ack", FROM, carol, sha, "m2@support.example.com", &error));
	md_store_rollback (fx->store);
	g_autoptr (GPtrArray) after = md_outbox_list (fx->store, NULL, &error);
	g_assert_cmpuint (after->len, ==, 2);
}

static void
test_enqueue_bytes (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	g_autoptr (GBytes) raw = g_bytes_new_static (MESSAGE, strlen (MESSAGE));
	const char *alice[] = { "alice@customer.example", NULL };
	g_assert_true (md_outbox_enqueue_bytes (fx->store, 0, "ack", FROM, alice, raw, "m1@support.example.com",
	                                        &error));
	g_assert_no_error (error);
	/* The bytes wait in the database, not in the spool: no fsync of their own. */
	g_autoptr (MdOutboxEntry) e = row (fx, 1);
	g_autofree char *path = md_spool_path (fx->desk->spool, MD_SPOOL_RAW, e->raw_sha256);
	g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
	MdOutboxStats st = flush (fx, T0);
	g_assert_cmpuint (st.sent, ==, 1);
	g_autofree char *got = caught_file (fx, 1, ".eml");
	g_assert_cmpstr (got, ==, MESSAGE);
}

/* Queued bytes are filed under their SHA-256 as GLib writes it (md_sha256_hex
 * computes it with GnuTLS): every length around SHA-256's 64-byte blocks
 * and its 55/56-byte padding edge, and larger ones, of random bytes. */
static void
test_blob_hash (void)
{
	g_autoptr (GRand) rand = g_rand_new_with_seed (20261201);
	g_autofree guint8 *data = g_malloc (70000);
	for (gsize i = 0; i < 70000; i++)
		data[i] = (guint8) g_rand_int (rand);
	static const gsize big[] = { 1000, 4096, 4097, 65535, 70000 };
	for (gsize len = 0; len < 300 + G_N_ELEMENTS (big); len++) {
		gsize n = len < 300 ? len : big[len - 300];
		g_autofree char *expected = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, n);
		g_autofree char *got = md_sha256_hex (data, n);
		g_assert_cmpstr (got, ==, expected);
	}
	g_autofree char *empty = md_sha256_hex ("", 0);
	g_assert_cmpstr (empty, ==, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* The desk's mail is queued as a spec (outgoing.h): the sender composes
 * it and the catcher gets the message, with the Message-ID fixed when it
 * was queued; a spec that cannot be composed fails with the reason, and
 * is not retried. */
static void
test_enqueue_spec (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	MdMailbox to[] = { { "Alice", "alice@customer.example" } };
	MdOutgoing o = {
		.desk_name = "Example Support", .desk_address = "support@support.example.com", .to = to, .n_to = 1,
		.ticket_key = "SUP-3", .subject = "We got your message", .body = "Thanks, Alice.\n",
	};
	g_autofree char *id = NULL;
	g_autoptr (GBytes) spec = md_outgoing_spec_new (&o, &id, &error);
	g_assert_no_error (error);
	const char *alice[] = { "alice@customer.example", NULL };
	g_assert_true (md_outbox_enqueue_bytes (fx->store, 0, "ack", FROM, alice, spec, id, &error));
	static const char damaged_spec[] = "\0mdspec1\n{\"to\": 7}";
	g_autoptr (GBytes) damaged = g_bytes_new_static (damaged_spec, sizeof damaged_spec - 1);
	g_assert_true (md_outbox_enqueue_bytes (fx->store, 0, "ack", FROM, alice, damaged, "m9@support.example.com",
	                                        &error));
	g_assert_no_error (error);

	MdOutboxStats st = flush (fx, T0);
	g_assert_cmpuint (st.sent, ==, 1);
	g_assert_cmpuint (st.failed, ==, 1);
	g_autofree char *got = caught_file (fx, 1, ".eml");
	g_autofree char *want_id = g_strdup_printf ("Message-Id: <%s>", id);
	g_assert_nonnull (strstr (got, want_id));
	g_assert_nonnull (strstr (got, "Subject: [SUP-3] We got your message"));
	g_assert_nonnull (strstr (got, "Thanks, Alice."));
	g_autoptr (MdOutboxEntry) bad = row (fx, 2);
	g_assert_cmpstr (bad->state, ==, "failed");
	g_assert_true (g_str_has_prefix (bad->last_error, "cannot compose: damaged queued message"));
	st = flush (fx, T0 + 100000);
	g_assert_cmpuint (st.sent + st.failed + st.deferred, ==, 0);
	g_assert_cmpuint (caught_count (fx), ==, 1);
}

static void
test_enqueue_refuses (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *good[] = { "alice@customer.example", NULL };
	const char *none[] = { NULL };
	const char *crlf[] = { "alice@customer.example\r\nRCPT TO:<x@evil.example>", NULL };
	const char *space[] = { "alice @customer.example", NULL };
	const char *angle[] = { "<alice@customer.example>", NULL };
	const char *empty[] = { "", NULL };
	const char *no_at[] = { "alice", NULL };
	struct {
		const char *what, *kind, *from, *const *rcpts, *sha, *msgid;
	} cases[] = {
		{ "no recipients", "ack", FROM, none, sha, "m@x" },
		{ "CRLF in a recipient", "ack", FROM, crlf, sha, "m@x" },
		{ "space in a recipient", "ack", FROM, space, sha, "m@x" },
		{ "brackets in a recipient", "ack", FROM, angle, sha, "m@x" },
		{ "empty recipient", "ack", FROM, empty, sha, "m@x" },
		{ "recipient without a domain", "ack", FROM, no_at, sha, "m@x" },
		{ "CRLF in the sender", "ack", "a@b\r\nDATA", good, sha, "m@x" },
		{ "not a spool hash", "ack", FROM, good, "../../etc/passwd", "m@x" },
		{ "upper-case hash", "ack", FROM, good, "ABCDEF", "m@x" },
		{ "newline in the Message-ID", "ack", FROM, good, sha, "m@x\nBcc: y" },
		{ "no kind", "", FROM, good, sha, "m@x" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (GError) error = NULL;
		g_test_message ("%s", cases[i].what);
		g_assert_false (md_outbox_enqueue (fx->store, 0, cases[i].kind, cases[i].from, cases[i].rcpts,
		                                   cases[i].sha, cases[i].msgid, &error));
		g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	}
	g_autoptr (GPtrArray) all = md_outbox_list (fx->store, NULL, NULL);
	g_assert_cmpuint (all->len, ==, 0);
}

static void
test_count_recent (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *alice[] = { "alice@customer.example", NULL };
	const char *bob[] = { "bob@customer.example", NULL };
	const char *times[] = { "2026-12-01T06:00:00Z", "2026-12-01T07:30:00Z", "2026-12-01T07:45:00Z" };
	for (gsize i = 0; i < G_N_ELEMENTS (times); i++) {
		g_setenv ("MAILDESK_NOW", times[i], TRUE);
		enqueue (fx, sha, alice);
	}
	enqueue (fx, sha, bob);
	g_assert_true (md_outbox_enqueue (fx->store, 0, "status", FROM, alice, sha, "m3@x", NULL));
	g_assert_cmpuint (md_outbox_count_recent (fx->store, "alice@customer.example", "ack", T0 - 3600), ==, 2);
	g_assert_cmpuint (md_outbox_count_recent (fx->store, "alice@customer.example", "ack", 0), ==, 3);
	g_assert_cmpuint (md_outbox_count_recent (fx->store, "bob@customer.example", "ack", 0), ==, 1);
	g_assert_cmpuint (md_outbox_count_recent (fx->store, "carol@customer.example", "ack", 0), ==, 0);
	g_setenv ("MAILDESK_NOW", "2026-12-01T08:00:00Z", TRUE);
}

static void
test_delivered_exactly (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autofree char *sha = spool (fx, MESSAGE);
	g_autofree char *lf_sha = spool (fx, "Subject: bare LF\n\nline one\nline two\n");
	const char *alice[] = { "alice@customer.example", NULL };
	enqueue (fx, sha, alice);
	g_assert_true (md_outbox_enqueue (fx->store, 0, "ack", "", alice, lf_sha, "m2@x", NULL));

	MdOutboxStats st = flush (fx, T0 + 5);
	g_assert_cmpuint (st.sent, ==, 2);
	g_assert_cmpuint (st.deferred + st.failed, ==, 0);
	g_assert_cmpuint (caught_count (fx), ==, 2);
	g_autofree char *got = caught_file (fx, 1, ".eml");
	g_assert_cmpstr (got, ==, MESSAGE);
	g_autofree char *envelope = caught_file (fx, 1, ".json");
	g_assert_nonnull (strstr (envelope, "\"mail_from\": \"" FROM "\""));
	g_assert_nonnull (strstr (envelope, "\"rcpt_tos\": [\"alice@customer.example\"]"));
	g_autofree char *crlf = caught_file (fx, 2, ".eml");
	g_assert_cmpstr (crlf, ==, "Subject: bare LF\r\n\r\nline one\r\nline two\r\n");
	g_autofree char *null_sender = caught_file (fx, 2, ".json");
	g_assert_nonnull (strstr (null_sender, "\"mail_from\": \"<>\""));

	g_autoptr (MdOutboxEntry) e = row (fx, 1);
	g_assert_cmpstr (e->state, ==, "sent");
	g_assert_cmpint (e->sent_at, ==, T0 + 5);
	g_assert_cmpint (e->attempts, ==, 1);
	g_assert_null (e->last_error);

	/* flushing again sends nothing twice */
	st = flush (fx, T0 + 100000);
	g_assert_cmpuint (st.sent + st.deferred + st.failed, ==, 0);
	g_assert_cmpuint (caught_count (fx), ==, 2);
}

static void
test_outage (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *both[] = { "alice@customer.example", "bob@customer.example", NULL };
	enqueue (fx, sha, both);

	MdOutboxStats st = flush (fx, T0);
	g_assert_cmpuint (st.deferred, ==, 2);
	for (gint64 id = 1; id <= 2; id++) {
		g_autoptr (MdOutboxEntry) e = row (fx, id);
		g_assert_cmpstr (e->state, ==, "queued");
		g_assert_cmpint (e->attempts, ==, 1);
		g_assert_cmpint (e->next_attempt_at, ==, T0 + 60);
		g_assert_nonnull (e->last_error);
		g_assert_true (strstr (e->last_error, "onnect") != NULL);
	}

	catcher_start (fx);
	st = flush (fx, T0 + 30);
	g_assert_cmpuint (st.sent + st.deferred, ==, 0);  /* not due yet */
	st = flush (fx, T0 + 60);
	g_assert_cmpuint (st.sent, ==, 2);
	g_assert_cmpuint (caught_count (fx), ==, 2);
	st = flush (fx, T0 + 7200);
	g_assert_cmpuint (st.sent, ==, 0);
	g_assert_cmpuint (caught_count (fx), ==, 2);
	g_autofree char *first = caught_file (fx, 1, ".eml");
	g_assert_cmpstr (first, ==, MESSAGE);
}

static void
test_backoff_4xx (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *alice[] = { "alice@customer.example", NULL };
	enqueue (fx, sha, alice);
	set_control (fx, "RCPT alice@customer.example 451 4.7.1 Greylisted, come back later\n");

	gint64 now = T0;
	gint64 expected_delay[] = { 60, 120, 240, 480 };
	for (gsize i = 0; i < G_N_ELEMENTS (expected_delay); i++) {
		MdOutboxStats st = flush (fx, now);
		g_assert_cmpuint (st.deferred, ==, 1);
		g_autoptr (MdOutboxEntry) e = row (fx, 1);
		g_assert_cmpstr (e->state, ==, "queued");
		g_assert_cmpint (e->attempts, ==, (int) i + 1);
		g_assert_cmpint (e->next_attempt_at, ==, now + expected_delay[i]);
		g_assert_cmpstr (e->last_error, ==, "451 4.7.1 Greylisted, come back later");
		st = flush (fx, e->next_attempt_at - 1);
		g_assert_cmpuint (st.deferred + st.sent, ==, 0);
		now = e->next_attempt_at;
	}
	set_control (fx, "");
	MdOutboxStats st = flush (fx, now);
	g_assert_cmpuint (st.sent, ==, 1);
	g_autoptr (MdOutboxEntry) e = row (fx, 1);
	g_assert_cmpstr (e->state, ==, "sent");
	g_assert_cmpint (e->attempts, ==, 5);
	g_assert_null (e->last_error);
	g_assert_cmpuint (caught_count (fx), ==, 1);
}

static void
test_backoff_caps_and_gives_up (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *alice[] = { "alice@customer.example", NULL };
	enqueue (fx, sha, alice);
	set_control (fx, "RCPT alice@customer.example 452 4.2.2 Mailbox full\n");
	gint64 now = T0;
	for (int i = 0; i < 9; i++) {
		flush (fx, now);
		g_autoptr (MdOutboxEntry) e = row (fx, 1);
		now = e->next_attempt_at;
	}
	g_autoptr (MdOutboxEntry) capped = row (fx, 1);
	gint64 last = capped->next_attempt_at;
	flush (fx, last);
	g_autoptr (MdOutboxEntry) next = row (fx, 1);
	g_assert_cmpint (next->next_attempt_at - last, ==, 3600);

	MdOutboxStats st = flush (fx, T0 + MD_OUTBOX_GIVE_UP_AFTER);
	g_assert_cmpuint (st.failed, ==, 1);
	g_autoptr (MdOutboxEntry) e = row (fx, 1);
	g_assert_cmpstr (e->state, ==, "failed");
	g_assert_true (g_str_has_prefix (e->last_error, "gave up after 11 attempts over 120 hours: 452 4.2.2 Mailbox full"));
}

static void
test_permanent_5xx (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *three[] = { "alice@customer.example", "nobody@customer.example", "carol@customer.example", NULL };
	enqueue (fx, sha, three);
	set_control (fx, "RCPT nobody@customer.example 550 5.1.1 <nobody@customer.example>: Recipient address rejected\n"
	                 "DATA carol@customer.example 554 5.7.1 Message refused by policy\n");
	MdOutboxStats st = flush (fx, T0);
	g_assert_cmpuint (st.sent, ==, 1);
	g_assert_cmpuint (st.failed, ==, 2);
	g_autoptr (MdOutboxEntry) alice = row (fx, 1);
	g_autoptr (MdOutboxEntry) nobody = row (fx, 2);
	g_autoptr (MdOutboxEntry) carol = row (fx, 3);
	g_assert_cmpstr (alice->state, ==, "sent");
	g_assert_cmpstr (nobody->state, ==, "failed");
	g_assert_cmpstr (nobody->last_error, ==, "550 5.1.1 <nobody@customer.example>: Recipient address rejected");
	g_assert_cmpstr (carol->state, ==, "failed");
	g_assert_cmpstr (carol->last_error, ==, "554 5.7.1 Message refused by policy");
	g_assert_cmpint (carol->sent_at, ==, 0);
	st = flush (fx, T0 + 100000);
	g_assert_cmpuint (st.sent + st.failed + st.deferred, ==, 0);
	g_assert_cmpuint (caught_count (fx), ==, 1);
}

/* Which refusals are the desk's own trouble (kept, retried) and which
 * are the message's (failed): MAIL names only the desk's address, 530
 * asks for AUTH wherever it comes, a relay refusing to relay at RCPT
 * wants the desk's credentials, 5.7.0 after DATA is a content filter's
 * verdict. */
static void
test_refusals (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	static const struct {
		const char *stage, *reply, *state;
	} cases[] = {
		{ "MAIL", "530 5.7.0 Authentication required", "queued" },
		{ "MAIL", "530 5.7.57 Client was not authenticated to send anonymous mail", "queued" },
		{ "MAIL", "554 5.7.8 Authentication credentials invalid", "queued" },
		{ "MAIL", "550 5.7.11 Encryption required for requested authentication mechanism", "queued" },
		{ "MAIL", "550 5.7.1 Relay access denied", "queued" },
		{ "MAIL", "553 5.1.7 Sender address rejected", "queued" },
		{ "RCPT", "530 5.7.0 Authentication required", "queued" },
		{ "RCPT", "550 5.7.1 Recipient refuses mail from this sender", "failed" },
		{ "RCPT", "550 5.7.0 Recipient address rejected", "failed" },
		{ "RCPT", "554 5.7.1 <x@customer.example>: Relay access denied", "queued" },
		{ "RCPT", "550 relay not permitted", "queued" },
		{ "RCPT", "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain", "queued" },
		{ "RCPT", "550 5.1.1 <x@customer.example>: Recipient address rejected: User unknown", "failed" },
		{ "DATA", "554 5.7.0 Reject, id=12345 - spam", "failed" },
		{ "DATA", "530 5.7.0 Authentication required", "queued" },
	};
	g_autofree char *sha = spool (fx, MESSAGE);
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *rcpt = g_strdup_printf ("r%zu@customer.example", i);
		const char *rcpts[] = { rcpt, NULL };
		g_autofree char *rule = g_strdup_printf ("%s %s %s\n", cases[i].stage,
		                                         strcmp (cases[i].stage, "MAIL") ? rcpt : FROM, cases[i].reply);
		set_control (fx, rule);
		enqueue (fx, sha, rcpts);
		/* rows of earlier cases are failed or due only at T0 + 60 */
		MdOutboxStats st = flush (fx, T0);
		g_assert_cmpuint (st.sent, ==, 0);
		g_autoptr (MdOutboxEntry) e = row (fx, (gint64) i + 1);
		g_test_message ("%s %s", cases[i].stage, cases[i].reply);
		g_assert_cmpstr (e->state, ==, cases[i].state);
		if (!strcmp (cases[i].state, "queued")) {
			g_autofree char *want = g_strdup_printf ("%s refused: %s", cases[i].stage, cases[i].reply);
			g_assert_cmpuint (st.deferred, ==, 1);
			g_assert_cmpint (e->next_attempt_at, ==, T0 + 60);
			g_assert_cmpstr (e->last_error, ==, want);
		} else {
			g_assert_cmpuint (st.failed, ==, 1);
			g_assert_cmpstr (e->last_error, ==, cases[i].reply);
		}
	}
	g_assert_cmpuint (caught_count (fx), ==, 0);
}

static void
test_missing_spool_file (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	const char *alice[] = { "alice@customer.example", NULL };
	enqueue (fx, "0000000000000000000000000000000000000000000000000000000000000000", alice);
	MdOutboxStats st = flush (fx, T0);
	g_assert_cmpuint (st.deferred, ==, 1);
	g_autoptr (MdOutboxEntry) e = row (fx, 1);
	g_assert_true (g_str_has_prefix (e->last_error, "cannot open "));
	g_assert_cmpuint (caught_count (fx), ==, 0);
}

static gboolean
wait_for (Fixture *fx, guint caught, int seconds)
{
	for (int i = 0; i < seconds * 20; i++) {
		if (caught_count (fx) >= caught)
			return TRUE;
		g_usleep (G_USEC_PER_SEC / 20);
	}
	return FALSE;
}

static void
test_sender_thread (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	g_autofree char *sha = spool (fx, MESSAGE);
	const char *alice[] = { "alice@customer.example", NULL };
	const char *bob[] = { "bob@customer.example", NULL };
	enqueue (fx, sha, alice);
	MdOutboxSender *sender = md_outbox_sender_start (fx->desk, &error);
	g_assert_no_error (error);
	g_assert_true (wait_for (fx, 1, 10));  /* what was due at start */

	/* queued later and woken: sent well before the 30 s poll */
	g_usleep (G_USEC_PER_SEC / 2);
	enqueue (fx, sha, bob);
	gint64 woken = g_get_monotonic_time ();
	md_outbox_sender_wake (sender);
	g_assert_true (wait_for (fx, 2, 10));
	g_assert_cmpint (g_get_monotonic_time () - woken, <, 5 * G_USEC_PER_SEC);
	md_outbox_sender_stop (sender);
	g_autoptr (MdOutboxEntry) e = row (fx, 2);
	g_assert_cmpstr (e->state, ==, "sent");
	g_assert_cmpuint (caught_count (fx), ==, 2);
}

/* ---- the write turn under ingest load ---- */

#define LOAD_JOBS (256 * 16)
#define LOAD_ROWS 16

static void
on_loaded (MdIngestJob *job, const GError *error, gpointer done)
{
	(void) job;
	(void) error;
	g_atomic_int_inc ((gint *) done);
}

static guint64
writer_commits (MdWriter *w)
{
	MdWriterStats stats;
	md_writer_get_stats (w, &stats);
	return stats.commits;
}

static guint
rows_sent (Fixture *fx)
{
	g_autoptr (GPtrArray) sent = md_outbox_list (fx->store, "sent", NULL);
	guint n = 0;
	for (guint i = 0; sent && i < sent->len; i++)
		n += ((MdOutboxEntry *) sent->pdata[i])->id <= LOAD_ROWS;
	return n;
}

/* The writer of serve committing batch after batch: another connection
 * of the process (the sender, the scheduler) still gets to write after
 * at most the writer's current batch, not when a poll finds SQLite's lock
 * free, which the writer hardly ever leaves it.  Counted in the writer's
 * commits, and every row is sent and marked while its backlog lasts. */
static void
test_sender_turn_under_load (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	g_autofree char *sha = spool (fx, MESSAGE);
	for (guint i = 0; i < LOAD_ROWS; i++) {
		g_autofree char *rcpt = g_strdup_printf ("r%u@customer.example", i);
		const char *rcpts[] = { rcpt, NULL };
		enqueue (fx, sha, rcpts);
	}
	fx->desk->write_turn = md_turn_new ();  /* as serve does */
	MdWriter *w = md_writer_start (fx->desk, NULL, &error);
	g_assert_no_error (error);
	g_autoptr (MdStore) other = md_desk_open_store (fx->desk, FALSE, &error);
	g_assert_no_error (error);

	/* The backlog (a new ticket each) is queued while OTHER writes: it
	 * is all there when the writer starts. */
	const char *to[] = { "support@support.example.com", NULL };
	MdEnvelope env = { "alice@customer.example", to };
	g_autoptr (GPtrArray) shas = g_ptr_array_new_with_free_func (g_free);
	g_autoptr (GArray) sizes = g_array_new (FALSE, FALSE, sizeof (gint64));
	for (guint i = 0; i < LOAD_JOBS; i++) {
		g_autofree char *text = g_strdup_printf ("From: Alice <alice@customer.example>\r\n"
		                                         "To: support@support.example.com\r\nSubject: load %u\r\n"
		                                         "Message-ID: <load%u@customer.example>\r\n\r\nHello %u\r\n",
		                                         i, i, i);
		gint64 size = (gint64) strlen (text);
		g_ptr_array_add (shas, spool (fx, text));
		g_array_append_val (sizes, size);
	}
	gint done = 0;
	g_assert_true (md_store_begin (other, &error));
	for (guint i = 0; i < LOAD_JOBS; i++)
		md_writer_submit (w, md_ingest_job_new (fx->desk, shas->pdata[i], g_array_index (sizes, gint64, i), &env),
		                  on_loaded, &done);
	g_assert_true (md_store_commit (other, &error));
	/* measured from the writer's first commit: it is at work by then */
	for (int i = 0; i < 600 && writer_commits (w) == 0; i++)
		g_usleep (G_USEC_PER_SEC / 20);

	guint64 most = 0;
	for (int i = 0; i < 5; i++) {
		guint64 before = writer_commits (w);
		g_assert_true (md_store_begin (other, &error));
		most = MAX (most, writer_commits (w) - before);
		g_assert_true (md_store_meta_set (other, "turn-test", "x", &error));
		g_assert_true (md_store_commit (other, &error));
	}
	g_test_message ("writes waited for at most %" G_GUINT64_FORMAT " writer commits", most);
	g_assert_cmpuint (most, <=, 2);
	g_assert_cmpint (g_atomic_int_get (&done), <, LOAD_JOBS);  /* the writer was busy throughout */

	MdOutboxSender *sender = md_outbox_sender_start (fx->desk, &error);
	g_assert_no_error (error);
	guint sent = 0;
	gint busy_with = 0;
	while ((busy_with = LOAD_JOBS - g_atomic_int_get (&done)) > 0 && (sent = rows_sent (fx)) < LOAD_ROWS)
		g_usleep (1000);
	guint64 commits = writer_commits (w);
	md_outbox_sender_stop (sender);
	md_writer_stop (w);
	g_test_message ("%u rows sent with %d jobs left, after %" G_GUINT64_FORMAT " writer commits", sent, busy_with,
	                commits);
	g_assert_cmpuint (sent, ==, LOAD_ROWS);
	g_assert_cmpint (busy_with, >, 0);
}

/* A server that takes the connection and never says a word: stopping
 * must not wait for curl's timeouts, and the row stays due. */
static void
test_sender_stop_is_bounded (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	g_autoptr (GError) error = NULL;
	g_autoptr (GSocket) mute = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (lo, 0);
	g_assert_true (g_socket_bind (mute, addr, FALSE, &error));
	g_assert_true (g_socket_listen (mute, &error));
	g_autoptr (GSocketAddress) bound = g_socket_get_local_address (mute, &error);
	set_smtp_url (fx, g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

	g_autofree char *sha = spool (fx, MESSAGE);
	const char *alice[] = { "alice@customer.example", NULL };
	enqueue (fx, sha, alice);
	MdOutboxSender *sender = md_outbox_sender_start (fx->desk, &error);
	g_assert_no_error (error);
	g_usleep (G_USEC_PER_SEC);
	gint64 start = g_get_monotonic_time ();
	md_outbox_sender_stop (sender);
	g_assert_cmpint (g_get_monotonic_time () - start, <, 3 * G_USEC_PER_SEC);
	g_autoptr (MdOutboxEntry) e = row (fx, 1);
	g_assert_cmpstr (e->state, ==, "queued");
	g_assert_cmpint (e->attempts, ==, 0);
	g_assert_cmpint (e->next_attempt_at, ==, T0);
}

static void
test_smtp_config_refused (void)
{
	g_autoptr (MdConf) conf = md_conf_new_defaults ();
	struct {
		const char *url, *user, *password_file;
	} cases[] = {
		{ "http://127.0.0.1/", NULL, NULL },
		{ "127.0.0.1:25", NULL, NULL },
		{ "smtp://127.0.0.1:25", "desk", NULL },
		{ "smtp://127.0.0.1:25", "desk", "/nonexistent/password" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (GError) error = NULL;
		g_free (conf->smtp_url);
		conf->smtp_url = g_strdup (cases[i].url);
		g_free (conf->smtp_user);
		conf->smtp_user = g_strdup (cases[i].user);
		g_free (conf->smtp_password_file);
		conf->smtp_password_file = g_strdup (cases[i].password_file);
		g_autoptr (MdSmtp) smtp = md_smtp_new (conf, &error);
		g_assert_null (smtp);
		g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	}
}

/* Ingest, on the same kind of desk: the parsing threads trim only mail
 * that may be a reply (In-Reply-To, References, a token, a subject
 * tag), so a new question full of "On ..., X wrote:" lines costs no
 * trimming there (it took seconds a MB). */
static void
test_ingest_trims_only_replies (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	static const char *const heads[] = {
		"Subject: A new question\n",
		"Subject: Re: something\nIn-Reply-To: <earlier@customer.example>\n",
		"Subject: Re: [SUP-1] something\n",
	};
	for (gsize i = 0; i < G_N_ELEMENTS (heads); i++) {
		g_autoptr (GString) raw = g_string_new ("From: alice@customer.example\nTo: support@support.example.com\n");
		g_string_append_printf (raw, "Message-ID: <q%zu@customer.example>\n%s\nThe new text.\n\n", i, heads[i]);
		for (int n = 0; n < 50; n++)
			g_string_append_printf (raw, "On day %d, someone wrote:\n", n);
		g_autofree char *sha = spool (fx, raw->str);
		MdEnvelope env = { NULL, NULL };
		g_autoptr (MdIngestJob) job = md_ingest_job_new (fx->desk, sha, (gint64) raw->len, &env);
		g_autoptr (GError) error = NULL;
		guint64 before = md_trim_matches_run ();
		g_assert_true (md_ingest_prepare (job, &error));
		g_assert_no_error (error);
		if (i == 0)
			g_assert_cmpuint (md_trim_matches_run (), ==, before);
		else
			g_assert_cmpuint (md_trim_matches_run (), >, before);
	}
}

/* The References of the acknowledgement queued for a new ticket: "id id"
 * from its spec.  Free with g_free. */
static char *
ack_references (Fixture *fx, gint64 ticket_id)
{
	sqlite3_stmt *s = NULL;
	g_assert_cmpint (sqlite3_prepare_v2 (md_store_db (fx->store),
	                                     "SELECT b.raw FROM outbox o JOIN outbox_blobs b ON b.sha256 = o.raw_sha256 "
	                                     "WHERE o.ticket_id = ? AND o.kind = 'ack'", -1, &s, NULL), ==, SQLITE_OK);
	sqlite3_bind_int64 (s, 1, ticket_id);
	g_assert_cmpint (sqlite3_step (s), ==, SQLITE_ROW);
	g_autoptr (JsonParser) parser = json_parser_new ();
	g_assert_true (json_parser_load_from_data (parser, (const char *) sqlite3_column_blob (s, 0) + 9,
	                                           sqlite3_column_bytes (s, 0) - 9, NULL));
	sqlite3_finalize (s);
	JsonArray *refs = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)),
	                                                "references");
	g_autoptr (GString) out = g_string_new (NULL);
	for (guint i = 0; i < json_array_get_length (refs); i++)
		g_string_append_printf (out, "%s%s", i ? " " : "", json_array_get_string_element (refs, i));
	return g_strdup (out->str);
}

/* A new ticket's acknowledgement takes its References from the message
 * it answers, not from the store: they are what the store's thread was
 * when it was queued (the public messages with a Message-ID before its
 * kept copy), with a Message-ID and without one. */
static void
test_ack_thread (Fixture *fx, gconstpointer unused)
{
	(void) unused;
	for (int i = 0; i < 2; i++) {
		g_autofree char *raw = g_strdup_printf ("From: Alice <alice%d@customer.example>\n"
		                                        "To: support@support.example.com\nSubject: Printer on fire\n%s"
		                                        "\nIt burns.\n", i, i ? "" : "Message-ID: <fire@customer.example>\n");
		g_autofree char *sha = spool (fx, raw);
		g_autoptr (GError) error = NULL;
		MdIngestResult r = { 0 };
		g_assert_true (md_ingest_one (fx->desk, fx->store, sha, (gint64) strlen (raw), NULL, &r, &error));
		g_assert_no_error (error);
		g_free (r.key);
		g_autoptr (GPtrArray) messages = md_store_ticket_messages (fx->store, r.ticket_id, &error);
		g_assert_no_error (error);
		g_autoptr (GString) expected = g_string_new (NULL);
		gboolean acked = FALSE;
		for (guint k = 0; k < messages->len && !acked; k++) {
			MdStoredMessage *m = messages->pdata[k];
			acked = m->outgoing && g_strcmp0 (m->flag, "sent: ack") == 0;
			if (!acked && m->message_id && !m->internal)
				g_string_append_printf (expected, "%s%s", expected->len ? " " : "", m->message_id);
		}
		g_assert_true (acked);
		g_autofree char *got = ack_references (fx, r.ticket_id);
		g_assert_cmpstr (got, ==, expected->str);
		g_assert_cmpstr (got, ==, i ? "" : "fire@customer.example");
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_setenv ("MAILDESK_NOW", "2026-12-01T08:00:00Z", TRUE);  /* T0 */
	static const int up = 1;
#define ADD(path, fn, catcher) \
	g_test_add ("/outbox/" path, Fixture, catcher, fixture_setup, fn, fixture_teardown)
	ADD ("enqueue-rows", test_enqueue_rows, NULL);
	ADD ("enqueue-bytes", test_enqueue_bytes, &up);
	ADD ("enqueue-spec", test_enqueue_spec, &up);
	ADD ("enqueue-refuses", test_enqueue_refuses, NULL);
	ADD ("count-recent", test_count_recent, NULL);
	ADD ("delivered-exactly", test_delivered_exactly, &up);
	ADD ("outage", test_outage, NULL);
	ADD ("backoff-4xx", test_backoff_4xx, &up);
	ADD ("backoff-caps-and-gives-up", test_backoff_caps_and_gives_up, &up);
	ADD ("permanent-5xx", test_permanent_5xx, &up);
	ADD ("refusals", test_refusals, &up);
	ADD ("missing-spool-file", test_missing_spool_file, &up);
	ADD ("sender-thread", test_sender_thread, &up);
	ADD ("sender-stop-is-bounded", test_sender_stop_is_bounded, NULL);
	ADD ("sender-turn-under-load", test_sender_turn_under_load, &up);
	g_test_add_func ("/outbox/blob-hash", test_blob_hash);
	g_test_add_func ("/smtp/config-refused", test_smtp_config_refused);
	g_test_add ("/ingest/trims-only-replies", Fixture, NULL, fixture_setup, test_ingest_trims_only_replies,
	            fixture_teardown);
	g_test_add ("/ingest/ack-thread", Fixture, NULL, fixture_setup, test_ack_thread, fixture_teardown);
	return g_test_run ();
}
