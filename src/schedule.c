/* schedule.c - the timers of DESIGN 9: which timers a ticket's state
 * calls for, keeping the rows of table timers in step with it, running
 * the due ones, and serve's scheduler thread.
 *
 * A ticket's timers are a pure function of its row (created_at,
 * first_response_due/_at, status, status_changed_at) and the desk's
 * configuration.  Arming writes that set: a row whose due time is
 * unchanged is left alone (so what was sent stays sent), a changed one
 * is armed again, and pending rows the state no longer calls for are
 * deleted.  Running a timer re-derives the set from the ticket as it is
 * now and runs the row only if it is still in it at the same due time;
 * it marks the row done in the transaction that queues its mail, so a
 * timer runs at most once however often `tick` is called.
 *
 * Kinds and arguments: sla-reminder "50%", sla-breach, followup "1",
 * auto-resolve. */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "md.h"
#include "notify.h"
#include "schedule.h"
#include "sql.h"
#include "workflow.h"

#define KIND_REMINDER     "sla-reminder"
#define KIND_BREACH       "sla-breach"
#define KIND_FOLLOWUP     "followup"
#define KIND_AUTO_RESOLVE "auto-resolve"

/* remind_at has at most 8 fractions and waiting_reminders 8 offsets */
#define MAX_TIMERS 18
/* Due timers run per transaction, each in a savepoint of its own: one
 * commit (and fsync) per batch, and the write lock held for a few tens
 * of milliseconds at most. */
#define RUN_BATCH 64
/* Rows a ticket may have: the kinds above, with room to spare for old
 * rows of a configuration that had more fractions. */
#define MAX_ROWS 64

typedef struct {
	const char *kind;
	char arg[16];
	gint64 due_at;
} Timer;

typedef struct {
	Timer t[MAX_TIMERS];
	int n;
} TimerSet;

/* ---- what a ticket calls for ---- */

static int
priority_index (const char *priority)
{
	for (int i = 0; md_priorities[i]; i++)
		if (g_strcmp0 (md_priorities[i], priority) == 0)
			return i;
	return -1;
}

/* Whether the ticket's first-response target is counted in working time. */
static gboolean
sla_in_business_time (MdDesk *desk, const char *priority)
{
	int i = priority_index (priority);
	return i >= 0 && desk->has_first_response[i] &&
	       desk->first_response[i].unit != MD_DURATION_SECONDS;
}

/* The working seconds from creation to the first-response deadline,
 * which the reminders divide when the target is in business units, or
 * -1 when it is counted in calendar time or has no length. */
static gint64
sla_business_span (MdDesk *desk, const MdTicket *t)
{
	if (t->first_response_due <= t->created_at || !sla_in_business_time (desk, t->priority))
		return -1;
	return md_calendar_business_seconds (desk->calendar, t->created_at, t->first_response_due);
}

/* The instant FRACTION of the way from creation to the first-response
 * deadline, measured in working time when the target is in business
 * units (50% of 24bh is 12 working hours; SPAN from sla_business_span),
 * or -1. */
static gint64
reminder_time (MdDesk *desk, const MdTicket *t, gint64 span, double fraction)
{
	gint64 start = t->created_at, due = t->first_response_due;
	if (due <= start)
		return -1;
	if (!sla_in_business_time (desk, t->priority))
		return start + (gint64) ((double) (due - start) * fraction + 0.5);
	if (span <= 0)
		return -1;
	MdDuration part = { MD_DURATION_BUSINESS_SECONDS, (gint64) ((double) span * fraction + 0.5) };
	return md_calendar_add (desk->calendar, start, &part);
}

static void
add_timer (TimerSet *set, const char *kind, const char *arg, gint64 due_at)
{
	g_assert (set->n < MAX_TIMERS);
	Timer *t = &set->t[set->n++];
	t->kind = kind;
	g_strlcpy (t->arg, arg, sizeof t->arg);
	t->due_at = due_at;
}

static const Timer *
find_timer (const TimerSet *set, const char *kind, const char *arg)
{
	for (int i = 0; i < set->n; i++)
		if (strcmp (set->t[i].kind, kind) == 0 && strcmp (set->t[i].arg, arg) == 0)
			return &set->t[i];
	return NULL;
}

static gboolean
auto_resolve_enabled (MdDesk *desk)
{
	return desk->auto_resolve_after.amount > 0;
}

/* When a ticket that entered Waiting for customer at T is resolved
 * automatically, or 0 when never. */
static gint64
auto_resolve_time (MdDesk *desk, gint64 t)
{
	if (!auto_resolve_enabled (desk))
		return 0;
	gint64 at = md_calendar_add (desk->calendar, t, &desk->auto_resolve_after);
	return at > 0 ? at : 0;
}

static void
sla_timers (MdDesk *desk, const MdTicket *t, TimerSet *set)
{
	if (!md_status_is_open (t->status) || t->first_response_at || !t->first_response_due)
		return;
	/* Walked once for all the fractions, not once each. */
	gint64 span = desk->conf->n_remind_at > 0 ? sla_business_span (desk, t) : -1;
	for (int i = 0; i < desk->conf->n_remind_at && i < 8; i++) {
		gint64 at = reminder_time (desk, t, span, desk->conf->remind_at[i]);
		char arg[16];
		g_snprintf (arg, sizeof arg, "%.4g%%", desk->conf->remind_at[i] * 100.0);
		if (at > t->created_at && at < t->first_response_due && !find_timer (set, KIND_REMINDER, arg))
			add_timer (set, KIND_REMINDER, arg, at);
	}
	add_timer (set, KIND_BREACH, "", t->first_response_due);
}

static void
waiting_timers (MdDesk *desk, const MdTicket *t, TimerSet *set)
{
	if (g_strcmp0 (t->status, MD_STATUS_WAITING) != 0 || !t->status_changed_at)
		return;
	gint64 resolve_at = auto_resolve_time (desk, t->status_changed_at);
	for (int i = 0; i < desk->n_waiting_reminders && i < 8; i++) {
		gint64 at = md_calendar_add (desk->calendar, t->status_changed_at, &desk->waiting_reminders[i]);
		char arg[16];
		g_snprintf (arg, sizeof arg, "%d", i + 1);
		/* a follow-up at or after the resolution would come too late */
		if (at > t->status_changed_at && (!resolve_at || at < resolve_at))
			add_timer (set, KIND_FOLLOWUP, arg, at);
	}
	if (resolve_at)
		add_timer (set, KIND_AUTO_RESOLVE, "", resolve_at);
}

static void
wanted_timers (MdDesk *desk, const MdTicket *t, TimerSet *set)
{
	set->n = 0;
	sla_timers (desk, t, set);
	waiting_timers (desk, t, set);
}

/* ---- arming ---- */

typedef struct {
	gint64 id;
	char *kind;
	char *arg;
	gint64 due_at;
	gboolean done;
} Row;

static void
rows_clear (Row *rows, int n)
{
	for (int i = 0; i < n; i++) {
		g_free (rows[i].kind);
		g_free (rows[i].arg);
	}
}

static int
read_rows (MdStore *store, gint64 ticket_id, Row *rows, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT id, kind, arg, due_at, done_at IS NOT NULL FROM timers "
		"WHERE ticket_id = ? ORDER BY id LIMIT " G_STRINGIFY (MAX_ROWS), error);
	if (!s)
		return -1;
	sqlite3_bind_int64 (s, 1, ticket_id);
	int n = 0, rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW) {
		rows[n].id = sqlite3_column_int64 (s, 0);
		rows[n].kind = md_sql_col_text (s, 1);
		rows[n].arg = md_sql_col_text (s, 2);
		rows[n].due_at = sqlite3_column_int64 (s, 3);
		rows[n].done = sqlite3_column_int (s, 4);
		n++;
	}
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, "read timers");
		rows_clear (rows, n);
		return -1;
	}
	return n;
}

static gboolean
delete_row (MdStore *store, gint64 id, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, "DELETE FROM timers WHERE id = ?", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, id);
	return md_sql_step_done (store, s, "cancel timer", error);
}

static gboolean
arm (MdStore *store, gint64 ticket_id, const Timer *t, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
	                                      "INSERT INTO timers (ticket_id, kind, arg, due_at) VALUES (?1, ?2, ?3, ?4) "
	                                      "ON CONFLICT (ticket_id, kind, arg) DO UPDATE "
	                                      "SET due_at = excluded.due_at, done_at = NULL", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket_id);
	sqlite3_bind_text (s, 2, t->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text (s, 3, t->arg, -1, SQLITE_STATIC);
	sqlite3_bind_int64 (s, 4, t->due_at);
	return md_sql_step_done (store, s, "arm timer", error);
}

static const Row *
find_row (const Row *rows, int n, const char *kind, const char *arg)
{
	for (int i = 0; i < n; i++)
		if (strcmp (rows[i].kind, kind) == 0 && strcmp (rows[i].arg, arg) == 0)
			return &rows[i];
	return NULL;
}

static gboolean
is_waiting_kind (const char *kind)
{
	return strcmp (kind, KIND_FOLLOWUP) == 0 || strcmp (kind, KIND_AUTO_RESOLVE) == 0;
}

/* Whether WANTED has follow-up work: the ticket waits for the customer. */
static gboolean
wants_waiting_work (const TimerSet *wanted)
{
	for (int i = 0; i < wanted->n; i++)
		if (is_waiting_kind (wanted->t[i].kind))
			return TRUE;
	return FALSE;
}

/* Makes the ticket's rows match WANTED.  A timer that ran is not armed
 * again, whatever moved its time since (a priority change, an edited
 * calendar): each breach notice and follow-up goes once (DESIGN 9);
 * only a reminder may come again, for a deadline moved before it was
 * missed.  A follow-up series belongs to one stay in Waiting for
 * customer: once the ticket leaves it, its rows go, done or not, and
 * the next stay starts afresh.  A reminder whose time has already
 * passed when it is armed (the deadline moved closer) is not sent late:
 * it would only repeat what a later one says. */
static gboolean
sync_rows (MdStore *store, gint64 ticket_id, const TimerSet *wanted, gint64 now, GError **error)
{
	Row rows[MAX_ROWS];
	int n = read_rows (store, ticket_id, rows, error);
	gboolean ok = n >= 0;
	gboolean waiting = wants_waiting_work (wanted);

	for (int i = 0; ok && i < n; i++) {
		const Timer *w = find_timer (wanted, rows[i].kind, rows[i].arg);
		gboolean stale_reminder = w && strcmp (w->kind, KIND_REMINDER) == 0 && w->due_at != rows[i].due_at &&
		                          w->due_at <= now;
		gboolean series_over = !waiting && is_waiting_kind (rows[i].kind);
		if ((!rows[i].done && (!w || stale_reminder)) || (rows[i].done && series_over))
			ok = delete_row (store, rows[i].id, error);
	}
	const Row *breach = find_row (rows, n, KIND_BREACH, "");
	gboolean breached = breach && breach->done;
	for (int i = 0; ok && i < wanted->n; i++) {
		const Timer *w = &wanted->t[i];
		const Row *r = find_row (rows, n, w->kind, w->arg);
		/* A deadline moved later before it passed brings its reminders
		 * anew: they speak of the new one. */
		gboolean new_reminder = r && r->done && strcmp (w->kind, KIND_REMINDER) == 0 && !breached &&
		                        w->due_at > now && w->due_at != r->due_at;
		if (r && ((r->done && !new_reminder) || r->due_at == w->due_at))
			continue;
		if (strcmp (w->kind, KIND_REMINDER) == 0 && w->due_at <= now)
			continue;
		ok = arm (store, ticket_id, w, error);
	}
	if (n > 0)
		rows_clear (rows, n);
	return ok;
}

gboolean
md_schedule_ticket (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error)
{
	if (ticket->timers_held)
		return TRUE;
	TimerSet wanted;
	wanted_timers (desk, ticket, &wanted);
	return sync_rows (store, ticket->id, &wanted, md_now (), error);
}

/* The follow-up series belongs to one wait; a wait that starts over
 * (#waiting again) drops the old series,
 * sent or pending, so sync_rows arms the new one from the ticket's
 * status_changed_at instead of keeping what already ran. */
gboolean
md_schedule_restart_waiting (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"DELETE FROM timers WHERE ticket_id = ?1 AND kind IN ("
		"'" KIND_FOLLOWUP "', '" KIND_AUTO_RESOLVE "')", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket->id);
	return md_sql_step_done (store, s, "restart follow-ups", error) && md_schedule_ticket (desk, store, ticket, error);
}

/* A first-response deadline that is another request's (merge.c) brings
 * its own reminders and breach notice: those that ran for the old one
 * go, so sync_rows arms the new ones, as for a new ticket. */
gboolean
md_schedule_restart_sla (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"DELETE FROM timers WHERE ticket_id = ?1 AND kind IN ('" KIND_REMINDER "', '" KIND_BREACH "')", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket->id);
	return md_sql_step_done (store, s, "restart sla", error) && md_schedule_ticket (desk, store, ticket, error);
}

/* "INSERT INTO timers ... VALUES" with N rows of parameters (?1 the
 * ticket, then kind, arg and due_at of each), N from 1 to MAX_TIMERS;
 * made once, so the store caches one statement per N. */
static const char *
insert_rows_sql (int n)
{
	static char *sql[MAX_TIMERS + 1];
	static gsize made = 0;
	g_assert (n >= 1 && n <= MAX_TIMERS);
	if (g_once_init_enter (&made)) {
		for (int k = 1; k <= MAX_TIMERS; k++) {
			GString *s = g_string_new ("INSERT INTO timers (ticket_id, kind, arg, due_at) VALUES ");
			for (int i = 0; i < k; i++)
				g_string_append_printf (s, "%s(?1, ?%d, ?%d, ?%d)", i ? ", " : "", 3 * i + 2, 3 * i + 3,
				                        3 * i + 4);
			sql[k] = g_string_free (s, FALSE);
		}
		g_once_init_leave (&made, 1);
	}
	return sql[n];
}

/* Ticket ids are AUTOINCREMENT, never reused, and timers reference
 * tickets: a ticket made in this transaction has no rows, so what
 * sync_rows would do comes to arming each wanted timer but a reminder
 * already due, and that is one insert of them all (a new ticket has
 * seven; one statement each was the dearest part of its timers). */
gboolean
md_schedule_new_ticket (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error)
{
	TimerSet wanted;
	const Timer *arming[MAX_TIMERS];
	int n = 0;
	gint64 now = md_now ();

	wanted_timers (desk, ticket, &wanted);
	for (int i = 0; i < wanted.n; i++)
		if (strcmp (wanted.t[i].kind, KIND_REMINDER) != 0 || wanted.t[i].due_at > now)
			arming[n++] = &wanted.t[i];
	if (n == 0)
		return TRUE;
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, insert_rows_sql (n), error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, ticket->id);
	for (int i = 0; i < n; i++) {
		sqlite3_bind_text (s, 3 * i + 2, arming[i]->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text (s, 3 * i + 3, arming[i]->arg, -1, SQLITE_STATIC);
		sqlite3_bind_int64 (s, 3 * i + 4, arming[i]->due_at);
	}
	return md_sql_step_done (store, s, "arm timers", error);
}

gint64
md_schedule_next_due (MdStore *store, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT due_at FROM timers INDEXED BY timers_due "
		"WHERE done_at IS NULL ORDER BY due_at LIMIT 1", error);
	if (!s)
		return 0;
	int rc = sqlite3_step (s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW) {
		md_store_set_error (store, error, "next timer");
		return 0;
	}
	return sqlite3_column_int64 (s, 0);
}

/* ---- running ---- */

static char *
local_time (MdDesk *desk, gint64 t)
{
	if (t <= 0)
		return g_strdup ("");
	g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (t);
	g_autoptr (GDateTime) local = g_date_time_to_timezone (utc, md_calendar_zone (desk->calendar));
	return g_date_time_format (local, "%a %d %b %Y %H:%M %Z");
}

/* "2 business hours 24 minutes", "45 minutes": time left, to the minute. */
static char *
format_span (gint64 seconds, gboolean business)
{
	gint64 minutes = (MAX (seconds, 0) + 30) / 60;
	gint64 h = minutes / 60, m = minutes % 60;
	GString *out = g_string_new (NULL);
	const char *b = business ? "business " : "";
	if (h)
		g_string_append_printf (out, "%" G_GINT64_FORMAT " %shour%s", h, b, h == 1 ? "" : "s");
	if (m || !h)
		g_string_append_printf (out, "%s%" G_GINT64_FORMAT " %sminute%s", h ? " " : "", m, h ? "" : b,
		                        m == 1 ? "" : "s");
	return g_string_free (out, FALSE);
}

static void
add_unique (GPtrArray *list, const char *email)
{
	if (!email || !*email)
		return;
	for (guint i = 0; i < list->len; i++)
		if (g_ascii_strcasecmp (list->pdata[i], email) == 0)
			return;
	g_ptr_array_add (list, g_strdup (email));
}

/* The assignee, or when there is none every agent (the database's and
 * [desk] agents).  NULL-terminated; free with g_ptr_array_unref. */
static GPtrArray *
agent_recipients (MdDesk *desk, MdStore *store, const MdTicket *t, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
	if (t->assignee) {
		add_unique (out, t->assignee);
		return out;
	}
	g_autoptr (GPtrArray) agents = md_store_agents (store, error);
	if (!agents) {
		g_ptr_array_unref (out);
		return NULL;
	}
	for (guint i = 0; i < agents->len; i++)
		add_unique (out, agents->pdata[i]);
	for (int i = 0; desk->conf->agents && desk->conf->agents[i]; i++) {
		g_autofree char *agent = g_strstrip (g_strdup (desk->conf->agents[i]));
		add_unique (out, agent);
	}
	return out;
}

/* Queues EVENT to RCPTS.  *queued_r is how many it went to: with 0 (no
 * address, an unusable one, one that bounces) the history must not
 * claim the mail. */
static gboolean
send (MdDesk *desk, MdStore *store, const MdTicket *t, const char *event, GHashTable *vars, GPtrArray *rcpts,
      guint *queued_r, GError **error)
{
	*queued_r = 0;
	if (rcpts->len == 0)
		return TRUE;
	g_ptr_array_add (rcpts, NULL);
	gboolean ok = md_notify_event (desk, store, t, event, vars, (const char *const *) rcpts->pdata, NULL, TRUE,
	                               queued_r, NULL, error);
	g_ptr_array_remove_index (rcpts, rcpts->len - 1);
	return ok;
}

static GHashTable *
new_vars (void)
{
	return g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
}

static gboolean
run_sla (MdDesk *desk, MdStore *store, const MdTicket *t, const char *kind, const char *arg, gint64 now,
         GError **error)
{
	gboolean breach = strcmp (kind, KIND_BREACH) == 0;
	g_autoptr (GPtrArray) rcpts = agent_recipients (desk, store, t, error);
	if (!rcpts)
		return FALSE;
	if (breach && desk->conf->escalate_to) {
		g_auto (GStrv) leads = g_strsplit (desk->conf->escalate_to, ",", 0);
		for (int i = 0; leads[i]; i++)
			add_unique (rcpts, g_strstrip (leads[i]));
	}
	g_autoptr (GHashTable) vars = new_vars ();
	g_hash_table_insert (vars, "due", local_time (desk, t->first_response_due));
	g_hash_table_insert (vars, "response_time", md_notify_response_time (desk, t->priority));
	if (!breach) {
		gboolean business = sla_in_business_time (desk, t->priority);
		gint64 left = business ? md_calendar_business_seconds (desk->calendar, now, t->first_response_due)
		                       : t->first_response_due - now;
		g_hash_table_insert (vars, "remaining", format_span (left, business));
	}
	guint queued = 0;
	if (!send (desk, store, t, breach ? "sla-breach" : "sla-reminder", vars, rcpts, &queued, error))
		return FALSE;
	g_autofree char *what = breach ? g_strdup ("breach") : g_strdup_printf ("reminder %s", arg);
	g_autofree char *unsent = queued ? NULL : g_strdup_printf ("%s not sent: no agent to tell", what);
	return md_store_history_add (store, t->id, now, "system", "sla", NULL, unsent ? unsent : what, error);
}

static GPtrArray *
customer_recipients (const MdTicket *t)
{
	GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
	add_unique (out, t->requester);
	return out;
}

/* Why no mail could go to the ticket's requester, for the history.
 * Static string. */
static const char *
unreachable_requester (MdStore *store, const MdTicket *t)
{
	if (!t->requester)
		return "the ticket has no requester address";
	g_autoptr (MdPerson) p = md_store_person_find (store, t->requester, NULL);
	return p && p->bouncing ? "the requester's address bounces" : "the requester's address cannot be mailed";
}

static gboolean
run_followup (MdDesk *desk, MdStore *store, const MdTicket *t, const Timer *w, gint64 now, GError **error)
{
	const char *arg = w->arg;
	g_autoptr (GPtrArray) rcpts = customer_recipients (t);
	g_autoptr (GHashTable) vars = new_vars ();
	/* Sent late, it still gives the customer the time the calendar
	 * meant to give (auto_resolve_grace holds the resolution back). */
	gint64 resolve_at = auto_resolve_time (desk, t->status_changed_at);
	if (resolve_at)
		resolve_at = MAX (resolve_at, now + (resolve_at - w->due_at));
	g_hash_table_insert (vars, "due", local_time (desk, resolve_at));
	guint queued = 0;
	if (!send (desk, store, t, "followup", vars, rcpts, &queued, error))
		return FALSE;
	/* The series runs on either way: the auto-resolve does not depend
	 * on the customer having been told (README, Decisions). */
	g_autofree char *what = queued ? g_strdup_printf ("follow-up %s", arg)
	                               : g_strdup_printf ("follow-up %s not sent: %s", arg, unreachable_requester (store, t));
	return md_store_history_add (store, t->id, now, "system", "followup", NULL, what, error);
}

static gboolean
run_auto_resolve (MdDesk *desk, MdStore *store, MdTicket *t, gint64 now, GError **error)
{
	static const MdActor system_actor = { MD_ACTOR_SYSTEM, NULL, "system" };
	g_autofree char *after = md_duration_format (&desk->auto_resolve_after);
	g_autofree char *comment = g_strdup_printf ("No reply from the customer in %s of waiting; "
	                                            "resolved automatically.", after);
	if (!md_store_history_add (store, t->id, now, "system", "followup", NULL, "auto-resolve", error) ||
	    !md_workflow_set_status (desk, store, t, MD_STATUS_RESOLVED, &system_actor, comment, FALSE, error))
		return FALSE;
	g_autoptr (GPtrArray) rcpts = customer_recipients (t);
	g_autoptr (GHashTable) vars = new_vars ();
	g_hash_table_insert (vars, "reopen_window", md_duration_format (&desk->reopen_window));
	guint queued = 0;
	if (!send (desk, store, t, "auto-resolve", vars, rcpts, &queued, error))
		return FALSE;
	if (queued)
		return TRUE;
	g_autofree char *what = g_strdup_printf ("auto-resolve notice not sent: %s", unreachable_requester (store, t));
	return md_store_history_add (store, t->id, now, "system", "followup", NULL, what, error);
}

typedef struct {
	gint64 id;
	gint64 ticket_id;
	char kind[16];
	char arg[16];
	gint64 due_at;
} DueTimer;

/* The timer ID if it is still pending and due at NOW. */
static gboolean
read_due (MdStore *store, gint64 id, gint64 now, DueTimer *out, gboolean *found_r, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT ticket_id, kind, arg, due_at FROM timers "
		"WHERE id = ?1 AND done_at IS NULL AND due_at <= ?2", error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, id);
	sqlite3_bind_int64 (s, 2, now);
	int rc = sqlite3_step (s);
	*found_r = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		out->id = id;
		out->ticket_id = sqlite3_column_int64 (s, 0);
		g_strlcpy (out->kind, (const char *) sqlite3_column_text (s, 1), sizeof out->kind);
		g_strlcpy (out->arg, (const char *) sqlite3_column_text (s, 2), sizeof out->arg);
		out->due_at = sqlite3_column_int64 (s, 3);
		return TRUE;
	}
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, "read timer");
		return FALSE;
	}
	return TRUE;
}

/* SQL sets one time of timer ?1 to ?2. */
static gboolean
set_timer_time (MdStore *store, const char *sql, gint64 id, gint64 t, const char *what, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store, sql, error);
	if (!s)
		return FALSE;
	sqlite3_bind_int64 (s, 1, id);
	sqlite3_bind_int64 (s, 2, t);
	return md_sql_step_done (store, s, what, error);
}

static gboolean
mark_done (MdStore *store, gint64 id, gint64 now, GError **error)
{
	return set_timer_time (store, "UPDATE timers SET done_at = ?2 WHERE id = ?1", id, now, "mark timer done", error);
}

/* Whether a later timer of R's family (SLA, or follow-ups) is due too
 * (the desk was down, or tick did not run): then R would only be noise
 * before it.  The auto-resolve overtakes no follow-up: the customer gets
 * the last warning before the ticket closes (see auto_resolve_grace). */
static gboolean
overtaken (const TimerSet *wanted, const Timer *r, gint64 now)
{
	gboolean sla = g_str_has_prefix (r->kind, "sla-");
	for (int i = 0; i < wanted->n; i++) {
		const Timer *w = &wanted->t[i];
		gboolean same_family = sla ? g_str_has_prefix (w->kind, "sla-") : strcmp (w->kind, KIND_FOLLOWUP) == 0;
		if (same_family && w->due_at > r->due_at && w->due_at <= now)
			return TRUE;
	}
	return FALSE;
}

/* The last follow-up of WANTED, or NULL when there is none. */
static const Timer *
last_followup (const TimerSet *wanted)
{
	const Timer *last = NULL;
	for (int i = 0; i < wanted->n; i++)
		if (strcmp (wanted->t[i].kind, KIND_FOLLOWUP) == 0 && (!last || wanted->t[i].due_at > last->due_at))
			last = &wanted->t[i];
	return last;
}

/* When the last follow-up went out late (the desk was down), the
 * customer still gets the time the calendar meant to give between it
 * and the resolution: the time the ticket may be resolved, or 0 when
 * now is fine.  -1 on a database error. */
static gint64
auto_resolve_grace (MdStore *store, gint64 ticket_id, const TimerSet *wanted, const Timer *resolve, gint64 now,
                    GError **error)
{
	const Timer *last = last_followup (wanted);
	if (!last)
		return 0;
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT done_at FROM timers WHERE ticket_id = ?1 AND kind = ?2 "
		"AND arg = ?3 AND done_at IS NOT NULL", error);
	if (!s)
		return -1;
	sqlite3_bind_int64 (s, 1, ticket_id);
	sqlite3_bind_text (s, 2, KIND_FOLLOWUP, -1, SQLITE_STATIC);
	sqlite3_bind_text (s, 3, last->arg, -1, SQLITE_STATIC);
	int rc = sqlite3_step (s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		md_store_set_error (store, error, "read timer");
		return -1;
	}
	gint64 sent = rc == SQLITE_ROW ? sqlite3_column_int64 (s, 0) : 0;
	gint64 until = sent + (resolve->due_at - last->due_at);
	return sent && until > now ? until : 0;
}

static gboolean
postpone (MdStore *store, gint64 id, gint64 until, GError **error)
{
	return set_timer_time (store, "UPDATE timers SET due_at = ?2 WHERE id = ?1", id, until, "postpone timer", error);
}

/* Inside a transaction: runs timer D if the ticket still calls for it,
 * else brings the ticket's rows up to date.  *ran_r says which. */
static gboolean
run_timer (MdDesk *desk, MdStore *store, const DueTimer *d, gint64 now, gboolean *ran_r, GError **error)
{
	g_autoptr (GError) local = NULL;
	g_autoptr (MdTicket) t = md_store_ticket_get (store, d->ticket_id, &local);
	*ran_r = FALSE;
	if (!t) {
		if (!g_error_matches (local, MD_ERROR, MD_ERROR_NOT_FOUND)) {
			g_propagate_error (error, g_steal_pointer (&local));
			return FALSE;
		}
		return delete_row (store, d->id, error);
	}
	TimerSet wanted;
	wanted_timers (desk, t, &wanted);
	const Timer *w = find_timer (&wanted, d->kind, d->arg);
	if (!w || w->due_at != d->due_at)
		return sync_rows (store, t->id, &wanted, now, error);
	if (strcmp (d->kind, KIND_AUTO_RESOLVE) == 0) {
		gint64 until = auto_resolve_grace (store, t->id, &wanted, w, now, error);
		if (until < 0)
			return FALSE;
		if (until > 0)
			return postpone (store, d->id, until, error);
	}

	/* done first: the auto-resolve re-arms the ticket, which cancels
	 * only pending rows */
	if (!mark_done (store, d->id, now, error))
		return FALSE;
	*ran_r = TRUE;
	if ((strcmp (d->kind, KIND_REMINDER) == 0 || strcmp (d->kind, KIND_FOLLOWUP) == 0) && overtaken (&wanted, w, now)) {
		gboolean sla = strcmp (d->kind, KIND_REMINDER) == 0;
		g_autofree char *what = g_strdup_printf ("%s %s skipped: overtaken", sla ? "reminder" : "follow-up", d->arg);
		return md_store_history_add (store, t->id, now, "system", sla ? "sla" : "followup", NULL, what, error);
	}
	if (strcmp (d->kind, KIND_REMINDER) == 0 || strcmp (d->kind, KIND_BREACH) == 0)
		return run_sla (desk, store, t, d->kind, d->arg, now, error);
	if (strcmp (d->kind, KIND_FOLLOWUP) == 0)
		return run_followup (desk, store, t, w, now, error);
	return run_auto_resolve (desk, store, t, now, error);
}

/* A timer whose work fails for good (a template or an address the
 * outbox refuses) is marked done with the reason in the history, so it
 * cannot stop the timers behind it. */
static gboolean
give_up (MdStore *store, const DueTimer *d, gint64 now, const GError *why, GError **error)
{
	g_autofree char *what = g_strdup_printf ("%s %s failed: %s", d->kind, d->arg, why->message);
	g_warning ("schedule: timer %" G_GINT64_FORMAT " of ticket %" G_GINT64_FORMAT ": %s", d->id, d->ticket_id,
	           what);
	return mark_done (store, d->id, now, error) &&
	       md_store_history_add (store, d->ticket_id, now, "system",
	                             g_str_has_prefix (d->kind, "sla") ? "sla" : "followup", NULL, what, error);
}

/* Inside the batch's transaction, in a savepoint of its own: a timer
 * that fails leaves nothing behind but its failure. */
static gboolean
run_one (MdDesk *desk, MdStore *store, gint64 id, gint64 now, gboolean *ran_r, GError **error)
{
	DueTimer d;
	gboolean found = FALSE;
	g_autoptr (GError) local = NULL;

	*ran_r = FALSE;
	if (!read_due (store, id, now, &d, &found, error))
		return FALSE;
	if (!found)  /* another tick ran it, or a change re-armed it */
		return TRUE;
	if (!md_store_savepoint (store, error))
		return FALSE;
	if (run_timer (desk, store, &d, now, ran_r, &local))
		return md_store_release (store, error);
	md_store_rollback_to (store);
	*ran_r = FALSE;
	if (md_error_is_temporary (local)) {
		g_propagate_error (error, g_steal_pointer (&local));
		return FALSE;
	}
	return give_up (store, &d, now, local, error);
}

/* Ids of up to RUN_BATCH pending timers due at NOW, through timers_due. */
static GArray *
due_batch (MdStore *store, gint64 now, GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT id FROM timers INDEXED BY timers_due "
		"WHERE done_at IS NULL AND due_at <= ?1 "
		"ORDER BY due_at, id LIMIT " G_STRINGIFY (RUN_BATCH), error);
	if (!s)
		return NULL;
	sqlite3_bind_int64 (s, 1, now);
	return md_sql_ids (store, s, "due timers", error);
}

gboolean
md_schedule_run_due (MdDesk *desk, MdStore *store, gint64 now, guint *ran_r, GError **error)
{
	guint ran = 0;
	gboolean ok = TRUE;
	/* Every visit runs, deletes or re-times a row, and a re-timed row
	 * runs at its next visit, so this ends; the bound is for safety. */
	for (int round = 0; ok && round < 100000; round++) {
		g_autoptr (GArray) ids = due_batch (store, now, error);
		if (!ids) {
			ok = FALSE;
			break;
		}
		guint batch_ran = 0;
		ok = md_store_begin (store, error);
		for (guint i = 0; ok && i < ids->len; i++) {
			gboolean did = FALSE;
			ok = run_one (desk, store, g_array_index (ids, gint64, i), now, &did, error);
			batch_ran += did;
		}
		if (ok)
			ok = md_store_commit (store, error);
		else
			md_store_rollback (store);
		ran += ok ? batch_ran : 0;
		if (ids->len < RUN_BATCH)
			break;
	}
	if (ran_r)
		*ran_r = ran;
	return ok;
}

/* ---- serve's scheduler thread ---- */

/* Timers armed by other processes (`ticket set`, `deliver`) cannot wake
 * the thread, so it looks again at least this often. */
#define MAX_SLEEP_SECONDS 60
#define RETRY_SECONDS 5

struct _MdScheduler {
	MdDesk *desk;
	MdStore *store;
	GThread *thread;
	GMutex lock;
	GCond cond;
	gboolean stopping;
	gboolean woken;
	void (*on_queued) (gpointer);
	gpointer on_queued_data;
};

/* Runs what is due; returns how long to sleep, in seconds. */
static gint64
scheduler_pass (MdScheduler *s)
{
	g_autoptr (GError) error = NULL;
	guint ran = 0;
	if (!md_schedule_run_due (s->desk, s->store, md_now (), &ran, &error)) {
		g_warning ("schedule: %s; retrying in %d s", error->message, RETRY_SECONDS);
		return RETRY_SECONDS;
	}
	if (ran) {
		g_message ("schedule: ran %u timers", ran);
		g_mutex_lock (&s->lock);
		void (*hook) (gpointer) = s->on_queued;
		gpointer data = s->on_queued_data;
		g_mutex_unlock (&s->lock);
		if (hook)
			hook (data);
	}
	gint64 next = md_schedule_next_due (s->store, &error);
	if (error) {
		g_warning ("schedule: %s; retrying in %d s", error->message, RETRY_SECONDS);
		return RETRY_SECONDS;
	}
	if (!next)
		return MAX_SLEEP_SECONDS;
	return CLAMP (next - md_now (), 0, MAX_SLEEP_SECONDS);
}

static gpointer
scheduler_main (gpointer data)
{
	MdScheduler *s = data;
	g_mutex_lock (&s->lock);
	while (!s->stopping) {
		s->woken = FALSE;
		g_mutex_unlock (&s->lock);
		gint64 sleep = scheduler_pass (s);
		g_mutex_lock (&s->lock);
		gint64 end = g_get_monotonic_time () + sleep * G_USEC_PER_SEC;
		while (!s->stopping && !s->woken)
			if (!g_cond_wait_until (&s->cond, &s->lock, end))
				break;
	}
	g_mutex_unlock (&s->lock);
	return NULL;
}

MdScheduler *
md_scheduler_start (MdDesk *desk, GError **error)
{
	MdStore *store = md_desk_open_store (desk, FALSE, error);
	if (!store)
		return NULL;
	MdScheduler *s = g_new0 (MdScheduler, 1);
	s->desk = desk;
	s->store = store;
	g_mutex_init (&s->lock);
	g_cond_init (&s->cond);
	s->thread = g_thread_new ("scheduler", scheduler_main, s);
	return s;
}

void
md_scheduler_set_on_queued (MdScheduler *s, void (*func) (gpointer), gpointer data)
{
	g_mutex_lock (&s->lock);
	s->on_queued = func;
	s->on_queued_data = data;
	g_mutex_unlock (&s->lock);
}

void
md_scheduler_wake (MdScheduler *s)
{
	if (!s)
		return;
	g_mutex_lock (&s->lock);
	s->woken = TRUE;
	g_cond_signal (&s->cond);
	g_mutex_unlock (&s->lock);
}

void
md_scheduler_stop (MdScheduler *s)
{
	if (!s)
		return;
	g_mutex_lock (&s->lock);
	s->stopping = TRUE;
	g_cond_signal (&s->cond);
	g_mutex_unlock (&s->lock);
	g_thread_join (s->thread);
	md_store_close (s->store);
	g_mutex_clear (&s->lock);
	g_cond_clear (&s->cond);
	g_free (s);
}

/* ---- the SLA report ---- */

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return (x > y) - (x < y);
}

static double
median (GArray *values)
{
	if (values->len == 0)
		return -1;
	g_array_sort (values, compare_doubles);
	guint mid = values->len / 2;
	double *v = (double *) values->data;
	return values->len % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

gboolean
md_schedule_sla_report (MdDesk *desk, MdStore *store, gint64 now, gint64 since, MdSlaFigures out[5],
                        GError **error)
{
	g_autoptr (sqlite3_stmt) s = md_store_statement (store,
		"SELECT priority, status, created_at, first_response_due, "
		"first_response_at, resolved_at FROM tickets", error);
	if (!s)
		return FALSE;
	const MdDuration one_day = { MD_DURATION_BUSINESS_DAYS, 1 };
	gint64 horizon = md_calendar_add (desk->calendar, now, &one_day);
	GArray *times[5];
	for (int i = 0; i < 5; i++) {
		out[i] = (MdSlaFigures) { .priority = md_priorities[i], .median_response_bh = -1 };
		times[i] = g_array_new (FALSE, FALSE, sizeof (double));
	}
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW) {
		int p = priority_index (md_priority_normalize ((const char *) sqlite3_column_text (s, 0)));
		if (p < 0 || p >= 5)
			continue;
		const char *status = md_status_normalize ((const char *) sqlite3_column_text (s, 1));
		gint64 created = sqlite3_column_int64 (s, 2), due = sqlite3_column_int64 (s, 3);
		gint64 responded = sqlite3_column_int64 (s, 4), resolved = sqlite3_column_int64 (s, 5);
		gboolean open = md_status_is_open (status);
		MdSlaFigures *f = &out[p];

		if (!open && created < since)
			continue;

		f->open += open;
		if (responded) {
			double bh = (double) md_calendar_business_seconds (desk->calendar, created, responded) / 3600.0;
			g_array_append_val (times[p], bh);
			f->responded++;
		}
		if (!due)
			continue;
		if (responded && responded <= due)
			f->met++;
		else if (responded)
			f->breached++;
		else if (due < (open || !resolved ? now : resolved))
			f->breached++;
		else if (open) {
			f->due++;
			f->due_next_working_day += due <= horizon;
		}
	}
	for (int i = 0; i < 5; i++) {
		out[i].median_response_bh = median (times[i]);
		g_array_unref (times[i]);
	}
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, "sla report");
		return FALSE;
	}
	return TRUE;
}
