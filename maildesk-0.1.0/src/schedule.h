/* schedule.h - the timers of DESIGN 9: SLA reminders and breach notices,
 * waiting-for-customer follow-ups and auto-resolution.  Timers are rows
 * (table timers) indexed by due time; `tick` and serve's timer run the
 * due ones. */
#ifndef MD_SCHEDULE_H
#define MD_SCHEDULE_H

#include <glib.h>

#include "desk.h"
#include "store.h"

/* (Re)arms the ticket's timers after a change of status, priority or
 * first response, cancelling those that no longer apply.  Runs inside
 * the caller's transaction. */
gboolean md_schedule_ticket (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error);

/* Runs every timer due at NOW, each in its own transaction, each at
 * most once.  *ran_r counts them. */
gboolean md_schedule_run_due (MdDesk *desk, MdStore *store, gint64 now, guint *ran_r, GError **error);

/* The next due time of any pending timer, or 0 when none. */
gint64 md_schedule_next_due (MdStore *store, GError **error);

#endif
