/* imap-test-poller.c - the IMAP poller threads (md_imap_start) on a
 * main loop, for tests/test_imap.py until `maildesk serve` runs them.
 *
 * usage: imap-test-poller CONFIG
 * Prints "ready" once the threads run; SIGTERM or SIGINT stops them
 * (md_imap_stop) and it prints "stopped" and exits 0.
 */
#include "config.h"

#include <glib-unix.h>
#include <stdio.h>

#include "desk.h"
#include "imap.h"
#include "md.h"
#include "message.h"

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

	if (argc != 2) {
		fprintf (stderr, "usage: %s CONFIG\n", argv[0]);
		return MD_EX_USAGE;
	}
	md_message_init ();
	MdConf *conf = md_conf_load (argv[1], &error);
	g_autoptr (MdDesk) desk = conf ? md_desk_open (conf, &error) : NULL;
	MdImapPoller *poller = desk ? md_imap_start (desk, &error) : NULL;
	if (!poller) {
		fprintf (stderr, "%s\n", error->message);
		return MD_EX_CONFIG;
	}
	printf ("ready\n");
	fflush (stdout);

	g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
	g_unix_signal_add (SIGTERM, on_signal, loop);
	g_unix_signal_add (SIGINT, on_signal, loop);
	g_main_loop_run (loop);
	md_imap_stop (poller);
	printf ("stopped\n");
	fflush (stdout);
	return MD_EX_OK;
}
