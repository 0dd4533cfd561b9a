/* cli-fetch.c - `maildesk fetch [NAME]`: poll the configured IMAP
 * mailboxes (or the one named) once and exit, for cron.  Exit codes are
 * sysexits(3): 0 all done, 75 temporary trouble (cron tries again), 78
 * when a human must act (configuration, password, certificate). */
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "imap.h"
#include "md.h"

int
md_cmd_fetch (int argc, char **argv)
{
	if (!md_cli_parse ("fetch", "[NAME]", "Poll the configured IMAP mailboxes (or the one named) once.", NULL,
	                   &argc, &argv))
		return MD_EX_USAGE;
	if (argc > 2) {
		fprintf (stderr, "maildesk fetch: at most one mailbox name\n");
		return MD_EX_USAGE;
	}
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;

	g_autoptr (GError) error = NULL;
	if (!md_imap_fetch_once (desk, argc == 2 ? argv[1] : NULL, &error)) {
		md_cli_error (error);
		return g_error_matches (error, MD_ERROR, MD_ERROR_CONFIG) ? MD_EX_CONFIG : MD_EX_TEMPFAIL;
	}
	return MD_EX_OK;
}
