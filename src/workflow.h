/* workflow.h - the support process of DESIGN 1 and 7: the status
 * machine, field changes with their history, and commands by mail.
 *
 * Every change goes through here, whoever makes it (a mail, a command,
 * `ticket set`, the scheduler), so that history, notifications and
 * timers are kept the same way.  All functions run inside the caller's
 * transaction. */
#ifndef MD_WORKFLOW_H
#define MD_WORKFLOW_H

#include <glib.h>

#include "desk.h"
#include "message.h"
#include "notify.h"
#include "store.h"

typedef enum {
	MD_ACTOR_SYSTEM,     /* the gateway itself: scheduler, automatic transitions */
	MD_ACTOR_AGENT,
	MD_ACTOR_CUSTOMER,
} MdActorKind;

typedef struct {
	MdActorKind kind;
	const char *email;   /* NULL for the system */
	const char *name;
} MdActor;

/* Whether ACTOR may move a ticket from FROM to TO by hand (a command or
 * `ticket set`); when not, *reason_r (static) says why. */
gboolean md_workflow_may_set_status (const char *from, const char *to, MdActorKind actor, const char **reason_r);

/* Changes the status, records the history, stamps status_changed_at and
 * resolved_at, re-arms the ticket's timers (md_schedule_*), and, when
 * NOTIFY, mails the change to the customer side.  STATUS may be the
 * ticket's own: the stay starts over (a new follow-up series for
 * Waiting for customer, md_schedule_restart_waiting).  No checks: callers
 * check with md_workflow_may_set_status first where a person asked. */
gboolean md_workflow_set_status (MdDesk *desk, MdStore *store, MdTicket *ticket, const char *status,
                                 const MdActor *actor, const char *comment, gboolean notify, GError **error);

/* Priority (recomputes first_response_due), category, assignee (an
 * email; "me" is the actor), visibility: validated, applied, recorded.
 * A bad value fails with MD_ERROR_INVALID and a sentence for the person. */
gboolean md_workflow_set_field (MdDesk *desk, MdStore *store, MdTicket *ticket, const char *field,
                                const char *value, const MdActor *actor, GError **error);

/* The first response is met (first public agent reply or #ack). */
gboolean md_workflow_first_response (MdDesk *desk, MdStore *store, MdTicket *ticket, const MdActor *actor,
                                     GError **error);

/* first_response_due for a ticket created (or re-prioritized) at T. */
gint64 md_workflow_first_response_due (MdDesk *desk, const char *priority, gint64 t);

/* ---- replies ---- */

/* What a verified agent's reply does (DESIGN 1, 7): unless INTERNAL or
 * empty, the text (less its command lines) goes to the customer side,
 * counts as the first response, and moves Waiting for triage to Request
 * acknowledged, Request acknowledged or Reopened to In progress; then
 * its COMMANDS run.  MSG (may be NULL) is the mail it came in, for
 * threading and attachments. */
gboolean md_workflow_agent_reply (MdDesk *desk, MdStore *store, MdTicket *ticket, const MdActor *actor,
                                  const char *text, gboolean internal, GPtrArray *commands, const MdMessage *msg,
                                  GError **error);

/* What a customer's reply does: the intake fields it supplies are
 * collected (md_intake_customer_reply); Waiting for customer becomes In
 * progress, Resolved becomes Reopened (with a notice); the text goes to
 * the agents; then its COMMANDS run. */
gboolean md_workflow_customer_reply (MdDesk *desk, MdStore *store, MdTicket *ticket, const MdActor *actor,
                                     const char *text, GPtrArray *commands, const MdMessage *msg, GError **error);

/* ---- commands by mail (DESIGN 7) ---- */

typedef struct {
	char *line;      /* as written, trimmed */
	char *name;      /* lowercase, without '#' */
	char *arg;       /* trimmed, "" when none */
} MdCommand;
void md_command_free (MdCommand *c);

/* The command lines at the top of TEXT (before the first line that is
 * not blank and not a command).  MdCommand*; free with g_ptr_array_unref. */
GPtrArray *md_commands_parse (const char *text);

/* Whether NAME (lowercase, no '#') is one of DESIGN 7's commands. */
gboolean md_command_is_known (const char *name);

/* TEXT without its leading command lines.  Free with g_free. */
char *md_commands_strip (const char *text);

/* Runs COMMANDS on TICKET for ACTOR; every one that fails or is not
 * allowed is answered by mail with the reason (never ignored).  FALSE
 * only on database trouble. */
gboolean md_workflow_run_commands (MdDesk *desk, MdStore *store, MdTicket *ticket, GPtrArray *commands,
                                   const MdActor *actor, const MdMessage *msg, GError **error);

/* The mail that opened TICKET began with COMMANDS (ACTOR its sender;
 * DESIGN 7 has commands in replies to a ticket's address): the
 * requester's #share and #private run on it, which make sense on a new
 * ticket; every other command is refused with the reason and answered
 * by mail (an agent's count only at the token address, #resolve in a
 * reply, #list alone), as is one that fails.  The answers are subject
 * to the per-sender limit of automatic mail (md_notify_rate_limited);
 * every refusal is in the history.  FALSE only on database trouble. */
gboolean md_workflow_opening_commands (MdDesk *desk, MdStore *store, MdTicket *ticket, GPtrArray *commands,
                                       const MdActor *actor, const MdMessage *msg, GError **error);

/* The #list answer to ACTOR (who has an address): their tickets and the
 * shared ones of their organization.  TICKET (may be NULL) is the one
 * the asking mail reached. */
gboolean md_workflow_list (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdActor *actor,
                           const MdMessage *msg, GError **error);

#endif
