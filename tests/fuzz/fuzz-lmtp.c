/* fuzz-lmtp.c - libFuzzer target: the input is what a client sends, fed
 * to one LMTP session (no socket) in pieces whose size the first byte
 * picks, so lines and DATA/BDAT bodies split at every place.  Deliveries
 * go through the real spool and the recording application.
 *
 * Checks beyond the sanitizers: every reply line is "ddd" + ' ' or '-' +
 * text + CRLF; every final 2xx/4xx/5xx reply (bar the greeting and the
 * LHLO capability list) carries an enhanced code of the same class
 * (RFC 2034); and after the session is gone nothing is left in spool tmp/.
 *
 * Build, from a configured build directory (config.h):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc -Itests \
 *     $(pkg-config --cflags gio-2.0 gio-unix-2.0) tests/fuzz/fuzz-lmtp.c \
 *     tests/lmtp-recorder.c src/lmtp.c src/lmtp-session.c src/spool.c src/md.c \
 *     $(pkg-config --libs gio-2.0 gio-unix-2.0) -o tests/fuzz/fuzz-lmtp
 * Run:
 *   mkdir -p /tmp/lmtp-corpus && cp -r tests/fuzz/corpus-lmtp/. /tmp/lmtp-corpus
 *   ./tests/fuzz/fuzz-lmtp -max_total_time=60 -max_len=8192 /tmp/lmtp-corpus
 */
#include "config.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"
#include "lmtp-session.h"
#include "lmtp-recorder.h"

static char *spool_dir;
static char *tmp_dir;
static MdSpool *spool;
static MdTestRecorder *recorder;
static MdLmtpServer *server;

static GLogWriterOutput
quiet_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
		g_log_writer_standard_streams (level, fields, n_fields, data);
		abort ();
	}
	return G_LOG_WRITER_HANDLED;
}

static void
cleanup (void)
{
	md_lmtp_server_free (server);
	md_test_recorder_free (recorder);
	md_spool_free (spool);
	md_remove_tree (spool_dir);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	g_log_set_writer_func (quiet_writer, NULL, NULL);
	spool_dir = g_dir_make_tmp ("md-fuzz-lmtp-XXXXXX", NULL);
	g_assert (spool_dir);
	tmp_dir = g_build_filename (spool_dir, "tmp", NULL);
	spool = md_spool_open (spool_dir, NULL);
	recorder = md_test_recorder_new (-1);
	/* Small limits, so that the fuzzer reaches them. */
	MdLmtpConfig cfg = { .hostname = "fuzz.test", .max_message_size = 2048, .max_recipients = 4,
		             .max_line_length = 128 };
	server = md_lmtp_server_new (&cfg, spool, md_test_recorder_callbacks (), recorder, NULL);
	g_assert (server);
	atexit (cleanup);
	return 0;
}

static gboolean
is_enhanced_code (const char *p, char class)
{
	/* class "." 1*3digit "." 1*3digit SP (RFC 3463 2) */
	if (p[0] != class || p[1] != '.')
		return FALSE;
	p += 2;
	for (int part = 0; part < 2; part++) {
		int digits = 0;
		while (g_ascii_isdigit (*p) && digits < 4) {
			p++;
			digits++;
		}
		if (digits < 1 || digits > 3 || *p != (part == 0 ? '.' : ' '))
			return FALSE;
		p++;
	}
	return TRUE;
}

static void
check_output (GString *out)
{
	const char *p = out->str;
	const char *end = out->str + out->len;

	while (p < end) {
		const char *crlf = g_strstr_len (p, end - p, "\r\n");
		g_assert (crlf);
		g_assert (crlf - p >= 4);
		g_assert (g_ascii_isdigit (p[0]) && g_ascii_isdigit (p[1]) && g_ascii_isdigit (p[2]));
		g_assert (p[3] == ' ' || p[3] == '-');
		g_assert (!memchr (p, '\n', crlf - p) && !memchr (p, '\r', crlf - p));
		gboolean exempt = g_str_has_prefix (p, "220 ") || g_str_has_prefix (p, "354 ")
		                  || g_str_has_prefix (p, "250 SIZE ");
		if (p[3] == ' ' && !exempt)
			g_assert (is_enhanced_code (p + 4, p[0]));
		p = crlf + 2;
	}
	g_string_truncate (out, 0);
}

static void
wait_for_delivery (MdLmtpSession *s)
{
	while (md_lmtp_session_waiting (s))
		g_main_context_iteration (NULL, TRUE);
}

static guint
count_entries (const char *path)
{
	g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
	guint n = 0;
	while (dir && g_dir_read_name (dir))
		n++;
	return n;
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
	if (size == 0)
		return 0;
	guint8 mode = data[0];
	gsize piece = (mode & 0x0f) ? (mode & 0x0f) : G_MAXSIZE;
	data++;
	size--;

	MdLmtpSession *s = md_lmtp_session_new (server, "fuzz", NULL, NULL);
	while (size > 0 && !md_lmtp_session_closing (s)) {
		gsize room = md_lmtp_session_input_room (s);
		if (room == 0) {
			wait_for_delivery (s);
			check_output (md_lmtp_session_output (s));
			md_lmtp_session_input (s, NULL, 0);
			continue;
		}
		gsize n = MIN (MIN (room, piece), size);
		md_lmtp_session_input (s, data, n);
		data += n;
		size -= n;
	}
	wait_for_delivery (s);
	if (mode & 0x80)
		md_lmtp_session_timeout (s);
	else if (mode & 0x40)
		md_lmtp_session_shutdown (s);
	check_output (md_lmtp_session_output (s));
	md_lmtp_session_free (&s, "eof");
	g_assert (md_lmtp_server_active_transactions (server) == 0);
	g_assert (count_entries (tmp_dir) == 0);
	return 0;
}
