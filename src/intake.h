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

/* The form a new ticket's first message MSG takes, given the ticket's
 * CATEGORY and TAGS, and the fields MSG gives it: regular expressions
 * over the whole text and no database, so ingest finds them on the
 * parsing threads rather than in the writer.  Free with
 * md_intake_match_free. */
typedef struct _MdIntakeMatch MdIntakeMatch;
MdIntakeMatch *md_intake_match (MdDesk *desk, const char *category, const char *tags, const MdMessage *msg);
void md_intake_match_free (MdIntakeMatch *match);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdIntakeMatch, md_intake_match_free)

/* A new TICKET, first message MSG: finds the ticket's form, stores the
 * fields MSG supplies (and remembered ones from the requester's earlier
 * tickets), sets due_at from the form's estimate in working days and
 * tags a go-live notice that comes too late, and records the fields it
 * lacks.  Returns what the acknowledgement needs (also when no form
 * applies); NULL only on database trouble.  Free with md_intake_free.
 * MATCH: md_intake_match of the ticket and MSG, or NULL to find it here. */
MdIntake *md_intake_new_ticket (MdDesk *desk, MdStore *store, MdTicket *ticket, const MdMessage *msg,
                                const MdIntakeMatch *match, GError **error);

/* Variables for the acknowledgement, each "" when it does not apply:
 * `delivery` (the promised date and the estimate), `notice` (why a
 * go-live notice is short), and what the form still lacks: `missing`
 * (one line per field, with what is wrong) and `form` (`Label: ` lines
 * to fill in).  Owned by INTAKE. */
GHashTable *md_intake_ack_vars (MdIntake *intake);

/* A customer's reply TEXT (trimmed, commands stripped): stores the
 * fields it supplies.  When intake asked for fields and the reply gives
 * some but not all, the customer is asked for the rest
 * (fields-missing); when they are complete, the history says so.  The
 * status is the caller's business: intake never moves it. */
gboolean md_intake_customer_reply (MdDesk *desk, MdStore *store, MdTicket *ticket, const MdActor *actor,
                                   const char *text, const MdMessage *msg, GError **error);

#endif
