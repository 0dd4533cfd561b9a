/* intake.h - intake forms applied to tickets (DESIGN 1, issue 10): the
 * fields a mail supplies, the question for what is missing or wrong,
 * delivery estimates and go-live notices.  The forms themselves are
 * forms.h.  Everything runs inside the caller's transaction and is
 * recorded in the ticket's history under the actor "intake". */
#ifndef MD_INTAKE_H
#define MD_INTAKE_H

#include <glib.h>

#include "desk.h"
#include "message.h"
#include "store.h"
#include "workflow.h"

#define MD_INTAKE_ACTOR "intake"

typedef struct _MdIntake MdIntake;
void md_intake_free (MdIntake *intake);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdIntake, md_intake_free)

/* A new TICKET, first message MSG: finds the ticket's form, stores the
 * fields MSG supplies (and remembered ones from the requester's earlier
 * tickets), sets due_at from the form's estimate in working days and
 * tags a go-live notice that comes too late.  Returns what the
 * acknowledgement and md_intake_ask need (also when no form applies);
 * NULL only on database trouble.  Free with md_intake_free. */
MdIntake *md_intake_new_ticket (MdDesk *desk, MdStore *store, MdTicket *ticket, const MdMessage *msg,
                                GError **error);

/* Variables for the acknowledgement: `delivery` (the promised date and
 * the estimate) and `notice` (why a go-live notice is short), each ""
 * when it does not apply.  Owned by INTAKE. */
GHashTable *md_intake_ack_vars (MdIntake *intake);

/* When the new ticket's form lacks fields or has invalid ones: mails the
 * requester one question listing exactly those (fields-missing) and sets
 * Waiting for customer.  Does nothing when the form is complete, when
 * no form applies, when the requester is an agent (who knows the form),
 * or when MSG may not be answered automatically.  The
 * fields are those md_intake_new_ticket stored: nothing may set others
 * in between.  TICKET_VARS as for md_notify_event (may be NULL): the
 * question is mailed before the status changes. */
gboolean md_intake_ask (MdDesk *desk, MdStore *store, MdTicket *ticket, MdIntake *intake, const MdMessage *msg,
                        GHashTable **ticket_vars, GError **error);

/* A customer's reply TEXT (trimmed, commands stripped): stores the
 * fields it supplies.  When the ticket waits for fields because intake
 * asked: a reply that completes them returns the ticket to the status
 * it had and tells the customer; one that supplies some asks for the
 * rest, and *holds_r is TRUE: the ticket keeps waiting, the reply must
 * not move it on.  Otherwise *holds_r is FALSE. */
gboolean md_intake_customer_reply (MdDesk *desk, MdStore *store, MdTicket *ticket, const MdActor *actor,
                                   const char *text, const MdMessage *msg, gboolean *holds_r, GError **error);

#endif
