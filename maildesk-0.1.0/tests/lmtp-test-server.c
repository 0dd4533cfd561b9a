/* lmtp-test-server.c - the LMTP engine with the recording application
 * (lmtp-recorder.h), for conversations with real clients (swaks, Python's
 * smtplib) from tests/lmtp-swaks.sh until `maildesk serve` exists.
 *
 * usage: lmtp-test-server SPOOL_DIR LISTEN [MAX_MESSAGE_SIZE [ANSWER_DELAY_MS]]
 * Prints "listening ADDRESS" per listener, then "ready"; then one line per
 * delivery: "delivered from=<..> rcpts=<a>,<b> size=N sha256=HEX".
 * SIGTERM or SIGINT stops it.
 */
#include "config.h"

#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>

#include "md.h"
#include "lmtp.h"
#include "lmtp-recorder.h"

static void
print_delivery (const MdTestDelivery *d, gpointer data)
{
	g_autofree char *rcpts = g_strjoinv (">,<", d->rcpts);
	printf ("delivered from=<%s> rcpts=<%s> size=%" G_GINT64_FORMAT " sha256=%s\n", d->sender, rcpts, d->size,
	        d->sha256);
	fflush (stdout);
}

static gboolean
on_signal (gpointer data)
{
	g_main_loop_quit (data);
	return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
	g_autoptr (GError) error = NULL;

	if (argc < 3 || argc > 5) {
		fprintf (stderr, "usage: %s SPOOL_DIR LISTEN [MAX_MESSAGE_SIZE [ANSWER_DELAY_MS]]\n", argv[0]);
		return MD_EX_USAGE;
	}
	MdLmtpConfig cfg = { .hostname = "lmtp.desk.test" };
	cfg.max_message_size = argc > 3 ? g_ascii_strtoll (argv[3], NULL, 10) : 0;
	int delay = argc > 4 ? atoi (argv[4]) : 5;
	g_autoptr (MdSpool) spool = md_spool_open (argv[1], &error);
	if (!spool) {
		fprintf (stderr, "%s\n", error->message);
		return MD_EX_TEMPFAIL;
	}
	g_autoptr (MdTestRecorder) rec = md_test_recorder_new (delay);
	md_test_recorder_set_hook (rec, print_delivery, NULL);
	MdLmtpServer *server = md_lmtp_server_new (&cfg, spool, md_test_recorder_callbacks (), rec, &error);
	if (!server || !md_lmtp_server_listen (server, argv[2], &error)) {
		fprintf (stderr, "%s\n", error->message);
		md_lmtp_server_free (server);
		return MD_EX_CONFIG;
	}
	for (const char *const *a = md_lmtp_server_addresses (server); *a; a++)
		printf ("listening %s\n", *a);
	printf ("ready\n");
	fflush (stdout);

	g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
	g_unix_signal_add (SIGTERM, on_signal, loop);
	g_unix_signal_add (SIGINT, on_signal, loop);
	g_main_loop_run (loop);
	md_lmtp_server_stop_accepting (server);
	while (md_lmtp_server_active_transactions (server) > 0)
		g_main_context_iteration (NULL, TRUE);
	md_lmtp_server_free (server);
	return MD_EX_OK;
}
