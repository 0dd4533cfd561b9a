/* merge.c - folding a duplicate ticket into another (see merge.h). */
#include "config.h"

#include "catalog.h"
#include "md.h"
#include "merge.h"
#include "notify.h"
#include "schedule.h"
#include "token.h"

#define denied(error, ...) (g_set_error (error, MD_ERROR, MD_ERROR_DENIED, __VA_ARGS__), FALSE)

/* Whom a refusal names as T's customer. */
static const char *
requester_of (const MdTicket *t)
{
	return t->requester ? t->requester : "no requester";
}

/* Why SOURCE (key FROM) may not be merged into INTO (key TO), as an
 * error; TRUE when it may. */
static gboolean
may_merge (const char *prefix, const MdTicket *source, const MdTicket *into, const char *from, const char *to,
           GError **error)
{
	if (source->id == into->id)
		return denied (error, "a ticket cannot be merged into itself");
	if (source->merged_into_id || into->merged_into_id) {
		const MdTicket *done = source->merged_into_id ? source : into;
		g_autofree char *where = md_ticket_key (prefix, done->merged_into_id);
		return denied (error, "%s was merged into %s already", done == source ? from : to, where);
	}
	if (!md_status_is_open (into->status))
		return denied (error, "%s is resolved; reopen it before merging into it", to);
	gboolean same_requester = source->requester_id && source->requester_id == into->requester_id;
	gboolean same_org = source->organization_id && source->organization_id == into->organization_id;
	/* One organization's members read each other's tickets only when
	 * shared (DESIGN 2): a private one merged into a colleague's would
	 * make its requester a participant there, and its mail the other's. */
	if (!same_requester && same_org && !(source->shared && into->shared))
		return denied (error, "%s (%s) and %s (%s) are not both shared with their organization: merged, each "
		               "would read the other's private mail", from, requester_of (source), to, requester_of (into));
	if (!same_requester && !same_org)
		return denied (error, "%s (%s) and %s (%s) are different customers' tickets: merged, each would read "
		               "the other's mail", from, requester_of (source), to, requester_of (into));
	/* The requester's own choice: what they kept private stays so. */
	if (!source->shared && into->shared && into->organization_id)
		return denied (error, "%s is private and %s shared with %s: merged, the organization would read %s's "
		               "mail; share %s first, or make %s private", from, to,
		               into->organization ? into->organization : "its organization", from, from, to);
	return TRUE;
}

/* The duplicate's customer, still owed a first response by a deadline
 * ahead, is owed it on the ticket that carries on, by the earlier of
 * the two deadlines: resolved by the merge, the duplicate would
 * otherwise drop it silently.  A ticket answered already owes one
 * anew: its answer was to its own customer's message, not to this. */
static gboolean
carry_first_response (MdDesk *desk, MdStore *store, const MdTicket *source, MdTicket *into, const char *who,
                      gint64 now, GError **error)
{
	gint64 due = source->first_response_due;
	if (!md_status_is_open (source->status) || source->first_response_at || due <= now ||
	    (!into->first_response_at && into->first_response_due && into->first_response_due <= due))
		return TRUE;
	g_autofree char *old_due = into->first_response_due ? md_time_iso_utc (into->first_response_due) : NULL;
	g_autofree char *new_due = md_time_iso_utc (due);
	g_autofree char *answered = into->first_response_at ? md_time_iso_utc (into->first_response_at) : NULL;
	if ((answered && !md_store_history_add (store, into->id, now, who, "first_response", answered, NULL, error)) ||
	    !md_store_history_add (store, into->id, now, who, "first_response_due", old_due, new_due, error))
		return FALSE;
	into->first_response_due = due;
	into->first_response_at = 0;
	return md_store_ticket_update (store, into, error) && md_schedule_restart_sla (desk, store, into, error);
}

gboolean
md_merge_tickets (MdDesk *desk, MdStore *store, MdTicket *source, MdTicket *into, const MdActor *actor,
                  GError **error)
{
	const char *prefix = desk->conf->ticket_prefix;
	g_autofree char *from = md_ticket_key (prefix, source->id), *to = md_ticket_key (prefix, into->id);
	if (!may_merge (prefix, source, into, from, to, error))
		return FALSE;
	const char *who = actor && actor->email ? actor->email : "system";
	gint64 now = md_now ();

	if (!md_store_ticket_merge (store, source, into, error) ||
	    !md_store_history_add (store, source->id, now, who, "merged_into", NULL, to, error) ||
	    !md_store_history_add (store, into->id, now, who, "merged", NULL, from, error))
		return FALSE;
	source->merged_into_id = into->id;
	into->updated_at = now;
	if (!md_store_ticket_update (store, into, error) ||
	    !carry_first_response (desk, store, source, into, who, now, error))
		return FALSE;
	/* Quietly: the customer's mail goes on in the other ticket, and a
	 * "resolved" for a problem still being worked on would mislead.
	 * What they are told instead is where it goes on. */
	if (md_status_is_open (source->status) &&
	    !md_workflow_set_status (desk, store, source, MD_STATUS_RESOLVED, actor, NULL, FALSE, error))
		return FALSE;
	return md_notify_merged (desk, store, source, into, actor ? actor->email : NULL, error);
}
