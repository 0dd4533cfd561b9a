/* merge.c - folding a duplicate ticket into another (see merge.h). */
#include "config.h"

#include "catalog.h"
#include "md.h"
#include "merge.h"
#include "notify.h"
#include "token.h"

#define denied(error, ...) (g_set_error (error, MD_ERROR, MD_ERROR_DENIED, __VA_ARGS__), FALSE)

/* Why SOURCE may not be merged into INTO, as an error; TRUE when it may. */
static gboolean
may_merge (MdDesk *desk, const MdTicket *source, const MdTicket *into, GError **error)
{
	const char *prefix = desk->conf->ticket_prefix;
	g_autofree char *from = md_ticket_key (prefix, source->id), *to = md_ticket_key (prefix, into->id);

	if (source->id == into->id)
		return denied (error, "a ticket cannot be merged into itself");
	if (source->merged_into_id || into->merged_into_id) {
		const MdTicket *done = source->merged_into_id ? source : into;
		g_autofree char *key = md_ticket_key (prefix, done->id), *where = md_ticket_key (prefix, done->merged_into_id);
		return denied (error, "%s was merged into %s already", key, where);
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
		               "would read the other's private mail", from, source->requester ? source->requester : "no requester",
		               to, into->requester ? into->requester : "no requester");
	if (!same_requester && !same_org)
		return denied (error, "%s (%s) and %s (%s) are different customers' tickets: merged, each would read "
		               "the other's mail", from, source->requester ? source->requester : "no requester", to,
		               into->requester ? into->requester : "no requester");
	/* The requester's own choice: what they kept private stays so. */
	if (!source->shared && into->shared && into->organization_id)
		return denied (error, "%s is private and %s shared with %s: merged, the organization would read %s's "
		               "mail; share %s first, or make %s private", from, to,
		               into->organization ? into->organization : "its organization", from, from, to);
	return TRUE;
}

gboolean
md_merge_tickets (MdDesk *desk, MdStore *store, MdTicket *source, MdTicket *into, const MdActor *actor,
                  GError **error)
{
	if (!may_merge (desk, source, into, error))
		return FALSE;
	const char *prefix = desk->conf->ticket_prefix;
	g_autofree char *from = md_ticket_key (prefix, source->id), *to = md_ticket_key (prefix, into->id);
	const char *who = actor && actor->email ? actor->email : "system";
	gint64 now = md_now ();

	if (!md_store_ticket_merge (store, source, into, error) ||
	    !md_store_history_add (store, source->id, now, who, "merged_into", NULL, to, error) ||
	    !md_store_history_add (store, into->id, now, who, "merged", NULL, from, error))
		return FALSE;
	source->merged_into_id = into->id;
	into->updated_at = now;
	if (!md_store_ticket_update (store, into, error))
		return FALSE;
	/* Quietly: the customer's mail goes on in the other ticket, and a
	 * "resolved" for a problem still being worked on would mislead.
	 * What they are told instead is where it goes on. */
	if (md_status_is_open (source->status) &&
	    !md_workflow_set_status (desk, store, source, MD_STATUS_RESOLVED, actor, NULL, FALSE, error))
		return FALSE;
	return md_notify_merged (desk, store, source, into, actor ? actor->email : NULL, error);
}
