/* thread.c - finding a message's ticket and authorizing its sender. */
#include "config.h"

#include <string.h>

#include "md.h"
#include "thread.h"

const char *
md_found_by_name (MdFoundBy found)
{
	static const char *const names[] = { "none", "token", "references", "subject" };
	return names[found];
}

const char *
md_role_name (MdSenderRole role)
{
	static const char *const names[] = { "stranger", "requester", "participant", "org-member", "agent" };
	return names[role];
}

const char *
md_thread_action_name (MdThreadAction action)
{
	static const char *const names[] = { "new-ticket", "comment", "agent-comment", "unverified-sender",
		                             "unverified-agent" };
	return names[action];
}

MdThreadAction
md_thread_decide (MdFoundBy found, MdSenderRole role)
{
	if (found == MD_FOUND_NONE)
		return MD_THREAD_NEW_TICKET;
	gboolean token = found == MD_FOUND_TOKEN;
	switch (role) {
	case MD_ROLE_AGENT:
		/* A From is easy to forge: only the token proves an agent. */
		return token ? MD_THREAD_AGENT_COMMENT : MD_THREAD_UNVERIFIED_AGENT;
	case MD_ROLE_REQUESTER:
	case MD_ROLE_PARTICIPANT:
	case MD_ROLE_ORG_MEMBER:
		return MD_THREAD_COMMENT;
	case MD_ROLE_STRANGER:
		/* With the token they reached us through the ticket: keep it for
		 * a human.  Without it a tag or reference proves nothing. */
		return token ? MD_THREAD_UNVERIFIED_SENDER : MD_THREAD_NEW_TICKET;
	}
	return MD_THREAD_NEW_TICKET;
}

gint64
md_thread_subject_tag (const char *prefix, const char *subject)
{
	gsize plen = strlen (prefix);
	for (const char *p = subject ? strchr (subject, '[') : NULL; p; p = strchr (p + 1, '[')) {
		if (g_ascii_strncasecmp (p + 1, prefix, plen) != 0 || p[1 + plen] != '-')
			continue;
		const char *num = p + 2 + plen;
		gint64 id = 0;
		int digits = 0;
		while (g_ascii_isdigit (num[digits]) && digits < 15)
			id = id * 10 + (num[digits++] - '0');
		if (digits > 0 && num[digits] == ']')
			return id;
	}
	return 0;
}

/* A merged ticket's address and tag lead on to the ticket it went
 * into (merge.c; its Message-IDs went there with its messages). */
static gint64
carried_on (const MdTicket *t)
{
	return t->merged_into_id ? t->merged_into_id : t->id;
}

gint64
md_thread_find (MdStore *store, const char *prefix, gint64 token_ticket_id, const char *in_reply_to,
                const char *const *references, guint n_references, const char *subject,
                MdFoundBy *found_r, GError **error)
{
	GError *local = NULL;
	gint64 id;

	*found_r = MD_FOUND_NONE;
	if (token_ticket_id) {
		g_autoptr (MdTicket) t = md_store_ticket_get (store, token_ticket_id, &local);
		if (t) {
			*found_r = MD_FOUND_TOKEN;
			return carried_on (t);
		}
		if (!g_error_matches (local, MD_ERROR, MD_ERROR_NOT_FOUND)) {
			g_propagate_error (error, local);
			return 0;
		}
		g_clear_error (&local);
	}
	if (in_reply_to && (id = md_store_ticket_by_message_id (store, in_reply_to, &local))) {
		*found_r = MD_FOUND_REFERENCES;
		return id;
	}
	/* The newest reference is the most likely to be ours: search backwards. */
	for (guint i = n_references; !local && i > 0; i--) {
		if ((id = md_store_ticket_by_message_id (store, references[i - 1], &local))) {
			*found_r = MD_FOUND_REFERENCES;
			return id;
		}
	}
	if (local) {
		g_propagate_error (error, local);
		return 0;
	}
	id = md_thread_subject_tag (prefix, subject);
	if (id) {
		g_autoptr (MdTicket) t = md_store_ticket_get (store, id, &local);
		if (t) {
			*found_r = MD_FOUND_SUBJECT;
			return carried_on (t);
		}
		if (!g_error_matches (local, MD_ERROR, MD_ERROR_NOT_FOUND)) {
			g_propagate_error (error, local);
			return 0;
		}
		g_clear_error (&local);
	}
	return 0;
}

static gboolean
is_extra_agent (const char *email, const char *const *extra_agents)
{
	for (guint i = 0; extra_agents && extra_agents[i]; i++)
		if (g_ascii_strcasecmp (extra_agents[i], email) == 0)
			return TRUE;
	return FALSE;
}

gboolean
md_is_agent (MdStore *store, const char *email, const char *const *extra_agents)
{
	if (!email)
		return FALSE;
	if (is_extra_agent (email, extra_agents))
		return TRUE;
	g_autoptr (MdPerson) p = md_store_person_find (store, email, NULL);
	return p && p->is_agent;
}

gboolean
md_person_is_agent (const MdPerson *p, const char *email, const char *const *extra_agents)
{
	return email && (is_extra_agent (email, extra_agents) || (p && p->is_agent));
}

MdSenderRole
md_thread_role (MdStore *store, const MdTicket *ticket, const char *sender, const char *const *extra_agents)
{
	if (!sender)
		return MD_ROLE_STRANGER;
	if (md_is_agent (store, sender, extra_agents))
		return MD_ROLE_AGENT;
	if (ticket->requester && g_ascii_strcasecmp (ticket->requester, sender) == 0)
		return MD_ROLE_REQUESTER;
	if (md_store_is_participant (store, ticket->id, sender))
		return MD_ROLE_PARTICIPANT;
	if (ticket->shared && md_store_org_is_member (store, ticket->organization_id, sender))
		return MD_ROLE_ORG_MEMBER;
	return MD_ROLE_STRANGER;
}
