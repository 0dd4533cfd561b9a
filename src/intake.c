/* intake.c - forms at work on tickets: which form a ticket has (kept as
 * a "form" entry of its history), the fields collected from mail, the
 * question for what is missing (in the acknowledgement, then after a
 * reply that gave only some), delivery estimates and the go-live notice
 * period.  Intake never moves a ticket's status: DESIGN 1's table is
 * the whole workflow, and a ticket that lacks details still waits for
 * triage, in the agents' queue and under its SLA. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "forms.h"
#include "intake.h"
#include "md.h"
#include "notify.h"
#include "thread.h"
#include "token.h"

#define MAX_REMEMBERED_TICKETS 10

struct _MdIntakeMatch {
	MdForms *forms;            /* a reference: the form points into it */
	const MdForm *form;        /* NULL when none applies */
	GPtrArray *entries;        /* MdFormEntry* of the message; NULL without a form */
};

struct _MdIntake {
	MdForms *forms;            /* a reference: the form points into it */
	const MdForm *form;        /* NULL when none applies */
	GPtrArray *entries;        /* MdFormEntry* of the first message */
	GHashTable *fields;        /* the ticket's fields, as stored; NULL without a form */
	GHashTable *ack_vars;
};

void
md_intake_free (MdIntake *in)
{
	if (!in)
		return;
	if (in->entries)
		g_ptr_array_unref (in->entries);
	if (in->forms)
		md_forms_unref (in->forms);
	if (in->fields)
		g_hash_table_unref (in->fields);
	g_hash_table_unref (in->ack_vars);
	g_free (in);
}

GHashTable *
md_intake_ack_vars (MdIntake *in)
{
	return in->ack_vars;
}

static gboolean
record (MdStore *store, MdTicket *t, const char *actor, const char *field, const char *old_value,
        const char *new_value, GError **error)
{
	return md_store_history_add (store, t->id, md_now (), actor ? actor : MD_INTAKE_ACTOR, field, old_value,
	                             new_value, error);
}

MdIntakeMatch *
md_intake_match (MdDesk *desk, const char *category, const char *tags, const MdMessage *msg)
{
	MdIntakeMatch *m = g_new0 (MdIntakeMatch, 1);
	m->forms = md_desk_forms (desk);
	m->form = m->forms ? md_forms_match (m->forms, category, tags, msg->subject, msg->body) : NULL;
	m->entries = m->form ? md_form_recognize (m->form, msg->body) : NULL;
	return m;
}

void
md_intake_match_free (MdIntakeMatch *m)
{
	if (!m)
		return;
	if (m->entries)
		g_ptr_array_unref (m->entries);
	if (m->forms)
		md_forms_unref (m->forms);
	g_free (m);
}

/* ---- fields ---- */

/* Stores the valid entries whose value is new; FALSE on database trouble. */
static gboolean
store_entries (MdStore *store, MdTicket *t, GHashTable *fields, GPtrArray *entries, const char *actor,
               gboolean *notice_field_set_r, const MdFormField *notice_field, GError **error)
{
	for (guint i = 0; i < entries->len; i++) {
		MdFormEntry *e = entries->pdata[i];
		const char *name = md_form_field_name (e->field);
		const char *old = g_hash_table_lookup (fields, name);
		if (!e->value || g_strcmp0 (old, e->value) == 0)
			continue;
		g_autofree char *history_field = g_strdup_printf ("field.%s", name);
		if (!md_store_field_set (store, t->id, name, e->value, error) ||
		    !record (store, t, actor, history_field, old, e->value, error))
			return FALSE;
		g_hash_table_insert (fields, g_strdup (name), g_strdup (e->value));
		if (e->field == notice_field && notice_field_set_r)
			*notice_field_set_r = TRUE;
	}
	return TRUE;
}

/* Fields marked `remember` that the requester gave on an earlier
 * ticket, newest first, so a customer is not asked for their license
 * key on every ticket. */
static gboolean
fill_remembered (MdStore *store, MdTicket *t, const MdForm *form, GHashTable *fields, GError **error)
{
	const GPtrArray *required = md_form_required (form);
	gboolean wanted = FALSE;
	for (guint i = 0; i < required->len; i++)
		wanted |= md_form_field_remembered (required->pdata[i]) &&
		          !g_hash_table_contains (fields, md_form_field_name (required->pdata[i]));
	if (!wanted || !t->requester_id)
		return TRUE;
	g_autoptr (GArray) earlier = md_store_requester_tickets (store, t->requester_id, t->id, MAX_REMEMBERED_TICKETS,
	                                                         error);
	if (!earlier)
		return FALSE;
	for (guint k = 0; k < earlier->len; k++) {
		gint64 old_id = g_array_index (earlier, gint64, k);
		g_autoptr (GHashTable) old_fields = md_store_fields (store, old_id, error);
		if (!old_fields)
			return FALSE;
		for (guint i = 0; i < required->len; i++) {
			const MdFormField *f = required->pdata[i];
			const char *name = md_form_field_name (f);
			const char *value = g_hash_table_lookup (old_fields, name);
			g_autofree char *problem = NULL;
			g_autofree char *valid = value && md_form_field_remembered (f) && !g_hash_table_contains (fields, name)
			                         ? md_form_field_validate (f, value, &problem) : NULL;
			if (!valid)
				continue;
			g_autofree char *history_field = g_strdup_printf ("field.%s", name);
			g_autofree char *from = g_strdup_printf ("ticket %" G_GINT64_FORMAT, old_id);
			if (!md_store_field_set (store, t->id, name, valid, error) ||
			    !record (store, t, NULL, history_field, from, valid, error))
				return FALSE;
			g_hash_table_insert (fields, g_strdup (name), g_steal_pointer (&valid));
		}
	}
	return TRUE;
}

/* What the form still needs: one line per field, missing or invalid
 * (with the reason from ENTRIES), and the fill-in lines.  Empty strings
 * when complete.  *summary_r lists the labels for the history. */
static void
describe_missing (const MdForm *form, GHashTable *fields, GPtrArray *entries, char **missing_r, char **fill_in_r,
                  char **summary_r)
{
	const GPtrArray *required = md_form_required (form);
	GString *missing = g_string_new (NULL), *fill = g_string_new (NULL), *summary = g_string_new (NULL);
	for (guint i = 0; i < required->len; i++) {
		const MdFormField *f = required->pdata[i];
		if (g_hash_table_contains (fields, md_form_field_name (f)))
			continue;
		const MdFormEntry *bad = NULL;
		for (guint k = 0; entries && k < entries->len && !bad; k++)
			if (((MdFormEntry *) entries->pdata[k])->field == f)
				bad = entries->pdata[k];
		const char *hint = md_form_field_hint (f);
		/* No "Label:" at the start of these lines: quoted back
		 * untrimmed, they must not read as values. */
		if (bad && bad->problem)
			g_string_append_printf (missing, "  * %s — please correct it: %s%s%s\n", md_form_field_label (f),
			                        bad->problem, *hint ? "; write it " : "", hint);
		else
			g_string_append_printf (missing, "  * %s%s%s%s\n", md_form_field_label (f), *hint ? " (" : "", hint,
			                        *hint ? ")" : "");
		g_string_append_printf (fill, "%s: \n", md_form_field_label (f));
		g_string_append_printf (summary, "%s%s%s", summary->len ? ", " : "", md_form_field_label (f),
		                        bad && bad->problem ? " (invalid)" : "");
	}
	*missing_r = g_string_free (missing, FALSE);
	*fill_in_r = g_string_free (fill, FALSE);
	*summary_r = g_string_free (summary, FALSE);
}

/* ---- go-live notice ---- */

/* The sentence telling the customer the notice period when the launch
 * is too close; NULL when the notice is long enough or unknown. */
static char *
short_notice (MdDesk *desk, const MdForm *form, GHashTable *fields)
{
	int required_days = 0;
	const MdFormField *f = md_form_notice (form, &required_days);
	const char *date = f ? g_hash_table_lookup (fields, md_form_field_name (f)) : NULL;
	int y, m, d;
	if (!date || sscanf (date, "%d-%d-%d", &y, &m, &d) != 3 || !g_date_valid_dmy (d, m, y))
		return NULL;
	g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (md_now ());
	g_autoptr (GDateTime) local = g_date_time_to_timezone (utc, md_calendar_zone (desk->calendar));
	g_autoptr (GDate) today = g_date_new_dmy (g_date_time_get_day_of_month (local), g_date_time_get_month (local),
	                                          g_date_time_get_year (local));
	g_autoptr (GDate) launch = g_date_new_dmy (d, m, y);
	int days = g_date_days_between (today, launch);
	if (days >= required_days)
		return NULL;
	g_autofree char *when = days > 1 ? g_strdup_printf ("is %d days away", days)
	                        : days == 1 ? g_strdup ("is tomorrow")
	                        : days == 0 ? g_strdup ("is today") : g_strdup ("has passed");
	return g_strdup_printf ("A go-live notice must reach us at least %d days before the launch. Your launch "
	                        "date, %s, %s: we accept your notice and will do our best, but we cannot promise "
	                        "that everything is ready in time.", required_days, date, when);
}

static gboolean
has_tag (const char *tags, const char *tag)
{
	g_auto (GStrv) list = tags ? g_strsplit (tags, ",", -1) : NULL;
	return list && g_strv_contains ((const char *const *) list, tag);
}

/* Tags the ticket and records why, once; returns the sentence for the
 * customer in *notice_r, or NULL when the notice is long enough. */
static gboolean
check_notice (MdDesk *desk, MdStore *store, MdTicket *t, const MdForm *form, GHashTable *fields, char **notice_r,
              GError **error)
{
	const char *tag = md_form_notice_tag (form);
	*notice_r = short_notice (desk, form, fields);
	if (!*notice_r || has_tag (t->tags, tag))
		return TRUE;
	char *tags = t->tags && *t->tags ? g_strdup_printf ("%s,%s", t->tags, tag) : g_strdup (tag);
	g_free (t->tags);
	t->tags = tags;
	t->updated_at = md_now ();
	return md_store_ticket_update (store, t, error) && record (store, t, NULL, "tag", NULL, tag, error) &&
	       record (store, t, NULL, "go-live notice", NULL, *notice_r, error);
}

/* ---- the form of a ticket ---- */

/* The newest value of FIELD in the ticket's history (and the entry's
 * old value and actor), NULL when none.  Free with g_free. */
static char *
last_history (MdStore *store, gint64 ticket_id, const char *field, char **old_r, char **actor_r, GError **error)
{
	g_autoptr (GPtrArray) history = md_store_ticket_history (store, ticket_id, error);
	if (!history)
		return NULL;
	for (guint i = history->len; i > 0; i--) {
		MdHistoryEntry *h = history->pdata[i - 1];
		if (g_strcmp0 (h->field, field) != 0)
			continue;
		if (old_r)
			*old_r = g_strdup (h->old_value);
		if (actor_r)
			*actor_r = g_strdup (h->actor);
		return g_strdup (h->new_value ? h->new_value : "");
	}
	return NULL;
}

/* What the new ticket's form still lacks goes into the acknowledgement
 * (`missing` and `form`), so the customer gets one mail, not two.  Not
 * to an agent who opens a ticket (for a customer, say): they know the
 * form. */
static gboolean
ask_in_ack (MdDesk *desk, MdStore *store, MdTicket *t, MdIntake *in, const MdMessage *msg, GError **error)
{
	if (!t->requester || md_notify_suppress_reason (msg, NULL) ||
	    md_is_agent (store, t->requester, (const char *const *) desk->conf->agents))
		return TRUE;
	g_autofree char *missing = NULL, *fill_in = NULL, *summary = NULL;
	describe_missing (in->form, in->fields, in->entries, &missing, &fill_in, &summary);
	if (!*missing)
		return TRUE;
	g_hash_table_insert (in->ack_vars, g_strdup ("missing"), g_steal_pointer (&missing));
	g_hash_table_insert (in->ack_vars, g_strdup ("form"), g_steal_pointer (&fill_in));
	return record (store, t, NULL, "fields missing", NULL, summary, error);
}

MdIntake *
md_intake_new_ticket (MdDesk *desk, MdStore *store, MdTicket *t, const MdMessage *msg, const MdIntakeMatch *match,
                      GError **error)
{
	g_autoptr (MdIntake) in = g_new0 (MdIntake, 1);
	in->ack_vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	g_hash_table_insert (in->ack_vars, g_strdup ("delivery"), g_strdup (""));
	g_hash_table_insert (in->ack_vars, g_strdup ("notice"), g_strdup (""));
	g_hash_table_insert (in->ack_vars, g_strdup ("missing"), g_strdup (""));
	g_hash_table_insert (in->ack_vars, g_strdup ("form"), g_strdup (""));
	g_autoptr (MdIntakeMatch) found = match ? NULL : md_intake_match (desk, t->category, t->tags, msg);
	if (!match)
		match = found;
	in->forms = match->forms ? md_forms_ref (match->forms) : NULL;
	in->form = match->form;
	if (!in->form)
		return g_steal_pointer (&in);

	if (!record (store, t, NULL, "form", NULL, md_form_name (in->form), error))
		return NULL;
	/* None stored yet: ticket ids are AUTOINCREMENT, never reused, and
	 * fields reference tickets. */
	in->fields = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	GHashTable *fields = in->fields;
	in->entries = g_ptr_array_ref (match->entries);
	if (!store_entries (store, t, fields, in->entries, t->requester, NULL, NULL, error) ||
	    !fill_remembered (store, t, in->form, fields, error))
		return NULL;

	int lo = 0, hi = 0;
	gboolean investigation = FALSE;
	if (md_form_estimate (in->form, &lo, &hi, &investigation) && !investigation) {
		MdDuration days = { MD_DURATION_BUSINESS_DAYS, hi };
		gint64 due = md_calendar_add (desk->calendar, t->created_at, &days);
		if (due > 0) {
			t->due_at = due;
			g_autofree char *iso = md_time_iso_utc (due);
			g_autofree char *local = md_notify_local_time (desk, due);
			g_autofree char *range = lo == hi ? g_strdup_printf ("%d", hi) : g_strdup_printf ("%d-%d", lo, hi);
			if (!md_store_ticket_update (store, t, error) || !record (store, t, NULL, "due_at", NULL, iso, error))
				return NULL;
			g_hash_table_insert (in->ack_vars, g_strdup ("delivery"),
			                     g_strdup_printf ("%s (%s working day%s)", local, range, hi == 1 ? "" : "s"));
		}
	}
	g_autofree char *notice = NULL;
	if (!check_notice (desk, store, t, in->form, fields, &notice, error))
		return NULL;
	if (notice)
		g_hash_table_insert (in->ack_vars, g_strdup ("notice"), g_steal_pointer (&notice));
	if (!ask_in_ack (desk, store, t, in, msg, error))
		return NULL;
	return g_steal_pointer (&in);
}

/* Asks the requester for what the form still lacks (fields-missing). */
static gboolean
ask (MdDesk *desk, MdStore *store, MdTicket *t, const char *missing, const char *fill_in, const char *notice,
     const char *summary, const MdMessage *msg, GError **error)
{
	g_autoptr (GHashTable) vars = g_hash_table_new (g_str_hash, g_str_equal);
	g_hash_table_insert (vars, "missing", (gpointer) missing);
	g_hash_table_insert (vars, "form", (gpointer) fill_in);
	g_hash_table_insert (vars, "notice", (gpointer) (notice ? notice : ""));
	const char *rcpts[] = { t->requester, NULL };
	return md_notify_event (desk, store, t, "fields-missing", vars, rcpts, msg ? msg->message_id : NULL, FALSE,
	                        NULL, NULL, error) &&
	       record (store, t, NULL, "fields missing", NULL, summary, error);
}

gboolean
md_intake_customer_reply (MdDesk *desk, MdStore *store, MdTicket *t, const MdActor *actor, const char *text,
                          const MdMessage *msg, GError **error)
{
	GError *local = NULL;
	g_autofree char *form_name = last_history (store, t->id, "form", NULL, NULL, &local);
	if (local) {
		g_propagate_error (error, local);
		return FALSE;
	}
	g_autoptr (MdForms) forms = form_name ? md_desk_forms (desk) : NULL;
	const MdForm *form = forms ? md_forms_get (forms, form_name) : NULL;
	if (!form)
		return TRUE;  /* no form, or the forms file no longer has it */

	g_autoptr (GHashTable) fields = md_store_fields (store, t->id, error);
	if (!fields)
		return FALSE;
	g_autoptr (GPtrArray) entries = md_form_recognize (form, text);
	if (entries->len == 0)
		return TRUE;  /* the customer wrote about something else */
	gboolean date_set = FALSE;
	g_autofree char *notice = NULL;
	if (!store_entries (store, t, fields, entries, actor->email, &date_set, md_form_notice (form, NULL), error) ||
	    (date_set && !check_notice (desk, store, t, form, fields, &notice, error)))
		return FALSE;

	/* Only an answer to intake's question is answered in turn: a form
	 * nobody asked about (an agent opened the ticket) stays quiet, and
	 * once an agent has answered, the agent asks what they need. */
	g_autofree char *asked = last_history (store, t->id, "fields missing", NULL, NULL, &local);
	if (local) {
		g_propagate_error (error, local);
		return FALSE;
	}
	if (!asked || strcmp (asked, "none") == 0)
		return TRUE;
	g_autofree char *missing = NULL, *fill_in = NULL, *summary = NULL;
	describe_missing (form, fields, entries, &missing, &fill_in, &summary);
	if (!*missing)
		return record (store, t, NULL, "fields missing", asked, "none", error);
	/* Automatic mail like the acknowledgement, and as limited per sender
	 * (its own kind): a customer answering in many small replies. */
	if (t->first_response_at || md_notify_suppress_reason (msg, NULL) ||
	    (t->requester && md_notify_rate_limited (desk, store, t->requester, "fields-missing")))
		return TRUE;
	return ask (desk, store, t, missing, fill_in, notice, summary, msg, error);
}
