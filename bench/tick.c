/* bench/tick.c - the cost of one tick against the size of the desk
 * (issue 6): due work is found through the timers_due index, so a tick
 * with the same few hundred due timers should take the same time with
 * 10,000 or 1,000,000 tickets in the database.
 *
 * For each size, a fresh desk gets N generated tickets (bulk SQL in one
 * transaction): 90% resolved, 10% waiting for the customer with a
 * follow-up pending in the future, each with three old, done SLA timers
 * (so the timers table holds about 3.1 N rows).  Then DUE P1 tickets are
 * created through the store and md_schedule_ticket, 2h05m before NOW,
 * so each has its 50% reminder due.  One tick at NOW is timed (it runs
 * DUE timers and queues DUE reminders), then a second one (nothing to
 * do), and md_schedule_next_due.
 *
 *   make bench && bench/tick [DUE [N...]]     (default: 300 10000 1000000)
 * MD_BENCH_TRACE=1 prints the statements of the tick slower than 0.5 ms.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "catalog.h"
#include "desk.h"
#include "md.h"
#include "schedule.h"
#include "workflow.h"

#define NOW_ISO "2026-12-02T12:00:00+02:00"

static void
exec (MdStore *store, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec (md_store_db (store), sql, NULL, NULL, &msg) != SQLITE_OK)
		g_error ("%s: %s", sql, msg);
}

static void
generate (MdStore *store, gint64 n, gint64 now)
{
	g_autofree char *tickets = g_strdup_printf (
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %" G_GINT64_FORMAT ") "
		"INSERT INTO tickets (subject, category, priority, status, requester_id, created_at, updated_at, "
		"first_response_due, first_response_at, resolved_at, status_changed_at) "
		"SELECT 'Generated ticket ' || x, 'Technical Request', 'P3', "
		"CASE WHEN x %% 10 = 0 THEN 'Waiting for customer' ELSE 'Resolved' END, 1, "
		"%" G_GINT64_FORMAT " - 600 * x, %" G_GINT64_FORMAT " - 600 * x + 7200, "
		"%" G_GINT64_FORMAT " - 600 * x + 86400, %" G_GINT64_FORMAT " - 600 * x + 3600, "
		"CASE WHEN x %% 10 = 0 THEN NULL ELSE %" G_GINT64_FORMAT " - 600 * x + 7200 END, "
		"%" G_GINT64_FORMAT " - 600 * x + 7200 FROM c",
		n, now - 86400, now - 86400, now - 86400, now - 86400, now - 86400, now - 86400);
	exec (store, "PRAGMA synchronous = OFF");
	exec (store, "BEGIN");
	exec (store, tickets);
	exec (store, "INSERT INTO timers (ticket_id, kind, arg, due_at, done_at) "
	             "SELECT id, 'sla-reminder', '50%', created_at + 1800, created_at + 1800 FROM tickets");
	exec (store, "INSERT INTO timers (ticket_id, kind, arg, due_at, done_at) "
	             "SELECT id, 'sla-reminder', '75%', created_at + 2700, created_at + 2700 FROM tickets");
	exec (store, "INSERT INTO timers (ticket_id, kind, arg, due_at, done_at) "
	             "SELECT id, 'sla-reminder', '90%', created_at + 3240, created_at + 3240 FROM tickets");
	g_autofree char *followups = g_strdup_printf (
		"INSERT INTO timers (ticket_id, kind, arg, due_at) SELECT id, 'followup', '1', "
		"%" G_GINT64_FORMAT " + 3600 + (id %% 30) * 86400 FROM tickets WHERE status = 'Waiting for customer'", now);
	exec (store, followups);
	exec (store, "COMMIT");
	exec (store, "PRAGMA synchronous = FULL");
}

static void
add_due_tickets (MdDesk *desk, MdStore *store, int due, gint64 now)
{
	g_autoptr (GError) error = NULL;
	if (!md_store_begin (store, &error))
		g_error ("%s", error->message);
	for (int i = 0; i < due; i++) {
		gint64 created = now - 2 * 3600 - 300 - i;
		g_autofree char *iso = md_time_iso_utc (created);
		g_setenv ("MAILDESK_NOW", iso, TRUE);
		MdTicket t = {
			.subject = (char *) "Checkout broken", .category = MD_DEFAULT_CATEGORY, .priority = "P1",
			.status = MD_STATUS_TRIAGE, .requester_id = 1, .created_at = created, .updated_at = created,
			.status_changed_at = created,
		};
		t.first_response_due = md_workflow_first_response_due (desk, "P1", created);
		g_autoptr (MdTicket) full = NULL;
		if (!md_store_ticket_insert (store, &t, &error) || !(full = md_store_ticket_get (store, t.id, &error)) ||
		    !md_schedule_ticket (desk, store, full, &error))
			g_error ("%s", error->message);
	}
	if (!md_store_commit (store, &error))
		g_error ("%s", error->message);
	g_setenv ("MAILDESK_NOW", NOW_ISO, TRUE);
}

static gint64
count (MdStore *store, const char *sql)
{
	sqlite3_stmt *s = NULL;
	sqlite3_prepare_v2 (md_store_db (store), sql, -1, &s, NULL);
	gint64 n = sqlite3_step (s) == SQLITE_ROW ? sqlite3_column_int64 (s, 0) : -1;
	sqlite3_finalize (s);
	return n;
}

static int
slow_statement (unsigned type, void *ctx, void *p, void *x)
{
	gint64 ns = *(gint64 *) x;
	if (ns > 500000 && g_getenv ("MD_BENCH_TRACE"))
		fprintf (stderr, "%.2f ms: %s\n", ns / 1e6, sqlite3_sql (p));
	return 0;
}

static void
run (gint64 n, int due)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-bench-tick-XXXXXX", &error);
	MdConf *conf = md_conf_new_defaults ();
	g_free (conf->data_dir);
	conf->data_dir = g_build_filename (dir, "var", NULL);
	g_strfreev (conf->agents);
	conf->agents = g_strsplit ("jane@support.example.com", ",", -1);
	g_mkdir_with_parents (conf->data_dir, 0700);
	g_autoptr (MdDesk) desk = md_desk_open (conf, &error);
	if (!desk)
		g_error ("%s", error->message);
	gint64 now = md_now ();

	gint64 t0 = g_get_monotonic_time ();
	{
		g_autoptr (MdStore) gen = md_desk_open_store (desk, FALSE, &error);
		if (!gen || !md_store_person_ensure (gen, "alice@customer.example", "Alice", NULL, &error))
			g_error ("%s", error->message);
		generate (gen, n, now);
		add_due_tickets (desk, gen, due, now);
		exec (gen, "PRAGMA wal_checkpoint(TRUNCATE)");
		exec (gen, "ANALYZE");
	}
	double gen_s = (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC;

	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	sqlite3_trace_v2 (md_store_db (store), SQLITE_TRACE_PROFILE, slow_statement, NULL);
	gint64 tickets = count (store, "SELECT count(*) FROM tickets");
	gint64 timers = count (store, "SELECT count(*) FROM timers");
	gint64 pending = count (store, "SELECT count(*) FROM timers WHERE done_at IS NULL");

	guint ran1 = 0, ran2 = 0;
	t0 = g_get_monotonic_time ();
	if (!md_schedule_run_due (desk, store, now, &ran1, &error))
		g_error ("%s", error->message);
	double tick1 = (double) (g_get_monotonic_time () - t0) / 1000;
	t0 = g_get_monotonic_time ();
	if (!md_schedule_run_due (desk, store, now, &ran2, &error))
		g_error ("%s", error->message);
	double tick2 = (double) (g_get_monotonic_time () - t0) / 1000;
	t0 = g_get_monotonic_time ();
	gint64 next = md_schedule_next_due (store, &error);
	double next_ms = (double) (g_get_monotonic_time () - t0) / 1000;
	gint64 queued = count (store, "SELECT count(*) FROM outbox");

	printf ("%9" G_GINT64_FORMAT " tickets, %8" G_GINT64_FORMAT " timers (%6" G_GINT64_FORMAT " pending), "
	        "generated in %5.1f s\n", tickets, timers, pending, gen_s);
	printf ("          tick: ran %u timers, queued %" G_GINT64_FORMAT " mails in %7.1f ms (%.2f ms per timer); "
	        "again: ran %u in %.2f ms; next due in %.3f ms (%s)\n",
	        ran1, queued, tick1, ran1 ? tick1 / ran1 : 0.0, ran2, tick2, next_ms, next > now ? "future" : "PAST");
	fflush (stdout);
	g_clear_pointer (&store, md_store_close);
	md_remove_tree (dir);
}

int
main (int argc, char **argv)
{
	md_message_init ();
	g_setenv ("MAILDESK_NOW", NOW_ISO, TRUE);
	int due = argc > 1 ? atoi (argv[1]) : 300;
	if (argc > 2) {
		for (int i = 2; i < argc; i++)
			run (g_ascii_strtoll (argv[i], NULL, 10), due);
	} else {
		run (10000, due);
		run (1000000, due);
	}
	return 0;
}
