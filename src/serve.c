/* serve.c - `maildesk serve`: the daemon's main loop.  Signals arrive as
 * main-loop events (g_unix_signal_add): SIGTERM/SIGINT stop it. */
#include "config.h"

#include <glib-unix.h>
#include <stdio.h>

#include "cli.h"
#include "md.h"

static gboolean
on_stop_signal (gpointer loop)
{
	g_message ("serve: stopping");
	g_main_loop_quit (loop);
	return G_SOURCE_REMOVE;
}

int
md_cmd_serve (int argc, char **argv)
{
	if (!md_cli_parse ("serve", NULL, "Run the daemon.", NULL, &argc, &argv))
		return MD_EX_USAGE;
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	if (!store) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
	g_unix_signal_add (SIGTERM, on_stop_signal, loop);
	g_unix_signal_add (SIGINT, on_stop_signal, loop);
	g_message ("serve: desk %s, database %s", desk->desk_address, desk->db_path);
	g_main_loop_run (loop);
	return MD_EX_OK;
}
