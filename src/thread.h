/* thread.h - which ticket a received message belongs to, and what the
 * sender may do there (DESIGN 5.4).
 *
 * Finding: a valid reply token in a recipient, else In-Reply-To or
 * References naming a known message, else the subject tag [SUP-123].
 * Deciding: md_thread_decide() is the whole authorization table, a pure
 * function so that it can be read and tested at once. */
#ifndef MD_THREAD_H
#define MD_THREAD_H

#include <glib.h>

#include "store.h"

typedef enum {
	MD_FOUND_NONE,
	MD_FOUND_TOKEN,       /* a recipient carried the ticket's valid token */
	MD_FOUND_REFERENCES,  /* In-Reply-To or References */
	MD_FOUND_SUBJECT,     /* the [SUP-123] tag */
} MdFoundBy;

typedef enum {
	MD_ROLE_STRANGER,
	MD_ROLE_REQUESTER,
	MD_ROLE_PARTICIPANT,
	MD_ROLE_ORG_MEMBER,   /* member of the organization of a shared ticket */
	MD_ROLE_AGENT,
} MdSenderRole;

typedef enum {
	MD_THREAD_NEW_TICKET,
	MD_THREAD_COMMENT,            /* customer-side comment */
	MD_THREAD_AGENT_COMMENT,      /* verified agent: may speak to the customer and command */
	MD_THREAD_UNVERIFIED_SENDER,  /* internal note; nothing changes, nothing is sent */
	MD_THREAD_UNVERIFIED_AGENT,   /* internal note; commands refused, agent told how to reply */
} MdThreadAction;

const char *md_found_by_name (MdFoundBy found);
const char *md_role_name (MdSenderRole role);
const char *md_thread_action_name (MdThreadAction action);

MdThreadAction md_thread_decide (MdFoundBy found, MdSenderRole role);

/* The number in the first "[PREFIX-N]" of SUBJECT (prefix case-insensitive), or 0. */
gint64 md_thread_subject_tag (const char *prefix, const char *subject);

/* Looks up the ticket by token (token_ticket_id, 0 when none), then by
 * In-Reply-To and References, then by subject tag.  0 when none. */
gint64 md_thread_find (MdStore *store, const char *prefix, gint64 token_ticket_id, const char *in_reply_to,
                       const char *const *references, guint n_references, const char *subject,
                       MdFoundBy *found_r, GError **error);

/* The role SENDER plays on TICKET; agents are people marked agents or
 * named in the configuration (extra_agents, NULL-terminated, may be NULL). */
MdSenderRole md_thread_role (MdStore *store, const MdTicket *ticket, const char *sender,
                             const char *const *extra_agents);

gboolean md_is_agent (MdStore *store, const char *email, const char *const *extra_agents);
/* md_is_agent for a caller that has looked up EMAIL's person P already
 * (NULL: the desk does not know it). */
gboolean md_person_is_agent (const MdPerson *p, const char *email, const char *const *extra_agents);

#endif
