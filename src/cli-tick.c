/* cli-tick.c - `maildesk tick`: the scheduler's due work once, at
 * MAILDESK_NOW or the real time (DESIGN 3, 9). */
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "md.h"
#include "schedule.h"

int
md_cmd_tick (int argc, char **argv)
{
	if (!md_cli_parse ("tick", NULL, "Run due scheduler work once: SLA reminders and breach notices, "
	                   "follow-ups, automatic resolution.", NULL, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 1) {
		fprintf (stderr, "maildesk: tick takes no arguments\n");
		return MD_EX_USAGE;
	}
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	guint ran = 0;
	if (!store || !md_schedule_run_due (desk, store, md_now (), &ran, &error)) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	/* A desk without serve (deliver and cron) has no other sweeper of
	 * what killed writers left in spool/tmp (serve.c does the same). */
	md_spool_clean_tmp (desk->spool, 24 * 3600);
	printf ("ran %u timers\n", ran);
	return MD_EX_OK;
}
