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

/* serve's scheduler: a thread with its own connection that runs what is
 * due, then sleeps until the next due time, a wake-up, or at most 60 s
 * (timers armed by other processes cannot wake it), and repeats. */
typedef struct _MdScheduler MdScheduler;

/* DESK must outlive the scheduler.  Free with md_scheduler_stop. */
MdScheduler *md_scheduler_start (MdDesk *desk, GError **error);
/* Timers changed: look again now.  Cheap; any thread; NULL is fine. */
void md_scheduler_wake (MdScheduler *scheduler);
/* FUNC (DATA) is called from the scheduler's thread after a pass that
 * ran timers (and so may have queued mail), e.g. to wake the outbox
 * sender. */
void md_scheduler_set_on_queued (MdScheduler *scheduler, void (*func) (gpointer data), gpointer data);
/* Finishes the pass in progress, joins the thread and frees the
 * scheduler.  NULL is fine. */
void md_scheduler_stop (MdScheduler *scheduler);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdScheduler, md_scheduler_stop)

#endif
