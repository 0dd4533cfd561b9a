/* merge.h - a duplicate ticket folded into the one that carries on.
 *
 * A customer who writes twice about one problem opens two tickets; the
 * agents answer one.  Merging moves the duplicate's mail, participants
 * and intake fields to the other, resolves the duplicate without a
 * status mail, tells its customers where it goes on (in the other
 * ticket's mail, so their answer lands there), and leaves it pointing
 * there: its reply address, subject tag and Message-IDs all lead to
 * the ticket that carries on. */
#ifndef MD_MERGE_H
#define MD_MERGE_H

#include <glib.h>

#include "desk.h"
#include "store.h"
#include "workflow.h"

/* Merges SOURCE into INTO, both read in the caller's transaction, as
 * ACTOR.  Refused (MD_ERROR_DENIED, with a sentence for the person) when
 * they are one ticket, either was merged already, INTO is resolved, or
 * they belong to different customers: one neither requested by the
 * same person nor in the same organization, whose mail would then go
 * to people who were never meant to read it. */
gboolean md_merge_tickets (MdDesk *desk, MdStore *store, MdTicket *source, MdTicket *into, const MdActor *actor,
                           GError **error);

#endif
