/* test-schedule.c - a ticket's timers on a temporary desk: what is
 * armed when (business time, Europe/Kyiv), what cancels and re-arms
 * it, and that running due timers twice queues nothing twice. */
#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>

#include "catalog.h"
#include "md.h"
#include "notify.h"
#include "outbox.h"
#include "schedule.h"
#include "workflow.h"

typedef struct {
	char *dir;
	MdDesk *desk;
	MdStore *store;
} Fixture;

static gint64
at (const char *iso)
{
	g_autoptr (GDateTime) dt = g_date_time_new_from_iso8601 (iso, NULL);
	g_assert_nonnull (dt);
	return g_date_time_to_unix (dt);
}

static void
set_now (const char *iso)
{
	g_setenv ("MAILDESK_NOW", iso, TRUE);
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
	g_autoptr (GError) error = NULL;
	const char *top = g_getenv ("MD_TOP_SRCDIR");
	fx->dir = g_dir_make_tmp ("md-schedule-XXXXXX", &error);
	g_assert_no_error (error);
	MdConf *conf = md_conf_new_defaults ();
	g_free (conf->data_dir);
	conf->data_dir = g_build_filename (fx->dir, "var", NULL);
	g_free (conf->rules);
	conf->rules = g_build_filename (top ? top : ".", "filters", "default.rules", NULL);
	g_free (conf->templates);
	conf->templates = g_build_filename (top ? top : ".", "templates", NULL);
	conf->escalate_to = g_strdup ("leads@support.example.com");
	g_strfreev (conf->agents);
	conf->agents = g_strsplit ("jane@support.example.com,joe@support.example.com", ",", -1);
	g_mkdir_with_parents (conf->data_dir, 0700);
	fx->desk = md_desk_open (conf, &error);
	g_assert_no_error (error);
	fx->store = md_desk_open_store (fx->desk, FALSE, &error);
	g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
	md_store_close (fx->store);
	md_desk_free (fx->desk);
	md_remove_tree (fx->dir);
	g_free (fx->dir);
	g_unsetenv ("MAILDESK_NOW");
}

/* A ticket from alice created at CREATED (ISO), armed as ingest arms it. */
static MdTicket *
new_ticket (Fixture *fx, const char *created, const char *priority)
{
	g_autoptr (GError) error = NULL;
	gint64 requester = 0;
	set_now (created);
	g_assert_true (md_store_begin (fx->store, &error));
	g_assert_true (md_store_person_ensure (fx->store, "alice@customer.example", "Alice", &requester, &error));
	MdTicket t = {
		.subject = (char *) "Export fails",
		.category = MD_DEFAULT_CATEGORY,
		.priority = priority,
		.status = MD_STATUS_TRIAGE,
		.requester_id = requester,
		.created_at = at (created),
		.updated_at = at (created),
		.status_changed_at = at (created),
	};
	t.first_response_due = md_workflow_first_response_due (fx->desk, priority, t.created_at);
	g_assert_true (md_store_ticket_insert (fx->store, &t, &error));
	MdTicket *full = md_store_ticket_get (fx->store, t.id, &error);
	g_assert_no_error (error);
	g_assert_true (md_schedule_ticket (fx->desk, fx->store, full, &error));
	g_assert_true (md_store_commit (fx->store, &error));
	return full;
}

/* Pending timers, "kind arg local-time" in due order, joined by "; ". */
static char *
pending (Fixture *fx)
{
	sqlite3_stmt *s = NULL;
	g_assert_cmpint (sqlite3_prepare_v2 (md_store_db (fx->store),
	                                     "SELECT kind, arg, due_at FROM timers WHERE done_at IS NULL "
	                                     "ORDER BY due_at, id", -1, &s, NULL), ==, SQLITE_OK);
	g_autoptr (GString) out = g_string_new (NULL);
	while (sqlite3_step (s) == SQLITE_ROW) {
		g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (sqlite3_column_int64 (s, 2));
		g_autoptr (GDateTime) local = g_date_time_to_timezone (utc, md_calendar_zone (fx->desk->calendar));
		g_autofree char *when = g_date_time_format (local, "%a %d %H:%M");
		const char *arg = (const char *) sqlite3_column_text (s, 1);
		g_string_append_printf (out, "%s%s%s%s %s", out->len ? "; " : "", sqlite3_column_text (s, 0),
		                        *arg ? " " : "", arg, when);
	}
	sqlite3_finalize (s);
	return g_strdup (out->str);
}

/* Queued mail, "kind>rcpt" in order, joined by "; ". */
static char *
outbox (Fixture *fx)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (GPtrArray) rows = md_outbox_list (fx->store, NULL, &error);
	g_assert_no_error (error);
	g_autoptr (GString) out = g_string_new (NULL);
	for (guint i = 0; i < rows->len; i++) {
		MdOutboxEntry *e = rows->pdata[i];
		if (strcmp (e->kind, "ack") != 0)
			g_string_append_printf (out, "%s%s>%s", out->len ? "; " : "", e->kind, e->rcpt_to);
	}
	return g_strdup (out->str);
}

/* The scheduler's history of ticket ID, "field=new" joined by "; ". */
static char *
history (Fixture *fx, gint64 id)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (GPtrArray) rows = md_store_ticket_history (fx->store, id, &error);
	g_assert_no_error (error);
	g_autoptr (GString) out = g_string_new (NULL);
	for (guint i = 0; i < rows->len; i++) {
		MdHistoryEntry *h = rows->pdata[i];
		if (strcmp (h->actor, "system") == 0)
			g_string_append_printf (out, "%s%s=%s", out->len ? "; " : "", h->field, h->new_value);
	}
	return g_strdup (out->str);
}

static guint
tick (Fixture *fx, const char *now)
{
	g_autoptr (GError) error = NULL;
	guint ran = 0;
	set_now (now);
	g_assert_true (md_schedule_run_due (fx->desk, fx->store, at (now), &ran, &error));
	g_assert_no_error (error);
	return ran;
}

static MdTicket *
reload (Fixture *fx, MdTicket *t)
{
	g_autoptr (GError) error = NULL;
	MdTicket *fresh = md_store_ticket_get (fx->store, t->id, &error);
	g_assert_no_error (error);
	md_ticket_free (t);
	return fresh;
}

/* Runs F on the ticket inside a transaction at NOW, as a command would. */
typedef gboolean (*Change) (Fixture *fx, MdTicket *t, const char *arg, GError **error);

static void
change (Fixture *fx, MdTicket *t, const char *now, Change f, const char *arg)
{
	g_autoptr (GError) error = NULL;
	set_now (now);
	g_assert_true (md_store_begin (fx->store, &error));
	g_assert_true (f (fx, t, arg, &error));
	g_assert_no_error (error);
	g_assert_true (md_store_commit (fx->store, &error));
}

static const MdActor jane = { MD_ACTOR_AGENT, "jane@support.example.com", "Jane" };
static const MdActor alice = { MD_ACTOR_CUSTOMER, "alice@customer.example", "Alice" };

static gboolean
set_status (Fixture *fx, MdTicket *t, const char *status, GError **error)
{
	const MdActor *who = strcmp (status, MD_STATUS_IN_PROGRESS) == 0 ? &alice : &jane;
	return md_workflow_set_status (fx->desk, fx->store, t, status, who, NULL, FALSE, error);
}

static gboolean
set_priority (Fixture *fx, MdTicket *t, const char *priority, GError **error)
{
	return md_workflow_set_field (fx->desk, fx->store, t, "priority", priority, &jane, error);
}

static gboolean
respond (Fixture *fx, MdTicket *t, const char *unused, GError **error)
{
	return md_workflow_first_response (fx->desk, fx->store, t, &jane, error);
}

/* 24bh from Tuesday 09:30: reminders at 12, 18 and 21.6 working hours. */
static void
test_arm_business (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	g_autofree char *got = pending (fx);
	g_assert_cmpstr (got, ==, "sla-reminder 50% Wed 02 13:30; sla-reminder 75% Thu 03 11:30; "
	                          "sla-reminder 90% Thu 03 15:06; sla-breach Fri 04 09:30");
}

/* P1's 4 calendar hours over midnight and a weekend. */
static void
test_arm_calendar (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-05T22:00:00+02:00", "P1");
	g_autofree char *got = pending (fx);
	g_assert_cmpstr (got, ==, "sla-reminder 50% Sun 06 00:00; sla-reminder 75% Sun 06 01:00; "
	                          "sla-reminder 90% Sun 06 01:36; sla-breach Sun 06 02:00");
}

/* ER has no target: nothing is armed. */
static void
test_arm_none (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "ER");
	g_autofree char *got = pending (fx);
	g_assert_cmpstr (got, ==, "");
}

/* Every timer row of ticket ID, "kind arg due_at done_at" in id order. */
static char *
timer_rows (Fixture *fx, gint64 id)
{
	sqlite3_stmt *s = NULL;
	g_assert_cmpint (sqlite3_prepare_v2 (md_store_db (fx->store),
	                                     "SELECT kind, arg, due_at, done_at FROM timers WHERE ticket_id = ? "
	                                     "ORDER BY id", -1, &s, NULL), ==, SQLITE_OK);
	sqlite3_bind_int64 (s, 1, id);
	g_autoptr (GString) out = g_string_new (NULL);
	while (sqlite3_step (s) == SQLITE_ROW)
		g_string_append_printf (out, "%s%s %s %" G_GINT64_FORMAT " %s", out->len ? "; " : "", sqlite3_column_text (s, 0),
		                        sqlite3_column_text (s, 1), (gint64) sqlite3_column_int64 (s, 2),
		                        sqlite3_column_type (s, 3) == SQLITE_NULL ? "pending" : "done");
	sqlite3_finalize (s);
	return g_strdup (out->str);
}

/* A new ticket's timers, armed by one insert (md_schedule_new_ticket),
 * are the rows md_schedule_ticket's general sync writes for a ticket
 * that has none: business and calendar targets, waiting for the customer
 * or not, reminders already due when armed, no target, and no timers. */
static void
test_arm_new_ticket (Fixture *fx, gconstpointer data)
{
	static const struct {
		const char *created, *now, *priority, *status;
		gboolean none;
	} cases[] = {
		{ "2026-12-01T09:30:00+02:00", "2026-12-01T09:30:00+02:00", "P3", MD_STATUS_TRIAGE, FALSE },
		{ "2026-12-01T09:30:00+02:00", "2026-12-01T09:30:00+02:00", "P2", MD_STATUS_WAITING, FALSE },
		{ "2026-12-05T22:00:00+02:00", "2026-12-05T22:00:00+02:00", "P1", MD_STATUS_WAITING, FALSE },
		{ "2026-12-05T22:00:00+02:00", "2026-12-06T01:10:00+02:00", "P1", MD_STATUS_TRIAGE, FALSE },
		{ "2026-12-01T09:30:00+02:00", "2026-12-03T12:00:00+02:00", "P3", MD_STATUS_WAITING, FALSE },
		{ "2026-12-01T09:30:00+02:00", "2026-12-01T09:30:00+02:00", "ER", MD_STATUS_WAITING, FALSE },
		{ "2026-12-01T09:30:00+02:00", "2026-12-01T09:30:00+02:00", "ER", MD_STATUS_TRIAGE, TRUE },
		{ "2026-12-01T09:30:00+02:00", "2026-12-01T09:30:00+02:00", "P3", MD_STATUS_RESOLVED, TRUE },
	};
	g_autoptr (GError) error = NULL;
	for (gsize c = 0; c < G_N_ELEMENTS (cases); c++) {
		gint64 ids[2];
		set_now (cases[c].now);
		g_assert_true (md_store_begin (fx->store, &error));
		for (int k = 0; k < 2; k++) {
			MdTicket t = {
				.subject = (char *) "Export fails",
				.category = MD_DEFAULT_CATEGORY,
				.priority = cases[c].priority,
				.status = cases[c].status,
				.created_at = at (cases[c].created),
				.updated_at = at (cases[c].created),
				.status_changed_at = at (cases[c].created),
			};
			t.first_response_due = md_workflow_first_response_due (fx->desk, t.priority, t.created_at);
			g_assert_true (md_store_ticket_insert (fx->store, &t, &error));
			g_autoptr (MdTicket) full = md_store_ticket_get (fx->store, t.id, &error);
			g_assert_no_error (error);
			g_assert_true (k == 0 ? md_schedule_new_ticket (fx->desk, fx->store, full, &error)
			                      : md_schedule_ticket (fx->desk, fx->store, full, &error));
			ids[k] = t.id;
		}
		g_assert_true (md_store_commit (fx->store, &error));
		g_assert_no_error (error);
		g_autofree char *one_insert = timer_rows (fx, ids[0]);
		g_autofree char *general = timer_rows (fx, ids[1]);
		g_assert_cmpstr (one_insert, ==, general);
		g_assert_cmpint (*general == '\0', ==, cases[c].none);
	}
}

/* A mail rendered over ticket variables shared with an earlier one (a
 * new ticket's question over its acknowledgement's) says what it says
 * with its own: the kept copies of a question made with them, without
 * them and with them again have the same subject and text. */
static void
test_shared_ticket_vars (Fixture *fx, gconstpointer data)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P2");
	g_autoptr (GHashTable) extra = g_hash_table_new (g_str_hash, g_str_equal);
	g_hash_table_insert (extra, "missing", "  * License key\n");
	g_hash_table_insert (extra, "form", "License key: \n");
	g_hash_table_insert (extra, "notice", "");
	const char *rcpts[] = { "alice@customer.example", NULL };
	g_autoptr (GHashTable) shared = NULL;
	g_assert_true (md_store_begin (fx->store, &error));
	for (int i = 0; i < 3; i++)
		g_assert_true (md_notify_event (fx->desk, fx->store, t, "fields-missing", extra, rcpts, NULL, FALSE, NULL,
		                                i == 1 ? NULL : &shared, &error));
	g_assert_true (md_store_commit (fx->store, &error));
	g_assert_no_error (error);
	g_assert_nonnull (shared);
	g_autoptr (GPtrArray) copies = md_store_ticket_messages (fx->store, t->id, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (copies->len, ==, 3);
	for (guint i = 1; i < 3; i++) {
		MdStoredMessage *first = copies->pdata[0], *m = copies->pdata[i];
		g_assert_cmpstr (m->subject, ==, first->subject);
		g_assert_cmpstr (m->body, ==, first->body);
		g_assert_cmpstr (m->full_text, ==, first->full_text);
	}
	MdStoredMessage *m = copies->pdata[0];
	g_autofree char *key = md_ticket_key (fx->desk->conf->ticket_prefix, t->id);
	g_assert_nonnull (strstr (m->subject, "Export fails"));
	g_assert_nonnull (strstr (m->body, key));
	g_assert_nonnull (strstr (m->body, "License key"));
}

/* Each timer runs once at its time, to the right people, and a second
 * run at the same or a later time queues nothing more. */
static void
test_run_once (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	static const struct {
		const char *now;
		guint ran;
	} steps[] = {
		{ "2026-12-02T13:29:59+02:00", 0 },
		{ "2026-12-02T13:30:00+02:00", 1 },
		{ "2026-12-02T13:30:00+02:00", 0 },
		{ "2026-12-02T18:00:00+02:00", 0 },
		{ "2026-12-03T11:30:00+02:00", 1 },
		{ "2026-12-03T15:10:00+02:00", 1 },
		{ "2026-12-04T09:30:00+02:00", 1 },
		{ "2026-12-04T09:30:00+02:00", 0 },
		{ "2026-12-24T09:30:00+02:00", 0 },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (steps); i++)
		g_assert_cmpuint (tick (fx, steps[i].now), ==, steps[i].ran);
	g_autofree char *mail = outbox (fx);
	g_assert_cmpstr (mail, ==,
	                 "sla-reminder>jane@support.example.com; sla-reminder>joe@support.example.com; "
	                 "sla-reminder>jane@support.example.com; sla-reminder>joe@support.example.com; "
	                 "sla-reminder>jane@support.example.com; sla-reminder>joe@support.example.com; "
	                 "sla-breach>jane@support.example.com; sla-breach>joe@support.example.com; "
	                 "sla-breach>leads@support.example.com");
	g_autofree char *hist = history (fx, t->id);
	g_assert_cmpstr (hist, ==, "sla=reminder 50%; sla=reminder 75%; sla=reminder 90%; sla=breach");
	g_autofree char *left = pending (fx);
	g_assert_cmpstr (left, ==, "");
	g_autoptr (GError) error = NULL;
	g_assert_cmpint (md_schedule_next_due (fx->store, &error), ==, 0);
}

/* The assignee alone gets reminders; the breach also goes to escalate_to. */
static void
test_assignee (Fixture *fx, gconstpointer data)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P1");
	g_assert_true (md_store_begin (fx->store, &error));
	g_assert_true (md_store_agent_add (fx->store, "jane@support.example.com", "Jane", NULL, &error));
	g_assert_true (md_workflow_set_field (fx->desk, fx->store, t, "assignee", "jane@support.example.com", &jane,
	                                      &error));
	g_assert_true (md_store_commit (fx->store, &error));
	tick (fx, "2026-12-01T11:30:00+02:00");
	tick (fx, "2026-12-01T13:30:00+02:00");
	g_autofree char *mail = outbox (fx);
	g_assert_cmpstr (mail, ==, "sla-reminder>jane@support.example.com; sla-breach>jane@support.example.com; "
	                           "sla-breach>leads@support.example.com");
}

/* A late tick sends the breach, not the reminders it overtook. */
static void
test_late_tick (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P1");
	g_assert_cmpuint (tick (fx, "2026-12-02T09:00:00+02:00"), ==, 4);
	g_autofree char *mail = outbox (fx);
	g_assert_cmpstr (mail, ==, "sla-breach>jane@support.example.com; sla-breach>joe@support.example.com; "
	                           "sla-breach>leads@support.example.com");
	g_autofree char *hist = history (fx, t->id);
	g_assert_cmpstr (hist, ==, "sla=reminder 50% skipped: overtaken; sla=reminder 75% skipped: overtaken; "
	                           "sla=reminder 90% skipped: overtaken; sla=breach");
}

/* The first response cancels what is pending; nothing more is sent. */
static void
test_first_response_cancels (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	g_assert_cmpuint (tick (fx, "2026-12-02T14:00:00+02:00"), ==, 1);
	change (fx, t, "2026-12-02T15:00:00+02:00", respond, NULL);
	g_autofree char *left = pending (fx);
	g_assert_cmpstr (left, ==, "");
	g_assert_cmpuint (tick (fx, "2026-12-10T09:00:00+02:00"), ==, 0);
	g_autofree char *hist = history (fx, t->id);
	g_assert_cmpstr (hist, ==, "sla=reminder 50%");
}

/* Resolving cancels too. */
static void
test_resolve_cancels (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	change (fx, t, "2026-12-01T10:00:00+02:00", set_status, MD_STATUS_RESOLVED);
	g_autofree char *left = pending (fx);
	g_assert_cmpstr (left, ==, "");
}

/* A priority change moves the deadline; reminders already past for the
 * new one are not sent late, the breach is re-armed. */
static void
test_priority_change (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	change (fx, t, "2026-12-01T12:00:00+02:00", set_priority, "P1");
	g_autofree char *got = pending (fx);
	g_assert_cmpstr (got, ==, "sla-reminder 75% Tue 01 12:30; sla-reminder 90% Tue 01 13:06; "
	                          "sla-breach Tue 01 13:30");
	/* back to P3 after the 75% reminder went out: a new deadline, its
	 * reminders armed again */
	g_assert_cmpuint (tick (fx, "2026-12-01T12:40:00+02:00"), ==, 1);
	t = reload (fx, t);
	change (fx, t, "2026-12-01T12:50:00+02:00", set_priority, "P3");
	g_autofree char *again = pending (fx);
	g_assert_cmpstr (again, ==, "sla-reminder 50% Wed 02 13:30; sla-reminder 75% Thu 03 11:30; "
	                            "sla-reminder 90% Thu 03 15:06; sla-breach Fri 04 09:30");
}

/* Waiting for customer: follow-ups at 3bd and 7bd, resolution at 10bd,
 * each once; the auto-resolve notice goes to the requester. */
static void
test_waiting (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	change (fx, t, "2026-12-01T10:00:00+02:00", respond, NULL);
	change (fx, t, "2026-12-01T10:00:00+02:00", set_status, MD_STATUS_WAITING);
	g_autofree char *got = pending (fx);
	/* 10bd from Tue 1 Dec skips two weekends; 25 Dec (Fri) is a
	 * holiday only when configured, and the defaults have none */
	g_assert_cmpstr (got, ==, "followup 1 Fri 04 10:00; followup 2 Thu 10 10:00; auto-resolve Tue 15 10:00");
	static const char *const times[] = {
		"2026-12-04T10:00:00+02:00", "2026-12-04T10:00:00+02:00", "2026-12-10T10:00:00+02:00",
		"2026-12-15T09:59:59+02:00", "2026-12-15T10:00:00+02:00", "2026-12-15T10:00:00+02:00",
		"2027-01-15T10:00:00+02:00",
	};
	guint ran = 0;
	for (gsize i = 0; i < G_N_ELEMENTS (times); i++)
		ran += tick (fx, times[i]);
	g_assert_cmpuint (ran, ==, 3);
	g_autofree char *mail = outbox (fx);
	g_assert_cmpstr (mail, ==, "followup>alice@customer.example; followup>alice@customer.example; "
	                           "auto-resolve>alice@customer.example");
	g_autofree char *hist = history (fx, t->id);
	g_assert_cmpstr (hist, ==, "followup=follow-up 1; followup=follow-up 2; followup=auto-resolve; "
	                           "status=Resolved");
	t = reload (fx, t);
	g_assert_cmpstr (t->status, ==, MD_STATUS_RESOLVED);
	g_assert_cmpint (t->resolved_at, ==, at ("2026-12-15T10:00:00+02:00"));
}

/* The customer's reply cancels the pending follow-ups; waiting again
 * later starts a new series. */
static void
test_waiting_cancelled (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	change (fx, t, "2026-12-01T10:00:00+02:00", respond, NULL);
	change (fx, t, "2026-12-01T10:00:00+02:00", set_status, MD_STATUS_WAITING);
	g_assert_cmpuint (tick (fx, "2026-12-04T10:00:00+02:00"), ==, 1);
	change (fx, t, "2026-12-04T11:00:00+02:00", set_status, MD_STATUS_IN_PROGRESS);
	g_autofree char *none = pending (fx);
	g_assert_cmpstr (none, ==, "");
	g_assert_cmpuint (tick (fx, "2026-12-31T10:00:00+02:00"), ==, 0);
	change (fx, t, "2027-01-04T09:00:00+02:00", set_status, MD_STATUS_WAITING);
	g_autofree char *again = pending (fx);
	g_assert_cmpstr (again, ==, "followup 1 Thu 07 09:00; followup 2 Wed 13 09:00; auto-resolve Mon 18 09:00");
}

/* A row that no longer matches its ticket (changed behind the
 * scheduler's back) is not run but re-armed from the ticket. */
static void
test_stale_row (Fixture *fx, gconstpointer data)
{
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	g_assert_cmpint (sqlite3_exec (md_store_db (fx->store),
	                               "UPDATE timers SET due_at = due_at - 86400 WHERE kind = 'sla-breach'", NULL,
	                               NULL, NULL), ==, SQLITE_OK);
	g_assert_cmpuint (tick (fx, "2026-12-03T12:00:00+02:00"), ==, 2);  /* 50%, 75% */
	g_autofree char *mail = outbox (fx);
	g_assert_false (strstr (mail, "sla-breach"));
	g_autofree char *left = pending (fx);
	g_assert_cmpstr (left, ==, "sla-reminder 90% Thu 03 15:06; sla-breach Fri 04 09:30");
	g_autoptr (GError) error = NULL;
	g_assert_cmpint (md_schedule_next_due (fx->store, &error), ==, at ("2026-12-03T15:06:00+02:00"));
}

/* The scheduler thread runs what is due when woken and stops promptly. */
static void
test_thread (Fixture *fx, gconstpointer data)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTicket) t = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P1");
	set_now ("2026-12-01T14:00:00+02:00");
	MdScheduler *s = md_scheduler_start (fx->desk, &error);
	g_assert_no_error (error);
	gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
	g_autofree char *mail = NULL;
	while (g_get_monotonic_time () < deadline) {
		g_free (mail);
		mail = outbox (fx);
		if (strstr (mail, "leads@"))
			break;
		md_scheduler_wake (s);
		g_usleep (20000);
	}
	gint64 before = g_get_monotonic_time ();
	md_scheduler_stop (s);
	g_assert_cmpint (g_get_monotonic_time () - before, <, G_USEC_PER_SEC);
	g_assert_cmpstr (mail, ==, "sla-breach>jane@support.example.com; sla-breach>joe@support.example.com; "
	                           "sla-breach>leads@support.example.com");
}

/* The report: a met, a breached and a pending ticket. */
static void
test_report (Fixture *fx, gconstpointer data)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTicket) met = new_ticket (fx, "2026-12-01T09:30:00+02:00", "P3");
	change (fx, met, "2026-12-01T15:30:00+02:00", respond, NULL);  /* 6 business hours */
	g_autoptr (MdTicket) late = new_ticket (fx, "2026-12-01T09:00:00+02:00", "P1");
	change (fx, late, "2026-12-02T09:00:00+02:00", respond, NULL);  /* 8 business hours */
	g_autoptr (MdTicket) silent = new_ticket (fx, "2026-12-02T09:00:00+02:00", "P3");
	g_autoptr (MdTicket) soon = new_ticket (fx, "2026-12-01T09:00:00+02:00", "P2");
	MdSlaFigures f[5];
	g_assert_true (md_schedule_sla_report (fx->desk, fx->store, at ("2026-12-04T10:00:00+02:00"), 0, f, &error));
	g_assert_no_error (error);
	/* P1: responded late */
	g_assert_cmpuint (f[0].open, ==, 1);
	g_assert_cmpuint (f[0].breached, ==, 1);
	g_assert_cmpuint (f[0].met, ==, 0);
	g_assert_cmpfloat_with_epsilon (f[0].median_response_bh, 8.0, 1e-9);
	/* P2: due Fri 09:00 (24bh from Tue 09:00), past */
	g_assert_cmpuint (f[1].breached, ==, 1);
	g_assert_cmpfloat (f[1].median_response_bh, <, 0);
	/* P3: one met in 6 bh, one due Fri 17:00: within the next working day */
	g_assert_cmpuint (f[2].open, ==, 2);
	g_assert_cmpuint (f[2].met, ==, 1);
	g_assert_cmpuint (f[2].breached, ==, 0);
	g_assert_cmpuint (f[2].due_next_working_day, ==, 1);
	g_assert_cmpfloat_with_epsilon (f[2].median_response_bh, 6.0, 1e-9);
	g_assert_cmpuint (f[4].open, ==, 0);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	md_message_init ();
	static const struct {
		const char *path;
		void (*func) (Fixture *, gconstpointer);
	} tests[] = {
		{ "/schedule/arm/business-hours", test_arm_business },
		{ "/schedule/arm/calendar-hours", test_arm_calendar },
		{ "/schedule/arm/no-target", test_arm_none },
		{ "/schedule/arm/new-ticket", test_arm_new_ticket },
		{ "/schedule/notify/shared-ticket-vars", test_shared_ticket_vars },
		{ "/schedule/run/once", test_run_once },
		{ "/schedule/run/assignee", test_assignee },
		{ "/schedule/run/late-tick", test_late_tick },
		{ "/schedule/cancel/first-response", test_first_response_cancels },
		{ "/schedule/cancel/resolved", test_resolve_cancels },
		{ "/schedule/rearm/priority", test_priority_change },
		{ "/schedule/waiting/auto-resolve", test_waiting },
		{ "/schedule/waiting/customer-reply", test_waiting_cancelled },
		{ "/schedule/run/stale-row", test_stale_row },
		{ "/schedule/report/figures", test_report },
		{ "/schedule/thread/wake", test_thread },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (tests); i++)
		g_test_add (tests[i].path, Fixture, NULL, fixture_setup, tests[i].func, fixture_teardown);
	return g_test_run ();
}
