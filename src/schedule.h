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
/* Like md_schedule_ticket for a ticket whose wait for the customer
 * starts over at its status_changed_at: the follow-ups and the
 * auto-resolve of the earlier wait are dropped, sent or not, and a new
 * series is armed (one series, never two side by side). */
gboolean md_schedule_restart_waiting (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error);
/* Like md_schedule_ticket for a ticket whose first-response deadline
 * is now another's: the reminders and breach notice of the old one are
 * dropped, sent or not, and those of the new one armed. */
gboolean md_schedule_restart_sla (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error);
/* Like md_schedule_ticket for a ticket created in this transaction, which
 * has no timer rows yet: arms its timers without reading them first. */
gboolean md_schedule_new_ticket (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error);

/* Runs every timer due at NOW, each at most once: a timer is marked done
 * in the transaction that queues its mail.  Timers are grouped 64 to a
 * transaction (one fsync each group), each in a savepoint of its own so
 * one that fails for good is recorded and skipped without undoing the
 * others; a temporary failure (database busy) stops the run and rolls
 * back its group, to be retried.  *ran_r counts them. */
gboolean md_schedule_run_due (MdDesk *desk, MdStore *store, gint64 now, guint *ran_r, GError **error);

/* The next due time of any pending timer, or 0 when none. */
gint64 md_schedule_next_due (MdStore *store, GError **error);

/* The figures of `maildesk sla report` for one priority. */
typedef struct {
	const char *priority;       /* static, from md_priorities */
	guint open;                 /* not resolved */
	guint due;                  /* open, no first response, deadline not passed yet */
	guint due_next_working_day; /* open, no first response, due from now until now + 1bd */
	guint breached;             /* responded late, or no response by now (or by the resolution) */
	guint met;                  /* responded by the deadline */
	guint responded;            /* with a first response, whatever the deadline */
	double median_response_bh;  /* business hours from creation to first response; < 0 when none */
} MdSlaFigures;

/* One MdSlaFigures per priority, in md_priorities order, at NOW, over the
 * tickets created at or after SINCE (0: all) and every open ticket,
 * whenever created: a window leaves out closed history, never current
 * work.  Reads every ticket once: a report, not a hot path. */
gboolean md_schedule_sla_report (MdDesk *desk, MdStore *store, gint64 now, gint64 since, MdSlaFigures out[5],
                                 GError **error);

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
