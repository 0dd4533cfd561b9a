/* test-lmtp.c - the LMTP engine served in-process on loopback, driven by a
 * raw socket client on a thread of its own while the main loop serves.
 *
 * A conversation is a list of steps: bytes to send, then the replies
 * expected, each by its prefix ("250 2.1.5"), "EOF" for a closed
 * connection.  The client thread only records what it read; the main
 * thread compares, so a failure names the step.
 */
#include "config.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "md.h"
#include "lmtp.h"
#include "lmtp-recorder.h"

#define HOST "lmtp.desk.test"

typedef struct {
	const char *send;    /* NULL: send nothing */
	const char *expect;  /* reply prefixes separated by '|'; NULL: read nothing */
} Step;

typedef struct {
	char *dir;
	MdSpool *spool;
	MdTestRecorder *rec;
	MdLmtpServer *server;
} Fixture;

/* ---- the log: message and warning lines are kept for the tests to read ---- */

static GMutex log_lock;
static GPtrArray *log_lines;  /* char* */

static GLogWriterOutput
capture_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
	for (gsize i = 0; i < n_fields && (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_WARNING)); i++) {
		if (g_str_equal (fields[i].key, "MESSAGE")) {
			g_mutex_lock (&log_lock);
			g_ptr_array_add (log_lines, g_strdup (fields[i].value));
			g_mutex_unlock (&log_lock);
		}
	}
	return g_log_writer_default (level, fields, n_fields, data);
}

static guint
logged_count (const char *needle)
{
	guint n = 0;
	g_mutex_lock (&log_lock);
	for (guint i = 0; i < log_lines->len; i++)
		n += strstr (log_lines->pdata[i], needle) != NULL;
	g_mutex_unlock (&log_lock);
	return n;
}

/* The one logged line containing needle, with its session id cut off. */
static char *
logged (const char *needle)
{
	char *found = NULL;
	g_mutex_lock (&log_lock);
	for (guint i = 0; i < log_lines->len; i++) {
		const char *line = log_lines->pdata[i];
		if (strstr (line, needle)) {
			g_assert_null (found);
			g_assert_true (strlen (line) > 17 && line[16] == ' ');
			found = g_strdup (line + 17);
		}
	}
	g_mutex_unlock (&log_lock);
	return found;
}

/* ---- the server side ---- */

static MdLmtpConfig
base_config (void)
{
	return (MdLmtpConfig) { .hostname = HOST, .max_message_size = 1 << 20, .idle_timeout_ms = 10000 };
}

static void
fixture_start (Fixture *f, const MdLmtpConfig *cfg, int delay_ms, const char *listen)
{
	g_autoptr (GError) error = NULL;

	f->dir = g_dir_make_tmp ("md-lmtp-XXXXXX", &error);
	g_assert_no_error (error);
	g_autofree char *spool_dir = g_build_filename (f->dir, "spool", NULL);
	f->spool = md_spool_open (spool_dir, &error);
	g_assert_no_error (error);
	f->rec = md_test_recorder_new (delay_ms);
	f->server = md_lmtp_server_new (cfg, f->spool, md_test_recorder_callbacks (), f->rec, &error);
	g_assert_no_error (error);
	if (listen) {
		g_assert_true (md_lmtp_server_listen (f->server, listen, &error));
		g_assert_no_error (error);
	}
}

static const char *
fixture_address (Fixture *f)
{
	return md_lmtp_server_addresses (f->server)[0];
}

static void
fixture_stop (Fixture *f)
{
	/* Let answers still in flight arrive before the server goes. */
	while (md_lmtp_server_active_transactions (f->server) > 0)
		g_main_context_iteration (NULL, TRUE);
	g_clear_pointer (&f->server, md_lmtp_server_free);
	g_clear_pointer (&f->rec, md_test_recorder_free);
	g_clear_pointer (&f->spool, md_spool_free);
	md_remove_tree (f->dir);
	g_clear_pointer (&f->dir, g_free);
}

/* Files under spool/<sub>, recursively. */
static guint
count_files (Fixture *f, const char *sub)
{
	g_autofree char *root = g_build_filename (f->dir, "spool", sub, NULL);
	g_autoptr (GPtrArray) dirs = g_ptr_array_new_with_free_func (g_free);
	guint n = 0;

	g_ptr_array_add (dirs, g_strdup (root));
	while (dirs->len) {
		g_autofree char *d = g_ptr_array_steal_index (dirs, dirs->len - 1);
		g_autoptr (GDir) dir = g_dir_open (d, 0, NULL);
		const char *name;
		while (dir && (name = g_dir_read_name (dir))) {
			char *child = g_build_filename (d, name, NULL);
			if (g_file_test (child, G_FILE_TEST_IS_DIR))
				g_ptr_array_add (dirs, child);
			else {
				n++;
				g_free (child);
			}
		}
	}
	return n;
}

static char *
spooled (Fixture *f, guint i)
{
	const MdTestDelivery *d = md_test_recorder_get (f->rec, i);
	g_assert_nonnull (d);
	g_autofree char *path = md_spool_path (f->spool, MD_SPOOL_RAW, d->sha256);
	char *content = NULL;
	g_assert_true (g_file_get_contents (path, &content, NULL, NULL));
	return content;
}

/* ---- the client side, on its own thread ---- */

typedef struct {
	GSocketConnection *conn;
	GSocket *sock;  /* the connection's */
	GString *in;
} Client;

static Client
client_connect (const char *address)
{
	g_autoptr (GSocketClient) client = g_socket_client_new ();
	g_autoptr (GError) error = NULL;
	Client c = { NULL, NULL, g_string_new (NULL) };

	if (g_str_has_prefix (address, "unix:")) {
		g_autoptr (GSocketAddress) sa = g_unix_socket_address_new (address + 5);
		c.conn = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (sa), NULL, &error);
	} else
		c.conn = g_socket_client_connect_to_host (client, address, 0, NULL, &error);
	g_assert_no_error (error);
	c.sock = g_socket_connection_get_socket (c.conn);
	g_socket_set_blocking (c.sock, TRUE);
	g_socket_set_timeout (c.sock, 10);
	return c;
}

static void
client_close (Client *c)
{
	g_socket_close (c->sock, NULL);
	g_clear_object (&c->conn);
	g_string_free (c->in, TRUE);
}

static void
client_send (Client *c, const char *data, gsize len)
{
	while (len > 0) {
		gssize n = g_socket_send (c->sock, data, len, NULL, NULL);
		if (n <= 0)
			return;  /* the server hung up: the replies will say so */
		data += n;
		len -= (gsize) n;
	}
}

/* One complete reply (multi-line replies joined by '\n'), or "EOF". */
static char *
client_reply (Client *c)
{
	g_autoptr (GString) reply = g_string_new (NULL);

	for (;;) {
		char *lf = memchr (c->in->str, '\n', c->in->len);
		if (lf) {
			gsize n = (gsize) (lf - c->in->str) + 1;
			g_autofree char *line = g_strndup (c->in->str, n > 1 && lf[-1] == '\r' ? n - 2 : n - 1);
			g_string_erase (c->in, 0, (gssize) n);
			if (reply->len)
				g_string_append_c (reply, '\n');
			g_string_append (reply, line);
			if (strlen (line) < 4 || line[3] != '-')
				return g_string_free (g_steal_pointer (&reply), FALSE);
			continue;
		}
		char buf[4096];
		gssize n = g_socket_receive (c->sock, buf, sizeof buf, NULL, NULL);
		if (n <= 0)
			return g_strdup (reply->len ? reply->str : "EOF");
		g_string_append_len (c->in, buf, n);
	}
}

typedef struct {
	const char *address;
	const Step *steps;
	GPtrArray *got;        /* one string per expected reply */
	gint done;
} Conversation;

static gpointer
converse_thread (gpointer data)
{
	Conversation *cv = data;
	Client c = client_connect (cv->address);

	for (const Step *s = cv->steps; s->send || s->expect; s++) {
		if (s->send)
			client_send (&c, s->send, strlen (s->send));
		if (!s->expect)
			continue;
		g_auto (GStrv) want = g_strsplit (s->expect, "|", 0);
		for (char **w = want; *w; w++)
			g_ptr_array_add (cv->got, client_reply (&c));
	}
	client_close (&c);
	g_atomic_int_set (&cv->done, 1);
	g_main_context_wakeup (NULL);
	return NULL;
}

/* Runs a client thread while the main loop serves; waits for it. */
static void
run_client (GThreadFunc func, gpointer data, gint *done)
{
	GThread *t = g_thread_new ("client", func, data);
	while (!g_atomic_int_get (done))
		g_main_context_iteration (NULL, TRUE);
	g_thread_join (t);
}

static void
converse (const char *address, const Step *steps)
{
	Conversation cv = { address, steps, g_ptr_array_new_with_free_func (g_free), 0 };
	guint k = 0;

	run_client (converse_thread, &cv, &cv.done);
	for (guint i = 0; steps[i].send || steps[i].expect; i++) {
		if (!steps[i].expect)
			continue;
		g_auto (GStrv) want = g_strsplit (steps[i].expect, "|", 0);
		for (char **w = want; *w; w++, k++) {
			const char *got = g_ptr_array_index (cv.got, k);
			if (!g_str_has_prefix (got, *w))
				g_error ("step %u (%s): expected \"%s\", got \"%s\"", i,
				         steps[i].send ? steps[i].send : "-", *w, got);
		}
	}
	g_ptr_array_unref (cv.got);
}

/* ---- tests ---- */

static const char *const capabilities[] = { "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "CHUNKING",
	                                    "SIZE 1048576" };

static void
test_greeting_and_lhlo (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220 " HOST " " },
		{ "LHLO client.test\r\n", "250-" HOST },
		{ "QUIT\r\n", "221 2.0.0|EOF" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);

	/* The whole LHLO reply, capability by capability. */
	Conversation cv = { fixture_address (&f), (const Step[]) { { NULL, "220" }, { "LHLO c\r\n", "250" }, { 0 } },
	                    g_ptr_array_new_with_free_func (g_free), 0 };
	run_client (converse_thread, &cv, &cv.done);
	g_auto (GStrv) lines = g_strsplit (g_ptr_array_index (cv.got, 1), "\n", 0);
	g_assert_cmpuint (g_strv_length (lines), ==, 1 + G_N_ELEMENTS (capabilities));
	for (gsize i = 0; i < G_N_ELEMENTS (capabilities); i++)
		g_assert_cmpstr (lines[i + 1] + 4, ==, capabilities[i]);
	g_assert_cmpstr (lines[G_N_ELEMENTS (capabilities)], ==, "250 SIZE 1048576");
	g_ptr_array_unref (cv.got);
	fixture_stop (&f);
}

/* Every command in one write, message and QUIT included; replies come
 * in order, one per recipient after the dot, in RCPT order, answered
 * from another thread. */
static void
test_pipelined_mixed_results (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 20, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\n"
		  "MAIL FROM:<alice@example.org> SIZE=40 BODY=8BITMIME\r\n"
		  "RCPT TO:<ok@desk.test>\r\n"
		  "RCPT TO:<nouser@desk.test>\r\n"
		  "RCPT TO:<temp@desk.test>\r\n"
		  "RCPT TO:<full@desk.test>\r\n"
		  "RCPT TO:<denied@desk.test>\r\n"
		  "RCPT TO:<OK2@DESK.TEST>\r\n"
		  "DATA\r\n"
		  "Subject: hi\r\n\r\nbody\r\n.\r\n"
		  "NOOP\r\n"
		  "QUIT\r\n",
		  "250|250 2.1.0|250 2.1.5|550 5.1.1|250 2.1.5|250 2.1.5|250 2.1.5|250 2.1.5|354"
		  "|250 2.0.0 <ok@desk.test> Delivered SUP-1|451 4.3.0 <temp@desk.test>"
		  "|452 4.3.1 <full@desk.test>|550 5.7.1 <denied@desk.test>|250 2.0.0 <OK2@DESK.TEST> Delivered SUP-2"
		  "|250 2.0.0|221|EOF" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 1);
	const MdTestDelivery *d = md_test_recorder_get (f.rec, 0);
	g_assert_cmpstr (d->sender, ==, "alice@example.org");
	const char *const want[] = { "ok@desk.test", "temp@desk.test", "full@desk.test", "denied@desk.test",
		                     "OK2@DESK.TEST", NULL };
	g_assert_true (g_strv_equal ((const char *const *) d->rcpts, want));
	g_assert_cmpint (d->size, ==, 21);
	g_assert_cmpuint (md_test_recorder_cross_thread_answers (f.rec), ==, 1);
	g_autofree char *content = spooled (&f, 0);
	g_assert_cmpstr (content, ==, "Subject: hi\r\n\r\nbody\r\n");
	g_autofree char *line = logged ("lmtp delivered from=<alice@example.org>");
	g_assert_cmpstr (line, ==, "lmtp delivered from=<alice@example.org> rcpts=5 size=21 "
	                 "result=250:SUP-1,451:4.3.0,452:4.3.1,550:5.7.1,250:SUP-2");
	fixture_stop (&f);
}

/* RFC 5321 4.5.2: a leading dot is doubled on the wire and removed on
 * receipt; everything else, CR, LF, NUL and 8-bit, is kept byte for byte. */
static void
test_dot_unstuffing (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, -1, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\n", "250|250|250|354" },
		{ "Subject: dots\r\n\r\n"
		  "..\r\n"
		  "...leading\r\n"
		  ". space\r\n"
		  "middle . dot\r\n"
		  ".\r.\r\n"
		  "caf\xc3\xa9 8bit\r\n"
		  "bare lf\n"
		  "..\n"
		  "last\r\n"
		  ".\r\n",
		  "250 2.0.0 <ok@desk.test>" },
		{ "QUIT\r\n", "221" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_autofree char *content = spooled (&f, 0);
	g_assert_cmpstr (content, ==,
	                 "Subject: dots\r\n\r\n"
	                 ".\r\n"
	                 "..leading\r\n"
	                 " space\r\n"
	                 "middle . dot\r\n"
	                 "\r.\r\n"
	                 "caf\xc3\xa9 8bit\r\n"
	                 "bare lf\n"
	                 ".\n"
	                 "last\r\n");
	g_assert_cmpstr (md_test_recorder_get (f.rec, 0)->sender, ==, "");
	fixture_stop (&f);
}

typedef struct {
	const char *address;
	gsize sent;
	gint done;
} Flood;

/* Pipelines NOOPs without reading a reply, until the server stops
 * taking them (no progress for half a second) or 16 MiB went. */
static gpointer
flood_thread (gpointer data)
{
	Flood *fl = data;
	Client c = client_connect (fl->address);
	char block[6 * 8192];
	for (gsize i = 0; i < sizeof block; i += 6)
		memcpy (block + i, "NOOP\r\n", 6);
	g_socket_set_blocking (c.sock, FALSE);
	gint64 last_progress = g_get_monotonic_time ();
	while (fl->sent < 16u << 20 && g_get_monotonic_time () - last_progress < G_USEC_PER_SEC / 2) {
		gssize n = g_socket_send (c.sock, block, sizeof block, NULL, NULL);
		if (n > 0) {
			fl->sent += (gsize) n;
			last_progress = g_get_monotonic_time ();
		} else
			g_usleep (10000);
	}
	client_close (&c);
	g_atomic_int_set (&fl->done, 1);
	g_main_context_wakeup (NULL);
	return NULL;
}

/* A client that pipelines and never reads its replies is not read
 * either, so its replies cannot pile up in the server's memory. */
static void
test_slow_reader (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, NULL);
	/* A Unix socket: fixed kernel buffers, unlike TCP's autotuned ones. */
	g_autofree char *path = g_build_filename (f.dir, "lmtp.sock", NULL);
	g_autofree char *spec = g_strdup_printf ("unix:%s", path);
	g_autoptr (GError) error = NULL;
	g_assert_true (md_lmtp_server_listen (f.server, spec, &error));
	Flood fl = { spec, 0, 0 };
	run_client (flood_thread, &fl, &fl.done);
	g_test_message ("the server took %" G_GSIZE_FORMAT " bytes of NOOPs", fl.sent);
	g_assert_cmpuint (fl.sent, <, 4u << 20);
	fixture_stop (&f);
}

typedef struct {
	const char *address;
	GPtrArray *got;
	gint done;
} HalfClose;

static gpointer
half_close_thread (gpointer data)
{
	HalfClose *hc = data;
	Client c = client_connect (hc->address);
	const char *all = "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n";
	client_send (&c, all, strlen (all));
	g_socket_shutdown (c.sock, FALSE, TRUE, NULL);
	for (int i = 0; i < 8; i++) {
		char *reply = client_reply (&c);
		g_ptr_array_add (hc->got, reply);
		if (strcmp (reply, "EOF") == 0)
			break;
	}
	client_close (&c);
	g_atomic_int_set (&hc->done, 1);
	g_main_context_wakeup (NULL);
	return NULL;
}

/* A client may send everything, QUIT included, and shut its side down
 * before the delivery commits: it still gets every reply. */
static void
test_half_close (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 50, "127.0.0.1:0");
	HalfClose hc = { fixture_address (&f), g_ptr_array_new_with_free_func (g_free), 0 };
	run_client (half_close_thread, &hc, &hc.done);
	const char *const want[] = { "220", "250-", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0 <ok@desk.test>",
		                     "221 2.0.0", "EOF" };
	g_assert_cmpuint (hc.got->len, ==, G_N_ELEMENTS (want));
	for (gsize i = 0; i < G_N_ELEMENTS (want); i++)
		g_assert_true (g_str_has_prefix (hc.got->pdata[i], want[i]));
	g_ptr_array_unref (hc.got);
	fixture_stop (&f);
}

/* The log line of a message no recipient got says so. */
static void
test_log_not_delivered (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, -1, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<temp@desk.test>\r\nDATA\r\nhi\r\n.\r\n",
		  "250|250|250|354|451 4.3.0 <temp@desk.test>" },
		{ "QUIT\r\n", "221" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_autofree char *line = logged ("lmtp not-delivered from=<bob@example.org>");
	g_assert_nonnull (line);
	g_assert_true (g_str_has_suffix (line, "result=451:4.3.0"));
	fixture_stop (&f);
}

/* An empty message is refused, as `deliver` refuses one: 554 5.6.0. */
static void
test_empty_message (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, -1, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nRCPT TO:<ok2@desk.test>\r\nDATA\r\n.\r\n",
		  "250|250|250|250|354|554 5.6.0 <ok@desk.test>|554 5.6.0 <ok2@desk.test>" },
		{ "MAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nBDAT 0 LAST\r\n", "250|250|554 5.6.0 <ok@desk.test>" },
		{ "MAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\n\r\n.\r\n", "250|250|354|250 2.0.0" },
		{ "QUIT\r\n", "221" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 1);
	fixture_stop (&f);
}

/* RFC 5321 4.1.1.4: only <CR><LF>.<CR><LF> ends the data.  A dot line
 * with or after a bare LF is content, so what follows it cannot become a
 * second transaction with an envelope of the sender's choosing. */
static void
test_no_smuggling (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, -1, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\n", "250|250|250|354" },
		{ "Subject: first\r\n\r\nfirst\n.\n"
		  "MAIL FROM:<evil@example.net>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\n"
		  "Subject: smuggled\r\n\r\nsmuggled\n.\r\n"
		  "NOOP\r\n"
		  "last\r\n.\r\n",
		  "250 2.0.0 <ok@desk.test>" },
		{ "QUIT\r\n", "221" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 1);
	g_assert_cmpstr (md_test_recorder_get (f.rec, 0)->sender, ==, "a@example.org");
	g_autofree char *content = spooled (&f, 0);
	g_assert_cmpstr (content, ==,
	                 "Subject: first\r\n\r\nfirst\n\n"
	                 "MAIL FROM:<evil@example.net>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\n"
	                 "Subject: smuggled\r\n\r\nsmuggled\n\r\n"
	                 "NOOP\r\n"
	                 "last\r\n");
	fixture_stop (&f);
}

/* RFC 5321 4.5.3.1.6: 1000 octets with the CRLF, the stuffed dot not
 * counted.  998 + CRLF is stored; 999 + CRLF fails the message. */
static void
test_line_limit_boundary (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, -1, "127.0.0.1:0");
	g_autofree char *x998 = g_strnfill (998, 'x');
	g_autofree char *x997 = g_strnfill (997, 'y');
	g_autofree char *fits = g_strdup_printf ("%s\r\n..%s\r\n.\r\n", x998, x997);
	g_autofree char *over = g_strdup_printf ("%sz\r\n.\r\n", x998);
	const char *start = "MAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\n";
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\n", "250" },
		{ start, "250|250|354" },
		{ fits, "250 2.0.0" },
		{ start, "250|250|354" },
		{ over, "500 5.5.2" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 1);
	g_autofree char *content = spooled (&f, 0);
	g_autofree char *want = g_strdup_printf ("%s\r\n.%s\r\n", x998, x997);
	g_assert_cmpstr (content, ==, want);
	fixture_stop (&f);
}

/* The spool cannot take the body (its tmp/ is gone): every recipient is
 * answered 451 4.3.0 at the end of DATA or BDAT, and the MTA keeps the
 * message.  (The file is created when the body needs it, off the main
 * loop for a small body, so DATA itself still says 354.) */
static void
test_spool_failure (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, "127.0.0.1:0");
	g_autofree char *tmp = g_build_filename (f.dir, "spool", "tmp", NULL);
	g_assert_cmpint (g_rmdir (tmp), ==, 0);
	g_assert_true (g_file_set_contents (tmp, "", 0, NULL));
	guint warnings = logged_count ("lmtp spool error: cannot create");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nRCPT TO:<ok2@desk.test>\r\n", "250|250|250|250" },
		{ "DATA\r\n", "354" },
		{ "Subject: x\r\n\r\nbody\r\n.\r\n", "451 4.3.0 <ok@desk.test>|451 4.3.0 <ok2@desk.test>" },
		{ "MAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nRCPT TO:<ok2@desk.test>\r\n", "250|250|250" },
		{ "BDAT 3 LAST\r\nabc", "451 4.3.0 <ok@desk.test>|451 4.3.0 <ok2@desk.test>" },
		{ "NOOP\r\n", "250" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_assert_cmpuint (logged_count ("lmtp spool error: cannot create"), ==, warnings + 2);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 0);
	g_unlink (tmp);
	fixture_stop (&f);
}

typedef struct {
	const char *name;
	Step steps[12];
} Case;

#define LONG_LINE \
	"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
#define LONG_LINE_1000 LONG_LINE LONG_LINE LONG_LINE LONG_LINE LONG_LINE LONG_LINE LONG_LINE LONG_LINE LONG_LINE LONG_LINE

static const Case error_cases[] = {
	{ "helo-ehlo", { { NULL, "220" }, { "HELO c\r\n", "500 5.5.1" }, { "EHLO c\r\n", "500 5.5.1" },
	                 { "LHLO c\r\n", "250" }, { 0 } } },
	{ "unknown", { { NULL, "220" }, { "FOO bar\r\n", "500 5.5.2" }, { "\r\n", "500 5.5.2" },
	               { "MAILX FROM:<>\r\n", "500 5.5.2" }, { 0 } } },
	{ "sequence", { { NULL, "220" }, { "MAIL FROM:<a@b.c>\r\n", "503 5.5.1" }, { "LHLO c\r\n", "250" },
	                { "RCPT TO:<ok@desk.test>\r\n", "503 5.5.1" }, { "DATA\r\n", "503 5.5.1" },
	                { "MAIL FROM:<a@b.c>\r\n", "250 2.1.0" }, { "DATA\r\n", "503 5.5.1" },
	                { "MAIL FROM:<a@b.c>\r\n", "503 5.5.1" }, { "RSET\r\n", "250 2.0.0" },
	                { "RCPT TO:<ok@desk.test>\r\n", "503 5.5.1" }, { 0 } } },
	{ "recipients", { { NULL, "220" }, { "LHLO c\r\nMAIL FROM:<a@b.c>\r\n", "250|250" },
	                  { "RCPT TO:<nouser@desk.test>\r\n", "550 5.1.1 <nouser@desk.test>" },
	                  { "RCPT TO:<ok@elsewhere.test>\r\n", "550 5.1.2" },
	                  { "RCPT TO:<badtoken+SUP-1.x@desk.test>\r\n", "550 5.7.1" },
	                  { "RCPT TO:<rcptbusy@desk.test>\r\n", "451 4.3.0" },
	                  { "RCPT TO:ok@desk.test\r\n", "501 5.1.3" },
	                  { "RCPT TO:<>\r\n", "501 5.1.3" },
	                  { "RCPT TO:<ok@desk.test> NOTIFY=NEVER\r\n", "555 5.5.4" },
	                  { "RCPT TO: <ok@desk.test>\r\n", "250 2.1.5" },
	                  { "RCPT TO:<@relay.test:ok2@desk.test>\r\n", "250 2.1.5" }, { 0 } } },
	/* RFC 5321 4.1.2: a source route is ignored, but a mailbox must follow
	 * it; the first '@' outside quotes ends the local part; quotes enclose
	 * the whole local part; only RCPT takes a mailbox without a domain,
	 * and only <Postmaster>. */
	{ "address-syntax", { { NULL, "220" }, { "LHLO c\r\n", "250" },
	                      { "MAIL FROM:<@relay.test:>\r\nMAIL FROM:<@relay.test,@r2.test:>\r\n", "501 5.1.7|501 5.1.7" },
	                      { "MAIL FROM:<a@b@c.test>\r\nMAIL FROM:<\"a\"@b@c.test>\r\n", "501 5.1.7|501 5.1.7" },
	                      { "MAIL FROM:<@:a@b.c>\r\nMAIL FROM:<@r.test,:a@b.c>\r\nMAIL FROM:<@r.test a@b.c>\r\n",
	                        "501 5.1.7|501 5.1.7|501 5.1.7" },
	                      { "MAIL FROM:<a\"b\"@c.test>\r\nMAIL FROM:<\"a\\\">\r\nMAIL FROM:<\"a\"b@c.test>\r\n",
	                        "501 5.1.7|501 5.1.7|501 5.1.7" },
	                      { "MAIL FROM:<postmaster>\r\nMAIL FROM:<a@>\r\n", "501 5.1.7|501 5.1.7" },
	                      { "MAIL FROM:<@r1.test,@r2.test:a@b.c>\r\n", "250 2.1.0" },
	                      { "RCPT TO:<@relay.test:>\r\nRCPT TO:<ok@desk.test@desk.test>\r\n", "501 5.1.3|501 5.1.3" },
	                      { "RCPT TO:<ok>\r\nRCPT TO:<@relay.test:postmaster>\r\nRCPT TO:<\"postmaster\">\r\n",
	                        "501 5.1.3|501 5.1.3|501 5.1.3" },
	                      { "RCPT TO:<\"nouser\"@desk.test>\r\nRCPT TO:<\"no\\user\"@desk.test>\r\n",
	                        "550 5.1.1 <nouser@desk.test>|550 5.1.1 <nouser@desk.test>" },
	                      { 0 } } },
	{ "mail-parameters", { { NULL, "220" }, { "LHLO c\r\n", "250" },
	                       { "MAIL FROM:<a@b.c> SIZE=2000000\r\n", "552 5.3.4" },
	                       { "MAIL FROM:<a@b.c> SIZE=12x\r\n", "501 5.5.4" },
	                       { "MAIL FROM:<a@b.c> BODY=BINARYMIME\r\n", "555 5.5.4" },
	                       { "MAIL FROM:<a@b.c> AUTH=<>\r\n", "555 5.5.4" },
	                       { "MAIL FROM:<a b@c>\r\n", "501 5.1.7" },
	                       { "MAIL FROM:<a@b.c>SIZE=1\r\n", "501 5.1.7" },
	                       { "MAIL FROM:<a@b.c> size=1048576 body=7bit\r\n", "250 2.1.0" }, { 0 } } },
	{ "misc", { { NULL, "220" }, { "VRFY ok@desk.test\r\n", "252 2.5.2" }, { "VRFY\r\n", "501 5.5.4" },
	            { "NOOP hello\r\n", "250 2.0.0" }, { "RSET now\r\n", "501 5.5.4" }, { "rset\r\n", "250 2.0.0" },
	            { "LHLO\r\n", "501 5.5.4" }, { "QUIT\r\n", "221 2.0.0|EOF" }, { 0 } } },
	{ "command-too-long", { { NULL, "220" }, { "NOOP " LONG_LINE_1000 "\r\n", "500 5.5.2" },
	                        { "NOOP " LONG_LINE_1000 LONG_LINE_1000 LONG_LINE_1000 "\r\nNOOP\r\n", "500 5.5.2|250 2.0.0" },
	                        { "NOOP " LONG_LINE LONG_LINE LONG_LINE "\r\n", "250 2.0.0" }, { 0 } } },
	/* A 1002-octet text line fails the body for every recipient, and
	 * nothing is half-stored; the session stays in step. */
	{ "data-line-too-long", { { NULL, "220" },
	                          { "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nRCPT TO:<ok2@desk.test>\r\nDATA\r\n",
	                            "250|250|250|250|354" },
	                          { "Subject: x\r\n\r\n." LONG_LINE_1000 "\r\nmore\r\n.\r\n", "500 5.5.2|500 5.5.2" },
	                          { "NOOP\r\n", "250 2.0.0" }, { "DATA\r\n", "503 5.5.1" }, { 0 } } },
	{ "too-big-in-data", { { NULL, "220" },
	                       { "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nRCPT TO:<temp@desk.test>\r\nDATA\r\n",
	                         "250|250|250|250|354" },
	                       { LONG_LINE "\r\n" LONG_LINE "\r\n.\r\n", "552 5.3.4 <ok@desk.test>|552 5.3.4 <temp@desk.test>" },
	                       { "MAIL FROM:<a@b.c>\r\n", "250 2.1.0" }, { 0 } } },
	{ "bdat", { { NULL, "220" }, { "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\n", "250|250|250" },
	            { "BDAT 8\r\na\r\n.\r\nb\n", "250 2.0.0 8 octets" }, { "DATA\r\n", "503 5.5.1" },
	            { "RCPT TO:<ok2@desk.test>\r\n", "503 5.5.1" },
	            { "BDAT 0 LAST\r\n", "250 2.0.0 <ok@desk.test> Delivered SUP-1" },
	            { "BDAT 6\r\nQUIT\r\n", "503 5.5.1" }, { "NOOP\r\n", "250" }, { "BDAT x\r\n", "501 5.5.4|EOF" },
	            { 0 } } },
	{ "bdat-too-big", { { NULL, "220" }, { "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\n", "250|250|250" },
	                    { "BDAT 200\r\n" LONG_LINE LONG_LINE, "552 5.3.4" },
	                    { "BDAT 1 LAST\r\nx", "503 5.5.1" }, { "NOOP\r\n", "250" }, { 0 } } },
	{ "bdat-too-big-last", { { NULL, "220" },
	                         { "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nRCPT TO:<full@desk.test>\r\n",
	                           "250|250|250|250" },
	                         { "BDAT 100\r\n" LONG_LINE, "250 2.0.0 100" },
	                         { "BDAT 100 LAST\r\n" LONG_LINE, "552 5.3.4 <ok@desk.test>|552 5.3.4 <full@desk.test>" },
	                         { 0 } } },
};

static void
test_error_codes (gconstpointer data)
{
	const Case *c = data;
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	if (g_str_has_prefix (c->name, "too-big") || g_str_has_prefix (c->name, "bdat-too-big"))
		cfg.max_message_size = 150;
	fixture_start (&f, &cfg, 5, "127.0.0.1:0");
	converse (fixture_address (&f), c->steps);
	g_assert_cmpuint (count_files (&f, "tmp"), ==, 0);
	if (!g_str_equal (c->name, "bdat")) {
		g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 0);
		g_assert_cmpuint (count_files (&f, "raw"), ==, 0);
	} else {
		g_autofree char *content = spooled (&f, 0);
		g_assert_cmpstr (content, ==, "a\r\n.\r\nb\n");
	}
	fixture_stop (&f);
}

static void
test_bdat_chunks (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 5, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nRCPT TO:<temp@desk.test>\r\n"
		  "BDAT 14\r\nSubject: x\r\n\r\n"
		  "BDAT 7 LAST\r\nbody.\r\n"
		  "MAIL FROM:<b@b.c>\r\n",
		  "250|250|250|250|250 2.0.0 14 octets|250 2.0.0 <ok@desk.test>|451 4.3.0 <temp@desk.test>|250 2.1.0" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_autofree char *content = spooled (&f, 0);
	g_assert_cmpstr (content, ==, "Subject: x\r\n\r\nbody.\r\n");
	fixture_stop (&f);
}

static void
test_too_many_recipients (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	cfg.max_recipients = 2;
	fixture_start (&f, &cfg, 0, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<a@desk.test>\r\nRCPT TO:<nouser@desk.test>\r\n"
		  "RCPT TO:<b@desk.test>\r\nRCPT TO:<c@desk.test>\r\nDATA\r\nx\r\n.\r\n",
		  "250|250|250|550 5.1.1|250 2.1.5|452 4.5.3|354|250 2.0.0 <a@desk.test>|250 2.0.0 <b@desk.test>" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	fixture_stop (&f);
}

/* RFC 5321 4.1.2: a quoted local part that could be a dot-string is the
 * same mailbox unquoted, and reaches the application so; one that needs
 * its quotes is passed on as written. */
static void
test_quoted_local_part (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, -1, "127.0.0.1:0");
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<\"alice\"@example.org>\r\n"
		  "RCPT TO:<\"support\"@desk.test>\r\nRCPT TO:<\"sup\\port+x.y\"@desk.test>\r\n"
		  "RCPT TO:<\"q x\"@desk.test>\r\nRCPT TO:<\"a..b\"@desk.test>\r\nRCPT TO:<\"\"@desk.test>\r\n"
		  "RCPT TO:<@relay.test:\"ok\"@desk.test>\r\nDATA\r\nhello\r\n.\r\n",
		  "250|250 2.1.0|250 2.1.5|250 2.1.5|250 2.1.5|250 2.1.5|250 2.1.5|250 2.1.5|354"
		  "|250 2.0.0 <support@desk.test>|250 2.0.0 <support+x.y@desk.test>|250 2.0.0 <\"q x\"@desk.test>"
		  "|250 2.0.0 <\"a..b\"@desk.test>|250 2.0.0 <\"\"@desk.test>|250 2.0.0 <ok@desk.test>" },
		{ "QUIT\r\n", "221" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 1);
	const MdTestDelivery *d = md_test_recorder_get (f.rec, 0);
	g_assert_cmpstr (d->sender, ==, "alice@example.org");
	const char *const want[] = { "support@desk.test", "support+x.y@desk.test", "\"q x\"@desk.test",
		                     "\"a..b\"@desk.test", "\"\"@desk.test", "ok@desk.test", NULL };
	g_assert_true (g_strv_equal ((const char *const *) d->rcpts, want));
	fixture_stop (&f);
}

/* The recorder's recipients, but like the desk's own check, no mailbox
 * named postmaster: the engine has to answer for it (RFC 5321 4.5.1). */
static gboolean
check_without_postmaster (gpointer app, const char *address, const char *const *accepted, GError **error)
{
	g_assert_nonnull (strchr (address, '@'));
	if (!md_test_recorder_callbacks ()->check_recipient (app, address, accepted, error))
		return FALSE;
	if (g_ascii_strncasecmp (address, "postmaster@", 11) == 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_NO_USER, "%s: no such address", address);
		return FALSE;
	}
	return TRUE;
}

/* RFC 5321 4.5.1: <Postmaster> in any case, and Postmaster@ a domain
 * served here, are taken; Postmaster@ another domain is not. */
static void
test_postmaster (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	g_autoptr (GError) error = NULL;
	fixture_start (&f, &cfg, -1, NULL);
	MdLmtpCallbacks cb = *md_test_recorder_callbacks ();
	cb.check_recipient = check_without_postmaster;
	md_lmtp_server_free (f.server);
	f.server = md_lmtp_server_new (&cfg, f.spool, &cb, f.rec, &error);
	g_assert_no_error (error);
	g_assert_true (md_lmtp_server_listen (f.server, "127.0.0.1:0", &error));
	const Step steps[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<>\r\n", "250|250 2.1.0" },
		{ "RCPT TO:<postmaster@elsewhere.test>\r\nRCPT TO:<nouser@desk.test>\r\n", "550 5.1.2|550 5.1.1" },
		{ "RCPT TO:<postmaster>\r\nRCPT TO:<POSTMASTER>\r\n", "250 2.1.5|250 2.1.5" },
		{ "RCPT TO:<Postmaster@support.desk.test>\r\n", "550 5.1.2" },
		{ "RCPT TO:<Postmaster@DESK.TEST>\r\nRCPT TO:<\"postmaster\"@desk.test>\r\n", "250 2.1.5|250 2.1.5" },
		{ "RCPT TO:<postmasters@desk.test>\r\n", "250 2.1.5" },
		{ "DATA\r\nhello\r\n.\r\n",
		  "354|250 2.0.0 <postmaster> Delivered|250 2.0.0 <POSTMASTER> Delivered"
		  "|250 2.0.0 <Postmaster@DESK.TEST> Delivered|250 2.0.0 <postmaster@desk.test> Delivered"
		  "|250 2.0.0 <postmasters@desk.test> Delivered" },
		{ "QUIT\r\n", "221" },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 1);
	const MdTestDelivery *d = md_test_recorder_get (f.rec, 0);
	const char *const want[] = { "postmaster", "POSTMASTER", "Postmaster@DESK.TEST", "postmaster@desk.test",
		                     "postmasters@desk.test", NULL };
	g_assert_true (g_strv_equal ((const char *const *) d->rcpts, want));
	fixture_stop (&f);
}

/* No reply until the idle timeout: 421 4.4.2 and the connection closes. A
 * delivery slower than the timeout is the server's own doing: no 421. */
static void
test_idle_timeout (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	cfg.idle_timeout_ms = 300;
	fixture_start (&f, &cfg, 700, "127.0.0.1:0");
	const Step slow[] = {
		{ NULL, "220" },
		{ "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\nx\r\n.\r\n", "250|250|250|354|250 2.0.0" },
		{ NULL, "421 4.4.2 " HOST "|EOF" },
		{ 0 },
	};
	gint64 start = g_get_monotonic_time ();
	converse (fixture_address (&f), slow);
	g_assert_cmpint (g_get_monotonic_time () - start, >=, 1000 * 1000);
	g_assert_cmpuint (md_lmtp_server_connections (f.server), ==, 0);
	fixture_stop (&f);
}

typedef struct {
	const char *address;
	char *first, *second, *second_after, *first_after;
	gint done;
} TwoClients;

static gpointer
two_clients_thread (gpointer data)
{
	TwoClients *t = data;
	Client a = client_connect (t->address);
	t->first = client_reply (&a);
	Client b = client_connect (t->address);
	t->second = client_reply (&b);
	t->second_after = client_reply (&b);
	client_send (&a, "NOOP\r\n", 6);
	t->first_after = client_reply (&a);
	client_close (&a);
	client_close (&b);
	g_atomic_int_set (&t->done, 1);
	g_main_context_wakeup (NULL);
	return NULL;
}

static void
test_too_many_connections (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	cfg.max_connections = 1;
	fixture_start (&f, &cfg, 0, "127.0.0.1:0");
	TwoClients t = { fixture_address (&f) };
	run_client (two_clients_thread, &t, &t.done);
	g_assert_true (g_str_has_prefix (t.first, "220 "));
	g_assert_true (g_str_has_prefix (t.second, "421 4.3.2 " HOST));
	g_assert_cmpstr (t.second_after, ==, "EOF");
	g_assert_true (g_str_has_prefix (t.first_after, "250 2.0.0"));
	g_free (t.first);
	g_free (t.second);
	g_free (t.second_after);
	g_free (t.first_after);
	fixture_stop (&f);
}

/* The client goes away in the middle of DATA (after 200 KB, so the spool
 * file exists) or of a BDAT chunk: nothing stays in tmp/ or raw/. */
static void
test_broken_mid_body (gconstpointer data)
{
	const char *body_command = data;
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, "127.0.0.1:0");
	g_autoptr (GString) body = g_string_new (NULL);
	while (body->len < 200 * 1024)
		g_string_append (body, LONG_LINE "\r\n");
	g_autofree char *first = g_strdup_printf ("LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\n%s", body_command);
	const Step steps[] = {
		{ NULL, "220" },
		{ first, g_str_has_prefix (body_command, "DATA") ? "250|250|250|354" : "250|250|250" },
		{ body->str, NULL },
		{ 0 },
	};
	converse (fixture_address (&f), steps);
	while (md_lmtp_server_connections (f.server) > 0)
		g_main_context_iteration (NULL, TRUE);
	g_assert_cmpuint (count_files (&f, "tmp"), ==, 0);
	g_assert_cmpuint (count_files (&f, "raw"), ==, 0);
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, 0);
	fixture_stop (&f);
}

static gboolean
ipv6_loopback_works (void)
{
	g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV6, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, NULL);
	g_autoptr (GSocketAddress) sa = g_inet_socket_address_new_from_string ("::1", 0);
	return sock && g_socket_bind (sock, sa, TRUE, NULL);
}

/* TCP, IPv6 and a Unix socket at once, each answering a whole message. */
static void
test_listeners (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, NULL);
	g_autofree char *sock_path = g_build_filename (f.dir, "lmtp.sock", NULL);
	gboolean v6 = ipv6_loopback_works ();
	g_autofree char *spec = g_strdup_printf (" 127.0.0.1:0 , unix:%s%s", sock_path, v6 ? ",[::1]:0" : "");
	g_autoptr (GError) error = NULL;

	if (!v6)
		g_test_message ("no IPv6 loopback on this machine: [::1] not exercised");
	g_assert_true (md_lmtp_server_listen (f.server, spec, &error));
	g_assert_no_error (error);
	const char *const *addresses = md_lmtp_server_addresses (f.server);
	g_assert_cmpuint (g_strv_length ((char **) addresses), ==, v6 ? 3 : 2);
	g_assert_true (g_str_has_prefix (addresses[0], "127.0.0.1:"));
	g_assert_false (g_str_has_suffix (addresses[0], ":0"));
	g_autofree char *unix_address = g_strdup_printf ("unix:%s", sock_path);
	g_assert_cmpstr (addresses[1], ==, unix_address);
	if (v6)
		g_assert_true (g_str_has_prefix (addresses[2], "[::1]:"));

	GStatBuf st;
	g_assert_cmpint (g_stat (sock_path, &st), ==, 0);
	g_assert_cmpint (st.st_mode & 0777, ==, 0660);

	g_auto (GStrv) copy = g_strdupv ((char **) addresses);
	for (char **a = copy; *a; a++) {
		const Step steps[] = {
			{ NULL, "220" },
			{ "LHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ok@desk.test>\r\nDATA\r\n", "250|250|250|354" },
			{ "hello\r\n.\r\nQUIT\r\n", "250 2.0.0|221|EOF" },
			{ 0 },
		};
		converse (*a, steps);
	}
	g_assert_cmpuint (md_test_recorder_count (f.rec), ==, g_strv_length (copy));
	md_lmtp_server_stop_accepting (f.server);
	g_assert_false (g_file_test (sock_path, G_FILE_TEST_EXISTS));
	g_assert_cmpuint (g_strv_length ((char **) md_lmtp_server_addresses (f.server)), ==, 0);
	fixture_stop (&f);
}

/* A socket file left by a crash is replaced; a live one, or a file that
 * is not a socket, is an error and is left alone. */
static void
test_unix_socket_files (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, NULL);
	g_autofree char *path = g_build_filename (f.dir, "stale.sock", NULL);
	g_autofree char *spec = g_strdup_printf ("unix:%s", path);
	g_autoptr (GError) error = NULL;

	{
		g_autoptr (GSocket) dead = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
		g_autoptr (GSocketAddress) sa = g_unix_socket_address_new (path);
		g_assert_true (g_socket_bind (dead, sa, FALSE, NULL));
	}
	g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));
	g_assert_true (md_lmtp_server_listen (f.server, spec, &error));
	g_assert_no_error (error);

	/* A second server on the same, live path. */
	g_autoptr (MdLmtpServer) other = md_lmtp_server_new (&cfg, f.spool, md_test_recorder_callbacks (), f.rec, &error);
	g_assert_false (md_lmtp_server_listen (other, spec, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	g_clear_error (&error);
	g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));

	g_autofree char *plain = g_build_filename (f.dir, "plain", NULL);
	g_autofree char *plain_spec = g_strdup_printf ("127.0.0.1:0,unix:%s", plain);
	g_assert_true (g_file_set_contents (plain, "keep me", -1, NULL));
	g_assert_false (md_lmtp_server_listen (other, plain_spec, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
	g_autofree char *kept = NULL;
	g_assert_true (g_file_get_contents (plain, &kept, NULL, NULL));
	g_assert_cmpstr (kept, ==, "keep me");
	g_assert_cmpuint (g_strv_length ((char **) md_lmtp_server_addresses (other)), ==, 0);
	fixture_stop (&f);
}

static void
test_listen_spec_errors (void)
{
	static const char *const bad[] = {
		"", " , ", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:2x",
		"[::1:25", "[::1]25", "[127.0.0.1]:25", "::1:25", "unix:", "unix:relative/path",
		"unix:/" LONG_LINE "/" LONG_LINE "/x.sock", "127.0.0.1:0,bogus",
	};
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, NULL);
	for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr (GError) error = NULL;
		if (md_lmtp_server_listen (f.server, bad[i], &error))
			g_error ("listen \"%s\" was accepted", bad[i]);
		g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
		g_assert_cmpuint (g_strv_length ((char **) md_lmtp_server_addresses (f.server)), ==, 0);
	}
	fixture_stop (&f);
}

/* Freeing the server tells connected clients 421 4.3.2. */
static gpointer
shutdown_client_thread (gpointer data)
{
	TwoClients *t = data;
	Client a = client_connect (t->address);
	t->first = client_reply (&a);
	g_atomic_int_set (&t->done, 1);
	g_main_context_wakeup (NULL);
	t->second = client_reply (&a);
	t->second_after = client_reply (&a);
	client_close (&a);
	return NULL;
}

static void
test_shutdown (void)
{
	Fixture f = { 0 };
	MdLmtpConfig cfg = base_config ();
	fixture_start (&f, &cfg, 0, "127.0.0.1:0");
	TwoClients t = { fixture_address (&f) };
	GThread *thread = g_thread_new ("client", shutdown_client_thread, &t);
	while (!g_atomic_int_get (&t.done) || md_lmtp_server_connections (f.server) == 0)
		g_main_context_iteration (NULL, TRUE);
	g_clear_pointer (&f.server, md_lmtp_server_free);
	g_thread_join (thread);
	g_assert_true (g_str_has_prefix (t.first, "220"));
	g_assert_true (g_str_has_prefix (t.second, "421 4.3.2"));
	g_assert_cmpstr (t.second_after, ==, "EOF");
	g_free (t.first);
	g_free (t.second);
	g_free (t.second_after);
	MdLmtpConfig again = base_config ();
	f.server = md_lmtp_server_new (&again, f.spool, md_test_recorder_callbacks (), f.rec, NULL);
	fixture_stop (&f);
}

int
main (int argc, char **argv)
{
	log_lines = g_ptr_array_new_with_free_func (g_free);
	g_log_set_writer_func (capture_writer, NULL, NULL);
	g_test_init (&argc, &argv, NULL);
	/* Warnings are the engine's report of trouble a test causes on purpose. */
	g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
	g_test_add_func ("/lmtp/greeting-and-lhlo", test_greeting_and_lhlo);
	g_test_add_func ("/lmtp/pipelined-mixed-results", test_pipelined_mixed_results);
	g_test_add_func ("/lmtp/dot-unstuffing", test_dot_unstuffing);
	g_test_add_func ("/lmtp/no-smuggling", test_no_smuggling);
	g_test_add_func ("/lmtp/empty-message", test_empty_message);
	g_test_add_func ("/lmtp/log-not-delivered", test_log_not_delivered);
	g_test_add_func ("/lmtp/slow-reader", test_slow_reader);
	g_test_add_func ("/lmtp/half-close", test_half_close);
	g_test_add_func ("/lmtp/line-limit-boundary", test_line_limit_boundary);
	for (gsize i = 0; i < G_N_ELEMENTS (error_cases); i++) {
		g_autofree char *path = g_strdup_printf ("/lmtp/errors/%s", error_cases[i].name);
		g_test_add_data_func (path, &error_cases[i], test_error_codes);
	}
	g_test_add_func ("/lmtp/bdat-chunks", test_bdat_chunks);
	g_test_add_func ("/lmtp/spool-failure", test_spool_failure);
	g_test_add_func ("/lmtp/quoted-local-part", test_quoted_local_part);
	g_test_add_func ("/lmtp/postmaster", test_postmaster);
	g_test_add_func ("/lmtp/too-many-recipients", test_too_many_recipients);
	g_test_add_func ("/lmtp/idle-timeout", test_idle_timeout);
	g_test_add_func ("/lmtp/too-many-connections", test_too_many_connections);
	g_test_add_data_func ("/lmtp/broken-mid-data", "DATA\r\n", test_broken_mid_body);
	g_test_add_data_func ("/lmtp/broken-mid-bdat", "BDAT 900000 LAST\r\n", test_broken_mid_body);
	g_test_add_func ("/lmtp/listeners", test_listeners);
	g_test_add_func ("/lmtp/unix-socket-files", test_unix_socket_files);
	g_test_add_func ("/lmtp/listen-spec-errors", test_listen_spec_errors);
	g_test_add_func ("/lmtp/shutdown", test_shutdown);
	return g_test_run ();
}
