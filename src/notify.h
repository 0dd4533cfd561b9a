/* notify.h - the mail a ticket's events cause (DESIGN 8): who receives
 * it, which template renders it, loop safety (RFC 3834) and the
 * acknowledgement rate limit.  Each function renders, composes and
 * queues inside the caller's transaction, so a crash never loses or
 * doubles a notification. */
#ifndef MD_NOTIFY_H
#define MD_NOTIFY_H

#include <glib.h>

#include "desk.h"
#include "message.h"
#include "store.h"

/* Why no automatic mail may answer MSG (RFC 3834 and DESIGN 8), or NULL
 * when one may: auto-submitted, from a list, from a daemon address, or
 * carrying our own loop header. Static string. */
const char *md_notify_suppress_reason (const MdMessage *msg, const char *envelope_sender);
/* Why MSG was written by a machine rather than a person (auto-submitted,
 * bulk, a bounce, a daemon address), or NULL: such mail neither acts on
 * a ticket nor is relayed.  Static string. */
const char *md_notify_automatic_reason (const MdMessage *msg);
/* Whether automatic mail of KIND to RCPT has reached the desk's
 * per-sender limit (ack_rate_limit) and must not go out now. */
gboolean md_notify_rate_limited (MdDesk *desk, MdStore *store, const char *rcpt, const char *kind);

/* Who mailed, for templates and From lines. */
typedef struct {
	const char *email;
	const char *name;
} MdPersonRef;

/* The acknowledgement of a new ticket, to its requester, answering MSG,
 * the ticket's only message so far (its References name MSG alone);
 * skipped (returning TRUE) when the rate limit or loop safety says so.
 * EXTRA (may be NULL) adds variables (intake's delivery and notice).
 * TICKET_VARS (may be NULL) keeps md_notify_ticket_vars of TICKET for
 * the caller's next mail about it (md_notify_event), while the ticket
 * does not change: made into *TICKET_VARS when it is NULL, read from it
 * otherwise; the caller frees it. */
gboolean md_notify_ack (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdMessage *msg,
                        const char *envelope_sender, GHashTable *extra, GHashTable **ticket_vars, GError **error);

/* An agent's public reply relayed to the customer side (requester,
 * participants, and for a shared ticket its organization's members),
 * with the agent's attachments.  OLD_STATUS (may be NULL): the status
 * the ticket had before the reply's commands moved it, which the reply
 * then tells in place of a status mail of its own. */
gboolean md_notify_agent_reply (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *agent,
                                const char *comment, const char *old_status, const MdMessage *msg,
                                GError **error);

/* A customer's reply relayed to the assignee, or to every agent. */
gboolean md_notify_customer_reply (MdDesk *desk, MdStore *store, const MdTicket *ticket,
                                   const MdPersonRef *author, const char *comment, const MdMessage *msg,
                                   GError **error);

/* A status change, to the customer side but EXCEPT (an address, or
 * NULL).  BY_CUSTOMER: a customer's mail made it, and it reaches only
 * the participants the desk has written to on the ticket, and no one
 * past ack_rate_limit an hour. */
gboolean md_notify_status_change (MdDesk *desk, MdStore *store, const MdTicket *ticket, const char *old_status,
                                  const MdPersonRef *actor, const char *comment, const char *except,
                                  gboolean by_customer, GError **error);

/* Tells the customer side of SOURCE (its requester, participants and,
 * shared, its organization) but EXCEPT (an address, or NULL) that it
 * was merged into INTO: the mail is INTO's (Reply-To, subject tag,
 * thread), so that their answer reaches the ticket that carries on. */
gboolean md_notify_merged (MdDesk *desk, MdStore *store, const MdTicket *source, const MdTicket *into,
                           const char *except, GError **error);

/* Tells an agent whose mail reached a ticket without its token how to
 * reply instead (DESIGN 5.4), at most ack_rate_limit times a period: the
 * From may be forged. */
gboolean md_notify_unverified_agent (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *agent,
                                     const MdMessage *msg, GError **error);

/* A command that failed or was refused, with the reason (DESIGN 7). */
gboolean md_notify_command_error (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *to,
                                  const char *command, const char *reason, const MdMessage *msg, GError **error);

/* Tells TO, the requester whose #share or #private MSG carried, what
 * the ticket's visibility now is; held to ack_rate_limit a period. */
gboolean md_notify_visibility (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *to,
                               const MdMessage *msg, GError **error);

/* The `#list` answer: TICKETS_TEXT is preformatted. */
gboolean md_notify_list (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *to,
                         const char *tickets_text, const MdMessage *msg, GError **error);

/* Generic: render EVENT for TICKET (may be NULL) with VARS added to the
 * ticket's, and queue it to RCPTS.  Used by the scheduler's reminders.
 * *QUEUED_R (may be NULL) is how many recipients it was queued to: 0
 * when none was usable (unusable addresses, and for automatic mail to
 * customers addresses that bounce, are left out), so that a caller
 * does not record mail that never went.  TICKET_VARS as for
 * md_notify_ack (may be NULL). */
gboolean md_notify_event (MdDesk *desk, MdStore *store, const MdTicket *ticket, const char *event,
                          GHashTable *vars, const char *const *rcpts, const char *in_reply_to,
                          gboolean auto_generated, guint *queued_r, GHashTable **ticket_vars, GError **error);

/* The variables every template gets for TICKET (may be NULL): desk.*,
 * ticket.*, reply_address, resolve_link, due, response_time.  Free with
 * g_hash_table_unref. */
GHashTable *md_notify_ticket_vars (MdDesk *desk, const MdTicket *ticket);

/* T as the desk's templates show times: "Thu 03 Dec 2026 10:00 EET" in
 * the calendar's zone; "" for 0.  Free with g_free. */
char *md_notify_local_time (MdDesk *desk, gint64 t);

/* The mailto: link that resolves ticket KEY at REPLY_ADDRESS, with the
 * subject "Resolve [KEY]" and the body "#resolve".  Free with g_free. */
char *md_notify_resolve_link (const char *reply_address, const char *key);

/* The promised first response for a priority, "4 hours"; "" when none.
 * Free with g_free. */
char *md_notify_response_time (MdDesk *desk, const char *priority);

/* The desk's sender address and display name (from [smtp] from, else
 * [desk] name <intake@domain>). Free with g_free. */
void md_notify_desk_from (MdDesk *desk, char **name_r, char **email_r);

#endif
