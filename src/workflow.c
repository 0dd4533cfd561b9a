/* workflow.c - the status machine of DESIGN 1, field changes and the
 * commands of DESIGN 7.  History, notifications and timers follow every
 * change here and nowhere else. */
#include "config.h"

#include <string.h>

#include "catalog.h"
#include "intake.h"
#include "md.h"
#include "merge.h"
#include "schedule.h"
#include "store.h"
#include "thread.h"
#include "token.h"
#include "workflow.h"

#define MAX_COMMANDS 20

static const char *
actor_label (const MdActor *actor)
{
	return actor && actor->email ? actor->email : "system";
}

gboolean
md_workflow_may_set_status (const char *from, const char *to, MdActorKind actor, const char **reason_r)
{
	const char *reason = NULL;

	if (g_strcmp0 (from, to) == 0)
		reason = "the ticket already has that status";
	else if (actor == MD_ACTOR_CUSTOMER && g_strcmp0 (to, MD_STATUS_RESOLVED) != 0)
		reason = "customers can only mark a ticket resolved";
	else if (g_strcmp0 (to, MD_STATUS_TRIAGE) == 0)
		reason = "only a new ticket waits for triage";
	else if (g_strcmp0 (to, MD_STATUS_ACKNOWLEDGED) == 0 && g_strcmp0 (from, MD_STATUS_TRIAGE) != 0)
		reason = "only a ticket waiting for triage can be acknowledged";
	else if (g_strcmp0 (from, MD_STATUS_RESOLVED) == 0 && g_strcmp0 (to, MD_STATUS_REOPENED) != 0)
		reason = "the ticket is resolved; reopen it first (#status reopened)";
	else if (g_strcmp0 (to, MD_STATUS_REOPENED) == 0 && g_strcmp0 (from, MD_STATUS_RESOLVED) != 0)
		reason = "only a resolved ticket can be reopened";
	if (reason_r)
		*reason_r = reason;
	return reason == NULL;
}

gint64
md_workflow_first_response_due (MdDesk *desk, const char *priority, gint64 t)
{
	for (int i = 0; md_priorities[i]; i++) {
		if (g_strcmp0 (md_priorities[i], priority) != 0)
			continue;
		if (!desk->has_first_response[i])
			return 0;
		gint64 due = md_calendar_add (desk->calendar, t, &desk->first_response[i]);
		return due > 0 ? due : 0;
	}
	return 0;
}

static gboolean
record (MdStore *store, MdTicket *t, const MdActor *actor, const char *field, const char *old_value,
        const char *new_value, GError **error)
{
	t->updated_at = md_now ();
	return md_store_history_add (store, t->id, t->updated_at, actor_label (actor), field, old_value, new_value,
	                             error);
}

/* As md_workflow_set_status; MSG is the mail that asked for the change
 * (NULL when none).  When that mail may not be answered automatically
 * (a list, bulk mail: DESIGN 8), the status mail leaves its author out:
 * it would be an automatic answer to it.  The others are still told. */
static gboolean
change_status (MdDesk *desk, MdStore *store, MdTicket *t, const char *status, const MdActor *actor,
               const char *comment, gboolean notify, const MdMessage *msg, GError **error)
{
	const char *old = t->status;
	gint64 now = md_now ();
	/* Entered again (#waiting on a ticket that waits): the stay starts
	 * over, and with it the timers that count from its start. */
	gboolean again = g_strcmp0 (old, status) == 0;

	t->status = status;
	t->status_changed_at = now;
	if (g_strcmp0 (status, MD_STATUS_RESOLVED) == 0)
		t->resolved_at = now;
	else if (g_strcmp0 (old, MD_STATUS_RESOLVED) == 0)
		t->resolved_at = 0;
	if (!record (store, t, actor, "status", old, status, error) || !md_store_ticket_update_status (store, t, error) ||
	    !(again ? md_schedule_restart_waiting (desk, store, t, error) : md_schedule_ticket (desk, store, t, error)))
		return FALSE;
	if (!notify)
		return TRUE;
	MdPersonRef who = { actor ? actor->email : NULL, actor ? actor->name : NULL };
	const char *quiet = msg && who.email && md_notify_suppress_reason (msg, NULL) ? who.email : NULL;
	return md_notify_status_change (desk, store, t, old, who.email ? &who : NULL, comment, quiet,
	                                actor && actor->kind == MD_ACTOR_CUSTOMER, error);
}

gboolean
md_workflow_set_status (MdDesk *desk, MdStore *store, MdTicket *t, const char *status, const MdActor *actor,
                        const char *comment, gboolean notify, GError **error)
{
	return change_status (desk, store, t, status, actor, comment, notify, NULL, error);
}

gboolean
md_workflow_first_response (MdDesk *desk, MdStore *store, MdTicket *t, const MdActor *actor, GError **error)
{
	if (t->first_response_at)
		return TRUE;
	t->first_response_at = md_now ();
	g_autofree char *at = md_time_iso_utc (t->first_response_at);
	return record (store, t, actor, "first_response", NULL, at, error) && md_store_ticket_update (store, t, error) &&
	       md_schedule_ticket (desk, store, t, error);
}

/* A value a person gave that cannot be used: answered by mail. */
#define invalid(error, ...) (g_set_error (error, MD_ERROR, MD_ERROR_INVALID, __VA_ARGS__), FALSE)

/* ---- fields: each setter validates, applies, records ---- */

typedef gboolean (*FieldSetter) (MdDesk *desk, MdStore *store, MdTicket *t, const char *value,
                                 const MdActor *actor, GError **error);

static gboolean
set_priority (MdDesk *desk, MdStore *store, MdTicket *t, const char *value, const MdActor *actor, GError **error)
{
	const char *p = md_priority_normalize (value);
	if (!p)
		return invalid (error, "\"%s\" is not a priority (P1, P2, P3, P4 or ER)", value);
	if (p == t->priority)
		return TRUE;
	const char *old = t->priority;
	t->priority = p;
	/* A deadline already met (or missed) is history, not moved. */
	if (!t->first_response_at)
		t->first_response_due = md_workflow_first_response_due (desk, p, t->created_at);
	return record (store, t, actor, "priority", old, p, error) && md_store_ticket_update (store, t, error) &&
	       md_schedule_ticket (desk, store, t, error);
}

static gboolean
set_category (MdDesk *desk, MdStore *store, MdTicket *t, const char *value, const MdActor *actor, GError **error)
{
	(void) desk;
	const char *c = md_category_normalize (value);
	if (!c)
		return invalid (error, "\"%s\" is not a category (Technical Request, Bug, Data Migration, "
		                       "New Environment Request, Access Request, Security Issue/Incident, "
		                       "Consulting Business Request)", value);
	if (c == t->category)
		return TRUE;
	const char *old = t->category;
	t->category = c;
	return record (store, t, actor, "category", old, c, error) && md_store_ticket_update (store, t, error);
}

static gboolean
unassign (MdDesk *desk, MdStore *store, MdTicket *t, const MdActor *actor, GError **error)
{
	if (!t->assignee_id)
		return TRUE;
	g_autofree char *old = g_steal_pointer (&t->assignee);
	g_clear_pointer (&t->assignee_name, g_free);
	t->assignee_id = 0;
	/* reminders go to every agent again (md_schedule_ticket) */
	return record (store, t, actor, "assignee", old, NULL, error) && md_store_ticket_update (store, t, error) &&
	       md_schedule_ticket (desk, store, t, error);
}

static gboolean
set_assignee (MdDesk *desk, MdStore *store, MdTicket *t, const char *value, const MdActor *actor, GError **error)
{
	if (!*value || g_ascii_strcasecmp (value, "none") == 0)
		return unassign (desk, store, t, actor, error);
	if (g_ascii_strcasecmp (value, "me") == 0 && !(actor && actor->email))
		return invalid (error, "%s", "\"me\" is the agent who asks, and there is none here: name the agent "
		                "(assignee=EMAIL), or say who you are (ticket set --as AGENT)");
	g_autofree char *email = g_ascii_strdown (g_ascii_strcasecmp (value, "me") == 0 && actor && actor->email
	                                          ? actor->email : value, -1);
	if (!md_address_looks_valid (email))
		return invalid (error, "\"%s\" is not an email address (or \"me\", or \"none\" to unassign)", value);
	if (!md_is_agent (store, email, (const char *const *) desk->conf->agents))
		return invalid (error, "%s is not an agent of this desk", email);
	if (t->assignee_id && t->assignee && g_ascii_strcasecmp (t->assignee, email) == 0)
		return TRUE;  /* already theirs: nothing changes, as for the other fields */
	gint64 id = 0;
	if (!md_store_person_ensure (store, email, NULL, &id, error))
		return FALSE;
	g_autoptr (MdPerson) agent = md_store_person_get (store, id, error);
	if (!agent)
		return FALSE;
	g_autofree char *old = g_strdup (t->assignee);
	t->assignee_id = id;
	g_free (t->assignee);
	t->assignee = g_strdup (email);
	g_free (t->assignee_name);
	t->assignee_name = g_strdup (agent->name);
	return record (store, t, actor, "assignee", old, email, error) && md_store_ticket_update (store, t, error) &&
	       md_schedule_ticket (desk, store, t, error);
}

static gboolean
set_visibility (MdDesk *desk, MdStore *store, MdTicket *t, const char *value, const MdActor *actor, GError **error)
{
	(void) desk;
	const char *v = md_visibility_normalize (value);
	if (!v)
		return invalid (error, "\"%s\" is not a visibility (private or shared)", value);
	gboolean shared = g_strcmp0 (v, "shared") == 0;
	/* A ticket opened before its requester's organization was made (or
	 * joined) has none: the organization is the requester's now. */
	if (shared && !t->organization_id && t->requester &&
	    (t->organization_id = md_store_org_of (store, t->requester, NULL))) {
		g_free (t->organization);
		t->organization = md_store_org_name (store, t->organization_id);
		if (!record (store, t, actor, "organization", NULL, t->organization, error))
			return FALSE;
	}
	if (shared && !t->organization_id)
		return invalid (error, "%s", "the requester belongs to no organization to share it with");
	if (shared == t->shared)
		return TRUE;
	t->shared = shared;
	return record (store, t, actor, "visibility", shared ? "private" : "shared", v, error) &&
	       md_store_ticket_update (store, t, error);
}

/* VALUE, a status as a person wrote it, checked and applied; NOTIFY as
 * for md_workflow_set_status. */
static gboolean
apply_status (MdDesk *desk, MdStore *store, MdTicket *t, const char *value, const MdActor *actor, gboolean notify,
              GError **error)
{
	const char *s = md_status_normalize (value);
	const char *reason = NULL;
	if (!s)
		return invalid (error, "\"%s\" is not a status (Waiting for triage, Request acknowledged, In "
		                       "progress, Waiting for customer, Resolved, Reopened)", value);
	/* Already there (an agent's reply that moved it, then its
	 * "#status In progress"): done, as for the other fields.  Except a
	 * wait, entered again by an agent: that is #waiting, a new question
	 * whose follow-ups count from now.  A customer cannot wait on himself. */
	if (g_strcmp0 (s, t->status) == 0) {
		if (g_strcmp0 (s, MD_STATUS_WAITING) != 0 || (actor && actor->kind == MD_ACTOR_CUSTOMER))
			return TRUE;
		return md_workflow_set_status (desk, store, t, s, actor, NULL, FALSE, error);
	}
	if (!md_workflow_may_set_status (t->status, s, actor ? actor->kind : MD_ACTOR_SYSTEM, &reason))
		return invalid (error, "%s", reason);
	if (g_strcmp0 (s, MD_STATUS_ACKNOWLEDGED) == 0 && !md_workflow_first_response (desk, store, t, actor, error))
		return FALSE;
	return md_workflow_set_status (desk, store, t, s, actor, NULL, notify, error);
}

static gboolean
set_status_field (MdDesk *desk, MdStore *store, MdTicket *t, const char *value, const MdActor *actor,
                  GError **error)
{
	return apply_status (desk, store, t, value, actor, TRUE, error);
}

gboolean
md_workflow_set_field (MdDesk *desk, MdStore *store, MdTicket *t, const char *field, const char *value,
                       const MdActor *actor, GError **error)
{
	static const struct {
		const char *name;
		FieldSetter set;
	} fields[] = {
		{ "status", set_status_field }, { "priority", set_priority }, { "category", set_category },
		{ "assignee", set_assignee }, { "visibility", set_visibility },
	};
	/* Keys in any case, as values are (`ticket set 1 Priority=P1`). */
	for (gsize i = 0; field && i < G_N_ELEMENTS (fields); i++)
		if (g_ascii_strcasecmp (field, fields[i].name) == 0)
			return fields[i].set (desk, store, t, value, actor, error);
	return invalid (error, "\"%s\" is not a field (status, priority, category, assignee, visibility)", field);
}

/* ---- replies ---- */

/* Whether a reply says anything: words of its own besides commands, or
 * a file (a customer answering "please send the logs" with only them). */
static gboolean
says_something (char *comment, const MdMessage *msg)
{
	if (*g_strstrip (comment))
		return TRUE;
	for (guint i = 0; msg && msg->attachments && i < msg->attachments->len; i++) {
		const MdAttachment *a = msg->attachments->pdata[i];
		if (a->depth == 0 && !a->is_body)
			return TRUE;
	}
	return FALSE;
}

/* When a message's commands run, as far as what they mail goes. */
typedef enum {
	BY_THEMSELVES,  /* each says what it changed in mail of its own */
	WITH_REPLY,     /* an agent's reply with words: it tells the status they set */
	AT_OPENING,     /* the mail that opened the ticket: its acknowledgement tells */
} Occasion;

/* The passes of an agent's reply with words, in the order they run. */
typedef enum {
	FIELDS,   /* change a field and mail nothing of their own */
	STATUS,   /* move the status: the reply says so */
	THE_REST, /* mail of their own (#list), or end the ticket (#merge) */
	ANY,
} Which;

static Which
which_of (const MdCommand *c)
{
	static const char *const fields[] = { "priority", "category", "assign", NULL };
	static const char *const status[] = { "ack", "status", "waiting", "resolve", NULL };
	return g_strv_contains (fields, c->name) ? FIELDS : g_strv_contains (status, c->name) ? STATUS : THE_REST;
}

static gboolean run_commands_where (MdDesk *desk, MdStore *store, MdTicket *t, GPtrArray *commands,
                                    const MdActor *actor, const MdMessage *msg, Which which, Occasion occasion,
                                    GError **error);

gboolean
md_workflow_agent_reply (MdDesk *desk, MdStore *store, MdTicket *t, const MdActor *actor, const char *text,
                         gboolean internal, GPtrArray *commands, const MdMessage *msg, GError **error)
{
	g_autofree char *comment = md_commands_strip (text);

	if (!says_something (comment, msg) || internal)
		return md_workflow_run_commands (desk, store, t, commands, actor, msg, error);

	MdPersonRef agent = { actor->email, actor->name };
	g_autofree char *before = g_strdup (t->status);
	if (!md_workflow_first_response (desk, store, t, actor, error))
		return FALSE;
	const char *next = g_strcmp0 (t->status, MD_STATUS_TRIAGE) == 0 ? MD_STATUS_ACKNOWLEDGED
	                   : (g_strcmp0 (t->status, MD_STATUS_ACKNOWLEDGED) == 0 ||
	                      g_strcmp0 (t->status, MD_STATUS_REOPENED) == 0) ? MD_STATUS_IN_PROGRESS
	                   : NULL;
	/* The reply itself tells the customer; no separate status mail, for
	 * the move a reply makes nor for the one its #waiting, #resolve or
	 * #status asks: one mail that says both.  It is written after them
	 * and after the commands that mail nothing (#priority, #category,
	 * #assign, first: a #resolve would refuse them), so that it and its
	 * footer show the ticket as this mail leaves it; the commands that
	 * mail of their own run after it, so their mail follows the reply's. */
	if ((next && !md_workflow_set_status (desk, store, t, next, actor, NULL, FALSE, error)) ||
	    !run_commands_where (desk, store, t, commands, actor, msg, FIELDS, WITH_REPLY, error))
		return FALSE;
	g_autofree char *moved = g_strdup (t->status);
	if (!run_commands_where (desk, store, t, commands, actor, msg, STATUS, WITH_REPLY, error))
		return FALSE;
	/* What the customer knew before this message, when its commands moved
	 * the status: a reply's own move alone goes without saying. */
	gboolean told = g_strcmp0 (moved, t->status) != 0 && g_strcmp0 (before, t->status) != 0;
	const char *old_status = told ? before : NULL;
	return md_notify_agent_reply (desk, store, t, &agent, comment, old_status, msg, error) &&
	       run_commands_where (desk, store, t, commands, actor, msg, THE_REST, WITH_REPLY, error);
}

gboolean
md_workflow_customer_reply (MdDesk *desk, MdStore *store, MdTicket *t, const MdActor *actor, const char *text,
                            GPtrArray *commands, const MdMessage *msg, GError **error)
{
	g_autofree char *comment = md_commands_strip (text);
	/* Intake forms first: the fields the reply gives are stored before
	 * the agents are told of it. */
	if (!md_intake_customer_reply (desk, store, t, actor, comment, msg, error))
		return FALSE;
	const char *next = g_strcmp0 (t->status, MD_STATUS_WAITING) == 0 ? MD_STATUS_IN_PROGRESS
	                   : g_strcmp0 (t->status, MD_STATUS_RESOLVED) == 0 ? MD_STATUS_REOPENED : NULL;

	if (says_something (comment, msg)) {
		gboolean reopened = g_strcmp0 (next, MD_STATUS_REOPENED) == 0;
		if (next && !change_status (desk, store, t, next, actor, NULL, reopened, msg, error))
			return FALSE;
		MdPersonRef author = { actor->email, actor->name };
		if (!md_notify_customer_reply (desk, store, t, &author, comment, msg, error))
			return FALSE;
	}
	return md_workflow_run_commands (desk, store, t, commands, actor, msg, error);
}

/* ---- commands ---- */

void
md_command_free (MdCommand *c)
{
	if (!c)
		return;
	g_free (c->line);
	g_free (c->name);
	g_free (c->arg);
	g_free (c);
}

GPtrArray *
md_commands_parse (const char *text)
{
	GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) md_command_free);
	const char *p = text ? text : "";

	while (*p && out->len < MAX_COMMANDS) {
		const char *eol = strchr (p, '\n');
		gsize len = eol ? (gsize) (eol - p) : strlen (p);
		g_autofree char *line = g_strstrip (g_strndup (p, MIN (len, 1000)));
		p = eol ? eol + 1 : p + len;
		if (!*line)
			continue;
		if (line[0] != '#' || !g_ascii_isalpha (line[1]))
			break;
		MdCommand *c = g_new0 (MdCommand, 1);
		const char *sp = line + 1;
		while (*sp && !g_ascii_isspace (*sp))
			sp++;
		c->line = g_strdup (line);
		c->name = g_ascii_strdown (line + 1, sp - line - 1);
		c->arg = g_strstrip (g_strdup (sp));
		g_ptr_array_add (out, c);
	}
	return out;
}

char *
md_commands_strip (const char *text)
{
	const char *p = text ? text : "";
	int taken = 0;
	while (*p && taken < MAX_COMMANDS) {
		const char *eol = strchr (p, '\n');
		const char *q = p;
		while (*q == ' ' || *q == '\t' || *q == '\r')
			q++;
		if (*q == '#' && g_ascii_isalpha (q[1]))
			taken++;
		else if (*q != '\n' && *q)
			break;
		p = eol ? eol + 1 : q + strlen (q);
	}
	return g_strdup (p);
}

#define LIST_MAX 200

/* The #list answer: the person's tickets and their organization's shared
 * ones, open first, newest first, at most LIST_MAX (a customer of ten
 * years asks about this week's, not the first of thousands). */
static char *
list_text (MdDesk *desk, MdStore *store, const char *email, GError **error)
{
	MdTicketFilter f = {
		.requester = email, .org_id = md_store_org_of (store, email, NULL), .limit = LIST_MAX + 1,
		.open_first = TRUE,
	};
	g_autoptr (GPtrArray) list = md_store_ticket_list (store, &f, error);
	if (!list)
		return NULL;
	GString *s = g_string_new (NULL);
	for (guint i = 0; i < list->len && i < LIST_MAX; i++) {
		MdTicket *t = list->pdata[i];
		g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);
		/* As every other mail shows times: in the desk's zone. */
		g_autofree char *updated = md_notify_local_time (desk, t->updated_at);
		gboolean mine = t->requester && g_ascii_strcasecmp (t->requester, email) == 0;
		if (s->len)
			g_string_append_c (s, '\n');
		g_string_append_printf (s, "[%s] %s\n    Status: %s · Last update: %s%s\n",
		                        key, t->subject, t->status, updated, mine ? "" : " · shared with your organization");
		/* The same link as the other mail's footer; a resolved ticket
		 * has nothing to resolve (a reply reopens it). */
		if (md_status_is_open (t->status)) {
			g_autofree char *addr = md_address_for_ticket (&desk->addressing, t->id);
			g_autofree char *link = md_notify_resolve_link (addr, key);
			g_string_append_printf (s, "    Resolve: %s\n", link);
		}
	}
	if (list->len > LIST_MAX)
		g_string_append_printf (s, "\nThese are the newest %d: open tickets first, then resolved ones. "
		                        "There are more.\n", LIST_MAX);
	if (!s->len)
		g_string_append (s, "You have no tickets.\n");
	/* The template puts {{tickets}} on a line of its own. */
	g_string_truncate (s, s->len - 1);
	return g_string_free (s, FALSE);
}

gboolean
md_workflow_list (MdDesk *desk, MdStore *store, const MdTicket *t, const MdActor *actor, const MdMessage *msg,
                  GError **error)
{
	if (!actor->email) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "#list answers a person by mail; the desk has no list");
		return FALSE;
	}
	g_autofree char *text = list_text (desk, store, actor->email, error);
	if (!text)
		return FALSE;
	MdPersonRef to = { actor->email, actor->name };
	return md_notify_list (desk, store, t, &to, text, msg, error);
}

typedef enum { WHO_AGENT = 1, WHO_CUSTOMER = 2 } Who;

static const struct { const char *name; Who who; } command_table[] = {
	{ "ack", WHO_AGENT }, { "status", WHO_AGENT }, { "priority", WHO_AGENT }, { "category", WHO_AGENT },
	{ "assign", WHO_AGENT }, { "waiting", WHO_AGENT }, { "resolve", WHO_AGENT | WHO_CUSTOMER },
	{ "internal", WHO_AGENT }, { "share", WHO_CUSTOMER }, { "private", WHO_CUSTOMER },
	{ "list", WHO_AGENT | WHO_CUSTOMER }, { "merge", WHO_AGENT },
};

gboolean
md_command_is_known (const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS (command_table); i++)
		if (strcmp (command_table[i].name, name) == 0)
			return TRUE;
	return FALSE;
}

/* #merge SUP-12: this ticket, a duplicate, into SUP-12 (merge.c). */
static gboolean
merge_into (MdDesk *desk, MdStore *store, MdTicket *t, const char *arg, const MdActor *actor, GError **error)
{
	gint64 into_id = md_ticket_key_parse (desk->conf->ticket_prefix, arg);
	if (!into_id)
		return invalid (error, "#merge needs the ticket to merge this one into, as in #merge %s-123",
		                desk->conf->ticket_prefix);
	GError *local = NULL;
	g_autoptr (MdTicket) into = md_store_ticket_get (store, into_id, &local);
	if (!into && g_error_matches (local, MD_ERROR, MD_ERROR_NOT_FOUND)) {
		g_error_free (local);
		return invalid (error, "there is no ticket %s", arg);
	}
	if (!into) {
		g_propagate_error (error, local);
		return FALSE;
	}
	return md_merge_tickets (desk, store, t, into, actor, error);
}

/* Runs one command; FALSE with MD_ERROR_INVALID/DENIED is answered by
 * mail, other errors abort. */
static gboolean
run_one (MdDesk *desk, MdStore *store, MdTicket *t, MdCommand *c, const MdActor *actor, Occasion occasion,
         const MdMessage *msg, GError **error)
{
	gboolean status_mail = occasion != WITH_REPLY;
	/* The system (a scripted reply as the desk) commands as an agent does. */
	Who who = actor->kind == MD_ACTOR_CUSTOMER ? WHO_CUSTOMER : WHO_AGENT;
	gsize i;
	for (i = 0; i < G_N_ELEMENTS (command_table) && strcmp (command_table[i].name, c->name) != 0; i++)
		;
	if (i == G_N_ELEMENTS (command_table)) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "unknown command #%s; commands are #ack, #status, "
		             "#priority, #category, #assign, #waiting, #resolve, #internal, #share, #private, #list "
		             "and #merge", c->name);
		return FALSE;
	}
	if (!(command_table[i].who & who)) {
		g_set_error (error, MD_ERROR, MD_ERROR_DENIED, "only %s may use #%s",
		             who == WHO_AGENT ? "the customer" : "agents", c->name);
		return FALSE;
	}
	const char *name = c->name;
	if (strcmp (name, "list") == 0) {
		/* Held to the limit a #list alone at the intake has: twenty of
		 * them in a reply under a forged From were twenty mails to it. */
		if (actor->kind == MD_ACTOR_CUSTOMER && actor->email &&
		    md_notify_rate_limited (desk, store, actor->email, "list"))
			return TRUE;
		return md_workflow_list (desk, store, t, actor, msg, error);
	}
	if (strcmp (name, "internal") == 0)
		return TRUE;  /* handled by the caller: the message stays internal */
	if (!md_status_is_open (t->status) && strcmp (name, "status") != 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "ticket is resolved; #%s was not applied "
		             "(an agent can reopen it with #status reopened)", name);
		return FALSE;
	}
	if (strcmp (name, "merge") == 0)
		return merge_into (desk, store, t, c->arg, actor, error);
	if (strcmp (name, "ack") == 0) {
		if (!md_workflow_first_response (desk, store, t, actor, error))
			return FALSE;
		if (g_strcmp0 (t->status, MD_STATUS_TRIAGE) != 0)
			return TRUE;
		return md_workflow_set_status (desk, store, t, MD_STATUS_ACKNOWLEDGED, actor, NULL, status_mail, error);
	}
	if (strcmp (name, "status") == 0)
		return apply_status (desk, store, t, c->arg, actor, status_mail, error);
	if (strcmp (name, "priority") == 0 || strcmp (name, "category") == 0)
		return md_workflow_set_field (desk, store, t, name, c->arg, actor, error);
	if (strcmp (name, "assign") == 0)
		return md_workflow_set_field (desk, store, t, "assignee", *c->arg ? c->arg : "me", actor, error);
	if (strcmp (name, "share") == 0 || strcmp (name, "private") == 0) {
		if (!t->requester || g_ascii_strcasecmp (t->requester, actor->email) != 0) {
			g_set_error (error, MD_ERROR, MD_ERROR_DENIED, "only the requester may #%s a ticket", name);
			return FALSE;
		}
		if (!md_workflow_set_field (desk, store, t, "visibility", strcmp (name, "share") == 0 ? "shared" : "private",
		                            actor, error))
			return FALSE;
		/* Said as the ticket now is, changed or not: who asked learns where
		 * it stands.  The mail that opened it has its acknowledgement. */
		MdPersonRef to = { actor->email, actor->name };
		return occasion == AT_OPENING || md_notify_visibility (desk, store, t, &to, msg, error);
	}
	const char *target = strcmp (name, "waiting") == 0 ? MD_STATUS_WAITING : MD_STATUS_RESOLVED;
	const char *reason = NULL;
	/* An agent who asks the customer another question waits anew: the
	 * follow-ups count from this question, not the first.  No status
	 * mail, since the status stays; the agent's reply is the question. */
	if (strcmp (name, "waiting") == 0 && g_strcmp0 (t->status, MD_STATUS_WAITING) == 0)
		return md_workflow_set_status (desk, store, t, target, actor, NULL, FALSE, error);
	if (!md_workflow_may_set_status (t->status, target, actor->kind, &reason)) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "%s", reason);
		return FALSE;
	}
	return change_status (desk, store, t, target, actor, NULL, status_mail, msg, error);
}

/* Whether a refused command is answered by mail.  A customer's From
 * and anything at the intake can be forged, and one message may hold
 * twenty commands: their answers to one address are held to the limit
 * of automatic mail (ack_rate_limit), counted answer by answer, else
 * the desk mails twenty copies of a stranger's lines to whomever they
 * name per message they send.  A verified agent's are always answered. */
typedef enum {
	ANSWER_NONE,
	ANSWER_LIMITED,
	ANSWER_ALWAYS,
} Answer;

/* ANSWER_ALWAYS for a verified agent or the desk in a reply, else
 * ANSWER_LIMITED. */
static Answer
answer_in_reply (const MdActor *actor)
{
	return actor->kind == MD_ACTOR_CUSTOMER ? ANSWER_LIMITED : ANSWER_ALWAYS;
}

/* Records that COMMAND was refused for REASON and, as ANSWER says and
 * when there is someone to write to, answers it by mail. */
static gboolean
refuse (MdDesk *desk, MdStore *store, MdTicket *t, const char *command, const char *reason, const MdActor *actor,
        Answer answer, const MdMessage *msg, GError **error)
{
	MdPersonRef to = { actor->email, actor->name };
	if (!md_store_history_add (store, t->id, md_now (), actor_label (actor), "command refused", command, reason,
	                           error))
		return FALSE;
	if (answer == ANSWER_NONE || !actor->email ||
	    (answer == ANSWER_LIMITED && md_notify_rate_limited (desk, store, actor->email, "command-error")))
		return TRUE;
	return md_notify_command_error (desk, store, t, &to, command, reason, msg, error);
}

/* Runs C; one that fails or is not allowed is refused (and answered as
 * ANSWER says).  FALSE on database trouble, or with the reason when
 * there is no address to answer. */
static gboolean
run_or_refuse (MdDesk *desk, MdStore *store, MdTicket *t, MdCommand *c, const MdActor *actor, Answer answer,
               Occasion occasion, const MdMessage *msg, GError **error)
{
	GError *local = NULL;
	if (run_one (desk, store, t, c, actor, occasion, msg, &local))
		return TRUE;
	/* Without an address (the desk replying from a script) there is no
	 * one to mail the reason to: the caller reports it. */
	if (local->domain != MD_ERROR || (local->code != MD_ERROR_INVALID && local->code != MD_ERROR_DENIED) ||
	    !actor->email) {
		g_propagate_error (error, local);
		return FALSE;
	}
	gboolean ok = refuse (desk, store, t, c->line, local->message, actor, answer, msg, error);
	g_error_free (local);
	return ok;
}

/* #merge ends the ticket's life of its own: it runs after every other
 * command of the message, which act on the ticket as it was. */
static gboolean
is_merge (const MdCommand *c)
{
	return strcmp (c->name, "merge") == 0;
}

/* The commands WHICH selects (which_of), in order, #merge last. */
static gboolean
run_commands_where (MdDesk *desk, MdStore *store, MdTicket *t, GPtrArray *commands, const MdActor *actor,
                    const MdMessage *msg, Which which, Occasion occasion, GError **error)
{
	for (int merges = 0; merges < 2; merges++)
		for (guint i = 0; commands && i < commands->len; i++) {
			MdCommand *c = commands->pdata[i];
			gboolean selected = which == ANY || which_of (c) == which;
			if (selected && is_merge (c) == merges &&
			    !run_or_refuse (desk, store, t, c, actor, answer_in_reply (actor), occasion, msg, error))
				return FALSE;
		}
	return TRUE;
}

gboolean
md_workflow_run_commands (MdDesk *desk, MdStore *store, MdTicket *t, GPtrArray *commands, const MdActor *actor,
                          const MdMessage *msg, GError **error)
{
	return run_commands_where (desk, store, t, commands, actor, msg, ANY, BY_THEMSELVES, error);
}

/* Why C may not run in the mail that opened a ticket, or NULL when it
 * may be tried (the requester's #share and #private; run_one refuses a
 * customer's agent commands and unknown ones with its own reasons). */
static const char *
opening_refusal (const MdCommand *c, const MdActor *actor)
{
	/* DESIGN 7: an agent's commands count only at the token address. */
	if (actor->kind != MD_ACTOR_CUSTOMER)
		return "an agent's commands count only in mail to the ticket's reply address for agents, not in mail "
		       "that opens a ticket; reply to this message to use them";
	if (strcmp (c->name, "list") == 0)
		return "#list is answered when it comes alone; this message also asked something, so it opened a "
		       "ticket. Send #list on its own to the desk's address, or reply with it to this message";
	if (strcmp (c->name, "resolve") == 0)
		return "commands run in replies to the ticket's address, not in mail that opens a ticket; reply to this "
		       "message to resolve it";
	return NULL;
}

gboolean
md_workflow_opening_commands (MdDesk *desk, MdStore *store, MdTicket *t, GPtrArray *commands,
                              const MdActor *actor, const MdMessage *msg, GError **error)
{
	/* Mail to the intake address opens tickets for anyone, under any
	 * From (an agent's too): every answer is held to the limit. */
	for (guint i = 0; commands && i < commands->len; i++) {
		MdCommand *c = commands->pdata[i];
		/* No one to answer: refused, for a human to see in the history. */
		const char *reason = !actor->email ? "the message has no sender address to answer"
		                     : opening_refusal (c, actor);
		if (reason ? !refuse (desk, store, t, c->line, reason, actor, ANSWER_LIMITED, msg, error)
		           : !run_or_refuse (desk, store, t, c, actor, ANSWER_LIMITED, AT_OPENING, msg, error))
			return FALSE;
	}
	return TRUE;
}
